//! The device store: one SQLite file (encrypted with SQLCipher when a key is given), opened
//! through [`Store::open`], migrated before anything else touches it.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, FieldError, Result};
use crate::hlc::{Clock, NodeId};
use crate::record::Writer;
use crate::schema::TableSpec;
use crate::validate::Context;

/// A numbered migration embedded in the binary.
pub struct Migration {
    /// Its number, from 1, without gaps.
    pub version: i64,
    /// Its file name.
    pub name: &'static str,
    /// Its SQL.
    pub sql: &'static str,
}

/// The device store's migrations, in order. Released migrations are never edited.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "0001_device_store.sql", sql: include_str!("../migrations/0001_device_store.sql") },
    Migration { version: 2, name: "0002_reference_seed.sql", sql: include_str!("../migrations/0002_reference_seed.sql") },
    Migration { version: 3, name: "0003_sync_outcomes.sql", sql: include_str!("../migrations/0003_sync_outcomes.sql") },
    Migration { version: 4, name: "0004_name_grams.sql", sql: include_str!("../migrations/0004_name_grams.sql") },
    Migration { version: 5, name: "0005_photo_location.sql", sql: include_str!("../migrations/0005_photo_location.sql") },
    Migration { version: 6, name: "0006_listing_submission.sql", sql: include_str!("../migrations/0006_listing_submission.sql") },
    Migration { version: 7, name: "0007_roster_village_order.sql", sql: include_str!("../migrations/0007_roster_village_order.sql") },
    Migration { version: 8, name: "0008_search_pending.sql", sql: include_str!("../migrations/0008_search_pending.sql") },
    Migration { version: 9, name: "0009_photo_thumbnail_sync.sql", sql: include_str!("../migrations/0009_photo_thumbnail_sync.sql") },
    Migration { version: 10, name: "0010_snapshot_sweep.sql", sql: include_str!("../migrations/0010_snapshot_sweep.sql") },
    Migration { version: 11, name: "0011_member_id_card.sql", sql: include_str!("../migrations/0011_member_id_card.sql") },
    Migration { version: 12, name: "0012_restore_resend.sql", sql: include_str!("../migrations/0012_restore_resend.sql") },
    Migration { version: 13, name: "0013_corrections.sql", sql: include_str!("../migrations/0013_corrections.sql") },
    Migration { version: 14, name: "0014_session_trainer.sql", sql: include_str!("../migrations/0014_session_trainer.sql") },
    Migration { version: 15, name: "0015_roster_order_attendance_note.sql", sql: include_str!("../migrations/0015_roster_order_attendance_note.sql") },
    Migration { version: 16, name: "0016_id_card_reveals.sql", sql: include_str!("../migrations/0016_id_card_reveals.sql") },
    Migration { version: 17, name: "0017_excel_imports.sql", sql: include_str!("../migrations/0017_excel_imports.sql") },
];

/// Where and how to open a store.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The database file; `None` opens a private in-memory database (tests).
    pub path: Option<PathBuf>,
    /// The SQLCipher key. `None` opens the file unencrypted.
    pub key: Option<String>,
    /// Apply only the first `n` migrations (tests of upgrades); `None` applies all.
    pub migrate_to: Option<i64>,
}

impl OpenOptions {
    /// Options for the file at `path`, unencrypted.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self { path: Some(path.into()), ..Self::default() }
    }

    /// Options for a private in-memory database.
    pub fn memory() -> Self {
        Self::default()
    }

    /// The same options with an encryption key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}

/// The device store.
pub struct Store {
    pub(crate) conn: Connection,
    pub(crate) node: NodeId,
    pub(crate) clock: Clock,
}

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

