import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import ListingEditor from "./ListingEditor.svelte";
import { loadLabels } from "../../labels.svelte";
import { locale } from "../../i18n.svelte";
import type { Listing } from "../../bindings/Listing";

const enums = [
  { name: "platform", values: [{ code: "taobao", national: null, zh: "淘宝", en: "Taobao" }] },
  { name: "product_category", values: [{ code: "nuts", national: null, zh: "坚果", en: "Nuts" }] },
  { name: "sale_unit", values: [{ code: "jin", national: null, zh: "斤", en: "Jin (500 g)" }] },
  { name: "storage", values: [{ code: "cool_dry", national: null, zh: "阴凉干燥", en: "Cool and dry" }] },
  { name: "listing_status", values: [{ code: "draft", national: null, zh: "草稿", en: "Draft" }, { code: "submitted", national: null, zh: "已提交审核", en: "Submitted" }] },
  { name: "moderation_status", values: [{ code: "pending", national: null, zh: "审核中", en: "Pending review" }, { code: "rejected", national: null, zh: "审核未通过", en: "Rejected" }] },
];

const rejected: Listing = {
  id: "l1", product_id: "p1", platform: "taobao", status: "submitted", category: "nuts", unit: "jin", title: "最好的核桃",
  price_fen: 3990, stock_qty: 100, shelf_life_days: 180, submission_key: "k1", moderation_status: "rejected", moderation_reason: "标题含有夸大用语",
};

describe("A listing the platform rejected", () => {
  let calls: { command: string; args: Record<string, unknown> }[] = [];
  let resubmitted = false;

  beforeEach(async () => {
    calls = [];
    resubmitted = false;
    locale.language = "zh-CN";
    mockIPC((command, args) => {
      const payload = (args ?? {}) as Record<string, unknown>;
      calls.push({ command, args: payload });
      switch (command) {
        case "enum_labels": return enums;
        case "check_listing_rules": return [{ rule: "title_units", field: "title", passed: true, message_zh: "标题", message_en: "Title" }];
        case "get_listing": return rejected;
        case "listing_photos": case "listing_sales": return [];
        case "listing_submission_state":
          return resubmitted
            ? { can_submit: false, history: [
                { submission_key: "k2", submitted_at: "2026-11-30T08:00:00Z", moderation_status: null, moderation_reason: null, current: true },
                { submission_key: "k1", submitted_at: "2026-11-28T08:00:00Z", moderation_status: "rejected", moderation_reason: "标题含有夸大用语", current: false },
              ] }
            : { can_submit: true, history: [
                { submission_key: "k1", submitted_at: "2026-11-28T08:00:00Z", moderation_status: "rejected", moderation_reason: "标题含有夸大用语", current: true },
              ] };
        case "save_listing": return { ...(payload.listing as Listing), id: "l1" };
        case "submit_listing":
          resubmitted = true;
          return { ...rejected, submission_key: "k2" };
        case "sync_status": return { online: false, pending: 1, last_sync_at: null, signed_in: true, can_sync: true, open_conflicts: 0, last_error: null, syncing: false, retry_at: null, needs_user: false };
        default: throw new Error(`unexpected command ${command}`);
      }
    });
    await loadLabels();
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  it("is fixed and submitted again, and keeps the rejection in its history", async () => {
    const { container } = render(ListingEditor, { props: { listing: rejected, products: [{ id: "p1", name: "薄皮核桃" }], onClose: vi.fn() } });
    const submit = screen.getByTestId("submit-listing") as HTMLButtonElement;
    await vi.waitFor(() => expect(screen.getByTestId("moderation-reason").textContent).toBe("原因：标题含有夸大用语"));
    await vi.waitFor(() => expect(submit.textContent).toBe("修改后重新提交"));
    await vi.waitFor(() => expect(submit.disabled).toBe(false));
    expect(screen.getByTestId("listing-status").textContent).not.toBe("已提交审核");

    await fireEvent.input(container.querySelector("#listing-title")!, { target: { value: "高坡村薄皮核桃 500g" } });
    await vi.waitFor(() => expect(submit.disabled).toBe(false));
    await fireEvent.click(submit);
    await vi.waitFor(() => expect(calls.some((call) => call.command === "submit_listing")).toBe(true));
    const savedBefore = calls.filter((call) => call.command === "save_listing").pop()?.args.listing as Listing;
    expect(savedBefore.title).toBe("高坡村薄皮核桃 500g");
    await vi.waitFor(() => expect(screen.getByTestId("studio-notice").textContent).toBe("已重新提交，同步后发送到平台"));
    await vi.waitFor(() => expect(submit.textContent).toBe("已提交"));
    expect(submit.disabled).toBe(true);
    expect(screen.getByTestId("moderation-status").textContent).toBe("已提交，等待同步");
    expect(screen.getByTestId("earlier-submission").textContent).toContain("审核未通过");
    expect(screen.getByTestId("earlier-submission").textContent).toContain("标题含有夸大用语");
  });
});
