import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import Training from "../../../screens/Training.svelte";
import HouseholdPage from "../../../screens/HouseholdPage.svelte";
import { loadLabels } from "../../labels.svelte";
import { locale } from "../../i18n.svelte";
import { nav } from "../../nav.svelte";
import { enumFixture } from "../../test-support";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const syncStatus = { online: false, pending: 0, last_sync_at: null, signed_in: true, can_sync: false, open_conflicts: 0, last_error: null, syncing: false, retry_at: null, needs_user: false };
const enums = [
  ...enumFixture,
  { name: "training_format", values: [{ code: "classroom", national: null, zh: "集中授课", en: "Classroom" }] },
  { name: "training_topic", values: [{ code: "photography", national: null, zh: "商品拍照与主图", en: "Product photography" }] },
  { name: "assessment_phase", values: [{ code: "post", national: null, zh: "培训后", en: "After training" }] },
  { name: "attendance_status", values: [{ code: "present", national: null, zh: "出席", en: "Present" }] },
  { name: "visit_type", values: [{ code: "home", national: null, zh: "入户走访", en: "Home visit" }] },
  { name: "labour_capacity", values: [{ code: "normal", national: null, zh: "普通劳动力", en: "Ordinary labour" }] },
];

const session = { id: "s1", title: "商品拍照培训", topics: ["photography"], format: "classroom", date: "2026-11-30", village_id: "v1", location: "村委会会议室", trainer: "李老师" };
const attendees = [
  { id: "a1", member_id: "m1", member_name: "赵小村", household_id: "h1", head_name: "赵小村", village_name: "青山村", status: "present", minutes_attended: null },
  { id: "a2", member_id: "m2", member_name: "钱桂花", household_id: "h2", head_name: "钱大山", village_name: "青山村", status: "present", minutes_attended: null },
];
const visit = {
  id: "vi1", household_id: "h1", visit_type: "home", visited_at: "2026-11-28T09:30:00+08:00", summary: "核桃长势良好",
  problems: "缺少包装", actions_agreed: "联系合作社统一包装", next_visit_date: "2026-12-10", follow_up_done_on: null,
};
const household = {
  household: { id: "h1", head_name: "赵小村", register_no: "5307241002010001", village_id: "v1", attribute: "general", poverty_status: "not_exited", monitoring_type: "none", main_cause: "illness", phone: "13987654321" },
  members: [
    { id: "m1", household_id: "h1", name: "赵小村", relation: "head", sex: "male", birth_date: "1975-03-02", health: "healthy", labour_capacity: "normal" },
    { id: "m3", household_id: "h1", name: "赵小宝", relation: "son", sex: "male", birth_date: "2008-06-01", health: "healthy" },
  ],
  income_by_year: [
    { year: 2023, by_category: {}, ecommerce_sales_fen: 0, net_fen: 900000, household_size: 3, per_capita_fen: 300000, poverty_line_fen: 400000, above_line: false },
    { year: 2024, by_category: {}, ecommerce_sales_fen: 0, net_fen: 1530000, household_size: 2, per_capita_fen: 765000, poverty_line_fen: 400000, above_line: true },
  ],
  income_records: [], visits: [visit], trainings: [], assessments: [], products: [], listings: [], sales: [],
};

let print = vi.fn();

beforeEach(async () => {
  print = vi.fn();
  vi.stubGlobal("print", print);
  mockIPC((command) => {
    switch (command) {
      case "enum_labels": return enums;
      case "list_sessions": return [session];
      case "list_villages": return [{ id: "v1", name: "青山村" }];
      case "session_attendees": return attendees;
      case "session_assessments": case "check_in_candidates": case "duplicates_of_household": case "record_sync_states": return [];
      case "household_view": return household;
      case "sync_status": return syncStatus;
      default: throw new Error(`unexpected command ${command}`);
    }
  });
  await loadLabels();
});

afterEach(() => {
  cleanup();
  clearMocks();
  vi.unstubAllGlobals();
});

/** The printable document, once it is there: one only, under <body>, out of the app's frame. */
function printed(kind: string): Promise<HTMLElement> {
  return vi.waitFor(() => {
    const documents = document.querySelectorAll<HTMLElement>('[data-testid="print-doc"]');
    expect(documents).toHaveLength(1);
    expect(documents[0].dataset.kind).toBe(kind);
    expect(documents[0].parentElement).toBe(document.body);
    return documents[0];
  });
}

/** The text of each cell of each body row of `table`. */
function rows(table: Element): string[][] {
  return [...table.querySelectorAll("tbody tr")].map((row) => [...row.querySelectorAll("td")].map((cell) => cell.textContent?.trim() ?? ""));
}

