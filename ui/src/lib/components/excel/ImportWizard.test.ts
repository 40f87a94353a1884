import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import { mockIPC, clearMocks } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import ImportWizard from "./ImportWizard.svelte";
import ExportPanel from "./ExportPanel.svelte";
import { locale } from "../../i18n.svelte";

const fields = [
  { key: "register_no", zh: "户编号", en: "Register no.", level: "household", required: false },
  { key: "name", zh: "姓名", en: "Name", level: "member", required: true },
  { key: "id_card_no", zh: "身份证号", en: "ID card number", level: "member", required: false },
];

const issue = (row: number, letter: string, header: string) => ({
  row, column: letter, field: "id_card_no", code: "invalid_id_card",
  message_zh: `「花名册」第 ${row} 行 ${letter} 列（${header}）：身份证号不正确`,
  message_en: `Sheet "花名册", row ${row}, column ${letter} (ID card number): is not a valid ID card number`,
});

/** A preview as the core answers: column C guessed as nothing until the user maps it. */
function preview(mapping: (string | null)[], duplicates = "update") {
  const named = mapping[1] === "name";
  return {
    file_name: "花名册.xlsx", format: "xlsx", encoding: null, sheet: "花名册", sheets: ["花名册"], header_row: 2,
    columns: [
      { column: 0, letter: "A", header: "户编号", field: mapping[0] },
      { column: 1, letter: "B", header: "成员", field: mapping[1] },
      { column: 2, letter: "C", header: "证件号码", field: mapping[2] },
    ],
    fields,
    missing: named ? [] : ["name"],
    needs_village: false,
    rows: [
      { row: 3, name: "赵大海", head_name: "赵大海", register_no: "X001", status: named ? "new" : "error", issues: [] },
      { row: 4, name: "钱小红", head_name: "赵大海", register_no: "X001", status: "error", issues: [issue(4, "C", "证件号码")] },
      { row: 5, name: "孙二", head_name: "孙二", register_no: "X002", status: duplicates === "skip" ? "skip" : "update", issues: [] },
    ],
    existing: [{ row: 5, head_name: "孙二", register_no: "X002", existing_id: "h9", existing_head_name: "孙二", reason: "same_register_no" }],
    counts: { rows: 3, rows_to_import: named ? (duplicates === "skip" ? 1 : 2) : 0, rows_with_errors: named ? 1 : 2, rows_skipped: duplicates === "skip" ? 1 : 0, households: 2, households_new: 1, households_existing: 1, households_with_errors: 0 },
    options: { sheet: "花名册", mapping, duplicates, village_id: null },
  };
}

