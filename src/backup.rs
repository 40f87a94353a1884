//! Encrypted backups: a copy of the store to a folder the user picks (a USB stick), encrypted
//! with the device's data key (its key file copied beside it, opened with the device
//! passphrase) or with a key of its own under a passphrase chosen for the backup (for handing to
//! the county office); a preview of what a backup holds; and a restore that never discards
//! unsynced work without being told to.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::encryption::{self, Step};
use crate::store::Store;
use crate::vault::{self, DataKey, Vault, VaultError, VaultResult};

/// How a backup is encrypted.
#[derive(Debug, Clone, Copy)]
pub enum BackupKey<'a> {
    /// With the device's data key; the backup opens with the device passphrase of the day.
    Device,
    /// With a new key of its own, opened with this passphrase.
    Passphrase(&'a str),
}

/// What a backup holds, shown before it is restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct BackupPreview {
    /// The backup file.
    pub file: String,
    /// When it was written (local time, `YYYY-MM-DD HH:MM`).
    pub made_at: String,
    /// Records per synced table, deleted ones left out: `(table, count)`.
    pub tables: Vec<(String, i64)>,
    /// Records with changes that had not reached the server when it was made.
    pub pending_records: i64,
}

/// Restoring would discard records with unsynced changes on this device; the user must say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsyncedWork {
    /// Records on this device with unsynced changes.
    pub records: i64,
}

/// Writes an encrypted copy of `store` (whose data key is `key`, its file at `store_path`) into
/// `directory`, named after the local time, with its key file beside it; returns the copy's
/// path. The copy is made through the store's own connection, so the app keeps running.
pub fn back_up(store: &Store, store_path: &Path, key: &DataKey, directory: &Path, protection: BackupKey<'_>) -> VaultResult<PathBuf> {
    if let BackupKey::Passphrase(passphrase) = protection {
        vault::check_passphrase(passphrase)?;
    }
    std::fs::create_dir_all(directory)?;
    let target = directory.join(format!("furrow-backup-{}.db", chrono::Local::now().format("%Y%m%d-%H%M%S")));
    if target.exists() || vault::key_file_path(&target).exists() {
        return Err(VaultError::KeyFileExists(target));
    }
    let own_key;
    let backup_key = match protection {
        BackupKey::Device => key,
        BackupKey::Passphrase(_) => {
            own_key = DataKey::random()?;
            &own_key
        }
    };
    let written = export_into(store, &target, backup_key).and_then(|()| match protection {
        BackupKey::Device => {
            let bytes = std::fs::read(vault::key_file_path(store_path))?;
            vault::write_private(&vault::key_file_path(&target), &bytes)?;
            Ok(())
        }
        BackupKey::Passphrase(passphrase) => Vault::create_for(&target, backup_key, passphrase).map(drop),
    });
    if let Err(error) = written {
        let _ = std::fs::remove_file(&target);
        return Err(error);
    }
    Ok(target)
}

/// Exports the open store into a new file encrypted with `key`, in one read transaction.
fn export_into(store: &Store, target: &Path, key: &DataKey) -> VaultResult<()> {
    drop(vault::private_file(target)?);
    let conn = store.conn();
    conn.execute("ATTACH DATABASE ?1 AS backup KEY ?2", [target.display().to_string(), key.sqlcipher_key().to_string()])
        .map_err(crate::Error::from)?;
    let exported = conn
        .execute_batch("BEGIN")
        .and_then(|()| conn.query_row("SELECT sqlcipher_export('backup')", [], |_| Ok(())))
        .and_then(|()| {
            let version: i64 = conn.query_row("PRAGMA main.user_version", [], |row| row.get(0))?;
            conn.execute_batch(&format!("PRAGMA backup.user_version = {version}; COMMIT"))
        })
        .map_err(crate::Error::from);
    if exported.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    conn.execute("DETACH DATABASE backup", []).map_err(crate::Error::from)?;
    exported?;
    std::fs::File::open(target)?.sync_all()?;
    Ok(())
}

/// Unlocks a backup with its passphrase (the device's when it was made with the device key).
fn backup_key(backup: &Path, passphrase: &str) -> VaultResult<DataKey> {
    Vault::load(backup)?.unlock(passphrase)
}

