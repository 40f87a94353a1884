import { afterEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import Settings from "./Settings.svelte";
import { locale } from "../lib/i18n.svelte";

afterEach(() => {
  cleanup();
  clearMocks();
});

describe("Signing out", () => {
  it("says how much is unsynced, keeps it, and signs out only when confirmed", async () => {
    locale.language = "zh-CN";
    const calls: string[] = [];
    mockIPC((command) => {
      calls.push(command);
      if (command === "get_settings")
        return { settings: { language: "zh-CN", server_url: "http://127.0.0.1:8470", username: "demo", signed_in: true, last_sync_at: null }, data_dir: "/d", database_file: "/d/furrow.db", demo_account: null };
      if (command === "sync_status") return { online: false, pending: 7, last_sync_at: null, signed_in: true, can_sync: true, open_conflicts: 0, last_error: null, syncing: false, retry_at: null, needs_user: false };
      if (command === "list_conflicts") return [];
      if (command === "sign_out") return { language: "zh-CN", server_url: "http://127.0.0.1:8470", username: "demo", signed_in: false, last_sync_at: null };
      throw new Error(`unexpected command ${command}`);
    });
    const reload = vi.fn();
    Object.defineProperty(window, "location", { value: { ...window.location, reload }, writable: true });
    render(Settings);
    await fireEvent.click(await vi.waitFor(() => screen.getByTestId("sign-out")));
    await vi.waitFor(() => expect(screen.getByTestId("confirm-lines").textContent).toContain("还有 7 条记录尚未同步"));
    await fireEvent.click(screen.getByTestId("confirm-cancel"));
    expect(calls).not.toContain("sign_out");
    await fireEvent.click(screen.getByTestId("sign-out"));
    await fireEvent.click(await vi.waitFor(() => screen.getByTestId("confirm-ok")));
    await vi.waitFor(() => expect(reload).toHaveBeenCalledOnce());
    expect(calls).toContain("sign_out");
  });
});
