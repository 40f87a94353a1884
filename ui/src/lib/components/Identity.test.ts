import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import MemberForm from "./MemberForm.svelte";
import HouseholdForm from "./HouseholdForm.svelte";
import { loadLabels } from "../labels.svelte";
import { locale } from "../i18n.svelte";
import { enumFixture } from "../test-support";

const elsewhere = { reason: "same_id_card", household_id: "h9", head_name: "孙二", village_name: "石门村", member_id: "m9", member_name: "赵小村" };
const sameHead = { reason: "same_head_phone_village", household_id: "h1", head_name: "王建国", village_name: "青山村", member_id: null, member_name: null };

describe("The identity card number", () => {
  let saved: Record<string, unknown>[] = [];

  beforeEach(async () => {
    saved = [];
    locale.language = "zh-CN";
    mockIPC((command, args) => {
      const payload = (args ?? {}) as Record<string, unknown>;
      switch (command) {
        case "enum_labels": return enumFixture;
        case "id_card_facts":
          return payload.number === "530724198503120012" ? { birth_date: "1985-03-12", sex: "male" } : null;
        case "member_duplicates": return (payload.member as Record<string, unknown>).id_card_no === "530724198503120012" ? [elsewhere] : [];
        case "save_member": {
          const member = payload.member as Record<string, unknown>;
          saved.push(member);
          return { ...member, id: "m1" };
        }
        default: throw new Error(`unexpected command ${command}`);
      }
    });
    await loadLabels();
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  it("fills in the birth date and sex it records, so they are not typed twice", async () => {
    const { container } = render(MemberForm, { props: { member: {}, householdId: "h1", onSaved: vi.fn(), onCancel: vi.fn() } });
    await fireEvent.input(container.querySelector("#member-name")!, { target: { value: "赵小村" } });
    await fireEvent.input(container.querySelector("#member-id_card_no")!, { target: { value: "530724198503120012" } });
    await vi.waitFor(() => expect((container.querySelector("#member-birth_date") as HTMLInputElement).value).toBe("1985-03-12"));
    expect((container.querySelector("#member-sex") as HTMLSelectElement).value).toBe("male");
  });

  it("warns before saving a number another member holds, and saves when the user goes on", async () => {
    const onSaved = vi.fn();
    const { container } = render(MemberForm, { props: { member: {}, householdId: "h1", onSaved, onCancel: vi.fn() } });
    await fireEvent.input(container.querySelector("#member-name")!, { target: { value: "赵小村" } });
    await fireEvent.input(container.querySelector("#member-id_card_no")!, { target: { value: "530724198503120012" } });
    await fireEvent.click(screen.getByTestId("member-save"));
    await vi.waitFor(() => expect(screen.getByTestId("duplicate-warning").textContent).toContain("身份证号与「赵小村」相同（户主 孙二，石门村）"));
    expect(saved).toHaveLength(0);
    await fireEvent.click(screen.getByTestId("duplicate-continue"));
    await vi.waitFor(() => expect(saved).toHaveLength(1));
    expect(saved[0]).toMatchObject({ name: "赵小村", id_card_no: "530724198503120012", household_id: "h1" });
    expect(onSaved).toHaveBeenCalledOnce();
  });
});

describe("A second household with the same head, phone and village", () => {
  let saved: Record<string, unknown>[] = [];

  beforeEach(async () => {
    saved = [];
    locale.language = "zh-CN";
    mockIPC((command, args) => {
      const payload = (args ?? {}) as Record<string, unknown>;
      switch (command) {
        case "enum_labels": return enumFixture;
        case "household_duplicates": return [sameHead];
        case "save_household": {
          const household = payload.household as Record<string, unknown>;
          saved.push(household);
          return { ...household, id: "h2" };
        }
        default: throw new Error(`unexpected command ${command}`);
      }
    });
    await loadLabels();
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  it("is shown before it is saved; going back saves nothing", async () => {
    const onSaved = vi.fn();
    render(HouseholdForm, {
      props: {
        household: { head_name: "王建国", phone: "13800138000", village_id: "v1", attribute: "general", poverty_status: "not_exited" },
        villages: [{ id: "v1", name: "青山村" }],
        onSaved,
        onCancel: vi.fn(),
      },
    });
    await fireEvent.click(screen.getByTestId("household-save"));
    await vi.waitFor(() => expect(screen.getByTestId("duplicate-warning").textContent).toContain("同村已有户主「王建国」、电话相同的农户（青山村）"));
    expect(saved).toHaveLength(0);
    await fireEvent.click(screen.getByTestId("duplicate-back"));
    expect(screen.queryByTestId("duplicate-warning")).toBeNull();
    expect(saved).toHaveLength(0);
    await fireEvent.click(screen.getByTestId("household-save"));
    await vi.waitFor(() => expect(screen.getByTestId("duplicate-continue")).toBeTruthy());
    await fireEvent.click(screen.getByTestId("duplicate-continue"));
    await vi.waitFor(() => expect(onSaved).toHaveBeenCalledOnce());
    expect(saved).toHaveLength(1);
  });
});