/// What the backup at `backup` holds, read with its passphrase without changing it.
pub fn preview(backup: &Path, passphrase: &str) -> VaultResult<BackupPreview> {
    let key = backup_key(backup, passphrase)?;
    let conn = encryption::open_encrypted_read_only(backup, &key)?;
    let mut tables = Vec::new();
    for table in crate::schema::TABLES {
        let count: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {} WHERE deleted = 0", table.name), [], |row| row.get(0))
            .map_err(crate::Error::from)?;
        tables.push((table.name.to_owned(), count));
    }
    let pending_records: i64 = conn
        .query_row("SELECT count(*) FROM (SELECT DISTINCT tbl, row_id FROM sync_outbox)", [], |row| row.get(0))
        .map_err(crate::Error::from)?;
    let modified = std::fs::metadata(backup)?.modified()?;
    let made_at = chrono::DateTime::<chrono::Local>::from(modified).format("%Y-%m-%d %H:%M").to_string();
    Ok(BackupPreview { file: backup.display().to_string(), made_at, tables, pending_records })
}

/// Restores the backup at `backup` (unlocked with `passphrase`) as the store at `store_path`,
/// which must be closed. With a device key (`device`), the backup is encrypted again under it
/// and the device passphrase stays; on a new data directory the backup's key file comes along
/// and its passphrase becomes the device's. The store's records with unsynced changes are
/// discarded only when `discard_unsynced` is true; otherwise their count is returned as the
/// error's, and nothing is changed. The copy is verified row by row and swapped in by renames,
/// as a plain store is moved (a restart finishes an interrupted restore).
pub fn restore(
    store_path: &Path,
    backup: &Path,
    passphrase: &str,
    device: Option<&DataKey>,
    discard_unsynced: bool,
) -> VaultResult<std::result::Result<(), UnsyncedWork>> {
    let source_key = backup_key(backup, passphrase)?;
    let target_key = match device {
        Some(device_key) => {
            if store_path.exists() && !discard_unsynced {
                let conn = encryption::open_encrypted_read_only(store_path, device_key)?;
                let records: i64 = conn
                    .query_row("SELECT count(*) FROM (SELECT DISTINCT tbl, row_id FROM sync_outbox)", [], |row| row.get(0))
                    .map_err(crate::Error::from)?;
                if records > 0 {
                    return Ok(Err(UnsyncedWork { records }));
                }
            }
            device_key
        }
        None => {
            if Vault::exists(store_path) || encryption::is_plain(store_path)? {
                return Err(VaultError::KeyFileExists(vault::key_file_path(store_path)));
            }
            if let Some(directory) = store_path.parent() {
                std::fs::create_dir_all(directory)?;
                vault::set_private(directory, true)?;
            }
            // The key file comes first: a restart before the swap finds a locked new store.
            let bytes = std::fs::read(vault::key_file_path(backup))?;
            vault::write_private(&vault::key_file_path(store_path), &bytes)?;
            &source_key
        }
    };
    let encrypting = encryption::sibling(store_path, ".encrypting");
    let encrypted = encryption::sibling(store_path, ".encrypted");
    if encrypting.exists() {
        std::fs::remove_file(&encrypting)?;
    }
    {
        // Not read-only: a database attached to a read-only connection is read-only too. Reading
        // the backup writes nothing to it.
        let conn = rusqlite::Connection::open(backup).map_err(crate::Error::from)?;
        conn.pragma_update(None, "key", source_key.sqlcipher_key().as_str()).map_err(crate::Error::from)?;
        drop(vault::private_file(&encrypting)?);
        conn.execute("ATTACH DATABASE ?1 AS restored KEY ?2", [encrypting.display().to_string(), target_key.sqlcipher_key().to_string()])
            .map_err(crate::Error::from)?;
        let exported = conn.query_row("SELECT sqlcipher_export('restored')", [], |_| Ok(())).map_err(crate::Error::from);
        conn.execute("DETACH DATABASE restored", []).map_err(crate::Error::from)?;
        exported?;
    }
    encryption::verify(backup, Some(&source_key), &encrypting, target_key)?;
    std::fs::rename(&encrypting, &encrypted)?;
    vault::sync_directory(store_path);
    encryption::swap_in(store_path, Step::Removed)?;
    Ok(Ok(()))
}
