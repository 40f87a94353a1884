import { afterEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import SignIn from "./SignIn.svelte";
import { locale } from "../lib/i18n.svelte";

const settings = { settings: { language: "zh-CN", server_url: "http://127.0.0.1:8470", username: "", signed_in: false, last_sync_at: null }, data_dir: "/tmp/x", database_file: "/tmp/x/furrow.db", demo_account: null };

afterEach(() => {
  cleanup();
  clearMocks();
});

describe("SignIn on a new device", () => {
  it("says that one sign-in is needed when no village is known yet, and stays", async () => {
    locale.language = "zh-CN";
    mockIPC((command) => {
      if (command === "get_settings") return settings;
      if (command === "work_offline")
        throw {
          code: "no_villages", message: "no villages",
          message_zh: "本设备还没有任何村的资料，离线无法登记。请先联网登录一次，取得您负责的村；之后没有信号也能工作。",
          message_en: "This device knows no village yet, so nothing could be recorded offline. Sign in once while online to get your villages; after that you can work without a signal.",
        };
      throw new Error(`unexpected command ${command}`);
    });
    const onDone = vi.fn();
    render(SignIn, { props: { onDone } });
    await fireEvent.click(screen.getByTestId("work-offline"));
    await vi.waitFor(() => expect(screen.getByRole("alert").textContent).toContain("请先联网登录一次"));
    expect(onDone).not.toHaveBeenCalled();
    expect(screen.getByTestId("signin-form")).toBeTruthy();
  });

  it("opens the app offline when the device knows its villages", async () => {
    locale.language = "zh-CN";
    mockIPC((command) => {
      if (command === "get_settings") return settings;
      if (command === "work_offline") return { ...settings.settings, signed_in: true };
      throw new Error(`unexpected command ${command}`);
    });
    const onDone = vi.fn();
    render(SignIn, { props: { onDone } });
    await fireEvent.click(screen.getByTestId("work-offline"));
    await vi.waitFor(() => expect(onDone).toHaveBeenCalledOnce());
  });
});

describe("SignIn to a server over plain http", () => {
  const insecure = {
    code: "validation", message: "please complete the form", message_zh: "请填写完整", message_en: "please complete the form",
    fields: [{
      field: "server_url", code: "insecure_address",
      message_zh: "192.168.1.20 的地址未加密（http）：密码、登录凭证和农户的个人信息会以明文经过网络，途中任何人（例如乡镇共用的 Wi-Fi 上的人）都能看到。请使用 https:// 开头的地址；确需使用时，可在设置中允许此地址使用 http。",
      message_en: "the address of 192.168.1.20 is not encrypted (http): the password, the sign-in tokens and the households' personal data would cross the network readable by anyone on the way (e.g. on the township's shared Wi-Fi). Use an https:// address; if you must use this one, allow http for it in Settings.",
    }],
  };

  for (const [language, expected] of [["zh-CN", "途中任何人"], ["en", "readable by anyone on the way"]] as const) {
    it(`shows why beside the address field (${language}) and does not sign in`, async () => {
      locale.language = language;
      const sent: Record<string, unknown>[] = [];
      mockIPC((command, args) => {
        if (command === "get_settings") return settings;
        if (command === "sign_in") {
          sent.push(args as Record<string, unknown>);
          throw insecure;
        }
        throw new Error(`unexpected command ${command}`);
      });
      const onDone = vi.fn();
      render(SignIn, { props: { onDone } });
      const address = await vi.waitFor(() => {
        const input = screen.getByLabelText(/服务器地址|Server address/) as HTMLInputElement;
        expect(input.value).toBe("http://127.0.0.1:8470");
        return input;
      });
      await fireEvent.input(address, { target: { value: "http://192.168.1.20:8470" } });
      await fireEvent.input(screen.getByLabelText(/用户名|User name/), { target: { value: "demo" } });
      await fireEvent.input(screen.getByLabelText(/密码|Password/), { target: { value: "secret" } });
      await fireEvent.submit(screen.getByTestId("signin-form"));
      const beside = await vi.waitFor(() => {
        const element = document.querySelector("[data-error-for=signin-server]");
        expect(element).not.toBeNull();
        return element!;
      });
      expect(beside.textContent).toContain(expected);
      expect(beside.textContent).toContain("192.168.1.20");
      expect(screen.queryByTestId("signin-error")).toBeNull();
      expect(sent[0]).toMatchObject({ serverUrl: "http://192.168.1.20:8470", username: "demo" });
      expect(onDone).not.toHaveBeenCalled();
    });
  }

  it("lets a new device allow plain http for that one host, after the warning, and then signs in", async () => {
    locale.language = "zh-CN";
    const allowed: string[] = [];
    let attempts = 0;
    mockIPC((command, args) => {
      if (command === "get_settings") return settings;
      if (command === "allow_insecure_host") {
        allowed.push((args as { host: string }).host);
        return { ...settings.settings, insecure_hosts: allowed };
      }
      if (command === "sign_in") {
        attempts += 1;
        if (!allowed.includes("192.168.1.20")) throw insecure;
        return { ...settings.settings, server_url: "http://192.168.1.20:8470", signed_in: true };
      }
      throw new Error(`unexpected command ${command}`);
    });
    const onDone = vi.fn();
    render(SignIn, { props: { onDone } });
    const address = await vi.waitFor(() => {
      const input = screen.getByLabelText(/服务器地址/) as HTMLInputElement;
      expect(input.value).toBe("http://127.0.0.1:8470");
      return input;
    });
    expect(screen.queryByTestId("signin-allow-insecure")).toBeNull();
    await fireEvent.input(address, { target: { value: "http://192.168.1.20:8470" } });
    await fireEvent.input(screen.getByLabelText(/用户名/), { target: { value: "demo" } });
    await fireEvent.input(screen.getByLabelText(/密码/), { target: { value: "secret" } });
    await fireEvent.submit(screen.getByTestId("signin-form"));
    await fireEvent.click(await vi.waitFor(() => screen.getByTestId("signin-allow-insecure")));
    expect(screen.getByTestId("confirm-dialog").textContent).toContain("192.168.1.20");
    expect(screen.getByTestId("confirm-lines").textContent).toContain("途中任何人");
    // Cancelling allows nothing and signs in to nothing.
    await fireEvent.click(screen.getByTestId("confirm-cancel"));
    expect(allowed).toEqual([]);
    expect(onDone).not.toHaveBeenCalled();
    await fireEvent.click(screen.getByTestId("signin-allow-insecure"));
    await fireEvent.click(screen.getByTestId("confirm-ok"));
    await vi.waitFor(() => expect(onDone).toHaveBeenCalledOnce());
    expect(allowed).toEqual(["192.168.1.20"]);
    expect(attempts).toBe(2);
  });
});
