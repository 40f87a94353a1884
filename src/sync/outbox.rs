//! The push side of sync as plain database work, with no I/O: planning a batch from the outbox,
//! recording the server's answer, re-stamping unsent changes after a clock correction, and
//! returning changes to the queue when a batch must be split.
//!
//! Rules (sync-design.md section 8): a batch is assigned in one transaction and its rows are then
//! frozen, so a retry re-sends the same rows under the same batch id; outbox rows are deleted only
//! in the transaction that records the server's answer for them. A batch carries every unsent
//! change of each of its records, after the records they reference (see [`next_batch`]), because
//! the server checks every record whole at the end of each batch. A batch id never names two
//! bodies: a changed batch (split, re-stamped, renumbered) gets a new id.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use uuid::Uuid;

use crate::hlc::{self, Clock, NodeId, Stamp};
use crate::record::RemoteField;
use crate::schema::{self, FieldType, Policy, ScopeRule};
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
        use base64::Engine as _;
        Change {
            change_id: self.change_id.to_string(),
            seq: self.seq,
            tbl: self.tbl.clone(),
            row_id: self.row_id.clone(),
            field: self.field.clone(),
            value: self.value.clone(),
            hlc: self.hlc,
            base_hlc: self.base_hlc,
            node: self.resend.then(|| base64::engine::general_purpose::STANDARD.encode(self.node.0)),
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
        let sender = Uuid::parse_str(client_id).ok().map(|id| NodeId(*id.as_bytes()));
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
type RowKey = (String, String);

fn row_key(entry: &OutboxEntry) -> RowKey {
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
fn renumber(conn: &Connection, order: &[i64], floor: i64) -> crate::Result<()> {
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
fn requeue_at_end(conn: &Connection, seq: i64) -> crate::Result<()> {
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
