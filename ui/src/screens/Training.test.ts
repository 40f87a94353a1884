import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import Training from "./Training.svelte";
import { loadLabels } from "../lib/labels.svelte";
import { locale } from "../lib/i18n.svelte";

const enums = [
  { name: "training_format", values: [{ code: "classroom", national: null, zh: "集中授课", en: "Classroom" }] },
  { name: "training_topic", values: [{ code: "photography", national: null, zh: "商品拍照与主图", en: "Product photography" }] },
  { name: "assessment_phase", values: [{ code: "pre", national: null, zh: "培训前", en: "Before training" }, { code: "post", national: null, zh: "培训后", en: "After training" }] },
  { name: "attendance_status", values: [{ code: "present", national: null, zh: "出席", en: "Present" }, { code: "late", national: null, zh: "迟到", en: "Late" }] },
];

const session = { id: "s1", title: "商品拍照培训", topics: ["photography"], format: "classroom", date: "2026-11-30", village_id: "v1" };
const people = [
  { member: "m1", name: "赵小村", head: "赵小村" },
  { member: "m2", name: "钱桂花", head: "赵小村" },
  { member: "m3", name: "赵小宝", head: "赵小村" },
];

/** The store as the app finds it after a restart: three people checked in, no search typed. */
function mockStore(saves: Record<string, unknown>[]) {
  mockIPC((command, args) => {
    const payload = (args ?? {}) as Record<string, unknown>;
    switch (command) {
      case "enum_labels": return enums;
      case "list_sessions": return [session];
      case "list_villages": return [{ id: "v1", name: "青山村" }];
      case "session_attendance":
        return people.map((person) => ({ id: `a-${person.member}`, session_id: "s1", member_id: person.member, status: "present" }));
      case "session_attendees":
        return people.map((person) => ({
          id: `a-${person.member}`, member_id: person.member, member_name: person.name, household_id: "h1",
          head_name: person.head, village_name: "青山村", status: "present", minutes_attended: null,
        }));
      case "session_assessments": return [];
      case "check_in_candidates": return [];
      case "sync_status": return { online: false, pending: 0, last_sync_at: null, signed_in: true, can_sync: false, open_conflicts: 0, last_error: null, syncing: false, retry_at: null, needs_user: false };
      case "save_assessment": {
        const assessment = payload.assessment as Record<string, unknown>;
        // What the desktop shell does with a score that is not a whole number: the command's
        // arguments cannot be read, and the answer is a bare string.
        if (typeof assessment.score === "number" && !Number.isInteger(assessment.score))
          throw "invalid args `assessment` for command `save_assessment`: invalid type: floating point `85.5`, expected i64";
        const fields = [];
        if (!assessment.member_id) fields.push({ field: "member_id", code: "required", message_zh: "必填", message_en: "is required" });
        if (assessment.score === null || assessment.score === undefined) fields.push({ field: "score", code: "required", message_zh: "必填", message_en: "is required" });
        if (fields.length) throw { code: "validation", message: "validation failed", message_zh: "填写有误：必填", message_en: "Please correct: is required", fields };
        saves.push(assessment);
        return { ...assessment, id: "x1" };
      }
      default: throw new Error(`unexpected command ${command}`);
    }
  });
}

async function openSession(container: HTMLElement) {
  await vi.waitFor(() => expect(screen.getAllByTestId("session-item")).toHaveLength(1));
  await fireEvent.click(screen.getByTestId("session-item"));
  await vi.waitFor(() => expect(container.querySelectorAll("#assess-member option")).toHaveLength(4));
}

describe("Training after a restart", () => {
  let saves: Record<string, unknown>[] = [];

  beforeEach(async () => {
    saves = [];
    locale.language = "zh-CN";
    mockStore(saves);
    await loadLabels();
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  it("lists the attendees and the people to score by name, not by id", async () => {
    const { container } = render(Training);
    await openSession(container);
    const choices = [...container.querySelectorAll("#assess-member option")].map((option) => option.textContent ?? "");
    for (const person of people) {
      expect(choices.some((choice) => choice.includes(person.name)), `${person.name} in ${choices}`).toBe(true);
    }
    expect(choices.some((choice) => /[0-9a-f]{2}-/.test(choice) || choice.includes("m1"))).toBe(false);
    expect(screen.getByTestId("session-title").closest(".panel")?.textContent).toContain("赵小宝");
  });

  it("refuses a decimal score beside the field and shows 必填 for a member not chosen", async () => {
    const { container } = render(Training);
    await openSession(container);
    await fireEvent.input(container.querySelector("#assess-score")!, { target: { value: "85.5" } });
    await fireEvent.click(screen.getByTestId("assessment-save"));
    await vi.waitFor(() => expect(container.querySelector('[data-error-for="assess-score"]')?.textContent).toBe("分数应为0到100的整数"));
    expect(container.querySelector('[data-error-for="assess-member"]')?.textContent).toBe("必填");
    expect(saves).toHaveLength(0);

    // Fixed: a whole score for a chosen person is saved.
    await fireEvent.change(container.querySelector("#assess-member")!, { target: { value: "m3" } });
    await fireEvent.input(container.querySelector("#assess-score")!, { target: { value: "85" } });
    await fireEvent.click(screen.getByTestId("assessment-save"));
    await vi.waitFor(() => expect(saves).toHaveLength(1));
    expect(saves[0]).toMatchObject({ member_id: "m3", score: 85, session_id: "s1", phase: "post" });
    expect(container.querySelector('[data-error-for="assess-score"]')).toBeNull();
  });
});
