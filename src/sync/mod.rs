//! Sync with the platform (sync-design.md): the wire contract shared with the server ([`wire`]),
//! and the device's engine ([`SyncEngine`]) that pushes the outbox, pulls the server's changes,
//! signs in, uploads photos and reports what happened to every edit.
//!
//! The engine's database work ([`outbox`], [`pull`]) is plain functions over the store, tested
//! without a network; the network is behind the [`transport::Transport`] trait.

pub mod blobs;
pub mod engine;
pub mod error;
pub mod outbox;
pub mod pull;
pub mod state;
pub mod status;
pub mod transport;

pub use furrow_contract::pull as page;
pub use furrow_contract::wire;

pub use blobs::{add_attachment, attachment, Attachment};
pub use engine::{BackgroundSync, Progress, RetryPolicy, SyncEngine, SyncOptions, SyncReport};
pub use error::{SyncError, SyncResult, TransportError};
pub use state::Account;
pub use status::{canonical_dump, conflicts, field_clock, read_record, set_clock_offset, record_state, resolve_conflict, signed_in_account, summary, Conflict, FieldSyncState, RecordSyncState, Resolution, SyncState, SyncSummary};
pub use transport::{HttpTransport, RequestMeta, Transport};

#[cfg(test)]
mod tests;
