//! The store encrypted at rest: opening it with the device passphrase, moving a plain store of an
//! older version into an encrypted one, and encrypted backups with a preview before a restore.
//!
//! A plain store is moved in steps that each end in a state a restart can finish from, so a power
//! cut at any point leaves one complete store that opens (see [`Step`]): the encrypted copy is
//! written under a temporary name, verified table by table against the plain store (row counts and
//! a digest of every row), renamed to mark it complete, and only then swapped in by renames; the
//! plain file is overwritten with zeros and removed last.

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use crate::store::{OpenOptions, Store};
use crate::vault::{self, DataKey, Vault, VaultError, VaultResult};

/// The first bytes of every plain SQLite file; an encrypted one starts with random bytes.
const PLAIN_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// What starting the app with the store at a path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// No store yet: a passphrase is to be chosen (asked twice).
    New,
    /// A plain store of an older version: a passphrase is to be chosen, then it is encrypted.
    Plain,
    /// An encrypted store (or one being encrypted) with its key file: the passphrase unlocks it.
    Locked,
    /// An encrypted store whose key file is missing: it cannot be opened.
    MissingKey,
}

/// The steps of moving a plain store into an encrypted one, in order; after each, a restart
/// finishes the move from what is on the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// The encrypted copy is written under `<store>.encrypting` (a restart removes it: incomplete).
    Exported = 1,
    /// The copy matched the plain store table by table and was renamed `<store>.encrypted`.
    Verified = 2,
    /// The store being replaced (the plain one) was renamed `<store>.replaced`.
    PlainSetAside = 3,
    /// The encrypted copy was renamed to the store's own name.
    SwappedIn = 4,
    /// The replaced file was overwritten with zeros.
    Overwritten = 5,
    /// The replaced file was removed: the move is complete.
    Removed = 6,
}

pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Whether the file at `path` is a plain SQLite database (an empty or missing file is not).
pub fn is_plain(path: &Path) -> std::io::Result<bool> {
    let mut header = [0u8; 16];
    match std::fs::File::open(path) {
        Ok(mut file) => {
            use std::io::Read;
            let mut read = 0;
            while read < header.len() {
                let count = file.read(&mut header[read..])?;
                if count == 0 {
                    return Ok(false);
                }
                read += count;
            }
            Ok(&header == PLAIN_HEADER)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

fn non_empty(path: &Path) -> bool {
    std::fs::metadata(path).map(|metadata| metadata.len() > 0).unwrap_or(false)
}

/// What the store at `path` needs before it opens.
pub fn lock_state(path: &Path) -> std::io::Result<Lock> {
    if Vault::exists(path) {
        return Ok(Lock::Locked);
    }
    if is_plain(path)? {
        return Ok(Lock::Plain);
    }
    if non_empty(path) || sibling(path, ".encrypted").exists() {
        return Ok(Lock::MissingKey);
    }
    Ok(Lock::New)
}

/// Sets the passphrase of a new device, or of a plain store of an older version, and opens the
/// store encrypted (moving the plain one first). The passphrase is checked before anything is
/// written.
pub fn set_up(path: &Path, passphrase: &str) -> VaultResult<(Store, DataKey)> {
    vault::check_passphrase(passphrase)?;
    match lock_state(path)? {
        Lock::New | Lock::Plain => {}
        Lock::Locked => return Err(VaultError::KeyFileExists(vault::key_file_path(path))),
        Lock::MissingKey => return Err(VaultError::NoKeyFile(vault::key_file_path(path))),
    }
    prepare_directory(path)?;
    let (_vault, key) = Vault::create(path, passphrase)?;
    let store = open_with_key(path, &key)?;
    Ok((store, key))
}

/// Unlocks the store with the device passphrase and opens it, first finishing a move from a plain
/// store that a restart interrupted. A wrong passphrase opens nothing and writes nothing but the
/// count of wrong tries in the key file.
pub fn unlock(path: &Path, passphrase: &str) -> VaultResult<(Store, DataKey)> {
    let mut vault = Vault::load(path)?;
    let key = vault.unlock(passphrase)?;
    let store = open_with_key(path, &key)?;
    Ok((store, key))
}

/// Opens the store at `path` with the data key: finishes or makes the move from a plain store,
/// then opens it encrypted, readable by its owner only.
pub fn open_with_key(path: &Path, key: &DataKey) -> VaultResult<Store> {
    encrypt_plain_store(path, key, Step::Removed)?;
    prepare_directory(path)?;
    if !path.exists() {
        drop(vault::private_file(path)?);
    }
    vault::set_private(path, false)?;
    let store = Store::open(&OpenOptions::file(path).with_key(key.sqlcipher_key().as_str()))?;
    for suffix in ["-wal", "-shm"] {
        let companion = sibling(path, suffix);
        if companion.exists() {
            vault::set_private(&companion, false)?;
        }
    }
    Ok(store)
}

/// Makes the directory holding the store (0700).
fn prepare_directory(path: &Path) -> VaultResult<()> {
    if let Some(directory) = path.parent().filter(|directory| !directory.as_os_str().is_empty()) {
        std::fs::create_dir_all(directory)?;
        vault::set_private(directory, true)?;
    }
    Ok(())
}

/// Moves the plain store at `path` (if there is one, or a move a restart interrupted) into an
/// encrypted store under the data key, going no further than `until` (tests stop at each step to
/// see that a restart finishes the move). Nothing happens to a store encrypted already.
pub fn encrypt_plain_store(path: &Path, key: &DataKey, until: Step) -> VaultResult<()> {
    let encrypting = sibling(path, ".encrypting");
    let encrypted = sibling(path, ".encrypted");
    // A copy still being written when the power went is incomplete: written again from the
    // plain store, which is untouched until a verified copy exists.
    if encrypting.exists() {
        std::fs::remove_file(&encrypting)?;
    }
    if !encrypted.exists() && is_plain(path)? {
        export(path, &encrypting, key)?;
        if until == Step::Exported {
            return Ok(());
        }
        verify(path, None, &encrypting, key)?;
        std::fs::rename(&encrypting, &encrypted)?;
        vault::sync_directory(path);
        if until == Step::Verified {
            return Ok(());
        }
    }
    swap_in(path, until)
}

/// Puts a complete, verified `<store>.encrypted` in the store's place, if there is one, and
/// overwrites and removes the store it replaces (`<store>.replaced`, with its journal files).
/// Each rename is one step a restart continues from.
pub(crate) fn swap_in(path: &Path, until: Step) -> VaultResult<()> {
    let encrypted = sibling(path, ".encrypted");
    let replaced = sibling(path, ".replaced");
    if encrypted.exists() {
        if path.exists() {
            // The journal files belong to the store they sit beside: they go with it, never
            // to be read as the new store's.
            for suffix in ["-wal", "-shm", "-journal"] {
                let companion = sibling(path, suffix);
                if companion.exists() {
                    std::fs::rename(&companion, sibling(&replaced, suffix))?;
                }
            }
            std::fs::rename(path, &replaced)?;
            vault::sync_directory(path);
            if until == Step::PlainSetAside {
                return Ok(());
            }
        }
        std::fs::rename(&encrypted, path)?;
        vault::sync_directory(path);
        if until == Step::SwappedIn {
            return Ok(());
        }
    }
    if replaced.exists() {
        overwrite_with_zeros(&replaced)?;
        if until == Step::Overwritten {
            return Ok(());
        }
        std::fs::remove_file(&replaced)?;
        vault::sync_directory(path);
    }
    for companion in ["-wal", "-shm", "-journal"].map(|suffix| sibling(&replaced, suffix)) {
        if companion.exists() {
            overwrite_with_zeros(&companion)?;
            std::fs::remove_file(&companion)?;
        }
    }
    Ok(())
}

/// Writes zeros over the whole file and syncs it, so its plain bytes are not left in the blocks
/// it used (as far as the file system writes in place).
fn overwrite_with_zeros(path: &Path) -> std::io::Result<()> {
    let length = std::fs::metadata(path)?.len();
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    let zeros = vec![0u8; 1 << 20];
    let mut left = length;
    while left > 0 {
        let count = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..count])?;
        left -= count as u64;
    }
    file.sync_all()
}

/// Copies the plain store into a new encrypted file with SQLCipher's export (schema, rows,
/// the schema version and the user version), synced to the disk.
fn export(plain: &Path, target: &Path, key: &DataKey) -> VaultResult<()> {
    let conn = Connection::open(plain).map_err(crate::Error::from)?;
    // Everything in the write-ahead log goes into the file, and the file leaves WAL mode so the
    // plain store has no log to leave behind when it is set aside.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(crate::Error::from)?;
    let _: String = conn.query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0)).map_err(crate::Error::from)?;
    drop(vault::private_file(target)?);
    let sql_key = key.sqlcipher_key();
    conn.execute("ATTACH DATABASE ?1 AS encrypted KEY ?2", [target.display().to_string(), sql_key.to_string()])
        .map_err(crate::Error::from)?;
    let exported = conn
        .query_row("SELECT sqlcipher_export('encrypted')", [], |_| Ok(()))
        .and_then(|()| {
            let version: i64 = conn.query_row("PRAGMA main.user_version", [], |row| row.get(0))?;
            conn.execute_batch(&format!("PRAGMA encrypted.user_version = {version}"))
        })
        .map_err(crate::Error::from);
    conn.execute("DETACH DATABASE encrypted", []).map_err(crate::Error::from)?;
    exported?;
    drop(conn);
    std::fs::File::open(target)?.sync_all()?;
    Ok(())
}

