//! Excel commands: a roster imported (the picked file's bytes are held between the preview and
//! the confirmation, so a changed mapping is previewed again without sending the file again),
//! an import undone, and reports exported into `exports/` in the data directory, as backups go
//! into `backups/`.

use std::sync::{Arc, Mutex};

use furrow::export::{self, ExportOptions};
use furrow::import::{self, ImportOptions, ImportPreview, ImportProgress, ImportRecord, ImportSummary, UndoReport};
use tauri::{Emitter, State};

use crate::error::{CommandError, CommandResult};
use crate::state::AppState;

/// The file picked for import: its name and bytes, until it is imported or another is picked.
#[derive(Default)]
pub struct PendingImport(Arc<Mutex<Option<(String, Vec<u8>)>>>);

impl PendingImport {
    fn file(&self) -> CommandResult<(String, Vec<u8>)> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone().ok_or_else(|| {
            CommandError::new("no_file", "请先选择要导入的花名册文件", "choose the roster file to import first")
        })
    }
}

/// Takes the picked file (the request body; its name in the `x-file-name` header, URI-encoded)
/// and previews it with the guessed mapping.
#[tauri::command]
pub async fn excel_import_open(state: State<'_, AppState>, pending: State<'_, PendingImport>, request: tauri::ipc::Request<'_>) -> CommandResult<ImportPreview> {
    let tauri::ipc::InvokeBody::Raw(bytes) = request.body() else {
        return Err(CommandError::new("invalid_request", "未收到文件", "no file was sent"));
    };
    let name = request.headers().get("x-file-name").and_then(|value| value.to_str().ok()).map(decode).unwrap_or_default();
    *pending.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((name.clone(), bytes.clone()));
    let bytes = bytes.clone();
    state.with_store(move |store| import::preview(store, &name, &bytes, &ImportOptions::default())).await
}

/// Previews the picked file again with the options chosen (mapping, sheet, village, what to do
/// with households already here).
#[tauri::command]
pub async fn excel_import_preview(state: State<'_, AppState>, pending: State<'_, PendingImport>, options: ImportOptions) -> CommandResult<ImportPreview> {
    let (name, bytes) = pending.file()?;
    state.with_store(move |store| import::preview(store, &name, &bytes, &options)).await
}

/// Imports the picked file with the options confirmed, telling the window how far it has come
/// (`excel-import-progress`).
#[tauri::command]
pub async fn excel_import_run(app: tauri::AppHandle, state: State<'_, AppState>, pending: State<'_, PendingImport>, options: ImportOptions) -> CommandResult<ImportSummary> {
    let (name, bytes) = pending.file()?;
    let summary = state
        .with_store(move |store| import::run(store, &name, &bytes, &options, &mut |progress: ImportProgress| drop(app.emit("excel-import-progress", progress))))
        .await?;
    *pending.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    Ok(summary)
}

/// Undoes an import.
#[tauri::command]
pub async fn excel_import_undo(state: State<'_, AppState>, import_id: String) -> CommandResult<UndoReport> {
    state.with_store(move |store| import::undo(store, &import_id)).await
}

/// The imports made on this device, newest first.
#[tauri::command]
pub async fn excel_imports(state: State<'_, AppState>) -> CommandResult<Vec<ImportRecord>> {
    state.with_store(|store| import::imports(store)).await
}

/// Exports a report (`roster`, `sign_in`, `scores`, `visits`, `income`; a session's for the sign-in
/// sheet and, when given, the scores) into `exports/` and returns the file's path.
#[tauri::command]
pub async fn excel_export(state: State<'_, AppState>, report: String, session_id: Option<String>, options: ExportOptions) -> CommandResult<String> {
    let directory = state.data_dir.join("exports");
    state
        .with_store(move |store| {
            let (what, bytes) = match (report.as_str(), session_id.as_deref()) {
                ("roster", _) => ("花名册", export::roster(store, &options)?),
                ("sign_in", Some(session)) => ("签到表", export::sign_in_sheet(store, session, &options)?),
                ("scores", session) => ("成绩", export::scores(store, session, &options)?),
                ("visits", _) => ("帮扶记录", export::visits(store, &options)?),
                ("income", _) => ("收入", export::income(store, &options)?),
                _ => return Err(furrow::Error::NotFound { table: "reports".into(), id: report.clone() }),
            };
            std::fs::create_dir_all(&directory)?;
            let path = directory.join(export::file_name(what));
            std::fs::write(&path, bytes)?;
            Ok(path.display().to_string())
        })
        .await
}

/// A header value the window URI-encoded (a file name in Chinese is not ASCII).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match (bytes[index], bytes.get(index + 1..index + 3).and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_uri_encoded_file_name_is_read_back() {
        assert_eq!(super::decode("%E8%8A%B1%E5%90%8D%E5%86%8C.xlsx"), "花名册.xlsx");
        assert_eq!(super::decode("roster 100%.csv"), "roster 100%.csv");
    }
}
