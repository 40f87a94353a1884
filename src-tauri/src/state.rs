//! The app's state, built completely at setup: the open store, the data directory and the
//! user's settings.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use furrow::sync::SyncEngine;
use furrow::Store;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::error::{CommandError, CommandResult};

/// The environment variable that overrides the data directory (tests and demos use it).
pub const DATA_DIR_VARIABLE: &str = "FURROW_DATA_DIR";

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "furrow.db";

/// The environment variable giving the device passphrase, so the demo and the end-to-end tests
/// start without a person at the keyboard: the store is set up with it on a first start (a plain
/// store of an older version is encrypted) and unlocked with it afterwards. Never set it on a
/// laptop that holds real households: anyone who can read the environment can read the store.
pub const PASSPHRASE_VARIABLE: &str = "FURROW_PASSPHRASE";

/// The settings file's name inside the data directory.
pub const SETTINGS_FILE: &str = "settings.json";

/// The user's settings, kept in `settings.json` beside the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct Settings {
    /// The interface language: `zh-CN` (the default) or `en`.
    pub language: String,
    /// The sync server's address, e.g. `http://127.0.0.1:8080`.
    pub server_url: String,
    /// The user name last signed in with.
    pub username: String,
    /// Whether the user has passed the sign-in screen (signed in or chose to work offline).
    pub signed_in: bool,
    /// When the last sync succeeded (RFC 3339), if ever.
    pub last_sync_at: Option<String>,
    /// How long the window may sit idle before it locks, in seconds (15 minutes by default).
    pub lock_after_seconds: u32,
    /// The hosts the user allowed unencrypted `http` for, in their normal form, each after a
    /// confirmation in Settings that explained the risk; any other host needs `https` unless it
    /// is this computer (see `furrow::sync::address`).
    pub insecure_hosts: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            language: "zh-CN".to_owned(),
            server_url: "http://127.0.0.1:8470".to_owned(),
            username: String::new(),
            signed_in: false,
            last_sync_at: None,
            lock_after_seconds: 15 * 60,
            insecure_hosts: Vec::new(),
        }
    }
}

