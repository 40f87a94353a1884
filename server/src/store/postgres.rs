//! The PostgreSQL backend, for scale: several server instances may share one database, because
//! every write transaction first locks the sequence counter.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use postgres::error::SqlState;
use postgres::types::{IsNull, ToSql, Type, WrongType};
use postgres::{Client, NoTls, Statement};

use super::group::{Backend, Group, MAX_GROUP};
use super::{rewrite, Database, Kind, Migration, Param, Placeholder, Rows, Sql, SqlRow};
use crate::error::{Error, Result};

/// The PostgreSQL migrations, embedded in the binary.
pub const MIGRATIONS: &[Migration] =
    &[
        Migration { version: 1, name: "0001_init.sql", sql: include_str!("../../migrations/postgres/0001_init.sql") },
        Migration {
            version: 2,
            name: "0002_listing_submissions.sql",
            sql: include_str!("../../migrations/postgres/0002_listing_submissions.sql"),
        },
        Migration {
            version: 3,
            name: "0003_history_pruning.sql",
            sql: include_str!("../../migrations/postgres/0003_history_pruning.sql"),
        },
        Migration {
            version: 4,
            name: "0004_history_epoch.sql",
            sql: include_str!("../../migrations/postgres/0004_history_epoch.sql"),
        },
        Migration {
            version: 5,
            name: "0005_blob_scopes.sql",
            sql: include_str!("../../migrations/postgres/0005_blob_scopes.sql"),
        },
        Migration { version: 6, name: "0006_sessions.sql", sql: include_str!("../../migrations/postgres/0006_sessions.sql") },
        Migration { version: 7, name: "0007_audit_log.sql", sql: include_str!("../../migrations/postgres/0007_audit_log.sql") },
    ];

/// The most connections one server instance opens, so several instances stay well below the
/// server's `max_connections`.
pub const MAX_CONNECTIONS: usize = 16;

/// How long a request waits for a free connection before failing.
const CONNECTION_WAIT: Duration = Duration::from_secs(30);

/// A PostgreSQL database reached through a small pool of connections.
pub struct PostgresDatabase {
    url: String,
    schema: Option<String>,
    pool: Mutex<Pool>,
    available: Condvar,
    /// Write transactions, sharing commits (see `group`): the open group holds one pooled
    /// connection, and writers waiting their turn hold none.
    writer: Group<Connection>,
}

struct Pool {
    idle: Vec<Connection>,
    open: usize,
}

/// A connection with the statements it has prepared, so each query is parsed once per
/// connection instead of once per use (a round trip saved on every statement).
struct Connection {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// A connection taken from the pool; it goes back when dropped, or is closed if the work using
/// it panicked or the connection broke, so the pool never counts a connection it lost.
struct Lease<'a> {
    database: &'a PostgresDatabase,
    client: Option<Connection>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        let keep = !client.client.is_closed() && !std::thread::panicking();
        let Ok(mut pool) = self.database.pool.lock() else { return };
        if keep {
            pool.idle.push(client);
        } else {
            pool.open = pool.open.saturating_sub(1);
            drop(pool);
            drop(client);
        }
        self.database.available.notify_one();
    }
}

impl PostgresDatabase {
    /// Connects, optionally inside a schema of its own (created if missing; tests use one schema
    /// each), and brings the schema up to date.
    pub fn open(url: &str, schema: Option<&str>) -> Result<Self> {
        if let Some(schema) = schema {
            let valid = !schema.is_empty() && schema.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
            if !valid {
                return Err(Error::SchemaName(schema.to_owned()));
            }
        }
        let database = Self {
            url: url.to_owned(),
            schema: schema.map(str::to_owned),
            pool: Mutex::new(Pool { idle: Vec::new(), open: 0 }),
            available: Condvar::new(),
            writer: Group::new(None, MAX_GROUP),
        };
        {
            let mut lease = database.take()?;
            let connection = lease.client.as_mut().ok_or(Error::LeaseLost)?;
            let fsync: String = connection.client.query_one("SELECT current_setting('fsync')", &[])?.get(0);
            check_fsync(&fsync)?;
            database.migrate(connection)?;
        }
        Ok(database)
    }

    /// How many connections the pool holds open (idle or in use).
    pub fn open_connections(&self) -> usize {
        self.pool.lock().map(|pool| pool.open).unwrap_or(0)
    }

