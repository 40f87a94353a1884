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
mod group;
mod migrate;
mod rows;
mod submissions;

pub use accounts::{AuditEntry, SessionRow, TokenCaller, TokenRow, User};
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

/// The kind of a [`Rows`] column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 64-bit integers.
    Int,
    /// Text.
    Text,
    /// Bytes.
    Bytes,
}

/// Many rows bound to one statement as a table, so a batch is read or written in one round trip
/// instead of one per row. The statement names the table `$rows` where a table may stand (`FROM
/// $rows AS k`), and reads its columns as `column1`, `column2`… (the names both engines give the
/// columns of a `VALUES` list). PostgreSQL binds one array per column (`UNNEST`), so the
/// statement's text, and its prepared form, stay the same whatever the number of rows; SQLite,
/// which has no round trips to save, binds a `VALUES` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows {
    kinds: Vec<Kind>,
    rows: Vec<Vec<Param>>,
}

impl Rows {
    /// An empty table with these columns.
    pub fn new(kinds: &[Kind]) -> Self {
        Self { kinds: kinds.to_vec(), rows: Vec::new() }
    }

    /// Appends a row. Its values must match the columns in number and kind (or be NULL); a
    /// mismatch is a bug of the caller, reported when the statement runs.
    pub fn push(&mut self, row: Vec<Param>) {
        self.rows.push(row);
    }

