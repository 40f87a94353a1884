//! 减贫 Poverty reduction: each household's per-capita net income per year against the poverty
//! line in force, who is above it, who crossed it, what e-commerce brought, who exited, and the
//! monitoring cases (监测对象) that meet the conditions for their risk to be removed.
//!
//! Net income is the household page's arithmetic ([`crate::domain::income::by_year`]): the
//! income records in force (a correction replaces what it corrects) give wage + operating −
//! operating cost + property + transfer ("not counted for exit" items are left out), plus the
//! platform sales credited to the household through sale allocations in the year of the order
//! (cancelled, refunded and unpaid orders left out); it is divided among the living members, and
//! the floor of the division is the per-capita figure.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use super::{Data, Indicator, Scope, Share};
use crate::codes::IncomeCategory;
use crate::domain::reference;
use crate::error::Result;
use crate::store::Store;

/// One year of income against the line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct IncomeYear {
    /// 年度 The year.
    pub year: i64,
    /// 贫困线（分/人·年） The line in force that year for the chosen village (the national line
    /// without one); each household is judged against its own village's line.
    pub line_fen: Option<i64>,
    /// 有收入数据户 Households with income recorded or sales credited that year (and at least
    /// one living member).
    pub assessed: Indicator,
    /// 高于贫困线户 Per-capita net income above the line.
    pub above: Indicator,
    /// 未高于贫困线户 At or below the line.
    pub below: Indicator,
    /// 高于贫困线比例 Above out of assessed.
    pub above_share: Share,
    /// 当年越线户 Above the line this year, at or below it the year before.
    pub crossed: Indicator,
    /// 户均人均纯收入（分） Mean per-capita net income over the assessed households.
    pub mean_per_capita_fen: Share,
    /// 纯收入合计（分） Net income of the assessed households.
    pub net_fen: i64,
    /// 电商收入（分） Sales credited plus records marked e-commerce.
    pub ecommerce_fen: i64,
    /// 电商收入占比 E-commerce income out of net income.
    pub ecommerce_share: Share,
    /// 有电商收入户 Households with e-commerce income above zero.
    pub ecommerce_households: Indicator,
}

/// 减贫 The poverty reduction outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Poverty {
    /// Each year of the period (every year with data without one), oldest first.
    pub years: Vec<IncomeYear>,
    /// 已脱贫户 Households exited (新脱贫 or 历史已脱贫), in the period's years when it has some.
    pub exited: Indicator,
    /// 监测对象 Monitoring cases (any monitoring type but 非监测对象).
    pub monitored: Indicator,
    /// 达到风险消除条件 Monitoring cases above the line in the last year and whose latest
    /// basic-needs check answered yes to all five questions.
    pub risk_removed: Indicator,
}

impl Poverty {
    pub(crate) fn indicators_mut(&mut self) -> Vec<&mut Indicator> {
        let mut all = vec![&mut self.exited, &mut self.monitored, &mut self.risk_removed];
        for year in &mut self.years {
            all.extend([&mut year.assessed, &mut year.above, &mut year.below, &mut year.crossed, &mut year.ecommerce_households]);
        }
        all
    }
}

/// One household's year: net and e-commerce income in fen.
#[derive(Default, Clone, Copy)]
struct Totals {
    net_fen: i64,
    ecommerce_fen: i64,
}

/// How a category's amount enters net income: added, subtracted, or left out.
fn sign(category: &str) -> i64 {
    match IncomeCategory::from_code(category) {
        Some(IncomeCategory::Wage | IncomeCategory::Operating | IncomeCategory::Property | IncomeCategory::Transfer) => 1,
        Some(IncomeCategory::OperatingCost) => -1,
        Some(IncomeCategory::Excluded) | None => 0,
    }
}

