import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import PhotoStrip from "./PhotoStrip.svelte";
import { locale } from "../../i18n.svelte";
import type { PhotoView } from "../../bindings/PhotoView";

/** A photo of listing l1 as the strip shows it. */
function photo(id: string, kind: "main" | "detail", caption: string | null): PhotoView {
  return {
    photo: { id, owner_type: "listing", owner_id: "l1", kind, caption, width_px: 800, height_px: 800, order_index: 0 },
    thumbnail: "data:image/jpeg;base64,AAAA",
    upload: { state: "pending_upload", uploaded_bytes: 0, size: 1000, last_error: null },
  } as PhotoView;
}

const main = photo("p1", "main", "核桃特写");
const detail = photo("p2", "detail", null);

/** A promise settled from outside, to hold a command's answer back while the strip waits. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
}

describe("The photo strip", () => {
  let calls: { command: string; args: unknown }[] = [];
  let imports: ReturnType<typeof deferred<PhotoView[]>>[] = [];

  beforeEach(() => {
    calls = [];
    imports = [];
    mockIPC((command, args) => {
      calls.push({ command, args });
      if (command === "delete_photo") return [{ ...detail, photo: { ...detail.photo, kind: "main" } }];
      if (command === "import_photo") {
        const answer = deferred<PhotoView[]>();
        imports.push(answer);
        return answer.promise;
      }
      throw new Error(`unexpected command ${command}`);
    });
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  function pick(names: string[]) {
    const input = screen.getByTestId("photo-input") as HTMLInputElement;
    const files = names.map((name) => new File([new Uint8Array([0xff, 0xd8, 0xff])], name, { type: "image/jpeg" }));
    return fireEvent.change(input, { target: { files } });
  }

  it("asks before deleting a photo, naming it, and keeps it on 取消", async () => {
    locale.language = "zh-CN";
    const onchange = vi.fn();
    render(PhotoStrip, { props: { listingId: "l1", photos: [main, detail], ensureSaved: vi.fn(), onchange } });
    await fireEvent.click(screen.getAllByTestId("photo-delete")[0]);
    const dialog = screen.getByTestId("confirm-dialog");
    expect(dialog.textContent).toContain("删除照片？");
    expect(screen.getByTestId("confirm-lines").textContent).toContain("第 1 张照片（核桃特写）");
    expect(screen.getByTestId("confirm-lines").textContent).toContain("这是主图：删除后由下一张照片作主图");
    await fireEvent.click(screen.getByTestId("confirm-cancel"));
    expect(screen.queryByTestId("confirm-dialog")).toBeNull();
    expect(calls.filter((call) => call.command === "delete_photo")).toHaveLength(0);
    expect(screen.getAllByTestId("photo-card")).toHaveLength(2);

    locale.language = "en";
    await fireEvent.click(screen.getAllByTestId("photo-delete")[1]);
    expect(screen.getByTestId("confirm-dialog").textContent).toContain("Delete the photo?");
    expect(screen.getByTestId("confirm-lines").textContent).toBe("Photo 2");
    await fireEvent.click(screen.getByTestId("confirm-ok"));
    await vi.waitFor(() => expect(screen.getAllByTestId("photo-card")).toHaveLength(1));
    expect(calls.filter((call) => call.command === "delete_photo").map((call) => call.args)).toEqual([{ photoId: "p2" }]);
    expect(screen.queryByTestId("confirm-dialog")).toBeNull();
    expect(onchange).toHaveBeenCalledOnce();
  });

  it("shows each photo being processed and disables adding until it is done", async () => {
    locale.language = "zh-CN";
    render(PhotoStrip, { props: { listingId: "l1", photos: [main], ensureSaved: vi.fn(), onchange: vi.fn() } });
    const input = screen.getByTestId("photo-input") as HTMLInputElement;
    expect(input.disabled).toBe(false);
    await pick(["a.jpg", "b.jpg"]);
    await vi.waitFor(() => expect(imports).toHaveLength(1));
    const cards = screen.getAllByTestId("photo-adding");
    expect(cards).toHaveLength(2);
    expect(cards[0].textContent).toContain("处理中…");
    expect(cards[0].textContent).toContain("a.jpg");
    expect(cards[1].textContent).toContain("b.jpg");
    expect(input.disabled).toBe(true);
    expect(screen.getByTestId("photo-add").getAttribute("aria-disabled")).toBe("true");
    expect(screen.getByTestId("photo-strip").getAttribute("aria-busy")).toBe("true");

    imports[0].resolve([main, photo("p3", "detail", null)]);
    await vi.waitFor(() => expect(screen.getAllByTestId("photo-adding")).toHaveLength(1));
    expect(screen.getByTestId("photo-adding").textContent).toContain("b.jpg");
    expect(screen.getAllByTestId("photo-card")).toHaveLength(2);
    expect(input.disabled).toBe(true);

    locale.language = "en";
    await vi.waitFor(() => expect(screen.getByTestId("photo-adding").textContent).toContain("Processing..."));
    await vi.waitFor(() => expect(imports).toHaveLength(2));
    imports[1].resolve([main, photo("p3", "detail", null), photo("p4", "detail", null)]);
    await vi.waitFor(() => expect(screen.queryAllByTestId("photo-adding")).toHaveLength(0));
    expect(screen.getAllByTestId("photo-card")).toHaveLength(3);
    expect(input.disabled).toBe(false);
    expect(screen.queryByTestId("photo-error")).toBeNull();
  });

  it("says why a photo could not be added, in the user's language", async () => {
    locale.language = "zh-CN";
    render(PhotoStrip, { props: { listingId: "l1", photos: [main], ensureSaved: vi.fn(), onchange: vi.fn() } });
    await pick(["坏.jpg"]);
    await vi.waitFor(() => expect(imports).toHaveLength(1));
    imports[0].reject({
      code: "validation", message: "validation failed", message_zh: "填写有误", message_en: "Please correct",
      fields: [{ field: "file", code: "unreadable", message_zh: "无法识别的图片", message_en: "is not an image that can be read" }],
    });
    await vi.waitFor(() => expect(screen.getByTestId("photo-error").textContent).toBe("坏.jpg：无法识别的图片"));
    expect(screen.queryAllByTestId("photo-adding")).toHaveLength(0);
    expect((screen.getByTestId("photo-input") as HTMLInputElement).disabled).toBe(false);
    locale.language = "en";
    await vi.waitFor(() => expect(screen.getByTestId("photo-error").textContent).toBe("坏.jpg: is not an image that can be read"));
  });
});
