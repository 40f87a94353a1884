//! Storage behind a trait. A backend ([`Database`]) only knows how to run SQL in a transaction;
//! every query the server makes is written once, in [`Tx`], in the SQL both SQLite and
//! PostgreSQL understand. So the merge rule, the scoping and the bookkeeping cannot drift apart
//! between the backends, and one conformance suite checks both.
//!
//! The trait is synchronous: handlers call it from `tokio::task::spawn_blocking`.

pub mod postgres;
pub mod sqlite;

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
    fn int(&self) -> Result<i64> {
        match self {
            Self::Int(value) => Ok(*value),
            other => Err(Error::Storage(format!("expected an integer column, found {other:?}"))),
        }
    }

    fn text(&self) -> Result<String> {
        match self {
            Self::Text(value) => Ok(value.clone()),
            other => Err(Error::Storage(format!("expected a text column, found {other:?}"))),
        }
    }

    fn bytes(&self) -> Result<Vec<u8>> {
        match self {
            Self::Bytes(value) => Ok(value.clone()),
            other => Err(Error::Storage(format!("expected a bytes column, found {other:?}"))),
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

/// One row of a query's answer.
pub type SqlRow = Vec<Param>;

/// SQL inside an open transaction. Statements use `$1`, `$2`… placeholders; the SQLite backend
/// rewrites them to its own numbered form.
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
    output.ok_or_else(|| Error::Storage("the transaction finished without a result".into()))
}

/// A migration: its number, name and SQL.
pub struct Migration {
    /// The number, from the file name.
    pub version: i64,
    /// The file name.
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

/// Applies the migrations the database lacks, in order, and refuses a database that records a
/// migration this build does not know (written by a newer server) or one whose name differs.
pub(crate) fn migrate(sql: &mut dyn Sql, migrations: &[Migration], apply: &mut dyn FnMut(&str) -> Result<()>) -> Result<()> {
    sql.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        &[],
    )?;
    let applied = sql.query("SELECT version, name FROM schema_migrations ORDER BY version", &[])?;
    for row in &applied {
        let version = row[0].int()?;
        let name = row[1].text()?;
        match migrations.iter().find(|migration| migration.version == version) {
            Some(known) if known.name == name => {}
            Some(known) => {
                return Err(Error::Storage(format!(
                    "migration {version} is recorded as {name} but this version has {}",
                    known.name
                )))
            }
            None => return Err(Error::Storage(format!("the database has migration {version} ({name}) from a newer server"))),
        }
    }
    for migration in migrations {
        let done = applied.iter().any(|row| row[0] == Param::Int(migration.version));
        if !done {
            apply(migration.sql)?;
            sql.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                &[migration.version.into(), migration.name.into(), furrow_contract::hlc::wall_ms().into()],
            )?;
        }
    }
    Ok(())
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The id.
    pub id: i64,
    /// The login name.
    pub username: String,
    /// The Argon2id hash in PHC form.
    pub password_hash: String,
    /// Whether sign-in is refused.
    pub disabled: bool,
    /// `assistant`, or `admin` for the platform's staff, whose tokens open the admin endpoints.
    pub role: String,
}

/// A stored bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// `access` or `refresh`.
    pub kind: String,
    /// The sign-in session the token belongs to.
    pub session_id: String,
    /// The user.
    pub user_id: i64,
    /// The device name given at sign-in.
    pub device_name: String,
    /// Expiry, Unix milliseconds.
    pub expires_at: i64,
}

/// An entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEntry {
    /// The entry's number, increasing (ignored when appending).
    pub id: i64,
    /// When (Unix ms, server clock).
    pub at: i64,
    /// `sign_in`, `sign_in_failed`, `admin_action` or `scope_change`.
    pub kind: String,
    /// Who acted: a user name, `admin:<name>`, `bootstrap` (the bootstrap token) or `operator`
    /// (a command on the server).
    pub actor: String,
    /// The client's address (`-` for an operator command).
    pub address: String,
    /// What was acted on: an account, an endpoint.
    pub subject: String,
    /// What happened, for people.
    pub detail: String,
}

/// A sign-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The session's id.
    pub session_id: String,
    /// The user.
    pub user_id: i64,
    /// The device (client id) the session is bound to, once known.
    pub client_id: Option<String>,
    /// The device name given at sign-in.
    pub device_name: String,
    /// When the sign-in happened (Unix ms).
    pub created_at: i64,
    /// When the session ends however often it is renewed (Unix ms).
    pub expires_at: i64,
}

/// A push answer kept for exact replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    /// The response body, byte for byte.
    pub response: String,
    /// The SHA-256 (hex) of the request's changes; `None` for a batch stored before digests
    /// were kept, which replays to any body.
    pub request_hash: Option<String>,
}

/// The index entry of a synced row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowMeta {
    /// The row's scope (a village code).
    pub scope_id: String,
    /// Whether the row is a tombstone.
    pub deleted: bool,
    /// The server sequence number of the row's latest change.
    pub sv: i64,
}

