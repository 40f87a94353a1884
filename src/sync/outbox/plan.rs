//! Planning the next batch: a prefix of the queue in `seq` order, cut at a row boundary, with
//! the queue first grouped by row and renumbered when a record's changes lie apart.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use uuid::Uuid;

use super::{entry_from_row, Batch, BatchLimits, OutboxEntry, ENTRY_COLUMNS};
use crate::schema::{self, FieldType, ScopeRule};
use crate::sync::error::SyncResult;
use crate::sync::wire;

/// The batch to push next: the batch already in flight if there is one (a retry must re-send the
/// same rows under the same id), otherwise a new batch of the oldest unsent changes, assigned in
/// one transaction. `None` when the outbox is empty.
///
/// A new batch is a prefix of the queue in `seq` order (the server skips sequence numbers it has
/// applied) cut at a row boundary, and carries every unsent change of each of its rows. When a
/// row of the candidate window has unsent changes further back, or is out of order, the queue is
/// first grouped by row and renumbered ([`group_rows`]); a row larger than `limits` goes alone.
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
    let window = candidate_window(&transaction, limits)?;
    if window_needs_grouping(&transaction, &window)? {
        group_rows(&transaction)?;
    }
    let entries = whole_rows(&transaction, limits)?;
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

/// The server's largest batch. A single row larger than the device's limits goes alone in its
/// batch, but never beyond this.
const SERVER_LIMITS: BatchLimits = BatchLimits { max_changes: wire::MAX_BATCH_CHANGES, max_bytes: wire::MAX_BATCH_BYTES };

/// An upper bound on the bytes of a push body's envelope (ids, version, brackets).
const ENVELOPE_BYTES: usize = 200;

/// The bytes one change adds to a push body.
fn change_size(entry: &OutboxEntry) -> SyncResult<usize> {
    Ok(serde_json::to_vec(&entry.to_change())?.len() + 1)
}

/// A record: its table and row id.
pub(super) type RowKey = (String, String);

pub(super) fn row_key(entry: &OutboxEntry) -> RowKey {
    (entry.tbl.clone(), entry.row_id.clone())
}

/// The tables a change of `field` in `tbl` may point into: a reference field's target table, or
/// every table for a photo's owner id (the owner's kind names its table, and ids are UUIDs, so
/// the one row with that id is the owner, as the server looks it up). `None` for other fields.
fn referenced_tables(tbl: &str, field: &str) -> Option<Vec<&'static str>> {
    let table = schema::table(tbl)?;
    match table.field(field).map(|spec| spec.ty) {
        Some(FieldType::Ref(target)) => Some(vec![target]),
        _ if matches!(table.scope, ScopeRule::FromOwner { id_field, .. } if id_field == field) => {
            Some(schema::TABLES.iter().map(|table| table.name).collect())
        }
        _ => None,
    }
}

/// The oldest unsent changes that fit the limits, cut without regard to rows: the part of the
/// queue the next batch is taken from.
fn candidate_window(conn: &Connection, limits: BatchLimits) -> SyncResult<Vec<OutboxEntry>> {
    let mut statement =
        conn.prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM sync_outbox WHERE batch_id IS NULL ORDER BY seq LIMIT ?1"))?;
    let rows = statement.query_map([limits.max_changes.max(1) as i64], entry_from_row)?;
    let mut entries = Vec::new();
    let mut bytes = ENVELOPE_BYTES;
    for row in rows {
        let (entry, _) = row?;
        let size = change_size(&entry)?;
        if !entries.is_empty() && bytes + size > limits.max_bytes {
            break;
        }
        bytes += size;
        entries.push(entry);
    }
    Ok(entries)
}