/// Computes the poverty reduction outcome.
pub fn compute(store: &Store, data: &Data, scope: &Scope) -> Result<Poverty> {
    let conn = store.conn();
    let mut income: BTreeMap<i64, HashMap<&String, Totals>> = BTreeMap::new();
    // The records a live correction replaces (few), then every record once, keeping the others.
    let mut statement = conn.prepare_cached("SELECT corrects_id FROM income_records WHERE corrects_id IS NOT NULL AND deleted = 0")?;
    let replaced: HashSet<String> = statement.query_map([], |row| row.get(0))?.collect::<rusqlite::Result<_>>()?;
    let mut statement = conn.prepare_cached(
        "SELECT r.household_id, r.year, r.category, coalesce(r.amount_fen, 0), coalesce(r.is_ecommerce, 0), r.id FROM income_records r
          WHERE r.deleted = 0 AND r.year IS NOT NULL",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        if !replaced.is_empty() && replaced.contains(row.get_ref(5)?.as_str().unwrap_or_default()) {
            continue;
        }
        let household: Option<String> = row.get(0)?;
        let Some((id, _)) = household.and_then(|household| data.households.get_key_value(&household)) else { continue };
        let (year, category, amount, ecommerce): (i64, Option<String>, i64, bool) = (row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?);
        let signed = sign(category.as_deref().unwrap_or_default()) * amount;
        let totals = income.entry(year).or_default().entry(id).or_default();
        totals.net_fen += signed;
        if ecommerce {
            totals.ecommerce_fen += signed;
        }
    }
    for sale in &data.sales {
        let Some(year) = sale.date.get(..4).and_then(|year| year.parse::<i64>().ok()) else { continue };
        let Some((id, _)) = data.households.get_key_value(&sale.household_id) else { continue };
        let totals = income.entry(year).or_default().entry(id).or_default();
        totals.net_fen += sale.amount_fen;
        totals.ecommerce_fen += sale.amount_fen;
    }
    let years: Vec<i64> = match scope.years {
        Some((first, last)) => (first..=last).collect(),
        None => income.keys().copied().collect(),
    };
    let mut lines: HashMap<(i64, Option<String>), Option<i64>> = HashMap::new();
    let mut line = |year: i64, code: Option<&String>| -> Result<Option<i64>> {
        let key = (year, code.cloned());
        if let Some(known) = lines.get(&key) {
            return Ok(*known);
        }
        let found = reference::line_in_force(store, year, code.map(String::as_str))?.map(|line| line.amount_fen);
        lines.insert(key, found);
        Ok(found)
    };
    // Whether each household was above the line, per year (also the year before the first).
    let mut above_in: HashMap<i64, HashMap<&String, bool>> = HashMap::new();
    let wanted: BTreeSet<i64> = years.iter().flat_map(|year| [year - 1, *year]).collect();
    for &year in &wanted {
        let Some(households) = income.get(&year) else { continue };
        let mut verdicts = HashMap::new();
        for (&id, totals) in households {
            let facts = &data.households[id];
            if facts.size == 0 {
                continue;
            }
            if let Some(line) = line(year, facts.village_code.as_ref())? {
                verdicts.insert(id, totals.net_fen.div_euclid(facts.size) > line);
            }
        }
        above_in.insert(year, verdicts);
    }
    let village_code: Option<String> = match &scope.village_id {
        Some(village) => conn.query_row("SELECT code FROM villages WHERE id = ?1", [village], |row| row.get(0)).optional()?.flatten(),
        None => None,
    };
    let mut result = Vec::new();
    for &year in &years {
        let empty = HashMap::new();
        let households = income.get(&year).unwrap_or(&empty);
        let assessed: Vec<&String> = households.keys().copied().filter(|id| data.households[*id].size > 0).collect();
        let verdicts = above_in.get(&year).cloned().unwrap_or_default();
        let before = above_in.get(&(year - 1)).cloned().unwrap_or_default();
        let above: Vec<&String> = verdicts.iter().filter(|(_, above)| **above).map(|(id, _)| *id).collect();
        let below: Vec<&String> = verdicts.iter().filter(|(_, above)| !**above).map(|(id, _)| *id).collect();
        let crossed: Vec<&String> = above.iter().copied().filter(|id| before.get(id) == Some(&false)).collect();
        let per_capita: i64 = assessed.iter().map(|id| households[id].net_fen.div_euclid(data.households[*id].size)).sum();
        let net_fen: i64 = assessed.iter().map(|id| households[id].net_fen).sum();
        let ecommerce_fen: i64 = assessed.iter().map(|id| households[id].ecommerce_fen).sum();
        let assessed_indicator = Indicator::of(format!("poverty.{year}.assessed"), assessed.iter().copied());
        let above = Indicator::of(format!("poverty.{year}.above_line"), above);
        result.push(IncomeYear {
            year,
            line_fen: line(year, village_code.as_ref())?,
            above_share: above.share_of(&assessed_indicator),
            above,
            below: Indicator::of(format!("poverty.{year}.below_line"), below),
            crossed: Indicator::of(format!("poverty.{year}.crossed"), crossed),
            mean_per_capita_fen: Share::of(per_capita, assessed.len() as i64),
            net_fen,
            ecommerce_fen,
            ecommerce_share: if net_fen > 0 { Share::of(ecommerce_fen, net_fen) } else { Share::of(ecommerce_fen, 0) },
            ecommerce_households: Indicator::of(
                format!("poverty.{year}.ecommerce"),
                assessed.iter().copied().filter(|id| households[*id].ecommerce_fen > 0),
            ),
            assessed: assessed_indicator,
        });
    }
    let exited = data.households.iter().filter(|(_, facts)| {
        matches!(facts.poverty_status.as_deref(), Some("newly_exited" | "exited_earlier"))
            && scope.years.is_none_or(|(first, last)| facts.exit_year.is_some_and(|year| first <= year && year <= last))
    });
    let monitored: Vec<&String> = data
        .households
        .iter()
        .filter(|(_, facts)| facts.monitoring_type.as_deref().is_some_and(|kind| kind != "none"))
        .map(|(id, _)| id)
        .collect();
    let needs_met = basic_needs_met(conn, data, scope)?;
    let last_above = years.last().and_then(|year| above_in.get(year)).cloned().unwrap_or_default();
    let risk_removed = monitored.iter().copied().filter(|id| last_above.get(id) == Some(&true) && needs_met.contains(*id));
    Ok(Poverty {
        years: result,
        exited: Indicator::of("poverty.exited", exited.map(|(id, _)| id)),
        risk_removed: Indicator::of("poverty.risk_removed", risk_removed),
        monitored: Indicator::of("poverty.monitored", monitored),
    })
}

