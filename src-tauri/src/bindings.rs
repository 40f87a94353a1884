//! The TypeScript types of every boundary type, generated with ts-rs into
//! `ui/src/lib/bindings/`. A test regenerates them and fails when the checked-in files differ.

use std::path::Path;

use ts_rs::{Config, ExportError, TS};

/// Writes the TypeScript declaration of every type the commands take or return into `directory`.
/// Integers are `number`: every integer the core sends (fen, grams, years) is far below 2^53.
pub fn export(directory: &Path) -> Result<(), ExportError> {
    let config = Config::new().with_large_int("number").with_out_dir(directory);
    use furrow::codes::{AttendanceStatus, EnumDef};
    use furrow::domain::{household, household_view, income, listing, reference, training, village, visit};
    household_view::HouseholdView::export_all(&config)?;
    household::RosterQuery::export_all(&config)?;
    household::RosterEntry::export_all(&config)?;
    income::IncomeRecord::export_all(&config)?;
    training::TrainingSession::export_all(&config)?;
    training::Attendance::export_all(&config)?;
    AttendanceStatus::export_all(&config)?;
    visit::FollowUp::export_all(&config)?;
    household::PossibleDuplicate::export_all(&config)?;
    household::IdCardFacts::export_all(&config)?;
    furrow::domain::DeletionImpact::export_all(&config)?;
    furrow::codes::HouseholdClosure::export_all(&config)?;
    training::Attendee::export_all(&config)?;
    training::CheckInCandidate::export_all(&config)?;
    training::CheckInReport::export_all(&config)?;
    training::ScoreEntry::export_all(&config)?;
    training::TrainerCandidate::export_all(&config)?;
    furrow::report::Filter::export_all(&config)?;
    furrow::report::Report::export_all(&config)?;
    furrow::report::HouseholdRow::export_all(&config)?;
    furrow::domain::listing_rules::SubmissionState::export_all(&config)?;
    village::Village::export_all(&config)?;
    listing::Product::export_all(&config)?;
    listing::Listing::export_all(&config)?;
    listing::Photo::export_all(&config)?;
    furrow::domain::listing_rules::RuleCheck::export_all(&config)?;
    furrow::domain::sale::ListingSale::export_all(&config)?;
    furrow::domain::photo::PhotoView::export_all(&config)?;
    reference::PovertyLine::export_all(&config)?;
    EnumDef::export_all(&config)?;
    crate::error::CommandError::export_all(&config)?;
    furrow::import::ImportPreview::export_all(&config)?;
    furrow::import::ImportOptions::export_all(&config)?;
    furrow::import::ImportProgress::export_all(&config)?;
    furrow::import::ImportSummary::export_all(&config)?;
    furrow::import::ImportRecord::export_all(&config)?;
    furrow::import::UndoReport::export_all(&config)?;
    furrow::export::ExportOptions::export_all(&config)?;
    crate::state::Settings::export_all(&config)?;
    crate::commands::settings::SettingsView::export_all(&config)?;
    crate::commands::sync::SyncStatus::export_all(&config)?;
    crate::commands::sync::SyncProgress::export_all(&config)?;
    furrow::sync::ConflictView::export_all(&config)?;
    crate::commands::sync::RecordSync::export_all(&config)?;
    crate::commands::vault::VaultStatus::export_all(&config)?;
    furrow::backup::BackupPreview::export_all(&config)?;
    furrow::audit::IdCardReveal::export_all(&config)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn files(directory: &std::path::Path) -> BTreeMap<String, String> {
        std::fs::read_dir(directory)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|entry| entry.path().extension().is_some_and(|extension| extension == "ts"))
                    .map(|entry| (entry.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(entry.path()).unwrap()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Regenerates the bindings and compares them with the checked-in ones. With
    /// `FURROW_WRITE_BINDINGS=1` it writes them instead (after changing a boundary type).
    #[test]
    fn typescript_bindings_are_up_to_date() {
        let checked_in = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui/src/lib/bindings");
        if std::env::var("FURROW_WRITE_BINDINGS").as_deref() == Ok("1") {
            let _ = std::fs::remove_dir_all(&checked_in);
            super::export(&checked_in).unwrap();
        }
        let fresh = tempfile::tempdir().unwrap();
        super::export(fresh.path()).unwrap();
        let (expected, actual) = (files(fresh.path()), files(&checked_in));
        assert_eq!(
            expected.keys().collect::<Vec<_>>(),
            actual.keys().collect::<Vec<_>>(),
            "ui/src/lib/bindings is out of date: run FURROW_WRITE_BINDINGS=1 cargo test -p furrow-app bindings"
        );
        for (name, text) in &expected {
            assert_eq!(text, &actual[name], "ui/src/lib/bindings/{name} is out of date: run FURROW_WRITE_BINDINGS=1 cargo test -p furrow-app bindings");
        }
    }
}
