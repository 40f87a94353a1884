import { afterEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import Lock from "./Lock.svelte";
import { locale } from "../lib/i18n.svelte";

afterEach(() => {
  cleanup();
  clearMocks();
});

describe("The lock screen", () => {
  it("asks for a new passphrase twice and sets it only when both agree", async () => {
    locale.language = "zh-CN";
    const calls: [string, unknown][] = [];
    mockIPC((command, args) => {
      calls.push([command, args]);
      if (command === "set_passphrase") return null;
      throw new Error(`unexpected command ${command}`);
    });
    const onUnlocked = vi.fn();
    render(Lock, { stage: "new", onUnlocked });
    expect(screen.getByText("设置本机密码")).toBeTruthy();
    await fireEvent.input(screen.getByTestId("lock-passphrase"), { target: { value: "302118" } });
    await fireEvent.input(screen.getByTestId("lock-again"), { target: { value: "302119" } });
    await fireEvent.click(screen.getByTestId("lock-submit"));
    expect(screen.getByTestId("lock-error").textContent).toContain("两次输入的密码不一致");
    expect(calls).toEqual([]);
    await fireEvent.input(screen.getByTestId("lock-again"), { target: { value: "302118" } });
    await fireEvent.click(screen.getByTestId("lock-submit"));
    await vi.waitFor(() => expect(onUnlocked).toHaveBeenCalledOnce());
    expect(calls).toEqual([["set_passphrase", { passphrase: "302118" }]]);
  });

  it("shows a wrong passphrase's message and stays locked", async () => {
    locale.language = "zh-CN";
    mockIPC((command) => {
      if (command === "unlock")
        throw { code: "wrong_passphrase", message: "wrong", message_zh: "密码不正确，数据未打开，也未作任何改动", message_en: "The passphrase is wrong" };
      throw new Error(`unexpected command ${command}`);
    });
    const onUnlocked = vi.fn();
    render(Lock, { stage: "locked", onUnlocked });
    await fireEvent.input(screen.getByTestId("lock-passphrase"), { target: { value: "000000" } });
    await fireEvent.click(screen.getByTestId("lock-submit"));
    await vi.waitFor(() => expect(screen.getByTestId("lock-error").textContent).toContain("密码不正确"));
    expect(onUnlocked).not.toHaveBeenCalled();
  });

  it("forgetting the passphrase says what is lost and asks twice", async () => {
    locale.language = "zh-CN";
    const calls: string[] = [];
    mockIPC((command, args) => {
      calls.push(command);
      if (command === "forget_passphrase") {
        expect(args).toEqual({ confirmation: "忘记密码" });
        return null;
      }
      throw new Error(`unexpected command ${command}`);
    });
    const reload = vi.fn();
    Object.defineProperty(window, "location", { value: { ...window.location, reload }, writable: true });
    render(Lock, { stage: "locked", onUnlocked: () => {} });
    await fireEvent.click(screen.getByTestId("lock-forgot"));
    const lines = screen.getByTestId("confirm-lines").textContent ?? "";
    expect(lines).toContain("重新登录后会自动下载回来");
    expect(lines).toContain("尚未同步的修改将永久丢失");
    await fireEvent.click(screen.getByTestId("confirm-ok"));
    expect(calls).toEqual([]);
    expect(screen.getByTestId("confirm-lines").textContent).toContain("无法撤销");
    await fireEvent.click(screen.getByTestId("confirm-ok"));
    await vi.waitFor(() => expect(reload).toHaveBeenCalledOnce());
    expect(calls).toEqual(["forget_passphrase"]);
  });
});
