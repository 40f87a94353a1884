//! 销售 Sales and their allocation to households. Both are written by the platform and arrive by
//! sync; the device reads them. A household's e-commerce income is the sum of its allocations.

use serde::{Deserialize, Serialize};

use crate::codes::{OrderStatus, Platform};
use crate::error::Result;
use crate::store::Store;

/// A sale credited to a household.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct HouseholdSale {
    /// Sale id.
    pub sale_id: String,
    /// The listing sold, if known.
    pub listing_id: Option<String>,
    /// The listing's title.
    pub listing_title: Option<String>,
    /// Platform.
    pub platform: Option<Platform>,
    /// Order number.
    pub order_no: Option<String>,
    /// Order date.
    pub order_date: Option<String>,
    /// Order status.
    pub status: Option<OrderStatus>,
    /// Grams credited to the household.
    pub qty_g: Option<i64>,
    /// Amount credited to the household, in fen.
    pub amount_fen: i64,
}

/// A sale of a listing, as the listing's page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ListingSale {
    /// Sale id.
    pub sale_id: String,
    /// Order number.
    pub order_no: Option<String>,
    /// Order date.
    pub order_date: Option<String>,
    /// Order status.
    pub status: Option<OrderStatus>,
    /// Units sold.
    pub qty: Option<i64>,
    /// Gross amount in fen.
    pub gross_fen: i64,
    /// What reaches the seller, in fen.
    pub net_to_seller_fen: Option<i64>,
    /// Where the buyer is.
    pub buyer_region: Option<String>,
    /// Fen credited to households from this sale.
    pub allocated_fen: i64,
}

/// Order statuses whose money does not reach the household.
const NOT_EARNED: &str = "('cancelled', 'refunded', 'pending_payment')";

/// Sales credited to a household, newest first.
pub fn of_household(store: &Store, household_id: &str) -> Result<Vec<HouseholdSale>> {
    let mut statement = store.conn().prepare_cached(
        "SELECT s.id, s.listing_id, l.title, s.platform, s.order_no, s.order_date, s.status, a.qty_g, a.amount_fen
           FROM sale_allocations a JOIN sales s ON s.id = a.sale_id AND s.deleted = 0
           LEFT JOIN listings l ON l.id = s.listing_id
          WHERE a.deleted = 0 AND a.household_id = ?1
          ORDER BY s.order_date DESC, s.id",
    )?;
    let rows = statement.query_map([household_id], |row| {
        Ok(HouseholdSale {
            sale_id: row.get(0)?,
            listing_id: row.get(1)?,
            listing_title: row.get(2)?,
            platform: row.get::<_, Option<String>>(3)?.as_deref().and_then(Platform::from_code),
            order_no: row.get(4)?,
            order_date: row.get(5)?,
            status: row.get::<_, Option<String>>(6)?.as_deref().and_then(OrderStatus::from_code),
            qty_g: row.get(7)?,
            amount_fen: row.get::<_, Option<i64>>(8)?.unwrap_or(0),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A household's allocated sales income per year, excluding orders that were cancelled, refunded
/// or never paid.
pub fn allocations_by_year(store: &Store, household_id: &str) -> Result<Vec<(i64, i64)>> {
    let mut statement = store.conn().prepare_cached(&format!(
        "SELECT CAST(substr(s.order_date, 1, 4) AS INTEGER), sum(a.amount_fen)
           FROM sale_allocations a JOIN sales s ON s.id = a.sale_id AND s.deleted = 0
          WHERE a.deleted = 0 AND a.household_id = ?1 AND s.order_date IS NOT NULL
            AND coalesce(s.status, '') NOT IN {NOT_EARNED}
          GROUP BY 1"
    ))?;
    let rows = statement.query_map([household_id], |row| Ok((row.get(0)?, row.get::<_, Option<i64>>(1)?.unwrap_or(0))))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The sales of a listing, newest first, each with what was credited to households.
pub fn of_listing(store: &Store, listing_id: &str) -> Result<Vec<ListingSale>> {
    let mut statement = store.conn().prepare_cached(
        "SELECT s.id, s.order_no, s.order_date, s.status, s.qty, s.gross_fen, s.net_to_seller_fen, s.buyer_region,
                (SELECT coalesce(sum(a.amount_fen), 0) FROM sale_allocations a WHERE a.sale_id = s.id AND a.deleted = 0)
           FROM sales s
          WHERE s.deleted = 0 AND s.listing_id = ?1
          ORDER BY s.order_date DESC, s.id",
    )?;
    let rows = statement.query_map([listing_id], |row| {
        Ok(ListingSale {
            sale_id: row.get(0)?,
            order_no: row.get(1)?,
            order_date: row.get(2)?,
            status: row.get::<_, Option<String>>(3)?.as_deref().and_then(OrderStatus::from_code),
            qty: row.get(4)?,
            gross_fen: row.get::<_, Option<i64>>(5)?.unwrap_or(0),
            net_to_seller_fen: row.get(6)?,
            buyer_region: row.get(7)?,
            allocated_fen: row.get(8)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Total sales of a listing (units sold and gross fen), excluding cancelled and refunded orders.
pub fn totals_of_listing(store: &Store, listing_id: &str) -> Result<(i64, i64)> {
    Ok(store.conn().query_row(
        &format!(
            "SELECT coalesce(sum(qty), 0), coalesce(sum(gross_fen), 0) FROM sales
              WHERE deleted = 0 AND listing_id = ?1 AND coalesce(status, '') NOT IN {NOT_EARNED}"
        ),
        [listing_id],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?)
}