impl Store {
    /// Opens (creating if needed) and migrates a store. A wrong key, a file that is not a
    /// database, or a database whose migrations differ from this build's is refused without
    /// writing anything to it.
    pub fn open(options: &OpenOptions) -> Result<Store> {
        let conn = match &options.path {
            Some(path) => Connection::open(path)?,
            None => Connection::open_in_memory()?,
        };
        if let Some(key) = &options.key {
            // SQLCipher logs decryption failures to stderr; a wrong key is reported to the user
            // as an error instead, so its log is silenced.
            let _ = conn.pragma_update(None, "cipher_log_level", "NONE");
            conn.pragma_update(None, "key", key)?;
        }
        // The first read tells a wrong key (or a file that is not a database) from a good one,
        // before any pragma or migration could write to the file.
        let probe: rusqlite::Result<i64> = conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0));
        if let Err(error) = probe {
            return Err(match error.sqlite_error_code() {
                Some(ErrorCode::NotADatabase) => Error::WrongKey,
                _ => Error::Sqlite(error),
            });
        }
        // Pragmas are set one at a time and deliberately: WAL so reads never wait for the
        // writer; NORMAL sync, which in WAL mode cannot corrupt and loses at most the last
        // transaction on power loss; foreign keys on for the local tables that declare them;
        // a busy timeout so a second connection (backup, tests) waits instead of failing.
        if options.path.is_some() {
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
            debug_assert_eq!(mode.to_lowercase(), "wal");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // A page cache of 32 MiB instead of SQLite's 2 MiB: bringing the search index up to date
        // after a first sync of 100k households touches the households, members and name grams
        // all over, and with a small cache it waits on the disk for every page.
        conn.pragma_update(None, "cache_size", -32 * 1024)?;
        // After a checkpoint the WAL file is cut back, so a big import does not leave a large
        // file behind on a small laptop disk.
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        // Checkpoints are what make an occasional edit slow; a larger interval makes them rare
        // enough to stay off the edits a user feels, and the app runs `checkpoint` when idle.
        conn.pragma_update(None, "wal_autocheckpoint", 8000)?;

        let mut conn = conn;
        migrate(&mut conn, options.migrate_to)?;
        let (node, clock) = load_clock(&mut conn)?;
        if options.migrate_to.is_none() {
            crate::search::rebuild_if_outdated(&mut conn)?;
        }
        // Gives the query planner fresh statistics where they are missing or stale (cheap when
        // nothing changed), so roster queries pick their indexes.
        conn.execute_batch("PRAGMA optimize = 0x10002")?;
        Ok(Store { conn, node, clock })
    }

    /// Opens a private in-memory store with every migration applied.
    pub fn open_in_memory() -> Result<Store> {
        Store::open(&OpenOptions::memory())
    }

    /// This device's node id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The underlying connection, for read queries of the core's modules.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Runs `work` in one transaction through the one write path; either all of it is committed
    /// (rows, field clocks, outbox entries, the clock) or none of it.
    pub fn write<T>(&mut self, work: impl FnOnce(&mut Writer<'_>) -> Result<T>) -> Result<T> {
        let transaction = self.conn.transaction()?;
        let mut clock = self.clock;
        let mut writer = Writer::new(&transaction, self.node, &mut clock);
        let value = work(&mut writer)?;
        writer.finish()?;
        transaction.commit()?;
        self.clock = clock;
        Ok(value)
    }

    /// Refreshes the query planner's statistics after large changes (an import, a first sync);
    /// cheap when nothing changed.
    pub fn optimize(&self) -> Result<()> {
        self.conn.execute_batch("PRAGMA optimize")?;
        Ok(())
    }

    /// Brings the roster search index up to date with recent edits; searches do this first
    /// anyway, and the app calls it when idle so that they rarely have to. Returns how many
    /// households were re-indexed.
    pub fn flush_search_index(&self) -> Result<usize> {
        crate::search::flush_all(&self.conn)
    }

    /// Rewrites at most `limit` pending search documents in one short transaction; the app calls
    /// it from a background thread after imports and syncs until it returns zero.
    pub fn flush_search_batch(&self, limit: usize) -> Result<usize> {
        crate::search::flush_batch(&self.conn, i64::try_from(limit).unwrap_or(i64::MAX))
    }

    /// How many households wait for their search document to be rewritten.
    pub fn search_pending(&self) -> Result<i64> {
        crate::search::pending(&self.conn)
    }

    /// Copies the write-ahead log back into the database file; the app calls it when idle so
    /// that edits rarely pay for a checkpoint.
    pub fn checkpoint(&self) -> Result<()> {
        self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Writes a consistent copy of the whole store into `directory` (created if needed), named
    /// after the local time, and returns its path. The copy is made through the store's own
    /// connection, so an encrypted store's copy is encrypted with the same key; `VACUUM INTO`
    /// copies a snapshot while the app keeps running.
    pub fn back_up(&self, directory: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(directory)?;
        let target = directory.join(format!("furrow-backup-{}.db", chrono::Local::now().format("%Y%m%d-%H%M%S")));
        self.conn.execute("VACUUM INTO ?1", [target.display().to_string()])?;
        Ok(target)
    }

    /// Checks a record as the write path would, before a write (a photo's record before its files
    /// are stored): the fields that fail, or the storage error a check met.
    pub fn check(&self, table: &TableSpec, record: &Map<String, Value>) -> Result<Vec<FieldError>> {
        let context = Recording { conn: &self.conn, failure: RefCell::new(None) };
        let errors = crate::validate::check_record(table, record, &context);
        match context.failure.into_inner() {
            Some(error) => Err(error),
            None => Ok(errors),
        }
    }

    /// The lower limit of a platform rule (e.g. the shortest description), if one is set.
    pub fn platform_minimum(&self, platform: &str, rule: &str) -> Option<i64> {
        self.conn
            .query_row("SELECT min_value FROM platform_rules WHERE platform = ?1 AND rule = ?2", [platform, rule], |row| {
                row.get::<_, Option<i64>>(0)
            })
            .optional()
            .ok()
            .flatten()
            .flatten()
    }

    /// A value of the sync state table.
    pub fn state(&self, key: &str) -> Result<Option<rusqlite::types::Value>> {
        Ok(self.conn.query_row("SELECT v FROM sync_state WHERE k = ?1", [key], |row| row.get(0)).optional()?)
    }

    /// The number of local changes not yet acknowledged by the server.
    pub fn pending_changes(&self) -> Result<i64> {
        Ok(self.conn.query_row("SELECT count(*) FROM sync_outbox", [], |row| row.get(0))?)
    }

    /// The number of records with changes not yet acknowledged by the server: a new household is
    /// one record, however many of its fields wait. This is what the window counts as pending.
    pub fn pending_records(&self) -> Result<i64> {
        Ok(self.conn.query_row("SELECT count(*) FROM (SELECT DISTINCT tbl, row_id FROM sync_outbox)", [], |row| row.get(0))?)
    }

    /// The migrations recorded as applied, in order.
    pub fn applied_migrations(&self) -> Result<Vec<(i64, String)>> {
        let mut statement = self.conn.prepare("SELECT version, name FROM schema_migrations ORDER BY version")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// The store as the checks' context outside a write (a platform's limits for the listing rules).
/// A read that fails counts as finding nothing here; [`Store::check`] returns it instead, and a
/// write checks again inside its transaction and returns it too.
impl Context for Store {
    fn exists(&self, table: &str, id: &str) -> bool {
        crate::record::exists(&self.conn, table, id).unwrap_or(false)
    }

    fn platform_limit(&self, platform: &str, rule: &str) -> Option<i64> {
        crate::record::platform_limit(&self.conn, platform, rule).ok().flatten()
    }

    /// The device's own date, as in the write path.
    fn today(&self) -> chrono::NaiveDate {
        chrono::Local::now().date_naive()
    }
}

/// The checks' context for [`Store::check`]: reads the store, keeping the first storage error
/// a check met, since a check cannot return one.
struct Recording<'s> {
    conn: &'s Connection,
    failure: RefCell<Option<Error>>,
}

impl Recording<'_> {
    /// The value of a storage read a check made, keeping its error (the first one).
    fn recorded<T>(&self, result: Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.failure.borrow_mut().get_or_insert(error);
                None
            }
        }
    }
}

