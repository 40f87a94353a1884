//! 户 Household commands: the roster, the household page, the register forms, income.

use furrow::codes::HouseholdClosure;
use furrow::domain::household::{self, Household, IdCardFacts, Member, PossibleDuplicate, RosterEntry, RosterQuery};
use furrow::domain::household_view::{self, HouseholdView};
use furrow::domain::DeletionImpact;
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
    state.with_store(move |store| household_view::view(store, &id)).await
}

/// Creates or edits a household.
#[tauri::command]
pub async fn save_household(state: State<'_, AppState>, household: Household) -> CommandResult<Household> {
    state.with_store(move |store| household::save(store, &household)).await
}

/// Deletes a household with its members, their check-ins and scores, and its visits.
#[tauri::command]
pub async fn delete_household(state: State<'_, AppState>, id: String) -> CommandResult<()> {
    state.with_store(move |store| household::delete(store, &id)).await
}

/// What deleting a household takes with it, for the confirmation.
#[tauri::command]
pub async fn household_deletion_impact(state: State<'_, AppState>, id: String) -> CommandResult<DeletionImpact> {
    state.with_store(move |store| household::deletion_impact(store, &id)).await
}

/// Closes a household (迁出, 死亡, 自然消亡) on a date, with a note.
#[tauri::command]
pub async fn close_household(
    state: State<'_, AppState>,
    id: String,
    reason: HouseholdClosure,
    on: String,
    note: Option<String>,
) -> CommandResult<Household> {
    state.with_store(move |store| household::close(store, &id, reason, &on, note.as_deref().filter(|note| !note.trim().is_empty()))).await
}

/// Puts a closed household back in the register.
#[tauri::command]
pub async fn reopen_household(state: State<'_, AppState>, id: String) -> CommandResult<Household> {
    state.with_store(move |store| household::reopen(store, &id)).await
}

/// The households that may be this one entered twice, asked before it is saved.
#[tauri::command]
pub async fn household_duplicates(state: State<'_, AppState>, household: Household) -> CommandResult<Vec<PossibleDuplicate>> {
    state.with_store(move |store| household::household_duplicates(store, &household)).await
}

/// The members elsewhere with this member's identity card number, asked before it is saved.
#[tauri::command]
pub async fn member_duplicates(state: State<'_, AppState>, member: Member) -> CommandResult<Vec<PossibleDuplicate>> {
    state.with_store(move |store| household::member_duplicates(store, &member)).await
}

/// Every possible duplicate of a stored household and its members, for its page.
#[tauri::command]
pub async fn duplicates_of_household(state: State<'_, AppState>, id: String) -> CommandResult<Vec<PossibleDuplicate>> {
    state.with_store(move |store| household::duplicates_of(store, &id)).await
}

/// The birth date and sex an identity card number records, for the member form to fill in.
#[tauri::command]
pub async fn id_card_facts(number: String) -> CommandResult<Option<IdCardFacts>> {
    Ok(household::id_card_facts(&number))
}

/// Creates or edits a member.
#[tauri::command]
pub async fn save_member(state: State<'_, AppState>, member: Member) -> CommandResult<Member> {
    state.with_store(move |store| household::save_member(store, &member)).await
}

/// Deletes a member with their check-ins and scores.
#[tauri::command]
pub async fn delete_member(state: State<'_, AppState>, id: String) -> CommandResult<()> {
    state.with_store(move |store| household::delete_member(store, &id)).await
}

/// What deleting a member takes with it, for the confirmation.
#[tauri::command]
pub async fn member_deletion_impact(state: State<'_, AppState>, id: String) -> CommandResult<DeletionImpact> {
    state.with_store(move |store| household::member_deletion_impact(store, &id)).await
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