/// The households whose latest basic-needs check (两不愁三保障 and water, a visit with all five
/// answers, on or before the day the figures are taken on) answered yes to all five.
fn basic_needs_met(conn: &rusqlite::Connection, data: &Data, scope: &Scope) -> Result<BTreeSet<String>> {
    let mut statement = conn.prepare_cached(
        "SELECT household_id, food_clothing_ok = 'yes' AND education_ok = 'yes' AND medical_ok = 'yes' AND housing_ok = 'yes' AND water_ok = 'yes'
           FROM visits
          WHERE deleted = 0 AND substr(visited_at, 1, 10) <= ?1 AND food_clothing_ok IS NOT NULL AND education_ok IS NOT NULL
            AND medical_ok IS NOT NULL AND housing_ok IS NOT NULL AND water_ok IS NOT NULL
          ORDER BY visited_at, id",
    )?;
    let mut latest: HashMap<String, bool> = HashMap::new();
    let mut rows = statement.query([scope.as_of.to_string()])?;
    while let Some(row) = rows.next()? {
        let household: String = row.get::<_, Option<String>>(0)?.unwrap_or_default();
        if data.households.contains_key(&household) {
            latest.insert(household, row.get(1)?);
        }
    }
    Ok(latest.into_iter().filter(|(_, met)| *met).map(|(id, _)| id).collect())
}
