//! The limit on failed sign-ins per account and address.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    /// The window whose first refusal was already reported as one to record: the backoff's end,
    /// or the start of the account's ceiling window.
    refusal_noted: Option<Instant>,
}

struct AccountEntry {
    failures: u32,
    window_start: Instant,
    known: VecDeque<String>,
}

/// An attempt the limiter refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The time to wait before the next attempt.
    pub wait: Duration,
    /// Whether this is the first refusal of the (account, address) in the current limiter
    /// window (one backoff, or the account's ceiling window): the one the audit log records.
    pub first_in_window: bool,
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
        self.admit_counting(account, address, true).map_err(|refusal| refusal.wait)
    }

    /// [`SignInLimiter::admit`], telling of a refusal whether it is the first of the
    /// (account, address) in the current window, so the caller can record one refusal per
    /// window and no more.
    pub fn admit_noting(&self, account: &str, address: &str) -> std::result::Result<Attempt, Refusal> {
        self.admit_counting(account, address, true)
    }

    /// Whether an attempt would be admitted, without counting it. For requests whose check is
    /// cheap and whose secret cannot be guessed in a handful of tries (the bootstrap admin
    /// token), so parallel requests of a legitimate caller are not counted as failures until
    /// they fail; [`SignInLimiter::fail`] counts those.
    pub fn check(&self, account: &str, address: &str) -> std::result::Result<(), Duration> {
        self.admit_counting(account, address, false).map(|_| ()).map_err(|refusal| refusal.wait)
    }

    /// Like [`SignInLimiter::check`], and also tells whether a refusal is the first of the
    /// (account, address) in the current window, so a caller can record it once.
    pub fn check_noting(&self, account: &str, address: &str) -> std::result::Result<(), Refusal> {
        self.admit_counting(account, address, false).map(|_| ())
    }

    /// Counts a failure of `account` from `address`, whether or not it would be admitted now.
    pub fn fail(&self, account: &str, address: &str) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let account = account.to_lowercase();
        let LimiterState { pairs, accounts, .. } = &mut *state;
        let pair = pairs.entry((account.clone(), address.to_owned())).or_insert(PairEntry { failures: 0, next_allowed: now, last: now, refusal_noted: None });
        pair.failures += 1;
        pair.last = now;
        if pair.failures >= self.policy.free_failures {
            pair.next_allowed = now + self.policy.backoff(pair.failures);
        }
        let entry = accounts.entry(account).or_insert_with(|| AccountEntry { failures: 0, window_start: now, known: VecDeque::new() });
        entry.failures += 1;
    }

    fn admit_counting(&self, account: &str, address: &str, count: bool) -> std::result::Result<Attempt, Refusal> {
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
        let pair = pairs
            .entry((account.clone(), address.to_owned()))
            .or_insert(PairEntry { failures: 0, next_allowed: now, last: now, refusal_noted: None });
        if entry.failures >= policy.account_ceiling && !entry.known.iter().any(|known| known == address) {
            let wait = (entry.window_start + policy.ceiling_window).saturating_duration_since(now);
            return Err(pair.refuse(entry.window_start, wait));
        }
        if pair.failures >= policy.free_failures && now < pair.next_allowed {
            let wait = pair.next_allowed - now;
            return Err(pair.refuse(pair.next_allowed, wait));
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

impl PairEntry {
    /// A refusal in the window identified by `window`, the first of it unless one was noted.
    fn refuse(&mut self, window: Instant, wait: Duration) -> Refusal {
        let first_in_window = self.refusal_noted != Some(window);
        self.refusal_noted = Some(window);
        Refusal { wait, first_in_window }
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(limiter.admit_noting("alice", "attacker").expect_err("refused").first_in_window);
        assert!(!limiter.admit_noting("alice", "attacker").expect_err("refused").first_in_window, "noted once per window");
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
        let refusal = limiter.admit_noting("alice", "10.0.1.2").expect_err("still refused");
        assert!(refusal.first_in_window, "the first refusal of another address is noted");
        assert!(!limiter.admit_noting("alice", "10.0.1.2").expect_err("refused").first_in_window);
        limiter.succeed(limiter.admit("alice", "home").expect("a known address still gets in"));
        assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }

}
