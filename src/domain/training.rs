//! 培训 Training sessions, attendance and skill assessments.
//!
//! Attendance rows have a deterministic id from (session, member), so two devices checking in the
//! same person make one row; removing an attendee is a tombstone, and checking them in again
//! revives the same row.

use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::codes::{AssessmentPhase, AttendanceStatus, TrainingFormat, TrainingTopic};
use crate::domain::household::{self, RosterQuery};
use crate::domain::live_ids;
use crate::domain::DeletionImpact;
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
    /// 讲师 Trainer, as free text (an outside trainer's name).
    pub trainer: Option<String>,
    /// 备注 Notes.
    pub notes: Option<String>,
    /// 讲师（农户） The trained farmer (a member) who gave the session; `None` when the
    /// assistant gave it. The reproducibility outcome follows who trained whom through it.
    pub trainer_member_id: Option<String>,
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
    /// 备注 A note (why a member of another village attended, say).
    pub note: Option<String>,
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

/// Deletes a session with its attendance and the skill scores recorded at it, in one
/// transaction.
pub fn delete_session(store: &mut Store, id: &str) -> Result<()> {
    store.write(|writer| {
        for attendance in live_ids(writer.conn(), "SELECT id FROM attendance WHERE session_id = ?1 AND deleted = 0", id)? {
            writer.delete(&ATTENDANCE, &attendance)?;
        }
        for assessment in live_ids(writer.conn(), "SELECT id FROM skill_assessments WHERE session_id = ?1 AND deleted = 0", id)? {
            writer.delete(&SKILL_ASSESSMENTS, &assessment)?;
        }
        writer.delete(&TRAINING_SESSIONS, id)
    })
}

/// What deleting a session takes with it, for the confirmation.
pub fn session_deletion_impact(store: &Store, id: &str) -> Result<DeletionImpact> {
    let session = get_session(store, id)?;
    let count = |sql: &str| -> Result<i64> { Ok(store.conn().query_row(sql, [id], |row| row.get(0))?) };
    Ok(DeletionImpact {
        name: session.title.unwrap_or_default(),
        attendance: count("SELECT count(*) FROM attendance WHERE session_id = ?1 AND deleted = 0")?,
        assessments: count("SELECT count(*) FROM skill_assessments WHERE session_id = ?1 AND deleted = 0")?,
        ..DeletionImpact::default()
    })
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
    let members: Vec<(String, Option<&str>)> = member_ids.iter().map(|member_id| (member_id.clone(), None)).collect();
    check_in_noted(store, session_id, &members, status)
}

