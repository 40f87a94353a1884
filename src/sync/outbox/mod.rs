//! The push side of sync as plain database work, with no I/O: planning a batch from the outbox,
//! recording the server's answer, re-stamping unsent changes after a clock correction, and
//! returning changes to the queue when a batch must be split.
//!
//! Rules (docs/sync.md section 8): a batch is assigned in one transaction and its rows are then
//! frozen, so a retry re-sends the same rows under the same batch id; outbox rows are deleted only
//! in the transaction that records the server's answer for them. A batch carries every unsent
//! change of each of its records, after the records they reference (see [`next_batch`]), because
//! the server checks every record whole at the end of each batch. A batch id never names two
//! bodies: a changed batch (split, re-stamped, renumbered) gets a new id.

mod answer;
mod plan;
mod queue;

use rusqlite::{params, Connection};
use serde_json::Value;
use uuid::Uuid;

use crate::hlc::{NodeId, Stamp};
use crate::sync::wire::{self, Change, ChangeResult, PushRequest};

pub use answer::{apply_push_response, note_attempt_error, PushOutcome};
#[cfg(test)]
pub(crate) use plan::group_rows;
pub use plan::next_batch;
pub use queue::{observe_server_time, reject_locally, renew_batch_id, renumber_above, requeue, restamp, split_batch, unsent};

/// One queued field change.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// The device's sequence number, the idempotency counter.
    pub seq: i64,
    /// The change's id, stable across retries.
    pub change_id: Uuid,
    /// Table.
    pub tbl: String,
    /// Row id.
    pub row_id: String,
    /// Field.
    pub field: String,
    /// The new value.
    pub value: Value,
    /// Its HLC.
    pub hlc: i64,
    /// The node that made it: this device for its own edits, or the writer of a field the
    /// device re-sends to a restored server (see `resend`).
    pub node: NodeId,
    /// The HLC of the value the user edited from.
    pub base_hlc: Option<i64>,
    /// Whether the change re-sends, with its original stamp, a field a restored server lacks
    /// (`reset: server_restored`). Such a stamp was acknowledged once and other devices may hold
    /// it, so it is never re-stamped after a clock correction.
    pub resend: bool,
}

impl OutboxEntry {
    /// The change as sent on the wire. A re-sent field names its writer's node, which may be
    /// another device's; [`Batch::request`] leaves it out when it is the sending device's own.
    pub fn to_change(&self) -> Change {
        Change {
            change_id: self.change_id.to_string(),
            seq: self.seq,
            tbl: self.tbl.clone(),
            row_id: self.row_id.clone(),
            field: self.field.clone(),
            value: self.value.clone(),
            hlc: self.hlc,
            base_hlc: self.base_hlc,
            node: self.resend.then(|| self.node.to_base64()),
        }
    }

    fn stamp(&self) -> Stamp {
        Stamp { hlc: self.hlc, node: self.node }
    }
}

/// A batch of changes assigned for one push.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The batch id, also the `Idempotency-Key`.
    pub id: Uuid,
    /// The changes in `seq` order.
    pub entries: Vec<OutboxEntry>,
    /// Whether this batch was already in flight before (a retry of the same batch).
    pub resent: bool,
}

impl Batch {
    /// The push body for this batch. A change names its writer's node only when that is not
    /// the sending device (a re-sent field another device wrote).
    pub fn request(&self, client_id: &str) -> PushRequest {
        let sender = NodeId::from_client_id(client_id);
        let changes = self
            .entries
            .iter()
            .map(|entry| {
                let mut change = entry.to_change();
                if sender == Some(entry.node) {
                    change.node = None;
                }
                change
            })
            .collect();
        PushRequest { client_id: client_id.to_owned(), batch_id: self.id.to_string(), schema_version: wire::SCHEMA_VERSION, changes }
    }
}

/// Limits of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most changes.
    pub max_changes: usize,
    /// Most bytes of JSON body.
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self { max_changes: wire::MAX_BATCH_CHANGES, max_bytes: wire::MAX_BATCH_BYTES }
    }
}

fn entry_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(OutboxEntry, Option<Vec<u8>>)> {
    let change_id: Vec<u8> = row.get(1)?;
    let value: Option<String> = row.get(5)?;
    let node: Vec<u8> = row.get(7)?;
    Ok((
        OutboxEntry {
            seq: row.get(0)?,
            change_id: Uuid::from_slice(&change_id).unwrap_or_default(),
            tbl: row.get(2)?,
            row_id: row.get(3)?,
            field: row.get(4)?,
            value: value.and_then(|text| serde_json::from_str(&text).ok()).unwrap_or(Value::Null),
            hlc: row.get(6)?,
            node: NodeId(node.try_into().unwrap_or([0; 16])),
            base_hlc: row.get(8)?,
            resend: row.get::<_, i64>(10)? == 1,
        },
        row.get(9)?,
    ))
}

const ENTRY_COLUMNS: &str = "seq, change_id, tbl, row_id, field, value, hlc, node, base_hlc, batch_id, resend";

/// Lists a change that did not win, or that was refused, in the conflicts list the user sees,
/// with the server's value when the answer carried one.
fn insert_conflict(conn: &Connection, entry: &OutboxEntry, result: &ChangeResult, kind: &str, now: i64) -> crate::Result<()> {
    let reason = match (&result.reason, &result.message) {
        (Some(reason), _) => Some(reason.clone()),
        (None, Some(message)) => Some(message.clone()),
        (None, None) => None,
    };
    conn.prepare_cached(
        "INSERT INTO sync_conflicts (tbl, row_id, field, local_value, local_hlc, remote_value, remote_hlc, remote_actor,
           kind, reason, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        entry.tbl,
        entry.row_id,
        entry.field,
        entry.value.to_string(),
        entry.hlc,
        result.current.as_ref().map(|current| current.value.to_string()),
        result.current.as_ref().map(|current| current.hlc),
        result.current.as_ref().and_then(|current| current.actor.clone()),
        kind,
        reason,
        now
    ])?;
    Ok(())
}
