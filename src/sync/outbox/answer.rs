//! Recording the server's answer to a batch: the answered changes leave the outbox, the
//! changes that did not win take the server's value and become conflicts where the user must
//! know, and the unanswered ones go back to the queue.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::plan::requeue_at_end;
use super::queue::requeue;
use super::{insert_conflict, Batch, OutboxEntry};
use crate::hlc::{self, NodeId, Stamp};
use crate::record::RemoteField;
use crate::schema::{self, Policy};
use crate::store::Store;
use crate::sync::error::{SyncError, SyncResult};
use crate::sync::state;
use crate::sync::wire::{ChangeResult, CurrentValue, PushResponse};

/// Notes a failed attempt on the batch's rows, for the per-record state and the log.
pub fn note_attempt_error(conn: &Connection, batch: &Batch, message: &str) -> SyncResult<()> {
    conn.execute("UPDATE sync_outbox SET last_error = ?1 WHERE batch_id = ?2", params![message, batch.id.as_bytes().to_vec()])?;
    Ok(())
}

/// What one push answer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushOutcome {
    /// Changes the server applied.
    pub applied: usize,
    /// Changes that lost to a later write.
    pub superseded: usize,
    /// Changes the server refused.
    pub rejected: usize,
    /// New entries in the conflicts list.
    pub conflicts: usize,
    /// Changes the answer did not mention, returned to the queue.
    pub requeued: usize,
}

/// Records the server's answer to a batch in one transaction: deletes the answered outbox rows,
/// remembers each answer for the per-record state, lists superseded changes of notify fields and
/// every rejected change as conflicts, takes the server's current value where the change did not
/// win, and advances `last_acked_seq`. Replaying the same answer changes nothing more.
pub fn apply_push_response(store: &mut Store, batch: &Batch, response: &PushResponse) -> SyncResult<PushOutcome> {
    if response.batch_id != batch.id.to_string() {
        return Err(SyncError::Protocol(format!("answer for batch {} to batch {}", response.batch_id, batch.id)));
    }
    let results: HashMap<&str, &ChangeResult> = response.results.iter().map(|result| (result.change_id.as_str(), result)).collect();
    let now = hlc::wall_ms();
    let outcome = store.write(|writer| {
        let mut outcome = PushOutcome::default();
        let mut unanswered = Vec::new();
        for entry in &batch.entries {
            let still_queued: bool = writer
                .conn()
                .prepare_cached("SELECT 1 FROM sync_outbox WHERE seq = ?1 AND batch_id = ?2")?
                .query_row(params![entry.seq, batch.id.as_bytes().to_vec()], |_| Ok(()))
                .optional()?
                .is_some();
            if !still_queued {
                // Already recorded (a replayed answer): nothing more to do.
                continue;
            }
            let Some(result) = results.get(entry.change_id.to_string().as_str()) else {
                unanswered.push(entry.clone());
                continue;
            };
            writer.conn().prepare_cached("DELETE FROM sync_outbox WHERE seq = ?1")?.execute([entry.seq])?;
            writer
                .conn()
                .prepare_cached(
                    "INSERT INTO sync_outcomes (tbl, row_id, field, change_id, status, reason, hlc, answered_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (tbl, row_id, field) DO UPDATE SET change_id = excluded.change_id,
                       status = excluded.status, reason = excluded.reason, hlc = excluded.hlc,
                       answered_at = excluded.answered_at
                     WHERE excluded.hlc >= sync_outcomes.hlc",
                )?
                .execute(params![
                    entry.tbl,
                    entry.row_id,
                    entry.field,
                    entry.change_id.as_bytes().to_vec(),
                    normalised_status(&result.status),
                    result.reason,
                    entry.hlc,
                    now
                ])?;
            let table = schema::table(&entry.tbl);
            match result.status.as_str() {
                "applied" => outcome.applied += 1,
                "superseded" => {
                    outcome.superseded += 1;
                    let notify = table.and_then(|table| table.field(&entry.field)).is_some_and(|field| field.policy == Policy::LwwNotify);
                    if notify {
                        insert_conflict(writer.conn(), entry, result, "superseded", now)?;
                        outcome.conflicts += 1;
                    }
                    if let (Some(table), Some(current)) = (table, &result.current) {
                        writer.apply_remote(table, &entry.row_id, &[remote_field(entry, current)?])?;
                    }
                }
                _ => {
                    outcome.rejected += 1;
                    insert_conflict(writer.conn(), entry, result, "rejected", now)?;
                    outcome.conflicts += 1;
                    // The device takes the server's value back unless the user has edited the
                    // field again since; that newer edit is queued and will be judged on its own.
                    let untouched = writer.field_stamp(&entry.tbl, &entry.row_id, &entry.field)? == Some(entry.stamp());
                    if let (true, Some(table), Some(current)) = (untouched, table, &result.current) {
                        writer
                            .conn()
                            .prepare_cached("DELETE FROM sync_field_clock WHERE tbl = ?1 AND row_id = ?2 AND field = ?3")?
                            .execute(params![entry.tbl, entry.row_id, entry.field])?;
                        writer.apply_remote(table, &entry.row_id, &[remote_field(entry, current)?])?;
                    }
                }
            }
        }
        outcome.requeued = unanswered.len();
        // The server has moved its last applied sequence past this batch, so a change it did not
        // answer goes back under a new sequence number, or it would be taken as already applied.
        requeue(writer.conn(), &unanswered)?;
        for entry in &unanswered {
            let still: bool = writer
                .conn()
                .query_row("SELECT 1 FROM sync_outbox WHERE seq = ?1", [entry.seq], |_| Ok(()))
                .optional()?
                .is_some();
            if still {
                requeue_at_end(writer.conn(), entry.seq)?;
            }
        }
        let acked = state::integer(writer.conn(), state::LAST_ACKED_SEQ)?.unwrap_or(0);
        state::set(writer.conn(), state::LAST_ACKED_SEQ, acked.max(response.last_applied_seq))?;
        Ok::<_, crate::Error>(outcome)
    });
    outcome.map_err(SyncError::from)
}

fn normalised_status(status: &str) -> &'static str {
    match status {
        "applied" => "applied",
        "superseded" => "superseded",
        _ => "rejected",
    }
}

fn remote_field(entry: &OutboxEntry, current: &CurrentValue) -> crate::Result<RemoteField> {
    let node = match &current.node {
        Some(text) => NodeId::from_base64(text).map_err(|error| crate::Error::Io(std::io::Error::other(error.to_string())))?,
        None => NodeId([0; 16]),
    };
    Ok(RemoteField { field: entry.field.clone(), value: current.value.clone(), stamp: Stamp { hlc: current.hlc, node } })
}
