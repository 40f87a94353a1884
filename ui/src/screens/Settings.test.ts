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

describe("A server address over plain http", () => {
  const insecureError = (host: string) => ({
    code: "validation", message: "the server address is not valid", message_zh: "服务器地址有误", message_en: "the server address is not valid",
    fields: [{
      field: "server_url", code: "insecure_address",
      message_zh: `${host} 的地址未加密（http）：密码、登录凭证和农户的个人信息会以明文经过网络，途中任何人（例如乡镇共用的 Wi-Fi 上的人）都能看到。`,
      message_en: `the address of ${host} is not encrypted (http): the password, the sign-in tokens and the households' personal data would cross the network readable by anyone on the way.`,
    }],
  });

  // A backend that refuses plain http to any host not allowed, as the shell does.
  function backend() {
    const calls: [string, Record<string, unknown>][] = [];
    const settings = { language: "zh-CN", server_url: "http://127.0.0.1:8470", username: "", signed_in: true, last_sync_at: null, lock_after_seconds: 900, insecure_hosts: [] as string[] };
    mockIPC((command, args) => {
      const values = (args ?? {}) as Record<string, unknown>;
      calls.push([command, values]);
      if (command === "get_settings") return { settings: { ...settings, insecure_hosts: [...settings.insecure_hosts] }, data_dir: "/d", database_file: "/d/furrow.db", demo_account: null };
      if (command === "sync_status") return { online: false, pending: 0, last_sync_at: null, signed_in: false, can_sync: false, open_conflicts: 0, last_error: null, syncing: false, retry_at: null, needs_user: false };
      if (command === "list_conflicts") return [];
      if (command === "set_server_url") {
        const url = new URL(String(values.serverUrl));
        if (url.protocol === "http:" && url.hostname !== "127.0.0.1" && !settings.insecure_hosts.includes(url.hostname)) throw insecureError(url.hostname);
        settings.server_url = String(values.serverUrl);
        return { ...settings };
      }
      if (command === "allow_insecure_host") {
        settings.insecure_hosts.push(String(values.host));
        return { ...settings, insecure_hosts: [...settings.insecure_hosts] };
      }
      if (command === "forget_insecure_host") {
        settings.insecure_hosts = settings.insecure_hosts.filter((host) => host !== values.host);
        return { ...settings, insecure_hosts: [...settings.insecure_hosts] };
      }
      throw new Error(`unexpected command ${command}`);
    });
    return { calls, settings };
  }

  async function typeAddress(address: string) {
    const input = await vi.waitFor(() => {
      const element = document.getElementById("settings-server") as HTMLInputElement;
      expect(element.value).toBe("http://127.0.0.1:8470");
      return element;
    });
    await fireEvent.input(input, { target: { value: address } });
    await fireEvent.submit(screen.getByTestId("server-form"));
  }

  it("shows why beside the address, and allows the host only once the risk is confirmed", async () => {
    locale.language = "zh-CN";
    const { calls, settings } = backend();
    render(Settings);
    await typeAddress("http://192.168.1.20:8470");
    await vi.waitFor(() => expect(document.querySelector("[data-error-for=settings-server]")?.textContent).toContain("途中任何人"));
    expect(settings.server_url).toBe("http://127.0.0.1:8470");

    // The exception is a box to tick, and ticking it only asks.
    const box = screen.getByTestId("allow-insecure") as HTMLInputElement;
    expect(screen.getByTestId("insecure-exception").textContent).toContain("允许对此地址使用不加密的 http");
    expect(box.checked).toBe(false);
    await fireEvent.click(box);
    const dialog = await vi.waitFor(() => screen.getByTestId("confirm-dialog"));
    expect(dialog.textContent).toContain("192.168.1.20");
    expect(screen.getByTestId("confirm-lines").textContent).toContain("明文");
    expect(screen.getByTestId("confirm-lines").textContent).toContain("乡镇共用的 Wi-Fi");
    expect(screen.getByTestId("confirm-ok").textContent).toBe("允许 192.168.1.20 使用 http");
    expect(box.checked).toBe(false);
    await fireEvent.click(screen.getByTestId("confirm-cancel"));
    expect(screen.queryByTestId("confirm-dialog")).toBeNull();
    expect(calls.map(([command]) => command)).not.toContain("allow_insecure_host");
    expect(settings.insecure_hosts).toEqual([]);

    // Confirmed: that host is allowed, and the address is saved at once.
    await fireEvent.click(screen.getByTestId("allow-insecure"));
    await fireEvent.click(await vi.waitFor(() => screen.getByTestId("confirm-ok")));
    await vi.waitFor(() => expect(screen.getByTestId("server-notice").textContent).toBe("已保存"));
    expect(calls.filter(([command]) => command === "allow_insecure_host")).toEqual([["allow_insecure_host", { host: "192.168.1.20" }]]);
    expect(settings.server_url).toBe("http://192.168.1.20:8470");
    expect(document.querySelector("[data-error-for=settings-server]")).toBeNull();
    expect((screen.getByTestId("allow-insecure") as HTMLInputElement).checked).toBe(true);
    expect(screen.getByTestId("insecure-host").textContent).toContain("192.168.1.20");

    // Withdrawn again: the list is empty and saving the address is refused again.
    await fireEvent.click(screen.getByTestId("forget-insecure"));
    await vi.waitFor(() => expect(screen.queryByTestId("insecure-hosts")).toBeNull());
    expect(calls.filter(([command]) => command === "forget_insecure_host")).toEqual([["forget_insecure_host", { host: "192.168.1.20" }]]);
    await fireEvent.submit(screen.getByTestId("server-form"));
    await vi.waitFor(() => expect(document.querySelector("[data-error-for=settings-server]")?.textContent).toContain("192.168.1.20"));
  });

  it("explains the risk in English too, and offers no exception for an address that was not refused", async () => {
    locale.language = "en";
    backend();
    render(Settings);
    await typeAddress("https://sync.example.cn");
    await vi.waitFor(() => expect(screen.getByTestId("server-notice").textContent).toBe("Saved"));
    expect(screen.queryByTestId("allow-insecure")).toBeNull();
    await fireEvent.input(document.getElementById("settings-server")!, { target: { value: "http://server.township.local:8470" } });
    await fireEvent.submit(screen.getByTestId("server-form"));
    await vi.waitFor(() => expect(document.querySelector("[data-error-for=settings-server]")?.textContent).toContain("readable by anyone on the way"));
    expect(screen.getByTestId("insecure-exception").textContent).toContain("Allow unencrypted http for this address");
    await fireEvent.click(screen.getByTestId("allow-insecure"));
    const lines = await vi.waitFor(() => screen.getByTestId("confirm-lines"));
    expect(lines.textContent).toContain("the password, the sign-in tokens and the households' personal data");
    expect(lines.textContent).toContain("Only server.township.local is allowed");
    expect(screen.getByTestId("confirm-ok").textContent).toBe("Allow http for server.township.local");
  });
});