describe("The import wizard", () => {
  let calls: { command: string; args: unknown }[] = [];
  let earlier: unknown[] = [];

  beforeEach(() => {
    calls = [];
    earlier = [];
    locale.language = "zh-CN";
    mockIPC((command, args) => {
      calls.push({ command, args });
      const payload = (args ?? {}) as Record<string, any>;
      if (command === "list_villages") return [{ id: "v1", name: "青山村" }];
      if (command === "excel_import_open") return preview(["register_no", null, "id_card_no"]);
      if (command === "excel_import_preview") return preview(payload.options.mapping, payload.options.duplicates);
      if (command === "excel_import_run") {
        void emit("excel-import-progress", { rows_done: 1, rows_total: 2 });
        return { import_id: "i1", households_created: 1, households_updated: 1, members_created: 1, members_updated: 0, rows_not_imported: 1 };
      }
      if (command === "excel_import_undo") return { households_removed: 1, members_removed: 1, records_restored: 1, records_kept: 0 };
      if (command === "excel_imports") return earlier;
      if (command === "list_sessions") return [{ id: "s1", title: "商品拍照", date: "2026-11-30" }];
      if (command === "excel_export") return `/data/exports/${payload.report}.xlsx`;
      throw new Error(`unexpected command ${command}`);
    }, { shouldMockEvents: true });
  });

  afterEach(() => {
    cleanup();
    clearMocks();
  });

  async function choose() {
    const file = new File([new Uint8Array([0x50, 0x4b, 3, 4])], "花名册.xlsx");
    await fireEvent.change(screen.getByTestId("import-file"), { target: { files: [file] } });
    await vi.waitFor(() => expect(screen.getAllByTestId("mapping-column")).toHaveLength(3));
  }

  it("previews the file, takes a changed mapping and the duplicate choice, then imports and undoes", async () => {
    const onimported = vi.fn();
    render(ImportWizard, { props: { onclose: vi.fn(), onimported } });
    await choose();
    expect(calls.find((call) => call.command === "excel_import_open")).toBeTruthy();
    // Nothing can be imported while a required column is missing.
    expect(screen.getByTestId("import-missing").textContent).toContain("姓名");
    expect((screen.getByTestId("import-confirm") as HTMLButtonElement).disabled).toBe(true);
    const issues = screen.getAllByTestId("row-issue").map((node) => node.textContent);
    expect(issues).toContain("「花名册」第 4 行 C 列（证件号码）：身份证号不正确");

    // Column B holds the names: map it, and the preview is made again with that mapping.
    const selects = screen.getAllByTestId("mapping-select") as HTMLSelectElement[];
    await fireEvent.change(selects[1], { target: { value: "name" } });
    await vi.waitFor(() => expect(screen.queryByTestId("import-missing")).toBeNull());
    const asked = calls.filter((call) => call.command === "excel_import_preview").at(-1)!.args as any;
    expect(asked.options.mapping).toEqual(["register_no", "name", "id_card_no"]);
    expect(screen.getByTestId("import-counts").textContent).toBe("共 3 行、2 户：可导入 2 行，有错误 1 行，跳过 0 行");

    // The household already here is skipped, chosen once for all.
    await fireEvent.click(screen.getByTestId("duplicate-skip"));
    await vi.waitFor(() => expect(screen.getByTestId("import-counts").textContent).toContain("跳过 1 行"));
    const skipped = calls.filter((call) => call.command === "excel_import_preview").at(-1)!.args as any;
    expect(skipped.options.duplicates).toBe("skip");

    await fireEvent.click(screen.getByTestId("only-errors"));
    expect(screen.getAllByTestId("import-row").map((row) => row.dataset.row)).toEqual(["4"]);

    await fireEvent.click(screen.getByTestId("import-confirm"));
    await vi.waitFor(() => expect(screen.getByTestId("import-done").textContent).toBe("导入完成：新增 1 户、1 人，更新 1 条；1 行未导入。"));
    const run = calls.find((call) => call.command === "excel_import_run")!.args as any;
    expect(run.options).toEqual({ sheet: "花名册", mapping: ["register_no", "name", "id_card_no"], duplicates: "skip", village_id: null });
    expect(onimported).toHaveBeenCalledOnce();

    await fireEvent.click(screen.getByTestId("import-undo"));
    await vi.waitFor(() => expect(screen.getByTestId("import-undone").textContent).toContain("已撤销：删除 1 户、1 人"));
    expect((calls.find((call) => call.command === "excel_import_undo")!.args as any).importId).toBe("i1");
  });

  it("lists earlier imports and undoes one that is not synced", async () => {
    earlier = [
      { id: "i0", file_name: "一组.xlsx", imported_at: "2026-11-30T08:00:00Z", households_created: 12, households_updated: 0, members_created: 40, members_updated: 0, undone_at: null, records_sent: 0 },
      { id: "i9", file_name: "旧表.xls", imported_at: "2026-11-01T08:00:00Z", households_created: 3, households_updated: 0, members_created: 9, members_updated: 0, undone_at: "2026-11-02T08:00:00Z", records_sent: 0 },
    ];
    render(ImportWizard, { props: { onclose: vi.fn(), onimported: vi.fn() } });
    await vi.waitFor(() => expect(screen.getAllByTestId("earlier-import")).toHaveLength(2));
    expect(screen.getAllByTestId("earlier-import")[0].textContent).toContain("一组.xlsx：新增 12 户、40 人");
    expect(screen.getAllByTestId("earlier-import")[1].textContent).toContain("已撤销");
    expect(screen.getAllByTestId("earlier-undo")).toHaveLength(1);
    await fireEvent.click(screen.getByTestId("earlier-undo"));
    await vi.waitFor(() => expect(screen.getByTestId("import-undone").textContent).toContain("已撤销：删除 1 户、1 人"));
    expect((calls.find((call) => call.command === "excel_import_undo")!.args as any).importId).toBe("i0");
  });

  it("says what is wrong with a file that cannot be read, in the language shown", async () => {
    mockIPC((command) => {
      if (command === "list_villages") return [];
      if (command === "excel_imports") return [];
      if (command === "excel_import_open") {
        throw { code: "password_protected", message: "protected", message_zh: "文件设有密码，无法读取。", message_en: "The file is protected by a password and cannot be read." };
      }
      throw new Error(`unexpected command ${command}`);
    });
    locale.language = "en";
    render(ImportWizard, { props: { onclose: vi.fn(), onimported: vi.fn() } });
    const file = new File([new Uint8Array([0xd0, 0xcf])], "locked.xlsx");
    await fireEvent.change(screen.getByTestId("import-file"), { target: { files: [file] } });
    await vi.waitFor(() => expect(screen.getByTestId("import-error").textContent).toBe("The file is protected by a password and cannot be read."));
    expect(screen.queryByTestId("mapping-column")).toBeNull();
  });

  it("exports with masked numbers unless full numbers are ticked", async () => {
    render(ExportPanel, { props: { onclose: vi.fn() } });
    await fireEvent.click(screen.getByTestId("export-roster"));
    await vi.waitFor(() => expect(screen.getByTestId("export-written").textContent).toBe("已导出到：/data/exports/roster.xlsx"));
    expect((calls.filter((call) => call.command === "excel_export").at(-1)!.args as any).options).toEqual({ full_numbers: false });
    await fireEvent.click(screen.getByTestId("full-numbers"));
    await vi.waitFor(() => expect((screen.getByTestId("export-sign-in") as HTMLButtonElement).disabled).toBe(false));
    await fireEvent.click(screen.getByTestId("export-sign-in"));
    await vi.waitFor(() => expect(calls.filter((call) => call.command === "excel_export")).toHaveLength(2));
    const last = calls.filter((call) => call.command === "excel_export").at(-1)!.args as any;
    expect(last).toEqual({ report: "sign_in", sessionId: "s1", options: { full_numbers: true } });
  });
});
