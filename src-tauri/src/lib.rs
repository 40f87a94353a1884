//! Furrow's desktop shell: Tauri commands over the core, the app's state, and its events.
//!
//! The shell holds no rules of its own: every command is a few lines that call the core on a
//! blocking thread and turn its errors into [`error::CommandError`].

pub mod autosync;
pub mod bindings;
pub mod commands;
pub mod demo;
pub mod error;
pub mod housekeeping;
pub mod state;

use std::path::PathBuf;

use tauri::Manager;

use crate::state::DATA_DIR_VARIABLE;

/// The environment variable asking for demo households on first start (a number); the flag
/// `--demo-households N` does the same.
pub const DEMO_VARIABLE: &str = "FURROW_DEMO_HOUSEHOLDS";

/// The value following `flag` on the command line, if given.
fn argument(flag: &str) -> Option<String> {
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        if argument == flag {
            return arguments.next();
        }
        if let Some(value) = argument.strip_prefix(&format!("{flag}=")) {
            return Some(value.to_owned());
        }
    }
    None
}

/// How many demo households to add on first start: `--demo-households N` or
/// [`DEMO_VARIABLE`].
pub(crate) fn demo_households() -> Option<usize> {
    argument("--demo-households").or_else(|| std::env::var(DEMO_VARIABLE).ok()).and_then(|value| value.parse::<usize>().ok())
}

/// The data directory: `--data-dir DIR`, else `FURROW_DATA_DIR`, else the platform's per-user
/// application data directory.
fn data_dir(app: &tauri::App) -> Result<PathBuf, Box<dyn std::error::Error>> {
    if let Some(directory) = argument("--data-dir") {
        return Ok(PathBuf::from(directory));
    }
    if let Some(directory) = std::env::var_os(DATA_DIR_VARIABLE).filter(|value| !value.is_empty()) {
        return Ok(PathBuf::from(directory));
    }
    Ok(app.path().app_data_dir()?)
}

/// Starts the app: builds the whole state in setup, then runs the window's event loop.
pub fn run() {
    tauri::Builder::default()
        .setup(|app| {
            let directory = data_dir(app)?;
            std::fs::create_dir_all(&directory)?;
            furrow::vault::set_private(&directory, true)?;
            app.manage(state::Gate::new(directory.clone()));
            // The demo and the end-to-end tests start without a person at the keyboard; anyone
            // else chooses the passphrase, or enters it, in the window.
            if let Some(passphrase) = std::env::var(state::PASSPHRASE_VARIABLE).ok().filter(|value| !value.is_empty()) {
                let database = directory.join(state::DATABASE_FILE);
                let first = matches!(furrow::encryption::lock_state(&database)?, furrow::encryption::Lock::New | furrow::encryption::Lock::Plain);
                commands::vault::open_store(app.handle(), &passphrase, first).map_err(|error| error.message)?;
            }
            Ok(())
        })
        // The roster file picked for import, held between its preview and its import.
        .manage(commands::excel::PendingImport::default())
        .invoke_handler(tauri::generate_handler![
            commands::households::search_households,
            commands::excel::excel_import_open,
            commands::excel::excel_import_preview,
            commands::excel::excel_import_run,
            commands::excel::excel_import_undo,
            commands::excel::excel_imports,
            commands::excel::excel_export,
            commands::households::household_view,
            commands::households::save_household,
            commands::households::delete_household,
            commands::households::household_deletion_impact,
            commands::households::close_household,
            commands::households::reopen_household,
            commands::households::household_duplicates,
            commands::households::member_duplicates,
            commands::households::duplicates_of_household,
            commands::households::id_card_facts,
            commands::households::delete_member,
            commands::households::member_deletion_impact,
            commands::households::save_member,
            commands::households::record_income,
            commands::households::correct_income,
            commands::households::list_villages,
            commands::households::save_village,
            commands::training::list_sessions,
            commands::training::save_session,
            commands::training::check_in,
            commands::training::session_attendance,
            commands::training::save_assessment,
            commands::training::delete_session,
            commands::training::session_deletion_impact,
            commands::training::session_attendees,
            commands::training::remove_attendee,
            commands::training::set_attendance_status,
            commands::training::set_attendance_note,
            commands::training::session_assessments,
            commands::training::check_in_candidates,
            commands::training::check_in_new,
            commands::training::save_scores,
            commands::training::trainer_candidates,
            commands::outcomes::outcomes,
            commands::outcomes::outcome_households,
            commands::visits::save_visit,
            commands::visits::follow_ups_due,
            commands::visits::delete_visit,
            commands::visits::mark_follow_up_done,
            commands::listings::list_products,
            commands::listings::save_product,
            commands::listings::list_listings,
            commands::listings::save_listing,
            commands::listings::get_listing,
            commands::listings::check_listing_rules,
            commands::listings::submit_listing,
            commands::listings::listing_sales,
            commands::listings::listing_submission_state,
            commands::photos::listing_photos,
            commands::photos::import_photo,
            commands::photos::set_photo_caption,
            commands::photos::crop_photo_square,
            commands::photos::set_main_photo,
            commands::photos::reorder_photos,
            commands::photos::delete_photo,
            commands::reference::enum_labels,
            commands::reference::poverty_lines,
            commands::settings::get_settings,
            commands::settings::set_language,
            commands::settings::set_server_url,
            commands::settings::allow_insecure_host,
            commands::settings::forget_insecure_host,
            commands::vault::export_backup,
            commands::vault::preview_backup,
            commands::vault::restore_backup,
            commands::vault::vault_status,
            commands::vault::set_passphrase,
            commands::vault::unlock,
            commands::vault::lock,
            commands::vault::change_passphrase,
            commands::vault::set_lock_after,
            commands::vault::forget_passphrase,
            commands::vault::reveal_id_card,
            commands::vault::id_card_reveals,
            commands::settings::seed_demo,
            commands::sync::sync_status,
            commands::sync::sign_in,
            commands::sync::work_offline,
            commands::sync::sign_out,
            commands::sync::sync_now,
            commands::sync::list_conflicts,
            commands::sync::resolve_conflict,
            commands::sync::record_sync_states,
            commands::sync::resend_edit,
        ])
        .run(tauri::generate_context!())
        .expect("the Furrow window could not start");
}
