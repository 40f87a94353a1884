//! Accounts and bearer tokens (sync-design.md section 10): Argon2id password hashes, opaque
//! random tokens of which only SHA-256 hashes are stored, and a limit on repeated failed
//! sign-ins per account and per address.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use furrow::sync::wire::TokenResponse;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::store::{TokenRow, Tx};

/// The cost of password hashing.
#[derive(Debug, Clone, Copy)]
pub struct PasswordCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
}

impl PasswordCost {
    /// OWASP's recommended Argon2id setting (19 MiB, 2 passes), used in production.
    pub const STANDARD: Self = Self { memory_kib: 19 * 1024, iterations: 2 };
    /// A deliberately cheap setting for tests, which create many accounts.
    pub const CHEAP_FOR_TESTS: Self = Self { memory_kib: 64, iterations: 1 };

    fn hasher(self) -> Result<Argon2<'static>> {
        let params = Params::new(self.memory_kib, self.iterations, 1, None)
            .map_err(|error| Error::Storage(format!("bad Argon2 parameters: {error}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|error| Error::Storage(format!("no randomness available: {error}")))?;
    Ok(bytes)
}

/// Hashes a password with Argon2id and a random salt, in PHC string form.
pub fn hash_password(password: &str, cost: PasswordCost) -> Result<String> {
    let salt_bytes: [u8; 16] = random_bytes()?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|error| Error::Storage(format!("salt: {error}")))?;
    let hash = cost
        .hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|error| Error::Storage(format!("hashing failed: {error}")))?;
    Ok(hash.to_string())
}

/// Whether `password` matches a stored PHC hash (the hash's own parameters are used).
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// The hash under which a bearer token is stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new opaque bearer token: 32 random bytes, base64url.
pub fn new_token() -> Result<String> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

/// How long tokens live.
#[derive(Debug, Clone, Copy)]
pub struct TokenLifetimes {
    /// Access token lifetime in milliseconds.
    pub access_ms: i64,
    /// Refresh token lifetime in milliseconds.
    pub refresh_ms: i64,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self { access_ms: 60 * 60 * 1000, refresh_ms: 30 * 24 * 60 * 60 * 1000 }
    }
}

/// Issues an access and a refresh token for a session and stores their hashes.
pub fn issue_pair(
    tx: &mut Tx<'_>,
    user_id: i64,
    session_id: &str,
    device_name: &str,
    lifetimes: TokenLifetimes,
    now: i64,
) -> Result<TokenResponse> {
    let access = new_token()?;
    let refresh = new_token()?;
    let expires_at = now + lifetimes.access_ms;
    let row = |kind: &str, expires_at: i64| TokenRow {
        kind: kind.to_owned(),
        session_id: session_id.to_owned(),
        user_id,
        device_name: device_name.to_owned(),
        expires_at,
    };
    tx.insert_token(&token_hash(&access), &row("access", expires_at), now)?;
    tx.insert_token(&token_hash(&refresh), &row("refresh", now + lifetimes.refresh_ms), now)?;
    Ok(TokenResponse {
        access_token: access,
        expires_at,
        refresh_token: refresh,
        assistant_id: user_id.to_string(),
        scopes: tx.scopes(user_id)?,
    })
}

/// Who a request comes from, as established from its bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user.
    pub user_id: i64,
    /// The villages the user may read and write, sorted; from the assignment table only.
    pub scopes: Vec<String>,
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
    let row = tx.token(&token_hash(token))?.filter(|row| row.kind == "access");
    let Some(row) = row else { return Err(Error::unauthorized("the access token is unknown or revoked; sign in again")) };
    if row.expires_at <= now {
        return Err(Error::unauthorized("the access token has expired; refresh it or sign in again"));
    }
    let user = tx.user_by_id(row.user_id)?.filter(|user| !user.disabled);
    let Some(user) = user else { return Err(Error::unauthorized("the account is disabled")) };
    Ok(Caller { user_id: user.id, scopes: tx.scopes(user.id)? })
}

/// Counts failed sign-ins per key (an account or an address) and locks a key out for a while
/// after too many, so passwords cannot be guessed at speed.
pub struct RateLimiter {
    max_failures: u32,
    window: Duration,
    lockout: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    failures: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

impl RateLimiter {
    /// A limiter locking a key for `lockout` after `max_failures` failures within `window`.
    pub fn new(max_failures: u32, window: Duration, lockout: Duration) -> Self {
        Self { max_failures, window, lockout, entries: Mutex::new(HashMap::new()) }
    }

    /// Seconds until the key may try again, if it is locked out.
    pub fn locked(&self, key: &str) -> Option<u64> {
        let now = Instant::now();
        let entries = self.entries.lock().ok()?;
        let until = entries.get(key)?.locked_until?;
        (until > now).then(|| (until - now).as_secs().max(1))
    }

    /// Records a failure.
    pub fn fail(&self, key: &str) {
        let now = Instant::now();
        let Ok(mut entries) = self.entries.lock() else { return };
        // Forget stale entries now and then so the map cannot grow without bound.
        if entries.len() > 10_000 {
            let window = self.window;
            entries.retain(|_, entry| now.duration_since(entry.first) < window || entry.locked_until.is_some_and(|until| until > now));
        }
        let entry = entries.entry(key.to_owned()).or_insert(Entry { failures: 0, first: now, locked_until: None });
        if now.duration_since(entry.first) > self.window || entry.locked_until.is_some_and(|until| until <= now) {
            *entry = Entry { failures: 0, first: now, locked_until: None };
        }
        entry.failures += 1;
        if entry.failures >= self.max_failures {
            entry.locked_until = Some(now + self.lockout);
        }
    }

    /// Clears a key's failures after a success.
    pub fn succeed(&self, key: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }
}

impl Default for RateLimiter {
    /// Five failures within ten minutes lock the key for a minute.
    fn default() -> Self {
        Self::new(5, Duration::from_secs(600), Duration::from_secs(60))
    }
}

/// The hash verified when the user name is unknown, so an unknown name takes as long as a wrong
/// password and the answer reveals nothing.
pub fn dummy_hash(cost: PasswordCost) -> Result<String> {
    hash_password("furrow-no-such-user", cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse", PasswordCost::CHEAP_FOR_TESTS).expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsf", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_are_random_and_stored_as_hashes() {
        let (first, second) = (new_token().expect("token"), new_token().expect("token"));
        assert_ne!(first, second);
        assert_eq!(first.len(), 43);
        assert_eq!(token_hash(&first).len(), 64);
        assert_ne!(token_hash(&first), first);
    }

    #[test]
    fn the_limiter_locks_after_the_last_allowed_failure_and_forgets_on_success() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60), Duration::from_secs(60));
        limiter.fail("key");
        limiter.fail("key");
        assert_eq!(limiter.locked("key"), None);
        limiter.fail("key");
        assert!(limiter.locked("key").is_some_and(|seconds| seconds <= 60));
        assert_eq!(limiter.locked("other"), None);
        limiter.succeed("key");
        assert_eq!(limiter.locked("key"), None);
    }
}
