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

/// Sets the sync server's address.
#[tauri::command]
pub async fn set_server_url(state: State<'_, AppState>, server_url: String) -> CommandResult<Settings> {
    let server_url = server_url.trim().trim_end_matches('/').to_owned();
    if !(server_url.starts_with("http://") || server_url.starts_with("https://")) {
        return Err(CommandError {
            fields: Some(vec![furrow::FieldError::new(
                "server_url",
                "invalid_url",
                "地址应以 http:// 或 https:// 开头",
                "must start with http:// or https://",
            )]),
            ..CommandError::new("validation", "服务器地址有误", "the server address is not valid")
        });
    }
    state.update_settings(|settings| settings.server_url = server_url)
}
