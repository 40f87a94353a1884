//! Sync with the platform (docs/sync.md): the wire contract shared with the server ([`wire`]),
//! and the device's engine ([`SyncEngine`]) that pushes the outbox, pulls the server's changes,
//! signs in, uploads photos and reports what happened to every edit.
//!
//! The engine's database work ([`outbox`], [`pull`]) is plain functions over the store, tested
//! without a network; the network is behind the [`transport::Transport`] trait.

pub mod address;
pub mod background;
pub mod blobs;
pub mod engine;
pub mod error;
pub mod options;
pub mod outbox;
pub mod pull;
pub mod state;
pub mod status;
pub mod transport;

pub use furrow_contract::pull as page;
pub use furrow_contract::wire;

pub use crate::media::{add_attachment, attachment, Attachment};
pub use address::check_server_address;
pub use background::BackgroundSync;
pub use engine::{Progress, SyncEngine, SyncReport};
pub use options::{ChunkSizes, RetryPolicy, SyncOptions};
pub use error::{SyncError, SyncResult, TransportError};
pub use state::Account;
pub use status::{
    canonical_dump, conflict_views, conflicts, field_clock, read_record, record_state, resend_edit, resolve_conflict, set_clock_offset,
    signed_in_account, summary, Conflict, ConflictView, FieldSyncState, RecordSyncState, Resolution, SyncState, SyncSummary,
};
pub use transport::{HttpTransport, RequestMeta, Transport};

#[cfg(test)]
mod tests;
