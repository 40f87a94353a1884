//! Sync by itself. A thread of its own asks the server whether it answers every few seconds;
//! when the connection returns it syncs at once, while the server answers and edits wait it syncs
//! on a short timer, with nothing waiting it still syncs now and then to bring other devices'
//! changes, and after a failed attempt it tries again on the retry policy's backoff. A sync that
//! needs the user (sign in again, update the app) is not retried until they act.
//!
//! When to sync is decided by [`Schedule`], plain data driven by the time passed in, so the rules
//! are tested without a network or a clock. The thread only probes, asks the schedule, runs the
//! same sync the 同步 button runs, and tells the window what happened.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use furrow::sync::RetryPolicy;
use tauri::{AppHandle, Emitter, Manager};

use crate::state::AppState;

/// How often the thread asks the server whether it answers.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);

/// While the server answers and edits wait, a sync at least this often; edits made in between go
/// together.
pub const PENDING_EVERY: Duration = Duration::from_secs(20);

/// While the server answers and nothing waits, a sync this often to bring other devices' changes.
pub const PULL_EVERY: Duration = Duration::from_secs(300);

/// The event the window receives after every sync the thread makes (and when the connection
/// comes or goes): the sync indicator's figures, as `sync_status` answers them.
pub const STATUS_EVENT: &str = "sync-status";

/// How an attempt ended, as far as the schedule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The sync finished.
    Synced,
    /// It failed in a way time can fix (the network dropped, the server was busy).
    Retryable,
    /// It needs the user: sign in again, or update the app.
    NeedsUser,
}

/// What the schedule says to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Sync now.
    Sync,
    /// Nothing to do yet.
    Wait,
}

/// When to sync: the rules of this module as plain data.
#[derive(Debug, Clone)]
pub struct Schedule {
    retry: RetryPolicy,
    online: Option<bool>,
    due_now: bool,
    failures: u32,
    next_attempt: Option<Instant>,
    last_attempt: Option<Instant>,
    last_success: Option<Instant>,
    needs_user: bool,
}

impl Schedule {
    /// A schedule that backs off after failures as `retry` says.
    pub fn new(retry: RetryPolicy) -> Self {
        Self { retry, online: None, due_now: false, failures: 0, next_attempt: None, last_attempt: None, last_success: None, needs_user: false }
    }

    /// Notes whether the server answered just now. Returns whether the connection has just come
    /// back, which makes a sync due at once and forgets earlier failures: they were the outage.
    pub fn observe(&mut self, online: bool) -> bool {
        let returned = online && self.online == Some(false);
        if returned {
            self.due_now = true;
            self.failures = 0;
            self.next_attempt = None;
        }
        self.online = Some(online);
        returned
    }

    /// Whether the server answered at the last probe (`None` before the first).
    pub fn online(&self) -> Option<bool> {
        self.online
    }

    /// What to do at `now`, with `pending` local changes waiting to be sent.
    pub fn decide(&self, now: Instant, pending: i64) -> Decision {
        if self.online != Some(true) || self.needs_user {
            return Decision::Wait;
        }
        if self.due_now {
            return Decision::Sync;
        }
        if let Some(next) = self.next_attempt {
            return if now >= next { Decision::Sync } else { Decision::Wait };
        }
        let since = |moment: Option<Instant>| moment.map(|moment| now.saturating_duration_since(moment));
        if pending > 0 && since(self.last_attempt).is_none_or(|waited| waited >= PENDING_EVERY) {
            return Decision::Sync;
        }
        if since(self.last_success).is_none_or(|waited| waited >= PULL_EVERY) && since(self.last_attempt).is_none_or(|waited| waited >= PENDING_EVERY) {
            return Decision::Sync;
        }
        Decision::Wait
    }

