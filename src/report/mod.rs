//! 成效 The outcomes the work is judged on: skills ([`skills`]), poverty reduction
//! ([`poverty`]), sustainability ([`sustainability`]) and reproducibility
//! ([`reproducibility`]), each indicator defined once (docs/outcomes.md names each one, its
//! formula, unit, and what counts).
//!
//! Every figure is read from the store, never written: a report is a pure query. Money is integer
//! fen; a share is a [`Share`] (numerator over denominator, with its per-mille rounded half up),
//! so no figure passes through a float. Every indicator names the households behind it
//! ([`Indicator::households`]), so any number on the screen opens the list of who it counts.

pub mod poverty;
pub mod reproducibility;
pub mod skills;
pub mod sustainability;

use std::collections::HashMap;

use chrono::NaiveDate;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::codes::TrainingTopic;
use crate::error::{Error, FieldError, Result};
use crate::store::Store;

/// What a report covers: a village (every village when `None`), a year or a date range, and a
/// training topic. Dates are `YYYY-MM-DD`; a year wins over a range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields = nullable))]
#[serde(default)]
pub struct Filter {
    /// 村 One village's households only.
    pub village_id: Option<String>,
    /// 年度 One calendar year.
    pub year: Option<i64>,
    /// 起 The first day of the range.
    pub from: Option<String>,
    /// 止 The last day of the range.
    pub to: Option<String>,
    /// 培训主题 One training topic (the skills and reproducibility figures).
    pub topic: Option<TrainingTopic>,
    /// 统计截至 The day the figures are taken on (what has been observed by then); today when
    /// `None`.
    pub as_of: Option<String>,
}

/// A filter checked and made concrete: the period as two dates, the years it spans.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The village, if one.
    pub village_id: Option<String>,
    /// The first day of the period (`0000-01-01` without a period).
    pub from: String,
    /// The last day of the period (`9999-12-31` without a period).
    pub to: String,
    /// The years of the period, when it has one.
    pub years: Option<(i64, i64)>,
    /// The topic, if one.
    pub topic: Option<TrainingTopic>,
    /// The day the figures are taken on.
    pub as_of: NaiveDate,
}

impl Scope {
    /// Checks a filter: every date a real `YYYY-MM-DD`, a year between 1949 and 2100, a range
    /// that does not end before it starts. Every fault is reported at once, in Chinese and
    /// English.
    pub fn of(filter: &Filter) -> Result<Scope> {
        let mut errors = Vec::new();
        let mut date = |field: &str, value: &Option<String>| -> Option<NaiveDate> {
            let text = value.as_deref().map(str::trim).filter(|text| !text.is_empty())?;
            let parsed = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
            if parsed.is_none() {
                errors.push(FieldError::new(field, "invalid_date", "日期应写成 年-月-日，如 2026-03-01", "must be a date written YYYY-MM-DD, e.g. 2026-03-01"));
            }
            parsed
        };
        let from = date("from", &filter.from);
        let to = date("to", &filter.to);
        let as_of = date("as_of", &filter.as_of).unwrap_or_else(|| chrono::Local::now().date_naive());
        if let Some(year) = filter.year {
            if !(1949..=2100).contains(&year) {
                errors.push(FieldError::new("year", "invalid_year", "年份应在1949到2100之间", "must be a year between 1949 and 2100"));
            }
        }
        if let (Some(from), Some(to)) = (from, to) {
            if to < from {
                errors.push(FieldError::new("to", "before_start", "结束日期不能早于开始日期", "must not be before the first day"));
            }
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let (from, to, years) = match filter.year {
            Some(year) => (format!("{year:04}-01-01"), format!("{year:04}-12-31"), Some((year, year))),
            None => {
                let years = (from.is_some() || to.is_some()).then(|| {
                    (from.map_or(1949, |date| i64::from(chrono::Datelike::year(&date))), to.map_or(i64::from(chrono::Datelike::year(&as_of)), |date| i64::from(chrono::Datelike::year(&date))))
                });
                (
                    from.map_or_else(|| "0000-01-01".to_owned(), |date| date.to_string()),
                    to.map_or_else(|| "9999-12-31".to_owned(), |date| date.to_string()),
                    years,
                )
            }
        };
        Ok(Scope { village_id: filter.village_id.clone().filter(|id| !id.is_empty()), from, to, years, topic: filter.topic, as_of })
    }

    /// Whether a `YYYY-MM-DD` date lies in the period.
    pub fn contains(&self, date: &str) -> bool {
        let day = date.get(..10).unwrap_or(date);
        self.from.as_str() <= day && day <= self.to.as_str()
    }
}

/// A share or a mean as an exact fraction: `numerator / denominator`, with the per-mille the
/// screen shows (rounded half up; `None` when the denominator is zero).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Share {
    /// 分子 What is counted.
    pub numerator: i64,
    /// 分母 What it is counted out of.
    pub denominator: i64,
    /// 千分比 `numerator × 1000 / denominator`, rounded half up.
    pub per_mille: Option<i64>,
}

