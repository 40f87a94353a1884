import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import IncomeForm from "./IncomeForm.svelte";
import { loadLabels } from "../labels.svelte";
import { locale } from "../i18n.svelte";
import { enumFixture } from "../test-support";

describe("IncomeForm", () => {
  let calls: { command: string; args: Record<string, unknown> }[] = [];

  beforeEach(async () => {
    calls = [];
    locale.language = "zh-CN";
    mockIPC((command, args) => {
      if (command === "enum_labels") return enumFixture;
      if (command === "record_income" || command === "correct_income") {
        const record = (args as { record: Record<string, unknown> }).record;
        calls.push({ command, args: args as Record<string, unknown> });
        if (record.category === null) {
          throw {
            code: "validation", message: "validation failed", message_zh: "填写有误", message_en: "Please correct",
            fields: [{ field: "category", code: "required", message_zh: "必填", message_en: "is required" }],
          };
        }
        return { ...record, id: "i2" };
      }
      throw new Error(`unexpected command ${command}`);
    });
    await loadLabels();
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  it("checks the typed amount beside its field, shows the core's errors beside theirs, then records fen and grams", async () => {
    const onSaved = vi.fn();
    const { container } = render(IncomeForm, { props: { householdId: "h1", members: [], onSaved, onCancel: vi.fn() } });
    const amount = container.querySelector("#income-amount") as HTMLInputElement;
    await fireEvent.input(amount, { target: { value: "12.345" } });
    await fireEvent.click(screen.getByTestId("income-save"));
    await vi.waitFor(() =>
      expect(container.querySelector('[data-error-for="income-amount"]')?.textContent).toBe("请输入金额，最多两位小数"),
    );
    expect(calls).toHaveLength(0);

    await fireEvent.input(amount, { target: { value: "3250.5" } });
    await fireEvent.click(screen.getByTestId("income-save"));
    await vi.waitFor(() => expect(container.querySelector('[data-error-for="income-category"]')?.textContent).toBe("必填"));
    expect(container.querySelector('[data-error-for="income-amount"]')).toBeNull();

    await fireEvent.change(container.querySelector("#income-category")!, { target: { value: "operating" } });
    await fireEvent.input(container.querySelector("#income-year")!, { target: { value: "2025" } });
    await fireEvent.input(container.querySelector("#income-quantity")!, { target: { value: "12.5" } });
    await fireEvent.input(container.querySelector("#income-item")!, { target: { value: "核桃" } });
    await fireEvent.click(screen.getByTestId("income-save"));
    await vi.waitFor(() => expect(onSaved).toHaveBeenCalledOnce());
    const last = calls[calls.length - 1];
    expect(last.command).toBe("record_income");
    expect(last.args.record).toMatchObject({
      household_id: "h1", year: 2025, category: "operating", amount_fen: 325050, quantity_g: 12500, item: "核桃", period: "Y",
    });
  });

  it("records a correction as a new record naming the one it replaces", async () => {
    const onSaved = vi.fn();
    const old = { id: "i1", household_id: "h1", year: 2024, category: "wage" as const, amount_fen: 1020000, recorded_on: "2024-12-20" };
    const { container } = render(IncomeForm, { props: { householdId: "h1", corrects: old, onSaved, onCancel: vi.fn() } });
    expect(container.textContent).toContain("收入记录只增不改");
    const amount = container.querySelector("#income-amount") as HTMLInputElement;
    expect(amount.value).toBe("10200.00");
    await fireEvent.input(amount, { target: { value: "11000" } });
    // Enter in a picker saves too.
    await fireEvent.keyDown(container.querySelector("#income-category")!, { key: "Enter" });
    await vi.waitFor(() => expect(onSaved).toHaveBeenCalledOnce());
    expect(calls[0].command).toBe("correct_income");
    expect(calls[0].args.correctsId).toBe("i1");
    expect(calls[0].args.record).toMatchObject({ year: 2024, category: "wage", amount_fen: 1100000 });
    expect((calls[0].args.record as Record<string, unknown>).id).toBeUndefined();
  });

  it("shows its own checks in English and, on Escape, asks before discarding what was typed", async () => {
    locale.language = "en";
    const onCancel = vi.fn();
    const { container } = render(IncomeForm, { props: { householdId: "h1", onSaved: vi.fn(), onCancel } });
    await fireEvent.input(container.querySelector("#income-quantity")!, { target: { value: "two" } });
    await fireEvent.click(screen.getByTestId("income-save"));
    await vi.waitFor(() =>
      expect(container.querySelector('[data-error-for="income-quantity"]')?.textContent).toBe("Enter a weight in kg with at most three decimals"),
    );
    await fireEvent.keyDown(container.querySelector("#income-amount")!, { key: "Escape" });
    expect(onCancel).not.toHaveBeenCalled();
    expect(screen.getByTestId("confirm-dialog").textContent).toContain("Discard the changes?");
    await fireEvent.click(screen.getByTestId("confirm-ok"));
    expect(onCancel).toHaveBeenCalledOnce();
  });
});
