//! The SQLite backend: one database file in the data directory, the embedded default.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::{Value as SqliteValue, ValueRef};
use rusqlite::{Connection, ErrorCode};

use super::{exact_integer, Database, Migration, Param, Sql, SqlRow};
use crate::error::{Error, Result};

/// The SQLite migrations, embedded in the binary.
pub const MIGRATIONS: &[Migration] =
    &[
        Migration { version: 1, name: "0001_init.sql", sql: include_str!("../../migrations/sqlite/0001_init.sql") },
        Migration {
            version: 2,
            name: "0002_listing_submissions.sql",
            sql: include_str!("../../migrations/sqlite/0002_listing_submissions.sql"),
        },
        Migration {
            version: 3,
            name: "0003_history_pruning.sql",
            sql: include_str!("../../migrations/sqlite/0003_history_pruning.sql"),
        },
        Migration {
            version: 4,
            name: "0004_history_epoch.sql",
            sql: include_str!("../../migrations/sqlite/0004_history_epoch.sql"),
        },
        Migration {
            version: 5,
            name: "0005_blob_scopes.sql",
            sql: include_str!("../../migrations/sqlite/0005_blob_scopes.sql"),
        },
        Migration { version: 6, name: "0006_sessions.sql", sql: include_str!("../../migrations/sqlite/0006_sessions.sql") },
        Migration { version: 7, name: "0007_audit_log.sql", sql: include_str!("../../migrations/sqlite/0007_audit_log.sql") },
    ];

/// A SQLite database: one connection for write transactions behind a mutex (SQLite has one
/// writer at a time anyway), and a few more for read transactions. In WAL mode a reader sees the
/// last commit and neither waits for the writer nor makes it wait, so the checks of every
/// request's token and the pulls do not queue behind pushes, each of which waits for the disk.
pub struct SqliteDatabase {
    connection: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

/// Connections kept for read transactions (a database in memory has none: it cannot be shared).
const READERS: usize = 4;

impl SqliteDatabase {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let connection = Connection::open(path)?;
        let mut database = Self::prepare(connection)?;
        for _ in 0..READERS {
            let reader = Connection::open(path)?;
            Self::set_pragmas(&reader)?;
            database.readers.push(Mutex::new(reader));
        }
        Ok(database)
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Self> {
        Self::prepare(Connection::open_in_memory()?)
    }

    fn prepare(connection: Connection) -> Result<Self> {
        Self::set_pragmas(&connection)?;
        let database = Self { connection: Mutex::new(connection), readers: Vec::new(), next_reader: AtomicUsize::new(0) };
        database.migrate()?;
        Ok(database)
    }

    fn set_pragmas(connection: &Connection) -> Result<()> {
        // Pragmas one at a time, each for a reason: WAL lets readers run beside the writer,
        // busy_timeout lets an operator command run while the server holds the lock, and
        // foreign_keys makes the assignment table's references real.
        connection.busy_timeout(Duration::from_secs(10))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        // FULL syncs the WAL to the disk at every commit, before the push is answered. A device
        // deletes its outbox entries once a push is acknowledged, so under NORMAL (which syncs
        // only at checkpoints) a power cut shortly after a 200 could lose changes that then
        // exist nowhere. The price is one fsync per write transaction (docs/server.md, Figures).
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        Ok(())
    }

    /// A connection for a read transaction: a free reader if there is one, otherwise the next
    /// in turn (or the writer's, for a database in memory).
    fn reader(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        if self.readers.is_empty() {
            return self.lock();
        }
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for offset in 0..self.readers.len() {
            if let Ok(connection) = self.readers[(start + offset) % self.readers.len()].try_lock() {
                return Ok(connection);
            }
        }
        self.readers[start % self.readers.len()]
            .lock()
            .map_err(|_| Error::Poisoned("database"))
    }

