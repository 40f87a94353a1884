//! What the desktop app shows about sync: each record's state (pending, sent, accepted,
//! superseded, rejected with a reason), the conflicts list as the window shows it with its two
//! resolutions and the re-sending of a corrected edit, and a summary for the status bar. Pending and in-flight states come from `sync_outbox` alone, so
//! they cannot drift from what is really queued.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::hlc;
use crate::schema;
use crate::store::Store;
use crate::sync::state::{self, Account};

/// The sync state of one field, or of a whole record (the most pressing of its fields').
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Nothing of this device's is waiting: the record is as the server has it.
    Synced,
    /// The server accepted the device's last change.
    Accepted,
    /// The device's change lost to a later one made elsewhere; the later value is shown.
    Superseded,
    /// Changed on this device and waiting to be sent.
    Pending,
    /// Sent; the server's answer has not arrived yet.
    Sent,
    /// The server refused the device's change; see the reason and the conflicts list.
    Rejected,
}

/// The state of one field of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldSyncState {
    /// The field.
    pub field: String,
    /// Its state.
    pub state: SyncState,
    /// Why it was rejected (`stale_base`, `server_only`, `forbidden`, `invalid`).
    pub reason: Option<String>,
}

/// The sync state of a record and of each field this device changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordSyncState {
    /// The record's table.
    pub table: String,
    /// The record's id.
    pub id: String,
    /// The most pressing state of its fields: rejected, then sent, pending, superseded, accepted.
    pub state: SyncState,
    /// The fields with something to report.
    pub fields: Vec<FieldSyncState>,
}

/// The sync state of a record.
pub fn record_state(store: &Store, table: &str, id: &str) -> Result<RecordSyncState> {
    record_state_in(&store.conn, table, id)
}

fn record_state_in(conn: &Connection, table: &str, id: &str) -> Result<RecordSyncState> {
    let mut fields: Vec<FieldSyncState> = Vec::new();
    {
        let mut statement = conn.prepare_cached(
            "SELECT field, max(batch_id IS NOT NULL) FROM sync_outbox WHERE tbl = ?1 AND row_id = ?2 GROUP BY field ORDER BY field",
        )?;
        let rows = statement.query_map(params![table, id], |row| Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?)))?;
        for row in rows {
            let (field, sent) = row?;
            fields.push(FieldSyncState { field, state: if sent { SyncState::Sent } else { SyncState::Pending }, reason: None });
        }
    }
    {
        let mut statement =
            conn.prepare_cached("SELECT field, status, reason FROM sync_outcomes WHERE tbl = ?1 AND row_id = ?2 ORDER BY field")?;
        let rows = statement.query_map(params![table, id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, Option<String>>(2)?))
        })?;
        for row in rows {
            let (field, status, reason) = row?;
            if fields.iter().any(|known| known.field == field) {
                continue;
            }
            let state = match status.as_str() {
                "applied" => SyncState::Accepted,
                "superseded" => SyncState::Superseded,
                _ => SyncState::Rejected,
            };
            fields.push(FieldSyncState { field, state, reason });
        }
    }
    fields.sort_by(|left, right| left.field.cmp(&right.field));
    let state = fields.iter().map(|field| field.state).max().unwrap_or(SyncState::Synced);
    Ok(RecordSyncState { table: table.to_owned(), id: id.to_owned(), state, fields })
}

/// A merge outcome the user should see: a change of theirs the server refused, or that lost to a
/// later change of a field whose losers are shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    /// Its id in the list.
    pub id: i64,
    /// The record's table.
    pub table: String,
    /// The record's id.
    pub row_id: String,
    /// The field.
    pub field: String,
    /// The value this device wanted.
    pub local_value: Value,
    /// The value the server keeps, if it has one.
    pub remote_value: Option<Value>,
    /// Who wrote the server's value (e.g. `moderator:17`).
    pub remote_actor: Option<String>,
    /// `superseded` or `rejected`.
    pub kind: String,
    /// Why it was rejected (`stale_base`, `server_only`, `forbidden`, `invalid`).
    pub reason: Option<String>,
    /// When it was recorded (Unix milliseconds).
    pub created_at: i64,
    /// When the user resolved it, if they have.
    pub resolved_at: Option<i64>,
}

