//! The sync engine's durable state in `sync_state`: the account, its tokens, the server, the pull
//! cursor, the last acknowledged outbox sequence and the clock correction. Every value is written
//! inside the transaction whose effect it records.

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;


/// Key of the server's base URL.
pub const SERVER_URL: &str = "server_url";
/// Key of the access token.
pub const ACCESS_TOKEN: &str = "access_token";
/// Key of the access token's expiry (Unix milliseconds).
pub const ACCESS_EXPIRES_AT: &str = "access_expires_at";
/// Key of the refresh token.
pub const REFRESH_TOKEN: &str = "refresh_token";
/// Key of the signed-in assistant's id.
pub const ASSISTANT_ID: &str = "assistant_id";
/// Key of the signed-in user name.
pub const USERNAME: &str = "username";
/// Key of the assistant's scopes, a JSON list of village codes.
pub const SCOPES: &str = "scopes";
/// Key of the opaque pull cursor; absent before the first snapshot and after a reset.
pub const PULL_CURSOR: &str = "pull_cursor";
/// Key set while a snapshot the server asked for (a reset) is under way; its rows are noted in
/// `sync_snapshot_seen` so that the rows it no longer holds can be dropped when it ends.
pub const SNAPSHOT_SWEEP: &str = "snapshot_sweep";
/// Key set while a snapshot after `reset: server_restored` is under way (it outlives a further
/// reset in the middle, since the server still lacks what the device holds): the stamps the
/// snapshot brings are noted in `sync_snapshot_fields`, and when it ends the device re-sends what
/// the server lacks instead of dropping the rows the snapshot did not bring.
pub const SNAPSHOT_RESEND: &str = "snapshot_resend";
/// Key of the greatest outbox `seq` the server has confirmed applying.
pub const LAST_ACKED_SEQ: &str = "last_acked_seq";
/// Key of the clock correction against the server, in milliseconds.
pub const CLOCK_OFFSET_MS: &str = "clock_offset_ms";
/// Key of the time (device wall clock, Unix milliseconds) of the last complete sync.
pub const LAST_SYNC_AT: &str = "last_sync_at";
/// Key of the message of the last failed sync, cleared by a complete one.
pub const LAST_ERROR: &str = "last_error";

/// Reads a text value.
pub fn text(conn: &Connection, key: &str) -> crate::Result<Option<String>> {
    let value: Option<SqlValue> = conn.query_row("SELECT v FROM sync_state WHERE k = ?1", [key], |row| row.get(0)).optional()?;
    Ok(match value {
        Some(SqlValue::Text(text)) => Some(text),
        Some(SqlValue::Integer(number)) => Some(number.to_string()),
        Some(SqlValue::Blob(bytes)) => String::from_utf8(bytes).ok(),
        _ => None,
    })
}

/// Reads an integer value.
pub fn integer(conn: &Connection, key: &str) -> crate::Result<Option<i64>> {
    let value: Option<SqlValue> = conn.query_row("SELECT v FROM sync_state WHERE k = ?1", [key], |row| row.get(0)).optional()?;
    Ok(match value {
        Some(SqlValue::Integer(number)) => Some(number),
        Some(SqlValue::Text(text)) => text.parse().ok(),
        _ => None,
    })
}

/// Writes a value.
pub fn set(conn: &Connection, key: &str, value: impl rusqlite::ToSql) -> crate::Result<()> {
    conn.prepare_cached("INSERT INTO sync_state (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v")?
        .execute(params![key, value])?;
    Ok(())
}

/// Removes a value.
pub fn remove(conn: &Connection, key: &str) -> crate::Result<()> {
    conn.execute("DELETE FROM sync_state WHERE k = ?1", [key])?;
    Ok(())
}

/// The account this device signed in with, kept so the assistant works offline after the first
/// sign-in, even once the access token has expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// The server's base URL.
    pub server_url: String,
    /// The user name signed in with.
    pub username: String,
    /// The assistant's id on the server.
    pub assistant_id: String,
    /// The scopes (village codes) the assistant works in.
    pub scopes: Vec<String>,
    /// When the access token expires (Unix milliseconds); sync renews it with the refresh token.
    pub access_expires_at: i64,
}

/// The signed-in account, if any.
pub fn account(conn: &Connection) -> crate::Result<Option<Account>> {
    let Some(assistant_id) = text(conn, ASSISTANT_ID)? else { return Ok(None) };
    let scopes = text(conn, SCOPES)?.map(|json| serde_json::from_str(&json)).transpose()?.unwrap_or_default();
    Ok(Some(Account {
        server_url: text(conn, SERVER_URL)?.unwrap_or_default(),
        username: text(conn, USERNAME)?.unwrap_or_default(),
        assistant_id,
        scopes,
        access_expires_at: integer(conn, ACCESS_EXPIRES_AT)?.unwrap_or(0),
    }))
}

/// The tokens kept for sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// The bearer token.
    pub access_token: String,
    /// Its expiry (Unix milliseconds).
    pub expires_at: i64,
    /// The token that renews it.
    pub refresh_token: String,
}

/// The kept tokens, if signed in.
pub fn tokens(conn: &Connection) -> crate::Result<Option<Tokens>> {
    let (Some(access_token), Some(refresh_token)) = (text(conn, ACCESS_TOKEN)?, text(conn, REFRESH_TOKEN)?) else {
        return Ok(None);
    };
    Ok(Some(Tokens { access_token, refresh_token, expires_at: integer(conn, ACCESS_EXPIRES_AT)?.unwrap_or(0) }))
}

/// Records a sign-in or a renewal.
pub fn save_tokens(conn: &Connection, response: &crate::sync::wire::TokenResponse) -> crate::Result<()> {
    set(conn, ACCESS_TOKEN, &response.access_token)?;
    set(conn, ACCESS_EXPIRES_AT, response.expires_at)?;
    set(conn, REFRESH_TOKEN, &response.refresh_token)?;
    set(conn, ASSISTANT_ID, &response.assistant_id)?;
    set(conn, SCOPES, serde_json::to_string(&response.scopes)?)?;
    Ok(())
}

/// Forgets the tokens (sign-out), keeping the account's identity, the data and the outbox.
pub fn forget_tokens(conn: &Connection) -> crate::Result<()> {
    remove(conn, ACCESS_TOKEN)?;
    remove(conn, REFRESH_TOKEN)?;
    remove(conn, ACCESS_EXPIRES_AT)?;
    Ok(())
}
