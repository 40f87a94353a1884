import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import ConflictsPanel from "./ConflictsPanel.svelte";
import { locale } from "../i18n.svelte";
import { nav } from "../nav.svelte";
import type { ConflictView } from "../bindings/ConflictView";

const priceRejected: ConflictView = {
  id: 7, table: "listings", row_id: "l1", field: "price_fen", local_value: "2990", remote_value: "3590",
  remote_actor: "platform", kind: "rejected", reason: "stale_base", created_at: "2026-11-28T10:00:00Z",
  record_name: "云南薄皮核桃 500g", household_id: null, current_value: "3590",
};
const phoneRejected: ConflictView = {
  id: 8, table: "members", row_id: "m1", field: "phone", local_value: "\"13900000000\"", remote_value: "\"13911111111\"",
  remote_actor: "device:ab12", kind: "rejected", reason: "invalid", created_at: "2026-11-28T10:05:00Z",
  record_name: "赵小宝", household_id: "h1", current_value: "\"13911111111\"",
};
const superseded: ConflictView = {
  id: 9, table: "households", row_id: "h1", field: "phone", local_value: "\"13700137001\"", remote_value: "\"13700137002\"",
  remote_actor: "device:cd34", kind: "superseded", reason: null, created_at: "2026-11-28T10:06:00Z",
  record_name: "赵小村", household_id: "h1", current_value: "\"13700137002\"",
};

describe("ConflictsPanel", () => {
  let conflicts: ConflictView[] = [];
  let calls: { command: string; args: Record<string, unknown> }[] = [];

  beforeEach(() => {
    conflicts = [priceRejected, phoneRejected, superseded];
    calls = [];
    locale.language = "zh-CN";
    nav.screen = "settings";
    nav.fix = null;
    mockIPC((command, args) => {
      calls.push({ command, args: args as Record<string, unknown> });
      if (command === "list_conflicts") return conflicts;
      if (command === "sync_status") return { online: true, pending: 1, last_sync_at: null, signed_in: true, can_sync: true, open_conflicts: conflicts.length, last_error: null };
      if (command === "resend_edit") {
        const { id, value } = args as { id: number; value: unknown };
        if (value === 0) {
          throw { code: "validation", message: "validation failed", message_zh: "填写有误", message_en: "Please correct",
            fields: [{ field: "price_fen", code: "must_be_positive", message_zh: "价格必须大于0", message_en: "must be greater than zero" }] };
        }
        conflicts = conflicts.filter((conflict) => conflict.id !== id);
        return null;
      }
      if (command === "resolve_conflict") {
        conflicts = conflicts.filter((conflict) => conflict.id !== (args as { id: number }).id);
        return null;
      }
      throw new Error(`unexpected command ${command}`);
    });
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  it("lists rejected edits with their reason in Chinese, apart from superseded ones", async () => {
    render(ConflictsPanel);
    await vi.waitFor(() => expect(screen.getAllByTestId("rejected-edit")).toHaveLength(2));
    const [price] = screen.getAllByTestId("rejected-edit");
    expect(price.textContent).toContain("商品 · 云南薄皮核桃 500g");
    expect(price.textContent).toContain("平台已改过此值，您的修改基于旧值");
    expect(price.textContent).toContain("¥29.90");
    expect(price.textContent).toContain("¥35.90");
    expect(screen.getAllByTestId("conflict")).toHaveLength(1);
    expect(screen.getByTestId("conflict").textContent).toContain("13700137002");
  });

  it("fixes a rejected price and resends it as yuan typed, refusing a bad value beside the field first", async () => {
    const { container } = render(ConflictsPanel);
    await vi.waitFor(() => expect(screen.getAllByTestId("fix-edit")).toHaveLength(2));
    await fireEvent.click(screen.getAllByTestId("fix-edit")[0]);
    const input = container.querySelector("#fix-value") as HTMLInputElement;
    expect(input.value).toBe("29.90");
    await fireEvent.input(input, { target: { value: "0" } });
    await fireEvent.click(screen.getByTestId("fix-resend"));
    await vi.waitFor(() => expect(container.querySelector('[data-error-for="fix-value"]')?.textContent).toBe("价格必须大于0"));
    await fireEvent.input(input, { target: { value: "32.5" } });
    await fireEvent.click(screen.getByTestId("fix-resend"));
    await vi.waitFor(() => expect(screen.getByTestId("resend-notice").textContent).toBe("已重新排队，下次同步时发送"));
    const resend = calls.filter((call) => call.command === "resend_edit").pop();
    expect(resend?.args).toEqual({ id: 7, value: 3250 });
    await vi.waitFor(() => expect(screen.getAllByTestId("rejected-edit")).toHaveLength(1));
  });

  it("opens a member's own form on the household page to fix a rejected member edit", async () => {
    render(ConflictsPanel);
    await vi.waitFor(() => expect(screen.getAllByTestId("fix-edit")).toHaveLength(2));
    await fireEvent.click(screen.getAllByTestId("fix-edit")[1]);
    expect(nav.screen).toBe("household");
    expect(nav.householdId).toBe("h1");
    expect(nav.fix).toEqual({ conflictId: 8, table: "members", rowId: "m1", field: "phone", value: "\"13900000000\"" });
  });

  it("shows the reason in English when English is chosen", async () => {
    locale.language = "en";
    render(ConflictsPanel);
    await vi.waitFor(() => expect(screen.getAllByTestId("rejected-reason")[0].textContent).toBe("The platform changed this value after you edited it"));
  });
});