describe("Printing", () => {
  it("prints a session's sign-in sheet with its attendees and a blank column to sign, in Chinese and English", async () => {
    locale.language = "zh-CN";
    render(Training);
    await fireEvent.click(await vi.waitFor(() => screen.getByTestId("session-item")));
    await vi.waitFor(() => expect(screen.getAllByTestId("attendee")).toHaveLength(2));
    await fireEvent.click(screen.getByTestId("print-session"));
    await vi.waitFor(() => expect(print).toHaveBeenCalledOnce());

    const sheet = await printed("sign-in");
    expect(sheet.querySelector("h1")?.textContent).toBe("培训签到表");
    const text = sheet.textContent ?? "";
    for (const fact of ["培训名称：商品拍照培训", "日期：2026-11-30", "地点：青山村 · 村委会会议室", "讲师：李老师", "签到人数：2 人"]) expect(text).toContain(fact);
    const table = sheet.querySelector('[data-testid="print-sign-in"]')!;
    expect([...table.querySelectorAll("th")].map((cell) => cell.textContent)).toEqual(["序号", "姓名", "所属农户（户主）", "村", "签名"]);
    expect(rows(table).slice(0, 2)).toEqual([["1", "赵小村", "赵小村", "青山村", ""], ["2", "钱桂花", "钱大山", "青山村", ""]]);
    expect(sheet.querySelectorAll('[data-testid="print-blank-row"]').length).toBeGreaterThan(0);

    locale.language = "en";
    await vi.waitFor(() => expect(sheet.querySelector("h1")?.textContent).toBe("Training sign-in sheet"));
    expect([...table.querySelectorAll("th")].map((cell) => cell.textContent)).toEqual(["No.", "Name", "Household (head)", "Village", "Signature"]);
    expect(sheet.textContent).toContain("Trainer: 李老师");
    expect(sheet.textContent).toContain("Checked in: 2 people");
    expect(screen.getByTestId("print-session").textContent).toBe("Print");
  });

  it("prints a household's card: the register entry, the members and the latest income against the line", async () => {
    locale.language = "zh-CN";
    nav.householdId = "h1";
    render(HouseholdPage);
    await fireEvent.click(await vi.waitFor(() => screen.getByTestId("print-household")));
    await vi.waitFor(() => expect(print).toHaveBeenCalledOnce());

    const card = await printed("household-card");
    expect(card.querySelector("h1")?.textContent).toBe("户卡");
    const text = card.textContent ?? "";
    for (const fact of ["户主姓名：赵小村", "户编号：5307241002010001", "所在村：青山村", "脱贫状态：未脱贫", "主要致贫原因：因病", "联系电话：13987654321"]) {
      expect(text).toContain(fact);
    }
    expect(rows(card.querySelector('[data-testid="print-members"]')!)).toEqual([
      ["1", "赵小村", "户主", "男", "1975-03-02", "健康", "普通劳动力"],
      ["2", "赵小宝", "之子", "男", "2008-06-01", "健康", ""],
    ]);
    expect(rows(card.querySelector('[data-testid="print-income"]')!)).toEqual([["2024", "15,300.00", "2", "7,650.00", "4,000.00"]]);
    expect(card.querySelector('[data-testid="print-verdict"]')?.textContent).toBe("2024 年人均纯收入 7,650.00 元，高于贫困线（4,000.00 元）3,650.00 元");

    locale.language = "en";
    await vi.waitFor(() => expect(card.querySelector("h1")?.textContent).toBe("Household card"));
    expect(card.textContent).toContain("Head of household: 赵小村");
    expect(card.textContent).toContain("Net household income (yuan)");
    expect(card.querySelector('[data-testid="print-verdict"]')?.textContent).toContain("above the poverty line");
  });

  it("prints a visit's record with lines to sign", async () => {
    locale.language = "zh-CN";
    nav.householdId = "h1";
    render(HouseholdPage);
    await fireEvent.click(await vi.waitFor(() => screen.getByTestId("print-visit")));
    await vi.waitFor(() => expect(print).toHaveBeenCalledOnce());

    const record = await printed("visit");
    expect(record.querySelector("h1")?.textContent).toBe("走访记录");
    const text = record.textContent ?? "";
    for (const fact of ["户主姓名：赵小村", "走访时间：2026-11-28 09:30", "走访方式：入户走访", "走访人签名：", "农户签名："]) expect(text).toContain(fact);
    const table = record.querySelector('[data-testid="print-visit"]')!;
    expect([...table.querySelectorAll("tr")].map((row) => [row.querySelector("th")?.textContent, row.querySelector("td")?.textContent])).toEqual([
      ["情况摘要", "核桃长势良好"], ["存在问题", "缺少包装"], ["商定措施", "联系合作社统一包装"], ["下次走访日期", "2026-12-10"],
    ]);

    locale.language = "en";
    await vi.waitFor(() => expect(record.querySelector("h1")?.textContent).toBe("Visit record"));
    expect(record.textContent).toContain("Visit type: Home visit");
    expect(record.textContent).toContain("Visitor's signature:");

    // The household's card replaces it: one document prints at a time.
    await fireEvent.click(screen.getByTestId("print-household"));
    await printed("household-card");
    expect(print).toHaveBeenCalledTimes(2);
  });

  it("has a print stylesheet that prints the document alone, on A4, and never shows it on screen", () => {
    const css = readFileSync(join(__dirname, "../../../app.css"), "utf8");
    const print = css.slice(css.indexOf("@media print"));
    expect(css).toMatch(/\.print-doc \{ display: none; \}/);
    expect(print).toMatch(/@page \{ size: A4/);
    expect(print).toMatch(/body > :not\(\.print-doc\) \{ display: none !important; \}/);
    expect(print).toMatch(/\.print-doc \{ display: block;/);
  });
});
