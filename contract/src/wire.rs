//! The HTTP contract's bodies (docs/sync.md section 4 and 10), shared by the device's sync
//! client and the server so the two can never disagree on a field. Only these boundary types
//! derive `Serialize`/`Deserialize` for the wire.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The schema version this build speaks (`X-Schema-Version`, `schema_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// Most changes in one push batch.
pub const MAX_BATCH_CHANGES: usize = 500;

/// Largest push body in bytes (uncompressed).
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// `POST /auth/v1/login`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// A name for the device, shown to administrators.
    pub device_name: String,
}

/// Answer to login and refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// Bearer token for sync requests.
    pub access_token: String,
    /// When the access token expires (Unix milliseconds).
    pub expires_at: i64,
    /// Token to trade for a new pair at `POST /auth/v1/refresh`.
    pub refresh_token: String,
    /// The assistant's id.
    pub assistant_id: String,
    /// The scopes (village codes) the assistant may read and write.
    pub scopes: Vec<String>,
}

/// `POST /auth/v1/refresh` and `POST /auth/v1/logout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRequest {
    /// The refresh token.
    pub refresh_token: String,
}

/// One field change in a push.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Stable id of the change across retries (UUID).
    pub change_id: String,
    /// The device's outbox sequence number.
    pub seq: i64,
    /// Table name.
    pub tbl: String,
    /// Row id.
    pub row_id: String,
    /// Field name (a domain field, `scope_id` or `deleted`).
    pub field: String,
    /// The new value (JSON scalar or list).
    pub value: Value,
    /// The change's HLC.
    pub hlc: i64,
    /// The HLC of the value the user edited from; `None` on create.
    pub base_hlc: Option<i64>,
    /// The writer of a re-sent field when it is not the sending device: base64 of its 16-byte
    /// node id. A device re-sends, with their original stamps, the fields a restored server
    /// lacks ([`SERVER_RESTORED`]), some of which other devices wrote; the server then merges and
    /// stores the field under this node instead of the sender's. Absent for the device's own
    /// edits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// `POST /sync/v1/push` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushRequest {
    /// The device's node id (UUID).
    pub client_id: String,
    /// The batch id, also sent as `Idempotency-Key`.
    pub batch_id: String,
    /// The client's schema version.
    pub schema_version: i64,
    /// The changes, in `seq` order.
    pub changes: Vec<Change>,
}

/// The server's current value of a field, returned when a change lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurrentValue {
    /// The value.
    pub value: Value,
    /// Its HLC.
    pub hlc: i64,
    /// Its node, base64.
    #[serde(default)]
    pub node: Option<String>,
    /// Who wrote it (e.g. `assistant:3`, `moderator:17`, `platform`).
    #[serde(default)]
    pub actor: Option<String>,
}

/// What happened to one change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeResult {
    /// The change.
    pub change_id: String,
    /// `applied`, `superseded` or `rejected`.
    pub status: String,
    /// For `rejected`: `stale_base`, `server_only`, `forbidden` or `invalid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human-readable explanation of a rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The server's value when the change did not win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<CurrentValue>,
}

/// `POST /sync/v1/push` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushResponse {
    /// The batch.
    pub batch_id: String,
    /// The greatest `seq` of the client the server has applied.
    pub last_applied_seq: i64,
    /// The server's clock (Unix milliseconds).
    pub server_time: i64,
    /// One result per change.
    pub results: Vec<ChangeResult>,
}

/// A field of a pulled row: `[value, hlc, node_base64]`.
pub type PulledField = (Value, i64, String);

/// A row in a pull page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PulledRow {
    /// Table name.
    pub tbl: String,
    /// Row id.
    pub id: String,
    /// Scope.
    pub scope_id: String,
    /// The server sequence number of the row's latest change.
    pub sv: i64,
    /// Every field changed after the point where the pull began, whichever page the row is on
    /// (see [`crate::pull`]); every field when the row is sent whole (in a snapshot, or
    /// when it entered the caller's villages since), and then always `deleted`, which carries
    /// `0` with [`crate::hlc::Stamp::NONE`] for a row never deleted nor restored.
    pub fields: std::collections::BTreeMap<String, PulledField>,
}

/// Why the client must re-snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reset {
    /// `scope_changed`, `history_pruned`, `schema` or [`SERVER_RESTORED`].
    pub reason: String,
}

/// The reset reason of a pull whose cursor points into a history the server no longer holds:
/// its database was restored from a backup (and given a new epoch), or it lost acknowledged
/// changes. The device takes the fresh snapshot without dropping any row it did not bring, and
/// then re-sends every field it holds that the snapshot lacked or brought with an older stamp,
/// keeping each field's original stamp.
pub const SERVER_RESTORED: &str = "server_restored";

/// `GET /sync/v1/pull` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullResponse {
    /// The cursor to send next time (opaque).
    pub cursor: String,
    /// Whether more pages follow.
    pub has_more: bool,
    /// The server's clock (Unix milliseconds).
    pub server_time: i64,
    /// Set when the client must drop its cursor and re-snapshot, keeping its outbox.
    pub reset: Option<Reset>,
    /// The rows.
    pub rows: Vec<PulledRow>,
}

/// Every error answer's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable code, e.g. `invalid_json`, `clock_ahead`, `unauthorized`.
    pub error: String,
    /// A message for people.
    pub message: String,
    /// The server's clock, on `clock_ahead`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_time: Option<i64>,
    /// The greatest `seq` of the client the server has applied, on `seq_reused`: the device
    /// renumbers its unsent changes above it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_seq: Option<i64>,
}
