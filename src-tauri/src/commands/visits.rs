//! 走访 Visit commands: entry, correction and deletion, and the follow-ups due.

use furrow::domain::visit::{self, FollowUp, Visit};
use tauri::State;

use crate::error::CommandResult;
use crate::state::AppState;

/// Records or edits a visit.
#[tauri::command]
pub async fn save_visit(state: State<'_, AppState>, visit: Visit) -> CommandResult<Visit> {
    state.with_store(move |store| visit::save(store, &visit)).await
}

/// Deletes a visit.
#[tauri::command]
pub async fn delete_visit(state: State<'_, AppState>, id: String) -> CommandResult<()> {
    state.with_store(move |store| visit::delete(store, &id)).await
}

/// Marks the follow-up a visit asked for as done today, so it is no longer due.
#[tauri::command]
pub async fn mark_follow_up_done(state: State<'_, AppState>, id: String) -> CommandResult<Visit> {
    let today = chrono::Local::now().date_naive().to_string();
    state.with_store(move |store| visit::mark_follow_up_done(store, &id, &today)).await
}

/// Follow-ups due within `days` days from today (overdue ones included), most overdue first.
#[tauri::command]
pub async fn follow_ups_due(state: State<'_, AppState>, days: i64) -> CommandResult<Vec<FollowUp>> {
    let today = chrono::Local::now().date_naive();
    let until = today + chrono::Duration::days(days.clamp(0, 3650));
    let (today, until) = (today.to_string(), until.to_string());
    state.with_store(move |store| visit::follow_ups_due(store, &today, &until)).await
}
