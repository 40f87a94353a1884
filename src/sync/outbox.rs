//! The push side of sync as plain database work, with no I/O: planning a batch from the outbox,
//! recording the server's answer, re-stamping unsent changes after a clock correction, and
//! returning changes to the queue when a batch must be split.
//!
//! Rules (sync-design.md section 8): a batch is assigned in one transaction and its rows are then
//! frozen, so a retry re-sends the same rows under the same batch id; outbox rows are deleted only
//! in the transaction that records the server's answer for them.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use uuid::Uuid;

use crate::hlc::{self, Clock, NodeId, Stamp};
use crate::record::RemoteField;
use crate::schema::{self, Policy};
use crate::store::Store;
use crate::sync::error::{SyncError, SyncResult};
use crate::sync::state;
use crate::sync::wire::{self, Change, ChangeResult, CurrentValue, PushRequest, PushResponse};

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
    /// The node that made it (this device).
    pub node: NodeId,
    /// The HLC of the value the user edited from.
    pub base_hlc: Option<i64>,
}

impl OutboxEntry {
    /// The change as sent on the wire.
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
    /// The push body for this batch.
    pub fn request(&self, client_id: &str) -> PushRequest {
        PushRequest {
            client_id: client_id.to_owned(),
            batch_id: self.id.to_string(),
            schema_version: wire::SCHEMA_VERSION,
            changes: self.entries.iter().map(OutboxEntry::to_change).collect(),
        }
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
        },
        row.get(9)?,
    ))
}

const ENTRY_COLUMNS: &str = "seq, change_id, tbl, row_id, field, value, hlc, node, base_hlc, batch_id";

/// The batch to push next: the batch already in flight if there is one (a retry must re-send the
/// same rows under the same id), otherwise a new batch of the oldest unsent changes, assigned in
/// one transaction. `None` when the outbox is empty.
pub fn next_batch(conn: &mut Connection, limits: BatchLimits) -> SyncResult<Option<Batch>> {
    let transaction = conn.transaction()?;
    let in_flight: Option<Vec<u8>> = transaction
        .query_row("SELECT batch_id FROM sync_outbox WHERE batch_id IS NOT NULL ORDER BY seq LIMIT 1", [], |row| row.get(0))
        .optional()?;
    if let Some(batch_id) = in_flight {
        let entries = entries_of_batch(&transaction, &batch_id)?;
        transaction.commit()?;
        return Ok(Some(Batch { id: Uuid::from_slice(&batch_id).unwrap_or_default(), entries, resent: true }));
    }
    scope_first(&transaction)?;
    let mut entries = Vec::new();
    {
        let mut statement = transaction
            .prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM sync_outbox WHERE batch_id IS NULL ORDER BY seq LIMIT ?1"))?;
        let rows = statement.query_map([limits.max_changes.max(1) as i64], entry_from_row)?;
        // The envelope (ids, version, brackets) takes well under 200 bytes.
        let mut bytes = 200;
        for row in rows {
            let (entry, _) = row?;
            let size = serde_json::to_vec(&entry.to_change())?.len() + 1;
            if !entries.is_empty() && bytes + size > limits.max_bytes {
                break;
            }
            bytes += size;
            entries.push(entry);
        }
    }
    keep_last_row_whole(&transaction, &mut entries)?;
    if entries.is_empty() {
        return Ok(None);
    }
    let id = Uuid::now_v7();
    {
        let mut statement = transaction.prepare_cached("UPDATE sync_outbox SET batch_id = ?1, attempts = attempts + 1 WHERE seq = ?2")?;
        for entry in &entries {
            statement.execute(params![id.as_bytes().to_vec(), entry.seq])?;
        }
    }
    transaction.commit()?;
    Ok(Some(Batch { id, entries, resent: false }))
}

