//! 产品与商品 Product and listing commands (basic; listing checks live in the core).

use furrow::domain::listing::{self, Listing, Product};
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
