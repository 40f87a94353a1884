//! The sync engine's errors. Each keeps its cause, says whether retrying later can help, and has
//! a stable code for the desktop app.

use crate::sync::wire::ErrorBody;

/// What went wrong talking to the server, below the level of the sync protocol.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The connection failed, dropped or timed out; nothing is known about what the server did.
    #[error("network error: {0}")]
    Network(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The server answered with an error status.
    #[error("the server answered {status}: {}", .body.as_ref().map(|body| body.message.as_str()).unwrap_or(.text.as_str()))]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The error body, when the server sent one in the contract's shape.
        body: Option<ErrorBody>,
        /// The raw body text, for the log when it was not in the contract's shape.
        text: String,
    },
    /// The server's answer could not be read as the contract's body.
    #[error("the server's answer could not be read: {0}")]
    Decode(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl TransportError {
    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            TransportError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The stable error code of the answer's body, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            TransportError::Status { body: Some(body), .. } => Some(body.error.as_str()),
            _ => None,
        }
    }
}

/// Everything that can stop a sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The device has never signed in, so there is no server or account to sync with.
    #[error("this device has not signed in yet")]
    NotSignedIn,
    /// The user name or password is wrong (or the account is disabled).
    #[error("wrong user name or password")]
    WrongCredentials(#[source] TransportError),
    /// Another assistant signed in on this device before and left unsynced changes, which must be
    /// sent under their own account first.
    #[error("unsynced changes of {signed_in} are on this device; they must sign in and sync first")]
    OtherAccount {
        /// The assistant whose changes are queued.
        signed_in: String,
    },
    /// The server refused the credentials, or the session expired and could not be renewed.
    /// The user must sign in again; every unsynced change is kept.
    #[error("please sign in again; unsynced changes are kept")]
    SignInRequired(#[source] Option<TransportError>),
    /// The server no longer accepts this version's schema. Unsynced changes are kept.
    #[error("this version of Furrow is too old for the server; please update; unsynced changes are kept")]
    UpdateRequired(#[source] TransportError),
    /// The server could not be reached or answered with a temporary failure; retrying later helps.
    #[error("sync interrupted: {0}")]
    Transport(#[source] TransportError),
    /// The server answered in a way the contract does not allow.
    #[error("the server broke the sync contract: {0}")]
    Protocol(String),
    /// The server asked for a fresh snapshot twice in one sync, which would loop.
    #[error("the server asked for a fresh copy again ({0}); sync stopped to avoid a loop")]
    ResetLoop(String),
    /// A downloaded photo's bytes do not match its digest; it is fetched again later.
    #[error("the downloaded photo {0} does not match its digest; it will be fetched again")]
    BlobMismatch(String),
    /// The sync was stopped on request.
    #[error("sync stopped")]
    Stopped,
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] crate::Error),
}

impl From<rusqlite::Error> for SyncError {
    fn from(error: rusqlite::Error) -> Self {
        SyncError::Store(crate::Error::Sqlite(error))
    }
}

impl From<serde_json::Error> for SyncError {
    fn from(error: serde_json::Error) -> Self {
        SyncError::Store(crate::Error::Json(error))
    }
}

impl SyncError {
    /// A stable code for the desktop app.
    pub fn code(&self) -> &'static str {
        match self {
            SyncError::NotSignedIn => "not_signed_in",
            SyncError::WrongCredentials(_) => "wrong_credentials",
            SyncError::OtherAccount { .. } => "other_account",
            SyncError::SignInRequired(_) => "sign_in_required",
            SyncError::UpdateRequired(_) => "update_required",
            SyncError::Transport(_) => "offline",
            SyncError::Protocol(_) => "protocol",
            SyncError::ResetLoop(_) => "reset_loop",
            SyncError::BlobMismatch(_) => "blob_mismatch",
            SyncError::Stopped => "stopped",
            SyncError::Store(error) => error.code(),
        }
    }

    /// Whether trying again later, without the user doing anything, can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::Transport(_) | SyncError::Protocol(_) | SyncError::ResetLoop(_) | SyncError::BlobMismatch(_) => true,
            SyncError::Store(crate::Error::Sqlite(_)) => true,
            _ => false,
        }
    }

    /// A message for the user in Chinese.
    pub fn message_zh(&self) -> String {
        match self {
            SyncError::NotSignedIn => "本设备尚未登录，请先联网登录".to_owned(),
            SyncError::WrongCredentials(_) => "用户名或密码错误".to_owned(),
            SyncError::OtherAccount { .. } => "本设备上还有其他助理未同步的修改，请该助理先登录同步".to_owned(),
            SyncError::SignInRequired(_) => "登录已失效，请重新登录；未同步的修改都已保留".to_owned(),
            SyncError::UpdateRequired(_) => "当前版本过旧，请升级田垄；未同步的修改都已保留".to_owned(),
            SyncError::Transport(_) => "网络不通或服务器暂时不可用，稍后会自动重试".to_owned(),
            SyncError::Protocol(_) | SyncError::ResetLoop(_) => "服务器应答异常，稍后会自动重试".to_owned(),
            SyncError::BlobMismatch(_) => "照片下载后校验不符，稍后会重新下载".to_owned(),
            SyncError::Stopped => "同步已停止".to_owned(),
            SyncError::Store(error) => error.message_zh(),
        }
    }
}

/// The sync engine's result type.
pub type SyncResult<T> = std::result::Result<T, SyncError>;
