import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import Products from "./Products.svelte";
import { loadLabels } from "../lib/labels.svelte";
import { locale } from "../lib/i18n.svelte";
import type { Listing } from "../lib/bindings/Listing";

const enums = [
  { name: "platform", values: [{ code: "taobao", national: null, zh: "淘宝", en: "Taobao" }] },
  { name: "product_category", values: [{ code: "nuts", national: null, zh: "坚果", en: "Nuts" }, { code: "tea", national: null, zh: "茶叶", en: "Tea" }] },
  { name: "sale_unit", values: [{ code: "jin", national: null, zh: "斤", en: "Jin (500 g)" }, { code: "box", national: null, zh: "箱", en: "Box" }] },
  { name: "storage", values: [{ code: "cool_dry", national: null, zh: "阴凉干燥", en: "Cool and dry" }] },
  { name: "listing_status", values: [{ code: "draft", national: null, zh: "草稿", en: "Draft" }] },
];
const products = [
  { id: "p1", village_id: "v1", name: "薄皮核桃", category: "nuts", unit: "jin" },
  { id: "p2", village_id: "v1", name: "高山绿茶", category: "tea", unit: "box", shelf_life_days: 365 },
];

describe("A new listing with 全部商品 chosen", () => {
  let saved: Listing[] = [];

  beforeEach(async () => {
    saved = [];
    locale.language = "zh-CN";
    mockIPC((command, args) => {
      const payload = (args ?? {}) as Record<string, unknown>;
      switch (command) {
        case "enum_labels": return enums;
        case "list_products": return products;
        case "list_listings": return [];
        case "list_villages": return [{ id: "v1", name: "青山村" }];
        case "check_listing_rules": return [];
        case "sync_status": return { online: false, pending: 0, last_sync_at: null, signed_in: true, can_sync: false, open_conflicts: 0, last_error: null, syncing: false, retry_at: null, needs_user: false };
        case "save_listing": {
          const listing = payload.listing as Listing;
          if (!listing.product_id)
            throw { code: "validation", message: "validation failed", message_zh: "填写有误：必填", message_en: "Please correct: is required",
              fields: [{ field: "product_id", code: "required", message_zh: "必填", message_en: "is required" }] };
          saved.push(listing);
          return { ...listing, id: "l1", scope_id: "530724100201" };
        }
        case "get_listing": return { ...saved[saved.length - 1], id: payload.id };
        case "listing_photos": case "listing_sales": return [];
        case "listing_submission_state": return { can_submit: true, history: [] };
        default: throw new Error(`unexpected command ${command}`);
      }
    });
    await loadLabels();
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  it("asks which product it belongs to instead of taking the first", async () => {
    const { container } = render(Products);
    await vi.waitFor(() => expect(screen.getAllByTestId("product-row")).toHaveLength(2));
    await fireEvent.click(screen.getByTestId("new-listing"));
    const picker = await vi.waitFor(() => {
      const select = container.querySelector("#listing-product") as HTMLSelectElement | null;
      if (!select) throw new Error("no product picker");
      return select;
    });
    expect(picker.selectedOptions[0]?.textContent).toBe("请选择");
    await fireEvent.input(container.querySelector("#listing-title")!, { target: { value: "高山绿茶 礼盒" } });
    await fireEvent.submit(screen.getByTestId("listing-form"));
    await vi.waitFor(() => expect(container.querySelector('[data-error-for="listing-product"]')?.textContent).toBe("必填"));
    expect(saved).toHaveLength(0);

    // The assistant picks the tea: the draft goes under the tea, with the tea's details.
    await fireEvent.change(picker, { target: { value: "p2" } });
    await fireEvent.submit(screen.getByTestId("listing-form"));
    await vi.waitFor(() => expect(saved).toHaveLength(1));
    expect(saved[0]).toMatchObject({ product_id: "p2", category: "tea", unit: "box", shelf_life_days: 365 });
  });
});

describe("The listing list", () => {
  afterEach(() => {
    cleanup();
    clearMocks();
  });

  it("shows each listing's main photo as a thumbnail in its row, and none for a listing without photos", async () => {
    locale.language = "zh-CN";
    const view = (id: string, kind: string, thumbnail: string | null) => ({
      photo: { id, owner_type: "listing", kind, width_px: 800, height_px: 800 },
      thumbnail,
      upload: { state: "uploaded", uploaded_bytes: 10, size: 10, last_error: null },
    });
    mockIPC((command, args) => {
      switch (command) {
        case "enum_labels": return enums;
        case "list_products": return products;
        case "list_listings":
          return [
            { id: "l1", product_id: "p1", title: "高坡村核桃", platform: "taobao", status: "draft", price_fen: 3990 },
            { id: "l2", product_id: "p2", title: "高山绿茶", platform: "taobao", status: "draft", price_fen: 5800 },
          ];
        case "list_villages": return [{ id: "v1", name: "青山村" }];
        case "listing_photos":
          return (args as { listingId: string }).listingId === "l1"
            ? [view("ph2", "detail", "data:image/jpeg;base64,DETAIL"), view("ph1", "main", "data:image/jpeg;base64,MAIN")]
            : [];
        case "sync_status": return { online: false, pending: 0, last_sync_at: null, signed_in: true, can_sync: false, open_conflicts: 0, last_error: null, syncing: false, retry_at: null, needs_user: false };
        default: throw new Error(`unexpected command ${command}`);
      }
    });
    await loadLabels();
    render(Products);
    await vi.waitFor(() => expect(screen.getAllByTestId("listing-row")).toHaveLength(2));
    const [first, second] = screen.getAllByTestId("listing-row");
    await vi.waitFor(() => expect(first.querySelector('[data-testid="listing-thumb"] img')?.getAttribute("src")).toBe("data:image/jpeg;base64,MAIN"));
    expect(first.querySelector("img")?.getAttribute("alt")).toBe("高坡村核桃");
    expect(second.querySelector('[data-testid="listing-thumb"]')).not.toBeNull();
    expect(second.querySelector("img")).toBeNull();
  });
});
