import { afterEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import Settings from "./Settings.svelte";
import { locale } from "../lib/i18n.svelte";

afterEach(() => {
  cleanup();
  clearMocks();
});

const settings = { language: "zh-CN", server_url: "http://127.0.0.1:8470", username: "demo", signed_in: true, last_sync_at: null, lock_after_seconds: 900 };

describe("Backups in Settings", () => {
  it("writes an encrypted backup to the folder chosen, with its own passphrase when given", async () => {
    locale.language = "zh-CN";
    const asked: unknown[] = [];
    mockIPC((command, args) => {
      if (command === "get_settings") return { settings, data_dir: "/d", database_file: "/d/furrow.db", demo_account: null };
      if (command === "list_conflicts") return [];
      if (command === "export_backup") {
        asked.push(args);
        return "/media/usb/furrow-backup-20261201-120000.db";
      }
      throw new Error(`unexpected command ${command}`);
    });
    render(Settings);
    const folder = (await vi.waitFor(() => {
      const input = screen.getByTestId("backup-folder") as HTMLInputElement;
      if (input.value !== "/d/backups") throw new Error("not loaded yet");
      return input;
    }));
    await fireEvent.input(folder, { target: { value: "/media/usb" } });
    await fireEvent.input(screen.getByTestId("backup-passphrase"), { target: { value: "county-office-9" } });
    await fireEvent.click(screen.getByTestId("backup"));
    await vi.waitFor(() => expect(screen.getByTestId("backup-notice").textContent).toContain("/media/usb/furrow-backup"));
    expect(asked).toEqual([{ directory: "/media/usb", passphrase: "county-office-9" }]);
  });

  it("shows what a backup holds, and asks before discarding unsynced work", async () => {
    locale.language = "zh-CN";
    const restores: unknown[] = [];
    mockIPC((command, args) => {
      if (command === "get_settings") return { settings, data_dir: "/d", database_file: "/d/furrow.db", demo_account: null };
      if (command === "list_conflicts") return [];
      if (command === "sync_status") return { online: false, pending: 0, last_sync_at: null, signed_in: true, can_sync: true, open_conflicts: 0, last_error: null, syncing: false, retry_at: null, needs_user: false };
      if (command === "preview_backup")
        return { file: "/media/usb/b.db", made_at: "2026-11-30 18:02", tables: [["households", 212], ["members", 640], ["sales", 0]], pending_records: 3 };
      if (command === "restore_backup") {
        restores.push(args);
        if (!(args as { discardUnsynced: boolean }).discardUnsynced)
          throw { code: "unsynced_work", message: "x", message_zh: "本机有 4 条记录尚未同步，恢复备份会丢失这些修改", message_en: "4 records" };
        return null;
      }
      throw new Error(`unexpected command ${command}`);
    });
    render(Settings);
    await fireEvent.input(await vi.waitFor(() => screen.getByTestId("restore-file")), { target: { value: "/media/usb/b.db" } });
    await fireEvent.input(screen.getByTestId("restore-passphrase"), { target: { value: "246810" } });
    await fireEvent.click(screen.getByTestId("restore-preview-button"));
    const preview = await vi.waitFor(() => screen.getByTestId("restore-preview"));
    expect(preview.textContent).toContain("2026-11-30 18:02");
    expect(preview.textContent).toContain("农户：212");
    expect(preview.textContent).toContain("家庭成员：640");
    expect(preview.textContent).not.toContain("销售");
    await fireEvent.click(screen.getByTestId("restore-confirm"));
    await vi.waitFor(() => expect(screen.getByTestId("confirm-lines").textContent).toContain("4 条记录尚未同步"));
    expect(restores).toEqual([{ file: "/media/usb/b.db", passphrase: "246810", discardUnsynced: false }]);
    await fireEvent.click(screen.getByTestId("confirm-ok"));
    await vi.waitFor(() => expect(screen.getByTestId("restore-notice").textContent).toBe("已从备份恢复"));
    expect(restores).toHaveLength(2);
    expect(restores[1]).toEqual({ file: "/media/usb/b.db", passphrase: "246810", discardUnsynced: true });
  });
});
