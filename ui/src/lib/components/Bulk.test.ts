import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import CheckInPanel from "./CheckInPanel.svelte";
import ScoreSheet from "./ScoreSheet.svelte";
import { loadLabels } from "../labels.svelte";
import { locale } from "../i18n.svelte";

const enums = [
  { name: "training_topic", values: [{ code: "pricing", national: null, zh: "定价与成本核算", en: "Pricing and costing" }, { code: "packaging", national: null, zh: "包装", en: "Packaging" }] },
  { name: "assessment_phase", values: [{ code: "pre", national: null, zh: "培训前", en: "Before training" }, { code: "post", national: null, zh: "培训后", en: "After training" }] },
];
const session = { id: "s1", title: "定价培训", topics: ["pricing", "packaging"], format: "classroom", date: "2026-11-30", village_id: "v1" };
const villages = [{ id: "v1", name: "青山村" }, { id: "v2", name: "石门村" }];
const candidate = (member: string, name: string, household: string, head: string, checked = false, other = false) => ({
  member_id: member, member_name: name, household_id: household, head_name: head,
  village_id: other ? "v2" : "v1", village_name: other ? "石门村" : "青山村", checked_in: checked, other_village: other,
});

describe("Check-in of a village", () => {
  let checkedIn: string[][] = [];

  beforeEach(async () => {
    checkedIn = [];
    locale.language = "zh-CN";
    mockIPC((command, args) => {
      const payload = (args ?? {}) as Record<string, unknown>;
      if (command === "enum_labels") return enums;
      if (command === "check_in_candidates") {
        if (payload.text === "孙二") return [candidate("m9", "孙二", "h9", "孙二", false, true)];
        return [candidate("m1", "赵小村", "h1", "赵小村"), candidate("m2", "钱桂花", "h1", "赵小村"), candidate("m3", "李大山", "h2", "李大山", true)];
      }
      if (command === "check_in_new") {
        const ids = payload.memberIds as string[];
        checkedIn.push(ids);
        return { checked_in: ids.filter((id) => id !== "m3").map((id) => ({ m1: "赵小村", m2: "钱桂花", m9: "孙二" })[id] ?? id), already: ids.includes("m3") ? ["李大山"] : [] };
      }
      throw new Error(`unexpected command ${command}`);
    });
    await loadLabels();
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  it("lists the village's members without a search and checks a household in at once", async () => {
    const onCheckedIn = vi.fn();
    render(CheckInPanel, { props: { session, villages, onCheckedIn } });
    await vi.waitFor(() => expect(screen.getAllByTestId("member-option")).toHaveLength(3));
    const done = screen.getAllByTestId("member-option").find((input) => input.dataset.memberId === "m3") as HTMLInputElement;
    expect(done.disabled).toBe(true);
    expect(done.closest("label")?.textContent).toContain("已签到");
    await fireEvent.click(screen.getAllByTestId("tick-household")[0]);
    await vi.waitFor(() => expect(screen.getByTestId("check-in").textContent).toBe("签到所选（2 人）"));
    await fireEvent.click(screen.getByTestId("check-in"));
    await vi.waitFor(() => expect(checkedIn).toEqual([["m1", "m2"]]));
    expect(screen.getByTestId("check-in-notice").textContent).toBe("已签到 2 人");
    await vi.waitFor(() => expect(onCheckedIn).toHaveBeenCalledOnce());
  });

  it("finds a member of another village by name and says where they live", async () => {
    render(CheckInPanel, { props: { session, villages, onCheckedIn: vi.fn() } });
    await vi.waitFor(() => expect(screen.getAllByTestId("member-option")).toHaveLength(3));
    await fireEvent.input(screen.getByTestId("member-search"), { target: { value: "孙二" } });
    await vi.waitFor(() => expect(screen.getAllByTestId("member-option")).toHaveLength(1));
    expect(screen.getByTestId("other-village").textContent).toBe("外村：石门村");
  });
});

describe("The score sheet", () => {
  let saved: unknown[] = [];

  beforeEach(async () => {
    saved = [];
    locale.language = "zh-CN";
    mockIPC((command, args) => {
      const payload = (args ?? {}) as Record<string, unknown>;
      if (command === "enum_labels") return enums;
      if (command === "save_scores") {
        saved.push(payload);
        return 3;
      }
      throw new Error(`unexpected command ${command}`);
    });
    await loadLabels();
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  const attendees = ["赵小村", "钱桂花"].map((name, index) => ({
    id: `a${index}`, member_id: `m${index + 1}`, member_name: name, household_id: "h1", head_name: "赵小村", village_name: "青山村", status: "present", minutes_attended: null,
  }));

  it("has attendees down and topics across, moves down on Enter, and saves once when every cell is good", async () => {
    const onSaved = vi.fn();
    const scores = [{ id: "x", member_id: "m1", session_id: "s1", topic: "pricing", phase: "post", score: 70, assessed_on: "2026-11-30" }];
    render(ScoreSheet, { props: { session, attendees, scores, onSaved } });
    const cells = () => screen.getAllByTestId("score-cell") as HTMLInputElement[];
    await vi.waitFor(() => expect(cells()).toHaveLength(4));
    expect(cells()[0].value).toBe("70");
    cells()[0].focus();
    await fireEvent.keyDown(cells()[0], { key: "Enter" });
    expect(document.activeElement).toBe(cells()[2]);
    await fireEvent.input(cells()[1], { target: { value: "85.5" } });
    await fireEvent.input(cells()[2], { target: { value: "90" } });
    await fireEvent.click(screen.getByTestId("save-scores"));
    await vi.waitFor(() => expect(screen.getByTestId("score-cell-error").textContent).toBe("分数应为0到100的整数"));
    expect(saved).toHaveLength(0);
    await fireEvent.input(cells()[1], { target: { value: "85" } });
    await fireEvent.click(screen.getByTestId("save-scores"));
    await vi.waitFor(() => expect(saved).toHaveLength(1));
    expect(saved[0]).toEqual({
      sessionId: "s1",
      phase: "post",
      entries: [
        { member_id: "m1", topic: "pricing", score: 70 },
        { member_id: "m1", topic: "packaging", score: 85 },
        { member_id: "m2", topic: "pricing", score: 90 },
        { member_id: "m2", topic: "packaging", score: null },
      ],
    });
    expect(screen.getByTestId("scores-notice").textContent).toBe("成绩已保存");
    expect(onSaved).toHaveBeenCalledOnce();
  });
});
