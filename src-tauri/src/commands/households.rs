//! 户 Household commands: the roster, the household page, the register forms, income.

use furrow::domain::household::{self, Household, HouseholdView, Member, RosterEntry, RosterQuery};
use furrow::domain::income::{self, IncomeRecord};
use furrow::domain::village::{self, Village};
use tauri::State;

use crate::error::CommandResult;
use crate::state::AppState;

/// Searches the roster.
#[tauri::command]
pub async fn search_households(state: State<'_, AppState>, query: RosterQuery) -> CommandResult<Vec<RosterEntry>> {
    state.with_store(move |store| household::search(store, &query)).await
}

/// A household's full picture.
#[tauri::command]
pub async fn household_view(state: State<'_, AppState>, id: String) -> CommandResult<HouseholdView> {
    state.with_store(move |store| household::view(store, &id)).await
}

/// Creates or edits a household.
#[tauri::command]
pub async fn save_household(state: State<'_, AppState>, household: Household) -> CommandResult<Household> {
    state.with_store(move |store| household::save(store, &household)).await
}

/// Deletes a household and its members.
#[tauri::command]
pub async fn delete_household(state: State<'_, AppState>, id: String) -> CommandResult<()> {
    state.with_store(move |store| household::delete(store, &id)).await
}

/// Creates or edits a member.
#[tauri::command]
pub async fn save_member(state: State<'_, AppState>, member: Member) -> CommandResult<Member> {
    state.with_store(move |store| household::save_member(store, &member)).await
}

/// Records an income record (append-only).
#[tauri::command]
pub async fn record_income(state: State<'_, AppState>, record: IncomeRecord) -> CommandResult<IncomeRecord> {
    state.with_store(move |store| income::record(store, &record)).await
}

/// Records a correction of an income record: a new record that replaces `corrects_id` in every
/// total (the corrected record stays, as the append-only rule requires).
#[tauri::command]
pub async fn correct_income(state: State<'_, AppState>, corrects_id: String, record: IncomeRecord) -> CommandResult<IncomeRecord> {
    state.with_store(move |store| income::correct(store, &corrects_id, &record)).await
}

/// Every village, by name.
#[tauri::command]
pub async fn list_villages(state: State<'_, AppState>) -> CommandResult<Vec<Village>> {
    state.with_store(|store| village::list(store)).await
}

/// Creates or edits a village.
#[tauri::command]
pub async fn save_village(state: State<'_, AppState>, village: Village) -> CommandResult<Village> {
    state.with_store(move |store| village::save(store, &village)).await
}
