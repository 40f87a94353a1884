import { afterEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import SyncIndicator from "./SyncIndicator.svelte";
import { locale } from "../i18n.svelte";
import { refreshSync } from "../sync.svelte";

afterEach(() => {
  cleanup();
  clearMocks();
});

describe("SyncIndicator", () => {
  it("shows offline, the pending count and never-synced, and follows the count as it rises", async () => {
    locale.language = "zh-CN";
    let pending = 3;
    mockIPC((command) => {
      if (command === "sync_status") return { online: false, pending, last_sync_at: null, signed_in: true, can_sync: false, open_conflicts: 0, last_error: null };
      throw new Error(`unexpected command ${command}`);
    });
    render(SyncIndicator);
    await vi.waitFor(() => expect(screen.getByTestId("pending").textContent).toContain("待同步 3 条"));
    expect(screen.getByTestId("sync-online").textContent).toContain("离线");
    expect(screen.getByTestId("sync-indicator").textContent).toContain("尚未同步");
    pending = 5;
    await refreshSync();
    await vi.waitFor(() => expect(screen.getByTestId("pending-count").textContent).toBe("5"));
  });

  it("shows online and the last sync in English, and a failed sync's reason", async () => {
    locale.language = "en";
    mockIPC((command) => {
      if (command === "sync_status") return { online: true, pending: 0, last_sync_at: "2026-11-28T10:00:00Z", signed_in: true, can_sync: true, open_conflicts: 2, last_error: null };
      if (command === "sync_now")
        throw { code: "network", message: "offline", message_zh: "无法连接服务器", message_en: "Cannot reach the server" };
      if (command === "plugin:event|listen") return 1;
      if (command === "plugin:event|unlisten") return null;
      throw new Error(`unexpected command ${command}`);
    });
    render(SyncIndicator);
    await vi.waitFor(() => expect(screen.getByTestId("sync-online").textContent).toContain("Online"));
    expect(screen.getByTestId("pending").textContent).toContain("0 pending");
    expect(screen.getByTestId("sync-indicator").textContent).toContain("Last sync:");
    expect(screen.getByTestId("conflicts-link").textContent).toContain("Conflicts 2");
    await fireEvent.click(screen.getByTestId("sync-button"));
    await vi.waitFor(() => expect(screen.getByTestId("sync-error").textContent).toBe("Cannot reach the server"));
  });
});
