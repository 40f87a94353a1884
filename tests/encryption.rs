//! The caseload encrypted at rest, on real files: a new store, a store moved from plain, its
//! write-ahead log and its backup hold none of the names, phones and identity card numbers
//! written to them; a wrong passphrase opens nothing and changes no byte of the store; a power
//! cut after any step of the move leaves a store that opens with every row.

use std::path::{Path, PathBuf};

use furrow::codes::{HouseholdAttribute, PovertyStatus, RelationToHead, Sex};
use furrow::domain::household::{self, Household, Member};
use furrow::domain::village::{self, Village};
use furrow::encryption::{self, Lock, Step};
use furrow::vault::{DataKey, Vault, VaultError};
use furrow::{Error, OpenOptions, Store};

const PASSPHRASE: &str = "qingshan-2024";

/// An identity card number with its check character, from its first 17 digits.
fn id_card(first17: &str) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17.chars().zip(WEIGHTS).map(|(digit, weight)| digit.to_digit(10).unwrap() * weight).sum();
    format!("{first17}{}", "10X98765432".chars().nth((sum % 11) as usize).unwrap())
}

/// The people written in every test: (name, phone, identity card number).
fn people() -> Vec<(String, String, String)> {
    vec![
        ("龚秀芝".to_owned(), "13987650001".to_owned(), id_card("53072419850612004")),
        ("鲁德旺".to_owned(), "13987650002".to_owned(), id_card("53072419620301003")),
        ("贺玉珍".to_owned(), "13987650003".to_owned(), id_card("53072420010923002")),
    ]
}

/// Writes a village, one household per person (head's name and phone) and a member with the
/// person's identity card number.
fn write_caseload(store: &mut Store) {
    let village = Village { code: Some("530724100201".into()), name: Some("青山村".into()), ..Village::default() };
    let village = village::save(store, &village).unwrap().id.unwrap();
    for (index, (name, phone, card)) in people().into_iter().enumerate() {
        let draft = Household {
            village_id: Some(village.clone()),
            head_name: Some(name.clone()),
            register_no: Some(format!("530724000{index}")),
            phone: Some(phone.clone()),
            attribute: Some(HouseholdAttribute::General),
            poverty_status: Some(PovertyStatus::NotExited),
            ..Household::default()
        };
        let id = household::save(store, &draft).unwrap().id.unwrap();
        let member = Member {
            household_id: Some(id),
            name: Some(name),
            relation: Some(RelationToHead::Head),
            sex: None::<Sex>,
            phone: Some(phone),
            id_card_no: Some(card),
            ..Member::default()
        };
        household::save_member(store, &member).unwrap();
    }
    store.flush_search_index().unwrap();
}