impl Share {
    /// `numerator / denominator`.
    pub fn of(numerator: i64, denominator: i64) -> Share {
        let per_mille = (denominator > 0).then(|| (2 * numerator * 1000 + denominator).div_euclid(2 * denominator));
        Share { numerator, denominator, per_mille }
    }
}

/// One figure that counts households, with the households it counts (for the drill-down).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Indicator {
    /// The indicator's stable key, e.g. `poverty.2025.above_line` (docs/outcomes.md).
    pub key: String,
    /// 户数 How many households.
    pub count: i64,
    /// The households' ids, in id order; empty in a [`summary`] (the screen asks for them with
    /// [`drill_down`]).
    pub households: Vec<String>,
}

impl Indicator {
    /// The indicator `key` counting `households`.
    pub fn of<'a>(key: impl Into<String>, households: impl IntoIterator<Item = &'a String>) -> Indicator {
        let mut households: Vec<&String> = households.into_iter().collect();
        households.sort_unstable();
        households.dedup();
        Indicator { key: key.into(), count: households.len() as i64, households: households.into_iter().cloned().collect() }
    }

    /// The share of `whole` this indicator's households are.
    pub fn share_of(&self, whole: &Indicator) -> Share {
        Share::of(self.count, whole.count)
    }
}

/// All four outcomes over one filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Report {
    /// 统计截至 The day the figures were taken on.
    pub as_of: String,
    /// 技能提升 Skills.
    pub skills: skills::Skills,
    /// 减贫 Poverty reduction.
    pub poverty: poverty::Poverty,
    /// 可持续 Sustainability.
    pub sustainability: sustainability::Sustainability,
    /// 可复制 Reproducibility.
    pub reproducibility: reproducibility::Reproducibility,
}

impl Report {
    /// Every indicator of the report, to find one by key or to empty their lists.
    fn indicators_mut(&mut self) -> Vec<&mut Indicator> {
        let mut all = self.skills.indicators_mut();
        all.extend(self.poverty.indicators_mut());
        all.extend(self.sustainability.indicators_mut());
        all.extend(self.reproducibility.indicators_mut());
        all
    }
}

/// A household in the register as the reports see it.
#[derive(Debug, Clone)]
pub struct HouseholdFacts {
    /// Its village.
    pub village_id: String,
    /// The village's 12-digit code (for the poverty line in force).
    pub village_code: Option<String>,
    /// 脱贫状态 code.
    pub poverty_status: Option<String>,
    /// 监测对象类型 code.
    pub monitoring_type: Option<String>,
    /// 脱贫年度.
    pub exit_year: Option<i64>,
    /// Living members (not deleted, not deceased): the people its income is divided among.
    pub size: i64,
}

/// A training session as the reports see it.
#[derive(Debug, Clone)]
pub struct SessionFacts {
    /// Its date.
    pub date: String,
    /// Minutes it lasted (0 when not recorded).
    pub minutes: i64,
    /// Where it was held.
    pub village_id: String,
    /// Its topics.
    pub topics: Vec<TrainingTopic>,
    /// The farmer who gave it; `None` for the assistant.
    pub trainer_member_id: Option<String>,
}

/// One check-in.
#[derive(Debug, Clone)]
pub struct AttendanceFacts {
    /// The session.
    pub session_id: String,
    /// The member.
    pub member_id: String,
    /// Whether they came (present, late or left early).
    pub attended: bool,
    /// Minutes attended, when recorded.
    pub minutes: Option<i64>,
}

/// A sale credited to a household whose money reached it (not cancelled, refunded or unpaid).
#[derive(Debug, Clone)]
pub struct EarnedSale {
    /// The household credited.
    pub household_id: String,
    /// The sale.
    pub sale_id: String,
    /// The order's date.
    pub date: String,
    /// Fen credited to the household.
    pub amount_fen: i64,
}