/// Leaves the changes of the batch's last row for the next batch when the limit fell among that
/// row's changes (more of them wait after the batch). The server checks every row whole once a
/// batch is merged, so the first half of a record made in one save would be refused for the
/// fields in the second half. The trimmed changes are the batch's last ones, so they keep their
/// sequence numbers; a row whose changes fill a batch alone is sent as it is.
fn keep_last_row_whole(conn: &Connection, entries: &mut Vec<OutboxEntry>) -> SyncResult<()> {
    let Some(last) = entries.last() else { return Ok(()) };
    let more: bool = conn
        .prepare_cached("SELECT 1 FROM sync_outbox WHERE batch_id IS NULL AND seq > ?1 AND tbl = ?2 AND row_id = ?3 LIMIT 1")?
        .query_row(params![last.seq, last.tbl, last.row_id], |_| Ok(()))
        .optional()?
        .is_some();
    if !more {
        return Ok(());
    }
    let (tbl, row_id) = (last.tbl.clone(), last.row_id.clone());
    if let Some(other) = entries.iter().rposition(|entry| entry.tbl != tbl || entry.row_id != row_id) {
        entries.truncate(other + 1);
    }
    Ok(())
}

/// Makes every row's unsent `scope_id` change go before its other unsent changes. The server
/// learns of a new row from its scope, so a field sent before it would be refused; that order
/// breaks when a row created offline is moved to another village before it was ever sent (the
/// coalesced scope change is queued last). The other changes are queued again after it, with new
/// sequence numbers, which is allowed because no server has seen them.
fn scope_first(conn: &Connection) -> SyncResult<()> {
    let late: Vec<(String, String, i64)> = {
        let mut statement = conn.prepare_cached(
            "SELECT s.tbl, s.row_id, s.seq FROM sync_outbox s
             WHERE s.field = 'scope_id' AND s.batch_id IS NULL AND EXISTS (
               SELECT 1 FROM sync_outbox o WHERE o.tbl = s.tbl AND o.row_id = s.row_id AND o.batch_id IS NULL AND o.seq < s.seq)",
        )?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (tbl, row_id, scope_seq) in late {
        let earlier: Vec<i64> = {
            let mut statement = conn.prepare_cached(
                "SELECT seq FROM sync_outbox WHERE tbl = ?1 AND row_id = ?2 AND batch_id IS NULL AND seq < ?3 ORDER BY seq",
            )?;
            let rows = statement.query_map(params![tbl, row_id, scope_seq], |row| row.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for seq in earlier {
            requeue_at_end(conn, seq)?;
        }
    }
    Ok(())
}

/// Moves an unsent change to the end of the queue: the same change under a new sequence number.
fn requeue_at_end(conn: &Connection, seq: i64) -> crate::Result<()> {
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS sync_outbox_moving AS SELECT * FROM sync_outbox WHERE 0",
        [],
    )?;
    conn.execute("INSERT INTO sync_outbox_moving SELECT * FROM sync_outbox WHERE seq = ?1", [seq])?;
    conn.execute("DELETE FROM sync_outbox WHERE seq = ?1", [seq])?;
    conn.execute(
        "INSERT INTO sync_outbox (change_id, tbl, row_id, field, value, hlc, node, base_hlc, batch_id, attempts, last_error)
         SELECT change_id, tbl, row_id, field, value, hlc, node, base_hlc, NULL, attempts, last_error FROM sync_outbox_moving",
        [],
    )?;
    conn.execute("DELETE FROM sync_outbox_moving", [])?;
    Ok(())
}

fn entries_of_batch(conn: &Connection, batch_id: &[u8]) -> SyncResult<Vec<OutboxEntry>> {
    let mut statement = conn.prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM sync_outbox WHERE batch_id = ?1 ORDER BY seq"))?;
    let rows = statement.query_map([batch_id], entry_from_row)?;
    let mut entries = Vec::new();
    for row in rows {
        entries.push(row?.0);
    }
    Ok(entries)
}

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

/// Decodes a node id sent as base64.
pub fn decode_node(text: &str) -> SyncResult<NodeId> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
        .map_err(|error| SyncError::Protocol(format!("node {text:?} is not base64: {error}")))?;
    let array: [u8; 16] = bytes.try_into().map_err(|_| SyncError::Protocol(format!("node {text:?} is not 16 bytes")))?;
    Ok(NodeId(array))
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
        Some(text) => decode_node(text).map_err(|error| crate::Error::Io(std::io::Error::other(error.to_string())))?,
        None => NodeId([0; 16]),
    };
    Ok(RemoteField { field: entry.field.clone(), value: current.value.clone(), stamp: Stamp { hlc: current.hlc, node } })
}

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

