//! 走访 Visits, with the basic-needs checklist, and the follow-ups that fall due.

use serde::{Deserialize, Serialize};

use crate::codes::{CheckAnswer, VisitPurpose, VisitType};
use crate::error::Result;
use crate::schema::VISITS;
use crate::store::Store;

/// A visit to a household.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields = nullable))]
#[serde(default)]
pub struct Visit {
    /// Row id; `None` for a new visit.
    pub id: Option<String>,
    /// The scope; set by the core.
    pub scope_id: Option<String>,
    /// 所访户 Household.
    pub household_id: Option<String>,
    /// 走访方式 Type.
    pub visit_type: Option<VisitType>,
    /// 目的 Purposes.
    pub purposes: Option<Vec<VisitPurpose>>,
    /// 走访时间 When (RFC 3339).
    pub visited_at: Option<String>,
    /// 地点 Place.
    pub place: Option<String>,
    /// 纬度 Latitude.
    pub latitude: Option<f64>,
    /// 经度 Longitude.
    pub longitude: Option<f64>,
    /// 情况摘要 Summary.
    pub summary: Option<String>,
    /// 存在问题 Problems found.
    pub problems: Option<String>,
    /// 商定措施 Actions agreed.
    pub actions_agreed: Option<String>,
    /// 下次走访日期 Next visit date.
    pub next_visit_date: Option<String>,
    /// 吃穿不愁 Food and clothing assured.
    pub food_clothing_ok: Option<CheckAnswer>,
    /// 义务教育有保障 Compulsory education assured.
    pub education_ok: Option<CheckAnswer>,
    /// 基本医疗有保障 Basic medical care assured.
    pub medical_ok: Option<CheckAnswer>,
    /// 住房安全有保障 Safe housing assured.
    pub housing_ok: Option<CheckAnswer>,
    /// 饮水安全有保障 Safe drinking water assured.
    pub water_ok: Option<CheckAnswer>,
    /// 已回访 The day the follow-up this visit asked for was done; it is then no longer due.
    pub follow_up_done_on: Option<String>,
}

/// Records or edits a visit.
pub fn save(store: &mut Store, visit: &Visit) -> Result<Visit> {
    super::save(store, &VISITS, visit.id.as_deref(), visit)
}

/// A visit by id.
pub fn get(store: &Store, id: &str) -> Result<Visit> {
    super::get(store, &VISITS, id)
}

/// Deletes a visit.
pub fn delete(store: &mut Store, id: &str) -> Result<()> {
    super::delete(store, &VISITS, id)
}

/// Marks the follow-up a visit asked for as done on `on` (`YYYY-MM-DD`), so it is no longer due.
pub fn mark_follow_up_done(store: &mut Store, id: &str, on: &str) -> Result<Visit> {
    let mut visit = get(store, id)?;
    visit.follow_up_done_on = Some(on.to_owned());
    save(store, &visit)
}

/// A household's visits, newest first.
pub fn of_household(store: &Store, household_id: &str) -> Result<Vec<Visit>> {
    let mut visits: Vec<Visit> = super::list(store, &VISITS, "household_id = ?1", &[&household_id])?;
    visits.sort_by(|a, b| b.visited_at.cmp(&a.visited_at));
    Ok(visits)
}

/// A follow-up that is due: the next visit a household's latest visit asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FollowUp {
    /// Household id.
    pub household_id: String,
    /// Head of household.
    pub head_name: String,
    /// Village name.
    pub village_name: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// The visit that asked for the follow-up.
    pub visit_id: String,
    /// The date agreed.
    pub due_date: String,
    /// Days past due (negative when not yet due).
    pub days_overdue: i64,
    /// Actions agreed at that visit.
    pub actions_agreed: Option<String>,
}

/// Follow-ups due on or before `until` (`YYYY-MM-DD`), counted from `today`: for each household
/// in the register, the next-visit date of its latest visit made by `today`, unless marked done,
/// most overdue first. A visit dated after today (typed with a wrong date, or brought by a sync
/// from a device whose clock was wrong) has not happened, so it neither asks for a follow-up nor
/// hides the one its household's real latest visit asked for.
pub fn follow_ups_due(store: &Store, today: &str, until: &str) -> Result<Vec<FollowUp>> {
    let mut statement = store.conn().prepare_cached(
        "WITH latest AS (
            SELECT v.*, row_number() OVER (PARTITION BY v.household_id ORDER BY v.visited_at DESC, v.id DESC) AS rank
              FROM visits v WHERE v.deleted = 0 AND substr(v.visited_at, 1, 10) <= ?1)
         SELECT l.household_id, h.head_name, vi.name, h.phone, l.id, l.next_visit_date,
                CAST(julianday(?1) - julianday(l.next_visit_date) AS INTEGER), l.actions_agreed
           FROM latest l JOIN households h ON h.id = l.household_id AND h.deleted = 0 AND h.closed_reason IS NULL
           LEFT JOIN villages vi ON vi.id = h.village_id
          WHERE l.rank = 1 AND l.next_visit_date IS NOT NULL AND l.next_visit_date <= ?2 AND l.follow_up_done_on IS NULL
          ORDER BY l.next_visit_date, h.head_name",
    )?;
    let rows = statement.query_map([today, until], |row| {
        Ok(FollowUp {
            household_id: row.get(0)?,
            head_name: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
            village_name: row.get(2)?,
            phone: row.get(3)?,
            visit_id: row.get(4)?,
            due_date: row.get(5)?,
            days_overdue: row.get(6)?,
            actions_agreed: row.get(7)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
