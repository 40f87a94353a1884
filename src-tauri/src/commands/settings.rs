//! 设置 Settings commands: language, server address, data location, backup.

use serde::Serialize;
use tauri::State;
use ts_rs::TS;

use crate::error::{CommandError, CommandResult};
use crate::state::{AppState, Settings, DATABASE_FILE};

/// The settings with where the data lives, for the settings screen.
#[derive(Debug, Clone, Serialize, TS)]
pub struct SettingsView {
    /// The stored settings.
    pub settings: Settings,
    /// The data directory in use.
    pub data_dir: String,
    /// The database file in use.
    pub database_file: String,
    /// The demo account the sign-in screen offers, when the app was started for a demo.
    pub demo_account: Option<crate::demo::DemoAccount>,
}

/// The current settings.
#[tauri::command]
pub async fn get_settings(state: State<'_, AppState>) -> CommandResult<SettingsView> {
    Ok(SettingsView {
        settings: state.settings(),
        data_dir: state.data_dir.display().to_string(),
        database_file: state.data_dir.join(DATABASE_FILE).display().to_string(),
        demo_account: crate::demo::demo_account(),
    })
}

/// Adds the demo households the demo account asks for, when the device holds no household
/// (so the server had none either); returns how many it added. Without a demo account it does
/// nothing.
#[tauri::command]
pub async fn seed_demo(state: State<'_, AppState>) -> CommandResult<usize> {
    let Some(account) = crate::demo::demo_account().filter(|account| account.households > 0) else { return Ok(0) };
    state.with_store(move |store| crate::demo::seed_if_no_households(store, account.households as usize)).await
}

/// Sets the interface language (`zh-CN` or `en`) and keeps it for the next start.
#[tauri::command]
pub async fn set_language(state: State<'_, AppState>, language: String) -> CommandResult<Settings> {
    if language != "zh-CN" && language != "en" {
        return Err(CommandError::new("invalid_language", "不支持的语言", "unsupported language"));
    }
    state.update_settings(|settings| settings.language = language)
}

/// Sets the sync server's address. Plain `http` is refused (the `server_url` field's
/// `insecure_address` error, saying why) unless the host is this computer or one the user
/// allowed with [`allow_insecure_host`].
#[tauri::command]
pub async fn set_server_url(state: State<'_, AppState>, server_url: String) -> CommandResult<Settings> {
    let server_url = furrow::sync::check_server_address(&server_url, &state.settings().insecure_hosts).map_err(|error| CommandError {
        fields: Some(vec![error]),
        ..CommandError::new("validation", "服务器地址有误", "the server address is not valid")
    })?;
    state.update_settings(|settings| settings.server_url = server_url)
}

/// Allows unencrypted `http` for `host`, which the user confirmed in Settings after being told
/// what anyone on the network could then read. Other hosts still need `https`.
#[tauri::command]
pub async fn allow_insecure_host(state: State<'_, AppState>, host: String) -> CommandResult<Settings> {
    let host = furrow::sync::address::normalize_host(&host).map_err(|error| CommandError {
        fields: Some(vec![error]),
        ..CommandError::new("validation", "服务器名称有误", "the server name is not valid")
    })?;
    state.update_settings(|settings| {
        // The host is in its normal form already, so this cannot fail.
        let _ = settings.allow_insecure_host(&host);
    })
}

/// Withdraws the exception for `host`: signing in to it over plain `http` is refused again.
#[tauri::command]
pub async fn forget_insecure_host(state: State<'_, AppState>, host: String) -> CommandResult<Settings> {
    state.update_settings(|settings| settings.forget_insecure_host(&host))
}
