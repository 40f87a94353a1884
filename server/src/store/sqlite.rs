//! The SQLite backend: one database file in the data directory, the embedded default.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::{Value as SqliteValue, ValueRef};
use rusqlite::{Connection, ErrorCode};

use super::group::{Backend, Group, MAX_GROUP};
use super::{exact_integer, rewrite, Database, Migration, Param, Placeholder, Rows, Sql, SqlRow};
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

/// A SQLite database: one connection for write transactions, taken in turns (SQLite has one
/// writer at a time anyway), and a few more for read transactions. In WAL mode a reader sees the
/// last commit and neither waits for the writer nor makes it wait, so the checks of every
/// request's token and the pulls do not queue behind pushes, each of which waits for the disk.
pub struct SqliteDatabase {
    writer: Group<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

/// Connections kept for read transactions (a database in memory has none: it cannot be shared).
const READERS: usize = 4;

impl SqliteDatabase {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let connection = Connection::open(path)?;
        let mut database = Self::prepare(connection, false)?;
        for _ in 0..READERS {
            let reader = Connection::open(path)?;
            Self::set_pragmas(&reader)?;
            database.readers.push(Mutex::new(reader));
        }
        Ok(database)
    }

    /// An in-memory database, for tests.
    pub fn in_memory() -> Result<Self> {
        Self::prepare(Connection::open_in_memory()?, true)
    }

    fn prepare(connection: Connection, in_memory: bool) -> Result<Self> {
        Self::set_pragmas(&connection)?;
        // Writers share commits (see `group`); a database in memory has no readers, so its
        // reads take turns with the writes, each in a transaction of its own.
        let most = if in_memory { 1 } else { MAX_GROUP };
        let database = Self { writer: Group::new(Some(connection), most), readers: Vec::new(), next_reader: AtomicUsize::new(0) };
        database.migrate()?;
        Ok(database)
    }

    fn set_pragmas(connection: &Connection) -> Result<()> {
        // Pragmas one at a time, each for a reason: WAL lets readers run beside the writer,
        // busy_timeout lets an operator command run while the server holds the lock, and
        // foreign_keys makes the assignment table's references real.
        connection.busy_timeout(Duration::from_secs(10))?;
        // A push's statements over many rows vary in text with their number of rows; a larger
        // cache keeps the common sizes prepared.
        connection.set_prepared_statement_cache_capacity(64);
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
    /// in turn.
    fn reader(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
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
        let slot = self.writer.lock()?;
        let connection = slot.connection.as_ref().ok_or(Error::LeaseLost)?;
        connection.execute_batch("BEGIN IMMEDIATE")?;
        let outcome = {
            let mut sql = SqliteSql { connection };
            super::migrate(&mut sql, MIGRATIONS, &mut |script| Ok(connection.execute_batch(script)?))
        };
        finish(connection, outcome)
    }
}

/// The writer's side of a shared commit: the connection stays in the group's slot.
impl Backend<Connection> for SqliteDatabase {
    fn begin(&self, connection: &mut Option<Connection>) -> Result<()> {
        // A write transaction takes the write lock at once, so what it reads cannot change
        // before it writes, even with a second process (an operator command) on the same file.
        connection.as_ref().ok_or(Error::LeaseLost)?.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    fn run(&self, connection: &mut Connection, work: &mut dyn FnMut(&mut dyn Sql) -> Result<()>) -> Result<()> {
        work(&mut SqliteSql { connection })
    }

    fn end(&self, connection: &mut Option<Connection>, commit: bool) -> Result<()> {
        let connection = connection.as_ref().ok_or(Error::LeaseLost)?;
        if commit {
            connection.execute_batch("COMMIT")?;
        } else {
            // The rollback's own failure matters less than the error that caused it.
            let _ = connection.execute_batch("ROLLBACK");
        }
        Ok(())
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
        if write || self.readers.is_empty() {
            return self.writer.write(self, work);
        }
        let connection = self.reader()?;
        connection.execute_batch("BEGIN")?;
        let outcome = work(&mut SqliteSql { connection: &connection });
        finish(&connection, outcome)
    }

    fn name(&self) -> &'static str {
        "sqlite"
    }
}

/// Rewrites `$1` placeholders to SQLite's `?1` (see [`rewrite`] for what counts as one).
fn placeholders(sql: &str) -> Cow<'_, str> {
    rewrite(sql, &mut |placeholder| match placeholder {
        Placeholder::Number(digits) => format!("?{digits}"),
        Placeholder::Rows => "$rows".to_owned(),
    })
}

