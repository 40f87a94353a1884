//! 成效 Outcome commands: the four outcomes' figures over a filter, and the households behind
//! any one of them.

use furrow::report::{self, Filter, HouseholdRow, Report};
use tauri::State;

use crate::error::CommandResult;
use crate::state::AppState;

/// Every outcome's figures over a filter (the households behind each come from
/// [`outcome_households`]).
#[tauri::command]
pub async fn outcomes(state: State<'_, AppState>, filter: Filter) -> CommandResult<Report> {
    state.with_store(move |store| report::summary(store, &filter)).await
}

/// The households behind one figure (its key) of the outcomes over a filter.
#[tauri::command]
pub async fn outcome_households(state: State<'_, AppState>, filter: Filter, key: String) -> CommandResult<Vec<HouseholdRow>> {
    state.with_store(move |store| report::drill_down(store, &filter, &key)).await
}
