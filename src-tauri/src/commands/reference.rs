//! 参考数据 Reference commands: the labels of every code and the poverty lines.

use furrow::codes::EnumDef;
use furrow::domain::reference::{self, PovertyLine};
use tauri::State;

use crate::error::CommandResult;
use crate::state::AppState;

/// Every enumeration with its codes and Chinese and English labels; the UI never repeats them.
#[tauri::command]
pub async fn enum_labels() -> CommandResult<Vec<EnumDef>> {
    Ok(reference::enum_labels().to_vec())
}

/// Every poverty line, by year.
#[tauri::command]
pub async fn poverty_lines(state: State<'_, AppState>) -> CommandResult<Vec<PovertyLine>> {
    state.with_store(|store| reference::poverty_lines(store)).await
}
