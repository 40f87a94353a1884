//! 锁定与密码 Lock and passphrase: the first passphrase, unlocking at each start, locking after
//! idle, changing the passphrase, "forgot my passphrase", and encrypted backups with a restore.
//! The keys themselves are the core's (`furrow::vault`, `furrow::encryption`, `furrow::backup`).

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use furrow::encryption::{self, Lock};
use furrow::vault::{Vault, VaultError};
use serde::Serialize;
use tauri::{AppHandle, Manager, State};
use ts_rs::TS;

use crate::error::{CommandError, CommandResult};
use crate::state::{AppState, Gate, Settings};

impl From<VaultError> for CommandError {
    fn from(error: VaultError) -> Self {
        if let VaultError::Store(inner) = error {
            return inner.into();
        }
        Self {
            code: error.code().to_owned(),
            message: error.to_string(),
            message_zh: error.message_zh(),
            message_en: error.message_en(),
            fields: None,
        }
    }
}

/// What the window shows before anything else.
#[derive(Debug, Clone, Serialize, TS)]
pub struct VaultStatus {
    /// `new` (choose a passphrase), `plain` (choose one; the store of an older version is then
    /// encrypted), `locked` (enter it), `missing_key` (the key file is gone) or `open`.
    pub stage: String,
    /// Whether the window is locked (after idle) while the store stays open.
    pub locked: bool,
    /// Seconds of idle before the window locks.
    pub lock_after_seconds: u32,
    /// The interface language, readable before the store is open.
    pub language: String,
}

/// The lock state of the store and the window.
#[tauri::command]
pub async fn vault_status(gate: State<'_, Gate>) -> CommandResult<VaultStatus> {
    let settings = Settings::load(&gate.data_dir);
    let stage = if gate.opened.load(Ordering::SeqCst) {
        "open"
    } else {
        match encryption::lock_state(&gate.database())? {
            Lock::New => "new",
            Lock::Plain => "plain",
            Lock::Locked => "locked",
            Lock::MissingKey => "missing_key",
        }
    };
    Ok(VaultStatus {
        stage: stage.to_owned(),
        locked: gate.locked.load(Ordering::SeqCst),
        lock_after_seconds: settings.lock_after_seconds,
        language: settings.language,
    })
}

/// Sets up (a new device or a plain store) or unlocks the store with `passphrase`, then builds
/// the app's state and starts its background work. Used by the commands below and by a start
/// with [`crate::state::PASSPHRASE_VARIABLE`].
pub fn open_store(app: &AppHandle, passphrase: &str, first: bool) -> CommandResult<()> {
    let gate = app.state::<Gate>();
    let _opening = gate.opening.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if gate.opened.load(Ordering::SeqCst) {
        return Ok(());
    }
    let path = gate.database();
    let (mut store, key) = if first { encryption::set_up(&path, passphrase)? } else { encryption::unlock(&path, passphrase)? };
    if let Some(count) = crate::demo_households() {
        crate::demo::seed_if_empty(&mut store, count)?;
    }
    let state = AppState::from_store(gate.data_dir.clone(), store, key)?;
    crate::housekeeping::start(std::sync::Arc::clone(&state.store));
    app.manage(state);
    crate::autosync::start(app.clone());
    gate.opened.store(true, Ordering::SeqCst);
    gate.locked.store(false, Ordering::SeqCst);
    Ok(())
}

/// Chooses the device passphrase on a first start (or for a plain store of an older version,
/// which is then encrypted) and opens the store.
#[tauri::command]
pub async fn set_passphrase(app: AppHandle, passphrase: String) -> CommandResult<()> {
    tauri::async_runtime::spawn_blocking(move || open_store(&app, &passphrase, true)).await.map_err(CommandError::background)?
}

/// Unlocks: at a start, opens the store; when the window locked after idle, checks the
/// passphrase against the key file and unlocks the window.
#[tauri::command]
pub async fn unlock(app: AppHandle, passphrase: String) -> CommandResult<()> {
    tauri::async_runtime::spawn_blocking(move || {
        let gate = app.state::<Gate>();
        if gate.opened.load(Ordering::SeqCst) {
            Vault::load(&gate.database())?.unlock(&passphrase)?;
            gate.locked.store(false, Ordering::SeqCst);
            Ok(())
        } else {
            open_store(&app, &passphrase, false)
        }
    })
    .await
    .map_err(CommandError::background)?
}

/// Locks the window (after idle, or on request); the store stays open so sync goes on.
#[tauri::command]
pub async fn lock(gate: State<'_, Gate>) -> CommandResult<()> {
    if gate.opened.load(Ordering::SeqCst) {
        gate.locked.store(true, Ordering::SeqCst);
    }
    Ok(())
}

/// Changes the device passphrase: the data key is wrapped again, the store is not touched.
#[tauri::command]
pub async fn change_passphrase(gate: State<'_, Gate>, old: String, new: String) -> CommandResult<()> {
    let path = gate.database();
    tauri::async_runtime::spawn_blocking(move || Vault::load(&path)?.change_passphrase(&old, &new).map_err(CommandError::from))
        .await
        .map_err(CommandError::background)?
}