/// Every file under `directory`.
fn files_under(directory: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// What files under `directory` hold in plain text: a known name, phone or card number, or the
/// plain SQLite header, each as `file: text`.
fn plain_text_in(directory: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for file in files_under(directory) {
        let bytes = std::fs::read(&file).unwrap();
        let mut needles = vec!["SQLite format 3\0".to_owned()];
        for (name, phone, card) in people() {
            needles.extend([name, phone, card]);
        }
        for needle in needles {
            if bytes.windows(needle.len()).any(|window| window == needle.as_bytes()) {
                found.push(format!("{}: {needle}", file.display()));
            }
        }
    }
    found
}

/// Fails if any file under `directory` holds a known name, phone or card number, or the plain
/// SQLite header; returns how many files were read.
fn assert_no_plain_text(directory: &Path) -> usize {
    let found = plain_text_in(directory);
    assert!(found.is_empty(), "plain text on the disk: {found:?}");
    files_under(directory).len()
}

/// The rows of every table, read with the data key through a connection of its own.
fn digests(path: &Path, key: Option<&DataKey>) -> encryption::TableDigests {
    let conn = rusqlite::Connection::open(path).unwrap();
    if let Some(key) = key {
        conn.pragma_update(None, "key", key.sqlcipher_key().as_str()).unwrap();
    }
    let mut digests = encryption::table_digests(&conn).unwrap();
    // The query planner's statistics are not the caseload; opening may refresh them.
    digests.retain(|table, _| !table.starts_with("sqlite_"));
    digests
}

fn heads(store: &Store) -> Vec<String> {
    let mut names: Vec<String> = household::search(store, &household::RosterQuery::default())
        .unwrap()
        .into_iter()
        .map(|row| row.head_name)
        .collect();
    names.sort();
    names
}

fn expected_heads() -> Vec<String> {
    let mut names: Vec<String> = people().into_iter().map(|(name, _, _)| name).collect();
    names.sort();
    names
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_new_store_its_log_and_its_backup_hold_no_name_phone_or_card_number() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = data.join("furrow.db");
    assert_eq!(encryption::lock_state(&path).unwrap(), Lock::New);
    let (mut store, _key) = encryption::set_up(&path, PASSPHRASE).unwrap();
    write_caseload(&mut store);
    // While the store is open the latest writes are in the write-ahead log: read it too.
    assert!(data.join("furrow.db-wal").exists(), "the log is there to be read");
    assert!(assert_no_plain_text(&data) >= 3);
    let backup = store.back_up(&dir.path().join("usb")).unwrap();
    assert!(std::fs::metadata(&backup).unwrap().len() > 0);
    assert_no_plain_text(&dir.path().join("usb"));
    store.checkpoint().unwrap();
    assert_no_plain_text(&data);
    #[cfg(unix)]
    {
        assert_eq!(mode(&data), 0o700, "the data folder is its owner's alone");
        for file in files_under(&data) {
            assert_eq!(mode(&file), 0o600, "{} is its owner's alone", file.display());
        }
    }
    drop(store);
    assert_no_plain_text(&data);

    assert_eq!(encryption::lock_state(&path).unwrap(), Lock::Locked);
    let (store, _key) = encryption::unlock(&path, PASSPHRASE).unwrap();
    assert_eq!(heads(&store), expected_heads(), "the caseload is all there after a restart");
    let found = household::search(&store, &household::RosterQuery { text: Some("秀芝".into()), ..Default::default() }).unwrap();
    assert_eq!(found.len(), 1, "search works on the encrypted store");
    assert!(matches!(Store::open(&OpenOptions::file(&path)), Err(Error::WrongKey)), "no key, no data");
}

#[test]
fn a_plain_store_is_encrypted_on_first_start_keeping_every_row_and_unsynced_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("furrow.db");
    let mut plain = Store::open(&OpenOptions::file(&path)).unwrap();
    write_caseload(&mut plain);
    let pending = plain.pending_changes().unwrap();
    assert!(pending > 0);
    drop(plain);
    let before = digests(&path, None);
    assert_eq!(encryption::lock_state(&path).unwrap(), Lock::Plain);
    // What an older version left is readable by anyone: the search below finds it.
    let exposed = plain_text_in(dir.path());
    for (name, phone, card) in people() {
        for needle in [name, phone, card] {
            assert!(exposed.iter().any(|found| found.ends_with(&needle)), "{needle} is in the plain store");
        }
    }

    let (store, key) = encryption::set_up(&path, PASSPHRASE).unwrap();
    assert_eq!(store.pending_changes().unwrap(), pending, "unsynced work is kept");
    assert_eq!(heads(&store), expected_heads());
    drop(store);
    assert_eq!(digests(&path, Some(&key)), before, "every row of every table, byte for byte");
    assert_no_plain_text(dir.path());
    let names: Vec<String> =
        files_under(dir.path()).iter().map(|file| file.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|name| name.contains("replaced") || name.contains("encrypt")), "{names:?}");
}

#[test]
fn a_power_cut_after_any_step_of_the_move_leaves_a_store_that_opens_with_every_row() {
    let steps = [None, Some(Step::Exported), Some(Step::Verified), Some(Step::PlainSetAside), Some(Step::SwappedIn), Some(Step::Overwritten)];
    for step in steps {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("furrow.db");
        let mut plain = Store::open(&OpenOptions::file(&path)).unwrap();
        write_caseload(&mut plain);
        drop(plain);
        let before = digests(&path, None);
        // The passphrase was chosen (the key file written) before the power went.
        let (_vault, key) = Vault::create(&path, PASSPHRASE).unwrap();
        if let Some(step) = step {
            encryption::encrypt_plain_store(&path, &key, step).unwrap();
        }
        if step == Some(Step::Exported) {
            // The power went while the copy was being written: half of it is on the disk.
            let copy = dir.path().join("furrow.db.encrypting");
            let length = std::fs::metadata(&copy).unwrap().len();
            std::fs::OpenOptions::new().write(true).open(&copy).unwrap().set_len(length / 2).unwrap();
        }

        // The next start asks for the passphrase and finishes the move.
        assert_eq!(encryption::lock_state(&path).unwrap(), Lock::Locked, "after {step:?}");
        let (store, key) = encryption::unlock(&path, PASSPHRASE).unwrap_or_else(|error| panic!("after {step:?}: {error}"));
        assert_eq!(heads(&store), expected_heads(), "after {step:?}");
        drop(store);
        assert_eq!(digests(&path, Some(&key)), before, "after {step:?}");
        assert_no_plain_text(dir.path());
    }
}

