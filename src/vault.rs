//! The device's keys. The store is encrypted with a random 256-bit data key; the data key is kept
//! only wrapped, in a small key file beside the store (`furrow.db.key`, mode 0600), by a
//! key-encryption key derived from the device passphrase with Argon2id, under ChaCha20-Poly1305.
//! Unlocking needs nothing but the passphrase and that file, so it works offline.
//!
//! A wrong passphrase is counted in the key file, and after a few a growing wait is asked before
//! the next try; the count and the wait survive a restart because they are in the file. Changing
//! the passphrase wraps the same data key again, so the store itself is never re-encrypted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

/// The suffix of the key file beside a store or a backup: `furrow.db` has `furrow.db.key`.
pub const KEY_FILE_SUFFIX: &str = ".key";

/// The shortest passphrase accepted, in characters; a PIN of this many digits is allowed.
pub const MIN_PASSPHRASE_CHARS: usize = 6;

/// Wrong passphrases allowed before a wait is asked.
const FREE_FAILURES: u32 = 2;
/// The first wait, in seconds, doubled by every further failure.
const FIRST_WAIT_SECONDS: u64 = 5;
/// The longest wait, in seconds.
const LONGEST_WAIT_SECONDS: u64 = 15 * 60;

/// Argon2id's cost: 64 MiB of memory, two passes, two lanes. About a quarter of a second on a
/// village office laptop, and the memory makes guessing on graphics cards costly.
const MEMORY_KIB: u32 = 64 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 2;

/// What can go wrong with the device's keys. Each has a stable code and a message in Chinese and
/// English; causes are kept.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The passphrase does not unwrap the data key.
    #[error("the passphrase is wrong; {} wrong in a row", .failures)]
    WrongPassphrase {
        /// Wrong passphrases in a row, this one included.
        failures: u32,
        /// Seconds to wait before the next try (0: try again at once).
        wait_seconds: u64,
    },
    /// Too many wrong passphrases: the next try must wait.
    #[error("too many wrong passphrases; try again in {} s", .wait_seconds)]
    TooSoon {
        /// Seconds left to wait.
        wait_seconds: u64,
    },
    /// A new passphrase is too short.
    #[error("the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters")]
    WeakPassphrase,
    /// There is no key file where one is needed.
    #[error("no key file at {}", .0.display())]
    NoKeyFile(PathBuf),
    /// A key file exists already where a new one would be made.
    #[error("a key file exists already at {}", .0.display())]
    KeyFileExists(PathBuf),
    /// The key file cannot be understood.
    #[error("the key file is damaged: {0}")]
    Damaged(String),
    /// The key file could not be read or written.
    #[error("key file error: {0}")]
    Io(#[from] std::io::Error),
    /// The store behind the key failed.
    #[error(transparent)]
    Store(#[from] crate::Error),
}

impl VaultError {
    /// A stable code for the kind of error, for the UI.
    pub fn code(&self) -> &'static str {
        match self {
            VaultError::WrongPassphrase { .. } => "wrong_passphrase",
            VaultError::TooSoon { .. } => "passphrase_wait",
            VaultError::WeakPassphrase => "weak_passphrase",
            VaultError::NoKeyFile(_) => "no_key_file",
            VaultError::KeyFileExists(_) => "key_file_exists",
            VaultError::Damaged(_) => "key_file_damaged",
            VaultError::Io(_) => "io",
            VaultError::Store(error) => error.code(),
        }
    }

    /// A message for the user in Chinese.
    pub fn message_zh(&self) -> String {
        match self {
            VaultError::WrongPassphrase { wait_seconds: 0, .. } => "密码不正确，数据未打开，也未作任何改动".to_owned(),
            VaultError::WrongPassphrase { wait_seconds, .. } => {
                format!("密码不正确，数据未打开，也未作任何改动。错误次数较多，请 {wait_seconds} 秒后再试")
            }
            VaultError::TooSoon { wait_seconds } => format!("密码错误次数较多，请 {wait_seconds} 秒后再试"),
            VaultError::WeakPassphrase => format!("密码至少需要 {MIN_PASSPHRASE_CHARS} 位（可以是 {MIN_PASSPHRASE_CHARS} 位以上的数字）"),
            VaultError::NoKeyFile(path) => format!("找不到密钥文件 {}，无法打开加密的数据", path.display()),
            VaultError::KeyFileExists(path) => format!("密钥文件 {} 已存在，未覆盖", path.display()),
            VaultError::Damaged(detail) => format!("密钥文件已损坏，无法打开数据（{detail}）"),
            VaultError::Io(error) => format!("密钥文件读写错误：{error}"),
            VaultError::Store(error) => error.message_zh(),
        }
    }

    /// A message for the user in English.
    pub fn message_en(&self) -> String {
        match self {
            VaultError::WrongPassphrase { wait_seconds: 0, .. } => {
                "The passphrase is wrong; nothing was opened or changed".to_owned()
            }
            VaultError::WrongPassphrase { wait_seconds, .. } => format!(
                "The passphrase is wrong; nothing was opened or changed. After several wrong tries, please wait {wait_seconds} s"
            ),
            VaultError::TooSoon { wait_seconds } => format!("Too many wrong passphrases; please try again in {wait_seconds} s"),
            VaultError::WeakPassphrase => {
                format!("The passphrase needs at least {MIN_PASSPHRASE_CHARS} characters (a PIN of {MIN_PASSPHRASE_CHARS} or more digits is allowed)")
            }
            VaultError::Store(error) => error.message_en(),
            other => other.to_string(),
        }
    }
}