    fn connect(&self) -> Result<Client> {
        let mut client = Client::connect(&self.url, NoTls)?;
        // A commit must be on disk before the push is answered: a device deletes its outbox
        // entries once a push is acknowledged, so a commit lost in a crash would exist nowhere.
        // The setting is made for this session, so a server, database or role default of `off`
        // (or one in the connection URL) cannot weaken it; `remote_apply`, which also waits for
        // standbys to apply the commit, is stronger and kept.
        // Every transaction runs under READ COMMITTED whatever the server's default: writers are
        // ordered by the lock on the counter, not by serialisation failures, and a read's
        // statements run without a transaction around them (see `transaction`).
        let mut setup = format!("{DURABLE_COMMITS}; SET default_transaction_isolation TO 'read committed'");
        if let Some(schema) = &self.schema {
            setup.push_str(&format!("; CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}"));
        }
        client.batch_execute(&setup)?;
        Ok(client)
    }

    fn take(&self) -> Result<Lease<'_>> {
        let poisoned = || Error::Poisoned("pool");
        let mut pool = self.pool.lock().map_err(|_| poisoned())?;
        loop {
            while let Some(client) = pool.idle.pop() {
                if client.client.is_closed() {
                    pool.open = pool.open.saturating_sub(1);
                } else {
                    return Ok(Lease { database: self, client: Some(client) });
                }
            }
            if pool.open < MAX_CONNECTIONS {
                pool.open += 1;
                drop(pool);
                return match self.connect() {
                    Ok(client) => Ok(Lease { database: self, client: Some(Connection { client, statements: HashMap::new() }) }),
                    Err(error) => {
                        if let Ok(mut pool) = self.pool.lock() {
                            pool.open = pool.open.saturating_sub(1);
                        }
                        self.available.notify_one();
                        Err(error)
                    }
                };
            }
            let (next, timeout) = self.available.wait_timeout(pool, CONNECTION_WAIT).map_err(|_| poisoned())?;
            if timeout.timed_out() && next.idle.is_empty() && next.open >= MAX_CONNECTIONS {
                return Err(Error::PoolExhausted);
            }
            pool = next;
        }
    }

    fn migrate(&self, connection: &mut Connection) -> Result<()> {
        connection.client.batch_execute("BEGIN")?;
        // Instances starting together take turns: the advisory lock lasts until the commit.
        let outcome = connection.client.batch_execute("SELECT pg_advisory_xact_lock(7301400)").map_err(Error::from).and_then(|()| {
            let mut sql = PostgresSql { connection: &mut *connection };
            let mut scripts = Vec::new();
            super::migrate(&mut sql, MIGRATIONS, &mut |script| {
                scripts.push(script.to_owned());
                Ok(())
            })?;
            // The scripts run after the bookkeeping rows are written, inside the same transaction.
            for script in scripts {
                sql.connection.client.batch_execute(&script)?;
            }
            Ok(())
        });
        finish(&mut connection.client, outcome)
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        // A synchronous client owns a small runtime, which must not be dropped on an async
        // worker thread; closing the idle connections on a plain thread is always safe.
        if let Ok(mut pool) = self.pool.lock() {
            let clients = std::mem::take(&mut pool.idle);
            if !clients.is_empty() {
                let _ = std::thread::Builder::new().name("postgres-close".into()).spawn(move || drop(clients));
            }
        }
    }
}

/// Makes the session's commits wait for the disk: `synchronous_commit` is set to `on` unless it
/// is already `remote_apply`, the one stronger level.
const DURABLE_COMMITS: &str = "SELECT set_config('synchronous_commit', \
     CASE current_setting('synchronous_commit') WHEN 'remote_apply' THEN 'remote_apply' ELSE 'on' END, false)";

/// Refuses a PostgreSQL server that runs with `fsync = off`: its commits never reach the disk
/// for certain, so a power cut can lose or corrupt changes the server already acknowledged, and
/// no session setting can make up for it.
pub fn check_fsync(setting: &str) -> Result<()> {
    if setting.eq_ignore_ascii_case("off") {
        return Err(Error::FsyncOff);
    }
    Ok(())
}

fn finish(client: &mut Client, outcome: Result<()>) -> Result<()> {
    match outcome {
        Ok(()) => Ok(client.batch_execute("COMMIT")?),
        Err(error) => {
            // The rollback's own failure matters less than the error that caused it.
            let _ = client.batch_execute("ROLLBACK");
            Err(error)
        }
    }
}

