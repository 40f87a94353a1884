//! The sync engine the desktop app drives from a background thread: sign-in, a full sync (push
//! until the outbox is empty, then pull until the server has nothing more), retry with backoff
//! and jitter on its own timer, and progress reported through a callback, never printed.
//!
//! The store is locked only for each short transaction, never across a network call, so the
//! assistant keeps working while a slow sync runs. How it retries and sizes its requests is
//! [`crate::sync::options`]; a thread that syncs on its own is [`crate::sync::background`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::hlc;
use crate::store::Store;
use crate::sync::error::{SyncError, SyncResult, TransportError};
use crate::sync::options::SyncOptions;
use crate::sync::outbox;
use crate::sync::pull;
use crate::sync::state::{self, Account};
use crate::sync::transport::{HttpTransport, RequestMeta, Transport};
use crate::sync::wire::{LoginRequest, RefreshRequest, SERVER_RESTORED};

/// What a sync did, summed over its attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Push requests sent.
    pub batches_sent: u64,
    /// Of those, re-sends of a batch already sent once (after a drop).
    pub batches_resent: u64,
    /// Changes the server applied.
    pub applied: u64,
    /// Changes that lost to later ones.
    pub superseded: u64,
    /// Changes the server refused.
    pub rejected: u64,
    /// New entries in the conflicts list.
    pub conflicts: u64,
    /// Pull pages applied.
    pub pages: u64,
    /// Rows received.
    pub rows: u64,
    /// Time spent storing pulled pages on the device, in microseconds: `rows` over this is the
    /// local apply rate, apart from the network and the server.
    pub apply_micros: u64,
    /// Resets (fresh snapshots) the server asked for.
    pub resets: u64,
    /// Clock corrections after the server found the clock ahead.
    pub clock_corrections: u64,
    /// Attempts that failed and were retried.
    pub retries: u64,
    /// Attachments uploaded.
    pub uploads: u64,
    /// Thumbnails and photos downloaded.
    pub downloads: u64,
}

/// A progress event for the desktop app.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Progress {
    /// A sync started.
    Started,
    /// Downloading a photo or a thumbnail made on another device.
    Downloading {
        /// The blob's SHA-256.
        sha256: String,
        /// Bytes on the device so far.
        received_bytes: u64,
    },
    /// Uploading a photo.
    Uploading {
        /// The blob's SHA-256.
        sha256: String,
        /// Bytes the server holds.
        sent_bytes: u64,
        /// The blob's size.
        total_bytes: u64,
    },
    /// Sending a batch of changes.
    Pushing {
        /// Changes in the batch.
        changes: usize,
        /// Whether it is a re-send of a batch whose answer was lost.
        resent: bool,
        /// Changes queued after this batch.
        remaining: i64,
    },
    /// The server answered a batch.
    Pushed {
        /// Applied.
        applied: usize,
        /// Lost to later changes.
        superseded: usize,
        /// Refused.
        rejected: usize,
    },
    /// A page of rows arrived and was saved.
    Pulled {
        /// Pages so far in this sync.
        pages: u64,
        /// Rows so far in this sync.
        rows: u64,
        /// Whether more pages follow.
        has_more: bool,
    },
    /// The server asked for a fresh copy; unsynced changes are kept.
    Reset {
        /// Why.
        reason: String,
    },
    /// The device clock was corrected against the server's.
    ClockCorrected {
        /// The correction in milliseconds.
        offset_ms: i64,
    },
    /// An attempt failed; the engine retries after a wait.
    Retrying {
        /// The failed attempts in a row so far.
        attempt: u32,
        /// The wait in milliseconds.
        wait_ms: u64,
        /// The error's stable code.
        code: String,
        /// The error's message.
        message: String,
    },
    /// The sync finished.
    Finished(SyncReport),
    /// The sync stopped with an error that retrying alone cannot fix (sign in again, update).
    Failed {
        /// The error's stable code.
        code: String,
        /// The message for the user, in Chinese.
        message_zh: String,
        /// The message in English.
        message_en: String,
    },
}

/// The device's sync engine. Cheap to share between threads behind an `Arc`.
pub struct SyncEngine {
    transport: Box<dyn Transport>,
    server_url: String,
    options: SyncOptions,
    session: String,
    requests: AtomicU64,
    media: Option<crate::media::MediaDir>,
    /// The size of the next photo chunk, learned from the link (see [`crate::sync::blobs`]).
    chunk_bytes: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for SyncEngine {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("SyncEngine").field("server_url", &self.server_url).field("options", &self.options).finish()
    }
}

