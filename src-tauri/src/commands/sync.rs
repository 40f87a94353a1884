//! 同步 Sync commands: sign-in, the status the indicator shows, syncing with progress events,
//! and the conflicts list. Every call to the engine runs on a blocking thread; the engine takes
//! the store's lock only for each short step, so the window stays usable during a sync. The
//! same sync runs from the 同步 button and from the thread that syncs by itself
//! ([`crate::autosync`]), one at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use furrow::sync::status::{self, Resolution};
use furrow::sync::{Progress, SyncEngine, SyncError, SyncReport};
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, State};
use ts_rs::TS;

use crate::autosync::Outcome;
use crate::error::{CommandError, CommandResult};
use crate::state::{AppState, Settings};

/// What the sync indicator shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SyncStatus {
    /// Whether the server answered its health check just now.
    pub online: bool,
    /// Records with changes not yet acknowledged by the server (a new household is one, however
    /// many of its fields wait).
    pub pending: i64,
    /// When the last sync succeeded (RFC 3339), if ever.
    pub last_sync_at: Option<String>,
    /// Whether the device has an account on a server.
    pub signed_in: bool,
    /// Whether the device can sync now (it has signed in to a server).
    pub can_sync: bool,
    /// Unresolved conflicts.
    pub open_conflicts: i64,
    /// Why the last sync failed, if it did.
    pub last_error: Option<String>,
    /// Whether a sync is under way (the button's or the one the app makes by itself).
    pub syncing: bool,
    /// When the app tries again by itself after a failed sync (RFC 3339), if it will; `None`
    /// while offline (it syncs as soon as the server answers) or when the user must act.
    pub retry_at: Option<String>,
    /// Whether the app waits for the user (sign in again, update) before it syncs again.
    pub needs_user: bool,
}

/// One step of a sync, sent as the `sync-progress` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SyncProgress {
    /// `push`, `pull`, `retry` or `done`.
    pub phase: String,
    /// Steps done.
    pub done: i64,
    /// Steps in all (an estimate while pulling).
    pub total: i64,
}

pub use furrow::sync::ConflictView;

/// The sync state of one field of a record, as the record's badge explains it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct FieldSync {
    /// The field.
    pub field: String,
    /// `pending`, `sent`, `accepted`, `superseded` or `rejected`.
    pub state: String,
    /// Why it was rejected (`stale_base`, `server_only`, `forbidden`, `invalid`).
    pub reason: Option<String>,
}

/// The sync state of a record: the most pressing state of its fields, and each field's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct RecordSync {
    /// The record's id.
    pub id: String,
    /// `synced`, `pending`, `sent`, `accepted`, `superseded` or `rejected`.
    pub state: String,
    /// The fields with something to report.
    pub fields: Vec<FieldSync>,
}

fn rfc3339(milliseconds: i64) -> String {
    chrono::DateTime::from_timestamp_millis(milliseconds).map(|time| time.to_rfc3339()).unwrap_or_default()
}

/// Whether the sync server answers: its health endpoint replies with success within two
/// seconds. An open port is not enough: a proxy, a relay or another program can accept the
/// connection while the server itself is down, and the indicator must not say 在线 then.
pub fn reachable(server_url: &str) -> bool {
    let Ok(client) = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build() else { return false };
    client
        .get(format!("{}/health", server_url.trim_end_matches('/')))
        .send()
        .map(|response| response.status().is_success())
        .unwrap_or(false)
}

/// The server this device syncs with: the one it signed in to, else the address in the settings.
pub fn server_url(state: &AppState) -> Option<String> {
    let account = {
        let store = state.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        status::signed_in_account(&store).ok().flatten()
    };
    let url = account.map(|account| account.server_url).unwrap_or_else(|| state.settings().server_url);
    (!url.is_empty()).then_some(url)
}

/// The indicator's figures, read on a blocking thread. `online` is a probe just made by the
/// caller; without one, the server is asked now. A probe that finds the connection back wakes
/// the thread that syncs by itself.
pub fn status_blocking(state: &AppState, online: Option<bool>) -> CommandResult<SyncStatus> {
    let (summary, pending) = {
        let store = state.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        (status::summary(&store)?, store.pending_records()?)
    };
    let server_url = summary.account.as_ref().map(|account| account.server_url.clone()).unwrap_or_else(|| state.settings().server_url);
    let online = online.unwrap_or_else(|| reachable(&server_url));
    let can_sync = state.engine().is_some();
    if can_sync && state.auto.with_schedule(|schedule| schedule.observe(online)) {
        state.auto.wake();
    }
    Ok(SyncStatus {
        online,
        pending,
        last_sync_at: summary.last_sync_at.map(rfc3339),
        signed_in: summary.account.is_some(),
        can_sync,
        open_conflicts: summary.open_conflicts,
        last_error: summary.last_error,
        syncing: state.auto.syncing(),
        retry_at: state.auto.next_attempt_at().map(|at| chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339()),
        needs_user: state.auto.with_schedule(|schedule| schedule.needs_user()),
    })
}