/// The writer's side of a shared commit: a group takes a pooled connection when it begins and
/// gives it back when it ends.
impl Backend<Connection> for PostgresDatabase {
    fn begin(&self, slot: &mut Option<Connection>) -> Result<()> {
        if slot.is_none() {
            let mut lease = self.take()?;
            *slot = lease.client.take();
        }
        let connection = slot.as_mut().ok_or(Error::LeaseLost)?;
        // Serialises writers across instances before anything is read, so no writer acts on a
        // stale read and server_seq values become visible in commit order. One round trip.
        let begun = connection.client.batch_execute("BEGIN; SELECT v FROM sync_counter WHERE id = 1 FOR UPDATE");
        if let Err(error) = begun {
            let _ = connection.client.batch_execute("ROLLBACK");
            drop(Lease { database: self, client: slot.take() });
            return Err(error.into());
        }
        Ok(())
    }

    fn run(&self, connection: &mut Connection, work: &mut dyn FnMut(&mut dyn Sql) -> Result<()>) -> Result<()> {
        work(&mut PostgresSql { connection })
    }

    fn end(&self, slot: &mut Option<Connection>, commit: bool) -> Result<()> {
        let mut connection = slot.take().ok_or(Error::LeaseLost)?;
        let ended = if commit {
            connection.client.batch_execute("COMMIT").map_err(Error::from)
        } else {
            // The rollback's own failure matters less than the error that caused it.
            let _ = connection.client.batch_execute("ROLLBACK");
            Ok(())
        };
        // Back to the pool (or closed, if it broke).
        drop(Lease { database: self, client: Some(connection) });
        ended
    }
}

impl Database for PostgresDatabase {
    fn transaction(&self, write: bool, work: &mut dyn FnMut(&mut dyn Sql) -> Result<()>) -> Result<()> {
        if write {
            return self.writer.write(self, work);
        }
        // A read runs its statements without BEGIN and COMMIT, two round trips fewer for every
        // request's token check and every pull page. It sees what it would see inside them:
        // under READ COMMITTED, set for every connection, each statement of a transaction reads
        // the latest commit anyway, and a read writes nothing to keep or undo.
        let mut lease = self.take()?;
        let connection = lease.client.as_mut().ok_or(Error::LeaseLost)?;
        work(&mut PostgresSql { connection })
    }

    fn name(&self) -> &'static str {
        "postgres"
    }
}

/// An integer read from a real-number column, if it is one exactly.
fn exact(column: usize, value: f64) -> Result<Param> {
    super::exact_integer(value).map(Param::Int).ok_or(Error::InexactNumber { column, value })
}

impl ToSql for Param {
    /// Encodes a value for a parameter of type `ty`. A value meets only a type that holds it
    /// exactly (an integer a smaller integer type when it fits); any other pairing is refused,
    /// rather than sending bytes the server would read as another type.
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(value) => match *ty {
                Type::INT8 => value.to_sql(ty, out),
                Type::INT4 => i32::try_from(*value)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*value)?.to_sql(ty, out),
                _ => Err(Box::new(WrongType::new::<i64>(ty.clone()))),
            },
            Param::Text(value) if <String as ToSql>::accepts(ty) => value.to_sql(ty, out),
            Param::Bytes(value) if <Vec<u8> as ToSql>::accepts(ty) => value.to_sql(ty, out),
            Param::Text(_) => Err(Box::new(WrongType::new::<String>(ty.clone()))),
            Param::Bytes(_) => Err(Box::new(WrongType::new::<Vec<u8>>(ty.clone()))),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// One column of a [`Rows`] table, bound as an array (`text[]`, `bigint[]`, `bytea[]`).
