//! Accounts and bearer tokens (docs/sync.md section 10): Argon2id password hashes checked a
//! bounded number at a time ([`PasswordGate`]), opaque random tokens of which only SHA-256
//! hashes are stored, sessions that detect a reused refresh token and keep to their device and
//! their lifetime, admins, and the limit on failed sign-ins per account and address
//! ([`SignInLimiter`]).
//!
//! The parts: `passwords` (hashing and the gate), `tokens` (tokens and sessions), `limits` (the
//! sign-in limiter); this module establishes who calls with a token.

mod limits;
mod passwords;
mod tokens;

pub use limits::{retry_after_seconds, Attempt, Refusal, SignInLimiter, SignInPolicy};
pub use passwords::{dummy_hash, hash_password, verify_password, GatePass, PasswordCost, PasswordGate, BUSY_RETRY_SECONDS};
pub use tokens::{issue_pair, new_token, renew_session, start_session, token_hash, TokenLifetimes};

use crate::error::{Error, Result};
use crate::store::Tx;

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(Error::Randomness)?;
    Ok(bytes)
}

/// Who a request comes from, as established from its bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user.
    pub user_id: i64,
    /// The villages the user may read and write, sorted; from the assignment table only.
    pub scopes: Vec<String>,
    /// The sign-in session of the token.
    pub session_id: String,
    /// The device (client id) the session is bound to, once known.
    pub client_id: Option<String>,
}

impl Caller {
    /// The actor recorded on the user's writes.
    pub fn actor(&self) -> String {
        format!("assistant:{}", self.user_id)
    }

    /// Whether the scope is one of the caller's.
    pub fn may_use(&self, scope: &str) -> bool {
        self.scopes.binary_search_by(|own| own.as_str().cmp(scope)).is_ok()
    }
}

/// Looks up the caller of an access token: unknown, expired, revoked or disabled → 401.
pub fn authenticate(tx: &mut Tx<'_>, token: &str, now: i64) -> Result<Caller> {
    let row = tx.token_caller(&token_hash(token))?.filter(|row| row.kind == "access");
    let Some(row) = row else { return Err(Error::unauthorized("the access token is unknown or revoked; sign in again")) };
    if row.expires_at <= now {
        return Err(Error::unauthorized("the access token has expired; refresh it or sign in again"));
    }
    if row.disabled != Some(false) {
        return Err(Error::unauthorized("the account is disabled"));
    }
    let Some((session_id, client_id)) = row.session else { return Err(Error::unauthorized("the session was revoked; sign in again")) };
    Ok(Caller { user_id: row.user_id, scopes: row.scopes, session_id, client_id })
}

/// The role of the platform's staff: their access tokens open the admin endpoints.
pub const ADMIN_ROLE: &str = "admin";

/// The shortest bootstrap admin token accepted: a token this long and random cannot be guessed.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// Refuses a bootstrap admin token shorter than [`MIN_ADMIN_TOKEN_CHARS`].
pub fn check_admin_token(token: &str) -> Result<()> {
    if token.chars().count() >= MIN_ADMIN_TOKEN_CHARS {
        Ok(())
    } else {
        Err(Error::bad_request(
            "weak_admin_token",
            format!("the bootstrap admin token must have at least {MIN_ADMIN_TOKEN_CHARS} characters; make one with `head -c 32 /dev/urandom | base64`"),
        ))
    }
}

/// The admin an access token belongs to: `Some(user name)` when it is a live access token of an
/// enabled account with the admin role.
pub fn authenticate_admin(tx: &mut Tx<'_>, token: &str, now: i64) -> Result<Option<String>> {
    let Some(row) = tx.token(&token_hash(token))?.filter(|row| row.kind == "access" && row.expires_at > now) else { return Ok(None) };
    let user = tx.user_by_id(row.user_id)?.filter(|user| !user.disabled && user.role == ADMIN_ROLE);
    Ok(user.map(|user| user.username))
}
