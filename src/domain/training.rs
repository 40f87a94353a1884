//! 培训 Training sessions, attendance and skill assessments.
//!
//! Attendance rows have a deterministic id from (session, member), so two devices checking in the
//! same person make one row; removing an attendee is a tombstone, and checking them in again
//! revives the same row.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::codes::{AssessmentPhase, AttendanceStatus, TrainingFormat, TrainingTopic};
use crate::error::Result;
use crate::schema::{self, ATTENDANCE, SKILL_ASSESSMENTS, TRAINING_SESSIONS};
use crate::store::Store;

/// A training session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields = nullable))]
#[serde(default)]
pub struct TrainingSession {
    /// Row id; `None` for a new session.
    pub id: Option<String>,
    /// The scope; set by the core.
    pub scope_id: Option<String>,
    /// 标题 Title.
    pub title: Option<String>,
    /// 主题 Topics.
    pub topics: Option<Vec<TrainingTopic>>,
    /// 形式 Format.
    pub format: Option<TrainingFormat>,
    /// 日期 Date.
    pub date: Option<String>,
    /// 开始时间 Start time `HH:MM`.
    pub start_time: Option<String>,
    /// 时长（分钟） Duration in minutes.
    pub duration_min: Option<i64>,
    /// 村 Village.
    pub village_id: Option<String>,
    /// 地点 Place.
    pub location: Option<String>,
    /// 讲师 Trainer.
    pub trainer: Option<String>,
    /// 备注 Notes.
    pub notes: Option<String>,
}

/// An attendance row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields = nullable))]
#[serde(default)]
pub struct Attendance {
    /// Deterministic id from (session, member).
    pub id: Option<String>,
    /// The scope; set by the core.
    pub scope_id: Option<String>,
    /// Session.
    pub session_id: Option<String>,
    /// Member.
    pub member_id: Option<String>,
    /// 出勤 Status.
    pub status: Option<AttendanceStatus>,
    /// 参加分钟数 Minutes attended.
    pub minutes_attended: Option<i64>,
}

/// A skill assessment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields = nullable))]
#[serde(default)]
pub struct Assessment {
    /// Row id; `None` for a new assessment.
    pub id: Option<String>,
    /// The scope; set by the core.
    pub scope_id: Option<String>,
    /// Member assessed.
    pub member_id: Option<String>,
    /// The session it belongs to, if any.
    pub session_id: Option<String>,
    /// 技能 The skill (a training topic).
    pub topic: Option<TrainingTopic>,
    /// 阶段 Before, after or follow-up.
    pub phase: Option<AssessmentPhase>,
    /// 分数 Score 0–100.
    pub score: Option<i64>,
    /// 测评日期 Date.
    pub assessed_on: Option<String>,
}

/// A session a household's member attended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Attended {
    /// The session.
    pub session: TrainingSession,
    /// The member who attended.
    pub member_id: String,
    /// The member's name.
    pub member_name: String,
    /// Their attendance status.
    pub status: AttendanceStatus,
}

/// Creates or edits a session.
pub fn save_session(store: &mut Store, session: &TrainingSession) -> Result<TrainingSession> {
    super::save(store, &TRAINING_SESSIONS, session.id.as_deref(), session)
}

/// A session by id.
pub fn get_session(store: &Store, id: &str) -> Result<TrainingSession> {
    super::get(store, &TRAINING_SESSIONS, id)
}

/// Deletes a session.
pub fn delete_session(store: &mut Store, id: &str) -> Result<()> {
    super::delete(store, &TRAINING_SESSIONS, id)
}

/// Every live session, newest first.
pub fn sessions(store: &Store) -> Result<Vec<TrainingSession>> {
    let mut sessions: Vec<TrainingSession> = super::list(store, &TRAINING_SESSIONS, "1", &[])?;
    sessions.sort_by(|a, b| b.date.cmp(&a.date));
    Ok(sessions)
}

/// Checks in several members at once with one status, in one transaction: all of them or, if any
/// is refused, none.
pub fn check_in(store: &mut Store, session_id: &str, member_ids: &[String], status: AttendanceStatus) -> Result<Vec<Attendance>> {
    let ids = store.write(|writer| {
        let mut ids = Vec::new();
        for member_id in member_ids {
            let id = schema::attendance_id(session_id, member_id);
            let changes = json!({"session_id": session_id, "member_id": member_id, "status": status.code()});
            let changes = changes.as_object().expect("an object").clone();
            ids.push(writer.save(&ATTENDANCE, Some(&id), changes)?.id);
        }
        Ok(ids)
    })?;
    ids.iter().map(|id| super::get(store, &ATTENDANCE, id)).collect()
}

/// Removes a member from a session's attendance.
pub fn remove_attendee(store: &mut Store, session_id: &str, member_id: &str) -> Result<()> {
    super::delete(store, &ATTENDANCE, &schema::attendance_id(session_id, member_id))
}

/// A session's live attendance.
pub fn attendance(store: &Store, session_id: &str) -> Result<Vec<Attendance>> {
    super::list(store, &ATTENDANCE, "session_id = ?1", &[&session_id])
}

/// The sessions a household's members attended (present, late or left early), newest first.
pub fn attended_by_household(store: &Store, household_id: &str) -> Result<Vec<Attended>> {
    let mut statement = store.conn().prepare_cached(
        "SELECT a.session_id, a.member_id, m.name, a.status FROM attendance a
           JOIN members m ON m.id = a.member_id AND m.deleted = 0
           JOIN training_sessions s ON s.id = a.session_id AND s.deleted = 0
          WHERE a.deleted = 0 AND m.household_id = ?1 AND a.status IN ('present', 'late', 'left_early')
          ORDER BY s.date DESC",
    )?;
    let rows = statement
        .query_map([household_id], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?, row.get::<_, String>(3)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(session_id, member_id, member_name, status)| {
            Ok(Attended {
                session: get_session(store, &session_id)?,
                member_id,
                member_name,
                status: AttendanceStatus::from_code(&status).unwrap_or(AttendanceStatus::Present),
            })
        })
        .collect()
}

/// Records or edits a skill assessment.
pub fn save_assessment(store: &mut Store, assessment: &Assessment) -> Result<Assessment> {
    super::save(store, &SKILL_ASSESSMENTS, assessment.id.as_deref(), assessment)
}

/// The skill assessments of a household's members, oldest first.
pub fn assessments_of_household(store: &Store, household_id: &str) -> Result<Vec<Assessment>> {
    let mut assessments: Vec<Assessment> = super::list(
        store,
        &SKILL_ASSESSMENTS,
        "member_id IN (SELECT id FROM members WHERE household_id = ?1 AND deleted = 0)",
        &[&household_id],
    )?;
    assessments.sort_by(|a, b| a.assessed_on.cmp(&b.assessed_on));
    Ok(assessments)
}