/// A statement over many rows in SQLite's form: `$rows` becomes a `VALUES` list whose
/// placeholders follow the statement's own, and the values to bind in order.
fn with_rows(sql: &str, params: &[Param], rows: &Rows) -> Result<(String, Vec<SqliteValue>)> {
    rows.check()?;
    let width = rows.kinds().len();
    let table = if rows.is_empty() {
        // No VALUES list can be empty; a query of no rows with the same column names can.
        let columns: Vec<String> = (1..=width).map(|column| format!("NULL AS column{column}")).collect();
        format!("(SELECT {} LIMIT 0)", columns.join(", "))
    } else {
        let mut next = params.len();
        let tuples: Vec<String> = rows
            .rows()
            .iter()
            .map(|_| {
                let values: Vec<String> = (0..width)
                    .map(|_| {
                        next += 1;
                        format!("?{next}")
                    })
                    .collect();
                format!("({})", values.join(", "))
            })
            .collect();
        format!("(VALUES {})", tuples.join(", "))
    };
    let sql = rewrite(sql, &mut |placeholder| match placeholder {
        Placeholder::Number(digits) => format!("?{digits}"),
        Placeholder::Rows => table.clone(),
    })
    .into_owned();
    let values = params.iter().chain(rows.rows().iter().flatten()).map(to_sqlite).collect();
    Ok((sql, values))
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
        self.run_query(&placeholders(sql), params.iter().map(to_sqlite).collect())
    }

    fn execute_rows(&mut self, sql: &str, params: &[Param], rows: &Rows) -> Result<u64> {
        let mut changed = 0;
        for part in parts(params, rows).iter() {
            let (sql, values) = with_rows(sql, params, part)?;
            let mut statement = self.connection.prepare_cached(&sql).map_err(map_error)?;
            changed += statement.execute(rusqlite::params_from_iter(values)).map_err(map_error)? as u64;
        }
        Ok(changed)
    }

    fn query_rows(&mut self, sql: &str, params: &[Param], rows: &Rows) -> Result<Vec<SqlRow>> {
        let mut out = Vec::new();
        for part in parts(params, rows).iter() {
            let (sql, values) = with_rows(sql, params, part)?;
            out.extend(self.run_query(&sql, values)?);
        }
        Ok(out)
    }
}

/// The most values one SQLite statement binds (its limit is 32,766).
const MAX_BOUND: usize = 32_000;

/// A table split into parts small enough for one SQLite statement each (a push of 500 changes
/// is one part; a larger batch written through the library is several). The parts run one after
/// the other in the same transaction, so a statement over many rows means the same; a query's
/// order holds within each part.
fn parts<'r>(params: &[Param], rows: &'r Rows) -> Cow<'r, [Rows]> {
    let width = rows.kinds().len().max(1);
    let per_part = (MAX_BOUND.saturating_sub(params.len()) / width).max(1);
    if rows.rows().len() <= per_part {
        return Cow::Borrowed(std::slice::from_ref(rows));
    }
    let split: Vec<Rows> = rows
        .rows()
        .chunks(per_part)
        .map(|chunk| {
            let mut part = Rows::new(rows.kinds());
            chunk.iter().for_each(|row| part.push(row.clone()));
            part
        })
        .collect();
    Cow::Owned(split)
}