impl Context for Recording<'_> {
    fn exists(&self, table: &str, id: &str) -> bool {
        self.recorded(crate::record::exists(self.conn, table, id)).unwrap_or(false)
    }

    fn platform_limit(&self, platform: &str, rule: &str) -> Option<i64> {
        self.recorded(crate::record::platform_limit(self.conn, platform, rule)).flatten()
    }

    /// The device's own date, as in the write path.
    fn today(&self) -> chrono::NaiveDate {
        chrono::Local::now().date_naive()
    }
}

fn migrate(conn: &mut Connection, migrate_to: Option<i64>) -> Result<()> {
    let transaction = conn.transaction()?;
    transaction.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            checksum TEXT NOT NULL,
            applied_at TEXT NOT NULL
        ) STRICT",
    )?;
    let applied: Vec<(i64, String, String)> = {
        let mut statement = transaction.prepare("SELECT version, name, checksum FROM schema_migrations ORDER BY version")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (index, (version, name, sum)) in applied.iter().enumerate() {
        let Some(known) = MIGRATIONS.get(index) else {
            return Err(Error::NewerDatabase(format!("{version} {name}")));
        };
        if known.version != *version || known.name != name || checksum(known.sql) != *sum {
            return Err(Error::MigrationMismatch(format!(
                "migration {version} ({name}) recorded in the database is not this version's {} ({})",
                known.version, known.name
            )));
        }
    }
    let target = migrate_to.unwrap_or(i64::MAX);
    let now = chrono::Utc::now().to_rfc3339();
    for migration in MIGRATIONS.iter().skip(applied.len()).filter(|migration| migration.version <= target) {
        transaction.execute_batch(migration.sql)?;
        transaction.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?1, ?2, ?3, ?4)",
            params![migration.version, migration.name, checksum(migration.sql), now],
        )?;
    }
    transaction.commit()?;
    Ok(())
}

