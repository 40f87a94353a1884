import { afterEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import IncomeForm from "./IncomeForm.svelte";
import CloseHouseholdForm from "./CloseHouseholdForm.svelte";
import ConflictsPanel from "./ConflictsPanel.svelte";
import VisitForm from "./VisitForm.svelte";
import MemberForm from "./MemberForm.svelte";
import ListingEditor from "./listing/ListingEditor.svelte";
import Training from "../../screens/Training.svelte";
import Products from "../../screens/Products.svelte";
import { loadLabels } from "../labels.svelte";
import { locale } from "../i18n.svelte";
import { enumFixture } from "../test-support";

const syncStatus = { online: false, pending: 0, last_sync_at: null, signed_in: true, can_sync: false, open_conflicts: 0, last_error: null, syncing: false, retry_at: null, needs_user: false };
const enums = [
  ...enumFixture,
  { name: "household_closure", values: [{ code: "moved_out", national: null, zh: "迁出", en: "Moved out" }, { code: "died", national: null, zh: "死亡", en: "Died" }] },
  { name: "training_format", values: [{ code: "classroom", national: null, zh: "集中授课", en: "Classroom" }] },
  { name: "training_topic", values: [{ code: "photography", national: null, zh: "商品拍照与主图", en: "Product photography" }] },
  { name: "product_category", values: [{ code: "nuts", national: null, zh: "坚果", en: "Nuts" }] },
  { name: "platform", values: [{ code: "taobao", national: null, zh: "淘宝", en: "Taobao" }] },
  { name: "sale_unit", values: [{ code: "jin", national: null, zh: "斤", en: "Jin (500 g)" }] },
  { name: "visit_type", values: [{ code: "home", national: null, zh: "入户走访", en: "Home visit" }] },
  { name: "listing_status", values: [{ code: "draft", national: null, zh: "草稿", en: "Draft" }] },
];

/** The store these forms read: nothing beyond what opens them. */
async function mockStore() {
  mockIPC((command) => {
    switch (command) {
      case "enum_labels": return enums;
      case "list_sessions": case "list_products": case "list_listings": return [];
      case "list_villages": return [{ id: "v1", name: "青山村" }];
      case "check_listing_rules": return [];
      case "sync_status": return syncStatus;
      case "list_conflicts":
        return [{
          id: 7, table: "listings", row_id: "l1", field: "title", local_value: "\"核桃\"", remote_value: "\"山核桃\"",
          remote_actor: "platform", kind: "rejected", reason: "invalid", created_at: "2026-11-28T10:00:00Z",
          record_name: "核桃", household_id: null, current_value: "\"山核桃\"",
        }];
      default: throw new Error(`unexpected command ${command}`);
    }
  });
  await loadLabels();
}

/**
 * Esc in the form `open` shows: an untouched form closes at once; after typing, a confirmation
 * asks first, whose 取消 keeps the text and whose 放弃修改 closes the form.
 */
async function asksBeforeDiscarding(open: () => Promise<HTMLInputElement>, closed: () => boolean, typed: string) {
  let field = await open();
  await fireEvent.keyDown(field, { key: "Escape" });
  expect(screen.queryByTestId("confirm-dialog")).toBeNull();
  expect(closed()).toBe(true);

  field = await open();
  await fireEvent.input(field, { target: { value: typed } });
  await fireEvent.keyDown(field, { key: "Escape" });
  expect(closed()).toBe(false);
  expect(screen.getByTestId("confirm-dialog").textContent).toContain("放弃修改？");
  expect(screen.getByTestId("confirm-dialog").textContent).toContain("这张表里改过的内容还没有保存");
  await fireEvent.click(screen.getByTestId("confirm-cancel"));
  expect(screen.queryByTestId("confirm-dialog")).toBeNull();
  expect(closed()).toBe(false);
  expect(field.value).toBe(typed);

  // Esc in the dialog keeps the changes too.
  await fireEvent.keyDown(field, { key: "Escape" });
  await fireEvent.keyDown(screen.getByTestId("confirm-cancel"), { key: "Escape" });
  expect(screen.queryByTestId("confirm-dialog")).toBeNull();
  expect(closed()).toBe(false);
  expect(field.value).toBe(typed);

  await fireEvent.keyDown(field, { key: "Escape" });
  await fireEvent.click(screen.getByTestId("confirm-ok"));
  expect(closed()).toBe(true);
}

/** The element `selector` finds, once it is on screen. */
function shown<T extends Element>(container: HTMLElement, selector: string): Promise<T> {
  return vi.waitFor(() => {
    const element = container.querySelector(selector) as T | null;
    if (!element) throw new Error(`no ${selector} yet`);
    return element;
  });
}

describe("Esc in a form with changes", () => {
  afterEach(() => {
    cleanup();
    clearMocks();
  });

  it("asks before discarding an income record", async () => {
    locale.language = "zh-CN";
    await mockStore();
    let onCancel = vi.fn();
    await asksBeforeDiscarding(async () => {
      cleanup();
      onCancel = vi.fn();
      const { container } = render(IncomeForm, { props: { householdId: "h1", members: [], onSaved: vi.fn(), onCancel } });
      return shown<HTMLInputElement>(container, "#income-amount");
    }, () => onCancel.mock.calls.length === 1, "3250.5");
  });

  it("asks before discarding a household's closing (迁出, 死亡, 自然消亡)", async () => {
    locale.language = "zh-CN";
    await mockStore();
    let onCancel = vi.fn();
    await asksBeforeDiscarding(async () => {
      cleanup();
      onCancel = vi.fn();
      const { container } = render(CloseHouseholdForm, { props: { household: { id: "h1", head_name: "王建国" }, onSaved: vi.fn(), onCancel } });
      return shown<HTMLInputElement>(container, "#close-note");
    }, () => onCancel.mock.calls.length === 1, "全家迁往县城");
  });

  it("asks in English too, and counts a reason chosen as a change", async () => {
    locale.language = "en";
    await mockStore();
    const onCancel = vi.fn();
    const { container } = render(CloseHouseholdForm, { props: { household: { id: "h1", head_name: "王建国" }, onSaved: vi.fn(), onCancel } });
    const reason = await shown<HTMLSelectElement>(container, "#close-reason");
    await fireEvent.change(reason, { target: { value: "died" } });
    await fireEvent.keyDown(reason, { key: "Escape" });
    expect(onCancel).not.toHaveBeenCalled();
    expect(screen.getByTestId("confirm-dialog").textContent).toContain("Discard the changes?");
    await fireEvent.click(screen.getByTestId("confirm-ok"));
    expect(onCancel).toHaveBeenCalledOnce();
  });

  it("asks before discarding a visit", async () => {
    locale.language = "zh-CN";
    await mockStore();
    let onCancel = vi.fn();
    await asksBeforeDiscarding(async () => {
      cleanup();
      onCancel = vi.fn();
      const { container } = render(VisitForm, { props: { householdId: "h1", onSaved: vi.fn(), onCancel } });
      return shown<HTMLInputElement>(container, "#visit-summary");
    }, () => onCancel.mock.calls.length === 1, "查看核桃长势");
  });

  it("asks before discarding a member", async () => {
    locale.language = "zh-CN";
    await mockStore();
    let onCancel = vi.fn();
    await asksBeforeDiscarding(async () => {
      cleanup();
      onCancel = vi.fn();
      const { container } = render(MemberForm, { props: { member: {}, householdId: "h1", onSaved: vi.fn(), onCancel } });
      return shown<HTMLInputElement>(container, "#member-name");
    }, () => onCancel.mock.calls.length === 1, "赵小宝");
  });

  it("asks before discarding a training session", async () => {
    locale.language = "zh-CN";
    await mockStore();
    const { container } = render(Training);
    await asksBeforeDiscarding(async () => {
      // The villages are read when the screen opens; a new session takes the first.
      await new Promise((resolve) => setTimeout(resolve, 0));
      await fireEvent.click(screen.getByTestId("new-session"));
      const title = await shown<HTMLInputElement>(container, "#session-title");
      // The form is taken as opened once it is on screen.
      await new Promise((resolve) => setTimeout(resolve, 0));
      return title;
    }, () => !screen.queryByTestId("session-form"), "电商直播培训");
  });

  it("asks before discarding a new product", async () => {
    locale.language = "zh-CN";
    await mockStore();
    const { container } = render(Products);
    await asksBeforeDiscarding(async () => {
      await fireEvent.click(await vi.waitFor(() => screen.getByTestId("new-product")));
      const name = await shown<HTMLInputElement>(container, "#product-name");
      await new Promise((resolve) => setTimeout(resolve, 0));
      return name;
    }, () => !screen.queryByTestId("product-form"), "高山绿茶");
  });

  it("asks before discarding the fix of a rejected edit", async () => {
    locale.language = "zh-CN";
    await mockStore();
    const { container } = render(ConflictsPanel);
    await asksBeforeDiscarding(async () => {
      await fireEvent.click(await vi.waitFor(() => screen.getByTestId("fix-edit")));
      return shown<HTMLInputElement>(container, "#fix-value");
    }, () => !screen.queryByTestId("fix-form"), "云南山核桃");
  });

  it("asks before leaving a listing with typing not saved", async () => {
    locale.language = "zh-CN";
    await mockStore();
    let onClose = vi.fn();
    await asksBeforeDiscarding(async () => {
      cleanup();
      onClose = vi.fn();
      const listing = { product_id: "p1", platform: "taobao" as const, status: "draft" as const, category: "nuts" as const, unit: "jin" as const };
      const { container } = render(ListingEditor, { props: { listing, products: [{ id: "p1", name: "薄皮核桃" }], onClose } });
      return shown<HTMLInputElement>(container, "#listing-title");
    }, () => onClose.mock.calls.length === 1, "高坡村薄皮核桃");
  });
});
