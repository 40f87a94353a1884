//! 同步 Sync commands: sign-in, the status the indicator shows, and syncing with progress
//! events. Until the device sync engine is part of the core, sign-in keeps the account details
//! and the app works offline; the status is still real (pending changes and reachability).

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::Serialize;
use tauri::{AppHandle, Emitter, State};
use ts_rs::TS;

use crate::error::{CommandError, CommandResult};
use crate::state::{AppState, Settings};

/// What the sync indicator shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SyncStatus {
    /// Whether the server answered a connection just now.
    pub online: bool,
    /// Local changes not yet acknowledged by the server.
    pub pending: i64,
    /// When the last sync succeeded (RFC 3339), if ever.
    pub last_sync_at: Option<String>,
    /// Whether the device has an account on a server.
    pub signed_in: bool,
    /// Whether this build can sync (the engine is present).
    pub can_sync: bool,
}

/// One step of a sync, sent as the `sync-progress` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SyncProgress {
    /// `push`, `pull` or `done`.
    pub phase: String,
    /// Steps done.
    pub done: i64,
    /// Steps in all (an estimate while pulling).
    pub total: i64,
}

/// Whether a TCP connection to the server's host and port opens within a second.
fn reachable(server_url: &str) -> bool {
    let without_scheme = server_url.split("://").nth(1).unwrap_or(server_url);
    let authority = without_scheme.split('/').next().unwrap_or_default();
    let default_port = if server_url.starts_with("https://") { 443 } else { 80 };
    let address = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:{default_port}") };
    let Ok(mut addresses) = address.to_socket_addrs() else { return false };
    addresses.any(|address| TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok())
}

/// The sync indicator's figures.
#[tauri::command]
pub async fn sync_status(state: State<'_, AppState>) -> CommandResult<SyncStatus> {
    let settings = state.settings();
    let pending = state.with_store(|store| store.pending_changes()).await?;
    let server_url = settings.server_url.clone();
    let online = tauri::async_runtime::spawn_blocking(move || reachable(&server_url)).await.unwrap_or(false);
    Ok(SyncStatus { online, pending, last_sync_at: settings.last_sync_at, signed_in: settings.signed_in, can_sync: false })
}

/// Signs in to a server. Without the sync engine the account details are kept and the app
/// opens offline; the password is never stored.
#[tauri::command]
pub async fn sign_in(state: State<'_, AppState>, server_url: String, username: String, password: String) -> CommandResult<Settings> {
    let mut fields = Vec::new();
    if !(server_url.starts_with("http://") || server_url.starts_with("https://")) {
        fields.push(furrow::FieldError::new("server_url", "invalid_url", "地址应以 http:// 或 https:// 开头", "must start with http:// or https://"));
    }
    if username.trim().is_empty() {
        fields.push(furrow::FieldError::new("username", "required", "必填", "is required"));
    }
    if password.is_empty() {
        fields.push(furrow::FieldError::new("password", "required", "必填", "is required"));
    }
    if !fields.is_empty() {
        return Err(CommandError { fields: Some(fields), ..CommandError::new("validation", "请填写完整", "please complete the form") });
    }
    state.update_settings(|settings| {
        settings.server_url = server_url.trim_end_matches('/').to_owned();
        settings.username = username.trim().to_owned();
        settings.signed_in = true;
    })
}

/// Opens the app without signing in; everything is kept on this device until a sign-in.
#[tauri::command]
pub async fn work_offline(state: State<'_, AppState>) -> CommandResult<Settings> {
    state.update_settings(|settings| settings.signed_in = true)
}

/// Syncs with the server, sending `sync-progress` events. Refused until the engine exists.
#[tauri::command]
pub async fn sync_now(app: AppHandle, state: State<'_, AppState>) -> CommandResult<SyncStatus> {
    let _ = app.emit("sync-progress", SyncProgress { phase: "done".into(), done: 0, total: 0 });
    let _ = state;
    Err(CommandError::new("sync_unavailable", "此版本尚不能同步，数据已安全保存在本机", "this version cannot sync yet; your data is kept safely on this device"))
}
