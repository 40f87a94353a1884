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

use crate::hlc;
use crate::store::Store;
use crate::sync::error::{SyncError, SyncResult, TransportError};
use crate::sync::options::SyncOptions;
use crate::sync::outbox;
use crate::sync::pull;
use crate::sync::state::{self, Account};
use crate::sync::transport::{HttpTransport, RequestMeta, Transport};
use crate::sync::wire::{LoginRequest, PullResponse, RefreshRequest, SERVER_RESTORED};

mod progress;

pub use progress::{Progress, SyncReport};

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

/// The device and token an authorised call is made with.
struct Access {
    client_id: String,
    token: String,
    /// Whether the token was renewed for this call already (a 401 then needs a new sign-in).
    renewed: bool,
}

/// A pull page asked for while the page before it was stored: the cursor it was asked with,
/// the access it went out with, and the answer with the time it arrived.
type PageAhead = (Option<String>, Access, Result<PullResponse, TransportError>, i64);

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
        let access = self.access(store)?;
        let answer = call(&*self.transport, &self.meta(&access.client_id, &access.token));
        self.answered(store, access, answer, call)
    }

    /// The token an authorised call goes out with, renewed first when it is about to expire.
    fn access(&self, store: &Mutex<Store>) -> SyncResult<Access> {
        let (client_id, tokens, account) =
            locked(store, |store| (store.node().to_uuid_string(), state::tokens(&store.conn), state::account(&store.conn)));
        let tokens = match tokens? {
            Some(tokens) => tokens,
            None if account?.is_some() => return Err(SyncError::SignInRequired(None)),
            None => return Err(SyncError::NotSignedIn),
        };
        if tokens.expires_at <= hlc::wall_ms() + 30_000 {
            let token = self.refresh(store, &client_id)?;
            return Ok(Access { client_id, token, renewed: true });
        }
        Ok(Access { client_id, token: tokens.access_token, renewed: false })
    }

    /// Ends an authorised call whose first answer is `answer` (made with `access`, perhaps on
    /// another thread): a 401 renews the token once and calls again.
    fn answered<T>(
        &self,
        store: &Mutex<Store>,
        mut access: Access,
        mut answer: Result<T, TransportError>,
        call: impl Fn(&dyn Transport, &RequestMeta) -> Result<T, TransportError>,
    ) -> SyncResult<T> {
        loop {
            match answer {
                Ok(value) => return Ok(value),
                Err(error) if error.status() == Some(401) && !access.renewed => {
                    access.token = self.refresh(store, &access.client_id)?;
                    access.renewed = true;
                    answer = call(&*self.transport, &self.meta(&access.client_id, &access.token));
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

    /// Pulls until the server has nothing more. The next page is asked for as soon as a page is
    /// parsed (its cursor is the one the page stores) and travels, and is parsed, on a thread of
    /// its own while the page is stored; it is taken only if the stored cursor is the one it was
    /// asked with. A failure to fetch it is met after the page before it is stored.
    fn pull_all(&self, store: &Mutex<Store>, progress: &dyn Fn(&Progress), report: &mut SyncReport) -> SyncResult<()> {
        let mut resets = 0;
        let limit = self.options.pull_limit;
        let mut ahead: Option<PageAhead> = None;
        loop {
            let cursor = locked(store, |store| pull::cursor(store))?;
            let call = |transport: &dyn Transport, meta: &RequestMeta| transport.pull(cursor.as_deref(), limit, meta);
            let (answer, arrived) = match ahead.take() {
                Some((asked, access, answer, at)) if asked == cursor => {
                    let arrived = answer.is_ok().then_some(at);
                    (self.answered(store, access, answer, call), arrived)
                }
                _ => (self.authorised_call(store, call), None),
            };
            let page = match answer {
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
            let received_at = arrived.unwrap_or_else(hlc::wall_ms);
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
            let more = has_more || (page.reset.is_some() && page.cursor.is_empty());
            let next = (!page.cursor.is_empty()).then(|| page.cursor.clone());
            // Without a token now, the next request meets the same error after this page is stored.
            let access = if more { self.access(store).ok() } else { None };
            let (stored, applying, fetched) = std::thread::scope(|scope| {
                let fetching = access.map(|access| {
                    let (meta, next, transport) = (self.meta(&access.client_id, &access.token), next.clone(), &*self.transport);
                    (access, scope.spawn(move || (transport.pull(next.as_deref(), limit, &meta), hlc::wall_ms())))
                });
                let applying = Instant::now();
                let stored = locked(store, |store| {
                    outbox::observe_server_time(store, server_time, received_at)?;
                    pull::apply_owned_page(store, page, scopes.as_deref())
                });
                (stored, applying.elapsed(), fetching.map(|(access, thread)| (access, thread.join())))
            });
            stored?;
            report.apply_micros += applying.as_micros() as u64;
            report.pages += 1;
            report.rows += rows;
            progress(&Progress::Pulled { pages: report.pages, rows: report.rows, has_more });
            if let Some((access, joined)) = fetched {
                let (answer, at) = joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                ahead = Some((next, access, answer, at));
            }
            if !more {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::hlc::NodeId;
    use crate::sync::wire::{PulledRow, PushRequest, PushResponse, TokenResponse};

    /// A server of a history of `pages` pages of one household each, asked for by the page's
    /// number as its cursor. It writes what happens into a log the test shares, and answers the
    /// pulls of the pages in `dropped` with a dropped connection and those in `unauthorised`
    /// with 401, once each.
    struct Pages {
        pages: usize,
        log: Arc<Mutex<Vec<String>>>,
        dropped: Mutex<Vec<usize>>,
        unauthorised: Mutex<Vec<usize>>,
    }

    impl Pages {
        fn note(&self, entry: String) {
            self.log.lock().unwrap().push(entry);
        }
    }

    fn refused<T>(status: u16) -> Result<T, TransportError> {
        Err(TransportError::Status { status, body: None, text: String::new() })
    }

    fn tokens(token: &str) -> TokenResponse {
        TokenResponse {
            access_token: token.into(),
            expires_at: hlc::wall_ms() + 3_600_000,
            refresh_token: "refresh".into(),
            assistant_id: "7".into(),
            scopes: vec!["530102001001".into()],
        }
    }

    fn id(page: usize) -> String {
        format!("0190a000-0000-7000-8000-{page:012}")
    }

    impl Transport for Pages {
        fn login(&self, _: &LoginRequest, _: &RequestMeta) -> Result<TokenResponse, TransportError> {
            Ok(tokens("first"))
        }
        fn refresh(&self, _: &RefreshRequest, _: &RequestMeta) -> Result<TokenResponse, TransportError> {
            self.note("renewed".into());
            Ok(tokens("renewed"))
        }
        fn logout(&self, _: &RefreshRequest, _: &RequestMeta) -> Result<(), TransportError> {
            Ok(())
        }
        fn push(&self, _: &PushRequest, _: &RequestMeta) -> Result<PushResponse, TransportError> {
            refused(500)
        }
        fn pull(&self, cursor: Option<&str>, _: usize, _: &RequestMeta) -> Result<PullResponse, TransportError> {
            let page: usize = cursor.map_or(0, |cursor| cursor.parse().unwrap());
            self.note(format!("asked {page}"));
            let once = |pages: &Mutex<Vec<usize>>| {
                let mut pages = pages.lock().unwrap();
                let at = pages.iter().position(|listed| *listed == page);
                at.map(|at| pages.remove(at)).is_some()
            };
            if once(&self.dropped) {
                return Err(TransportError::Network("the connection dropped".into()));
            }
            if once(&self.unauthorised) {
                return refused(401);
            }
            let node = NodeId([9; 16]).to_base64();
            let mut fields = BTreeMap::new();
            fields.insert("scope_id".to_owned(), (json!("530102001001"), 1_000 + page as i64, node.clone()));
            fields.insert("head_name".to_owned(), (json!(format!("户主{page}")), 1_000 + page as i64, node));
            let row = PulledRow { tbl: "households".into(), id: id(page), scope_id: "530102001001".into(), sv: page as i64 + 1, fields };
            Ok(PullResponse { cursor: (page + 1).to_string(), has_more: page + 1 < self.pages, server_time: hlc::wall_ms(), reset: None, rows: vec![row] })
        }
        fn blob_exists(&self, _: &str, _: &RequestMeta) -> Result<bool, TransportError> {
            refused(404)
        }
        fn start_upload(&self, _: &str, _: u64, _: &str, _: &RequestMeta) -> Result<String, TransportError> {
            refused(404)
        }
        fn upload_offset(&self, _: &str, _: &RequestMeta) -> Result<u64, TransportError> {
            refused(404)
        }
        fn upload_chunk(&self, _: &str, _: u64, _: &[u8], _: &RequestMeta) -> Result<u64, TransportError> {
            refused(404)
        }
        fn download_blob(&self, _: &str, _: u64, _: &mut dyn std::io::Write, _: &RequestMeta) -> Result<u64, TransportError> {
            refused(404)
        }
    }

    /// A signed-in device over a history of `pages` pages; the log of what the server saw and
    /// what the device stored.
    fn device(pages: usize, dropped: Vec<usize>, unauthorised: Vec<usize>) -> (Mutex<Store>, SyncEngine, Arc<Mutex<Vec<String>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let server = Pages { pages, log: log.clone(), dropped: Mutex::new(dropped), unauthorised: Mutex::new(unauthorised) };
        let engine = SyncEngine::with_transport(Box::new(server), "http://127.0.0.1:9", SyncOptions::default());
        let store = Mutex::new(Store::open_in_memory().unwrap());
        engine.login(&store, "assistant", "secret", "laptop").unwrap();
        (store, engine, log)
    }

    fn sync(store: &Mutex<Store>, engine: &SyncEngine, log: &Arc<Mutex<Vec<String>>>) -> SyncResult<SyncReport> {
        engine.sync(store, &|event| {
            if let Progress::Pulled { pages, .. } = event {
                log.lock().unwrap().push(format!("stored {pages}"));
            }
        })
    }

    fn households(store: &Mutex<Store>) -> Vec<String> {
        let store = store.lock().unwrap();
        let mut statement = store.conn.prepare("SELECT head_name FROM households ORDER BY id").unwrap();
        let names = statement.query_map([], |row| row.get(0)).unwrap();
        names.map(Result::unwrap).collect()
    }

    #[test]
    fn the_next_page_is_asked_for_while_the_page_before_it_is_stored() {
        let (store, engine, log) = device(4, vec![], vec![]);
        let report = sync(&store, &engine, &log).unwrap();
        assert_eq!((report.pages, report.rows), (4, 4));
        assert_eq!(
            *log.lock().unwrap(),
            ["asked 0", "asked 1", "stored 1", "asked 2", "stored 2", "asked 3", "stored 3", "stored 4"],
            "each page is asked for before the one before it is reported stored, and none twice"
        );
        assert_eq!(households(&store), ["户主0", "户主1", "户主2", "户主3"]);
    }

    #[test]
    fn a_page_that_fails_while_the_one_before_is_stored_keeps_that_one_and_the_next_sync_resumes_there() {
        let (store, engine, log) = device(4, vec![2], vec![]);
        let error = sync(&store, &engine, &log).expect_err("the dropped page stops the sync");
        assert!(error.is_retryable(), "{error}");
        assert_eq!(households(&store), ["户主0", "户主1"], "the pages before the dropped one are stored");
        assert_eq!(pull::cursor(&store.lock().unwrap()).unwrap().as_deref(), Some("2"));
        log.lock().unwrap().clear();
        sync(&store, &engine, &log).unwrap();
        assert_eq!(log.lock().unwrap()[0], "asked 2", "the next sync starts at the dropped page");
        assert_eq!(households(&store), ["户主0", "户主1", "户主2", "户主3"]);
    }

    #[test]
    fn a_page_asked_for_ahead_and_refused_as_unauthorised_is_asked_again_with_a_renewed_token() {
        let (store, engine, log) = device(3, vec![], vec![1]);
        let report = sync(&store, &engine, &log).unwrap();
        assert_eq!(report.rows, 3);
        assert_eq!(*log.lock().unwrap(), ["asked 0", "asked 1", "stored 1", "renewed", "asked 1", "asked 2", "stored 2", "stored 3"]);
        assert_eq!(households(&store), ["户主0", "户主1", "户主2"]);
    }
}
