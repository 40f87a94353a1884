import { describe, expect, it, vi } from "vitest";
import { oneAtATime } from "./forms";

describe("oneAtATime", () => {
  it("runs one save at a time and always stops the browser's own submit", async () => {
    let finish: () => void = () => {};
    const handler = vi
      .fn<(event: Event) => Promise<void>>()
      .mockImplementationOnce(() => new Promise<void>((resolve) => (finish = resolve)))
      .mockResolvedValue(undefined);
    const submit = oneAtATime(handler);
    const events = [new Event("submit", { cancelable: true }), new Event("submit", { cancelable: true })];
    const first = submit(events[0]);
    await submit(events[1]);
    expect(handler).toHaveBeenCalledTimes(1);
    expect(events.every((event) => event.defaultPrevented)).toBe(true);
    finish();
    await first;
    await submit(new Event("submit", { cancelable: true }));
    expect(handler).toHaveBeenCalledTimes(2);
  });

  it("lets the next save run after one that failed", async () => {
    const submit = oneAtATime(vi.fn().mockRejectedValueOnce(new Error("refused")).mockResolvedValue(undefined));
    await expect(submit(new Event("submit", { cancelable: true }))).rejects.toThrow("refused");
    await expect(submit(new Event("submit", { cancelable: true }))).resolves.toBeUndefined();
  });
});
