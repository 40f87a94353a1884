//! Changes returned to the queue or changed in it: a batch split or given a new id, the queue
//! renumbered above a server's last applied sequence number, a batch refused locally, and unsent
//! changes re-stamped after a clock correction.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::plan::{renumber, row_key};
use super::{entry_from_row, insert_conflict, Batch, OutboxEntry, ENTRY_COLUMNS};
use crate::hlc::{self, Clock};
use crate::store::Store;
use crate::sync::error::SyncResult;
use crate::sync::state;
use crate::sync::wire::ChangeResult;

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

/// Splits an in-flight batch the server found too large: keeps the first part in flight under a
/// new id (a new body never goes under an id already sent) and returns the rest to the queue.
/// The cut falls at the row boundary nearest the middle, so each part still carries its records
/// whole; only a batch of a single row is cut inside the row, as a last resort before refusing
/// its changes on the device. Returns false when the batch has a single change.
pub fn split_batch(conn: &mut Connection, batch: &Batch) -> SyncResult<bool> {
    if batch.entries.len() < 2 {
        return Ok(false);
    }
    let transaction = conn.transaction()?;
    let middle = batch.entries.len() / 2;
    let boundaries = (1..batch.entries.len())
        .filter(|&index| row_key(&batch.entries[index]) != row_key(&batch.entries[index - 1]));
    let half = boundaries.min_by_key(|index| index.abs_diff(middle)).unwrap_or(middle);
    requeue(&transaction, &batch.entries[half..])?;
    transaction.execute(
        "UPDATE sync_outbox SET batch_id = ?1 WHERE batch_id = ?2",
        params![Uuid::now_v7().as_bytes().to_vec(), batch.id.as_bytes().to_vec()],
    )?;
    transaction.commit()?;
    Ok(true)
}

/// Gives an in-flight batch a new id, its changes unchanged, and returns it. The server answered
/// that it holds another body under the old id (`idempotency_key_reused`); this device never
/// sends one, so the old id is taken as spent and the same changes go again under a fresh one.
pub fn renew_batch_id(conn: &Connection, batch: &Batch) -> SyncResult<Uuid> {
    let id = Uuid::now_v7();
    conn.execute("UPDATE sync_outbox SET batch_id = ?1 WHERE batch_id = ?2", params![id.as_bytes().to_vec(), batch.id.as_bytes().to_vec()])?;
    Ok(id)
}

/// After the server answered `seq_reused` (a new change came with a sequence number it had
/// already applied from this device, as when the device's database was restored from an old
/// copy): returns the changes in flight to the queue, since the server applied none of them, and
/// gives every queued change a new sequence number above `last_applied_seq`, keeping their order,
/// so the next batches, under new ids, are new to the server. Nothing is dropped. Returns how many
/// changes were renumbered.
pub fn renumber_above(conn: &mut Connection, last_applied_seq: i64) -> SyncResult<usize> {
    let transaction = conn.transaction()?;
    let in_flight: Vec<OutboxEntry> = {
        let mut statement =
            transaction.prepare(&format!("SELECT {ENTRY_COLUMNS} FROM sync_outbox WHERE batch_id IS NOT NULL ORDER BY seq"))?;
        let rows = statement.query_map([], entry_from_row)?;
        rows.map(|row| row.map(|(entry, _)| entry)).collect::<rusqlite::Result<_>>()?
    };
    requeue(&transaction, &in_flight)?;
    let order: Vec<i64> = {
        let mut statement = transaction.prepare("SELECT seq FROM sync_outbox WHERE batch_id IS NULL ORDER BY seq")?;
        let rows = statement.query_map([], |row| row.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    renumber(&transaction, &order, last_applied_seq)?;
    transaction.commit()?;
    Ok(order.len())
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
/// is allowed because nothing has acknowledged those stamps. Re-sent fields (`resend`) keep
/// their stamps: a server acknowledged them once and other devices may hold them, and a new
/// stamp could make an old value win over a later edit made elsewhere. The batch in flight gets
/// a new id, since its content changed. Returns how many changes were re-stamped.
pub fn restamp(store: &mut Store, server_time: i64) -> SyncResult<usize> {
    let offset = server_time - hlc::wall_ms();
    let node = store.node;
    let transaction = store.conn.transaction()?;
    // The new clock must still order after every stamp other nodes made and after this device's
    // acknowledged ones (re-sent fields included); only the unacknowledged stamps of this device
    // are given back.
    let floor: i64 = transaction.query_row(
        "SELECT coalesce(max(hlc), 0) FROM sync_field_clock c WHERE NOT EXISTS (
           SELECT 1 FROM sync_outbox o WHERE o.tbl = c.tbl AND o.row_id = c.row_id AND o.field = c.field
             AND o.hlc = c.hlc AND o.node = c.node AND o.resend = 0)",
        [],
        |row| row.get(0),
    )?;
    let mut clock = Clock { last: floor, offset_ms: offset };
    let entries: Vec<OutboxEntry> = {
        let mut statement = transaction.prepare(&format!("SELECT {ENTRY_COLUMNS} FROM sync_outbox WHERE resend = 0 ORDER BY seq"))?;
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