/// Runs `work` on the store under its lock. A lock poisoned by a panic elsewhere is taken anyway:
/// the store's state is in SQLite and every change to it is transactional.
fn locked<T>(store: &Mutex<Store>, work: impl FnOnce(&mut Store) -> T) -> T {
    let mut guard = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    work(&mut guard)
}

impl SyncEngine {
    /// An engine talking HTTP to the server at `server_url`.
    pub fn new(server_url: &str) -> SyncResult<Self> {
        let transport = HttpTransport::new(server_url).map_err(SyncError::Transport)?;
        Ok(Self::with_transport(Box::new(transport), server_url, SyncOptions::default()))
    }

    /// An engine for the server this store signed in to, for later starts of the app.
    pub fn for_store(store: &Store) -> SyncResult<Self> {
        let url = state::text(&store.conn, state::SERVER_URL)?.ok_or(SyncError::NotSignedIn)?;
        Self::new(&url)
    }

    /// An engine over any transport, with the given options (tests, other links).
    pub fn with_transport(transport: Box<dyn Transport>, server_url: &str, options: SyncOptions) -> Self {
        Self {
            transport,
            server_url: server_url.trim_end_matches('/').to_owned(),
            options,
            session: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
            requests: AtomicU64::new(0),
            media: None,
            chunk_bytes: std::sync::atomic::AtomicUsize::new(options.chunks.first),
        }
    }

    /// The same engine keeping photos in `media`: each sync then fetches the thumbnails of photos
    /// made on other devices, and [`SyncEngine::download_photo`] fetches a full image on demand.
    pub fn with_media_dir(mut self, media: crate::media::MediaDir) -> Self {
        self.media = Some(media);
        self
    }

    /// The size of the next photo chunk.
    pub(crate) fn chunk_bytes(&self) -> usize {
        self.chunk_bytes.load(Ordering::Relaxed)
    }