    /// Notes how an attempt (the thread's or the 同步 button's) ended at `now`.
    pub fn record(&mut self, outcome: Outcome, now: Instant) {
        self.due_now = false;
        self.last_attempt = Some(now);
        match outcome {
            Outcome::Synced => {
                self.failures = 0;
                self.next_attempt = None;
                self.last_success = Some(now);
                self.needs_user = false;
            }
            Outcome::Retryable => {
                self.failures += 1;
                self.next_attempt = Some(now + self.retry.delay(self.failures));
            }
            Outcome::NeedsUser => {
                self.needs_user = true;
                self.next_attempt = None;
            }
        }
    }

    /// The user signed in again (or asked for a sync): try again at once.
    pub fn user_acted(&mut self) {
        self.needs_user = false;
        self.failures = 0;
        self.next_attempt = None;
        self.due_now = true;
    }

    /// When the next attempt after a failure is due, if one is.
    pub fn next_attempt(&self) -> Option<Instant> {
        self.next_attempt.filter(|_| self.online == Some(true) && !self.needs_user)
    }

    /// Whether the schedule waits for the user before trying again.
    pub fn needs_user(&self) -> bool {
        self.needs_user
    }
}

/// The state the thread shares with the commands: the schedule, whether a sync is under way,
/// and a way to wake the thread early.
pub struct AutoSync {
    schedule: Mutex<Schedule>,
    syncing: AtomicBool,
    wake: (Mutex<bool>, Condvar),
}

impl Default for AutoSync {
    fn default() -> Self {
        Self { schedule: Mutex::new(Schedule::new(RetryPolicy::default())), syncing: AtomicBool::new(false), wake: (Mutex::new(false), Condvar::new()) }
    }
}

impl AutoSync {
    /// Runs `change` on the schedule.
    pub fn with_schedule<T>(&self, change: impl FnOnce(&mut Schedule) -> T) -> T {
        change(&mut self.schedule.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Wakes the thread now (after a sign-in, for instance) instead of at its next probe.
    pub fn wake(&self) {
        let (flag, condvar) = &self.wake;
        *flag.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        condvar.notify_all();
    }

    fn sleep(&self, timeout: Duration) {
        let (flag, condvar) = &self.wake;
        let guard = flag.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (mut guard, _) = condvar.wait_timeout_while(guard, timeout, |woken| !*woken).unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard = false;
    }

    /// Whether a sync is under way (the thread's or the button's).
    pub fn syncing(&self) -> bool {
        self.syncing.load(Ordering::SeqCst)
    }

    /// Marks a sync as under way until the returned guard is dropped.
    pub fn begin(&self) -> SyncingGuard<'_> {
        self.syncing.store(true, Ordering::SeqCst);
        SyncingGuard(self)
    }

    /// When the next attempt after a failure is due, as a wall-clock time for the window.
    pub fn next_attempt_at(&self) -> Option<SystemTime> {
        let next = self.with_schedule(|schedule| schedule.next_attempt())?;
        Some(SystemTime::now() + next.saturating_duration_since(Instant::now()))
    }
}

/// Clears the "a sync is under way" flag when dropped, whatever way the sync ended.
pub struct SyncingGuard<'a>(&'a AutoSync);

impl Drop for SyncingGuard<'_> {
    fn drop(&mut self) {
        self.0.syncing.store(false, Ordering::SeqCst);
    }
}

/// Starts the thread; it runs as long as the app.
pub fn start(app: AppHandle) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("furrow-autosync".into())
        .spawn(move || loop {
            let state = app.state::<AppState>();
            state.auto.sleep(PROBE_EVERY);
            step(&app, &state);
        })
        .expect("the sync thread starts")
}

