//! Accounts and bearer tokens (sync-design.md section 10): Argon2id password hashes checked a
//! bounded number at a time ([`PasswordGate`]), opaque random tokens of which only SHA-256
//! hashes are stored, sessions that detect a reused refresh token and keep to their device and
//! their lifetime, admins, and the limit on failed sign-ins per account and address
//! ([`SignInLimiter`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use base64::Engine;
use furrow_contract::wire::TokenResponse;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::store::{SessionRow, TokenRow, Tx};

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
    let row = tx.token(&token_hash(token))?.filter(|row| row.kind == "access");
    let Some(row) = row else { return Err(Error::unauthorized("the access token is unknown or revoked; sign in again")) };
    if row.expires_at <= now {
        return Err(Error::unauthorized("the access token has expired; refresh it or sign in again"));
    }
    let user = tx.user_by_id(row.user_id)?.filter(|user| !user.disabled);
    let Some(user) = user else { return Err(Error::unauthorized("the account is disabled")) };
    let Some(session) = tx.session(&row.session_id)? else { return Err(Error::unauthorized("the session was revoked; sign in again")) };
    Ok(Caller { user_id: user.id, scopes: tx.scopes(user.id)?, session_id: session.session_id, client_id: session.client_id })
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

/// How failed sign-ins are limited. An attacker guessing one account's password from one
/// address slows himself down exponentially, while the assistant, signing in from another
/// address (or from the same township NAT after the attacker's guesses there stop), keeps getting
/// in; an account guessed at from many addresses at once reaches a ceiling, after which only the
/// addresses that have signed in to it before may try until the window ends.
#[derive(Debug, Clone, Copy)]
pub struct SignInPolicy {
    /// Failures of one account from one address that cost nothing but the retry.
    pub free_failures: u32,
    /// The wait imposed once the free failures are used up; each further failure doubles it.
    pub first_backoff: Duration,
    /// The longest wait between two attempts of one account from one address.
    pub max_backoff: Duration,
    /// Failures of one account from all addresses within `ceiling_window` after which addresses
    /// that never signed in to it are refused until the window ends.
    pub account_ceiling: u32,
    /// The window of the per-account ceiling.
    pub ceiling_window: Duration,
}

impl Default for SignInPolicy {
    /// Five free failures per account and address, then 30 s doubling up to an hour; thirty
    /// failures of one account within an hour close it to addresses it was never used from.
    fn default() -> Self {
        Self {
            free_failures: 5,
            first_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(3600),
            account_ceiling: 30,
            ceiling_window: Duration::from_secs(3600),
        }
    }
}

impl SignInPolicy {
    /// The wait after the `failures`-th failure of an account from one address.
    fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(self.free_failures).min(20);
        self.first_backoff.saturating_mul(1u32 << doublings).min(self.max_backoff)
    }
}

/// How many entries the limiter keeps before it forgets the stale ones.
const LIMITER_ENTRIES: usize = 100_000;
/// How many addresses an account remembers as ones it signed in from.
const KNOWN_ADDRESSES: usize = 16;

/// Limits failed sign-ins per (account, address) with exponential backoff and per account with
/// a ceiling ([`SignInPolicy`]). An attempt is admitted and counted as a failure in one step,
/// under one lock, before the password is verified, so concurrent guesses cannot all slip
/// through between a check and a count; a success then takes its count back.
pub struct SignInLimiter {
    policy: SignInPolicy,
    state: Mutex<LimiterState>,
}

#[derive(Default)]
struct LimiterState {
    pairs: HashMap<(String, String), PairEntry>,
    accounts: HashMap<String, AccountEntry>,
    last_forget: Option<Instant>,
}

struct PairEntry {
    failures: u32,
    next_allowed: Instant,
    last: Instant,
}

struct AccountEntry {
    failures: u32,
    window_start: Instant,
    known: VecDeque<String>,
}

/// A sign-in attempt the limiter admitted, already counted as a failure. Pass it to
/// [`SignInLimiter::succeed`] when the password matched, or to [`SignInLimiter::withdraw`] when
/// the attempt never reached verification; dropping it keeps the failure.
#[derive(Debug)]
#[must_use = "an admitted attempt stays counted as a failure unless it succeeds or is withdrawn"]
pub struct Attempt {
    account: String,
    address: String,
}

