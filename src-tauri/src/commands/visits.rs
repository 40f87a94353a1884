//! 走访 Visit commands: quick entry and the follow-ups due.

use furrow::domain::visit::{self, FollowUp, Visit};
use tauri::State;

use crate::error::CommandResult;
use crate::state::AppState;

/// Records or edits a visit.
#[tauri::command]
pub async fn save_visit(state: State<'_, AppState>, visit: Visit) -> CommandResult<Visit> {
    state.with_store(move |store| visit::save(store, &visit)).await
}

/// Follow-ups due within `days` days from today (overdue ones included), most overdue first.
#[tauri::command]
pub async fn follow_ups_due(state: State<'_, AppState>, days: i64) -> CommandResult<Vec<FollowUp>> {
    let today = chrono::Local::now().date_naive();
    let until = today + chrono::Duration::days(days.clamp(0, 3650));
    let (today, until) = (today.to_string(), until.to_string());
    state.with_store(move |store| visit::follow_ups_due(store, &today, &until)).await
}