    fn migrate(&self) -> Result<()> {
        let connection = self.lock()?;
        connection.execute_batch("BEGIN IMMEDIATE")?;
        let outcome = {
            let mut sql = SqliteSql { connection: &connection };
            super::migrate(&mut sql, MIGRATIONS, &mut |script| Ok(connection.execute_batch(script)?))
        };
        finish(&connection, outcome)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.connection.lock().map_err(|_| Error::Poisoned("database"))
    }
}

fn finish(connection: &Connection, outcome: Result<()>) -> Result<()> {
    match outcome {
        Ok(()) => {
            connection.execute_batch("COMMIT")?;
            Ok(())
        }
        Err(error) => {
            // The rollback's own failure matters less than the error that caused it.
            let _ = connection.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

impl Database for SqliteDatabase {
    fn transaction(&self, write: bool, work: &mut dyn FnMut(&mut dyn Sql) -> Result<()>) -> Result<()> {
        let connection = if write { self.lock()? } else { self.reader()? };
        // A write transaction takes the write lock at once, so what it reads cannot change
        // before it writes, even with a second process (an operator command) on the same file.
        connection.execute_batch(if write { "BEGIN IMMEDIATE" } else { "BEGIN" })?;
        let outcome = work(&mut SqliteSql { connection: &connection });
        finish(&connection, outcome)
    }

    fn name(&self) -> &'static str {
        "sqlite"
    }
}

/// Rewrites `$1` placeholders to SQLite's `?1`. Only a `$` followed by a digit, outside quoted
/// text and not inside a name, is a placeholder: a `$` inside a string literal (`'…'`, a doubled
/// quote standing for one), a quoted identifier (`"…"`), a comment or a bare name (`a$1`) stays
/// as it is.
fn placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Place {
        Code,
        Literal,
        Identifier,
        LineComment,
        BlockComment,
    }
    let mut place = Place::Code;
    let mut out = String::with_capacity(sql.len());
    let mut characters = sql.chars().peekable();
    let mut previous = ' ';
    while let Some(character) = characters.next() {
        let next = characters.peek().copied();
        let in_name = previous.is_alphanumeric() || previous == '_' || previous == '$';
        previous = character;
        place = match (place, character) {
            (Place::Code, '\'') => Place::Literal,
            (Place::Code, '"') => Place::Identifier,
            (Place::Code, '-') if next == Some('-') => Place::LineComment,
            (Place::Code, '/') if next == Some('*') => {
                // The star is consumed with the slash, so `/*/` does not close the comment.
                out.push(character);
                out.push('*');
                characters.next();
                place = Place::BlockComment;
                continue;
            }
            (Place::Code, '$') if !in_name && next.is_some_and(|next| next.is_ascii_digit()) => {
                out.push('?');
                continue;
            }
            // A doubled quote inside a literal closes it and opens the next at once, which
            // reads the same as an escaped quote.
            (Place::Literal, '\'') | (Place::Identifier, '"') | (Place::LineComment, '\n') => Place::Code,
            (Place::BlockComment, '*') if next == Some('/') => {
                out.push('*');
                out.push('/');
                characters.next();
                place = Place::Code;
                continue;
            }
            (unchanged, _) => unchanged,
        };
        out.push(character);
    }
    Cow::Owned(out)
}

struct SqliteSql<'c> {
    connection: &'c Connection,
}

fn to_sqlite(param: &Param) -> SqliteValue {
    match param {
        Param::Null => SqliteValue::Null,
        Param::Int(value) => SqliteValue::Integer(*value),
        Param::Text(value) => SqliteValue::Text(value.clone()),
        Param::Bytes(value) => SqliteValue::Blob(value.clone()),
    }
}

fn map_error(error: rusqlite::Error) -> Error {
    match &error {
        rusqlite::Error::SqliteFailure(failure, message)
            if failure.code == ErrorCode::ConstraintViolation
                && (failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) =>
        {
            Error::Duplicate(message.clone().unwrap_or_else(|| "a row".into()))
        }
        _ => Error::Sqlite(error),
    }
}

impl Sql for SqliteSql<'_> {
    fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64> {
        let mut statement = self.connection.prepare_cached(&placeholders(sql)).map_err(map_error)?;
        let changed = statement.execute(rusqlite::params_from_iter(params.iter().map(to_sqlite))).map_err(map_error)?;
        Ok(changed as u64)
    }