/// Whether the queue must be grouped by row ([`group_rows`]) before a batch is cut from
/// `window`: a row of the window has unsent changes after it (except the window's last row going
/// on right after it, with nothing between), a row's unsent `scope_id` change is not its first
/// unsent change, or a row comes before a row it references that has unsent changes. Only the
/// window's rows are looked at, each with indexed lookups, so a queue already in order (a large
/// import) is never scanned whole.
fn window_needs_grouping(conn: &Connection, window: &[OutboxEntry]) -> SyncResult<bool> {
    let Some(last) = window.last() else { return Ok(false) };
    let mut first_seq: HashMap<RowKey, i64> = HashMap::new();
    for entry in window {
        first_seq.entry(row_key(entry)).or_insert(entry.seq);
    }
    for ((tbl, row_id), first) in &first_seq {
        let (latest, scope): (i64, Option<i64>) = conn
            .prepare_cached(
                "SELECT max(seq), max(CASE WHEN field = 'scope_id' THEN seq END) FROM sync_outbox
                 WHERE batch_id IS NULL AND tbl = ?1 AND row_id = ?2",
            )?
            .query_row(params![tbl, row_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
        if scope.is_some_and(|scope| scope != *first) {
            return Ok(true);
        }
        if latest <= last.seq {
            continue;
        }
        if *tbl != last.tbl || *row_id != last.row_id {
            return Ok(true);
        }
        let between: Option<i64> = conn
            .prepare_cached(
                "SELECT seq FROM sync_outbox WHERE batch_id IS NULL AND seq > ?1 AND NOT (tbl = ?2 AND row_id = ?3)
                 ORDER BY seq LIMIT 1",
            )?
            .query_row(params![last.seq, tbl, row_id], |row| row.get(0))
            .optional()?;
        if between.is_some_and(|between| between < latest) {
            return Ok(true);
        }
    }
    for entry in window {
        let (Some(tables), Some(id)) = (referenced_tables(&entry.tbl, &entry.field), entry.value.as_str()) else { continue };
        let first = first_seq[&row_key(entry)];
        for table in tables {
            match first_seq.get(&(table.to_owned(), id.to_owned())) {
                Some(target_first) if *target_first > first => return Ok(true),
                Some(_) => {}
                None => {
                    let waiting = conn
                        .prepare_cached("SELECT 1 FROM sync_outbox WHERE batch_id IS NULL AND tbl = ?1 AND row_id = ?2 LIMIT 1")?
                        .exists(params![table, id])?;
                    if waiting {
                        return Ok(true);
                    }
                }
            }
        }
    }
    Ok(false)
}

/// Orders the whole unsent queue by row and gives it new sequence numbers, so that a batch cut
/// at row boundaries carries every unsent change of its records. The server checks every record
/// whole at the end of each batch, so a new record whose required field waited in a later batch
/// would be refused, and so would an edit that keeps a cross-field rule only together with
/// another field. Each row's unsent changes become contiguous, its `scope_id` change first (the
/// server learns of a new row from its scope), placed where the row's first unsent change was,
/// but never before a row it references that also has unsent changes (a member after its new
/// household, a household moved to a new village after that village): a row's place is the
/// greatest of its own first position and the places of the rows it references, one step
/// after each. A reference cycle is broken where it is met. Renumbering is allowed because no
/// server has seen these changes; changes in flight keep their numbers and their batch.
/// Returns whether anything moved.
pub(crate) fn group_rows(conn: &Connection) -> SyncResult<bool> {
    struct Group {
        first: i64,
        seqs: Vec<i64>,
        references: Vec<RowKey>,
    }
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<RowKey, usize> = HashMap::new();
    let mut queued: Vec<i64> = Vec::new();
    {
        let mut statement =
            conn.prepare_cached("SELECT seq, tbl, row_id, field, value FROM sync_outbox WHERE batch_id IS NULL ORDER BY seq")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let tbl: String = row.get(1)?;
            let row_id: String = row.get(2)?;
            let field: String = row.get(3)?;
            queued.push(seq);
            let tables = referenced_tables(&tbl, &field);
            let position = *index.entry((tbl, row_id)).or_insert_with(|| {
                groups.push(Group { first: seq, seqs: Vec::new(), references: Vec::new() });
                groups.len() - 1
            });
            let group = &mut groups[position];
            if field == "scope_id" {
                group.seqs.insert(0, seq);
            } else {
                group.seqs.push(seq);
            }
            if let Some(tables) = tables {
                let value: Option<String> = row.get(4)?;
                let id = value.and_then(|text| serde_json::from_str::<Value>(&text).ok()).and_then(|value| value.as_str().map(str::to_owned));
                if let Some(id) = id {
                    group.references.extend(tables.into_iter().map(|table| (table.to_owned(), id.clone())));
                }
            }
        }
    }
    // Only references to rows that have unsent changes constrain the order.
    let targets: Vec<Vec<usize>> = groups
        .iter()
        .enumerate()
        .map(|(own, group)| group.references.iter().filter_map(|key| index.get(key).copied()).filter(|target| *target != own).collect())
        .collect();
    let places = places(&groups.iter().map(|group| group.first).collect::<Vec<_>>(), &targets);
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|&group| (places[group], groups[group].first));
    let grouped: Vec<i64> = order.iter().flat_map(|&group| groups[group].seqs.iter().copied()).collect();
    if grouped == queued {
        return Ok(false);
    }
    renumber(conn, &grouped, 0)?;
    Ok(true)
}

/// The place of each row in the grouped queue, as `(position, depth)`: its own first position,
/// or one step after the place of a row it references (`targets`), whichever is later. Computed
/// depth first without recursion, so a long chain of references (corrections of corrections)
/// cannot exhaust the stack; a reference back to a row still being placed (a cycle) is ignored.
fn places(firsts: &[i64], targets: &[Vec<usize>]) -> Vec<(i64, u32)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut marks = vec![Mark::New; firsts.len()];
    let mut places: Vec<(i64, u32)> = firsts.iter().map(|first| (*first, 0)).collect();
    for start in 0..firsts.len() {
        if marks[start] != Mark::New {
            continue;
        }
        marks[start] = Mark::Open;
        let mut stack = vec![(start, 0usize)];
        while let Some((row, next)) = stack.last_mut() {
            let row = *row;
            if let Some(&target) = targets[row].get(*next) {
                *next += 1;
                if marks[target] == Mark::New {
                    marks[target] = Mark::Open;
                    stack.push((target, 0));
                }
                continue;
            }
            for &target in &targets[row] {
                if marks[target] == Mark::Done {
                    let (position, depth) = places[target];
                    places[row] = places[row].max((position, depth + 1));
                }
            }
            marks[row] = Mark::Done;
            stack.pop();
        }
    }
    places
}

