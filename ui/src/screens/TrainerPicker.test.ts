import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import Training from "./Training.svelte";
import { loadLabels } from "../lib/labels.svelte";
import { locale } from "../lib/i18n.svelte";

const enums = [
  { name: "training_format", values: [{ code: "classroom", national: null, zh: "集中授课", en: "Classroom" }] },
  { name: "training_topic", values: [{ code: "photography", national: null, zh: "商品拍照与主图", en: "Product photography" }] },
  { name: "assessment_phase", values: [{ code: "post", national: null, zh: "培训后", en: "After training" }] },
  { name: "attendance_status", values: [{ code: "present", national: null, zh: "出席", en: "Present" }] },
];

describe("The session form's trainer", () => {
  let saved: Record<string, unknown>[] = [];
  let asked: unknown[] = [];
  let villagesListed = false;

  beforeEach(async () => {
    saved = [];
    asked = [];
    villagesListed = false;
    locale.language = "zh-CN";
    mockIPC((command, args) => {
      const payload = (args ?? {}) as Record<string, unknown>;
      switch (command) {
        case "enum_labels": return enums;
        case "list_sessions": return saved.map((session) => ({ ...session, id: "s9" }));
        case "list_villages":
          villagesListed = true;
          return [{ id: "v1", name: "青山村" }];
        case "trainer_candidates":
          asked.push(payload.villageId);
          return [
            { member_id: "m1", member_name: "王大山", head_name: "王大山", village_name: "高坡村", trained: true },
            { member_id: "m2", member_name: "李二妹", head_name: "李二妹", village_name: "青山村", trained: false },
          ];
        case "save_session": {
          const session = payload.session as Record<string, unknown>;
          saved.push(session);
          return { ...session, id: "s9" };
        }
        case "session_attendees": return [];
        case "session_assessments": return [];
        case "check_in_candidates": return [];
        case "sync_status": return { online: false, pending: 0, last_sync_at: null, signed_in: true, can_sync: false, open_conflicts: 0, last_error: null, syncing: false, retry_at: null, needs_user: false };
        default: return null;
      }
    });
    await loadLabels();
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  it("is the assistant unless a trained farmer or a village member is picked, and is saved by reference", async () => {
    const { container } = render(Training);
    // The form opens once the villages are known, as a user sees them.
    await vi.waitFor(() => expect(villagesListed).toBe(true));
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(asked).toEqual([]);
    await fireEvent.click(await screen.findByTestId("new-session"));
    const picker = (await screen.findByTestId("trainer-picker")) as HTMLSelectElement;
    await vi.waitFor(() => expect(picker.querySelectorAll("option")).toHaveLength(3));
    expect(asked).toContain("v1");
    const groups = [...picker.querySelectorAll("optgroup")].map((group) => [group.label, [...group.querySelectorAll("option")].map((option) => option.textContent)]);
    expect(groups).toEqual([["已培训农户", ["王大山（高坡村）"]], ["本村其他成员", ["李二妹（李二妹）"]]]);
    expect(picker.selectedOptions[0].textContent).toBe("助理本人");

    await fireEvent.input(container.querySelector("#session-title")!, { target: { value: "农户互教：拍照" } });
    await fireEvent.click(container.querySelector('[data-topic="photography"]')!);
    picker.selectedIndex = 1;
    await fireEvent.change(picker);
    await fireEvent.click(screen.getByTestId("session-save"));
    await vi.waitFor(() => expect(saved).toHaveLength(1));
    expect(saved[0]).toMatchObject({ title: "农户互教：拍照", trainer_member_id: "m1", village_id: "v1" });
  });
});
