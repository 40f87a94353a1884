//! 可持续 Sustainability: whether households keep selling once they have started. Sales are the
//! platform's sales credited to a household (sale allocations) whose money reached it: not
//! cancelled, refunded or unpaid.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::{add_months, Data, Indicator, Scope, Share};
use crate::error::Result;

/// The months after a first sale the curve of households still selling goes to.
pub const CURVE_MONTHS: u32 = 12;

/// Households still selling some months after their first sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct StillSelling {
    /// 月数 Months after the first sale.
    pub months: u32,
    /// 可观察户 Households whose first sale (in the period) was at least that long before the
    /// day the figures are taken on.
    pub eligible: Indicator,
    /// 仍在销售户 Of those, the ones with a sale that many months or more after their first.
    pub still: Indicator,
    /// 持续销售率 Still out of eligible.
    pub share: Share,
}

/// Months with sales in one year.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SalesMonths {
    /// 年度 The year.
    pub year: i64,
    /// 有销售户 Households with a sale that year.
    pub selling: Indicator,
    /// 有销售的月数合计 Months with a sale, summed over those households.
    pub months: i64,
    /// 户均有销售月数 Months with a sale per selling household.
    pub mean_months: Share,
}

/// 可持续 The sustainability outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Sustainability {
    /// 首次销售户 Households whose first sale falls in the period.
    pub first_sales: Indicator,
    /// Households still selling 1 to 12 months after their first sale (6 and 12 are the
    /// headline figures).
    pub still_selling: Vec<StillSelling>,
    /// Months with sales, per year of the period.
    pub months_by_year: Vec<SalesMonths>,
    /// 有销售户 Households with a sale in the period.
    pub selling: Indicator,
    /// 重复销售户 Households with two or more sales in the period.
    pub repeat: Indicator,
    /// 重复销售率 Repeat out of selling.
    pub repeat_share: Share,
    /// 销售笔数 Sales in the period.
    pub sales: i64,
    /// 销售额（分） Fen credited in the period.
    pub sales_fen: i64,
    /// 在售商品 Listings live now: submitted, approved by the platform, not sold out.
    pub listings_live: i64,
    /// 有在售商品户 The households producing them.
    pub listing_households: Indicator,
}

impl Sustainability {
    pub(crate) fn indicators_mut(&mut self) -> Vec<&mut Indicator> {
        let mut all = vec![&mut self.first_sales, &mut self.selling, &mut self.repeat, &mut self.listing_households];
        for point in &mut self.still_selling {
            all.push(&mut point.eligible);
            all.push(&mut point.still);
        }
        for year in &mut self.months_by_year {
            all.push(&mut year.selling);
        }
        all
    }
}

/// Computes the sustainability outcome.
pub fn compute(conn: &Connection, data: &Data, scope: &Scope) -> Result<Sustainability> {
    let as_of = scope.as_of.to_string();
    // Each household's sales up to the day the figures are taken on, oldest first.
    let mut sales: HashMap<&String, Vec<&str>> = HashMap::new();
    for sale in data.sales.iter().filter(|sale| sale.date.as_str() <= as_of.as_str()) {
        sales.entry(&sale.household_id).or_default().push(&sale.date);
    }
    let cohort: Vec<(&String, &str)> =
        sales.iter().map(|(id, dates)| (*id, dates[0])).filter(|(_, first)| scope.contains(first)).collect();
    let still_selling = (1..=CURVE_MONTHS)
        .map(|months| {
            let mut eligible = Vec::new();
            let mut still = Vec::new();
            for &(id, first) in &cohort {
                let Some(mark) = add_months(first, months) else { continue };
                if mark > as_of {
                    continue;
                }
                eligible.push(id);
                if sales[id].iter().any(|date| **date >= *mark) {
                    still.push(id);
                }
            }
            let eligible = Indicator::of(format!("sustainability.still_selling.{months}.eligible"), eligible);
            let still = Indicator::of(format!("sustainability.still_selling.{months}.still"), still);
            StillSelling { months, share: still.share_of(&eligible), eligible, still }
        })
        .collect();
    // Sales in the period.
    let mut in_period: BTreeMap<&String, BTreeSet<&String>> = BTreeMap::new();
    let mut months: BTreeMap<i64, BTreeMap<&String, BTreeSet<&str>>> = BTreeMap::new();
    let (mut count, mut fen) = (0, 0);
    for sale in data.sales.iter().filter(|sale| scope.contains(&sale.date)) {
        in_period.entry(&sale.household_id).or_default().insert(&sale.sale_id);
        count += 1;
        fen += sale.amount_fen;
        if let Some(year) = sale.date.get(..4).and_then(|year| year.parse::<i64>().ok()) {
            months.entry(year).or_default().entry(&sale.household_id).or_default().insert(&sale.date[..7]);
        }
    }
    let years: Vec<i64> = match scope.years {
        Some((first, last)) => (first..=last).collect(),
        None => months.keys().copied().collect(),
    };
    let months_by_year = years
        .into_iter()
        .map(|year| {
            let empty = BTreeMap::new();
            let households = months.get(&year).unwrap_or(&empty);
            let total: i64 = households.values().map(|months| months.len() as i64).sum();
            SalesMonths {
                year,
                selling: Indicator::of(format!("sustainability.{year}.selling"), households.keys().copied()),
                months: total,
                mean_months: Share::of(total, households.len() as i64),
            }
        })
        .collect();
    let selling = Indicator::of("sustainability.selling", in_period.keys().copied());
    let repeat = Indicator::of("sustainability.repeat", in_period.iter().filter(|(_, sales)| sales.len() >= 2).map(|(id, _)| *id));
    let (listings_live, listing_households) = listings_live(conn, data, scope)?;
    Ok(Sustainability {
        first_sales: Indicator::of("sustainability.first_sales", cohort.iter().map(|(id, _)| *id)),
        still_selling,
        months_by_year,
        repeat_share: repeat.share_of(&selling),
        selling,
        repeat,
        sales: count,
        sales_fen: fen,
        listings_live,
        listing_households,
    })
}

/// Listings live now (submitted, approved, not sold out) of the report's households' produce, or
/// of the chosen village's products when no household is named as producer; and their producers.
fn listings_live(conn: &Connection, data: &Data, scope: &Scope) -> Result<(i64, Indicator)> {
    let mut statement = conn.prepare_cached(
        "SELECT p.producer_household_id, p.village_id FROM listings l JOIN products p ON p.id = l.product_id AND p.deleted = 0
          WHERE l.deleted = 0 AND l.status = 'submitted' AND l.moderation_status = 'approved' AND coalesce(l.sold_out, 0) = 0",
    )?;
    let mut rows = statement.query([])?;
    let mut count = 0;
    let mut producers: Vec<String> = Vec::new();
    while let Some(row) = rows.next()? {
        let (producer, village): (Option<String>, Option<String>) = (row.get(0)?, row.get(1)?);
        match producer {
            Some(producer) if data.households.contains_key(&producer) => {
                count += 1;
                producers.push(producer);
            }
            Some(_) => {}
            None if scope.village_id.is_none() || scope.village_id == village => count += 1,
            None => {}
        }
    }
    Ok((count, Indicator::of("sustainability.listings_live", producers.iter())))
}
