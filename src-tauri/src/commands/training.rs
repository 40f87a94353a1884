//! 培训 Training commands: sessions, bulk check-in, attendance corrections, skill assessments.

use furrow::codes::{AssessmentPhase, AttendanceStatus};
use furrow::domain::training::{self, Assessment, Attendance, Attendee, CheckInCandidate, CheckInReport, ScoreEntry, TrainingSession};
use furrow::domain::DeletionImpact;
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

/// Deletes a session with its attendance and scores.
#[tauri::command]
pub async fn delete_session(state: State<'_, AppState>, id: String) -> CommandResult<()> {
    state.with_store(move |store| training::delete_session(store, &id)).await
}

/// What deleting a session takes with it, for the confirmation.
#[tauri::command]
pub async fn session_deletion_impact(state: State<'_, AppState>, id: String) -> CommandResult<DeletionImpact> {
    state.with_store(move |store| training::session_deletion_impact(store, &id)).await
}

/// A session's attendees with their names and households.
#[tauri::command]
pub async fn session_attendees(state: State<'_, AppState>, session_id: String) -> CommandResult<Vec<Attendee>> {
    state.with_store(move |store| training::attendees(store, &session_id)).await
}

/// Removes one attendee from a session.
#[tauri::command]
pub async fn remove_attendee(state: State<'_, AppState>, session_id: String, member_id: String) -> CommandResult<()> {
    state.with_store(move |store| training::remove_attendee(store, &session_id, &member_id)).await
}

/// Corrects one attendee's status.
#[tauri::command]
pub async fn set_attendance_status(
    state: State<'_, AppState>,
    session_id: String,
    member_id: String,
    status: AttendanceStatus,
) -> CommandResult<Attendance> {
    state.with_store(move |store| training::set_attendance_status(store, &session_id, &member_id, status)).await
}

/// Sets or clears one attendee's note.
#[tauri::command]
pub async fn set_attendance_note(
    state: State<'_, AppState>,
    session_id: String,
    member_id: String,
    note: Option<String>,
) -> CommandResult<Attendance> {
    state.with_store(move |store| training::set_attendance_note(store, &session_id, &member_id, note.as_deref())).await
}

/// The skill scores recorded at a session.
#[tauri::command]
pub async fn session_assessments(state: State<'_, AppState>, session_id: String) -> CommandResult<Vec<Assessment>> {
    state.with_store(move |store| training::assessments_of_session(store, &session_id)).await
}

/// The people who can be checked in: a village's members (the session's village by default), or
/// those a search finds in any village.
#[tauri::command]
pub async fn check_in_candidates(
    state: State<'_, AppState>,
    session_id: String,
    village_id: Option<String>,
    text: Option<String>,
) -> CommandResult<Vec<CheckInCandidate>> {
    state.with_store(move |store| training::check_in_candidates(store, &session_id, village_id.as_deref(), text.as_deref())).await
}

/// Checks in the members not checked in yet (all or none) and names those who already were; the
/// note goes on the rows of those who live in another village than the session's.
#[tauri::command]
pub async fn check_in_new(
    state: State<'_, AppState>,
    session_id: String,
    member_ids: Vec<String>,
    status: AttendanceStatus,
    note: Option<String>,
) -> CommandResult<CheckInReport> {
    state.with_store(move |store| training::check_in_new_noted(store, &session_id, &member_ids, status, note.as_deref())).await
}

/// Saves a session's score sheet for one phase at once, dated the session's day.
#[tauri::command]
pub async fn save_scores(
    state: State<'_, AppState>,
    session_id: String,
    phase: AssessmentPhase,
    entries: Vec<ScoreEntry>,
) -> CommandResult<usize> {
    state
        .with_store(move |store| {
            let on = training::get_session(store, &session_id)?.date.unwrap_or_default();
            training::save_scores(store, &session_id, phase, &on, &entries)
        })
        .await
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

/// The members who can be named as a session's trainer: trained farmers anywhere, then the
/// members of the session village's households.
#[tauri::command]
pub async fn trainer_candidates(state: State<'_, AppState>, village_id: Option<String>) -> CommandResult<Vec<training::TrainerCandidate>> {
    state.with_store(move |store| training::trainer_candidates(store, village_id.as_deref())).await
}
