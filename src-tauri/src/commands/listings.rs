//! 产品与商品 Product and listing commands: products, listing drafts, the platform rules checked
//! as the assistant types, submission, and the listing's sales. The rules live in the core.

use furrow::codes::PhotoOwner;
use furrow::domain::listing::{self, Listing, Product};
use furrow::domain::listing_rules::{self, RuleCheck, SubmissionState};
use furrow::domain::sale::{self, ListingSale};
use tauri::State;

use crate::error::CommandResult;
use crate::state::AppState;

/// Every product.
#[tauri::command]
pub async fn list_products(state: State<'_, AppState>) -> CommandResult<Vec<Product>> {
    state.with_store(|store| listing::products(store)).await
}

/// Creates or edits a product.
#[tauri::command]
pub async fn save_product(state: State<'_, AppState>, product: Product) -> CommandResult<Product> {
    state.with_store(move |store| listing::save_product(store, &product)).await
}

/// Every listing.
#[tauri::command]
pub async fn list_listings(state: State<'_, AppState>) -> CommandResult<Vec<Listing>> {
    state.with_store(|store| listing::listings(store)).await
}

/// Creates or edits a listing draft; the core checks it against the platform's rules.
#[tauri::command]
pub async fn save_listing(state: State<'_, AppState>, listing: Listing) -> CommandResult<Listing> {
    state.with_store(move |store| listing::save_listing(store, &listing)).await
}

/// A listing by id (after a sync, with the platform's verdict).
#[tauri::command]
pub async fn get_listing(state: State<'_, AppState>, id: String) -> CommandResult<Listing> {
    state.with_store(move |store| listing::get_listing(store, &id)).await
}

/// Every platform rule's state for the listing as the form holds it now (saved or not), with
/// the photos it already has.
#[tauri::command]
pub async fn check_listing_rules(state: State<'_, AppState>, listing: Listing) -> CommandResult<Vec<RuleCheck>> {
    state
        .with_store(move |store| {
            let photos = match &listing.id {
                Some(id) => listing::photos_of(store, PhotoOwner::Listing, id)?,
                None => Vec::new(),
            };
            Ok(listing_rules::check_rules(store, &listing, &photos))
        })
        .await
}

/// Submits a saved listing to its platform once every rule passes; submitting again is the same
/// submission, unless the platform rejected it: then the fixed listing is a new submission.
#[tauri::command]
pub async fn submit_listing(state: State<'_, AppState>, id: String) -> CommandResult<Listing> {
    state.with_store(move |store| listing_rules::submit(store, &id)).await
}

/// Whether a listing may be submitted now, and its submissions with the platform's verdicts.
#[tauri::command]
pub async fn listing_submission_state(state: State<'_, AppState>, id: String) -> CommandResult<SubmissionState> {
    state.with_store(move |store| listing_rules::submission_state(store, &id)).await
}

/// The sales of a listing, newest first.
#[tauri::command]
pub async fn listing_sales(state: State<'_, AppState>, listing_id: String) -> CommandResult<Vec<ListingSale>> {
    state.with_store(move |store| sale::of_listing(store, &listing_id)).await
}
