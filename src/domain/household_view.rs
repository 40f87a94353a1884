//! 户 A household's page: the household with its members, income against the poverty line, visits,
//! training, products, listings and sales, read at once. It draws on every kind of record, so it
//! lives apart from them and nothing depends on it.

use serde::{Deserialize, Serialize};

use crate::domain::household::{self, Household, Member};
use crate::domain::{income, listing, sale, training, visit};
use crate::error::Result;
use crate::store::Store;

/// Everything about one household on one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct HouseholdView {
    /// The household.
    pub household: Household,
    /// Its members, head first.
    pub members: Vec<Member>,
    /// Income per year against the poverty line, oldest first.
    pub income_by_year: Vec<income::YearIncome>,
    /// The income records in force (not replaced by a correction), newest first.
    pub income_records: Vec<income::IncomeRecord>,
    /// Its visits, newest first.
    pub visits: Vec<visit::Visit>,
    /// The training sessions its members attended.
    pub trainings: Vec<training::Attended>,
    /// Its members' skill assessments.
    pub assessments: Vec<training::Assessment>,
    /// Products it produces.
    pub products: Vec<listing::Product>,
    /// Listings of those products.
    pub listings: Vec<listing::Listing>,
    /// Sales credited to it.
    pub sales: Vec<sale::HouseholdSale>,
}

/// A household's full picture.
pub fn view(store: &Store, id: &str) -> Result<HouseholdView> {
    let household = household::get(store, id)?;
    let products = listing::products_of_household(store, id)?;
    let mut listings = Vec::new();
    for product in &products {
        listings.extend(listing::listings_of_product(store, product.id.as_deref().unwrap_or_default())?);
    }
    Ok(HouseholdView {
        members: household::members(store, id)?,
        income_by_year: income::by_year(store, id)?,
        income_records: income::in_force(store, id)?,
        visits: visit::of_household(store, id)?,
        trainings: training::attended_by_household(store, id)?,
        assessments: training::assessments_of_household(store, id)?,
        products,
        listings,
        sales: sale::of_household(store, id)?,
        household,
    })
}