impl Settings {
    /// Reads the settings in `data_dir`, or the defaults when there are none yet. A damaged
    /// file falls back to the defaults rather than keeping the app from starting.
    pub fn load(data_dir: &Path) -> Settings {
        std::fs::read(data_dir.join(SETTINGS_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Allows unencrypted `http` for `host` (a name or IP address, normalised first); returns the
    /// normal form, or the `host` field's error when it is not a bare host.
    pub fn allow_insecure_host(&mut self, host: &str) -> Result<String, furrow::FieldError> {
        let host = furrow::sync::address::normalize_host(host)?;
        if !self.insecure_hosts.contains(&host) {
            self.insecure_hosts.push(host.clone());
        }
        Ok(host)
    }

    /// Withdraws the exception for `host`: plain `http` to it is refused again.
    pub fn forget_insecure_host(&mut self, host: &str) {
        let normal = furrow::sync::address::normalize_host(host).ok();
        self.insecure_hosts.retain(|allowed| allowed != host.trim() && Some(allowed) != normal.as_ref());
    }

    /// Writes the settings to `data_dir` through a temporary file, so a crash never leaves half
    /// a file behind.
    pub fn save(&self, data_dir: &Path) -> CommandResult<()> {
        let temporary = data_dir.join(format!("{SETTINGS_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(self).map_err(furrow::Error::from)?;
        std::fs::write(&temporary, bytes)?;
        furrow::vault::set_private(&temporary, false)?;
        std::fs::rename(&temporary, data_dir.join(SETTINGS_FILE))?;
        Ok(())
    }
}

/// Where photos live: the `media` directory inside the data directory.
pub fn media_dir(data_dir: &Path) -> furrow::media::MediaDir {
    furrow::media::MediaDir::new(data_dir.join(crate::commands::photos::MEDIA_DIR))
}

/// What the window may see before the store is unlocked: where the data lives, whether the store
/// is open, and whether the window is locked (after idle; the store stays open so sync goes on).
pub struct Gate {
    /// The directory holding the database, its key file and the settings.
    pub data_dir: PathBuf,
    /// Whether the store was unlocked and the app's state is managed.
    pub opened: std::sync::atomic::AtomicBool,
    /// Whether the window is locked.
    pub locked: std::sync::atomic::AtomicBool,
    /// Held while the store is being set up or unlocked, so two unlocks never open it twice.
    pub opening: Mutex<()>,
}

impl Gate {
    /// The gate of a data directory, closed.
    pub fn new(data_dir: PathBuf) -> Gate {
        Gate {
            data_dir,
            opened: std::sync::atomic::AtomicBool::new(false),
            locked: std::sync::atomic::AtomicBool::new(false),
            opening: Mutex::new(()),
        }
    }

    /// The database file.
    pub fn database(&self) -> PathBuf {
        self.data_dir.join(DATABASE_FILE)
    }
}

/// Everything the commands share. The store sits behind a mutex because SQLite has one writer;
/// commands take it on a blocking thread, never on the UI thread.
pub struct AppState {
    /// The device store.
    pub store: Arc<Mutex<Store>>,
    /// The directory holding the database and the settings.
    pub data_dir: PathBuf,
    /// The user's settings.
    pub settings: Arc<Mutex<Settings>>,
    /// The sync engine for the server this device signed in to; `None` before a sign-in.
    pub engine: Mutex<Option<Arc<SyncEngine>>>,
    /// Held for the whole of a sync, so the 同步 button's and the automatic ones run one at a
    /// time.
    pub sync_gate: Mutex<()>,
    /// When the app syncs by itself, shared with the thread that does it.
    pub auto: crate::autosync::AutoSync,
    /// The store's data key, kept while the app runs for encrypted backups and restores.
    pub key: furrow::vault::DataKey,
}

impl AppState {
    /// The state over the store unlocked in `data_dir` with its data key; reads the settings.
    pub fn from_store(data_dir: PathBuf, store: Store, key: furrow::vault::DataKey) -> CommandResult<AppState> {
        let settings = Settings::load(&data_dir);
        // A device that signed in before syncs with the same server after a restart, offline
        // until the server answers; the account lives in the store, not in the settings.
        let engine = SyncEngine::for_store(&store).ok().map(|engine| Arc::new(engine.with_media_dir(media_dir(&data_dir))));
        Ok(AppState {
            store: Arc::new(Mutex::new(store)),
            data_dir,
            settings: Arc::new(Mutex::new(settings)),
            engine: Mutex::new(engine),
            sync_gate: Mutex::new(()),
            auto: crate::autosync::AutoSync::default(),
            key,
        })
    }

    /// Runs `work` with the store on a blocking thread, so a long query never stalls the window.
    pub async fn with_store<T, F>(&self, work: F) -> CommandResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> furrow::Result<T> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tauri::async_runtime::spawn_blocking(move || {
            // A panic in an earlier command poisons the mutex; the store itself is still
            // consistent (every write is one transaction), so keep using it.
            let mut store = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut store).map_err(CommandError::from)
        })
        .await
        .map_err(CommandError::background)?
    }

    /// The sync engine, if the device has signed in.
    pub fn engine(&self) -> Option<Arc<SyncEngine>> {
        self.engine.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// A copy of the current settings.
    pub fn settings(&self) -> Settings {
        self.settings.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Changes the settings and saves them.
    pub fn update_settings(&self, change: impl FnOnce(&mut Settings)) -> CommandResult<Settings> {
        let mut settings = self.settings.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut settings);
        settings.save(&self.data_dir)?;
        Ok(settings.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::Settings;

    #[test]
    fn settings_of_an_older_version_allow_no_insecure_host() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join(super::SETTINGS_FILE), r#"{"language":"en","server_url":"http://192.168.1.20:8470"}"#).unwrap();
        let settings = Settings::load(directory.path());
        assert_eq!(settings.language, "en");
        assert!(settings.insecure_hosts.is_empty());
        assert!(furrow::sync::check_server_address(&settings.server_url, &settings.insecure_hosts).is_err());
    }

    #[test]
    fn an_allowed_host_is_kept_once_in_its_normal_form_and_can_be_withdrawn() {
        let directory = tempfile::tempdir().unwrap();
        let mut settings = Settings::default();
        assert_eq!(settings.allow_insecure_host(" Server.Township.Local ").unwrap(), "server.township.local");
        assert_eq!(settings.allow_insecure_host("server.township.local").unwrap(), "server.township.local");
        assert_eq!(settings.allow_insecure_host("192.168.1.20:8470").unwrap_err().code, "invalid_host");
        assert_eq!(settings.insecure_hosts, ["server.township.local"]);
        settings.save(directory.path()).unwrap();
        let mut loaded = Settings::load(directory.path());
        assert_eq!(loaded.insecure_hosts, ["server.township.local"]);
        assert!(furrow::sync::check_server_address("http://server.township.local:8470", &loaded.insecure_hosts).is_ok());
        loaded.forget_insecure_host("SERVER.township.local");
        assert!(loaded.insecure_hosts.is_empty());
        assert_eq!(furrow::sync::check_server_address("http://server.township.local:8470", &loaded.insecure_hosts).unwrap_err().code, "insecure_address");
    }
}