impl SignInLimiter {
    /// A limiter with the given policy.
    pub fn new(policy: SignInPolicy) -> Self {
        Self { policy, state: Mutex::new(LimiterState::default()) }
    }

    /// Admits an attempt at `account` from `address` and counts it as a failure, or refuses it
    /// with the time to wait.
    pub fn admit(&self, account: &str, address: &str) -> std::result::Result<Attempt, Duration> {
        self.admit_counting(account, address, true)
    }

    /// Whether an attempt would be admitted, without counting it. For requests whose check is
    /// cheap and whose secret cannot be guessed in a handful of tries (the bootstrap admin
    /// token), so parallel requests of a legitimate caller are not counted as failures until
    /// they fail; [`SignInLimiter::fail`] counts those.
    pub fn check(&self, account: &str, address: &str) -> std::result::Result<(), Duration> {
        self.admit_counting(account, address, false).map(|_| ())
    }

    /// Counts a failure of `account` from `address`, whether or not it would be admitted now.
    pub fn fail(&self, account: &str, address: &str) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let account = account.to_lowercase();
        let LimiterState { pairs, accounts, .. } = &mut *state;
        let pair = pairs.entry((account.clone(), address.to_owned())).or_insert(PairEntry { failures: 0, next_allowed: now, last: now });
        pair.failures += 1;
        pair.last = now;
        if pair.failures >= self.policy.free_failures {
            pair.next_allowed = now + self.policy.backoff(pair.failures);
        }
        let entry = accounts.entry(account).or_insert_with(|| AccountEntry { failures: 0, window_start: now, known: VecDeque::new() });
        entry.failures += 1;
    }

    fn admit_counting(&self, account: &str, address: &str, count: bool) -> std::result::Result<Attempt, Duration> {
        let now = Instant::now();
        let policy = self.policy;
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.forget_stale(now, &policy);
        let account = account.to_lowercase();
        let LimiterState { pairs, accounts, .. } = &mut *state;
        let entry = accounts
            .entry(account.clone())
            .or_insert_with(|| AccountEntry { failures: 0, window_start: now, known: VecDeque::new() });
        if now.duration_since(entry.window_start) >= policy.ceiling_window {
            entry.failures = 0;
            entry.window_start = now;
        }
        if entry.failures >= policy.account_ceiling && !entry.known.iter().any(|known| known == address) {
            return Err((entry.window_start + policy.ceiling_window).saturating_duration_since(now));
        }
        let pair = pairs
            .entry((account.clone(), address.to_owned()))
            .or_insert(PairEntry { failures: 0, next_allowed: now, last: now });
        if pair.failures >= policy.free_failures && now < pair.next_allowed {
            return Err(pair.next_allowed - now);
        }
        if !count {
            return Ok(Attempt { account, address: address.to_owned() });
        }
        pair.failures += 1;
        pair.last = now;
        if pair.failures >= policy.free_failures {
            pair.next_allowed = now + policy.backoff(pair.failures);
        }
        entry.failures += 1;
        Ok(Attempt { account, address: address.to_owned() })
    }

    /// The attempt's password matched: its failure is taken back, the address's backoff for the
    /// account is cleared, and the address is remembered as one the account signs in from.
    pub fn succeed(&self, attempt: Attempt) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.pairs.remove(&(attempt.account.clone(), attempt.address.clone()));
        if let Some(entry) = state.accounts.get_mut(&attempt.account) {
            entry.failures = entry.failures.saturating_sub(1);
            if !entry.known.iter().any(|known| *known == attempt.address) {
                if entry.known.len() >= KNOWN_ADDRESSES {
                    entry.known.pop_front();
                }
                entry.known.push_back(attempt.address);
            }
        }
    }

    /// The attempt never reached verification (the server was too busy): its failure is taken
    /// back.
    pub fn withdraw(&self, attempt: Attempt) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(pair) = state.pairs.get_mut(&(attempt.account.clone(), attempt.address)) {
            pair.failures = pair.failures.saturating_sub(1);
        }
        if let Some(entry) = state.accounts.get_mut(&attempt.account) {
            entry.failures = entry.failures.saturating_sub(1);
        }
    }
}