/// Sets how long the window may sit idle before it locks (at least 5 seconds, at most a day).
#[tauri::command]
pub async fn set_lock_after(state: State<'_, AppState>, seconds: u32) -> CommandResult<Settings> {
    if !(5..=24 * 60 * 60).contains(&seconds) {
        return Err(CommandError::new("invalid_lock_after", "锁定时间应在 5 秒到 24 小时之间", "the lock time must be between 5 seconds and 24 hours"));
    }
    state.update_settings(|settings| settings.lock_after_seconds = seconds)
}

/// "Forgot my passphrase": removes the locked store and its key file so the device starts anew;
/// records that reached the server come back with the next sign-in, unsynced ones are lost.
/// The window asks twice; `confirmation` must be `忘记密码` to go ahead.
#[tauri::command]
pub async fn forget_passphrase(gate: State<'_, Gate>, confirmation: String) -> CommandResult<()> {
    if gate.opened.load(Ordering::SeqCst) {
        return Err(CommandError::new("store_open", "数据已解锁，无需重设密码", "the store is unlocked; there is no passphrase to forget"));
    }
    if confirmation != "忘记密码" {
        return Err(CommandError::new("not_confirmed", "未确认，数据未删除", "not confirmed; nothing was deleted"));
    }
    let path = gate.database();
    for suffix in ["", "-wal", "-shm", ".key", ".encrypting", ".encrypted", ".replaced"] {
        let mut name = path.clone().into_os_string();
        name.push(suffix);
        let file = PathBuf::from(name);
        if file.exists() {
            std::fs::remove_file(&file)?;
        }
    }
    Ok(())
}

/// Writes an encrypted backup into `directory` (a folder the user picked, e.g. a USB stick):
/// with the device key, or with `passphrase` when one is chosen for the backup. Returns its path.
#[tauri::command]
pub async fn export_backup(state: State<'_, AppState>, directory: String, passphrase: Option<String>) -> CommandResult<String> {
    let store = std::sync::Arc::clone(&state.store);
    let database = state.data_dir.join(crate::state::DATABASE_FILE);
    let key = state.key.clone();
    tauri::async_runtime::spawn_blocking(move || {
        let store = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let protection = match passphrase.as_deref().filter(|text| !text.is_empty()) {
            Some(passphrase) => furrow::backup::BackupKey::Passphrase(passphrase),
            None => furrow::backup::BackupKey::Device,
        };
        furrow::backup::back_up(&store, &database, &key, &PathBuf::from(directory), protection)
            .map(|path| path.display().to_string())
            .map_err(CommandError::from)
    })
    .await
    .map_err(CommandError::background)?
}

/// What a backup holds (records per table, unsynced records, when it was made), read with its
/// passphrase, before it is restored.
#[tauri::command]
pub async fn preview_backup(file: String, passphrase: String) -> CommandResult<furrow::backup::BackupPreview> {
    tauri::async_runtime::spawn_blocking(move || furrow::backup::preview(&PathBuf::from(file), &passphrase).map_err(CommandError::from))
        .await
        .map_err(CommandError::background)?
}

/// Restores a backup in place of the open store. When this device has unsynced work and
/// `discard_unsynced` is false nothing changes and the error `unsynced_work` says how many
/// records would be lost, so the window can ask.
#[tauri::command]
pub async fn restore_backup(state: State<'_, AppState>, file: String, passphrase: String, discard_unsynced: bool) -> CommandResult<()> {
    let store = std::sync::Arc::clone(&state.store);
    let database = state.data_dir.join(crate::state::DATABASE_FILE);
    let key = state.key.clone();
    let outcome = tauri::async_runtime::spawn_blocking(move || -> CommandResult<Option<i64>> {
        let mut store = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // The file store is closed while its file is replaced; the in-memory one stands in.
        drop(std::mem::replace(&mut *store, furrow::Store::open_in_memory()?));
        let restored = furrow::backup::restore(&database, &PathBuf::from(file), &passphrase, Some(&key), discard_unsynced);
        *store = encryption::open_with_key(&database, &key)?;
        Ok(restored?.err().map(|unsynced| unsynced.records))
    })
    .await
    .map_err(CommandError::background)??;
    if let Some(records) = outcome {
        return Err(CommandError::new(
            "unsynced_work",
            format!("本机有 {records} 条记录尚未同步，恢复备份会丢失这些修改"),
            format!("{records} records on this laptop are not synced yet; restoring the backup would lose those changes"),
        ));
    }
    let engine = state.with_store(|store| Ok(furrow::sync::SyncEngine::for_store(store).ok())).await?;
    *state.engine.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) =
        engine.map(|engine| std::sync::Arc::new(engine.with_media_dir(crate::state::media_dir(&state.data_dir))));
    Ok(())
}

/// A member's full identity card number, shown on request; the reveal is recorded on the device.
#[tauri::command]
pub async fn reveal_id_card(state: State<'_, AppState>, member_id: String) -> CommandResult<Option<String>> {
    state.with_store(move |store| furrow::audit::reveal_id_card(store, &member_id)).await
}

/// The latest reveals of full identity card numbers on this device, newest first.
#[tauri::command]
pub async fn id_card_reveals(state: State<'_, AppState>) -> CommandResult<Vec<furrow::audit::IdCardReveal>> {
    state.with_store(|store| furrow::audit::reveals(store, 200)).await
}