/// Row counts and a digest of every row, per table: what the verification of a copy compares.
pub type TableDigests = std::collections::BTreeMap<String, (i64, String)>;

/// The row count and a digest of the rows of every table of an open database (the full-text
/// tables' shadow tables included, their virtual tables read through those). The digest does
/// not depend on the order rows are read in.
pub fn table_digests(conn: &Connection) -> crate::Result<TableDigests> {
    let tables: Vec<String> = {
        let mut statement = conn.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND rootpage > 0 AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?;
        let rows = statement.query_map([], |row| row.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut digests = TableDigests::new();
    for table in tables {
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        // The rowid is part of a row where the table has one (the full-text index refers to it).
        let mut statement = match conn.prepare(&format!("SELECT rowid, * FROM {quoted}")) {
            Ok(statement) => statement,
            Err(_) => conn.prepare(&format!("SELECT * FROM {quoted}"))?,
        };
        let columns = statement.column_count();
        let mut row_hashes: Vec<[u8; 32]> = Vec::new();
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let mut hasher = Sha256::new();
            for index in 0..columns {
                match row.get_ref(index)? {
                    rusqlite::types::ValueRef::Null => hasher.update([0u8]),
                    rusqlite::types::ValueRef::Integer(value) => {
                        hasher.update([1u8]);
                        hasher.update(value.to_le_bytes());
                    }
                    rusqlite::types::ValueRef::Real(value) => {
                        hasher.update([2u8]);
                        hasher.update(value.to_bits().to_le_bytes());
                    }
                    rusqlite::types::ValueRef::Text(bytes) | rusqlite::types::ValueRef::Blob(bytes) => {
                        hasher.update([3u8]);
                        hasher.update((bytes.len() as u64).to_le_bytes());
                        hasher.update(bytes);
                    }
                }
            }
            row_hashes.push(hasher.finalize().into());
        }
        row_hashes.sort_unstable();
        let mut table_hasher = Sha256::new();
        for hash in &row_hashes {
            table_hasher.update(hash);
        }
        digests.insert(table, (row_hashes.len() as i64, hex::encode(table_hasher.finalize())));
    }
    Ok(digests)
}

/// Opens an encrypted database file read-only with the data key.
pub(crate) fn open_encrypted_read_only(path: &Path, key: &DataKey) -> VaultResult<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(crate::Error::from)?;
    let _ = conn.pragma_update(None, "cipher_log_level", "NONE");
    conn.pragma_update(None, "key", key.sqlcipher_key().as_str()).map_err(crate::Error::from)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())).map_err(|_| crate::Error::WrongKey)?;
    Ok(conn)
}

/// Compares the encrypted copy with its source (the plain store, or a backup under its own key)
/// table by table; a difference leaves the source as it is and removes the copy.
pub(crate) fn verify(source: &Path, source_key: Option<&DataKey>, copy: &Path, key: &DataKey) -> VaultResult<()> {
    let original = match source_key {
        Some(source_key) => table_digests(&open_encrypted_read_only(source, source_key)?)?,
        None => table_digests(&Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(crate::Error::from)?)?,
    };
    let copied = table_digests(&open_encrypted_read_only(copy, key)?)?;
    if original != copied {
        let differing: Vec<&String> =
            original.keys().chain(copied.keys()).filter(|table| original.get(*table) != copied.get(*table)).collect();
        std::fs::remove_file(copy)?;
        return Err(VaultError::Damaged(format!("the encrypted copy differs from the store in tables {differing:?}")));
    }
    std::fs::File::open(copy)?.sync_all()?;
    Ok(())
}