/// The device's result type for key handling.
pub type VaultResult<T> = std::result::Result<T, VaultError>;

/// The store's data key, wiped from memory when dropped (each copy).
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A new random key from the operating system's generator.
    pub fn random() -> VaultResult<DataKey> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(bytes.as_mut()).map_err(|error| VaultError::Io(std::io::Error::other(error)))?;
        Ok(DataKey(bytes))
    }

    /// The key in SQLCipher's raw-key form (`x'…'`), which skips SQLCipher's own key derivation:
    /// the key is random already.
    pub fn sqlcipher_key(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("x'{}'", hex::encode_upper(self.0.as_ref())))
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("DataKey(hidden)")
    }
}

/// The key file as stored: how the key-encryption key is derived, the wrapped data key, and the
/// count of wrong passphrases with the time before which no other try is taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyFile {
    format: u32,
    kdf: String,
    memory_kib: u32,
    iterations: u32,
    lanes: u32,
    salt: String,
    cipher: String,
    nonce: String,
    wrapped_key: String,
    failures: u32,
    /// Seconds since 1970 before which no try is taken.
    retry_after: u64,
}

impl KeyFile {
    /// What the AEAD authenticates besides the key: the derivation's parameters, so a file whose
    /// costs were lowered by someone else does not unlock.
    fn associated_data(&self) -> Vec<u8> {
        format!("furrow-key/{}/{}/{}/{}/{}/{}", self.format, self.kdf, self.memory_kib, self.iterations, self.lanes, self.salt)
            .into_bytes()
    }
}

/// The key file of one store or backup.
#[derive(Debug)]
pub struct Vault {
    path: PathBuf,
    file: KeyFile,
}

/// The key file's path for the store (or backup) at `store`.
pub fn key_file_path(store: &Path) -> PathBuf {
    let mut name = store.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(KEY_FILE_SUFFIX);
    store.with_file_name(name)
}

/// Whether the passphrase may be used: at least [`MIN_PASSPHRASE_CHARS`] characters.
pub fn check_passphrase(passphrase: &str) -> VaultResult<()> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(VaultError::WeakPassphrase);
    }
    Ok(())
}

fn now_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or(0)
}

fn unhex(field: &str, value: &str) -> VaultResult<Vec<u8>> {
    hex::decode(value).map_err(|error| VaultError::Damaged(format!("{field}: {error}")))
}

/// The key-encryption key from the passphrase, as the key file's parameters say.
fn derive(passphrase: &str, file: &KeyFile) -> VaultResult<Zeroizing<[u8; 32]>> {
    if file.kdf != "argon2id" || file.cipher != "chacha20poly1305" {
        return Err(VaultError::Damaged(format!("unknown method {} / {}", file.kdf, file.cipher)));
    }
    let params = argon2::Params::new(file.memory_kib, file.iterations, file.lanes, Some(32))
        .map_err(|error| VaultError::Damaged(format!("argon2 parameters: {error}")))?;
    let salt = unhex("salt", &file.salt)?;
    let mut out = Zeroizing::new([0u8; 32]);
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), &salt, out.as_mut())
        .map_err(|error| VaultError::Damaged(format!("argon2: {error}")))?;
    Ok(out)
}