/// Checks in several members at once with one status, each with their note if any, in one
/// transaction: all of them or, if any is refused, none.
fn check_in_noted(store: &mut Store, session_id: &str, members: &[(String, Option<&str>)], status: AttendanceStatus) -> Result<Vec<Attendance>> {
    let ids = store.write(|writer| {
        let mut ids = Vec::new();
        for (member_id, note) in members {
            let id = schema::attendance_id(session_id, member_id);
            let mut changes = json!({"session_id": session_id, "member_id": member_id, "status": status.code()});
            if let Some(note) = note.map(str::trim).filter(|note| !note.is_empty()) {
                changes["note"] = json!(note);
            }
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

/// Corrects one attendee's status (present, late, left early, absent, excused).
pub fn set_attendance_status(store: &mut Store, session_id: &str, member_id: &str, status: AttendanceStatus) -> Result<Attendance> {
    let id = schema::attendance_id(session_id, member_id);
    let mut row: Attendance = super::get(store, &ATTENDANCE, &id)?;
    row.status = Some(status);
    super::save(store, &ATTENDANCE, Some(&id), &row)
}

/// Sets or clears (empty text) the note on one attendee's row.
pub fn set_attendance_note(store: &mut Store, session_id: &str, member_id: &str, note: Option<&str>) -> Result<Attendance> {
    let id = schema::attendance_id(session_id, member_id);
    let mut row: Attendance = super::get(store, &ATTENDANCE, &id)?;
    row.note = note.map(str::trim).filter(|note| !note.is_empty()).map(str::to_owned);
    super::save(store, &ATTENDANCE, Some(&id), &row)
}

/// A session's live attendance.
pub fn attendance(store: &Store, session_id: &str) -> Result<Vec<Attendance>> {
    super::list(store, &ATTENDANCE, "session_id = ?1", &[&session_id])
}

/// Someone checked in to a session, with the names the check-in list and the score sheet show:
/// read from the store each time, so they survive leaving the screen and restarting the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Attendee {
    /// The attendance row's id.
    pub id: String,
    /// The member.
    pub member_id: String,
    /// 姓名 The member's name.
    pub member_name: String,
    /// The member's household.
    pub household_id: String,
    /// 户主 The head of that household.
    pub head_name: String,
    /// 村 The household's village.
    pub village_name: Option<String>,
    /// 出勤 Status.
    pub status: AttendanceStatus,
    /// 参加分钟数 Minutes attended.
    pub minutes_attended: Option<i64>,
    /// 备注 The note on the attendance row.
    pub note: Option<String>,
    /// Whether they live in another village than the session's.
    pub other_village: bool,
}

/// A session's attendees with their names, by village, household and name.
pub fn attendees(store: &Store, session_id: &str) -> Result<Vec<Attendee>> {
    let mut statement = store.conn().prepare_cached(
        "SELECT a.id, a.member_id, m.name, m.household_id, h.head_name, v.name, a.status, a.minutes_attended, a.note,
                h.village_id IS NOT (SELECT s.village_id FROM training_sessions s WHERE s.id = a.session_id)
           FROM attendance a
           LEFT JOIN members m ON m.id = a.member_id
           LEFT JOIN households h ON h.id = m.household_id
           LEFT JOIN villages v ON v.id = h.village_id
          WHERE a.session_id = ?1 AND a.deleted = 0
          ORDER BY v.name, h.register_no, h.head_name, m.household_id, m.relation <> 'head', m.name, a.id",
    )?;
    let rows = statement.query_map([session_id], |row| {
        Ok(Attendee {
            id: row.get(0)?,
            member_id: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
            member_name: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
            household_id: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
            head_name: row.get::<_, Option<String>>(4)?.unwrap_or_default(),
            village_name: row.get(5)?,
            status: row.get::<_, Option<String>>(6)?.as_deref().and_then(AttendanceStatus::from_code).unwrap_or(AttendanceStatus::Present),
            minutes_attended: row.get(7)?,
            note: row.get(8)?,
            other_village: row.get(9)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The skill scores recorded at a session, oldest first.
pub fn assessments_of_session(store: &Store, session_id: &str) -> Result<Vec<Assessment>> {
    let mut assessments: Vec<Assessment> = super::list(store, &SKILL_ASSESSMENTS, "session_id = ?1", &[&session_id])?;
    assessments.sort_by(|a, b| (&a.assessed_on, &a.id).cmp(&(&b.assessed_on, &b.id)));
    Ok(assessments)
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

/// Someone who can be checked in to a session, as the check-in list shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CheckInCandidate {
    /// The member.
    pub member_id: String,
    /// 姓名 Their name.
    pub member_name: String,
    /// Their household.
    pub household_id: String,
    /// 户主 Its head.
    pub head_name: String,
    /// Its village.
    pub village_id: String,
    /// 村 The village's name.
    pub village_name: Option<String>,
    /// Whether they are checked in to the session already.
    pub checked_in: bool,
    /// Whether they live in another village than the session's (they may attend; the list
    /// says so).
    pub other_village: bool,
}

/// The most people one check-in list shows.
const CANDIDATES_AT_MOST: i64 = 2000;

/// The people who can be checked in to a session. Without text: every living member of the
/// households in the register of `village_id` (the session's own village when `None`), by
/// household. With text: the members of the households whose head, members, register number or
/// phone match it (the roster's search), in any village.
pub fn check_in_candidates(store: &Store, session_id: &str, village_id: Option<&str>, text: Option<&str>) -> Result<Vec<CheckInCandidate>> {
    let session = get_session(store, session_id)?;
    let home = session.village_id.clone().unwrap_or_default();
    let text = text.map(str::trim).filter(|text| !text.is_empty());
    let households: Vec<String> = match text {
        Some(text) => household::search(
            store,
            &RosterQuery { text: Some(text.to_owned()), limit: Some(50), ..Default::default() },
        )?
        .into_iter()
        .map(|entry| entry.id)
        .collect(),
        None => live_ids(
            store.conn(),
            "SELECT id FROM households WHERE village_id = ?1 AND deleted = 0 AND closed_reason IS NULL
              ORDER BY register_no, head_name, id",
            village_id.unwrap_or(&home),
        )?,
    };
    let mut statement = store.conn().prepare_cached(
        "SELECT m.id, m.name, h.id, h.head_name, h.village_id, v.name,
                EXISTS (SELECT 1 FROM attendance a WHERE a.session_id = ?2 AND a.member_id = m.id AND a.deleted = 0)
           FROM members m JOIN households h ON h.id = m.household_id
           LEFT JOIN villages v ON v.id = h.village_id
          WHERE m.household_id = ?1 AND m.deleted = 0 AND coalesce(m.health, '') <> 'deceased'
          ORDER BY m.relation <> 'head', m.birth_date, m.name, m.id",
    )?;
    let mut candidates = Vec::new();
    for household in households {
        let rows = statement.query_map(rusqlite::params![household, session_id], |row| {
            let village: String = row.get::<_, Option<String>>(4)?.unwrap_or_default();
            Ok(CheckInCandidate {
                member_id: row.get(0)?,
                member_name: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                household_id: row.get(2)?,
                head_name: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
                other_village: village != home,
                village_id: village,
                village_name: row.get(5)?,
                checked_in: row.get(6)?,
            })
        })?;
        for row in rows {
            candidates.push(row?);
            if candidates.len() as i64 >= CANDIDATES_AT_MOST {
                return Ok(candidates);
            }
        }
    }
    Ok(candidates)
}

/// What a check-in did: who was checked in, and who already was (and was left as they were).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CheckInReport {
    /// The names of the people checked in now.
    pub checked_in: Vec<String>,
    /// The names of the people who were checked in already.
    pub already: Vec<String>,
}

/// Checks in the members not checked in yet, all in one transaction, and names those who
/// already were: checking someone in twice says so and changes nothing (their status is
/// corrected with [`set_attendance_status`]).
pub fn check_in_new(store: &mut Store, session_id: &str, member_ids: &[String], status: AttendanceStatus) -> Result<CheckInReport> {
    check_in_new_noted(store, session_id, member_ids, status, None)
}

/// [`check_in_new`], with a note put on the rows of those checked in who live in another
/// village than the session's (why they came); the session's own villagers get no note.
pub fn check_in_new_noted(
    store: &mut Store,
    session_id: &str,
    member_ids: &[String],
    status: AttendanceStatus,
    other_village_note: Option<&str>,
) -> Result<CheckInReport> {
    let home = get_session(store, session_id)?.village_id;
    let mut report = CheckInReport::default();
    let mut new = Vec::new();
    for member_id in member_ids {
        let member = household::get_member(store, member_id)?;
        let name = member.name.unwrap_or_default();
        if crate::record::exists(store.conn(), ATTENDANCE.name, &schema::attendance_id(session_id, member_id))? {
            report.already.push(name);
        } else {
            let village: Option<String> = store
                .conn()
                .query_row("SELECT village_id FROM households WHERE id = ?1", [member.household_id.as_deref().unwrap_or_default()], |row| row.get(0))
                .optional()?
                .flatten();
            let note = if village != home { other_village_note } else { None };
            new.push((member_id.clone(), note));
            report.checked_in.push(name);
        }
    }
    if !new.is_empty() {
        check_in_noted(store, session_id, &new, status)?;
    }
    Ok(report)
}

/// One cell of the score sheet: a member's score on a topic (none clears it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ScoreEntry {
    /// The member.
    pub member_id: String,
    /// The topic.
    pub topic: TrainingTopic,
    /// The score 0–100, or `None` to clear it.
    pub score: Option<i64>,
}

/// Saves a session's score sheet for one phase at once: each cell sets, changes or clears the
/// member's score on that topic, in one transaction. A refused cell is reported as the field
/// `score.{member_id}.{topic}`, with every other refused cell, and nothing is saved.
pub fn save_scores(store: &mut Store, session_id: &str, phase: AssessmentPhase, on: &str, entries: &[ScoreEntry]) -> Result<usize> {
    store.write(|writer| {
        let mut errors = Vec::new();
        let mut changed = 0;
        for entry in entries {
            let existing: Option<String> = writer
                .conn()
                .query_row(
                    "SELECT id FROM skill_assessments WHERE member_id = ?1 AND session_id = ?2 AND topic = ?3 AND phase = ?4
                      AND deleted = 0 ORDER BY id LIMIT 1",
                    rusqlite::params![entry.member_id, session_id, entry.topic.code(), phase.code()],
                    |row| row.get(0),
                )
                .optional()?;
            let Some(score) = entry.score else {
                if let Some(id) = existing {
                    writer.delete(&SKILL_ASSESSMENTS, &id)?;
                    changed += 1;
                }
                continue;
            };
            let changes = json!({"member_id": entry.member_id, "session_id": session_id, "topic": entry.topic.code(),
                "phase": phase.code(), "score": score, "assessed_on": on});
            match writer.save(&SKILL_ASSESSMENTS, existing.as_deref(), changes.as_object().expect("an object").clone()) {
                Ok(saved) => changed += usize::from(!saved.changed.is_empty()),
                Err(crate::Error::Validation(failures)) => errors.extend(failures.into_iter().map(|mut failure| {
                    failure.field = format!("{}.{}.{}", failure.field, entry.member_id, entry.topic.code());
                    failure
                })),
                Err(other) => return Err(other),
            }
        }
        if errors.is_empty() {
            Ok(changed)
        } else {
            Err(crate::Error::Validation(errors))
        }
    })
}

/// Someone who can be named as a session's trainer: a member, with whether they have been
/// trained themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TrainerCandidate {
    /// The member.
    pub member_id: String,
    /// 姓名 Their name.
    pub member_name: String,
    /// 户主 The head of their household.
    pub head_name: String,
    /// 村 Their village's name.
    pub village_name: Option<String>,
    /// Whether they attended a training session (a trained farmer).
    pub trained: bool,
}

/// The members who can be picked as a session's trainer: every trained farmer (a member who
/// attended a session: present, late or left early) in any village, then the other members of
/// the households of `village_id`; the living members of live households in the register only.
pub fn trainer_candidates(store: &Store, village_id: Option<&str>) -> Result<Vec<TrainerCandidate>> {
    let mut statement = store.conn().prepare_cached(
        "SELECT m.id, m.name, h.head_name, v.name,
                EXISTS (SELECT 1 FROM attendance a JOIN training_sessions s ON s.id = a.session_id AND s.deleted = 0
                         WHERE a.member_id = m.id AND a.deleted = 0 AND a.status IN ('present', 'late', 'left_early')) AS trained
           FROM members m JOIN households h ON h.id = m.household_id AND h.deleted = 0 AND h.closed_reason IS NULL
           LEFT JOIN villages v ON v.id = h.village_id
          WHERE m.deleted = 0 AND coalesce(m.health, '') <> 'deceased' AND (trained OR h.village_id = ?1)
          ORDER BY trained DESC, v.name, h.register_no, h.head_name, m.name, m.id",
    )?;
    let rows = statement.query_map([village_id.unwrap_or_default()], |row| {
        Ok(TrainerCandidate {
            member_id: row.get(0)?,
            member_name: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
            head_name: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
            village_name: row.get(3)?,
            trained: row.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
