import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import HouseholdPage from "./HouseholdPage.svelte";
import { loadLabels } from "../lib/labels.svelte";
import { locale } from "../lib/i18n.svelte";
import { nav, fixOnHouseholdPage } from "../lib/nav.svelte";
import { enumFixture } from "../lib/test-support";

const members = [
  { id: "m1", household_id: "h1", name: "赵小村", relation: "head", phone: "13987654321" },
  { id: "m2", household_id: "h1", name: "赵小宝", relation: "son", phone: "13911111111" },
];

function view() {
  return {
    household: { id: "h1", head_name: "赵小村", village_id: "v1", attribute: "general", poverty_status: "not_exited", phone: "13987654321" },
    members,
    income_by_year: [{ year: 2024, by_category: { wage: 1530000 }, ecommerce_sales_fen: 0, net_fen: 1530000, household_size: 2, per_capita_fen: 765000, poverty_line_fen: 400000, above_line: true }],
    income_records: [{ id: "i1", household_id: "h1", year: 2024, category: "wage", amount_fen: 1530000, recorded_on: "2024-12-20" }],
    visits: [], trainings: [], assessments: [], products: [], listings: [], sales: [],
  };
}

describe("HouseholdPage", () => {
  let calls: { command: string; args: Record<string, unknown> }[] = [];

  beforeEach(async () => {
    calls = [];
    locale.language = "zh-CN";
    mockIPC((command, args) => {
      calls.push({ command, args: args as Record<string, unknown> });
      switch (command) {
        case "enum_labels": return enumFixture;
        case "list_villages": return [{ id: "v1", name: "演示·青山村" }];
        case "household_view": return view();
        case "duplicates_of_household": return [];
        case "record_sync_states": {
          const { table, ids } = args as { table: string; ids: string[] };
          return ids.map((id) => ({
            id,
            state: table === "members" && id === "m2" ? "rejected" : "pending",
            fields: table === "members" && id === "m2" ? [{ field: "phone", state: "rejected", reason: "invalid" }] : [],
          }));
        }
        case "save_member": return (args as { member: Record<string, unknown> }).member;
        case "save_household": return (args as { household: Record<string, unknown> }).household;
        case "resolve_conflict": return null;
        case "sync_status": return { online: false, pending: 3, last_sync_at: null, signed_in: true, can_sync: false, open_conflicts: 0, last_error: null };
        default: throw new Error(`unexpected command ${command}`);
      }
    });
    await loadLabels();
  });

  afterEach(() => {
    cleanup();
    clearMocks();
    nav.fix = null;
  });

  it("shows each record's sync state, a rejection with its field and reason", async () => {
    nav.householdId = "h1";
    nav.editing = false;
    render(HouseholdPage);
    await vi.waitFor(() => expect(screen.getAllByTestId("member-row")).toHaveLength(2));
    await vi.waitFor(() => expect(screen.getAllByTestId("sync-badge").length).toBeGreaterThanOrEqual(4));
    const rows = screen.getAllByTestId("member-row");
    expect(rows[0].querySelector("[data-testid=sync-badge]")?.textContent?.trim()).toBe("待同步");
    expect(rows[1].querySelector("[data-testid=sync-badge]")?.textContent?.replace(/\s+/g, "")).toBe("被拒绝：手机号·服务器认为该值无效");
    expect(screen.getByTestId("income-record").querySelector("[data-testid=sync-badge]")?.getAttribute("data-state")).toBe("pending");
  });

  it("opens a rejected member edit in the member's own form with the rejected value, and closes it once saved again", async () => {
    fixOnHouseholdPage("h1", { conflictId: 8, table: "members", rowId: "m2", field: "phone", value: "\"1391111\"" });
    const { container } = render(HouseholdPage);
    const phone = await vi.waitFor(() => {
      const input = container.querySelector("#member-phone") as HTMLInputElement | null;
      if (!input) throw new Error("no member form yet");
      return input;
    });
    expect(phone.value).toBe("1391111");
    expect((container.querySelector("#member-name") as HTMLInputElement).value).toBe("赵小宝");
    await fireEvent.input(phone, { target: { value: "13922222222" } });
    await fireEvent.click(screen.getByTestId("member-save"));
    await vi.waitFor(() => expect(calls.some((call) => call.command === "resolve_conflict")).toBe(true));
    const saved = calls.find((call) => call.command === "save_member");
    expect(saved?.args.member).toMatchObject({ id: "m2", name: "赵小宝", phone: "13922222222" });
    expect(calls.find((call) => call.command === "resolve_conflict")?.args).toEqual({ id: 8, keepMine: false });
    await vi.waitFor(() => expect(screen.getByTestId("notice").textContent).toBe("已重新排队，下次同步时发送"));
    expect(nav.fix).toBeNull();
  });

  it("opens a rejected household edit in the household form with the rejected value", async () => {
    fixOnHouseholdPage("h1", { conflictId: 5, table: "households", rowId: "h1", field: "phone", value: "\"1398765\"" });
    const { container } = render(HouseholdPage);
    const phone = await vi.waitFor(() => {
      const input = container.querySelector("#household-phone") as HTMLInputElement | null;
      if (!input) throw new Error("no household form yet");
      return input;
    });
    expect(phone.value).toBe("1398765");
    await fireEvent.input(phone, { target: { value: "13987654322" } });
    await fireEvent.click(screen.getByTestId("household-save"));
    await vi.waitFor(() => expect(calls.find((call) => call.command === "resolve_conflict")?.args).toEqual({ id: 5, keepMine: false }));
    expect(calls.find((call) => call.command === "save_household")?.args.household).toMatchObject({ id: "h1", phone: "13987654322" });
  });
});
