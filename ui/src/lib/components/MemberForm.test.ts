import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import MemberForm from "./MemberForm.svelte";
import { loadLabels } from "../labels.svelte";
import { locale } from "../i18n.svelte";
import { enumFixture } from "../test-support";

// The core's answer to a member with a bad mobile number and a birth date that is not a date.
const memberErrors = {
  code: "validation",
  message: "validation failed",
  message_zh: "填写有误",
  message_en: "Please correct",
  fields: [
    { field: "phone", code: "invalid_phone", message_zh: "手机号应为11位数字，以1开头", message_en: "must be an 11-digit mobile number starting with 1" },
    { field: "birth_date", code: "invalid_date", message_zh: "日期应为有效的年-月-日", message_en: "must be a real date YYYY-MM-DD" },
  ],
};

describe("MemberForm", () => {
  let saved: Record<string, unknown>[] = [];

  beforeEach(async () => {
    saved = [];
    locale.language = "zh-CN";
    mockIPC((command, args) => {
      if (command === "enum_labels") return enumFixture;
      if (command === "save_member") {
        const member = (args as { member: Record<string, unknown> }).member;
        if (member.phone !== "13912345678") throw memberErrors;
        saved.push(member);
        return { ...member, id: "m1" };
      }
      throw new Error(`unexpected command ${command}`);
    });
    await loadLabels();
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  it("shows each of the core's errors beside its own field in Chinese, then saves every field once fixed", async () => {
    const onSaved = vi.fn();
    const { container } = render(MemberForm, { props: { member: {}, householdId: "h1", onSaved, onCancel: vi.fn() } });
    const name = container.querySelector("#member-name") as HTMLInputElement;
    const phone = container.querySelector("#member-phone") as HTMLInputElement;
    await fireEvent.input(name, { target: { value: "赵小梅" } });
    await fireEvent.input(phone, { target: { value: "1391234" } });
    await fireEvent.change(container.querySelector("#member-relation")!, { target: { value: "son" } });
    await fireEvent.change(container.querySelector("#member-sex")!, { target: { value: "female" } });
    await fireEvent.change(container.querySelector("#member-has_smartphone")!, { target: { value: "yes" } });
    await fireEvent.click(screen.getByTestId("member-save"));
    const phoneError = await vi.waitFor(() => {
      const element = container.querySelector('[data-error-for="member-phone"]');
      if (!element) throw new Error("no error yet");
      return element;
    });
    expect(phoneError.textContent).toBe("手机号应为11位数字，以1开头");
    expect(phoneError.closest(".field")?.querySelector("#member-phone")).toBe(phone);
    const dateError = container.querySelector('[data-error-for="member-birth_date"]');
    expect(dateError?.textContent).toBe("日期应为有效的年-月-日");
    expect(dateError?.closest(".field")?.querySelector("#member-birth_date")).not.toBeNull();
    expect(onSaved).not.toHaveBeenCalled();

    await fireEvent.input(phone, { target: { value: "13912345678" } });
    await fireEvent.click(screen.getByTestId("member-save"));
    await vi.waitFor(() => expect(onSaved).toHaveBeenCalledOnce());
    expect(saved[0]).toMatchObject({
      household_id: "h1", name: "赵小梅", phone: "13912345678", relation: "son", sex: "female", has_smartphone: true, health: null,
    });
    expect(container.querySelectorAll("[data-error-for]").length).toBe(0);
  });

  it("sends the ID card number as the card prints it and shows the core's refusal beside it", async () => {
    mockIPC((command, args) => {
      if (command === "enum_labels") return enumFixture;
      if (command === "save_member") {
        const member = (args as { member: Record<string, unknown> }).member;
        saved.push(member);
        if (member.id_card_no !== "11010519491231002X") {
          throw {
            code: "validation", message: "validation failed", message_zh: "填写有误", message_en: "Please correct",
            fields: [{ field: "id_card_no", code: "invalid_id_card", message_zh: "身份证号应为18位：17位数字加1位校验码（数字或X），请核对", message_en: "must be an 18-character ID number" }],
          };
        }
        return { ...member, id: "m2" };
      }
      throw new Error(`unexpected command ${command}`);
    });
    const onSaved = vi.fn();
    const { container } = render(MemberForm, { props: { member: { name: "王强" }, householdId: "h1", onSaved, onCancel: vi.fn() } });
    const card = container.querySelector("#member-id_card_no") as HTMLInputElement;
    await fireEvent.input(card, { target: { value: "110105194912310021" } });
    await fireEvent.click(screen.getByTestId("member-save"));
    await vi.waitFor(() =>
      expect(container.querySelector('[data-error-for="member-id_card_no"]')?.textContent).toBe("身份证号应为18位：17位数字加1位校验码（数字或X），请核对"),
    );
    await fireEvent.input(card, { target: { value: " 11010519491231002x " } });
    await fireEvent.click(screen.getByTestId("member-save"));
    await vi.waitFor(() => expect(onSaved).toHaveBeenCalledOnce());
    expect(saved[1]).toMatchObject({ id_card_no: "11010519491231002X" });
  });

  it("shows the errors in English when English is chosen", async () => {
    locale.language = "en";
    const { container } = render(MemberForm, { props: { member: { name: "Zhao", phone: "1" }, householdId: "h1", onSaved: vi.fn(), onCancel: vi.fn() } });
    await fireEvent.click(screen.getByTestId("member-save"));
    await vi.waitFor(() =>
      expect(container.querySelector('[data-error-for="member-phone"]')?.textContent).toBe("must be an 11-digit mobile number starting with 1"),
    );
  });

  it("edits an existing member from its values, saves on Enter in a picker and cancels on Escape", async () => {
    const onSaved = vi.fn();
    const onCancel = vi.fn();
    const member = { id: "m9", household_id: "h1", name: "赵大山", relation: "head" as const, phone: "13912345678" };
    const { container } = render(MemberForm, { props: { member, householdId: "h1", onSaved, onCancel } });
    expect((container.querySelector("#member-name") as HTMLInputElement).value).toBe("赵大山");
    expect((container.querySelector("#member-relation") as HTMLSelectElement).value).toBe("head");
    await fireEvent.keyDown(container.querySelector("#member-relation")!, { key: "Enter" });
    await vi.waitFor(() => expect(onSaved).toHaveBeenCalledOnce());
    expect(saved[0]).toMatchObject({ id: "m9", name: "赵大山", relation: "head" });
    await fireEvent.keyDown(container.querySelector("#member-name")!, { key: "Escape" });
    expect(onCancel).toHaveBeenCalledOnce();
  });
});