/// Returns in-flight changes to the queue, as if never sent (the server applied none of them).
/// Where the user has since edited the same field, the newer queued change replaces the returned
/// one and takes over its base, the version the user first edited from.
pub fn requeue(conn: &Connection, entries: &[OutboxEntry]) -> crate::Result<()> {
    for entry in entries {
        let newer: Option<i64> = conn
            .prepare_cached("SELECT seq FROM sync_outbox WHERE tbl = ?1 AND row_id = ?2 AND field = ?3 AND batch_id IS NULL")?
            .query_row(params![entry.tbl, entry.row_id, entry.field], |row| row.get(0))
            .optional()?;
        match newer {
            Some(newer) => {
                conn.prepare_cached("DELETE FROM sync_outbox WHERE seq = ?1")?.execute([entry.seq])?;
                conn.prepare_cached("UPDATE sync_outbox SET base_hlc = ?1 WHERE seq = ?2")?.execute(params![entry.base_hlc, newer])?;
            }
            None => {
                conn.prepare_cached("UPDATE sync_outbox SET batch_id = NULL WHERE seq = ?1")?.execute([entry.seq])?;
            }
        }
    }
    Ok(())
}

/// Splits an in-flight batch the server found too large: keeps the first half in flight under a
/// new id and returns the rest to the queue. Returns false when the batch has a single change.
pub fn split_batch(conn: &mut Connection, batch: &Batch) -> SyncResult<bool> {
    if batch.entries.len() < 2 {
        return Ok(false);
    }
    let transaction = conn.transaction()?;
    let half = batch.entries.len() / 2;
    requeue(&transaction, &batch.entries[half..])?;
    transaction.execute(
        "UPDATE sync_outbox SET batch_id = ?1 WHERE batch_id = ?2",
        params![Uuid::now_v7().as_bytes().to_vec(), batch.id.as_bytes().to_vec()],
    )?;
    transaction.commit()?;
    Ok(true)
}

