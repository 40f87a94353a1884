import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import Roster from "./Roster.svelte";
import { loadLabels } from "../lib/labels.svelte";
import { locale } from "../lib/i18n.svelte";
import { nav } from "../lib/nav.svelte";
import { enumFixture } from "../lib/test-support";
import type { RosterQuery } from "../lib/bindings/RosterQuery";

// Three households as the core holds them, with their pinyin keys; the mock orders and filters
// them as the core does, so the test sees what the window would.
const households = [
  { id: "h1", register_no: "003", head_name: "王建华", pinyin: "wang jian hua", initials: "wjh", phone: "13900000001", village_name: "青山村", member_count: 2 },
  { id: "h2", register_no: "001", head_name: "张伟", pinyin: "zhang wei", initials: "zw", phone: "13900000003", village_name: "青山村", member_count: 4 },
  { id: "h3", register_no: "002", head_name: "安娜", pinyin: "an na", initials: "an", phone: "13900000002", village_name: "安平村", member_count: 1 },
];

function answer(query: RosterQuery) {
  const text = query.text?.toLowerCase();
  const found = households.filter((row) => !text || row.head_name.includes(text) || row.initials.startsWith(text) || row.pinyin.replaceAll(" ", "").includes(text));
  const key = (row: (typeof households)[number]): string | number =>
    ({ register_no: row.register_no, head_name: row.pinyin, village: row.village_name, phone: row.phone, member_count: row.member_count } as Record<string, string | number>)[query.sort ?? "register_no"] ?? row.register_no;
  found.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0) * (query.descending ? -1 : 1));
  return found.slice(query.offset ?? 0, (query.offset ?? 0) + (query.limit ?? 200)).map((row) => ({
    id: row.id, register_no: row.register_no, head_name: row.head_name, phone: row.phone, village_id: "v1", village_name: row.village_name,
    poverty_status: null, monitoring_type: null, main_cause: null, member_count: row.member_count, closed_reason: null, closed_on: null,
  }));
}

// The list measures its height to render only the rows in view; jsdom has no layout to observe.
globalThis.ResizeObserver ??= class {
  observe() {}
  unobserve() {}
  disconnect() {}
} as unknown as typeof ResizeObserver;

describe("The roster", () => {
  let queries: RosterQuery[] = [];

  beforeEach(async () => {
    queries = [];
    locale.language = "zh-CN";
    nav.screen = "roster";
    nav.householdId = null;
    mockIPC((command, args) => {
      const payload = (args ?? {}) as Record<string, unknown>;
      switch (command) {
        case "enum_labels": return enumFixture;
        case "list_villages": return [{ id: "v1", name: "青山村" }];
        case "record_sync_states": return [];
        case "search_households": {
          const query = payload.query as RosterQuery;
          queries.push(query);
          return answer(query);
        }
        default: throw new Error(`unexpected command ${command}`);
      }
    });
    await loadLabels();
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  const names = () => screen.queryAllByTestId("roster-row").map((row) => row.querySelector(".name")?.textContent);

  it("lists the households in the pinyin order of the head's name, and orders by a column when its header is clicked", async () => {
    render(Roster);
    await vi.waitFor(() => expect(names()).toEqual(["安娜", "王建华", "张伟"]));
    expect(queries[0]).toMatchObject({ sort: "head_name", descending: false });
    expect(screen.getByTestId("sort-head_name").getAttribute("aria-sort")).toBe("ascending");
    expect(screen.getByTestId("sort-head_name").textContent).toBe("户主▲");

    await fireEvent.click(screen.getByTestId("sort-head_name"));
    await vi.waitFor(() => expect(names()).toEqual(["张伟", "王建华", "安娜"]));
    expect(screen.getByTestId("sort-head_name").getAttribute("aria-sort")).toBe("descending");
    expect(screen.getByTestId("sort-head_name").textContent).toBe("户主▼");

    await fireEvent.click(screen.getByTestId("sort-register_no"));
    await vi.waitFor(() => expect(names()).toEqual(["张伟", "安娜", "王建华"]));
    expect(queries.at(-1)).toMatchObject({ sort: "register_no", descending: false });
    expect(screen.getByTestId("sort-head_name").getAttribute("aria-sort")).toBe("none");
    expect(screen.getByTestId("sort-register_no").textContent).toBe("户编号▲");

    await fireEvent.click(screen.getByTestId("sort-member_count"));
    await vi.waitFor(() => expect(names()).toEqual(["安娜", "王建华", "张伟"]));
    await fireEvent.click(screen.getByTestId("sort-member_count"));
    await vi.waitFor(() => expect(names()).toEqual(["张伟", "王建华", "安娜"]));
    expect(queries.at(-1)).toMatchObject({ sort: "member_count", descending: true });

    // A search keeps the order chosen.
    await fireEvent.input(screen.getByTestId("roster-search"), { target: { value: "青" } });
    await vi.waitFor(() => expect(queries.at(-1)).toMatchObject({ text: "青", sort: "member_count", descending: true }));
  });

  it("opens the household on Enter when the search finds exactly one, even typed faster than the search", async () => {
    render(Roster);
    await vi.waitFor(() => expect(names()).toHaveLength(3));
    const box = screen.getByTestId("roster-search");
    await fireEvent.input(box, { target: { value: "wjh" } });
    // Enter before the search after typing has run: the search is run for what was typed.
    await fireEvent.keyDown(box, { key: "Enter" });
    await vi.waitFor(() => expect(nav.screen).toBe("household"));
    expect(nav.householdId).toBe("h1");
  });

  it("stays on the roster on Enter when the search finds several or none", async () => {
    render(Roster);
    await vi.waitFor(() => expect(names()).toHaveLength(3));
    const box = screen.getByTestId("roster-search");
    await fireEvent.input(box, { target: { value: "anna" } });
    await vi.waitFor(() => expect(queries.at(-1)?.text).toBe("anna"));
    await vi.waitFor(() => expect(names()).toEqual(["安娜"]));
    await fireEvent.input(box, { target: { value: "a" } });
    await fireEvent.keyDown(box, { key: "Enter" });
    await vi.waitFor(() => expect(queries.at(-1)?.text).toBe("a"));
    await vi.waitFor(() => expect(names().length).toBeGreaterThan(1));
    expect(nav.screen).toBe("roster");

    await fireEvent.input(box, { target: { value: "xyz" } });
    await fireEvent.keyDown(box, { key: "Enter" });
    await vi.waitFor(() => expect(screen.queryByText("没有符合条件的农户")).not.toBeNull());
    expect(nav.screen).toBe("roster");
  });
});