async fn status_of(app: &AppHandle) -> CommandResult<SyncStatus> {
    let app = app.clone();
    tauri::async_runtime::spawn_blocking(move || status_blocking(&app.state::<AppState>(), None))
        .await
        .map_err(CommandError::background)?
}

/// Runs one sync on the calling (blocking) thread, one at a time: the 同步 button's and the
/// automatic ones wait for each other. Progress goes to the window as `sync-progress` events,
/// the outcome to the schedule of automatic syncs, and a success to the settings' last sync time.
pub fn sync_blocking(app: &AppHandle, state: &AppState, engine: Arc<SyncEngine>) -> Result<SyncReport, SyncError> {
    let _one_at_a_time = state.sync_gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let _syncing = state.auto.begin();
    let total = {
        let store = state.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        store.pending_changes()?.max(1)
    };
    let send = |phase: &str, done: i64, total: i64| {
        // A closed window cannot take the event; the sync carries on regardless.
        let _ = app.emit("sync-progress", SyncProgress { phase: phase.to_owned(), done, total });
    };
    let result = engine.sync(&state.store, &|progress| match progress {
        Progress::Started => send("push", 0, total),
        Progress::Pushing { remaining, .. } => send("push", (total - remaining).clamp(0, total), total),
        Progress::Pulled { has_more, .. } => send("pull", if *has_more { total * 9 / 10 } else { total }, total),
        Progress::Retrying { attempt, .. } => send("retry", i64::from(*attempt), total),
        Progress::Finished(_) => send("done", total, total),
        _ => {}
    });
    let outcome = match &result {
        Ok(_) => Outcome::Synced,
        Err(error) if error.is_retryable() => Outcome::Retryable,
        Err(_) => Outcome::NeedsUser,
    };
    state.auto.with_schedule(|schedule| schedule.record(outcome, Instant::now()));
    if result.is_ok() {
        if let Err(error) = state.update_settings(|settings| settings.last_sync_at = Some(chrono::Utc::now().to_rfc3339())) {
            tracing::warn!(message = %error.message, "the last sync time could not be saved");
        }
    } else {
        send("failed", 0, total);
    }
    result
}

/// The sync indicator's figures.
#[tauri::command]
pub async fn sync_status(app: AppHandle) -> CommandResult<SyncStatus> {
    status_of(&app).await
}

/// Signs in to a server (this needs the server once); afterwards the app works offline and
/// syncs whenever the server answers. The password is never stored.
#[tauri::command]
pub async fn sign_in(state: State<'_, AppState>, server_url: String, username: String, password: String) -> CommandResult<Settings> {
    let mut fields = Vec::new();
    // Plain http only to this computer or to a host the user allowed in Settings: the password
    // and the tokens must not cross a network readable by anyone on the way.
    let server_url = furrow::sync::check_server_address(&server_url, &state.settings().insecure_hosts).unwrap_or_else(|error| {
        fields.push(error);
        String::new()
    });
    if username.trim().is_empty() {
        fields.push(furrow::FieldError::new("username", "required", "必填", "is required"));
    }
    if password.is_empty() {
        fields.push(furrow::FieldError::new("password", "required", "必填", "is required"));
    }
    if !fields.is_empty() {
        return Err(CommandError { fields: Some(fields), ..CommandError::new("validation", "请填写完整", "please complete the form") });
    }
    // The engine's HTTP client blocks; it is made, used and dropped on a blocking thread only,
    // never on the async runtime's threads.
    let store = Arc::clone(&state.store);
    let user = username.trim().to_owned();
    let url = server_url.clone();
    let media = crate::state::media_dir(&state.data_dir);
    let engine = tauri::async_runtime::spawn_blocking(move || -> Result<SyncEngine, furrow::sync::SyncError> {
        let engine = SyncEngine::new(&url)?.with_media_dir(media);
        engine.login(&store, &user, &password, "田垄桌面版 Furrow desktop")?;
        Ok(engine)
    })
    .await
    .map_err(CommandError::background)?
    .map_err(|error| match error {
        // Nothing retries a sign-in by itself: say what the user can do instead.
        SyncError::Transport(transport) => match transport.status() {
            None => CommandError::new(
                "offline",
                "网络不通或服务器未响应：请检查服务器地址和网络后再登录",
                format!("The server did not answer ({transport}); check the address and the network, then sign in again"),
            ),
            Some(code) => CommandError::new(
                "offline",
                format!("服务器暂时无法登录（{code}），请稍后再登录"),
                format!("The server could not sign you in just now ({code}); sign in again later"),
            ),
        },
        other => CommandError::from(other),
    })?;
    let previous = state.engine.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).replace(Arc::new(engine));
    if let Some(previous) = previous {
        tauri::async_runtime::spawn_blocking(move || drop(previous));
    }
    let settings = state.update_settings(|settings| {
        settings.server_url = server_url;
        settings.username = username.trim().to_owned();
        settings.signed_in = true;
    })?;
    // A new session: whatever waited for the user is tried again now.
    state.auto.with_schedule(|schedule| schedule.user_acted());
    state.auto.wake();
    Ok(settings)
}

