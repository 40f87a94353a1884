import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import ListingEditor from "./ListingEditor.svelte";
import RulePanel from "./RulePanel.svelte";
import { loadLabels } from "../../labels.svelte";
import { locale } from "../../i18n.svelte";
import type { Listing } from "../../bindings/Listing";
import type { RuleCheck } from "../../bindings/RuleCheck";

const enums = [
  { name: "platform", values: [{ code: "taobao", national: null, zh: "淘宝", en: "Taobao" }] },
  { name: "product_category", values: [{ code: "nuts", national: null, zh: "坚果", en: "Nuts" }, { code: "processed", national: null, zh: "加工食品", en: "Processed food" }] },
  { name: "sale_unit", values: [{ code: "jin", national: null, zh: "斤", en: "Jin (500 g)" }] },
  { name: "storage", values: [{ code: "cool_dry", national: null, zh: "阴凉干燥", en: "Cool and dry" }] },
  { name: "listing_status", values: [{ code: "draft", national: null, zh: "草稿", en: "Draft" }, { code: "submitted", national: null, zh: "已提交审核", en: "Submitted" }] },
  { name: "moderation_status", values: [{ code: "approved", national: null, zh: "审核通过", en: "Approved" }] },
];

/** A stand-in for the core's check_rules: four of its rules, worded as the core words them. */
function rules(listing: Listing): RuleCheck[] {
  const title = (listing.title ?? "").trim();
  const units = [...title].reduce((sum, char) => sum + (char.charCodeAt(0) > 0x7f ? 2 : 1), 0);
  return [
    { rule: "title_units", field: "title", passed: units > 0 && units <= 60, message_zh: `标题 1–30 个汉字（60 字节），当前 ${units} 字节`, message_en: `Title of 1 to 30 CJK characters (60 bytes); now ${units} bytes` },
    { rule: "price_fen", field: "price_fen", passed: (listing.price_fen ?? 0) > 0, message_zh: "售价须大于 0", message_en: "Price above zero" },
    { rule: "stock_qty", field: "stock_qty", passed: (listing.stock_qty ?? 0) >= 1, message_zh: `库存 1–900000000，当前 ${listing.stock_qty ?? 0}`, message_en: `Stock of 1 to 900000000; now ${listing.stock_qty ?? 0}` },
    { rule: "shelf_life", field: "shelf_life_days", passed: listing.shelf_life_days != null, message_zh: "食品须填写保质期", message_en: "Food needs a shelf life" },
  ];
}

const draft: Listing = { product_id: "p1", platform: "taobao", status: "draft", category: "nuts", unit: "jin" };

