//! The history's housekeeping: its epoch, pruning old tombstones with the horizon pulls are
//! answered against, and the periodic cleanup of tokens, stored answers and abandoned uploads.

use crate::error::{Error, Result};
use crate::store::{Prune, Tx};

/// Gives the history a fresh random epoch: what `furrow-server new-epoch` does, and what an
/// operator runs after restoring the database from a backup, before serving it. Every cursor a
/// device holds names the old epoch, so its next pull answers `reset: server_restored`: the
/// device takes a fresh snapshot, keeps every row, and re-sends every field it holds that the
/// restored database lacks or holds older. Without a new epoch, a device whose cursor is behind
/// the restored counter would trust sequence numbers that now name other changes. Returns the
/// new epoch.
pub fn new_epoch(tx: &mut Tx<'_>, now: i64) -> Result<String> {
    let previous = tx.epoch()?;
    let epoch = loop {
        // Sixteen hex digits, the form the migrations give the first epoch.
        let candidate = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
        if candidate != previous {
            break candidate;
        }
    };
    tx.set_epoch(&epoch, now)?;
    Ok(epoch)
}

/// The reset reason of a pull whose cursor is older than the pruned history.
pub const HISTORY_PRUNED: &str = "history_pruned";

/// The shortest history a server keeps, in days: `max_offline_days` of docs/sync.md section 6.
/// A device offline longer than the horizon gets a full snapshot instead of the changes it
/// missed.
pub const MIN_HISTORY_DAYS: i64 = 180;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Purges tombstones older than `older_than_days` (at least [`MIN_HISTORY_DAYS`], refused with
/// 400 `history_too_short` otherwise) and records the horizon. See [`prune_history_before`].
pub fn prune_history(tx: &mut Tx<'_>, older_than_days: i64, now: i64) -> Result<Prune> {
    check_history_days(older_than_days)?;
    prune_history_before(tx, now.saturating_sub(older_than_days.saturating_mul(DAY_MS)), now)
}

/// Refuses a history horizon shorter than [`MIN_HISTORY_DAYS`] (400 `history_too_short`).
pub fn check_history_days(older_than_days: i64) -> Result<()> {
    if older_than_days < MIN_HISTORY_DAYS {
        return Err(Error::bad_request(
            "history_too_short",
            format!(
                "--older-than-days must be at least {MIN_HISTORY_DAYS} (max_offline_days, docs/sync.md section 6), not {older_than_days}: \
                 a device offline longer than the horizon could miss a deletion"
            ),
        ));
    }
    Ok(())
}

/// Purges every tombstoned row whose latest change the server accepted before `horizon_ms`,
/// with its fields and its change-log entries, and records the horizon, so a pull whose cursor
/// is older answers `reset: history_pruned`. The horizon never moves back. This function has no
/// minimum age: [`prune_history`] (the `prune` command) keeps `max_offline_days`; tests use it
/// with a recent horizon.
///
/// The horizon's sequence number is that of the last change the change log shows accepted
/// before `horizon_ms` (server clock). A tombstoned row whose latest change is at or below it
/// was deleted before the horizon and not touched since; a client whose cursor is at or above
/// it has received that tombstone already.
pub fn prune_history_before(tx: &mut Tx<'_>, horizon_ms: i64, now: i64) -> Result<Prune> {
    let horizon_seq = tx.last_seq_before(horizon_ms)?.max(tx.history_horizon()?);
    let (rows_purged, changes_purged) = tx.purge_tombstones(horizon_seq)?;
    let prune = Prune { horizon_ms, horizon_seq, rows_purged, changes_purged, pruned_at: now };
    tx.record_prune(&prune)?;
    Ok(prune)
}

/// How long stored push responses are kept for exact replay (at least 30 days, as
/// docs/sync.md asks; after that the seq check still makes a re-sent batch a no-op).
pub const BATCH_RETENTION_MS: i64 = 45 * 24 * 60 * 60 * 1000;

/// How long an unfinished upload is kept for its device to resume it.
pub const UPLOAD_RETENTION_MS: i64 = 14 * 24 * 60 * 60 * 1000;

/// What a housekeeping round removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Housekeeping {
    /// Expired tokens.
    pub tokens: u64,
    /// Push responses past their retention.
    pub batches: u64,
    /// Unfinished uploads past their retention; their partial files are the caller's to delete.
    pub uploads: Vec<String>,
}

/// Periodic cleanup: expired tokens, push responses past their retention and abandoned uploads.
/// Tombstones are never removed here; an operator prunes them with `furrow-server prune`
/// ([`prune_history`]).
pub fn housekeeping(tx: &mut Tx<'_>, now: i64) -> Result<Housekeeping> {
    let tokens = tx.delete_expired_tokens(now)?;
    tx.delete_audit_before(now - AUDIT_RETENTION_MS)?;
    let batches = tx.delete_batches_before(now - BATCH_RETENTION_MS)?;
    let uploads = tx.stale_uploads(now - UPLOAD_RETENTION_MS)?;
    for id in &uploads {
        tx.delete_upload(id)?;
    }
    Ok(Housekeeping { tokens, batches, uploads })
}

/// How long the audit log is kept: 180 days.
pub const AUDIT_RETENTION_MS: i64 = 180 * 24 * 60 * 60 * 1000;
