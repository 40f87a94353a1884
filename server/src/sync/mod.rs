//! The server half of sync (docs/sync.md section 4): the push algorithm with its per-change
//! merge ([`push`]), the checks of a pushed body and of every row a batch wrote ([`check_push`],
//! [`checked_record`]), pull pages with an opaque cursor ([`pull`], [`Cursor`]), and the
//! history's housekeeping ([`prune_history`], [`housekeeping`]). Written once over [`Tx`], so
//! both backends run the same rule; which stored change wins is the contract's
//! ([`furrow_contract::merge`]), which fields a page carries too ([`furrow_contract::pull`]).
//!
//! [`Tx`]: crate::store::Tx

mod check;
mod history;
mod pull;
mod push;

pub use check::{check_push, check_schema_version, checked_record, record_message, StoreContext, INVALID_RECORD};
pub use history::{
    check_history_days, housekeeping, new_epoch, prune_history, prune_history_before, Housekeeping, AUDIT_RETENTION_MS,
    BATCH_RETENTION_MS, HISTORY_PRUNED, MIN_HISTORY_DAYS, UPLOAD_RETENTION_MS,
};
pub use pull::{pull, scope_hash, Cursor, CURSOR_FORMAT, SERVER_RESTORED};
pub use push::{push, request_digest, PushOutcome};

/// The wire form of a node id's bytes (the contract's codec, [`furrow_contract::hlc::NodeId`]).
pub use furrow_contract::hlc::node_base64;

pub use crate::rows::{value_error_code, write_field, DELETED_FIELD, SCOPE_FIELD};

/// The oldest schema version the server still serves.
pub const MIN_SCHEMA_VERSION: i64 = 1;

/// How far ahead of the server's clock a change's HLC may be (docs/sync.md section 2).
pub const MAX_CLOCK_AHEAD_MS: i64 = 10 * 60 * 1000;

/// Default and largest pull page, in rows.
pub const DEFAULT_PULL_LIMIT: i64 = 1000;
/// The largest pull page, in rows.
pub const MAX_PULL_LIMIT: i64 = 5000;