/// A key file wrapping `key` under `passphrase`, with a fresh salt and nonce.
fn wrap(key: &DataKey, passphrase: &str) -> VaultResult<KeyFile> {
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 12];
    getrandom::getrandom(&mut salt).map_err(|error| VaultError::Io(std::io::Error::other(error)))?;
    getrandom::getrandom(&mut nonce).map_err(|error| VaultError::Io(std::io::Error::other(error)))?;
    let mut file = KeyFile {
        format: 1,
        kdf: "argon2id".to_owned(),
        memory_kib: MEMORY_KIB,
        iterations: ITERATIONS,
        lanes: LANES,
        salt: hex::encode(salt),
        cipher: "chacha20poly1305".to_owned(),
        nonce: hex::encode(nonce),
        wrapped_key: String::new(),
        failures: 0,
        retry_after: 0,
    };
    let kek = derive(passphrase, &file)?;
    let cipher = ChaCha20Poly1305::new(Key::from_slice(kek.as_ref()));
    let associated = file.associated_data();
    let wrapped = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: key.0.as_ref(), aad: &associated })
        .map_err(|_| VaultError::Damaged("the key could not be wrapped".to_owned()))?;
    file.wrapped_key = hex::encode(wrapped);
    Ok(file)
}

/// Writes `bytes` to `path` with mode 0600 through a temporary file and a rename, synced, so a
/// power cut leaves the old file or the new one, never half of one.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut temporary_name = path.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    temporary_name.push(".tmp");
    let temporary = path.with_file_name(temporary_name);
    {
        let mut file = private_file(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    sync_directory(path);
    Ok(())
}

/// Creates (truncating) a file readable and writable by its owner only.
pub(crate) fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    set_private(path, false)?;
    Ok(file)
}

/// Makes `path` readable by its owner only: 0700 for a directory, 0600 for a file. A no-op where
/// there are no Unix permissions.
pub fn set_private(path: &Path, directory: bool) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(if directory { 0o700 } else { 0o600 }))?;
    }
    #[cfg(not(unix))]
    let _ = (path, directory);
    Ok(())
}

/// Flushes a rename in the directory holding `path` to the disk (best effort: not every platform
/// can open a directory).
pub(crate) fn sync_directory(path: &Path) {
    if let Some(parent) = path.parent() {
        if let Ok(directory) = std::fs::File::open(if parent.as_os_str().is_empty() { Path::new(".") } else { parent }) {
            let _ = directory.sync_all();
        }
    }
}

impl Vault {
    /// Whether the store (or backup) at `store` has a key file.
    pub fn exists(store: &Path) -> bool {
        key_file_path(store).exists()
    }

    /// Makes a new random data key and the key file of the store at `store`, wrapped under
    /// `passphrase`. An existing key file is never replaced.
    pub fn create(store: &Path, passphrase: &str) -> VaultResult<(Vault, DataKey)> {
        check_passphrase(passphrase)?;
        let key = DataKey::random()?;
        let vault = Vault::create_for(store, &key, passphrase)?;
        Ok((vault, key))
    }

    /// Writes a key file for `store` wrapping an existing data key (a backup made with the
    /// device's key, or with a key of its own) under `passphrase`.
    pub fn create_for(store: &Path, key: &DataKey, passphrase: &str) -> VaultResult<Vault> {
        check_passphrase(passphrase)?;
        let path = key_file_path(store);
        if path.exists() {
            return Err(VaultError::KeyFileExists(path));
        }
        let vault = Vault { path, file: wrap(key, passphrase)? };
        vault.save()?;
        Ok(vault)
    }

