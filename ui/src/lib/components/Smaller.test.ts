import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import IncomeChart from "./IncomeChart.svelte";
import VisitForm from "./VisitForm.svelte";
import { loadLabels } from "../labels.svelte";
import { locale } from "../i18n.svelte";

afterEach(() => {
  cleanup();
  clearMocks();
});

describe("The income chart", () => {
  const years = [
    { year: 2023, by_category: {}, ecommerce_sales_fen: 0, net_fen: 900_000, household_size: 3, per_capita_fen: 300_000, poverty_line_fen: 400_000, above_line: false },
    { year: 2024, by_category: {}, ecommerce_sales_fen: 0, net_fen: 2_130_000, household_size: 3, per_capita_fen: 710_000, poverty_line_fen: 400_000, above_line: true },
  ];

  it("shows the line's value and the latest year's verdict, in both languages", () => {
    locale.language = "zh-CN";
    render(IncomeChart, { props: { years } });
    expect(screen.getByTestId("income-verdict").textContent).toBe("2024 年人均纯收入 7,100.00 元，高于贫困线（4,000.00 元）3,100.00 元");
    expect(screen.getAllByTestId("line-value").map((text) => text.textContent)).toEqual(["4000", "4000"]);
    cleanup();
    locale.language = "en";
    render(IncomeChart, { props: { years: years.slice(0, 1) } });
    expect(screen.getByTestId("income-verdict").textContent).toBe("2023: 3,000.00 yuan per person, 1,000.00 yuan below the poverty line (4,000.00 yuan)");
  });
});

describe("A visit's time", () => {
  let saved: unknown[] = [];

  beforeEach(async () => {
    saved = [];
    locale.language = "zh-CN";
    mockIPC((command, args) => {
      if (command === "enum_labels") return [{ name: "visit_type", values: [{ code: "home", national: null, zh: "入户走访", en: "Home visit" }] }];
      if (command === "save_visit") {
        saved.push((args as { visit: unknown }).visit);
        return (args as { visit: unknown }).visit;
      }
      throw new Error(`unexpected command ${command}`);
    });
    await loadLabels();
  });

  it("is typed as a date and a time, and a mistake is told in those words", async () => {
    const { container } = render(VisitForm, { props: { householdId: "h1", onSaved: vi.fn(), onCancel: vi.fn() } });
    await fireEvent.input(container.querySelector("#visit-visited_at")!, { target: { value: "2026年11月30日" } });
    await fireEvent.input(container.querySelector("#visit-time")!, { target: { value: "九点半" } });
    await fireEvent.click(screen.getByTestId("visit-save"));
    const error = await vi.waitFor(() => {
      const element = container.querySelector('[data-error-for="visit-visited_at"]');
      if (!element) throw new Error("no error yet");
      return element;
    });
    expect(error.textContent).toBe("日期请按 年-月-日 填写，时间按 时:分，如 2026-03-01 09:30");
    expect(error.textContent).not.toContain("T09:30:00");
    expect(saved).toHaveLength(0);
    await fireEvent.input(container.querySelector("#visit-time")!, { target: { value: "9:30" } });
    await fireEvent.click(screen.getByTestId("visit-save"));
    await vi.waitFor(() => expect(saved).toHaveLength(1));
    expect((saved[0] as { visited_at: string }).visited_at.slice(0, 16)).toBe("2026-11-30T09:30");
  });
});

describe("Escape in a form", () => {
  it("closes an unchanged form at once, and asks before discarding changes", async () => {
    locale.language = "zh-CN";
    const { enumFixture } = await import("../test-support");
    mockIPC((command) => {
      if (command === "enum_labels") return enumFixture;
      throw new Error(`unexpected command ${command}`);
    });
    await loadLabels();
    const HouseholdForm = (await import("./HouseholdForm.svelte")).default;
    const onCancel = vi.fn();
    const household = { id: "h1", head_name: "王建国", village_id: "v1", attribute: "general", poverty_status: "not_exited" };
    const { container } = render(HouseholdForm, { props: { household, villages: [{ id: "v1", name: "青山村" }], onSaved: vi.fn(), onCancel } });
    const head = container.querySelector("#household-head_name") as HTMLInputElement;
    await fireEvent.keyDown(head, { key: "Escape" });
    expect(onCancel).toHaveBeenCalledOnce();

    await fireEvent.input(head, { target: { value: "王建军" } });
    await fireEvent.keyDown(head, { key: "Escape" });
    expect(onCancel).toHaveBeenCalledOnce();
    expect(screen.getByTestId("confirm-dialog").textContent).toContain("放弃修改？");
    await fireEvent.click(screen.getByTestId("confirm-cancel"));
    expect(screen.queryByTestId("confirm-dialog")).toBeNull();
    expect(head.value).toBe("王建军");
    await fireEvent.keyDown(head, { key: "Escape" });
    await fireEvent.click(screen.getByTestId("confirm-ok"));
    expect(onCancel).toHaveBeenCalledTimes(2);
  });
});