impl SqliteSql<'_> {
    fn run_query(&mut self, sql: &str, values: Vec<SqliteValue>) -> Result<Vec<SqlRow>> {
        let mut statement = self.connection.prepare_cached(sql).map_err(map_error)?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(values)).map_err(map_error)?;
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
    use super::super::{Kind, Rows};
    use super::*;

    fn query(database: &SqliteDatabase, sql: &str, params: &[Param]) -> Result<Vec<SqlRow>> {
        let mut rows = Vec::new();
        database.transaction(false, &mut |tx| {
            rows = tx.query(sql, params)?;
            Ok(())
        })?;
        Ok(rows)
    }


    /// A table of rows, read back whole (every kind of value, NULL, text with quotes and a
    /// `$`), joined to a stored table, written with an upsert, and empty: the same answers on
    /// both backends.
    fn rows_round_trip(transaction: &mut dyn FnMut(&mut dyn FnMut(&mut dyn Sql) -> Result<()>) -> Result<()>) {
        let mut rows = Rows::new(&[Kind::Text, Kind::Int, Kind::Bytes]);
        rows.push(vec![Param::from("it's $1 价格"), Param::Int(i64::MAX), Param::Bytes(vec![0, 255, 7])]);
        rows.push(vec![Param::Null, Param::Int(-3), Param::Null]);
        transaction(&mut |sql| {
            let read = sql.query_rows("SELECT column1, column2, column3 FROM $rows AS k ORDER BY column2", &[], &rows)?;
            assert_eq!(read, vec![rows.rows()[1].clone(), rows.rows()[0].clone()]);
            sql.execute("CREATE TABLE rows_probe (name TEXT PRIMARY KEY, size BIGINT NOT NULL)", &[])?;
            let mut sizes = Rows::new(&[Kind::Text, Kind::Int]);
            sizes.push(vec!["a".into(), Param::Int(1)]);
            sizes.push(vec!["b".into(), Param::Int(2)]);
            let upsert = "INSERT INTO rows_probe (name, size) SELECT column1, column2 FROM $rows AS k WHERE true
                          ON CONFLICT (name) DO UPDATE SET size = excluded.size + $1";
            assert_eq!(sql.execute_rows(upsert, &[Param::Int(0)], &sizes)?, 2);
            let mut again = Rows::new(&[Kind::Text, Kind::Int]);
            again.push(vec!["b".into(), Param::Int(20)]);
            again.push(vec!["c".into(), Param::Int(3)]);
            sql.execute_rows(upsert, &[Param::Int(100)], &again)?;
            let stored = sql.query("SELECT name, size FROM rows_probe ORDER BY name", &[])?;
            assert_eq!(
                stored,
                vec![vec!["a".into(), Param::Int(1)], vec!["b".into(), Param::Int(120)], vec!["c".into(), Param::Int(3)]]
            );
            let mut wanted = Rows::new(&[Kind::Text]);
            wanted.push(vec!["c".into()]);
            wanted.push(vec!["nobody".into()]);
            let joined = sql.query_rows(
                "SELECT p.name, p.size FROM $rows AS k CROSS JOIN rows_probe p WHERE p.name = k.column1 AND p.size > $1",
                &[Param::Int(0)],
                &wanted,
            )?;
            assert_eq!(joined, vec![vec!["c".into(), Param::Int(3)]]);
            let none = sql.query_rows("SELECT column1 FROM $rows AS k", &[], &Rows::new(&[Kind::Text]))?;
            assert!(none.is_empty());
            let mut wrong = Rows::new(&[Kind::Int]);
            wrong.push(vec!["not a number".into()]);
            assert!(matches!(sql.query_rows("SELECT column1 FROM $rows AS k", &[], &wrong), Err(Error::ColumnKind { .. })));
            sql.execute("DROP TABLE rows_probe", &[])?;
            Ok(())
        })
        .expect("rows round trip");
    }

    #[test]
    fn a_table_of_rows_is_bound_as_a_values_list() {
        let database = SqliteDatabase::in_memory().expect("database");
        rows_round_trip(&mut |work| database.transaction(true, work));
    }

    #[test]
    fn a_table_larger_than_one_statement_binds_runs_in_parts() {
        let database = SqliteDatabase::in_memory().expect("database");
        let mut rows = Rows::new(&[Kind::Int, Kind::Text, Kind::Text]);
        (0..20_000).for_each(|index| rows.push(vec![Param::Int(index), "价格".into(), Param::Null]));
        database
            .transaction(true, &mut |sql| {
                sql.execute("CREATE TABLE big (n BIGINT PRIMARY KEY, a TEXT, b TEXT)", &[])?;
                let written = sql.execute_rows("INSERT INTO big (n, a, b) SELECT column1, column2, column3 FROM $rows AS k", &[], &rows)?;
                assert_eq!(written, 20_000);
                let read = sql.query_rows("SELECT b.n FROM $rows AS k CROSS JOIN big b WHERE b.n = k.column1", &[], &rows)?;
                assert_eq!(read.len(), 20_000);
                Ok(())
            })
            .expect("20,000 rows, 60,000 values");
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