/// The stored version of one field.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredField {
    /// The value.
    pub value: serde_json::Value,
    /// Its HLC.
    pub hlc: i64,
    /// The node that wrote it.
    pub node: Vec<u8>,
    /// The sequence number of the change that wrote it.
    pub server_seq: i64,
    /// Who wrote it (`assistant:3`, `platform`, `moderator:li`).
    pub actor: String,
}

/// A row of a pull page with all its stored fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedRow {
    /// Table.
    pub tbl: String,
    /// Row id.
    pub row_id: String,
    /// Index entry.
    pub meta: RowMeta,
    /// Every stored field, by name.
    pub fields: Vec<(String, StoredField)>,
}

/// One entry of the change log: an accepted change and the sequence number it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeLogEntry<'a> {
    /// The sequence number.
    pub server_seq: i64,
    /// The change's id.
    pub change_id: &'a str,
    /// The device that sent it.
    pub client_id: &'a str,
    /// Table.
    pub tbl: &'a str,
    /// Row id.
    pub row_id: &'a str,
    /// Field.
    pub field: &'a str,
    /// When it was accepted (Unix ms).
    pub created_at: i64,
}

/// A blob's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    /// Digest, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: i64,
    /// Media type.
    pub mime: String,
    /// The user who uploaded it first.
    pub uploaded_by: i64,
}

/// An upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The upload's id.
    pub id: String,
    /// The digest the finished blob must have.
    pub sha256: String,
    /// The size the finished blob must have.
    pub size: i64,
    /// Media type.
    pub mime: String,
    /// The uploading user.
    pub user_id: i64,
    /// Bytes received and kept so far.
    pub offset: i64,
}

/// One pruning run of the history (sync-design.md section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prune {
    /// Tombstones whose latest change was accepted before this time (Unix ms) were purged.
    pub horizon_ms: i64,
    /// The same horizon as a sequence number: a pull cursor below it is answered with
    /// `reset: history_pruned`.
    pub horizon_seq: i64,
    /// Tombstoned rows purged.
    pub rows_purged: u64,
    /// Change-log entries of those rows purged.
    pub changes_purged: u64,
    /// When the run happened (Unix ms).
    pub pruned_at: i64,
}

/// A listing submission as recorded: one per submission key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionRow {
    /// The device's submission key (unique).
    pub submission_key: String,
    /// The listing submitted.
    pub listing_id: String,
    /// The listing's village when it was submitted.
    pub scope_id: String,
    /// The assistant whose push carried it.
    pub user_id: i64,
    /// The device that pushed it.
    pub client_id: String,
    /// When the server first saw the key (Unix ms, server clock).
    pub submitted_at: i64,
    /// `pending`, `approved` or `rejected`.
    pub moderation_status: String,
    /// The reason given with a rejection.
    pub moderation_reason: Option<String>,
    /// The item id on the selling platform, once approved.
    pub platform_item_id: Option<String>,
    /// Who gave the verdict (`platform`, `moderator:<name>`).
    pub moderated_by: Option<String>,
    /// When the verdict was given (Unix ms).
    pub moderated_at: Option<i64>,
}