/// Records a single change the server refuses outright (a 4xx that no retry can fix) as
/// rejected, so it leaves the queue without being lost: it stays in the conflicts list.
pub fn reject_locally(store: &mut Store, batch: &Batch, reason: &str, message: &str) -> SyncResult<()> {
    let now = hlc::wall_ms();
    let result = ChangeResult {
        change_id: String::new(),
        status: "rejected".into(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        current: None,
    };
    store.write(|writer| {
        for entry in &batch.entries {
            writer.conn().execute("DELETE FROM sync_outbox WHERE seq = ?1", [entry.seq])?;
            insert_conflict(writer.conn(), entry, &result, "rejected", now)?;
            writer.conn().execute(
                "INSERT INTO sync_outcomes (tbl, row_id, field, change_id, status, reason, hlc, answered_at)
                 VALUES (?1, ?2, ?3, ?4, 'rejected', ?5, ?6, ?7)
                 ON CONFLICT (tbl, row_id, field) DO UPDATE SET change_id = excluded.change_id, status = 'rejected',
                   reason = excluded.reason, hlc = excluded.hlc, answered_at = excluded.answered_at",
                params![entry.tbl, entry.row_id, entry.field, entry.change_id.as_bytes().to_vec(), reason, entry.hlc, now],
            )?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Takes the server's time as the clock correction (`clock_offset_ms = server_time − wall_now`,
/// with `wall_now` read when the answer arrived) and keeps it for offline work. Differences under
/// a second from the current correction are ignored: they are network delay, not a wrong clock,
/// and following them would only make the clock jitter.
pub fn observe_server_time(store: &mut Store, server_time: i64, received_at: i64) -> SyncResult<()> {
    let offset = server_time - received_at;
    if (offset - store.clock.offset_ms).abs() < 1000 {
        return Ok(());
    }
    store.clock.offset_ms = offset;
    state::set(&store.conn, state::CLOCK_OFFSET_MS, offset)?;
    Ok(())
}

/// After the server refused a batch as stamped too far in the future: corrects the clock by the
/// server's time and re-stamps every unacknowledged change in `seq` order, with their field
/// clocks and the bases that pointed at them, so they order as if made with a right clock. This
/// is allowed because nothing has acknowledged those stamps. The batch in flight gets a new id,
/// since its content changed. Returns how many changes were re-stamped.
pub fn restamp(store: &mut Store, server_time: i64) -> SyncResult<usize> {
    let offset = server_time - hlc::wall_ms();
    let node = store.node;
    let transaction = store.conn.transaction()?;
    // The new clock must still order after every stamp other nodes made and after this device's
    // acknowledged ones; only the unacknowledged stamps of this device are given back.
    let floor: i64 = transaction.query_row(
        "SELECT coalesce(max(hlc), 0) FROM sync_field_clock c WHERE NOT EXISTS (
           SELECT 1 FROM sync_outbox o WHERE o.tbl = c.tbl AND o.row_id = c.row_id AND o.field = c.field
             AND o.hlc = c.hlc AND o.node = c.node)",
        [],
        |row| row.get(0),
    )?;
    let mut clock = Clock { last: floor, offset_ms: offset };
    let entries: Vec<OutboxEntry> = {
        let mut statement = transaction.prepare(&format!("SELECT {ENTRY_COLUMNS} FROM sync_outbox ORDER BY seq"))?;
        let rows = statement.query_map([], entry_from_row)?;
        rows.map(|row| row.map(|(entry, _)| entry)).collect::<rusqlite::Result<_>>()?
    };
    let mut renamed: HashMap<(String, String, String, i64), i64> = HashMap::new();
    for entry in &entries {
        let new_hlc = clock.tick(hlc::wall_ms());
        let base = entry
            .base_hlc
            .map(|base| *renamed.get(&(entry.tbl.clone(), entry.row_id.clone(), entry.field.clone(), base)).unwrap_or(&base));
        transaction.execute("UPDATE sync_outbox SET hlc = ?1, base_hlc = ?2 WHERE seq = ?3", params![new_hlc, base, entry.seq])?;
        transaction.execute(
            "UPDATE sync_field_clock SET hlc = ?1 WHERE tbl = ?2 AND row_id = ?3 AND field = ?4 AND hlc = ?5 AND node = ?6",
            params![new_hlc, entry.tbl, entry.row_id, entry.field, entry.hlc, node.0.to_vec()],
        )?;
        renamed.insert((entry.tbl.clone(), entry.row_id.clone(), entry.field.clone(), entry.hlc), new_hlc);
    }
    let batches: Vec<Vec<u8>> = {
        let mut statement = transaction.prepare("SELECT DISTINCT batch_id FROM sync_outbox WHERE batch_id IS NOT NULL")?;
        let rows = statement.query_map([], |row| row.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for batch in batches {
        transaction.execute(
            "UPDATE sync_outbox SET batch_id = ?1 WHERE batch_id = ?2",
            params![Uuid::now_v7().as_bytes().to_vec(), batch],
        )?;
    }
    state::set(&transaction, state::CLOCK_OFFSET_MS, offset)?;
    state::set(&transaction, "hlc_last", clock.last)?;
    transaction.commit()?;
    store.clock = clock;
    Ok(entries.len())
}

/// The number of changes not yet sent and not in flight.
pub fn unsent(conn: &Connection) -> SyncResult<i64> {
    Ok(conn.query_row("SELECT count(*) FROM sync_outbox WHERE batch_id IS NULL", [], |row| row.get(0))?)
}