/// What every outcome reads, loaded once per report.
pub struct Data {
    /// The households in the register (live, not closed) of the filter's village.
    pub households: HashMap<String, HouseholdFacts>,
    /// Every live member's household.
    pub members: HashMap<String, String>,
    /// The names of the members who gave a session (the lineage shows them).
    pub trainer_names: HashMap<String, String>,
    /// Every live session.
    pub sessions: HashMap<String, SessionFacts>,
    /// Every live check-in of a live session.
    pub attendance: Vec<AttendanceFacts>,
    /// Every earned sale credited to a household, by date.
    pub sales: Vec<EarnedSale>,
}

/// Order statuses whose money does not reach the household (as in the household's income).
pub(crate) const NOT_EARNED: &str = "('cancelled', 'refunded', 'pending_payment')";

impl Data {
    /// Reads what the reports need.
    pub fn load(conn: &Connection, scope: &Scope) -> Result<Data> {
        let mut households = HashMap::new();
        let mut statement = conn.prepare_cached(
            "SELECT h.id, h.village_id, v.code, h.poverty_status, h.monitoring_type, h.exit_year
               FROM households h LEFT JOIN villages v ON v.id = h.village_id
              WHERE h.deleted = 0 AND h.closed_reason IS NULL AND (?1 IS NULL OR h.village_id = ?1)",
        )?;
        let mut rows = statement.query([scope.village_id.as_deref()])?;
        while let Some(row) = rows.next()? {
            households.insert(
                row.get::<_, String>(0)?,
                HouseholdFacts {
                    village_id: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    village_code: row.get(2)?,
                    poverty_status: row.get(3)?,
                    monitoring_type: row.get(4)?,
                    exit_year: row.get(5)?,
                    size: 0,
                },
            );
        }
        let mut members = HashMap::new();
        let mut statement =
            conn.prepare_cached("SELECT id, household_id, coalesce(health, '') = 'deceased' FROM members WHERE deleted = 0")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let household: String = row.get::<_, Option<String>>(1)?.unwrap_or_default();
            if !row.get::<_, bool>(2)? {
                if let Some(facts) = households.get_mut(&household) {
                    facts.size += 1;
                }
            }
            members.insert(row.get::<_, String>(0)?, household);
        }
        let mut statement = conn.prepare_cached(
            "SELECT id, name FROM members WHERE id IN (SELECT trainer_member_id FROM training_sessions WHERE deleted = 0)",
        )?;
        let trainer_names =
            statement.query_map([], |row| Ok((row.get(0)?, row.get::<_, Option<String>>(1)?.unwrap_or_default())))?.collect::<rusqlite::Result<_>>()?;
        let mut sessions = HashMap::new();
        let mut statement = conn.prepare_cached(
            "SELECT id, date, coalesce(duration_min, 0), village_id, topics, trainer_member_id FROM training_sessions WHERE deleted = 0",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let topics: Option<String> = row.get(4)?;
            sessions.insert(
                row.get::<_, String>(0)?,
                SessionFacts {
                    date: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    minutes: row.get(2)?,
                    village_id: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
                    topics: topics.and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default(),
                    trainer_member_id: row.get(5)?,
                },
            );
        }
        let mut attendance = Vec::new();
        let mut statement = conn.prepare_cached(
            "SELECT a.session_id, a.member_id, a.status IN ('present', 'late', 'left_early'), a.minutes_attended
               FROM attendance a JOIN training_sessions s ON s.id = a.session_id AND s.deleted = 0
              WHERE a.deleted = 0",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            attendance.push(AttendanceFacts {
                session_id: row.get(0)?,
                member_id: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                attended: row.get::<_, Option<bool>>(2)?.unwrap_or(false),
                minutes: row.get(3)?,
            });
        }
        let mut sales = Vec::new();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT a.household_id, s.id, s.order_date, coalesce(a.amount_fen, 0)
               FROM sale_allocations a JOIN sales s ON s.id = a.sale_id AND s.deleted = 0
              WHERE a.deleted = 0 AND s.order_date IS NOT NULL AND coalesce(s.status, '') NOT IN {NOT_EARNED}
              ORDER BY s.order_date, s.id"
        ))?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let household: String = row.get::<_, Option<String>>(0)?.unwrap_or_default();
            if households.contains_key(&household) {
                sales.push(EarnedSale { household_id: household, sale_id: row.get(1)?, date: row.get(2)?, amount_fen: row.get(3)? });
            }
        }
        Ok(Data { households, members, trainer_names, sessions, attendance, sales })
    }

    /// The household of a member, when it is one of the report's households.
    pub fn household_of(&self, member_id: &str) -> Option<&String> {
        self.members.get(member_id).filter(|household| self.households.contains_key(*household))
    }

    /// Whether a session falls in the period and has the filter's topic.
    pub fn session_in(&self, session: &SessionFacts, scope: &Scope) -> bool {
        scope.contains(&session.date) && scope.topic.is_none_or(|topic| session.topics.contains(&topic))
    }
}