#[test]
fn a_wrong_passphrase_opens_nothing_changes_no_byte_and_asks_a_growing_wait() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("furrow.db");
    let (mut store, _key) = encryption::set_up(&path, PASSPHRASE).unwrap();
    write_caseload(&mut store);
    drop(store);
    let store_files = |directory: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut files: Vec<(PathBuf, Vec<u8>)> = files_under(directory)
            .into_iter()
            .filter(|file| !file.to_string_lossy().ends_with(".key"))
            .map(|file| {
                let bytes = std::fs::read(&file).unwrap();
                (file, bytes)
            })
            .collect();
        files.sort();
        files
    };
    let before = store_files(dir.path());

    let error = encryption::unlock(&path, "qingshan-2025").err().expect("refused");
    assert!(matches!(error, VaultError::WrongPassphrase { failures: 1, wait_seconds: 0 }), "{error:?}");
    assert_eq!(error.code(), "wrong_passphrase");
    assert!(error.message_zh().contains("密码不正确"), "{}", error.message_zh());
    assert!(error.message_en().contains("passphrase is wrong"), "{}", error.message_en());
    assert_eq!(store_files(dir.path()), before, "the store's files are byte for byte as they were");

    encryption::unlock(&path, "000000").err().expect("refused");
    let third = encryption::unlock(&path, "123456").err().expect("refused");
    assert!(matches!(third, VaultError::WrongPassphrase { failures: 3, wait_seconds: 5 }), "{third:?}");
    assert!(third.message_zh().contains("5 秒"), "{}", third.message_zh());
    // Even the right passphrase waits, and a restart does not clear the wait.
    let early = encryption::unlock(&path, PASSPHRASE).err().expect("refused");
    assert!(matches!(early, VaultError::TooSoon { wait_seconds: 1..=5 }), "{early:?}");
    let mut reloaded = Vault::load(&path).unwrap();
    assert_eq!(reloaded.failures(), 3);
    let later = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 6;
    let wrong_again = reloaded.unlock_at("654321", later).unwrap_err();
    assert!(matches!(wrong_again, VaultError::WrongPassphrase { failures: 4, wait_seconds: 10 }), "{wrong_again:?}");
    reloaded.unlock_at(PASSPHRASE, later + 11).unwrap();
    assert_eq!(Vault::load(&path).unwrap().failures(), 0, "a right passphrase clears the count");
    assert_eq!(store_files(dir.path()), before, "no try wrote to the store");

    let (store, _key) = encryption::unlock(&path, PASSPHRASE).unwrap();
    assert_eq!(heads(&store), expected_heads());
}

#[test]
fn changing_the_passphrase_wraps_the_key_again_without_touching_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("furrow.db");
    let (mut store, _key) = encryption::set_up(&path, "246810").unwrap();
    write_caseload(&mut store);
    drop(store);
    let database = std::fs::read(&path).unwrap();

    let mut vault = Vault::load(&path).unwrap();
    let weak = vault.change_passphrase("246810", "12345").unwrap_err();
    assert!(matches!(weak, VaultError::WeakPassphrase), "{weak:?}");
    assert!(weak.message_zh().contains("至少需要 6 位"), "{}", weak.message_zh());
    assert!(matches!(vault.change_passphrase("135790", "village-office-7").unwrap_err(), VaultError::WrongPassphrase { .. }));
    vault.change_passphrase("246810", "village-office-7").unwrap();

    assert_eq!(std::fs::read(&path).unwrap(), database, "the store is not re-encrypted");
    assert!(matches!(encryption::unlock(&path, "246810").err().expect("refused"), VaultError::WrongPassphrase { .. }));
    let (store, _key) = encryption::unlock(&path, "village-office-7").unwrap();
    assert_eq!(heads(&store), expected_heads());
}

#[test]
fn a_short_passphrase_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("furrow.db");
    let error = encryption::set_up(&path, "12345").err().expect("refused");
    assert_eq!(error.code(), "weak_passphrase");
    assert!(error.message_en().contains("at least 6"), "{}", error.message_en());
    assert!(!dir.path().join("data").exists(), "nothing was written");
    // A PIN of six digits is allowed: the laptop may be shared in a village office.
    let (store, _key) = encryption::set_up(&path, "302118").unwrap();
    drop(store);
    assert_eq!(encryption::lock_state(&path).unwrap(), Lock::Locked);
}