    /// Reads the key file of the store at `store`.
    pub fn load(store: &Path) -> VaultResult<Vault> {
        let path = key_file_path(store);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Err(VaultError::NoKeyFile(path)),
            Err(error) => return Err(error.into()),
        };
        let file = serde_json::from_slice(&bytes).map_err(|error| VaultError::Damaged(error.to_string()))?;
        Ok(Vault { path, file })
    }

    /// The key file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wrong passphrases in a row so far.
    pub fn failures(&self) -> u32 {
        self.file.failures
    }

    fn save(&self) -> VaultResult<()> {
        let bytes = serde_json::to_vec_pretty(&self.file).map_err(|error| VaultError::Damaged(error.to_string()))?;
        write_private(&self.path, &bytes)?;
        Ok(())
    }

    /// Unwraps the data key with `passphrase`, now.
    pub fn unlock(&mut self, passphrase: &str) -> VaultResult<DataKey> {
        self.unlock_at(passphrase, now_seconds())
    }

    /// Unwraps the data key with `passphrase` at the time `now` (seconds since 1970; tests pass
    /// a time to see the wait pass). A wrong passphrase is counted in the key file; while a
    /// wait is running no passphrase is tried, the right one neither.
    pub fn unlock_at(&mut self, passphrase: &str, now: u64) -> VaultResult<DataKey> {
        if self.file.retry_after > now {
            // A clock set back must not lock the user out for longer than the longest wait.
            let wait_seconds = (self.file.retry_after - now).min(LONGEST_WAIT_SECONDS);
            return Err(VaultError::TooSoon { wait_seconds });
        }
        match self.try_unwrap(passphrase)? {
            Some(key) => {
                if self.file.failures != 0 || self.file.retry_after != 0 {
                    self.file.failures = 0;
                    self.file.retry_after = 0;
                    self.save()?;
                }
                Ok(key)
            }
            None => {
                self.file.failures = self.file.failures.saturating_add(1);
                let wait_seconds = wait_after(self.file.failures);
                self.file.retry_after = now + wait_seconds;
                self.save()?;
                Err(VaultError::WrongPassphrase { failures: self.file.failures, wait_seconds })
            }
        }
    }

    /// The data key if `passphrase` unwraps it, `None` if it does not.
    fn try_unwrap(&self, passphrase: &str) -> VaultResult<Option<DataKey>> {
        let kek = derive(passphrase, &self.file)?;
        let nonce = unhex("nonce", &self.file.nonce)?;
        let wrapped = unhex("wrapped_key", &self.file.wrapped_key)?;
        if nonce.len() != 12 {
            return Err(VaultError::Damaged("nonce length".to_owned()));
        }
        let cipher = ChaCha20Poly1305::new(Key::from_slice(kek.as_ref()));
        let associated = self.file.associated_data();
        let Ok(mut plain) = cipher.decrypt(Nonce::from_slice(&nonce), Payload { msg: &wrapped, aad: &associated }) else {
            return Ok(None);
        };
        if plain.len() != 32 {
            plain.zeroize();
            return Err(VaultError::Damaged("data key length".to_owned()));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&plain);
        plain.zeroize();
        Ok(Some(DataKey(key)))
    }

    /// Wraps the data key under `new` after `old` unwrapped it; the store is not touched. A wrong
    /// `old` counts as a wrong passphrase, and a weak `new` changes nothing.
    pub fn change_passphrase(&mut self, old: &str, new: &str) -> VaultResult<()> {
        check_passphrase(new)?;
        let key = self.unlock(old)?;
        self.file = wrap(&key, new)?;
        self.save()
    }
}

/// The wait asked after `failures` wrong passphrases in a row: none for the first two, then 5 s,
/// doubling, up to a quarter of an hour.
pub fn wait_after(failures: u32) -> u64 {
    if failures <= FREE_FAILURES {
        return 0;
    }
    let doublings = (failures - FREE_FAILURES - 1).min(16);
    (FIRST_WAIT_SECONDS << doublings).min(LONGEST_WAIT_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_and_stop_at_a_quarter_of_an_hour() {
        let waits: Vec<u64> = (1..=12).map(wait_after).collect();
        assert_eq!(waits, vec![0, 0, 5, 10, 20, 40, 80, 160, 320, 640, 900, 900]);
    }

    #[test]
    fn the_raw_key_form_is_what_sqlcipher_reads_as_a_key() {
        let key = DataKey::random().unwrap();
        let text = key.sqlcipher_key();
        assert!(text.starts_with("x'") && text.ends_with('\'') && text.len() == 67, "{}", *text);
    }
}