fn load_clock(conn: &mut Connection) -> Result<(NodeId, Clock)> {
    let transaction = conn.transaction()?;
    let has_state: bool = transaction
        .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sync_state'", [], |_| Ok(()))
        .optional()?
        .is_some();
    if !has_state {
        // A database migrated only partway (upgrade tests) has no sync state yet.
        return Ok((NodeId([0; 16]), Clock { last: 0, offset_ms: 0 }));
    }
    let node: Option<Vec<u8>> =
        transaction.query_row("SELECT v FROM sync_state WHERE k = 'node_id'", [], |row| row.get(0)).optional()?;
    let node = match node {
        Some(bytes) if bytes.len() == 16 => NodeId(bytes.try_into().expect("length checked")),
        _ => {
            let node = NodeId::random();
            transaction.execute("INSERT OR REPLACE INTO sync_state (k, v) VALUES ('node_id', ?1)", [node.0.to_vec()])?;
            node
        }
    };
    let last: i64 =
        transaction.query_row("SELECT v FROM sync_state WHERE k = 'hlc_last'", [], |row| row.get(0)).optional()?.unwrap_or(0);
    let offset_ms: i64 = transaction
        .query_row("SELECT v FROM sync_state WHERE k = 'clock_offset_ms'", [], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    transaction.commit()?;
    Ok((node, Clock { last, offset_ms }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_synced_table_matches_its_schema_description() {
        let store = Store::open_in_memory().unwrap();
        for table in crate::schema::TABLES {
            let mut statement = store.conn.prepare(&format!("PRAGMA table_info({})", table.name)).unwrap();
            let columns: Vec<(String, String)> =
                statement.query_map([], |row| Ok((row.get(1)?, row.get(2)?))).unwrap().map(Result::unwrap).collect();
            let expected: Vec<(String, String)> = ["id", "scope_id", "deleted"]
                .iter()
                .map(|name| (name.to_string(), if *name == "deleted" { "INTEGER" } else { "TEXT" }.to_string()))
                .chain(table.fields.iter().map(|field| (field.name.to_string(), crate::record::storage_type(&field.ty).to_string())))
                .collect();
            assert_eq!(columns, expected, "table {}", table.name);
        }
    }

    #[test]
    fn seeded_reference_data_is_present() {
        let store = Store::open_in_memory().unwrap();
        assert_eq!(store.platform_limit("taobao", "title_units"), Some(60));
        let lines: i64 = store.conn.query_row("SELECT count(*) FROM poverty_lines", [], |row| row.get(0)).unwrap();
        assert_eq!(lines, 4);
    }
}