/// Gives the unsent changes listed in `order` (by their current sequence numbers) new sequence
/// numbers in that order, above every number used before and above `floor`. SQLite's
/// AUTOINCREMENT counts on from the greater of the largest number ever used (kept in
/// `sqlite_sequence`) and the largest in the table, so raising the kept number raises the next.
pub(super) fn renumber(conn: &Connection, order: &[i64], floor: i64) -> crate::Result<()> {
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS sync_outbox_order (position INTEGER PRIMARY KEY, old_seq INTEGER NOT NULL)", [])?;
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS sync_outbox_moving AS SELECT * FROM sync_outbox WHERE 0", [])?;
    conn.execute("DELETE FROM sync_outbox_order", [])?;
    {
        let mut insert = conn.prepare_cached("INSERT INTO sync_outbox_order (position, old_seq) VALUES (?1, ?2)")?;
        for (position, seq) in order.iter().enumerate() {
            insert.execute(params![position as i64, seq])?;
        }
    }
    conn.execute("INSERT INTO sync_outbox_moving SELECT * FROM sync_outbox WHERE seq IN (SELECT old_seq FROM sync_outbox_order)", [])?;
    conn.execute("DELETE FROM sync_outbox WHERE seq IN (SELECT old_seq FROM sync_outbox_order)", [])?;
    if floor > 0 {
        conn.execute("UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'sync_outbox' AND seq < ?1", [floor])?;
        conn.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT 'sync_outbox', ?1
             WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'sync_outbox')",
            [floor],
        )?;
    }
    conn.execute(
        "INSERT INTO sync_outbox (change_id, tbl, row_id, field, value, hlc, node, base_hlc, batch_id, attempts, last_error, resend)
         SELECT m.change_id, m.tbl, m.row_id, m.field, m.value, m.hlc, m.node, m.base_hlc, NULL, m.attempts, m.last_error, m.resend
         FROM sync_outbox_order o JOIN sync_outbox_moving m ON m.seq = o.old_seq ORDER BY o.position",
        [],
    )?;
    conn.execute("DELETE FROM sync_outbox_moving", [])?;
    conn.execute("DELETE FROM sync_outbox_order", [])?;
    Ok(())
}

/// The next batch's changes: whole rows from the head of the queue, as many as fit the limits.
/// A first row larger than the limits goes alone (a record has far fewer fields than the
/// server's maximum); only a row beyond even the server's maximum would be cut.
fn whole_rows(conn: &Connection, limits: BatchLimits) -> SyncResult<Vec<OutboxEntry>> {
    let max_changes = limits.max_changes.max(1);
    let mut statement = conn.prepare_cached(&format!("SELECT {ENTRY_COLUMNS} FROM sync_outbox WHERE batch_id IS NULL ORDER BY seq"))?;
    let rows = statement.query_map([], entry_from_row)?;
    let mut entries: Vec<OutboxEntry> = Vec::new();
    let mut bytes = ENVELOPE_BYTES;
    // Where the row being read began in `entries`.
    let mut row_start = 0;
    for row in rows {
        let (entry, _) = row?;
        let size = change_size(&entry)?;
        if entries.last().is_some_and(|previous| previous.tbl != entry.tbl || previous.row_id != entry.row_id) {
            row_start = entries.len();
        }
        let fits = entries.len() < max_changes && bytes + size <= limits.max_bytes;
        if !fits && !entries.is_empty() {
            if row_start > 0 {
                entries.truncate(row_start);
                break;
            }
            let fits_server = entries.len() < SERVER_LIMITS.max_changes && bytes + size <= SERVER_LIMITS.max_bytes;
            if !fits_server {
                break;
            }
        }
        bytes += size;
        entries.push(entry);
    }
    Ok(entries)
}

/// Moves an unsent change to the end of the queue: the same change under a new sequence number.
pub(super) fn requeue_at_end(conn: &Connection, seq: i64) -> crate::Result<()> {
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS sync_outbox_moving AS SELECT * FROM sync_outbox WHERE 0",
        [],
    )?;
    conn.execute("INSERT INTO sync_outbox_moving SELECT * FROM sync_outbox WHERE seq = ?1", [seq])?;
    conn.execute("DELETE FROM sync_outbox WHERE seq = ?1", [seq])?;
    conn.execute(
        "INSERT INTO sync_outbox (change_id, tbl, row_id, field, value, hlc, node, base_hlc, batch_id, attempts, last_error, resend)
         SELECT change_id, tbl, row_id, field, value, hlc, node, base_hlc, NULL, attempts, last_error, resend FROM sync_outbox_moving",
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