/// Computes every outcome over a filter.
pub fn compute(store: &Store, filter: &Filter) -> Result<Report> {
    let scope = Scope::of(filter)?;
    let data = Data::load(store.conn(), &scope)?;
    let skills = skills::compute(store.conn(), &data, &scope)?;
    let poverty = poverty::compute(store, &data, &scope)?;
    let sustainability = sustainability::compute(store.conn(), &data, &scope)?;
    let reproducibility = reproducibility::compute(&data, &scope);
    Ok(Report { as_of: scope.as_of.to_string(), skills, poverty, sustainability, reproducibility })
}

/// Every outcome over a filter, with the figures only: each indicator's list of households is
/// left empty (the screen asks for one list at a time with [`drill_down`]), so the answer stays
/// small at any size of caseload.
pub fn summary(store: &Store, filter: &Filter) -> Result<Report> {
    let mut report = compute(store, filter)?;
    for indicator in report.indicators_mut() {
        indicator.households = Vec::new();
    }
    Ok(report)
}

/// A household behind a figure, as the drill-down lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct HouseholdRow {
    /// The household (its page opens from the list).
    pub id: String,
    /// 户编号 Register number.
    pub register_no: Option<String>,
    /// 户主 Head of household.
    pub head_name: String,
    /// 村 Village name.
    pub village_name: Option<String>,
    /// 村民小组 Village group.
    pub group_name: Option<String>,
}

/// The households behind the indicator `key` of the report over `filter`, by village, register
/// number and head; an unknown key is `NotFound`.
pub fn drill_down(store: &Store, filter: &Filter, key: &str) -> Result<Vec<HouseholdRow>> {
    let mut report = compute(store, filter)?;
    let indicator = report
        .indicators_mut()
        .into_iter()
        .find(|indicator| indicator.key == key)
        .ok_or_else(|| Error::NotFound { table: "outcome indicators".into(), id: key.into() })?;
    let ids = std::mem::take(&mut indicator.households);
    let mut statement = store.conn().prepare_cached(
        "SELECT h.id, h.register_no, h.head_name, v.name, h.group_name FROM households h LEFT JOIN villages v ON v.id = h.village_id
          WHERE h.id = ?1",
    )?;
    let mut rows = Vec::with_capacity(ids.len());
    for id in ids {
        let row = statement.query_row([&id], |row| {
            Ok(HouseholdRow {
                id: row.get(0)?,
                register_no: row.get(1)?,
                head_name: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                village_name: row.get(3)?,
                group_name: row.get(4)?,
            })
        })?;
        rows.push(row);
    }
    rows.sort_by(|a, b| (&a.village_name, &a.register_no, &a.head_name, &a.id).cmp(&(&b.village_name, &b.register_no, &b.head_name, &b.id)));
    Ok(rows)
}

/// The day `days` after a `YYYY-MM-DD` date (`None` for a date that is not one).
pub(crate) fn add_days(date: &str, days: i64) -> Option<String> {
    let day = NaiveDate::parse_from_str(date.get(..10)?, "%Y-%m-%d").ok()?;
    Some((day + chrono::Duration::days(days)).to_string())
}

/// The same day `months` calendar months after a `YYYY-MM-DD` date, or the month's last day
/// when it has no such day (31 January + 1 month = 28 or 29 February).
pub(crate) fn add_months(date: &str, months: u32) -> Option<String> {
    let day = NaiveDate::parse_from_str(date.get(..10)?, "%Y-%m-%d").ok()?;
    day.checked_add_months(chrono::Months::new(months)).map(|day| day.to_string())
}