/// The conflicts list, newest first; only unresolved ones unless `include_resolved`.
pub fn conflicts(store: &Store, include_resolved: bool) -> Result<Vec<Conflict>> {
    let sql = format!(
        "SELECT id, tbl, row_id, field, local_value, remote_value, remote_actor, kind, reason, created_at, resolved_at
         FROM sync_conflicts {} ORDER BY id DESC",
        if include_resolved { "" } else { "WHERE resolved_at IS NULL" }
    );
    let mut statement = store.conn.prepare(&sql)?;
    let rows = statement.query_map([], conflict_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn parse(text: Option<String>) -> Option<Value> {
    text.map(|text| serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn conflict_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Conflict> {
    Ok(Conflict {
        id: row.get(0)?,
        table: row.get(1)?,
        row_id: row.get(2)?,
        field: row.get(3)?,
        local_value: parse(row.get(4)?).unwrap_or(Value::Null),
        remote_value: parse(row.get(5)?),
        remote_actor: row.get(6)?,
        kind: row.get(7)?,
        reason: row.get(8)?,
        created_at: row.get(9)?,
        resolved_at: row.get(10)?,
    })
}

/// How the user settles a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Write the device's value again, as a new edit made now (it is queued and synced like any
    /// edit, from the server's current version, so it is not refused as stale again).
    KeepMine,
    /// Keep the server's value, which the device already shows.
    KeepTheirs,
}

/// One conflict of the list, resolved or not.
fn conflict(store: &Store, id: i64) -> Result<Conflict> {
    store
        .conn
        .query_row(
            "SELECT id, tbl, row_id, field, local_value, remote_value, remote_actor, kind, reason, created_at, resolved_at
             FROM sync_conflicts WHERE id = ?1",
            [id],
            conflict_from_row,
        )
        .optional()?
        .ok_or_else(|| Error::NotFound { table: "sync_conflicts".into(), id: id.to_string() })
}

/// Settles a conflict and marks it resolved, in one transaction.
pub fn resolve_conflict(store: &mut Store, id: i64, resolution: Resolution) -> Result<()> {
    let conflict = conflict(store, id)?;
    let table = schema::table(&conflict.table)
        .ok_or_else(|| Error::NotFound { table: conflict.table.clone(), id: conflict.row_id.clone() })?;
    let now = hlc::wall_ms();
    store.write(|writer| {
        if resolution == Resolution::KeepMine && conflict.resolved_at.is_none() {
            match conflict.field.as_str() {
                "deleted" => {
                    let deleted = conflict.local_value.as_i64() == Some(1) || conflict.local_value.as_bool() == Some(true);
                    if deleted {
                        if crate::record::exists(writer.conn(), table.name, &conflict.row_id)? {
                            writer.delete(table, &conflict.row_id)?;
                        }
                    } else {
                        // Saving a tombstoned row with no changes restores it.
                        writer.save(table, Some(&conflict.row_id), Map::new())?;
                    }
                }
                "scope_id" => {}
                field => {
                    let mut changes = Map::new();
                    changes.insert(field.to_owned(), conflict.local_value.clone());
                    writer.save(table, Some(&conflict.row_id), changes)?;
                }
            }
        }
        writer.conn().execute("UPDATE sync_conflicts SET resolved_at = ?1 WHERE id = ?2 AND resolved_at IS NULL", params![now, id])?;
        Ok(())
    })?;
    Ok(())
}

/// Fixes a rejected edit and sends it again: writes `value` (the user's corrected value) to the
/// conflict's field as a new edit through the one write path, so it is queued like any edit, and
/// closes the conflict, in one transaction. A corrected value that fails its checks is refused
/// with the field's error, and the conflict stays open.
pub fn resend_edit(store: &mut Store, id: i64, value: Value) -> Result<()> {
    let conflict = conflict(store, id)?;
    let table = schema::table(&conflict.table)
        .filter(|table| table.field(&conflict.field).is_some())
        .ok_or_else(|| Error::NotFound { table: conflict.table.clone(), id: conflict.row_id.clone() })?;
    let now = hlc::wall_ms();
    store.write(|writer| {
        let mut changes = Map::new();
        changes.insert(conflict.field.clone(), value);
        writer.save(table, Some(&conflict.row_id), changes)?;
        // The corrected value is queued; the server's value it replaces needs nothing more.
        writer.conn().execute("UPDATE sync_conflicts SET resolved_at = ?1 WHERE id = ?2 AND resolved_at IS NULL", params![now, id])?;
        Ok(())
    })
}

/// A conflict as the conflicts list shows it: both values (as JSON text), who and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ConflictView {
    /// Its id in the list.
    pub id: i64,
    /// The record's table.
    pub table: String,
    /// The record's id.
    pub row_id: String,
    /// The field.
    pub field: String,
    /// The value this device wanted, as JSON.
    pub local_value: String,
    /// The value the server keeps, as JSON, if it has one.
    pub remote_value: Option<String>,
    /// Who wrote the server's value.
    pub remote_actor: Option<String>,
    /// `superseded` or `rejected`.
    pub kind: String,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// When it was recorded (RFC 3339).
    pub created_at: String,
    /// A name the user knows the record by (a person's or village's name, a listing's title),
    /// if it has one.
    pub record_name: Option<String>,
    /// The household the record belongs to (the record itself for a household), so the list
    /// can open its page.
    pub household_id: Option<String>,
    /// The value the device holds for the field now, as JSON.
    pub current_value: Option<String>,
}

/// The fields a record is known by, in order of preference.
const NAME_FIELDS: [&str; 4] = ["name", "head_name", "title", "summary"];

/// The unresolved conflicts, newest first, each with the record's name, its household and the
/// value the device holds now.
pub fn conflict_views(store: &Store) -> Result<Vec<ConflictView>> {
    let conflicts = conflicts(store, false)?;
    let mut views = Vec::with_capacity(conflicts.len());
    for conflict in conflicts {
        let row = read_record(store, &conflict.table, &conflict.row_id)?;
        let field_value = |name: &str| row.as_ref().and_then(|row| row.fields.get(name)).filter(|value| !value.is_null());
        let record_name = NAME_FIELDS.iter().find_map(|name| field_value(name).and_then(|value| value.as_str()).map(str::to_owned));
        let household_id = match conflict.table.as_str() {
            "households" => Some(conflict.row_id.clone()),
            _ => field_value("household_id").and_then(|value| value.as_str()).map(str::to_owned),
        };
        views.push(ConflictView {
            current_value: field_value(&conflict.field).map(|value| value.to_string()),
            record_name,
            household_id,
            id: conflict.id,
            table: conflict.table,
            row_id: conflict.row_id,
            field: conflict.field,
            local_value: conflict.local_value.to_string(),
            remote_value: conflict.remote_value.map(|value| value.to_string()),
            remote_actor: conflict.remote_actor,
            kind: conflict.kind,
            reason: conflict.reason,
            created_at: chrono::DateTime::from_timestamp_millis(conflict.created_at).map(|time| time.to_rfc3339()).unwrap_or_default(),
        });
    }
    Ok(views)
}

/// The status bar's view of sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncSummary {
    /// The signed-in account, kept while offline.
    pub account: Option<Account>,
    /// Changes waiting to be sent.
    pub pending: i64,
    /// Changes sent whose answer has not arrived.
    pub in_flight: i64,
    /// Unresolved conflicts.
    pub open_conflicts: i64,
    /// When the last complete sync finished (Unix milliseconds).
    pub last_sync_at: Option<i64>,
    /// Why the last sync failed, if it did.
    pub last_error: Option<String>,
    /// Whether a first snapshot has been completed at least once.
    pub has_snapshot: bool,
}

/// The summary of sync for the status bar.
pub fn summary(store: &Store) -> Result<SyncSummary> {
    let conn = &store.conn;
    let (pending, in_flight): (i64, i64) = conn.query_row(
        "SELECT coalesce(sum(batch_id IS NULL), 0), coalesce(sum(batch_id IS NOT NULL), 0) FROM sync_outbox",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let open_conflicts = conn.query_row("SELECT count(*) FROM sync_conflicts WHERE resolved_at IS NULL", [], |row| row.get(0))?;
    Ok(SyncSummary {
        account: state::account(conn)?,
        pending,
        in_flight,
        open_conflicts,
        last_sync_at: state::integer(conn, state::LAST_SYNC_AT)?,
        last_error: state::text(conn, state::LAST_ERROR)?,
        has_snapshot: state::text(conn, state::PULL_CURSOR)?.is_some(),
    })
}

/// The account this device signed in with, kept while offline; `None` before the first sign-in.
pub fn signed_in_account(store: &Store) -> Result<Option<Account>> {
    Ok(state::account(&store.conn)?)
}

/// A canonical text dump of the synced data: every row of every synced table (values, scope,
/// tombstone) with the clock of each field, one line per row in table and id order. Two stores
/// that have converged have equal dumps; `scopes` limits it to those villages.
pub fn canonical_dump(store: &Store, scopes: Option<&[String]>) -> Result<String> {
    let conn = &store.conn;
    let mut out = String::new();
    let mut clocks = conn.prepare_cached("SELECT field, hlc, hex(node) FROM sync_field_clock WHERE tbl = ?1 AND row_id = ?2 ORDER BY field")?;
    for table in schema::TABLES {
        let mut statement = conn.prepare(&format!("SELECT * FROM {} ORDER BY id", table.name))?;
        let rows = statement.query_map([], |row| crate::record::row_from_sql(table, row))?;
        for row in rows {
            let row = row?;
            if scopes.is_some_and(|scopes| !scopes.contains(&row.scope_id)) {
                continue;
            }
            let stamps: Vec<String> = clocks
                .query_map(params![table.name, row.id], |clock| {
                    Ok(format!("{}@{}:{}", clock.get::<_, String>(0)?, clock.get::<_, i64>(1)?, clock.get::<_, String>(2)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let values = serde_json::to_string(&row.fields)?;
            out.push_str(&format!(
                "{} {} scope={} deleted={} {} clocks=[{}]\n",
                table.name,
                row.id,
                row.scope_id,
                row.deleted,
                values,
                stamps.join(",")
            ));
        }
    }
    Ok(out)
}

/// A synced record as the device holds it (live or tombstoned), for views that show a record
/// next to its sync state.
pub fn read_record(store: &Store, table: &str, id: &str) -> Result<Option<crate::record::Row>> {
    let Some(spec) = schema::table(table) else { return Ok(None) };
    Ok(crate::record::read_row(&store.conn, spec, id)?)
}

/// The stamp of a field as the device holds it: `(hlc, node)`.
pub fn field_clock(store: &Store, table: &str, id: &str, field: &str) -> Result<Option<crate::hlc::Stamp>> {
    Ok(crate::record::field_stamp(&store.conn, table, id, field)?)
}

/// Sets the device's clock correction in milliseconds (kept in the store). Sync sets it from the
/// server's time by itself; this is for a settings screen and for tests that make a device's
/// clock wrong by days.
pub fn set_clock_offset(store: &mut Store, offset_ms: i64) -> Result<()> {
    store.clock.offset_ms = offset_ms;
    state::set(&store.conn, state::CLOCK_OFFSET_MS, offset_ms)?;
    Ok(())
}
