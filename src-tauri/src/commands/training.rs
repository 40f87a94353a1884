//! 培训 Training commands: sessions, bulk check-in, skill assessments.

use furrow::codes::AttendanceStatus;
use furrow::domain::training::{self, Assessment, Attendance, TrainingSession};
use tauri::State;

use crate::error::CommandResult;
use crate::state::AppState;

/// Every session, newest first.
#[tauri::command]
pub async fn list_sessions(state: State<'_, AppState>) -> CommandResult<Vec<TrainingSession>> {
    state.with_store(|store| training::sessions(store)).await
}

/// Creates or edits a session.
#[tauri::command]
pub async fn save_session(state: State<'_, AppState>, session: TrainingSession) -> CommandResult<TrainingSession> {
    state.with_store(move |store| training::save_session(store, &session)).await
}

/// Checks in several members at once (all or none).
#[tauri::command]
pub async fn check_in(
    state: State<'_, AppState>,
    session_id: String,
    member_ids: Vec<String>,
    status: AttendanceStatus,
) -> CommandResult<Vec<Attendance>> {
    state.with_store(move |store| training::check_in(store, &session_id, &member_ids, status)).await
}

/// A session's attendance.
#[tauri::command]
pub async fn session_attendance(state: State<'_, AppState>, session_id: String) -> CommandResult<Vec<Attendance>> {
    state.with_store(move |store| training::attendance(store, &session_id)).await
}

/// Records or edits a skill assessment.
#[tauri::command]
pub async fn save_assessment(state: State<'_, AppState>, assessment: Assessment) -> CommandResult<Assessment> {
    state.with_store(move |store| training::save_assessment(store, &assessment)).await
}
