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