impl LimiterState {
    /// Forgets entries nothing depends on any more once the maps are large, at most once a
    /// minute, so guesses at many names cannot grow memory without bound nor make every attempt
    /// scan the maps.
    fn forget_stale(&mut self, now: Instant, policy: &SignInPolicy) {
        if self.pairs.len() + self.accounts.len() <= LIMITER_ENTRIES {
            return;
        }
        if self.last_forget.is_some_and(|last| now.duration_since(last) < Duration::from_secs(60)) {
            return;
        }
        self.last_forget = Some(now);
        self.pairs.retain(|_, pair| now < pair.next_allowed || now.duration_since(pair.last) < policy.max_backoff);
        self.accounts
            .retain(|_, entry| !entry.known.is_empty() || now.duration_since(entry.window_start) < policy.ceiling_window);
    }
}

impl Default for SignInLimiter {
    fn default() -> Self {
        Self::new(SignInPolicy::default())
    }
}

/// The seconds a client is told to wait (`Retry-After`), rounded up and at least one.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Lets a bounded number of password hashes and verifications run at once, one per core, each
/// in a work area of its own that is reused, so memory stays at most one hash's memory (19 MiB)
/// per core however many sign-ins arrive. A bounded number more wait their turn; beyond that the
/// server answers 503 with `Retry-After`, and the device tries again.
pub struct PasswordGate {
    permits: Arc<Semaphore>,
    concurrency: usize,
    waiting: AtomicUsize,
    max_waiting: usize,
    areas: Arc<Mutex<Vec<Vec<Block>>>>,
}

/// The seconds a sign-in refused for load is told to wait.
pub const BUSY_RETRY_SECONDS: u64 = 2;

/// The right to hash or verify one password, with a reusable work area. Dropping it lets the
/// next one in.
pub struct GatePass {
    _permit: OwnedSemaphorePermit,
    area: Vec<Block>,
    areas: Arc<Mutex<Vec<Vec<Block>>>>,
    keep: usize,
}

impl PasswordGate {
    /// A gate letting `concurrency` hashes run at once and `max_waiting` more wait.
    pub fn new(concurrency: usize, max_waiting: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            waiting: AtomicUsize::new(0),
            max_waiting,
            areas: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// One hash at a time per core of this machine, and 64 per core waiting.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        Self::new(cores, 64 * cores)
    }

    /// How many hashes may run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Waits for a turn, or refuses at once with 503 when the queue is full.
    pub async fn enter(&self) -> Result<GatePass> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(self.pass(permit));
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::api(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!("the server is checking many passwords at once; try again in {BUSY_RETRY_SECONDS} s"),
            )
            .with_header("retry-after", BUSY_RETRY_SECONDS.to_string()));
        }
        // The count goes down however the wait ends, a client that hung up included.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let waiting = Waiting(&self.waiting);
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| Error::Storage("the password gate was closed".into()))?;
        drop(waiting);
        Ok(self.pass(permit))
    }

    /// Takes every turn at once, so requests queue behind it; for tests that need the gate full.
    pub async fn hold_all(&self) -> OwnedSemaphorePermit {
        let all = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        match self.permits.clone().acquire_many_owned(all).await {
            Ok(permit) => permit,
            Err(_) => unreachable!("the gate's semaphore is never closed"),
        }
    }

    fn pass(&self, permit: OwnedSemaphorePermit) -> GatePass {
        let area = self.areas.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop().unwrap_or_default();
        GatePass { _permit: permit, area, areas: self.areas.clone(), keep: self.concurrency }
    }
}

impl GatePass {
    /// Whether `password` matches a stored PHC hash, computed in this pass's work area.
    pub fn verify(&mut self, password: &str, stored: &str) -> bool {
        verify_in(password, stored, &mut self.area)
    }
}