#[derive(Debug)]
enum Column {
    Ints(Vec<Option<i64>>),
    Texts(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

impl Column {
    /// The column `index` of `rows`, whose values [`Rows::check`] has matched to its kind.
    fn of(rows: &Rows, index: usize) -> Result<Self> {
        let values = rows.rows().iter().map(|row| &row[index]);
        Ok(match rows.kinds()[index] {
            Kind::Int => Self::Ints(values.map(|value| super::optional_int(value)).collect::<Result<_>>()?),
            Kind::Text => Self::Texts(values.map(|value| super::optional_text(value)).collect::<Result<_>>()?),
            Kind::Bytes => Self::Bytes(
                values.map(|value| if *value == Param::Null { Ok(None) } else { value.bytes().map(Some) }).collect::<Result<_>>()?,
            ),
        })
    }

    /// The array type the statement casts the parameter to.
    fn cast(kind: Kind) -> &'static str {
        match kind {
            Kind::Int => "bigint[]",
            Kind::Text => "text[]",
            Kind::Bytes => "bytea[]",
        }
    }
}

impl ToSql for Column {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Self::Ints(values) => values.to_sql(ty, out),
            Self::Texts(values) => values.to_sql(ty, out),
            Self::Bytes(values) => values.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A statement over many rows in PostgreSQL's form: `$rows` becomes `UNNEST` of one array per
/// column, bound after the statement's own parameters, so the text (and its prepared form) does
/// not depend on the number of rows.
fn with_rows(sql: &str, params: &[Param], rows: &Rows) -> Result<(String, Vec<Column>)> {
    rows.check()?;
    let first = params.len() + 1;
    let arrays: Vec<String> =
        rows.kinds().iter().enumerate().map(|(index, kind)| format!("${}::{}", first + index, Column::cast(*kind))).collect();
    let names: Vec<String> = (1..=rows.kinds().len()).map(|column| format!("column{column}")).collect();
    let table = format!("(SELECT * FROM UNNEST({}) AS furrow_rows({}))", arrays.join(", "), names.join(", "));
    let sql = rewrite(sql, &mut |placeholder| match placeholder {
        Placeholder::Number(digits) => format!("${digits}"),
        Placeholder::Rows => table.clone(),
    })
    .into_owned();
    let columns = (0..rows.kinds().len()).map(|index| Column::of(rows, index)).collect::<Result<_>>()?;
    Ok((sql, columns))
}

struct PostgresSql<'c> {
    connection: &'c mut Connection,
}

impl PostgresSql<'_> {
    fn statement(&mut self, sql: &str) -> Result<Statement> {
        if let Some(statement) = self.connection.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.connection.client.prepare(sql).map_err(map_error)?;
        // Queries with a list of scopes vary in length; the cache stays small regardless.
        if self.connection.statements.len() < 256 {
            self.connection.statements.insert(sql.to_owned(), statement.clone());
        }
        Ok(statement)
    }
}

fn map_error(error: postgres::Error) -> Error {
    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        let detail = error.as_db_error().and_then(|db| db.detail()).unwrap_or("a row").to_owned();
        return Error::Duplicate(detail);
    }
    Error::Postgres(error)
}

fn references<'p>(params: &'p [Param], columns: &'p [Column]) -> Vec<&'p (dyn ToSql + Sync)> {
    params.iter().map(|param| param as &(dyn ToSql + Sync)).chain(columns.iter().map(|column| column as &(dyn ToSql + Sync))).collect()
}

impl Sql for PostgresSql<'_> {
    fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64> {
        let statement = self.statement(sql)?;
        self.connection.client.execute(&statement, &references(params, &[])).map_err(map_error)
    }

    fn query(&mut self, sql: &str, params: &[Param]) -> Result<Vec<SqlRow>> {
        self.run_query(sql, params, &[])
    }

    fn execute_rows(&mut self, sql: &str, params: &[Param], rows: &Rows) -> Result<u64> {
        let (sql, columns) = with_rows(sql, params, rows)?;
        let statement = self.statement(&sql)?;
        self.connection.client.execute(&statement, &references(params, &columns)).map_err(map_error)
    }

    fn query_rows(&mut self, sql: &str, params: &[Param], rows: &Rows) -> Result<Vec<SqlRow>> {
        let (sql, columns) = with_rows(sql, params, rows)?;
        self.run_query(&sql, params, &columns)
    }
}

impl PostgresSql<'_> {
    fn run_query(&mut self, sql: &str, params: &[Param], columns: &[Column]) -> Result<Vec<SqlRow>> {
        let statement = self.statement(sql)?;
        let rows = self.connection.client.query(&statement, &references(params, columns)).map_err(map_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut values = Vec::with_capacity(row.len());
            for (index, column) in row.columns().iter().enumerate() {
                let value = match *column.type_() {
                    Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(Param::Int),
                    Type::INT4 => row.try_get::<_, Option<i32>>(index)?.map(|value| Param::Int(value.into())),
                    Type::BOOL => row.try_get::<_, Option<bool>>(index)?.map(|value| Param::Int(value.into())),
                    Type::TEXT | Type::VARCHAR | Type::NAME => row.try_get::<_, Option<String>>(index)?.map(Param::Text),
                    Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(index)?.map(Param::Bytes),
                    // No column the server uses holds a real number: one that is an exact integer
                    // reads as that integer, any other is refused rather than cut to one.
                    Type::FLOAT8 => row.try_get::<_, Option<f64>>(index)?.map(|value| exact(index, value)).transpose()?,
                    Type::FLOAT4 => row.try_get::<_, Option<f32>>(index)?.map(|value| exact(index, value.into())).transpose()?,
                    ref other => {
                        return Err(Error::ColumnType { column: column.name().to_owned(), type_name: other.name().to_owned() })
                    }
                };
                values.push(value.unwrap_or(Param::Null));
            }
            out.push(values);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