describe("ListingEditor", () => {
  let calls: { command: string; args: Record<string, unknown> }[] = [];

  beforeEach(async () => {
    calls = [];
    mockIPC((command, args) => {
      const payload = (args ?? {}) as Record<string, unknown>;
      calls.push({ command, args: payload });
      if (command === "enum_labels") return enums;
      if (command === "check_listing_rules") return rules(payload.listing as Listing);
      if (command === "save_listing") return { ...(payload.listing as Listing), id: "l1", scope_id: "530724100201" };
      if (command === "submit_listing") return { ...draft, id: "l1", status: "submitted", submission_key: "k1" };
      if (command === "sync_status") return { online: false, pending: 1, last_sync_at: null, signed_in: true, can_sync: true, open_conflicts: 0, last_error: null };
      if (command === "get_listing") return { ...draft, id: payload.id };
      if (command === "listing_photos" || command === "listing_sales") return [];
      throw new Error(`unexpected command ${command}`);
    });
    await loadLabels();
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  function rule(container: HTMLElement, name: string): HTMLElement {
    const element = container.querySelector(`[data-rule="${name}"]`) as HTMLElement | null;
    if (!element) throw new Error(`no rule ${name}`);
    return element;
  }

  it("shows every rule's state live in Chinese and enables submit only when all pass", async () => {
    locale.language = "zh-CN";
    const { container } = render(ListingEditor, { props: { listing: draft, products: [{ id: "p1", name: "薄皮核桃" }], onClose: vi.fn() } });
    await vi.waitFor(() => expect(rule(container, "title_units").dataset.passed).toBe("false"));
    expect(rule(container, "title_units").textContent).toContain("标题 1–30 个汉字（60 字节），当前 0 字节");
    expect(screen.getByTestId("rules-count").textContent?.trim()).toBe("通过 0/4");
    const submit = screen.getByTestId("submit-listing") as HTMLButtonElement;
    expect(submit.disabled).toBe(true);
    expect(submit.textContent).toBe("提交上架");

    // Too long a title fails the rule as it is typed; a shorter one passes it.
    await fireEvent.input(container.querySelector("#listing-title")!, { target: { value: "核".repeat(31) } });
    await vi.waitFor(() => expect(rule(container, "title_units").textContent).toContain("当前 62 字节"));
    expect(rule(container, "title_units").dataset.passed).toBe("false");
    await fireEvent.input(container.querySelector("#listing-title")!, { target: { value: "高坡村薄皮核桃 500g" } });
    await fireEvent.input(container.querySelector("#listing-price")!, { target: { value: "39.90" } });
    await fireEvent.input(container.querySelector("#listing-stock")!, { target: { value: "200" } });
    await vi.waitFor(() => expect(screen.getByTestId("rules-count").textContent?.trim()).toBe("通过 3/4"));
    // The price went to the core in fen.
    const last = calls.filter((call) => call.command === "check_listing_rules").at(-1)!;
    expect((last.args.listing as Listing).price_fen).toBe(3990);
    expect(rule(container, "shelf_life").dataset.passed).toBe("false");
    expect(submit.disabled).toBe(true);

    await fireEvent.input(container.querySelector("#listing-shelf-life")!, { target: { value: "180" } });
    await vi.waitFor(() => expect(screen.getByTestId("rules-count").textContent?.trim()).toBe("通过 4/4"));
    await vi.waitFor(() => expect(submit.disabled).toBe(false));

    // Breaking a rule again disables the button again.
    await fireEvent.input(container.querySelector("#listing-stock")!, { target: { value: "0" } });
    await vi.waitFor(() => expect(rule(container, "stock_qty").dataset.passed).toBe("false"));
    expect(submit.disabled).toBe(true);
    await fireEvent.input(container.querySelector("#listing-stock")!, { target: { value: "200" } });
    await vi.waitFor(() => expect(submit.disabled).toBe(false));

    await fireEvent.click(submit);
    await vi.waitFor(() => expect(screen.getByTestId("listing-status").textContent).toBe("已提交审核"));
    const commands = calls.map((call) => call.command);
    expect(commands.indexOf("save_listing")).toBeLessThan(commands.indexOf("submit_listing"));
    expect(calls.find((call) => call.command === "submit_listing")!.args.id).toBe("l1");
    expect(submit.textContent).toBe("已提交");
    expect(submit.disabled).toBe(true);
  });

  it("saves a draft while rules fail, shows a bad price beside its field, in English", async () => {
    locale.language = "en";
    const { container } = render(ListingEditor, { props: { listing: draft, products: [{ id: "p1", name: "薄皮核桃" }], onClose: vi.fn() } });
    await fireEvent.input(container.querySelector("#listing-title")!, { target: { value: "Walnuts" } });
    await fireEvent.input(container.querySelector("#listing-price")!, { target: { value: "12.345" } });
    await vi.waitFor(() => expect(container.querySelector('[data-error-for="listing-price"]')?.textContent).toBe("Enter an amount, e.g. 12.50"));
    await vi.waitFor(() => expect(rule(container, "price_fen").textContent).toContain("Price above zero"));
    expect(rule(container, "price_fen").dataset.passed).toBe("false");
    await fireEvent.input(container.querySelector("#listing-price")!, { target: { value: "12.5" } });
    await vi.waitFor(() => expect(container.querySelector('[data-error-for="listing-price"]')).toBeNull());
    await vi.waitFor(() => expect(rule(container, "price_fen").dataset.passed).toBe("true"));
    expect(rule(container, "shelf_life").textContent).toContain("Food needs a shelf life");
    expect((screen.getByTestId("submit-listing") as HTMLButtonElement).disabled).toBe(true);

    // Enter in a field saves the draft although rules fail.
    await fireEvent.submit(screen.getByTestId("listing-form"));
    await vi.waitFor(() => expect(screen.getByTestId("studio-notice").textContent).toBe("Draft saved"));
    const saved = calls.find((call) => call.command === "save_listing")!.args.listing as Listing;
    expect(saved.price_fen).toBe(1250);
    expect(saved.title).toBe("Walnuts");
    expect(calls.some((call) => call.command === "submit_listing")).toBe(false);
  });
});

describe("ListingEditor when the core refuses a submission", () => {
  afterEach(() => {
    cleanup();
    clearMocks();
  });

  it("shows the failing image rule and keeps the listing a draft", async () => {
    locale.language = "zh-CN";
    mockIPC((command, args) => {
      const payload = (args ?? {}) as Record<string, unknown>;
      if (command === "enum_labels") return enums;
      if (command === "check_listing_rules") return rules(payload.listing as Listing);
      if (command === "save_listing") return { ...(payload.listing as Listing), id: "l1" };
      if (command === "submit_listing")
        throw {
          code: "validation", message: "validation failed: photos: rule_main_square", message_zh: "填写有误：须有一张正方形（1:1）主图", message_en: "Please correct: A square (1:1) main image",
          fields: [{ field: "photos", code: "rule_main_square", message_zh: "须有一张正方形（1:1）主图", message_en: "A square (1:1) main image" }],
        };
      if (command === "sync_status") return { online: false, pending: 1, last_sync_at: null, signed_in: true, can_sync: true, open_conflicts: 0, last_error: null };
      throw new Error(`unexpected command ${command}`);
    });
    await loadLabels();
    const { container } = render(ListingEditor, {
      props: { listing: { ...draft, title: "高坡村核桃", price_fen: 3990, stock_qty: 10, shelf_life_days: 180 }, products: [{ id: "p1", name: "薄皮核桃" }], onClose: vi.fn() },
    });
    const submit = screen.getByTestId("submit-listing") as HTMLButtonElement;
    await vi.waitFor(() => expect(submit.disabled).toBe(false));
    expect((container.querySelector("#listing-price") as HTMLInputElement).value).toBe("39.90");
    await fireEvent.click(submit);
    await vi.waitFor(() => expect(screen.getByTestId("photos-error").textContent).toBe("须有一张正方形（1:1）主图"));
    expect(screen.getByTestId("listing-status").textContent).toBe("草稿");
    expect(screen.queryByTestId("studio-notice")).toBeNull();
  });
});

describe("ListingEditor after a sync", () => {
  afterEach(() => {
    cleanup();
    clearMocks();
  });

  it("shows the platform's verdict, the upload states and the sales, and follows the next sync", async () => {
    locale.language = "zh-CN";
    let verdict: Partial<Listing> = { moderation_status: "rejected", moderation_reason: "主图含有联系方式", sold_out: false };
    let uploaded = false;
    const photo = (id: string, kind: string, size: number) => ({
      photo: { id, owner_type: "listing", owner_id: "l1", sha256: id.repeat(64).slice(0, 64), bytes: size, width_px: 800, height_px: 800, kind, order_index: 0 },
      thumbnail: "data:image/jpeg;base64,/9j/",
      upload: uploaded ? { state: "uploaded", uploaded_bytes: size, size, last_error: null } : { state: "uploading", uploaded_bytes: size / 4, size, last_error: null },
    });
    mockIPC((command, args) => {
      const payload = (args ?? {}) as Record<string, unknown>;
      if (command === "enum_labels") return [...enums, { name: "moderation_status", values: [{ code: "approved", national: null, zh: "审核通过", en: "Approved" }, { code: "rejected", national: null, zh: "审核未通过", en: "Rejected" }] }, { name: "order_status", values: [{ code: "paid", national: null, zh: "已付款", en: "Paid" }] }];
      if (command === "check_listing_rules") return rules(payload.listing as Listing);
      if (command === "get_listing") return { ...draft, id: "l1", title: "核桃", status: "submitted", ...verdict };
      if (command === "listing_submission_state")
        return {
          can_submit: verdict.moderation_status === "rejected",
          history: [{ submission_key: "k1", submitted_at: "2026-11-27T09:00:00Z", moderation_status: verdict.moderation_status, moderation_reason: verdict.moderation_reason ?? null, current: true }],
        };
      if (command === "listing_photos") return [photo("a", "main", 400_000), photo("b", "carousel", 200_000)];
      if (command === "listing_sales")
        return verdict.moderation_status === "approved"
          ? [{ sale_id: "s1", order_no: "TB001", order_date: "2026-11-28", status: "paid", qty: 3, gross_fen: 11_970, net_to_seller_fen: 11_000, buyer_region: null, allocated_fen: 10_000 }]
          : [];
      if (command === "sync_status") return { online: true, pending: 0, last_sync_at: uploaded ? "2026-11-28T10:00:00Z" : null, signed_in: true, can_sync: true, open_conflicts: 0, last_error: null };
      throw new Error(`unexpected command ${command}`);
    });
    await loadLabels();
    const { syncState, refreshSync } = await import("../../sync.svelte");
    await refreshSync();
    render(ListingEditor, { props: { listing: { ...draft, id: "l1", title: "核桃", status: "submitted" }, products: [{ id: "p1", name: "薄皮核桃" }], onClose: vi.fn() } });
    await vi.waitFor(() => expect(screen.getByTestId("moderation-status").textContent).toBe("审核未通过"));
    expect(screen.getByTestId("moderation-reason").textContent).toBe("原因：主图含有联系方式");
    const states = () => screen.getAllByTestId("upload-state").map((badge) => badge.textContent);
    expect(states()).toEqual(["上传中 25%", "上传中 25%"]);
    expect(screen.getByTestId("listing-sales").textContent).toContain("暂无销售");
    // A rejected listing is fixed and submitted again: the button offers it.
    expect((screen.getByTestId("submit-listing") as HTMLButtonElement).textContent).toBe("修改后重新提交");

    // The platform approves it, sells three and marks it sold out; the next sync brings all.
    verdict = { moderation_status: "approved", moderation_reason: null, platform_item_id: "TB-42", sold_out: true };
    uploaded = true;
    await refreshSync();
    await vi.waitFor(() => expect(screen.getByTestId("moderation-status").textContent).toBe("审核通过"));
    expect(syncState.status?.last_sync_at).toBe("2026-11-28T10:00:00Z");
    expect(screen.getByTestId("platform-item-id").textContent).toBe("平台商品编号：TB-42");
    expect(screen.getByTestId("sold-out").textContent).toBe("已售罄");
    expect(screen.queryByTestId("moderation-reason")).toBeNull();
    expect(states()).toEqual(["已上传", "已上传"]);
    expect(screen.getAllByTestId("sale-row")).toHaveLength(1);
    expect(screen.getByTestId("sale-row").textContent).toContain("119.70");
    expect(screen.getByTestId("sales-total").textContent).toBe("合计 3 件，119.70 元");
    expect((screen.getByTestId("submit-listing") as HTMLButtonElement).textContent).toBe("已提交");
  });
});

describe("RulePanel", () => {
  it("marks each rule passed or failing and counts them", () => {
    locale.language = "zh-CN";
    const checks: RuleCheck[] = [
      { rule: "main_square", field: "photos", passed: false, message_zh: "须有一张正方形（1:1）主图", message_en: "A square (1:1) main image" },
      { rule: "price_fen", field: "price_fen", passed: true, message_zh: "售价须大于 0", message_en: "Price above zero" },
    ];
    const { container } = render(RulePanel, { props: { checks } });
    expect(screen.getByTestId("rules-count").textContent?.trim()).toBe("通过 1/2");
    const square = container.querySelector('[data-rule="main_square"]') as HTMLElement;
    expect(square.dataset.passed).toBe("false");
    expect(square.textContent).toContain("✗");
    expect(square.textContent).toContain("须有一张正方形（1:1）主图");
    expect((container.querySelector('[data-rule="price_fen"]') as HTMLElement).textContent).toContain("✓");
    cleanup();
  });
});
