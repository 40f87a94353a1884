import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import Training from "./Training.svelte";
import { loadLabels } from "../lib/labels.svelte";
import { locale } from "../lib/i18n.svelte";

// A member of another village attends with a note: the check-in asks for it only when someone
// of another village is ticked, and the attendee list shows it and lets it be corrected.

const enums = [
  { name: "training_format", values: [{ code: "classroom", national: null, zh: "集中授课", en: "Classroom" }] },
  { name: "training_topic", values: [{ code: "pricing", national: null, zh: "定价与成本核算", en: "Pricing and costing" }] },
  { name: "assessment_phase", values: [{ code: "post", national: null, zh: "培训后", en: "After training" }] },
  { name: "attendance_status", values: [{ code: "present", national: null, zh: "出席", en: "Present" }] },
];
const session = { id: "s1", title: "定价培训", topics: ["pricing"], format: "classroom", date: "2026-11-30", village_id: "v1" };
const people: Record<string, { name: string; household: string; village: string; other: boolean }> = {
  m1: { name: "赵小村", household: "h1", village: "青山村", other: false },
  m9: { name: "孙二", household: "h9", village: "石门村", other: true },
};

describe("A note on attendance", () => {
  let checkIns: Record<string, unknown>[] = [];
  let noteSaves: Record<string, unknown>[] = [];
  let rows: Record<string, string | null> = {};

  beforeEach(async () => {
    checkIns = [];
    noteSaves = [];
    rows = {};
    locale.language = "zh-CN";
    mockIPC((command, args) => {
      const payload = (args ?? {}) as Record<string, unknown>;
      switch (command) {
        case "enum_labels": return enums;
        case "list_sessions": return [session];
        case "list_villages": return [{ id: "v1", name: "青山村" }, { id: "v2", name: "石门村" }];
        case "session_assessments": return [];
        case "session_attendees":
          return Object.entries(rows).map(([member, note]) => ({
            id: `a-${member}`, member_id: member, member_name: people[member].name, household_id: people[member].household,
            head_name: people[member].name, village_name: people[member].village, status: "present", minutes_attended: null,
            note, other_village: people[member].other,
          }));
        case "check_in_candidates":
          return Object.entries(people).map(([member, person]) => ({
            member_id: member, member_name: person.name, household_id: person.household, head_name: person.name,
            village_id: person.other ? "v2" : "v1", village_name: person.village, checked_in: member in rows, other_village: person.other,
          }));
        case "check_in_new": {
          checkIns.push(payload);
          for (const member of payload.memberIds as string[]) rows[member] = people[member].other ? (payload.note as string | null) : null;
          return { checked_in: (payload.memberIds as string[]).map((member) => people[member].name), already: [] };
        }
        case "set_attendance_note": {
          noteSaves.push(payload);
          rows[payload.memberId as string] = payload.note as string | null;
          return { id: `a-${payload.memberId}`, note: payload.note };
        }
        case "sync_status": return { online: false, pending: 0, last_sync_at: null, signed_in: true, can_sync: false, open_conflicts: 0, last_error: null, syncing: false, retry_at: null, needs_user: false };
        default: throw new Error(`unexpected command ${command}`);
      }
    });
    await loadLabels();
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  async function openSession() {
    render(Training);
    await vi.waitFor(() => expect(screen.getAllByTestId("session-item")).toHaveLength(1));
    await fireEvent.click(screen.getByTestId("session-item"));
    await vi.waitFor(() => expect(screen.getAllByTestId("member-option")).toHaveLength(2));
  }

  const option = (member: string) => screen.getAllByTestId("member-option").find((input) => input.dataset.memberId === member) as HTMLInputElement;

  it("is asked for only when someone of another village is ticked, and is kept on the check-in", async () => {
    await openSession();
    await fireEvent.click(option("m1"));
    expect(screen.queryByTestId("check-in-note")).toBeNull();
    await fireEvent.click(option("m9"));
    const note = await vi.waitFor(() => screen.getByTestId("check-in-note") as HTMLInputElement);
    expect(note.closest("label")?.textContent).toContain("外村参加说明");
    await fireEvent.input(note, { target: { value: "合作社派来学习" } });
    await fireEvent.click(screen.getByTestId("check-in"));
    await vi.waitFor(() => expect(checkIns).toHaveLength(1));
    expect(checkIns[0]).toMatchObject({ sessionId: "s1", status: "present", note: "合作社派来学习" });
    expect([...(checkIns[0].memberIds as string[])].sort()).toEqual(["m1", "m9"]);
    await vi.waitFor(() => expect(screen.getAllByTestId("attendee")).toHaveLength(2));
    const noteOf = (member: string) =>
      (screen.getAllByTestId("attendee").find((row) => row.dataset.memberId === member)?.querySelector("[data-testid=attendee-note]") as HTMLInputElement).value;
    expect(noteOf("m9")).toBe("合作社派来学习");
    expect(noteOf("m1")).toBe("");
    expect(screen.queryByTestId("check-in-note")).toBeNull();
  });

  it("is not required: checking in without one sends none", async () => {
    await openSession();
    await fireEvent.click(option("m9"));
    await vi.waitFor(() => expect(screen.getByTestId("check-in-note")).not.toBeNull());
    await fireEvent.click(screen.getByTestId("check-in"));
    await vi.waitFor(() => expect(checkIns).toHaveLength(1));
    expect(checkIns[0]).toMatchObject({ memberIds: ["m9"], note: null });
  });

  it("is shown and corrected in the check-in list", async () => {
    rows = { m9: "代表合作社" };
    await openSession();
    await vi.waitFor(() => expect(screen.getAllByTestId("attendee")).toHaveLength(1));
    const note = screen.getByTestId("attendee-note") as HTMLInputElement;
    expect(note.value).toBe("代表合作社");
    await fireEvent.change(note, { target: { value: "代表石门村合作社" } });
    await vi.waitFor(() => expect(noteSaves).toEqual([{ sessionId: "s1", memberId: "m9", note: "代表石门村合作社" }]));
    await vi.waitFor(() => expect(screen.getByTestId("notice").textContent).toBe("备注已保存"));
    // Cleared: an empty note goes as none.
    await fireEvent.change(screen.getByTestId("attendee-note"), { target: { value: "  " } });
    await vi.waitFor(() => expect(noteSaves).toHaveLength(2));
    expect(noteSaves[1]).toEqual({ sessionId: "s1", memberId: "m9", note: null });
  });
});
