import { afterEach, describe, expect, it, vi } from "vitest";
import { render, screen, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import SyncIndicator from "./SyncIndicator.svelte";
import { locale } from "../i18n.svelte";
import { refreshSync, followSync, syncState } from "../sync.svelte";

type Status = Record<string, unknown>;
const base: Status = { online: false, pending: 0, last_sync_at: null, signed_in: true, can_sync: true, open_conflicts: 0, last_error: null, syncing: false, retry_at: null, needs_user: false };

afterEach(() => {
  cleanup();
  clearMocks();
});

describe("The sync indicator says only what is true", () => {
  it("promises a sync by itself only when one will happen, and names the retry's time", async () => {
    locale.language = "zh-CN";
    let status: Status = { ...base, pending: 11 };
    mockIPC((command) => {
      if (command === "sync_status") return status;
      throw new Error(`unexpected command ${command}`);
    });
    render(SyncIndicator);
    await vi.waitFor(() => expect(screen.getByTestId("sync-hint").textContent).toBe("连上服务器后会自动同步"));

    status = { ...base, online: true, pending: 11, retry_at: new Date(Date.now() + 30_000).toISOString() };
    await refreshSync();
    await vi.waitFor(() => expect(screen.getByTestId("sync-hint").textContent).toMatch(/^同步未完成，(29|30) 秒后自动重试$/));

    status = { ...base, online: true, pending: 11, needs_user: true };
    await refreshSync();
    await vi.waitFor(() => expect(screen.getByTestId("sync-hint").textContent).toBe("需要重新登录后才能同步"));

    // Without an account nothing syncs: no promise of it.
    status = { ...base, can_sync: false, signed_in: false, pending: 4 };
    await refreshSync();
    await vi.waitFor(() => expect(screen.getByTestId("sync-hint").textContent).toBe("尚未登录，数据只在本机"));
    expect(screen.getByTestId("sync-indicator").textContent).not.toContain("自动");
  });

  it("shows the newest answer when an older, slower one arrives after it", async () => {
    locale.language = "zh-CN";
    // The first read began while the server still answered, and comes back last.
    const answers: { status: Status; delay: number }[] = [
      { status: { ...base, online: true, pending: 0 }, delay: 200 },
      { status: { ...base, online: false, pending: 1 }, delay: 10 },
    ];
    let asked = 0;
    mockIPC(async (command) => {
      if (command !== "sync_status") throw new Error(`unexpected command ${command}`);
      const answer = answers[Math.min(asked++, answers.length - 1)];
      await new Promise((resolve) => setTimeout(resolve, answer.delay));
      return answer.status;
    });
    const slow = refreshSync();
    const fast = refreshSync();
    await Promise.all([slow, fast]);
    expect(syncState.status?.online).toBe(false);
    expect(syncState.status?.pending).toBe(1);
  });

  it("follows the syncs the app makes by itself, without the button", async () => {
    locale.language = "en";
    mockIPC((command) => {
      if (command === "sync_status") return { ...base, pending: 3 };
      throw new Error(`unexpected command ${command}`);
    }, { shouldMockEvents: true });
    const stop = await followSync();
    render(SyncIndicator);
    await vi.waitFor(() => expect(screen.getByTestId("pending-count").textContent).toBe("3"));
    expect(screen.getByTestId("sync-hint").textContent).toBe("Syncs by itself once the server answers");
    // The server came back: the app synced by itself and says so.
    await emit("sync-status", { ...base, online: true, pending: 0, last_sync_at: "2026-12-01T10:00:00Z" });
    await vi.waitFor(() => expect(screen.getByTestId("pending-count").textContent).toBe("0"));
    expect(screen.getByTestId("sync-online").textContent).toContain("Online");
    expect(screen.queryByTestId("sync-hint")).toBeNull();
    stop();
  });
});