    fn query(&mut self, sql: &str, params: &[Param]) -> Result<Vec<SqlRow>> {
        let mut statement = self.connection.prepare_cached(&placeholders(sql)).map_err(map_error)?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params.iter().map(to_sqlite))).map_err(map_error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(map_error)? {
            let mut values = Vec::with_capacity(columns);
            for index in 0..columns {
                values.push(match row.get_ref(index)? {
                    ValueRef::Null => Param::Null,
                    ValueRef::Integer(value) => Param::Int(value),
                    // No column the server uses holds a real number: one that is an exact integer
                    // reads as that integer, any other is refused rather than cut to one.
                    ValueRef::Real(value) => Param::Int(exact_integer(value).ok_or(Error::InexactNumber { column: index, value })?),
                    ValueRef::Text(text) => Param::Text(String::from_utf8_lossy(text).into_owned()),
                    ValueRef::Blob(bytes) => Param::Bytes(bytes.to_vec()),
                });
            }
            out.push(values);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(database: &SqliteDatabase, sql: &str, params: &[Param]) -> Result<Vec<SqlRow>> {
        let mut rows = Vec::new();
        database.transaction(false, &mut |tx| {
            rows = tx.query(sql, params)?;
            Ok(())
        })?;
        Ok(rows)
    }

    #[test]
    fn placeholders_are_rewritten_only_outside_quotes_and_comments() {
        assert_eq!(placeholders("SELECT a FROM t WHERE b = $1 AND c IN ($2, $13)"), "SELECT a FROM t WHERE b = ?1 AND c IN (?2, ?13)");
        assert!(matches!(placeholders("SELECT 1"), Cow::Borrowed(_)));
        assert_eq!(placeholders("SELECT '$1', $1"), "SELECT '$1', ?1");
        assert_eq!(placeholders("SELECT 'it''s $2', $2"), "SELECT 'it''s $2', ?2");
        assert_eq!(placeholders(r#"SELECT "col$1" FROM t WHERE x = $1"#), r#"SELECT "col$1" FROM t WHERE x = ?1"#);
        assert_eq!(placeholders("SELECT $1 -- costs $2\n, $2"), "SELECT ?1 -- costs $2\n, ?2");
        assert_eq!(placeholders("SELECT /* $1 */ $1"), "SELECT /* $1 */ ?1");
        assert_eq!(placeholders("SELECT '$' || $1"), "SELECT '$' || ?1");
        assert_eq!(placeholders("SELECT a$1 FROM t WHERE b=$1"), "SELECT a$1 FROM t WHERE b=?1");
        assert_eq!(placeholders("SELECT ($1,$2)"), "SELECT (?1,?2)");
    }

    #[test]
    fn a_dollar_inside_a_string_literal_reaches_the_database_as_written() {
        let database = SqliteDatabase::in_memory().expect("database");
        let rows = query(&database, "SELECT '$1', CAST($1 AS TEXT), 'it''s $2'", &["bound".into()]).expect("query");
        assert_eq!(rows, vec![vec![Param::from("$1"), Param::from("bound"), Param::from("it's $2")]]);
    }

    #[test]
    fn a_real_value_reads_as_its_exact_integer_or_is_refused() {
        let database = SqliteDatabase::in_memory().expect("database");
        let rows = query(&database, "SELECT CAST(4 AS REAL), CAST(-7 AS REAL)", &[]).expect("exact integers");
        assert_eq!(rows, vec![vec![Param::Int(4), Param::Int(-7)]]);
        let refused = query(&database, "SELECT 1, CAST(2.5 AS REAL)", &[]).expect_err("2.5 is no integer");
        assert!(matches!(refused, Error::InexactNumber { column: 1, value } if value == 2.5), "{refused:?}");
        let refused = query(&database, "SELECT 1e19", &[]).expect_err("beyond a 64-bit integer");
        assert!(matches!(refused, Error::InexactNumber { column: 0, .. }), "{refused:?}");
    }
}