/// A verdict on a listing's latest submission; absent parts are left as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmissionVerdict<'a> {
    /// The new moderation status.
    pub moderation_status: Option<&'a str>,
    /// The reason given.
    pub moderation_reason: Option<&'a str>,
    /// The platform's item id.
    pub platform_item_id: Option<&'a str>,
    /// Who gave it.
    pub moderated_by: &'a str,
    /// When (Unix ms).
    pub moderated_at: i64,
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
        rows.first().ok_or_else(|| Error::Storage("sync_counter is empty".into()))?[0].int()
    }

    /// The greatest server sequence number handed out so far.
    pub fn current_seq(&mut self) -> Result<i64> {
        let rows = self.sql.query("SELECT v FROM sync_counter WHERE id = 1", &[])?;
        rows.first().ok_or_else(|| Error::Storage("sync_counter is empty".into()))?[0].int()
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

    // Accounts.

    /// Creates a user and returns its id; [`Error::Duplicate`] if the name is taken.
    pub fn create_user(&mut self, username: &str, password_hash: &str, now: i64) -> Result<i64> {
        let rows = self.sql.query(
            "INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
            &[username.into(), password_hash.into(), now.into()],
        )?;
        rows.first().ok_or_else(|| Error::Storage("insert returned no id".into()))?[0].int()
    }

    fn user_from(row: &SqlRow) -> Result<User> {
        Ok(User {
            id: row[0].int()?,
            username: row[1].text()?,
            password_hash: row[2].text()?,
            disabled: row[3].int()? != 0,
            role: row[4].text()?,
        })
    }

    /// The user with this name.
    pub fn user_by_name(&mut self, username: &str) -> Result<Option<User>> {
        let rows = self
            .sql
            .query("SELECT id, username, password_hash, disabled, role FROM users WHERE username = $1", &[username.into()])?;
        rows.first().map(Self::user_from).transpose()
    }

    /// The user with this id.
    pub fn user_by_id(&mut self, id: i64) -> Result<Option<User>> {
        let rows = self.sql.query("SELECT id, username, password_hash, disabled, role FROM users WHERE id = $1", &[id.into()])?;
        rows.first().map(Self::user_from).transpose()
    }

    /// Replaces a user's password hash.
    pub fn set_password(&mut self, user_id: i64, password_hash: &str) -> Result<bool> {
        Ok(self.sql.execute("UPDATE users SET password_hash = $1 WHERE id = $2", &[password_hash.into(), user_id.into()])? > 0)
    }

    /// Sets a user's role (`assistant` or `admin`).
    pub fn set_role(&mut self, user_id: i64, role: &str) -> Result<bool> {
        Ok(self.sql.execute("UPDATE users SET role = $1 WHERE id = $2", &[role.into(), user_id.into()])? > 0)
    }

    /// Appends an entry to the audit log.
    pub fn audit(&mut self, entry: &AuditEntry) -> Result<()> {
        self.sql.execute(
            "INSERT INTO audit_log (at, kind, actor, address, subject, detail) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                entry.at.into(),
                entry.kind.as_str().into(),
                entry.actor.as_str().into(),
                entry.address.as_str().into(),
                entry.subject.as_str().into(),
                entry.detail.as_str().into(),
            ],
        )?;
        Ok(())
    }

    /// Audit log entries with an id below `before`, newest first, at most `limit`.
    pub fn audit_entries(&mut self, before: i64, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = self.sql.query(
            "SELECT id, at, kind, actor, address, subject, detail FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2",
            &[before.into(), limit.into()],
        )?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row[0].int()?,
                    at: row[1].int()?,
                    kind: row[2].text()?,
                    actor: row[3].text()?,
                    address: row[4].text()?,
                    subject: row[5].text()?,
                    detail: row[6].text()?,
                })
            })
            .collect()
    }

    /// Forgets audit log entries older than `before` (Unix ms); returns how many.
    pub fn delete_audit_before(&mut self, before: i64) -> Result<u64> {
        self.sql.execute("DELETE FROM audit_log WHERE at < $1", &[before.into()])
    }

    /// Disables or enables a user.
    pub fn set_disabled(&mut self, user_id: i64, disabled: bool) -> Result<bool> {
        Ok(self.sql.execute("UPDATE users SET disabled = $1 WHERE id = $2", &[i64::from(disabled).into(), user_id.into()])? > 0)
    }

    /// Adds a village, or renames it if the code exists. Returns whether it was new.
    pub fn upsert_village(&mut self, code: &str, name: &str, now: i64) -> Result<bool> {
        let existed = self.village_name(code)?.is_some();
        self.sql.execute(
            "INSERT INTO villages (code, name, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (code) DO UPDATE SET name = excluded.name",
            &[code.into(), name.into(), now.into()],
        )?;
        Ok(!existed)
    }

    /// The name of the village with this code.
    pub fn village_name(&mut self, code: &str) -> Result<Option<String>> {
        let rows = self.sql.query("SELECT name FROM villages WHERE code = $1", &[code.into()])?;
        rows.first().map(|row| row[0].text()).transpose()
    }

    /// Assigns a village to a user (no effect if already assigned).
    pub fn assign(&mut self, user_id: i64, village_code: &str) -> Result<()> {
        self.sql.execute(
            "INSERT INTO assignments (user_id, village_code) VALUES ($1, $2) ON CONFLICT (user_id, village_code) DO NOTHING",
            &[user_id.into(), village_code.into()],
        )?;
        Ok(())
    }

    /// Removes a village from a user.
    pub fn unassign(&mut self, user_id: i64, village_code: &str) -> Result<()> {
        self.sql
            .execute("DELETE FROM assignments WHERE user_id = $1 AND village_code = $2", &[user_id.into(), village_code.into()])?;
        Ok(())
    }

    /// The scopes (village codes) of a user, sorted.
    pub fn scopes(&mut self, user_id: i64) -> Result<Vec<String>> {
        let rows = self
            .sql
            .query("SELECT village_code FROM assignments WHERE user_id = $1 ORDER BY village_code", &[user_id.into()])?;
        rows.iter().map(|row| row[0].text()).collect()
    }

    // Tokens.

    /// Stores a token's hash.
    pub fn insert_token(&mut self, hash: &str, token: &TokenRow, now: i64) -> Result<()> {
        self.sql.execute(
            "INSERT INTO tokens (hash, kind, session_id, user_id, device_name, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                hash.into(),
                token.kind.as_str().into(),
                token.session_id.as_str().into(),
                token.user_id.into(),
                token.device_name.as_str().into(),
                token.expires_at.into(),
                now.into(),
            ],
        )?;
        Ok(())
    }

    /// The token with this hash.
    pub fn token(&mut self, hash: &str) -> Result<Option<TokenRow>> {
        let rows = self.sql.query(
            "SELECT kind, session_id, user_id, device_name, expires_at FROM tokens WHERE hash = $1",
            &[hash.into()],
        )?;
        rows.first()
            .map(|row| {
                Ok(TokenRow {
                    kind: row[0].text()?,
                    session_id: row[1].text()?,
                    user_id: row[2].int()?,
                    device_name: row[3].text()?,
                    expires_at: row[4].int()?,
                })
            })
            .transpose()
    }

    /// Revokes a sign-in session: its tokens (returned: how many) and the session itself.
    pub fn delete_session(&mut self, session_id: &str) -> Result<u64> {
        self.sql.execute("DELETE FROM sessions WHERE session_id = $1", &[session_id.into()])?;
        self.sql.execute("DELETE FROM tokens WHERE session_id = $1", &[session_id.into()])
    }

    /// Revokes every session and token of a user (on disable or password reset).
    pub fn delete_user_tokens(&mut self, user_id: i64) -> Result<u64> {
        self.sql.execute("DELETE FROM sessions WHERE user_id = $1", &[user_id.into()])?;
        self.sql.execute("DELETE FROM tokens WHERE user_id = $1", &[user_id.into()])
    }

    /// Forgets expired tokens and sessions; returns how many tokens.
    pub fn delete_expired_tokens(&mut self, now: i64) -> Result<u64> {
        self.sql.execute("DELETE FROM sessions WHERE expires_at < $1", &[now.into()])?;
        self.sql.execute("DELETE FROM tokens WHERE expires_at < $1", &[now.into()])
    }

    /// Starts a sign-in session.
    pub fn insert_session(&mut self, session: &SessionRow) -> Result<()> {
        self.sql.execute(
            "INSERT INTO sessions (session_id, user_id, client_id, device_name, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                session.session_id.as_str().into(),
                session.user_id.into(),
                optional_param(session.client_id.as_deref()),
                session.device_name.as_str().into(),
                session.created_at.into(),
                session.expires_at.into(),
            ],
        )?;
        Ok(())
    }

    /// A sign-in session.
    pub fn session(&mut self, session_id: &str) -> Result<Option<SessionRow>> {
        let rows = self.sql.query(
            "SELECT session_id, user_id, client_id, device_name, created_at, expires_at FROM sessions WHERE session_id = $1",
            &[session_id.into()],
        )?;
        rows.first().map(Self::session_from).transpose()
    }

    fn session_from(row: &SqlRow) -> Result<SessionRow> {
        Ok(SessionRow {
            session_id: row[0].text()?,
            user_id: row[1].int()?,
            client_id: optional_text(&row[2])?,
            device_name: row[3].text()?,
            created_at: row[4].int()?,
            expires_at: row[5].int()?,
        })
    }

    /// A user's sessions, oldest first.
    pub fn user_sessions(&mut self, user_id: i64) -> Result<Vec<SessionRow>> {
        let rows = self.sql.query(
            "SELECT session_id, user_id, client_id, device_name, created_at, expires_at FROM sessions
             WHERE user_id = $1 ORDER BY created_at, session_id",
            &[user_id.into()],
        )?;
        rows.iter().map(Self::session_from).collect()
    }

    /// Binds a session to the device it is used from, if it is bound to none yet.
    pub fn bind_session(&mut self, session_id: &str, client_id: &str) -> Result<()> {
        self.sql.execute(
            "UPDATE sessions SET client_id = $1 WHERE session_id = $2 AND client_id IS NULL",
            &[client_id.into(), session_id.into()],
        )?;
        Ok(())
    }

    /// Marks a traded-in refresh token as rotated, kept until `expires_at` so a second use of it
    /// is recognised, and revokes the session's access tokens.
    pub fn rotate_refresh(&mut self, hash: &str, session_id: &str, expires_at: i64) -> Result<()> {
        self.sql.execute("UPDATE tokens SET kind = 'rotated', expires_at = $1 WHERE hash = $2", &[expires_at.into(), hash.into()])?;
        self.sql.execute("DELETE FROM tokens WHERE session_id = $1 AND kind <> 'rotated'", &[session_id.into()])?;
        Ok(())
    }

    // Sync bookkeeping.

    /// A client's owner and the greatest `seq` applied from it.
    pub fn client(&mut self, client_id: &str) -> Result<Option<(i64, i64)>> {
        let rows =
            self.sql.query("SELECT user_id, last_applied_seq FROM sync_clients WHERE client_id = $1", &[client_id.into()])?;
        rows.first().map(|row| Ok((row[0].int()?, row[1].int()?))).transpose()
    }

    /// Records a client's owner and last applied `seq`.
    pub fn put_client(&mut self, client_id: &str, user_id: i64, last_applied_seq: i64, now: i64) -> Result<()> {
        self.sql.execute(
            "INSERT INTO sync_clients (client_id, user_id, last_applied_seq, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (client_id) DO UPDATE SET last_applied_seq = excluded.last_applied_seq, updated_at = excluded.updated_at",
            &[client_id.into(), user_id.into(), last_applied_seq.into(), now.into()],
        )?;
        Ok(())
    }

    /// The stored response of a batch, byte for byte.
    pub fn batch(&mut self, client_id: &str, batch_id: &str) -> Result<Option<String>> {
        let rows = self.sql.query(
            "SELECT response FROM sync_batches WHERE client_id = $1 AND batch_id = $2",
            &[client_id.into(), batch_id.into()],
        )?;
        rows.first().map(|row| row[0].text()).transpose()
    }

    /// The stored response of a batch with the digest of the request it answered, which is
    /// `None` for a batch stored before digests were kept.
    pub fn stored_batch(&mut self, client_id: &str, batch_id: &str) -> Result<Option<StoredBatch>> {
        let rows = self.sql.query(
            "SELECT response, request_hash FROM sync_batches WHERE client_id = $1 AND batch_id = $2",
            &[client_id.into(), batch_id.into()],
        )?;
        rows.first().map(|row| Ok(StoredBatch { response: row[0].text()?, request_hash: optional_text(&row[1])? })).transpose()
    }

    /// Stores a batch's response for exact replay, without the request's digest: such a batch
    /// replays to any body under its id, as batches stored before digests were kept do.
    pub fn put_batch(&mut self, client_id: &str, batch_id: &str, response: &str, now: i64) -> Result<()> {
        self.sql.execute(
            "INSERT INTO sync_batches (client_id, batch_id, response, created_at) VALUES ($1, $2, $3, $4)",
            &[client_id.into(), batch_id.into(), response.into(), now.into()],
        )?;
        Ok(())
    }

    /// Stores a batch's response for exact replay with the digest of its request, so the same
    /// batch id with another body is refused instead of answered with this response.
    pub fn put_batch_with_digest(&mut self, client_id: &str, batch_id: &str, request_hash: &str, response: &str, now: i64) -> Result<()> {
        self.sql.execute(
            "INSERT INTO sync_batches (client_id, batch_id, response, created_at, request_hash) VALUES ($1, $2, $3, $4, $5)",
            &[client_id.into(), batch_id.into(), response.into(), now.into(), request_hash.into()],
        )?;
        Ok(())
    }

    /// Forgets stored batch responses older than `before` (the retention is at least 30 days).
    pub fn delete_batches_before(&mut self, before: i64) -> Result<u64> {
        self.sql.execute("DELETE FROM sync_batches WHERE created_at < $1", &[before.into()])
    }

    // Synced rows.

    /// The index entry of a row.
    pub fn row(&mut self, tbl: &str, row_id: &str) -> Result<Option<RowMeta>> {
        let rows = self.sql.query(
            "SELECT scope_id, deleted, sv FROM sync_rows WHERE tbl = $1 AND row_id = $2",
            &[tbl.into(), row_id.into()],
        )?;
        rows.first()
            .map(|row| Ok(RowMeta { scope_id: row[0].text()?, deleted: row[1].int()? != 0, sv: row[2].int()? }))
            .transpose()
    }

    /// Writes the index entry of a row.
    pub fn put_row(&mut self, tbl: &str, row_id: &str, meta: &RowMeta) -> Result<()> {
        self.sql.execute(
            "INSERT INTO sync_rows (tbl, row_id, scope_id, deleted, sv) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tbl, row_id) DO UPDATE SET scope_id = excluded.scope_id, deleted = excluded.deleted, sv = excluded.sv",
            &[tbl.into(), row_id.into(), meta.scope_id.as_str().into(), i64::from(meta.deleted).into(), meta.sv.into()],
        )?;
        Ok(())
    }

    fn stored_from(row: &[Param]) -> Result<StoredField> {
        let text = row[0].text()?;
        let value = serde_json::from_str(&text).map_err(|error| Error::Storage(format!("stored value is not JSON: {error}")))?;
        Ok(StoredField { value, hlc: row[1].int()?, node: row[2].bytes()?, server_seq: row[3].int()?, actor: row[4].text()? })
    }

    /// The stored version of a field.
    pub fn field(&mut self, tbl: &str, row_id: &str, field: &str) -> Result<Option<StoredField>> {
        let rows = self.sql.query(
            "SELECT value, hlc, node, server_seq, actor FROM sync_fields WHERE tbl = $1 AND row_id = $2 AND field = $3",
            &[tbl.into(), row_id.into(), field.into()],
        )?;
        rows.first().map(|row| Self::stored_from(row)).transpose()
    }

    /// Every stored field of a row, by name.
    pub fn fields(&mut self, tbl: &str, row_id: &str) -> Result<Vec<(String, StoredField)>> {
        let rows = self.sql.query(
            "SELECT value, hlc, node, server_seq, actor, field FROM sync_fields WHERE tbl = $1 AND row_id = $2 ORDER BY field",
            &[tbl.into(), row_id.into()],
        )?;
        rows.iter().map(|row| Ok((row[5].text()?, Self::stored_from(row)?))).collect()
    }

    /// Writes a field's value and version.
    pub fn put_field(&mut self, tbl: &str, row_id: &str, field: &str, stored: &StoredField) -> Result<()> {
        self.sql.execute(
            "INSERT INTO sync_fields (tbl, row_id, field, value, hlc, node, server_seq, actor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (tbl, row_id, field) DO UPDATE SET value = excluded.value, hlc = excluded.hlc, node = excluded.node,
               server_seq = excluded.server_seq, actor = excluded.actor",
            &[
                tbl.into(),
                row_id.into(),
                field.into(),
                stored.value.to_string().into(),
                stored.hlc.into(),
                stored.node.clone().into(),
                stored.server_seq.into(),
                stored.actor.as_str().into(),
            ],
        )?;
        Ok(())
    }

    /// Appends an accepted change to the change log.
    pub fn log_change(&mut self, entry: &ChangeLogEntry<'_>) -> Result<()> {
        self.sql.execute(
            "INSERT INTO sync_changes (server_seq, change_id, client_id, tbl, row_id, field, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                entry.server_seq.into(),
                entry.change_id.into(),
                entry.client_id.into(),
                entry.tbl.into(),
                entry.row_id.into(),
                entry.field.into(),
                entry.created_at.into(),
            ],
        )?;
        Ok(())
    }

    /// Whether the change log holds this change id for this field (looked up through the log's
    /// row index, as the change id alone is not indexed).
    pub fn change_logged(&mut self, tbl: &str, row_id: &str, field: &str, change_id: &str) -> Result<bool> {
        let rows = self.sql.query(
            "SELECT 1 FROM sync_changes WHERE tbl = $1 AND row_id = $2 AND field = $3 AND change_id = $4 LIMIT 1",
            &[tbl.into(), row_id.into(), field.into(), change_id.into()],
        )?;
        Ok(!rows.is_empty())
    }

    /// How many change-log entries carry this change id (at most one, by invariant).
    pub fn change_log_count(&mut self, change_id: &str) -> Result<i64> {
        let rows = self.sql.query("SELECT COUNT(*) FROM sync_changes WHERE change_id = $1", &[change_id.into()])?;
        rows.first().ok_or_else(|| Error::Storage("count returned nothing".into()))?[0].int()
    }

    /// The rows in `scopes` whose latest change is after `after`, in server order, at most
    /// `limit`, each with all its stored fields.
    pub fn changed_rows(&mut self, scopes: &[String], after: i64, limit: i64) -> Result<Vec<ChangedRow>> {
        if scopes.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT r.tbl, r.row_id, r.scope_id, r.deleted, r.sv, f.field, f.value, f.hlc, f.node, f.server_seq, f.actor
             FROM (SELECT tbl, row_id, scope_id, deleted, sv FROM sync_rows
                   WHERE sv > $1 AND scope_id IN ({}) ORDER BY sv LIMIT $2) r
             JOIN sync_fields f ON f.tbl = r.tbl AND f.row_id = r.row_id
             ORDER BY r.sv, f.field",
            in_list(3, scopes.len())
        );
        let mut params = vec![Param::Int(after), Param::Int(limit)];
        params.extend(scopes.iter().map(Param::from));
        let rows = self.sql.query(&sql, &params)?;
        let mut out: Vec<ChangedRow> = Vec::new();
        for row in rows {
            let sv = row[4].int()?;
            let field = row[5].text()?;
            let stored = Self::stored_from(&row[6..11])?;
            match out.last_mut() {
                Some(last) if last.meta.sv == sv => last.fields.push((field, stored)),
                _ => out.push(ChangedRow {
                    tbl: row[0].text()?,
                    row_id: row[1].text()?,
                    meta: RowMeta { scope_id: row[2].text()?, deleted: row[3].int()? != 0, sv },
                    fields: vec![(field, stored)],
                }),
            }
        }
        Ok(out)
    }

    /// Whether a photo row in one of `scopes` names this blob digest.
    pub fn photo_in_scopes(&mut self, sha256: &str, scopes: &[String]) -> Result<bool> {
        if scopes.is_empty() {
            return Ok(false);
        }
        let sql = format!(
            "SELECT 1 FROM sync_fields f JOIN sync_rows r ON r.tbl = f.tbl AND r.row_id = f.row_id
             WHERE f.tbl = 'photos' AND f.field = 'sha256' AND f.value = $1 AND r.scope_id IN ({}) LIMIT 1",
            in_list(2, scopes.len())
        );
        let mut params = vec![Param::Text(serde_json::Value::String(sha256.to_owned()).to_string())];
        params.extend(scopes.iter().map(Param::from));
        Ok(!self.sql.query(&sql, &params)?.is_empty())
    }

    // History pruning.

    /// The greatest sequence number of a change accepted before `before` (Unix ms), by the
    /// change log's server times; 0 when there is none.
    pub fn last_seq_before(&mut self, before: i64) -> Result<i64> {
        let rows = self.sql.query("SELECT MAX(server_seq) FROM sync_changes WHERE created_at < $1", &[before.into()])?;
        Ok(rows.first().map(|row| optional_int(&row[0])).transpose()?.flatten().unwrap_or(0))
    }

    /// Purges tombstoned rows whose latest change is at or below `horizon_seq`: their change-log
    /// entries, their fields and their index entries. Returns (rows, change-log entries) purged.
    pub fn purge_tombstones(&mut self, horizon_seq: i64) -> Result<(u64, u64)> {
        let purged = "SELECT 1 FROM sync_rows r WHERE r.deleted = 1 AND r.sv <= $1";
        let changes = self.sql.execute(
            &format!("DELETE FROM sync_changes WHERE EXISTS ({purged} AND r.tbl = sync_changes.tbl AND r.row_id = sync_changes.row_id)"),
            &[horizon_seq.into()],
        )?;
        self.sql.execute(
            &format!("DELETE FROM sync_fields WHERE EXISTS ({purged} AND r.tbl = sync_fields.tbl AND r.row_id = sync_fields.row_id)"),
            &[horizon_seq.into()],
        )?;
        let rows = self.sql.execute("DELETE FROM sync_rows WHERE deleted = 1 AND sv <= $1", &[horizon_seq.into()])?;
        Ok((rows, changes))
    }

    /// The name of this server's history (its epoch), carried in every pull cursor.
    pub fn epoch(&mut self) -> Result<String> {
        let rows = self.sql.query("SELECT epoch FROM sync_epoch WHERE id = 1", &[])?;
        rows.first().ok_or_else(|| Error::Storage("sync_epoch is empty".into()))?[0].text()
    }

    /// Gives the history a new epoch (after a restore from a backup): every cursor issued before
    /// names the old one, so its device re-sends what this history lacks.
    pub fn set_epoch(&mut self, epoch: &str, now: i64) -> Result<()> {
        self.sql.execute("UPDATE sync_epoch SET epoch = $1, started_at = $2 WHERE id = 1", &[epoch.into(), now.into()])?;
        Ok(())
    }

    /// Records a pruning run.
    pub fn record_prune(&mut self, prune: &Prune) -> Result<()> {
        self.sql.execute(
            "INSERT INTO sync_prunes (horizon_ms, horizon_seq, rows_purged, changes_purged, pruned_at) VALUES ($1, $2, $3, $4, $5)",
            &[
                prune.horizon_ms.into(),
                prune.horizon_seq.into(),
                (prune.rows_purged as i64).into(),
                (prune.changes_purged as i64).into(),
                prune.pruned_at.into(),
            ],
        )?;
        Ok(())
    }

    /// The history horizon: a cursor below this sequence number may have missed a purged
    /// tombstone. 0 when nothing was ever pruned.
    pub fn history_horizon(&mut self) -> Result<i64> {
        let rows = self.sql.query("SELECT MAX(horizon_seq) FROM sync_prunes", &[])?;
        Ok(rows.first().map(|row| optional_int(&row[0])).transpose()?.flatten().unwrap_or(0))
    }

    // Listing submissions.

    /// Records a submission unless its key is known; returns whether it was new.
    pub fn insert_submission(&mut self, submission: &SubmissionRow) -> Result<bool> {
        let changed = self.sql.execute(
            "INSERT INTO listing_submissions (submission_key, listing_id, scope_id, user_id, client_id, submitted_at,
               moderation_status, moderation_reason, platform_item_id, moderated_by, moderated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (submission_key) DO NOTHING",
            &[
                submission.submission_key.as_str().into(),
                submission.listing_id.as_str().into(),
                submission.scope_id.as_str().into(),
                submission.user_id.into(),
                submission.client_id.as_str().into(),
                submission.submitted_at.into(),
                submission.moderation_status.as_str().into(),
                optional_param(submission.moderation_reason.as_deref()),
                optional_param(submission.platform_item_id.as_deref()),
                optional_param(submission.moderated_by.as_deref()),
                submission.moderated_at.map(Param::Int).unwrap_or(Param::Null),
            ],
        )?;
        Ok(changed > 0)
    }

    /// The submissions of a listing, oldest first.
    pub fn submissions(&mut self, listing_id: &str) -> Result<Vec<SubmissionRow>> {
        let rows = self.sql.query(
            "SELECT submission_key, listing_id, scope_id, user_id, client_id, submitted_at, moderation_status,
               moderation_reason, platform_item_id, moderated_by, moderated_at
             FROM listing_submissions WHERE listing_id = $1 ORDER BY submitted_at, submission_key",
            &[listing_id.into()],
        )?;
        rows.iter()
            .map(|row| {
                Ok(SubmissionRow {
                    submission_key: row[0].text()?,
                    listing_id: row[1].text()?,
                    scope_id: row[2].text()?,
                    user_id: row[3].int()?,
                    client_id: row[4].text()?,
                    submitted_at: row[5].int()?,
                    moderation_status: row[6].text()?,
                    moderation_reason: optional_text(&row[7])?,
                    platform_item_id: optional_text(&row[8])?,
                    moderated_by: optional_text(&row[9])?,
                    moderated_at: optional_int(&row[10])?,
                })
            })
            .collect()
    }

    /// Gives a verdict on the latest submission of a listing; returns whether there was one.
    pub fn moderate_submission(&mut self, listing_id: &str, verdict: &SubmissionVerdict<'_>) -> Result<bool> {
        let latest = self.sql.query(
            "SELECT submission_key FROM listing_submissions WHERE listing_id = $1
             ORDER BY submitted_at DESC, submission_key DESC LIMIT 1",
            &[listing_id.into()],
        )?;
        let Some(key) = latest.first().map(|row| row[0].text()).transpose()? else { return Ok(false) };
        self.sql.execute(
            "UPDATE listing_submissions SET moderation_status = COALESCE($1, moderation_status),
               moderation_reason = COALESCE($2, moderation_reason), platform_item_id = COALESCE($3, platform_item_id),
               moderated_by = $4, moderated_at = $5
             WHERE submission_key = $6",
            &[
                optional_param(verdict.moderation_status),
                optional_param(verdict.moderation_reason),
                optional_param(verdict.platform_item_id),
                verdict.moderated_by.into(),
                verdict.moderated_at.into(),
                key.into(),
            ],
        )?;
        Ok(true)
    }

    // Blobs.

    /// A blob's metadata.
    pub fn blob(&mut self, sha256: &str) -> Result<Option<BlobMeta>> {
        let rows = self.sql.query("SELECT sha256, size, mime, uploaded_by FROM blobs WHERE sha256 = $1", &[sha256.into()])?;
        rows.first()
            .map(|row| Ok(BlobMeta { sha256: row[0].text()?, size: row[1].int()?, mime: row[2].text()?, uploaded_by: row[3].int()? }))
            .transpose()
    }

    /// Records a finished blob (no effect if it exists).
    pub fn put_blob(&mut self, blob: &BlobMeta, now: i64) -> Result<()> {
        self.sql.execute(
            "INSERT INTO blobs (sha256, size, mime, uploaded_by, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sha256) DO NOTHING",
            &[blob.sha256.as_str().into(), blob.size.into(), blob.mime.as_str().into(), blob.uploaded_by.into(), now.into()],
        )?;
        Ok(())
    }

    /// Makes a blob readable in a village (no effect if it is already).
    pub fn grant_blob(&mut self, sha256: &str, scope_id: &str, now: i64) -> Result<()> {
        self.sql.execute(
            "INSERT INTO blob_scopes (sha256, scope_id, granted_at) VALUES ($1, $2, $3) ON CONFLICT (sha256, scope_id) DO NOTHING",
            &[sha256.into(), scope_id.into(), now.into()],
        )?;
        Ok(())
    }

    /// A blob the user may read: one they uploaded, or one readable in one of `scopes`. Any
    /// other blob is answered as missing, so its existence and size stay hidden.
    pub fn readable_blob(&mut self, sha256: &str, user_id: i64, scopes: &[String]) -> Result<Option<BlobMeta>> {
        let Some(blob) = self.blob(sha256)? else { return Ok(None) };
        if blob.uploaded_by == user_id {
            return Ok(Some(blob));
        }
        if scopes.is_empty() {
            return Ok(None);
        }
        let sql = format!("SELECT 1 FROM blob_scopes WHERE sha256 = $1 AND scope_id IN ({}) LIMIT 1", in_list(2, scopes.len()));
        let mut params = vec![Param::from(sha256)];
        params.extend(scopes.iter().map(Param::from));
        Ok((!self.sql.query(&sql, &params)?.is_empty()).then_some(blob))
    }

    /// An upload in progress.
    pub fn upload(&mut self, id: &str) -> Result<Option<Upload>> {
        let rows = self
            .sql
            .query("SELECT id, sha256, size, mime, user_id, upload_offset FROM uploads WHERE id = $1", &[id.into()])?;
        rows.first()
            .map(|row| {
                Ok(Upload {
                    id: row[0].text()?,
                    sha256: row[1].text()?,
                    size: row[2].int()?,
                    mime: row[3].text()?,
                    user_id: row[4].int()?,
                    offset: row[5].int()?,
                })
            })
            .transpose()
    }

    /// Starts an upload.
    pub fn put_upload(&mut self, upload: &Upload, now: i64) -> Result<()> {
        self.sql.execute(
            "INSERT INTO uploads (id, sha256, size, mime, user_id, upload_offset, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                upload.id.as_str().into(),
                upload.sha256.as_str().into(),
                upload.size.into(),
                upload.mime.as_str().into(),
                upload.user_id.into(),
                upload.offset.into(),
                now.into(),
            ],
        )?;
        Ok(())
    }

    /// Moves an upload's offset, only if it is still at `from` (so two racing chunks cannot
    /// both succeed).
    pub fn advance_upload(&mut self, id: &str, from: i64, to: i64) -> Result<bool> {
        Ok(self.sql.execute(
            "UPDATE uploads SET upload_offset = $1 WHERE id = $2 AND upload_offset = $3",
            &[to.into(), id.into(), from.into()],
        )? == 1)
    }

    /// The ids of uploads started before `before` and never finished.
    pub fn stale_uploads(&mut self, before: i64) -> Result<Vec<String>> {
        let rows = self.sql.query("SELECT id FROM uploads WHERE created_at < $1 ORDER BY id", &[before.into()])?;
        rows.iter().map(|row| row[0].text()).collect()
    }

    /// Forgets an upload.
    pub fn delete_upload(&mut self, id: &str) -> Result<()> {
        self.sql.execute("DELETE FROM uploads WHERE id = $1", &[id.into()])?;
        Ok(())
    }
}
