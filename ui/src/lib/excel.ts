// The Excel commands: a roster imported (the picked file sent once as the raw request body, then
// previewed again with a changed mapping without sending it again), an import undone, and
// reports exported into the data directory's exports folder.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import { call, toIpcError } from "./ipc";
import type { ImportPreview } from "./bindings/ImportPreview";
import type { ImportOptions } from "./bindings/ImportOptions";
import type { ImportProgress } from "./bindings/ImportProgress";
import type { ImportSummary } from "./bindings/ImportSummary";
import type { ImportRecord } from "./bindings/ImportRecord";
import type { UndoReport } from "./bindings/UndoReport";
import type { ExportOptions } from "./bindings/ExportOptions";

/** The reports the export buttons make. */
export type Report = "roster" | "sign_in" | "scores" | "visits" | "income";

export const excel = {
  /** Sends the picked file and previews it with the guessed mapping. */
  openImport: async (name: string, bytes: Uint8Array): Promise<ImportPreview> => {
    try {
      return await invoke<ImportPreview>("excel_import_open", bytes, { headers: { "x-file-name": encodeURIComponent(name) } });
    } catch (reason) {
      throw toIpcError(reason);
    }
  },
  previewImport: (options: ImportOptions) => call<ImportPreview>("excel_import_preview", { options }),
  runImport: (options: ImportOptions) => call<ImportSummary>("excel_import_run", { options }),
  undoImport: (importId: string) => call<UndoReport>("excel_import_undo", { importId }),
  imports: () => call<ImportRecord[]>("excel_imports"),
  exportReport: (report: Report, sessionId: string | null, options: ExportOptions) =>
    call<string>("excel_export", { report, sessionId, options }),
  onImportProgress: (handler: (progress: ImportProgress) => void): Promise<UnlistenFn> =>
    listen<ImportProgress>("excel-import-progress", (event) => handler(event.payload)),
};