    /// Sets the size of the next photo chunk.
    pub(crate) fn set_chunk_bytes(&self, bytes: usize) {
        self.chunk_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Where the engine keeps photos, if it was given a place.
    pub fn media_dir(&self) -> Option<&crate::media::MediaDir> {
        self.media.as_ref()
    }

    /// The same engine with other options.
    pub fn with_options(mut self, options: SyncOptions) -> Self {
        self.set_chunk_bytes(options.chunks.first);
        self.options = options;
        self
    }

    /// The engine's options.
    pub fn options(&self) -> &SyncOptions {
        &self.options
    }

    fn meta(&self, client_id: &str, access_token: &str) -> RequestMeta {
        let number = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        RequestMeta {
            access_token: access_token.to_owned(),
            client_id: client_id.to_owned(),
            request_id: format!("{client_id}-{}-{number}", self.session),
        }
    }

    /// Signs in (the first sign-in needs the server). Keeps the tokens, the assistant's id and
    /// villages and the server's address in the store, so the assistant then works offline even
    /// after the token expires. Signing in again later resumes sync with the same outbox.
    pub fn login(&self, store: &Mutex<Store>, username: &str, password: &str, device_name: &str) -> SyncResult<Account> {
        let client_id = locked(store, |store| store.node().to_uuid_string());
        let request =
            LoginRequest { username: username.to_owned(), password: password.to_owned(), device_name: device_name.to_owned() };
        let response = self.transport.login(&request, &self.meta(&client_id, "")).map_err(|error| match error.status() {
            Some(401) | Some(403) => SyncError::WrongCredentials(error),
            Some(426) => SyncError::UpdateRequired(error),
            _ => SyncError::Transport(error),
        })?;
        locked(store, |store| {
            let transaction = store.conn.transaction()?;
            if let Some(previous) = state::text(&transaction, state::ASSISTANT_ID)? {
                let queued: i64 = transaction.query_row("SELECT count(*) FROM sync_outbox", [], |row| row.get(0))?;
                if previous != response.assistant_id && queued > 0 {
                    // Another assistant's unsynced work is on this device; it must not be sent
                    // under this account, nor dropped.
                    return Err(SyncError::OtherAccount { signed_in: previous });
                }
            }
            state::save_tokens(&transaction, &response)?;
            state::set(&transaction, state::USERNAME, username)?;
            state::set(&transaction, state::SERVER_URL, &self.server_url)?;
            transaction.commit()?;
            Ok::<_, SyncError>(())
        })?;
        locked(store, |store| state::account(&store.conn))?.ok_or(SyncError::NotSignedIn)
    }

    /// Signs out: revokes the refresh token on the server when reachable and forgets the tokens.
    /// The data and every unsynced change stay on the device.
    pub fn logout(&self, store: &Mutex<Store>) -> SyncResult<()> {
        let (client_id, tokens) = locked(store, |store| (store.node().to_uuid_string(), state::tokens(&store.conn)));
        if let Some(tokens) = tokens? {
            let request = RefreshRequest { refresh_token: tokens.refresh_token.clone() };
            // Signing out works offline too; the server forgets the session when it expires.
            let _ = self.transport.logout(&request, &self.meta(&client_id, &tokens.access_token));
        }
        Ok(locked(store, |store| state::forget_tokens(&store.conn))?)
    }

    fn refresh(&self, store: &Mutex<Store>, client_id: &str) -> SyncResult<String> {
        let tokens = locked(store, |store| state::tokens(&store.conn))?.ok_or(SyncError::SignInRequired(None))?;
        let request = RefreshRequest { refresh_token: tokens.refresh_token };
        match self.transport.refresh(&request, &self.meta(client_id, "")) {
            Ok(response) => {
                locked(store, |store| state::save_tokens(&store.conn, &response))?;
                Ok(response.access_token)
            }
            Err(error) if matches!(error.status(), Some(400) | Some(401) | Some(403)) => Err(SyncError::SignInRequired(Some(error))),
            Err(error) if error.status() == Some(426) => Err(SyncError::UpdateRequired(error)),
            Err(error) => Err(SyncError::Transport(error)),
        }
    }

    /// Makes an authorised call: renews an expired token first, and on a 401 renews it once and
    /// tries again; if that fails the user must sign in again (nothing is discarded).
    pub(crate) fn authorised_call<T>(
        &self,
        store: &Mutex<Store>,
        call: impl Fn(&dyn Transport, &RequestMeta) -> Result<T, TransportError>,
    ) -> SyncResult<T> {
        let (client_id, tokens, account) =
            locked(store, |store| (store.node().to_uuid_string(), state::tokens(&store.conn), state::account(&store.conn)));
        let tokens = match tokens? {
            Some(tokens) => tokens,
            None if account?.is_some() => return Err(SyncError::SignInRequired(None)),
            None => return Err(SyncError::NotSignedIn),
        };
        let mut token = tokens.access_token;
        let mut renewed = false;
        if tokens.expires_at <= hlc::wall_ms() + 30_000 {
            token = self.refresh(store, &client_id)?;
            renewed = true;
        }
        loop {
            match call(&*self.transport, &self.meta(&client_id, &token)) {
                Ok(value) => return Ok(value),
                Err(error) if error.status() == Some(401) && !renewed => {
                    token = self.refresh(store, &client_id)?;
                    renewed = true;
                }
                Err(error) if error.status() == Some(401) => return Err(SyncError::SignInRequired(Some(error))),
                Err(error) if error.status() == Some(426) => return Err(SyncError::UpdateRequired(error)),
                Err(error) => return Err(SyncError::Transport(error)),
            }
        }
    }

    /// One full sync: upload pending photos, push until the outbox is empty, then pull until the
    /// server has nothing more, and again while edits arrived meanwhile. Progress goes to
    /// `progress`. Failures return at once with everything done so far kept; see
    /// [`SyncEngine::run_until_idle`] for retrying.
    pub fn sync(&self, store: &Mutex<Store>, progress: &dyn Fn(&Progress)) -> SyncResult<SyncReport> {
        let mut report = SyncReport::default();
        self.sync_into(store, progress, &mut report)?;
        Ok(report)
    }

    fn sync_into(&self, store: &Mutex<Store>, progress: &dyn Fn(&Progress), report: &mut SyncReport) -> SyncResult<()> {
        progress(&Progress::Started);
        let result = self.sync_rounds(store, progress, report);
        locked(store, |store| match &result {
            Ok(()) => {
                state::set(&store.conn, state::LAST_SYNC_AT, hlc::wall_ms())?;
                state::remove(&store.conn, state::LAST_ERROR)
            }
            Err(error) => state::set(&store.conn, state::LAST_ERROR, error.to_string()),
        })?;
        if result.is_ok() {
            progress(&Progress::Finished(*report));
        }
        result
    }

    /// Text first: the day's records are pushed and the server's pulled before any photo moves,
    /// so one slow or failing photo on a bad link never holds back the visits and trainings.
    /// A photo row may reach the server before its bytes (the server serves it once they
    /// arrive, and other devices show a placeholder until then). Photos go up after the text,
    /// then thumbnails come down; a failure there leaves every record already synced.
    fn sync_rounds(&self, store: &Mutex<Store>, progress: &dyn Fn(&Progress), report: &mut SyncReport) -> SyncResult<()> {
        let client_id = locked(store, |store| store.node().to_uuid_string());
        self.sync_text(store, &client_id, progress, report)?;
        self.upload_attachments(store, progress, report)?;
        // Edits made while the photos went up go out in the same sync.
        if locked(store, |store| outbox::unsent(&store.conn))? > 0 {
            self.sync_text(store, &client_id, progress, report)?;
        }
        self.download_thumbnails(store, progress, report)
    }

    /// Pushes until the outbox is empty and pulls until the server has nothing more, again while
    /// edits arrive meanwhile, at most `max_rounds` times.
    fn sync_text(&self, store: &Mutex<Store>, client_id: &str, progress: &dyn Fn(&Progress), report: &mut SyncReport) -> SyncResult<()> {
        for _ in 0..self.options.max_rounds.max(1) {
            self.push_all(store, client_id, progress, report)?;
            self.pull_all(store, progress, report)?;
            let unsent = locked(store, |store| outbox::unsent(&store.conn))?;
            if unsent == 0 {
                break;
            }
        }
        Ok(())
    }

    fn push_all(&self, store: &Mutex<Store>, client_id: &str, progress: &dyn Fn(&Progress), report: &mut SyncReport) -> SyncResult<()> {
        let mut limits = self.options.batch_limits;
        let mut clock_corrections = 0;
        // Answers that make the device change its batch and send it again; a server that keeps
        // giving them is not followed forever.
        let mut renewed_ids = 0;
        let mut renumberings = 0;
        loop {
            let Some(batch) = locked(store, |store| outbox::next_batch(&mut store.conn, limits))? else { break };
            let remaining = locked(store, |store| outbox::unsent(&store.conn))?;
            progress(&Progress::Pushing { changes: batch.entries.len(), resent: batch.resent, remaining });
            report.batches_sent += 1;
            if batch.resent {
                report.batches_resent += 1;
            }
            let request = batch.request(client_id);
            match self.authorised_call(store, |transport, meta| transport.push(&request, meta)) {
                Ok(response) => {
                    let received_at = hlc::wall_ms();
                    let outcome = locked(store, |store| {
                        outbox::observe_server_time(store, response.server_time, received_at)?;
                        let outcome = outbox::apply_push_response(store, &batch, &response)?;
                        Ok::<_, SyncError>(outcome)
                    })?;
                    report.applied += outcome.applied as u64;
                    report.superseded += outcome.superseded as u64;
                    report.rejected += outcome.rejected as u64;
                    report.conflicts += outcome.conflicts as u64;
                    limits = self.options.batch_limits;
                    progress(&Progress::Pushed { applied: outcome.applied, superseded: outcome.superseded, rejected: outcome.rejected });
                }
                Err(SyncError::Transport(error)) if error.status() == Some(409) && error.code() == Some("clock_ahead") => {
                    clock_corrections += 1;
                    let server_time = match &error {
                        TransportError::Status { body: Some(body), .. } => body.server_time,
                        _ => None,
                    };
                    let Some(server_time) = server_time.filter(|_| clock_corrections <= 3) else {
                        return Err(SyncError::Transport(error));
                    };
                    locked(store, |store| outbox::restamp(store, server_time))?;
                    report.clock_corrections += 1;
                    progress(&Progress::ClockCorrected { offset_ms: server_time - hlc::wall_ms() });
                }
                Err(SyncError::Transport(error)) if error.status() == Some(422) && error.code() == Some("idempotency_key_reused") => {
                    // The server holds another body under this batch id. The device never sends
                    // one, so the id is spent: the same changes go again under a new id.
                    renewed_ids += 1;
                    if renewed_ids > 3 {
                        return Err(SyncError::Transport(error));
                    }
                    locked(store, |store| outbox::renew_batch_id(&store.conn, &batch))?;
                }
                Err(SyncError::Transport(error)) if error.status() == Some(409) && error.code() == Some("seq_reused") => {
                    // The server applied these sequence numbers from this device already (its
                    // database was restored from an old copy): every queued change is numbered
                    // again above the server's last applied one and sent under a new batch id.
                    renumberings += 1;
                    let last_applied_seq = match &error {
                        TransportError::Status { body: Some(body), .. } => body.last_applied_seq,
                        _ => None,
                    };
                    let Some(last_applied_seq) = last_applied_seq.filter(|_| renumberings <= 3) else {
                        return Err(SyncError::Transport(error));
                    };
                    locked(store, |store| outbox::renumber_above(&mut store.conn, last_applied_seq))?;
                }
                Err(SyncError::Transport(error)) if error.status() == Some(413) => {
                    limits.max_changes = (batch.entries.len() / 2).max(1);
                    let split = locked(store, |store| outbox::split_batch(&mut store.conn, &batch))?;
                    if !split {
                        let message = error.to_string();
                        locked(store, |store| outbox::reject_locally(store, &batch, "too_large", &message))?;
                        report.rejected += 1;
                        report.conflicts += 1;
                    }
                }
                Err(error) => {
                    let message = error.to_string();
                    locked(store, |store| outbox::note_attempt_error(&store.conn, &batch, &message))?;
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    fn pull_all(&self, store: &Mutex<Store>, progress: &dyn Fn(&Progress), report: &mut SyncReport) -> SyncResult<()> {
        let mut resets = 0;
        loop {
            let cursor = locked(store, |store| pull::cursor(store))?;
            let limit = self.options.pull_limit;
            let page = match self.authorised_call(store, |transport, meta| transport.pull(cursor.as_deref(), limit, meta)) {
                Ok(page) => page,
                // A server that refuses the cursor it issued itself has lost its history; retrying
                // the same cursor would fail forever. The device starts over from a snapshot that
                // drops nothing and re-sends what the server lacks, as after server_restored.
                Err(SyncError::Transport(error))
                    if cursor.is_some() && error.status() == Some(400) && error.code() == Some("invalid_cursor") =>
                {
                    resets += 1;
                    if resets > 1 {
                        return Err(SyncError::ResetLoop(SERVER_RESTORED.to_owned()));
                    }
                    report.resets += 1;
                    progress(&Progress::Reset { reason: SERVER_RESTORED.to_owned() });
                    locked(store, pull::restart_after_restore)?;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let received_at = hlc::wall_ms();
            let mut scopes = None;
            if let Some(reset) = &page.reset {
                resets += 1;
                if resets > 1 {
                    return Err(SyncError::ResetLoop(reset.reason.clone()));
                }
                report.resets += 1;
                progress(&Progress::Reset { reason: reset.reason.clone() });
                if reset.reason == "scope_changed" {
                    // The assistant's villages changed: renewing the token tells which ones now.
                    let client_id = locked(store, |store| store.node().to_uuid_string());
                    self.refresh(store, &client_id)?;
                    scopes = locked(store, |store| state::account(&store.conn))?.map(|account| account.scopes);
                }
            }
            let (rows, has_more, server_time) = (page.rows.len() as u64, page.has_more, page.server_time);
            let restart = page.reset.is_some() && page.cursor.is_empty();
            let applying = Instant::now();
            locked(store, |store| {
                outbox::observe_server_time(store, server_time, received_at)?;
                pull::apply_owned_page(store, page, scopes.as_deref())
            })?;
            report.apply_micros += applying.elapsed().as_micros() as u64;
            report.pages += 1;
            report.rows += rows;
            progress(&Progress::Pulled { pages: report.pages, rows: report.rows, has_more });
            if !has_more && !restart {
                break;
            }
        }
        Ok(())
    }

    /// Syncs until done, retrying failures that time can fix with exponential backoff and jitter
    /// on the engine's own timer (no new edit is needed to wake it). Stops with an error that needs
    /// the user (sign in again, update), after `max_attempts` failures in a row, or when `stop` is
    /// set. The report sums every attempt.
    pub fn run_until_idle(&self, store: &Mutex<Store>, progress: &dyn Fn(&Progress), stop: &AtomicBool) -> SyncResult<SyncReport> {
        let mut report = SyncReport::default();
        let mut attempt = 0u32;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(SyncError::Stopped);
            }
            match self.sync_into(store, progress, &mut report) {
                Ok(()) => return Ok(report),
                Err(error) if error.is_retryable() => {
                    attempt += 1;
                    if self.options.retry.max_attempts.is_some_and(|most| attempt >= most) {
                        return Err(error);
                    }
                    report.retries += 1;
                    let wait = self.options.retry.delay(attempt);
                    progress(&Progress::Retrying {
                        attempt,
                        wait_ms: wait.as_millis() as u64,
                        code: error.code().to_owned(),
                        message: error.to_string(),
                    });
                    let until = Instant::now() + wait;
                    while Instant::now() < until {
                        if stop.load(Ordering::Relaxed) {
                            return Err(SyncError::Stopped);
                        }
                        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
                    }
                }
                Err(error) => {
                    progress(&Progress::Failed { code: error.code().to_owned(), message_zh: error.message_zh(), message_en: error.to_string() });
                    return Err(error);
                }
            }
        }
    }
}
