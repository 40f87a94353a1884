import { afterEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import HouseholdPage from "./HouseholdPage.svelte";
import { loadLabels } from "../lib/labels.svelte";
import { locale } from "../lib/i18n.svelte";
import { nav } from "../lib/nav.svelte";
import { enumFixture } from "../lib/test-support";

afterEach(() => {
  cleanup();
  clearMocks();
});

describe("Identity card numbers on a household's page", () => {
  it("show masked, and whole only when asked, through the core that records it", async () => {
    locale.language = "zh-CN";
    const reveals: unknown[] = [];
    mockIPC((command, args) => {
      switch (command) {
        case "enum_labels": return enumFixture;
        case "list_villages": return [{ id: "v1", name: "青山村" }];
        case "household_view":
          return {
            household: { id: "h1", head_name: "龚秀芝", village_id: "v1", attribute: "general", poverty_status: "not_exited" },
            members: [{ id: "m1", household_id: "h1", name: "龚秀芝", relation: "head", id_card_no: "530724198506120018" }],
            income_by_year: [], income_records: [], visits: [], trainings: [], assessments: [], products: [], listings: [], sales: [],
          };
        case "duplicates_of_household": return [];
        case "record_sync_states": return [];
        case "sync_status": return { online: false, pending: 0, last_sync_at: null, signed_in: true, can_sync: false, open_conflicts: 0, last_error: null };
        case "reveal_id_card":
          reveals.push(args);
          return "530724198506120018";
        default: throw new Error(`unexpected command ${command}`);
      }
    });
    await loadLabels();
    nav.householdId = "h1";
    render(HouseholdPage);
    const shown = await vi.waitFor(() => screen.getByTestId("member-id-card"));
    expect(shown.textContent).toBe("5307**********0018");
    expect(document.body.textContent).not.toContain("530724198506120018");
    await fireEvent.click(screen.getByTestId("reveal-id-card"));
    await vi.waitFor(() => expect(screen.getByTestId("member-id-card").textContent).toBe("530724198506120018"));
    expect(reveals).toEqual([{ memberId: "m1" }]);
  });
});
