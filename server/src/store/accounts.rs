//! Accounts: users and their roles, villages and assignments, sign-in sessions, bearer tokens
//! (hashes only) and the audit log.

use super::{optional_int, optional_param, optional_text, SqlRow, Tx};
use crate::error::{Error, Result};

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
    /// `sign_in`, `sign_in_failed`, `sign_in_limited`, `admin_action` or `scope_change`.
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

impl Tx<'_> {
    // Accounts.

    /// Creates a user and returns its id; [`Error::Duplicate`] if the name is taken.
    pub fn create_user(&mut self, username: &str, password_hash: &str, now: i64) -> Result<i64> {
        let rows = self.sql.query(
            "INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
            &[username.into(), password_hash.into(), now.into()],
        )?;
        rows.first().ok_or(Error::MissingRow("insert into users"))?[0].int()
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

    /// Everything a request's token check needs, in one query: the token, its account, its
    /// session and the account's villages. Every request of an assistant makes this check, so
    /// it is one round trip to the database rather than four.
    pub fn token_caller(&mut self, hash: &str) -> Result<Option<TokenCaller>> {
        let rows = self.sql.query(
            "SELECT t.kind, t.expires_at, t.user_id, u.disabled, s.session_id, s.client_id, a.village_code
             FROM tokens t
             LEFT JOIN users u ON u.id = t.user_id
             LEFT JOIN sessions s ON s.session_id = t.session_id
             LEFT JOIN assignments a ON a.user_id = t.user_id
             WHERE t.hash = $1
             ORDER BY a.village_code",
            &[hash.into()],
        )?;
        let Some(first) = rows.first() else { return Ok(None) };
        let session_id = optional_text(&first[4])?;
        let session = match session_id {
            Some(session_id) => Some((session_id, optional_text(&first[5])?)),
            None => None,
        };
        let mut scopes = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(village) = optional_text(&row[6])? {
                scopes.push(village);
            }
        }
        Ok(Some(TokenCaller {
            kind: first[0].text()?,
            expires_at: first[1].int()?,
            user_id: first[2].int()?,
            disabled: optional_int(&first[3])?.map(|disabled| disabled != 0),
            session,
            scopes,
        }))
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
}

/// What one query tells of an access token ([`Tx::token_caller`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCaller {
    /// `access` or `refresh`.
    pub kind: String,
    /// When the token expires (ms since the epoch).
    pub expires_at: i64,
    /// The account the token was issued to.
    pub user_id: i64,
    /// Whether the account is disabled; `None` when the account no longer exists.
    pub disabled: Option<bool>,
    /// The token's session id and the device it is bound to; `None` when the session was revoked.
    pub session: Option<(String, Option<String>)>,
    /// The account's villages, in order.
    pub scopes: Vec<String>,
}