/// One round: probe the server, tell the window when the connection came or went, and sync when
/// the schedule says so.
fn step(app: &AppHandle, state: &AppState) {
    let Some(engine) = state.engine() else { return };
    let Some(server_url) = crate::commands::sync::server_url(state) else { return };
    let online = crate::commands::sync::reachable(&server_url);
    let (was, returned) = state.auto.with_schedule(|schedule| (schedule.online(), schedule.observe(online)));
    let pending = {
        let store = state.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        store.pending_changes().unwrap_or(0)
    };
    let decision = state.auto.with_schedule(|schedule| schedule.decide(Instant::now(), pending));
    if decision == Decision::Sync {
        // The result reaches the window through the status event below; a failure is in it too.
        let _ = crate::commands::sync::sync_blocking(app, state, engine);
    } else if !returned && was == Some(online) {
        return;
    }
    if let Ok(status) = crate::commands::sync::status_blocking(state, Some(online)) {
        // A closed window cannot take the event; the next sync tells it again.
        let _ = app.emit(STATUS_EVENT, status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        Schedule::new(RetryPolicy { initial: Duration::from_secs(2), max: Duration::from_secs(60), max_attempts: None })
    }

    #[test]
    fn nothing_happens_offline_and_the_returning_connection_syncs_at_once() {
        let start = Instant::now();
        let mut schedule = schedule();
        schedule.observe(false);
        assert_eq!(schedule.decide(start, 11), Decision::Wait, "offline: no attempt, however much waits");
        assert_eq!(schedule.decide(start + Duration::from_secs(210), 11), Decision::Wait);
        assert!(schedule.observe(true), "the connection came back");
        assert_eq!(schedule.decide(start + Duration::from_secs(211), 11), Decision::Sync);
        schedule.record(Outcome::Synced, start + Duration::from_secs(212));
        assert_eq!(schedule.decide(start + Duration::from_secs(213), 0), Decision::Wait, "nothing waits, synced just now");
        assert!(!schedule.observe(true), "still online is no return");
    }

    #[test]
    fn pending_work_syncs_on_a_timer_while_online() {
        let start = Instant::now();
        let mut schedule = schedule();
        schedule.observe(true);
        assert_eq!(schedule.decide(start, 0), Decision::Sync, "the first look syncs to bring changes");
        schedule.record(Outcome::Synced, start);
        assert_eq!(schedule.decide(start + Duration::from_secs(5), 3), Decision::Wait, "edits made just after a sync wait a little");
        assert_eq!(schedule.decide(start + PENDING_EVERY, 3), Decision::Sync);
        schedule.record(Outcome::Synced, start + PENDING_EVERY);
        assert_eq!(schedule.decide(start + PENDING_EVERY * 2, 0), Decision::Wait, "nothing waits");
        assert_eq!(schedule.decide(start + PENDING_EVERY + PULL_EVERY, 0), Decision::Sync, "now and then a sync brings others' changes");
    }

    #[test]
    fn failures_back_off_and_a_returning_connection_resets_them() {
        let start = Instant::now();
        let mut schedule = schedule();
        schedule.observe(true);
        schedule.record(Outcome::Retryable, start);
        let first = schedule.next_attempt().expect("a retry is scheduled");
        assert!(first > start && first <= start + Duration::from_secs(2), "the first wait is at most the initial delay");
        assert_eq!(schedule.decide(start, 5), Decision::Wait);
        assert_eq!(schedule.decide(first, 5), Decision::Sync, "the retry happens without a new edit");
        let mut at = first;
        for _ in 0..10 {
            schedule.record(Outcome::Retryable, at);
            at = schedule.next_attempt().unwrap();
        }
        assert!(at.saturating_duration_since(start) <= Duration::from_secs(11 * 60), "waits are capped");
        assert!(schedule.next_attempt().unwrap() - at <= Duration::from_secs(60));
        schedule.observe(false);
        assert!(schedule.next_attempt().is_none(), "no retry is promised while offline");
        assert!(schedule.observe(true));
        assert_eq!(schedule.decide(at, 5), Decision::Sync, "the connection's return syncs at once, whatever the backoff was");
    }

    #[test]
    fn a_sync_that_needs_the_user_waits_for_them() {
        let start = Instant::now();
        let mut schedule = schedule();
        schedule.observe(true);
        schedule.record(Outcome::NeedsUser, start);
        assert!(schedule.needs_user());
        assert_eq!(schedule.decide(start + PULL_EVERY * 2, 9), Decision::Wait);
        assert!(schedule.next_attempt().is_none());
        schedule.user_acted();
        assert_eq!(schedule.decide(start + PULL_EVERY * 2, 9), Decision::Sync);
    }
}
