//! Bearer tokens and sign-in sessions: opaque random tokens stored as SHA-256 hashes, sessions
//! bound to their device with an absolute lifetime and a cap per account, and refresh tokens
//! rotated with reuse detection.

use base64::Engine;
use furrow_contract::wire::TokenResponse;
use sha2::{Digest, Sha256};

use super::random_bytes;
use crate::error::{Error, Result};
use crate::store::{SessionRow, TokenRow, Tx};

/// The hash under which a bearer token is stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new opaque bearer token: 32 random bytes, base64url.
pub fn new_token() -> Result<String> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// How long tokens and sessions live.
#[derive(Debug, Clone, Copy)]
pub struct TokenLifetimes {
    /// Access token lifetime in milliseconds.
    pub access_ms: i64,
    /// Refresh token lifetime in milliseconds; each refresh slides it on.
    pub refresh_ms: i64,
    /// A session's absolute lifetime in milliseconds from its sign-in, however often it is
    /// refreshed.
    pub session_ms: i64,
    /// The most sessions an account holds; a new sign-in beyond it ends the oldest.
    pub max_sessions: usize,
}

impl Default for TokenLifetimes {
    /// Access tokens an hour, refresh tokens 30 days, sessions 90 days, ten sessions an account.
    fn default() -> Self {
        Self { access_ms: 60 * 60 * 1000, refresh_ms: 30 * 24 * 60 * 60 * 1000, session_ms: 90 * 24 * 60 * 60 * 1000, max_sessions: 10 }
    }
}

/// Whether `text` is a client id (a device's node id, a UUID).
fn client_id(text: Option<&str>) -> Option<String> {
    text.and_then(|text| uuid::Uuid::parse_str(text).ok()).map(|id| id.to_string())
}

/// Starts a session for a user who signed in from the device `client` (its `X-Client-Id`, when
/// it sent one) and issues its first pair of tokens. An account already holding the most
/// sessions loses its oldest ones.
pub fn start_session(
    tx: &mut Tx<'_>,
    user_id: i64,
    client: Option<&str>,
    device_name: &str,
    lifetimes: TokenLifetimes,
    now: i64,
) -> Result<TokenResponse> {
    let sessions = tx.user_sessions(user_id)?;
    let surplus = (sessions.len() + 1).saturating_sub(lifetimes.max_sessions.max(1));
    for old in sessions.iter().take(surplus) {
        tx.delete_session(&old.session_id)?;
    }
    let session = SessionRow {
        session_id: uuid::Uuid::new_v4().to_string(),
        user_id,
        client_id: client_id(client),
        device_name: device_name.to_owned(),
        created_at: now,
        expires_at: now + lifetimes.session_ms,
    };
    tx.insert_session(&session)?;
    issue_pair(tx, &session, lifetimes, now)
}

/// Trades a refresh token for a new pair. The token traded in is kept as rotated: presenting it
/// again (a stolen copy, used after the device refreshed, or the device after the thief did)
/// revokes the whole session, and so does a refresh from another device than the session's. A
/// session ends 90 days after its sign-in however often it is refreshed.
pub fn renew_session(
    tx: &mut Tx<'_>,
    refresh_token: &str,
    client: Option<&str>,
    lifetimes: TokenLifetimes,
    now: i64,
) -> Result<std::result::Result<TokenResponse, Error>> {
    let signed_out = || Error::unauthorized("the refresh token is unknown, used, revoked or expired; sign in again");
    let hash = token_hash(refresh_token);
    let Some(row) = tx.token(&hash)? else { return Ok(Err(signed_out())) };
    if row.kind == "rotated" {
        tx.delete_session(&row.session_id)?;
        return Ok(Err(Error::unauthorized("this refresh token was already used once; the session is revoked for safety, sign in again")));
    }
    if row.kind != "refresh" || row.expires_at <= now {
        return Ok(Err(signed_out()));
    }
    let Some(session) = tx.session(&row.session_id)?.filter(|session| session.expires_at > now) else {
        tx.delete_session(&row.session_id)?;
        return Ok(Err(Error::unauthorized("the session has reached its longest life; sign in again")));
    };
    if session.client_id.is_some() && session.client_id != client_id(client) {
        tx.delete_session(&row.session_id)?;
        return Ok(Err(Error::unauthorized("the refresh token belongs to another device; the session is revoked, sign in again")));
    }
    if tx.user_by_id(row.user_id)?.is_none_or(|user| user.disabled) {
        return Ok(Err(Error::unauthorized("the account is disabled")));
    }
    tx.rotate_refresh(&hash, &session.session_id, session.expires_at)?;
    issue_pair(tx, &session, lifetimes, now).map(Ok)
}

/// Issues an access and a refresh token for a session and stores their hashes; the refresh
/// token never outlives the session.
pub fn issue_pair(tx: &mut Tx<'_>, session: &SessionRow, lifetimes: TokenLifetimes, now: i64) -> Result<TokenResponse> {
    let (user_id, session_id, device_name) = (session.user_id, session.session_id.as_str(), session.device_name.as_str());
    let access = new_token()?;
    let refresh = new_token()?;
    let expires_at = (now + lifetimes.access_ms).min(session.expires_at);
    let row = |kind: &str, expires_at: i64| TokenRow {
        kind: kind.to_owned(),
        session_id: session_id.to_owned(),
        user_id,
        device_name: device_name.to_owned(),
        expires_at,
    };
    tx.insert_token(&token_hash(&access), &row("access", expires_at), now)?;
    tx.insert_token(&token_hash(&refresh), &row("refresh", (now + lifetimes.refresh_ms).min(session.expires_at)), now)?;
    Ok(TokenResponse {
        access_token: access,
        expires_at,
        refresh_token: refresh,
        assistant_id: user_id.to_string(),
        scopes: tx.scopes(user_id)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_stored_as_hashes() {
        let (first, second) = (new_token().expect("token"), new_token().expect("token"));
        assert_ne!(first, second);
        assert_eq!(first.len(), 43);
        assert_eq!(token_hash(&first).len(), 64);
        assert_ne!(token_hash(&first), first);
    }
}
