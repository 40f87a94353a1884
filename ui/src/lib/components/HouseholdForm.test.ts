import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import HouseholdForm from "./HouseholdForm.svelte";
import { loadLabels } from "../labels.svelte";
import { locale } from "../i18n.svelte";
import { enumFixture } from "../test-support";

const phoneError = {
  code: "validation",
  message: "validation failed: phone: invalid_phone",
  message_zh: "填写有误：手机号应为11位数字，以1开头",
  message_en: "Please correct: must be an 11-digit mobile number starting with 1",
  fields: [
    { field: "phone", code: "invalid_phone", message_zh: "手机号应为11位数字，以1开头", message_en: "must be an 11-digit mobile number starting with 1" },
  ],
};

const villages = [{ id: "v1", name: "演示·青山村" }];

describe("HouseholdForm", () => {
  let saved: Record<string, unknown>[] = [];

  beforeEach(async () => {
    saved = [];
    locale.language = "zh-CN";
    mockIPC((command, args) => {
      if (command === "enum_labels") return enumFixture;
      if (command === "save_household") {
        const household = (args as { household: Record<string, unknown> }).household;
        if (household.phone !== "13800138000") throw phoneError;
        saved.push(household);
        return { ...household, id: "h1" };
      }
      throw new Error(`unexpected command ${command}`);
    });
    await loadLabels();
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  it("shows the core's error beside the phone field, in Chinese, then saves once fixed", async () => {
    const onSaved = vi.fn();
    const { container } = render(HouseholdForm, {
      props: { household: { head_name: "王建国", village_id: "v1", attribute: "general", poverty_status: "not_exited" }, villages, onSaved, onCancel: vi.fn() },
    });
    const phone = container.querySelector("#household-phone") as HTMLInputElement;
    await fireEvent.input(phone, { target: { value: "12345" } });
    await fireEvent.click(screen.getByTestId("household-save"));
    const error = await vi.waitFor(() => {
      const element = container.querySelector('[data-error-for="household-phone"]');
      if (!element) throw new Error("no error yet");
      return element;
    });
    expect(error.textContent).toBe("手机号应为11位数字，以1开头");
    // The message sits inside the phone field's own block, right after its input.
    expect(error.closest(".field")?.querySelector("#household-phone")).toBe(phone);
    expect(container.querySelectorAll("[data-error-for]").length).toBe(1);
    expect(onSaved).not.toHaveBeenCalled();

    await fireEvent.input(phone, { target: { value: "13800138000" } });
    await fireEvent.click(screen.getByTestId("household-save"));
    await vi.waitFor(() => expect(onSaved).toHaveBeenCalledOnce());
    expect(saved[0]).toMatchObject({ head_name: "王建国", phone: "13800138000" });
  });

  it("shows the error in English when English is chosen", async () => {
    locale.language = "en";
    const { container } = render(HouseholdForm, {
      props: { household: { head_name: "Wang", phone: "1" }, villages, onSaved: vi.fn(), onCancel: vi.fn() },
    });
    await fireEvent.click(screen.getByTestId("household-save"));
    await vi.waitFor(() =>
      expect(container.querySelector('[data-error-for="household-phone"]')?.textContent).toBe("must be an 11-digit mobile number starting with 1"),
    );
  });

  it("saves once when Enter is pressed again while the first save is under way", async () => {
    let calls = 0;
    let finish: (value: unknown) => void = () => {};
    mockIPC((command, args) => {
      if (command === "enum_labels") return enumFixture;
      if (command === "save_household") {
        calls += 1;
        const household = (args as { household: Record<string, unknown> }).household;
        return new Promise((resolve) => {
          finish = () => resolve({ ...household, id: "h9" });
        });
      }
      throw new Error(`unexpected command ${command}`);
    });
    const onSaved = vi.fn();
    const { container } = render(HouseholdForm, {
      props: { household: { head_name: "王建国", village_id: "v1", attribute: "general", poverty_status: "not_exited" }, villages, onSaved, onCancel: vi.fn() },
    });
    const picker = container.querySelector("#household-village_id")!;
    await fireEvent.keyDown(picker, { key: "Enter" });
    await fireEvent.keyDown(picker, { key: "Enter" });
    await fireEvent.click(screen.getByTestId("household-save"));
    await vi.waitFor(() => expect(calls).toBe(1));
    expect((screen.getByTestId("household-save") as HTMLButtonElement).disabled).toBe(true);
    finish(undefined);
    await vi.waitFor(() => expect(onSaved).toHaveBeenCalledOnce());
    expect(calls).toBe(1);
    expect((screen.getByTestId("household-save") as HTMLButtonElement).disabled).toBe(false);
  });

  it("cancels on Escape", async () => {
    const onCancel = vi.fn();
    const { container } = render(HouseholdForm, { props: { household: {}, villages, onSaved: vi.fn(), onCancel } });
    await fireEvent.keyDown(container.querySelector("#household-phone")!, { key: "Escape" });
    expect(onCancel).toHaveBeenCalledOnce();
  });
});