    /// The columns' kinds.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// The rows.
    pub fn rows(&self) -> &[Vec<Param>] {
        &self.rows
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Refuses rows whose values do not fit the columns, before anything reaches the database.
    fn check(&self) -> Result<()> {
        for row in &self.rows {
            if row.len() != self.kinds.len() {
                return Err(Error::ColumnKind { expected: "a row as wide as the table", found: "another width" });
            }
            for (value, kind) in row.iter().zip(&self.kinds) {
                let fits = matches!(
                    (value, kind),
                    (Param::Null, _) | (Param::Int(_), Kind::Int) | (Param::Text(_), Kind::Text) | (Param::Bytes(_), Kind::Bytes)
                );
                if !fits {
                    let expected = match kind {
                        Kind::Int => "an integer",
                        Kind::Text => "a text",
                        Kind::Bytes => "a bytes",
                    };
                    return Err(Error::ColumnKind { expected, found: value.kind() });
                }
            }
        }
        Ok(())
    }
}

/// SQL inside an open transaction. Statements use `$1`, `$2`… placeholders; the SQLite backend
/// rewrites them to its own numbered form, leaving quoted literals and identifiers as they are.
/// A statement over many rows names them `$rows` ([`Rows`]).
pub trait Sql {
    /// Runs a statement and returns the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64>;
    /// Runs a query and returns every row.
    fn query(&mut self, sql: &str, params: &[Param]) -> Result<Vec<SqlRow>>;
    /// Runs a statement over a table of rows (`$rows`) in one round trip and returns the number
    /// of rows it changed.
    fn execute_rows(&mut self, sql: &str, params: &[Param], rows: &Rows) -> Result<u64>;
    /// Runs a query over a table of rows (`$rows`) in one round trip and returns every row.
    fn query_rows(&mut self, sql: &str, params: &[Param], rows: &Rows) -> Result<Vec<SqlRow>>;
}

/// What a placeholder of a statement becomes in a backend's own form.
pub(crate) enum Placeholder<'a> {
    /// `$N`, with N's digits.
    Number(&'a str),
    /// `$rows`, a table of rows.
    Rows,
}

/// Rewrites a statement's placeholders through `replace`, outside quoted text and comments: a
/// `$` followed by a digit (`$1`) or by the word `rows` (`$rows`), not inside a name. A `$` inside
/// a string literal (`'…'`, a doubled quote standing for one), a quoted identifier (`"…"`), a
/// comment or a bare name (`a$1`) stays as it is.
pub(crate) fn rewrite<'s>(sql: &'s str, replace: &mut dyn FnMut(Placeholder<'_>) -> String) -> std::borrow::Cow<'s, str> {
    if !sql.contains('$') {
        return std::borrow::Cow::Borrowed(sql);
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
    let mut previous = ' ';
    let mut index = 0;
    while let Some(character) = sql[index..].chars().next() {
        let rest = &sql[index + character.len_utf8()..];
        let next = rest.chars().next();
        let in_name = previous.is_alphanumeric() || previous == '_' || previous == '$';
        previous = character;
        index += character.len_utf8();
        place = match (place, character) {
            (Place::Code, '\'') => Place::Literal,
            (Place::Code, '"') => Place::Identifier,
            (Place::Code, '-') if next == Some('-') => Place::LineComment,
            (Place::Code, '/') if next == Some('*') => {
                // The star is consumed with the slash, so `/*/` does not close the comment.
                out.push_str("/*");
                index += 1;
                previous = '*';
                place = Place::BlockComment;
                continue;
            }
            (Place::Code, '$') if !in_name && next.is_some_and(|next| next.is_ascii_digit()) => {
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                out.push_str(&replace(Placeholder::Number(&rest[..digits])));
                index += digits;
                previous = '0';
                continue;
            }
            (Place::Code, '$')
                if !in_name
                    && rest.starts_with("rows")
                    && !rest[4..].chars().next().is_some_and(|after| after.is_alphanumeric() || after == '_') =>
            {
                out.push_str(&replace(Placeholder::Rows));
                index += 4;
                previous = 's';
                continue;
            }
            // A doubled quote inside a literal closes it and opens the next at once, which
            // reads the same as an escaped quote.
            (Place::Literal, '\'') | (Place::Identifier, '"') | (Place::LineComment, '\n') => Place::Code,
            (Place::BlockComment, '*') if next == Some('/') => {
                out.push_str("*/");
                index += 1;
                previous = '/';
                place = Place::Code;
                continue;
            }
            (unchanged, _) => unchanged,
        };
        out.push(character);
    }
    std::borrow::Cow::Owned(out)
}

/// A storage backend: runs work in a transaction.
pub trait Database: Send + Sync + 'static {
    /// Runs `work` in one transaction, committed if it returns `Ok` and rolled back otherwise.
    /// A `write` transaction first takes the lock on the sequence counter, so writers are
    /// serialised across every server instance sharing the database, and what a writer reads
    /// is never stale by the time it writes. Writers that arrive while another runs share its
    /// commit, each in a savepoint of its own (`group`), and return once it is on disk. A read
    /// on PostgreSQL runs its statements under READ COMMITTED without BEGIN and COMMIT, which
    /// reads the same and saves two round trips.
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

/// A database that counts what passes through it: transactions and statements (each statement,
/// whether over one row or many, is one round trip to a database server). The benchmark prints
/// these per push and per pull page, and tests hold the push to its budget.
pub struct Counting<D: ?Sized> {
    inner: std::sync::Arc<D>,
    transactions: std::sync::atomic::AtomicU64,
    statements: std::sync::atomic::AtomicU64,
}

/// Transactions and statements counted by [`Counting`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Transactions run.
    pub transactions: u64,
    /// Statements run inside them (not counting the backend's own begin, lock and commit).
    pub statements: u64,
}

impl<D: Database + ?Sized> Counting<D> {
    /// Counts what passes through to `inner`.
    pub fn new(inner: std::sync::Arc<D>) -> Self {
        Self { inner, transactions: Default::default(), statements: Default::default() }
    }

    /// What was counted so far.
    pub fn counts(&self) -> Counts {
        use std::sync::atomic::Ordering::Relaxed;
        Counts { transactions: self.transactions.load(Relaxed), statements: self.statements.load(Relaxed) }
    }
}

struct CountingSql<'s, 'c> {
    inner: &'s mut dyn Sql,
    statements: &'c std::sync::atomic::AtomicU64,
}

impl CountingSql<'_, '_> {
    fn count(&self) {
        self.statements.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Sql for CountingSql<'_, '_> {
    fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64> {
        self.count();
        self.inner.execute(sql, params)
    }

    fn query(&mut self, sql: &str, params: &[Param]) -> Result<Vec<SqlRow>> {
        self.count();
        self.inner.query(sql, params)
    }

    fn execute_rows(&mut self, sql: &str, params: &[Param], rows: &Rows) -> Result<u64> {
        self.count();
        self.inner.execute_rows(sql, params, rows)
    }

    fn query_rows(&mut self, sql: &str, params: &[Param], rows: &Rows) -> Result<Vec<SqlRow>> {
        self.count();
        self.inner.query_rows(sql, params, rows)
    }
}

impl<D: Database + ?Sized> Database for Counting<D> {
    fn transaction(&self, write: bool, work: &mut dyn FnMut(&mut dyn Sql) -> Result<()>) -> Result<()> {
        self.transactions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.transaction(write, &mut |sql| work(&mut CountingSql { inner: sql, statements: &self.statements }))
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }
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

    /// Takes `count` sequence numbers at once and returns the first; they run on without a gap.
    /// Runs inside the write transaction, as [`Tx::next_seq`].
    pub fn take_seqs(&mut self, count: i64) -> Result<i64> {
        let rows = self.sql.query("UPDATE sync_counter SET v = v + $1 WHERE id = 1 RETURNING v", &[count.into()])?;
        Ok(rows.first().ok_or(Error::MissingRow("sync_counter"))?[0].int()? - count + 1)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(sql: &str) -> String {
        rewrite(sql, &mut |placeholder| match placeholder {
            Placeholder::Number(digits) => format!("<{digits}>"),
            Placeholder::Rows => "<rows>".to_owned(),
        })
        .into_owned()
    }

    #[test]
    fn placeholders_and_the_table_of_rows_are_found_outside_quotes_only() {
        assert_eq!(numbered("SELECT a FROM $rows AS k WHERE b = $1 AND c = $12"), "SELECT a FROM <rows> AS k WHERE b = <1> AND c = <12>");
        assert_eq!(numbered("SELECT '$rows', \"$rows\", $rowsy, a$rows -- $rows\n FROM $rows"), "SELECT '$rows', \"$rows\", $rowsy, a$rows -- $rows\n FROM <rows>");
        assert_eq!(numbered("SELECT /* $1 $rows */ $1"), "SELECT /* $1 $rows */ <1>");
        assert_eq!(numbered("SELECT 'it''s $2', $2, '价格 $3', $3"), "SELECT 'it''s $2', <2>, '价格 $3', <3>");
        assert!(matches!(rewrite("SELECT 1", &mut |_| String::new()), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn a_row_that_does_not_fit_its_table_is_refused_before_it_is_sent() {
        let mut rows = Rows::new(&[Kind::Text, Kind::Int]);
        rows.push(vec![Param::from("a"), Param::Null]);
        assert!(rows.check().is_ok());
        rows.push(vec![Param::from("b"), Param::from("not a number")]);
        assert!(matches!(rows.check(), Err(Error::ColumnKind { expected: "an integer", found: "text" })));
        let mut narrow = Rows::new(&[Kind::Text, Kind::Int]);
        narrow.push(vec![Param::from("a")]);
        assert!(narrow.check().is_err());
    }
}