impl Drop for GatePass {
    fn drop(&mut self) {
        let mut areas = self.areas.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if areas.len() < self.keep {
            areas.push(std::mem::take(&mut self.area));
        }
    }
}

/// Verifies a password against a PHC hash with the hash's own parameters, in `area` (grown to
/// the hash's memory and kept for the next verification, instead of allocated anew each time).
fn verify_in(password: &str, stored: &str, area: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let Some(expected) = parsed.hash else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else { return false };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let Some(salt) = parsed.salt else { return false };
    let mut salt_buffer = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buffer) else { return false };
    let blocks = params.block_count();
    if area.len() < blocks {
        area.resize(blocks, Block::default());
    }
    let mut output = vec![0u8; expected.len()];
    let hasher = Argon2::new(algorithm, version, params);
    if hasher.hash_password_into_with_memory(password.as_bytes(), salt, &mut output, &mut area[..blocks]).is_err() {
        return false;
    }
    // Output compares in constant time.
    argon2::password_hash::Output::new(&output).is_ok_and(|computed| computed == expected)
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

    fn policy() -> SignInPolicy {
        SignInPolicy {
            free_failures: 3,
            first_backoff: Duration::from_secs(60),
            max_backoff: Duration::from_secs(600),
            account_ceiling: 5,
            ceiling_window: Duration::from_secs(3600),
        }
    }

    #[test]
    fn an_attempt_is_counted_when_admitted_so_concurrent_guesses_cannot_pass_the_limit() {
        let limiter = SignInLimiter::new(policy());
        // Three attempts admitted and not yet finished use up the free failures at once.
        let admitted: Vec<Attempt> = (0..3).map(|_| limiter.admit("alice", "10.0.0.1").expect("admitted")).collect();
        let wait = limiter.admit("alice", "10.0.0.1").expect_err("the fourth waits");
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(50), "{wait:?}");
        drop(admitted);
    }

    #[test]
    fn the_backoff_doubles_per_account_and_address_and_a_success_clears_it() {
        let policy = policy();
        assert_eq!(policy.backoff(3), Duration::from_secs(60));
        assert_eq!(policy.backoff(4), Duration::from_secs(120));
        assert_eq!(policy.backoff(9), Duration::from_secs(600), "capped");
        let limiter = SignInLimiter::new(policy);
        for _ in 0..3 {
            drop(limiter.admit("alice", "attacker").expect("admitted"));
        }
        assert!(limiter.admit("alice", "attacker").is_err());
        // The real user elsewhere, and another account from the attacker's address, are not slowed.
        let real = limiter.admit("Alice", "home").expect("another address gets in");
        limiter.succeed(real);
        drop(limiter.admit("bob", "attacker").expect("another account is not locked"));
        // A withdrawn attempt costs nothing.
        let withdrawn = limiter.admit("carol", "x").expect("admitted");
        limiter.withdraw(withdrawn);
        for _ in 0..3 {
            drop(limiter.admit("carol", "x").expect("three free failures remain"));
        }
    }

    #[test]
    fn past_the_ceiling_only_known_addresses_may_try() {
        let limiter = SignInLimiter::new(policy());
        let known = limiter.admit("alice", "home").expect("admitted");
        limiter.succeed(known);
        for address in 0..5 {
            drop(limiter.admit("alice", &format!("10.0.0.{address}")).expect("below the ceiling"));
        }
        let wait = limiter.admit("alice", "10.0.1.1").expect_err("the ceiling is reached");
        assert!(wait > Duration::from_secs(3500));
        limiter.succeed(limiter.admit("alice", "home").expect("a known address still gets in"));
        assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn verification_in_a_reused_area_agrees_with_the_library() {
        let hash = hash_password("correct horse", PasswordCost::CHEAP_FOR_TESTS).expect("hash");
        let mut area = Vec::new();
        assert!(verify_in("correct horse", &hash, &mut area));
        assert!(!verify_in("correct horsf", &hash, &mut area));
        assert!(!verify_in("correct horse", "not a hash", &mut area));
        assert_eq!(area.len(), 64, "one block per KiB of the hash's memory, kept");
    }
}