/// Signs out: the server forgets the session when it can be reached, the device forgets its
/// tokens, and the sign-in screen comes next. Every record and every unsynced change stays on the
/// device and is sent after the next sign-in to the same account.
#[tauri::command]
pub async fn sign_out(state: State<'_, AppState>) -> CommandResult<Settings> {
    let engine = state.engine.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    if let Some(engine) = engine {
        let store = Arc::clone(&state.store);
        // The engine's HTTP client blocks: it is used and dropped on a blocking thread.
        tauri::async_runtime::spawn_blocking(move || engine.logout(&store)).await.map_err(CommandError::background)??;
    }
    state.update_settings(|settings| settings.signed_in = false)
}

/// Opens the app without signing in, in the villages the device already knows. A new device
/// knows none (they come with the account, at the first sign-in), and nothing can be recorded
/// without a village: it is told so, and stays on the sign-in screen.
#[tauri::command]
pub async fn work_offline(state: State<'_, AppState>) -> CommandResult<Settings> {
    let villages = state.with_store(|store| furrow::domain::village::list(store)).await?;
    if villages.is_empty() {
        return Err(CommandError::new(
            "no_villages",
            "本设备还没有任何村的资料，离线无法登记。请先联网登录一次，取得您负责的村；之后没有信号也能工作。",
            "This device knows no village yet, so nothing could be recorded offline. Sign in once while online to get your villages; after that you can work without a signal.",
        ));
    }
    state.update_settings(|settings| settings.signed_in = true)
}

/// Syncs with the server now, sending `sync-progress` events, and returns the new status.
#[tauri::command]
pub async fn sync_now(app: AppHandle, state: State<'_, AppState>) -> CommandResult<SyncStatus> {
    let engine = state.engine().ok_or_else(|| CommandError::from(SyncError::NotSignedIn))?;
    state.auto.with_schedule(|schedule| schedule.user_acted());
    let handle = app.clone();
    tauri::async_runtime::spawn_blocking(move || sync_blocking(&handle, &handle.state::<AppState>(), engine))
        .await
        .map_err(CommandError::background)??;
    status_of(&app).await
}

impl From<status::RecordSyncState> for RecordSync {
    fn from(record: status::RecordSyncState) -> Self {
        RecordSync {
            id: record.id,
            state: state_name(record.state),
            fields: record
                .fields
                .into_iter()
                .map(|field| FieldSync { field: field.field, state: state_name(field.state), reason: field.reason })
                .collect(),
        }
    }
}

/// A state's stable name, as the front end's dictionaries know it.
fn state_name(state: status::SyncState) -> String {
    serde_json::to_value(state).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The unresolved conflicts, newest first, each with the record's name, its household and the
/// value the device holds now.
#[tauri::command]
pub async fn list_conflicts(state: State<'_, AppState>) -> CommandResult<Vec<ConflictView>> {
    state.with_store(|store| status::conflict_views(store)).await
}

/// The sync state of each of `ids` in `table` (pending, sent, accepted, superseded, rejected
/// with its reason), for the badges beside records.
#[tauri::command]
pub async fn record_sync_states(state: State<'_, AppState>, table: String, ids: Vec<String>) -> CommandResult<Vec<RecordSync>> {
    state.with_store(move |store| ids.iter().map(|id| status::record_state(store, &table, id).map(RecordSync::from)).collect()).await
}

/// Fixes a rejected edit and sends it again: writes `value` (the user's corrected value) to the
/// rejected field as a new edit through the one write path, so it is queued like any edit, and
/// closes the conflict, in one transaction. A corrected value that fails its checks is refused
/// with the field's error and the conflict stays open.
#[tauri::command]
pub async fn resend_edit(state: State<'_, AppState>, id: i64, value: serde_json::Value) -> CommandResult<()> {
    state.with_store(move |store| status::resend_edit(store, id, value)).await
}

/// Settles a conflict: `keep_mine` writes this device's value again, otherwise the server's
/// value stays.
#[tauri::command]
pub async fn resolve_conflict(state: State<'_, AppState>, id: i64, keep_mine: bool) -> CommandResult<()> {
    let resolution = if keep_mine { Resolution::KeepMine } else { Resolution::KeepTheirs };
    state.with_store(move |store| status::resolve_conflict(store, id, resolution)).await
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A port that accepts connections and answers each with `answer` (nothing when empty), as a
    /// relay or a proxy in front of a stopped server does.
    fn listener(answer: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request);
                if !answer.is_empty() {
                    let _ = stream.write_all(answer.as_bytes());
                }
            }
        });
        url
    }

    #[test]
    fn an_open_port_without_the_server_behind_it_is_not_online() {
        assert!(!super::reachable(&listener("")), "a connection that is accepted and closed is not the server");
        assert!(!super::reachable(&listener("HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")));
        let closed = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        assert!(!super::reachable(&closed), "nothing listens");
    }

    #[test]
    fn a_server_that_answers_its_health_check_is_online() {
        let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\nconnection: close\r\n\r\n{\"status\":\"ok\"}";
        assert!(super::reachable(&listener(answer)));
    }
}
