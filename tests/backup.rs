//! Encrypted backups on real files: a backup written to another folder holds no name, phone or
//! card number; its preview says what it holds; it restores into a new data directory; and a
//! restore over a store with unsynced work changes nothing until the user says to discard it.

use std::path::{Path, PathBuf};

use furrow::backup::{self, BackupKey, UnsyncedWork};
use furrow::domain::household::{self, Household};
use furrow::domain::village::{self, Village};
use furrow::codes::{HouseholdAttribute, PovertyStatus};
use furrow::encryption::{self, Lock};
use furrow::vault::VaultError;
use furrow::Store;

const DEVICE: &str = "246810";
const NAMES: [&str; 2] = ["龚秀芝", "鲁德旺"];
const PHONES: [&str; 2] = ["13987650001", "13987650002"];

fn add_household(store: &mut Store, village: &str, name: &str, phone: &str) {
    let draft = Household {
        village_id: Some(village.to_owned()),
        head_name: Some(name.to_owned()),
        phone: Some(phone.to_owned()),
        attribute: Some(HouseholdAttribute::General),
        poverty_status: Some(PovertyStatus::NotExited),
        ..Household::default()
    };
    household::save(store, &draft).unwrap();
}

/// A device store with a village and two households, all unsynced.
fn device(directory: &Path) -> (PathBuf, Store, furrow::vault::DataKey, String) {
    let path = directory.join("furrow.db");
    let (mut store, key) = encryption::set_up(&path, DEVICE).unwrap();
    let village = Village { code: Some("530724100201".into()), name: Some("青山村".into()), ..Village::default() };
    let village = village::save(&mut store, &village).unwrap().id.unwrap();
    for (name, phone) in NAMES.iter().zip(PHONES) {
        add_household(&mut store, &village, name, phone);
    }
    (path, store, key, village)
}

fn heads(store: &Store) -> Vec<String> {
    let mut names: Vec<String> =
        household::search(store, &household::RosterQuery::default()).unwrap().into_iter().map(|row| row.head_name).collect();
    names.sort();
    names
}

fn holds_plain_text(bytes: &[u8]) -> bool {
    NAMES.iter().chain(PHONES.iter()).any(|needle| bytes.windows(needle.len()).any(|window| window == needle.as_bytes()))
        || bytes.windows(15).any(|window| window == b"SQLite format 3")
}

#[test]
fn a_backup_to_another_folder_is_encrypted_previews_and_restores_into_a_new_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (path, store, key, _village) = device(&dir.path().join("laptop"));
    let usb = dir.path().join("usb");
    let copy = backup::back_up(&store, &path, &key, &usb, BackupKey::Device).unwrap();
    assert!(copy.starts_with(&usb));
    for file in std::fs::read_dir(&usb).unwrap() {
        let file = file.unwrap().path();
        assert!(!holds_plain_text(&std::fs::read(&file).unwrap()), "{} holds plain text", file.display());
    }

    let wrong = backup::preview(&copy, "135790").unwrap_err();
    assert!(matches!(wrong, VaultError::WrongPassphrase { .. }), "{wrong:?}");
    let preview = backup::preview(&copy, DEVICE).unwrap();
    let count = |table: &str| preview.tables.iter().find(|(name, _)| name == table).map(|(_, count)| *count);
    assert_eq!(count("households"), Some(2));
    assert_eq!(count("villages"), Some(1));
    assert_eq!(preview.pending_records, 3, "the village and both households had not reached the server");
    assert_eq!(preview.made_at.len(), 16, "{}", preview.made_at);

    let fresh = dir.path().join("new-laptop").join("furrow.db");
    backup::restore(&fresh, &copy, DEVICE, None, false).unwrap().unwrap();
    assert_eq!(encryption::lock_state(&fresh).unwrap(), Lock::Locked);
    let (restored, _key) = encryption::unlock(&fresh, DEVICE).unwrap();
    assert_eq!(heads(&restored), vec!["鲁德旺".to_owned(), "龚秀芝".to_owned()]);
    assert_eq!(restored.pending_changes().unwrap(), store.pending_changes().unwrap(), "unsynced work comes along");
    assert_eq!(restored.node(), store.node(), "the restored store is the same device's");
}

#[test]
fn a_backup_with_its_own_passphrase_opens_with_that_one_only() {
    let dir = tempfile::tempdir().unwrap();
    let (path, store, key, _village) = device(&dir.path().join("laptop"));
    let short = backup::back_up(&store, &path, &key, &dir.path().join("usb"), BackupKey::Passphrase("12345")).unwrap_err();
    assert!(matches!(short, VaultError::WeakPassphrase), "{short:?}");
    assert!(!dir.path().join("usb").exists(), "nothing was written");
    let copy = backup::back_up(&store, &path, &key, &dir.path().join("usb"), BackupKey::Passphrase("county-office-9")).unwrap();
    assert!(matches!(backup::preview(&copy, DEVICE).unwrap_err(), VaultError::WrongPassphrase { .. }));
    assert_eq!(backup::preview(&copy, "county-office-9").unwrap().tables.iter().find(|(table, _)| table == "households").unwrap().1, 2);
}

#[test]
fn a_restore_over_unsynced_work_asks_first_and_changes_nothing_until_told() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut store, key, village) = device(&dir.path().join("laptop"));
    let copy = backup::back_up(&store, &path, &key, &dir.path().join("usb"), BackupKey::Device).unwrap();
    add_household(&mut store, &village, "贺玉珍", "13987650003");
    drop(store);
    let before = std::fs::read(&path).unwrap();

    let asked = backup::restore(&path, &copy, DEVICE, Some(&key), false).unwrap();
    assert_eq!(asked, Err(UnsyncedWork { records: 4 }));
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing changed before the user said so");
    let (kept, _key) = encryption::unlock(&path, DEVICE).unwrap();
    assert_eq!(heads(&kept).len(), 3);
    drop(kept);

    backup::restore(&path, &copy, DEVICE, Some(&key), true).unwrap().unwrap();
    let (restored, _key) = encryption::unlock(&path, DEVICE).unwrap();
    assert_eq!(heads(&restored), vec!["鲁德旺".to_owned(), "龚秀芝".to_owned()], "the backup's records, as they were");
    let leftovers: Vec<String> = std::fs::read_dir(dir.path().join("laptop"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("replaced") || name.contains("encrypt"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
