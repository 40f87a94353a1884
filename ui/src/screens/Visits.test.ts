import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import Visits from "./Visits.svelte";
import { locale } from "../lib/i18n.svelte";

const syncStatus = { online: false, pending: 1, last_sync_at: null, signed_in: true, can_sync: false, open_conflicts: 0, last_error: null, syncing: false, retry_at: null, needs_user: false };
const dueList = [
  { household_id: "h1", head_name: "赵小村", village_name: "青山村", phone: "13987654321", visit_id: "v1", due_date: "2026-11-28", days_overdue: 3, actions_agreed: "联系合作社" },
  { household_id: "h2", head_name: "钱大山", village_name: "青山村", phone: null, visit_id: "v2", due_date: "2026-12-05", days_overdue: -4, actions_agreed: null },
];

describe("Follow-ups", () => {
  let doneIds: string[] = [];
  let refuse = false;

  beforeEach(() => {
    doneIds = [];
    refuse = false;
    mockIPC((command, args) => {
      switch (command) {
        case "follow_ups_due": return dueList.filter((followUp) => !doneIds.includes(followUp.visit_id));
        case "mark_follow_up_done": {
          const id = (args as { id: string }).id;
          if (refuse) throw { code: "not_found", message: "not found", message_zh: "找不到这次走访", message_en: "The visit was not found", fields: [] };
          doneIds.push(id);
          return { id, household_id: "h1", follow_up_done_on: "2026-12-01", next_visit_date: "2026-11-28" };
        }
        case "sync_status": return syncStatus;
        default: throw new Error(`unexpected command ${command}`);
      }
    });
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  function due(): string[] {
    return screen.queryAllByTestId("follow-up").map((row) => row.dataset.visitId ?? "");
  }

  it("moves a follow-up marked done out of 待回访 and shows it as 已回访", async () => {
    locale.language = "zh-CN";
    const { container } = render(Visits);
    await vi.waitFor(() => expect(due()).toEqual(["v1", "v2"]));
    expect(screen.queryByTestId("follow-ups-done")).toBeNull();

    await fireEvent.click(screen.getAllByTestId("mark-done")[0]);
    await vi.waitFor(() => expect(screen.getAllByTestId("done-follow-up")).toHaveLength(1));
    expect(due()).toEqual(["v2"]);
    expect(screen.getByTestId("follow-ups").textContent).not.toContain("赵小村");
    const row = screen.getByTestId("done-follow-up");
    expect(row.dataset.visitId).toBe("v1");
    expect(row.textContent).toContain("赵小村");
    expect(screen.getByTestId("done-on").textContent).toBe("2026-12-01 已回访");
    expect(container.querySelector(".done-title")?.textContent).toBe("已回访");

    // After a reload of the list it stays done.
    await fireEvent.click(screen.getAllByTestId("mark-done")[0]);
    await vi.waitFor(() => expect(screen.getAllByTestId("done-follow-up")).toHaveLength(2));
    expect(due()).toEqual([]);
    expect(screen.getByText("近期没有待回访的农户")).toBeTruthy();
    expect(screen.getAllByTestId("done-follow-up").map((entry) => entry.dataset.visitId)).toEqual(["v2", "v1"]);

    locale.language = "en";
    await vi.waitFor(() => expect(container.querySelector(".done-title")?.textContent).toBe("Follow-ups done"));
    expect(screen.getAllByTestId("done-on")[0].textContent).toBe("done on 2026-12-01");
  });

  it("keeps a follow-up the core refused to mark, and says why in the user's language", async () => {
    locale.language = "en";
    refuse = true;
    render(Visits);
    await vi.waitFor(() => expect(due()).toEqual(["v1", "v2"]));
    expect(screen.getAllByTestId("mark-done")[0].textContent).toBe("Mark done");
    await fireEvent.click(screen.getAllByTestId("mark-done")[0]);
    await vi.waitFor(() => expect(screen.getByText("The visit was not found")).toBeTruthy());
    expect(due()).toEqual(["v1", "v2"]);
    expect(screen.queryByTestId("follow-ups-done")).toBeNull();
  });
});
