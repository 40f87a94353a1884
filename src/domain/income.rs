//! 收入 Income records (append-only) and per-capita net income against the poverty line.
//!
//! A record is never edited: a correction is a new record whose `corrects_id` names the record it
//! replaces, so no concurrent edit can lose money. Net income follows the 建档立卡 arithmetic:
//! wage + operating − operating cost + property + transfer, plus the household's share of
//! platform sales (sale allocations); "not counted for exit" items are shown but not counted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codes::{IncomeCategory, IncomeSource, IncomeSubcategory};
use crate::domain::reference;
use crate::error::Result;
use crate::schema::INCOME_RECORDS;
use crate::store::Store;

/// An income record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields = nullable))]
#[serde(default)]
pub struct IncomeRecord {
    /// Row id; `None` for a new record.
    pub id: Option<String>,
    /// The scope; set by the core.
    pub scope_id: Option<String>,
    /// 所属户 Household.
    pub household_id: Option<String>,
    /// 成员 Member, when the income is one person's.
    pub member_id: Option<String>,
    /// 年度 Year.
    pub year: Option<i64>,
    /// 期间 Period: `Y`, `Q1`–`Q4` or `M01`–`M12`.
    pub period: Option<String>,
    /// 类别 Category.
    pub category: Option<IncomeCategory>,
    /// 小类 Subcategory.
    pub subcategory: Option<IncomeSubcategory>,
    /// 品种/项目 Item, e.g. 核桃.
    pub item: Option<String>,
    /// 数量（克） Quantity in grams.
    pub quantity_g: Option<i64>,
    /// 金额（分） Amount in fen; costs are positive and subtracted.
    pub amount_fen: Option<i64>,
    /// 电商收入 Earned through e-commerce.
    pub is_ecommerce: Option<bool>,
    /// 来源 Where the figure came from.
    pub source: Option<IncomeSource>,
    /// 更正的记录 The record this one corrects.
    pub corrects_id: Option<String>,
    /// 记录日期 Date recorded.
    pub recorded_on: Option<String>,
    /// 备注 Note.
    pub note: Option<String>,
}

/// Records a new income record. Records are append-only: to change one, [`correct`] it.
pub fn record(store: &mut Store, record: &IncomeRecord) -> Result<IncomeRecord> {
    let mut new = record.clone();
    new.id = None;
    super::save(store, &INCOME_RECORDS, None, &new)
}

/// Records a correction: a new record that replaces `corrects_id` in every total. An amount of
/// zero voids the corrected record.
pub fn correct(store: &mut Store, corrects_id: &str, replacement: &IncomeRecord) -> Result<IncomeRecord> {
    let mut new = replacement.clone();
    new.corrects_id = Some(corrects_id.to_owned());
    record(store, &new)
}

/// An income record by id.
pub fn get(store: &Store, id: &str) -> Result<IncomeRecord> {
    super::get(store, &INCOME_RECORDS, id)
}

/// The records of a household that are in force (not replaced by a correction), newest first.
pub fn in_force(store: &Store, household_id: &str) -> Result<Vec<IncomeRecord>> {
    let mut records: Vec<IncomeRecord> = super::list(
        store,
        &INCOME_RECORDS,
        "household_id = ?1 AND NOT EXISTS (SELECT 1 FROM income_records c
            WHERE c.corrects_id = income_records.id AND c.deleted = 0)",
        &[&household_id],
    )?;
    records.sort_by(|a, b| (b.year, &b.recorded_on).cmp(&(a.year, &a.recorded_on)));
    Ok(records)
}

/// One year of a household's income against the poverty line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct YearIncome {
    /// The year.
    pub year: i64,
    /// Totals per category in fen, from the records in force.
    pub by_category: BTreeMap<String, i64>,
    /// E-commerce income credited from platform sales (sale allocations), in fen.
    pub ecommerce_sales_fen: i64,
    /// Net income counted for exit, in fen.
    pub net_fen: i64,
    /// People the income is divided among.
    pub household_size: i64,
    /// Net income per person, in fen (floor); `None` when the household has no members.
    pub per_capita_fen: Option<i64>,
    /// The poverty line in force that year, in fen.
    pub poverty_line_fen: Option<i64>,
    /// Whether per-capita income is above the line.
    pub above_line: Option<bool>,
}

/// Per-capita net income per year, computed from the records in force, the household's sale
/// allocations, and its size, each year against the poverty line in force.
pub fn by_year(store: &Store, household_id: &str) -> Result<Vec<YearIncome>> {
    let mut years: BTreeMap<i64, YearIncome> = BTreeMap::new();
    for record in in_force(store, household_id)? {
        let (Some(year), Some(category), Some(amount)) = (record.year, record.category, record.amount_fen) else { continue };
        let entry = years.entry(year).or_insert_with(|| YearIncome { year, ..YearIncome::default() });
        *entry.by_category.entry(category.code().to_owned()).or_insert(0) += amount;
    }
    for (year, amount) in crate::domain::sale::allocations_by_year(store, household_id)? {
        let entry = years.entry(year).or_insert_with(|| YearIncome { year, ..YearIncome::default() });
        entry.ecommerce_sales_fen += amount;
    }
    let size = crate::domain::household::household_size(store.conn(), household_id)?;
    let village_code: Option<String> = store
        .conn()
        .query_row(
            "SELECT v.code FROM households h JOIN villages v ON v.id = h.village_id WHERE h.id = ?1",
            [household_id],
            |row| row.get(0),
        )
        .ok();
    for entry in years.values_mut() {
        let total = |category: IncomeCategory| entry.by_category.get(category.code()).copied().unwrap_or(0);
        entry.net_fen = total(IncomeCategory::Wage) + total(IncomeCategory::Operating) - total(IncomeCategory::OperatingCost)
            + total(IncomeCategory::Property)
            + total(IncomeCategory::Transfer)
            + entry.ecommerce_sales_fen;
        entry.household_size = size;
        entry.per_capita_fen = (size > 0).then(|| entry.net_fen.div_euclid(size));
        entry.poverty_line_fen = reference::line_in_force(store, entry.year, village_code.as_deref())?.map(|line| line.amount_fen);
        entry.above_line = match (entry.per_capita_fen, entry.poverty_line_fen) {
            (Some(per_capita), Some(line)) => Some(per_capita > line),
            _ => None,
        };
    }
    Ok(years.into_values().collect())
}
