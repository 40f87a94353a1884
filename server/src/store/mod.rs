//! Storage behind a trait. A backend ([`Database`]) only knows how to run SQL in a transaction;
//! every query the server makes is written once, in [`Tx`], in the SQL both SQLite and
//! PostgreSQL understand. So the merge rule, the scoping and the bookkeeping cannot drift apart
//! between the backends, and one conformance suite checks both.
//!
//! The trait is synchronous: handlers call it from `tokio::task::spawn_blocking`.

pub mod postgres;
pub mod sqlite;

mod accounts;
mod blobs;
mod migrate;
mod rows;
mod submissions;

pub use accounts::{AuditEntry, SessionRow, TokenRow, User};
pub use blobs::{BlobMeta, Upload};
pub use migrate::Migration;
pub(crate) use migrate::migrate;
pub use rows::{ChangeLogEntry, ChangedRow, Prune, RowMeta, StoredBatch, StoredField};
pub use submissions::{SubmissionRow, SubmissionVerdict};

use crate::error::{Error, Result};

/// A value bound to or read from SQL. Every column the server uses is an integer, text or bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// SQL NULL.
    Null,
    /// A 64-bit integer.
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
}

impl Param {
    /// The kind of value, for errors (`NULL`, `an integer`, `text`, `bytes`).
    fn kind(&self) -> &'static str {
        match self {
            Self::Null => "NULL",
            Self::Int(_) => "an integer",
            Self::Text(_) => "text",
            Self::Bytes(_) => "bytes",
        }
    }

    fn int(&self) -> Result<i64> {
        match self {
            Self::Int(value) => Ok(*value),
            other => Err(Error::ColumnKind { expected: "an integer", found: other.kind() }),
        }
    }

    fn text(&self) -> Result<String> {
        match self {
            Self::Text(value) => Ok(value.clone()),
            other => Err(Error::ColumnKind { expected: "a text", found: other.kind() }),
        }
    }

    fn bytes(&self) -> Result<Vec<u8>> {
        match self {
            Self::Bytes(value) => Ok(value.clone()),
            other => Err(Error::ColumnKind { expected: "a bytes", found: other.kind() }),
        }
    }
}

impl From<i64> for Param {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<&str> for Param {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<String> for Param {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl From<&String> for Param {
    fn from(value: &String) -> Self {
        Self::Text(value.clone())
    }
}

impl From<Vec<u8>> for Param {
    fn from(value: Vec<u8>) -> Self {
        Self::Bytes(value)
    }
}

/// The 64-bit integer a floating-point value read from storage stands for exactly, if any: no
/// fraction, and within the integers' range (2^63 is exact in both types). A backend reads a real
/// number through this, so a value is never silently cut to an integer.
pub(crate) fn exact_integer(value: f64) -> Option<i64> {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (value.fract() == 0.0 && (-LIMIT..LIMIT).contains(&value)).then_some(value as i64)
}

/// One row of a query's answer.
pub type SqlRow = Vec<Param>;

/// SQL inside an open transaction. Statements use `$1`, `$2`… placeholders; the SQLite backend
/// rewrites them to its own numbered form, leaving quoted literals and identifiers as they are.
pub trait Sql {
    /// Runs a statement and returns the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64>;
    /// Runs a query and returns every row.
    fn query(&mut self, sql: &str, params: &[Param]) -> Result<Vec<SqlRow>>;
}

/// A storage backend: runs work in a transaction.
pub trait Database: Send + Sync + 'static {
    /// Runs `work` in one transaction, committed if it returns `Ok` and rolled back otherwise.
    /// A `write` transaction first takes the lock on the sequence counter, so writers are
    /// serialised across every server instance sharing the database, and what a writer reads
    /// is never stale by the time it writes.
    fn transaction(&self, write: bool, work: &mut dyn FnMut(&mut dyn Sql) -> Result<()>) -> Result<()>;
    /// The backend's name, for logs (`sqlite` or `postgres`).
    fn name(&self) -> &'static str;
}

/// Runs `work` in a write transaction and returns its result.
pub fn write<T>(database: &dyn Database, mut work: impl FnMut(&mut Tx<'_>) -> Result<T>) -> Result<T> {
    run(database, true, &mut work)
}

/// Runs `work` in a read transaction and returns its result.
pub fn read<T>(database: &dyn Database, mut work: impl FnMut(&mut Tx<'_>) -> Result<T>) -> Result<T> {
    run(database, false, &mut work)
}

fn run<T>(database: &dyn Database, write: bool, work: &mut dyn FnMut(&mut Tx<'_>) -> Result<T>) -> Result<T> {
    let mut output = None;
    database.transaction(write, &mut |sql| {
        let mut tx = Tx { sql };
        output = Some(work(&mut tx)?);
        Ok(())
    })?;
    output.ok_or(Error::NoResult)
}

fn optional_text(param: &Param) -> Result<Option<String>> {
    match param {
        Param::Null => Ok(None),
        other => other.text().map(Some),
    }
}

fn optional_int(param: &Param) -> Result<Option<i64>> {
    match param {
        Param::Null => Ok(None),
        other => other.int().map(Some),
    }
}

fn optional_param(value: Option<&str>) -> Param {
    value.map(Param::from).unwrap_or(Param::Null)
}

fn in_list(first: usize, count: usize) -> String {
    (first..first + count).map(|index| format!("${index}")).collect::<Vec<_>>().join(", ")
}

/// Every query the server makes, inside one transaction.
pub struct Tx<'a> {
    sql: &'a mut dyn Sql,
}

impl Tx<'_> {
    /// The next server sequence number. Runs inside the write transaction, so numbers become
    /// visible in commit order and a pull never skips a late commit.
    pub fn next_seq(&mut self) -> Result<i64> {
        let rows = self.sql.query("UPDATE sync_counter SET v = v + 1 WHERE id = 1 RETURNING v", &[])?;
        rows.first().ok_or(Error::MissingRow("sync_counter"))?[0].int()
    }

    /// The greatest server sequence number handed out so far.
    pub fn current_seq(&mut self) -> Result<i64> {
        let rows = self.sql.query("SELECT v FROM sync_counter WHERE id = 1", &[])?;
        rows.first().ok_or(Error::MissingRow("sync_counter"))?[0].int()
    }

    /// Marks a point inside the transaction to which [`Tx::rollback_to`] can return. Both
    /// backends understand SQL savepoints; the sequence numbers taken after the mark are given
    /// back on a rollback, so no gap appears.
    pub fn savepoint(&mut self, name: &str) -> Result<()> {
        self.sql.execute(&format!("SAVEPOINT {name}"), &[])?;
        Ok(())
    }

    /// Undoes everything written since the savepoint, which stays set.
    pub fn rollback_to(&mut self, name: &str) -> Result<()> {
        self.sql.execute(&format!("ROLLBACK TO SAVEPOINT {name}"), &[])?;
        Ok(())
    }

    /// Forgets a savepoint, keeping what was written since.
    pub fn release(&mut self, name: &str) -> Result<()> {
        self.sql.execute(&format!("RELEASE SAVEPOINT {name}"), &[])?;
        Ok(())
    }
}
