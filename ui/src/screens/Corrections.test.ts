import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import HouseholdPage from "./HouseholdPage.svelte";
import { loadLabels } from "../lib/labels.svelte";
import { locale } from "../lib/i18n.svelte";
import { nav } from "../lib/nav.svelte";
import { enumFixture } from "../lib/test-support";

const enums = [
  ...enumFixture,
  { name: "visit_type", values: [{ code: "home", national: null, zh: "入户走访", en: "Home visit" }] },
  { name: "household_closure", values: [{ code: "moved_out", national: null, zh: "迁出", en: "Moved away" }, { code: "deceased", national: null, zh: "死亡", en: "Deceased" }] },
];
const visits = [
  { id: "v-ahead", household_id: "h1", visit_type: "home", visited_at: "2027-03-01T10:00:00+08:00", summary: "日期填错的走访" },
  { id: "v-real", household_id: "h1", visit_type: "home", visited_at: "2026-11-20T09:30:00+08:00", summary: "查看核桃晾晒", next_visit_date: "2026-11-27" },
];

function view(closed = false) {
  return {
    household: { id: "h1", head_name: "赵小村", village_id: "v1", attribute: "general", poverty_status: "not_exited", ...(closed ? { closed_reason: "moved_out", closed_on: "2026-11-30", closed_note: "迁往昆明" } : {}) },
    members: [{ id: "m1", household_id: "h1", name: "赵小村", relation: "head" }, { id: "m3", household_id: "h1", name: "赵小宝", relation: "son" }],
    income_by_year: [], income_records: [], visits, trainings: [], assessments: [], products: [], listings: [], sales: [],
  };
}

describe("Correcting a household's records", () => {
  let calls: { command: string; args: Record<string, unknown> }[] = [];
  let closed = false;

  beforeEach(async () => {
    calls = [];
    closed = false;
    locale.language = "zh-CN";
    nav.householdId = "h1";
    nav.editing = false;
    nav.fix = null;
    mockIPC((command, args) => {
      const payload = (args ?? {}) as Record<string, unknown>;
      calls.push({ command, args: payload });
      switch (command) {
        case "enum_labels": return enums;
        case "list_villages": return [{ id: "v1", name: "青山村" }];
        case "household_view": return view(closed);
        case "duplicates_of_household": return [];
        case "record_sync_states": return [];
        case "sync_status": return { online: false, pending: 1, last_sync_at: null, signed_in: true, can_sync: false, open_conflicts: 0, last_error: null, syncing: false, retry_at: null, needs_user: false };
        case "save_visit": return { ...(payload.visit as Record<string, unknown>) };
        case "delete_visit": case "delete_member": return null;
        case "member_deletion_impact": return { name: "赵小宝", members: 1, visits: 0, attendance: 2, assessments: 1, income_records_kept: 0 };
        case "close_household": closed = true; return view(true).household;
        default: throw new Error(`unexpected command ${command}`);
      }
    });
    await loadLabels();
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  it("corrects a visit's date and deletes another after a confirmation naming it", async () => {
    const { container } = render(HouseholdPage);
    await vi.waitFor(() => expect(screen.getAllByTestId("visit-row")).toHaveLength(2));
    const ahead = () => screen.getAllByTestId("visit-row").find((row) => row.dataset.visitId === "v-ahead")!;
    // The visit typed three months ahead is corrected to the day it happened.
    await fireEvent.click(ahead().querySelector("[data-testid=edit-visit]")!);
    const date = container.querySelector("#visit-visited_at") as HTMLInputElement;
    expect(date.value).toBe("2027-03-01");
    await fireEvent.input(date, { target: { value: "2026-12-01" } });
    await fireEvent.click(screen.getByTestId("visit-save"));
    await vi.waitFor(() => expect(calls.some((call) => call.command === "save_visit")).toBe(true));
    expect(calls.find((call) => call.command === "save_visit")!.args.visit).toMatchObject({ id: "v-ahead", visited_at: "2026-12-01T10:00:00+08:00", summary: "日期填错的走访" });

    // The other one is deleted once the user confirms what goes.
    const real = screen.getAllByTestId("visit-row").find((row) => row.dataset.visitId === "v-real")!;
    await fireEvent.click(real.querySelector("[data-testid=delete-visit]")!);
    const dialog = await vi.waitFor(() => screen.getByTestId("confirm-dialog"));
    expect(dialog.textContent).toContain("2026-11-20 的入户走访记录");
    await fireEvent.click(screen.getByTestId("confirm-cancel"));
    expect(calls.some((call) => call.command === "delete_visit")).toBe(false);
    await fireEvent.click(real.querySelector("[data-testid=delete-visit]")!);
    await fireEvent.click(await vi.waitFor(() => screen.getByTestId("confirm-ok")));
    await vi.waitFor(() => expect(calls.find((call) => call.command === "delete_visit")?.args).toEqual({ id: "v-real" }));
  });

  it("deletes a member after naming the check-ins and scores that go too", async () => {
    render(HouseholdPage);
    await vi.waitFor(() => expect(screen.getAllByTestId("member-row")).toHaveLength(2));
    await fireEvent.click(screen.getAllByTestId("member-row")[1].querySelector("[data-testid=delete-member]")!);
    const lines = await vi.waitFor(() => screen.getByTestId("confirm-lines"));
    expect(lines.textContent).toContain("家庭成员「赵小宝」");
    expect(lines.textContent).toContain("2 条培训签到");
    expect(lines.textContent).toContain("1 条技能测评");
    await fireEvent.click(screen.getByTestId("confirm-ok"));
    await vi.waitFor(() => expect(calls.find((call) => call.command === "delete_member")?.args).toEqual({ id: "m3" }));
  });

  it("closes the household as moved away with a date and a note, and shows it closed", async () => {
    const { container } = render(HouseholdPage);
    await vi.waitFor(() => expect(screen.getByTestId("household-name").textContent).toBe("赵小村"));
    await fireEvent.click(screen.getByTestId("close-household"));
    await fireEvent.click(screen.getByTestId("close-save"));
    await vi.waitFor(() => expect(container.querySelector('[data-error-for="close-reason"]')?.textContent).toBe("请选择销户原因"));
    await fireEvent.change(container.querySelector("#close-reason")!, { target: { value: "moved_out" } });
    await fireEvent.input(container.querySelector("#close-on")!, { target: { value: "2026-11-30" } });
    await fireEvent.input(container.querySelector("#close-note")!, { target: { value: "迁往昆明" } });
    await fireEvent.click(screen.getByTestId("close-save"));
    await vi.waitFor(() => expect(calls.find((call) => call.command === "close_household")?.args).toEqual({ id: "h1", reason: "moved_out", on: "2026-11-30", note: "迁往昆明" }));
    await vi.waitFor(() => expect(screen.getByTestId("closed-banner").textContent).toContain("已销户：迁出，2026-11-30"));
    expect(screen.queryByTestId("close-household")).toBeNull();
  });
});
