//! The pull side of sync as plain database work: applying one page of rows through the merge
//! path, with the cursor stored in the same transaction, and the handling of a reset.

use rusqlite::params;

use crate::hlc::Stamp;
use crate::record::{RemoteField, RemoteRow, Writer};
use crate::schema;
use crate::store::Store;
use crate::sync::error::SyncResult;
use crate::sync::state;
use crate::sync::wire::{PullResponse, SERVER_RESTORED};

/// What applying one page did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageOutcome {
    /// Rows in the page.
    pub rows: usize,
    /// Fields that took the server's value (the others were older than the device's).
    pub fields_applied: usize,
    /// Rows of tables this version does not know, skipped.
    pub rows_skipped: usize,
    /// Rows dropped because the snapshot that just ended no longer holds them.
    pub rows_dropped: usize,
    /// Fields queued again because the snapshot that just ended, after `reset: server_restored`,
    /// lacked them or brought them with an older stamp.
    pub fields_resent: usize,
}

/// The stored pull cursor; `None` before the first snapshot and after a reset.
pub fn cursor(store: &Store) -> SyncResult<Option<String>> {
    Ok(state::text(&store.conn, state::PULL_CURSOR)?.filter(|cursor| !cursor.is_empty()))
}

/// Applies one pull page in one transaction: its rows through [`crate::record::Writer::apply_remote_rows`]
/// (a field takes the server's value only if its clock is later than the device's, so pending
/// local edits are kept), then the page's cursor. A crash before the commit leaves both the rows
/// and the cursor as they were, so the page is simply fetched again; applying a page twice is a
/// no-op. On a reset the old cursor is dropped in the same transaction and, when the assistant's
/// villages changed, rows outside `scopes` with no unsynced change are removed from the device;
/// the rows of the fresh snapshot are noted, and when its last page is stored every row it did
/// not bring and that has no unsynced change is dropped (a row deleted and purged on the server
/// while the device was away must not live on there).
///
/// After `reset: server_restored` the server has gone back in time, so what the snapshot lacks
/// may exist nowhere but on the devices: nothing is dropped. The stamp of every field the
/// snapshot brings is noted instead, and when its last page is stored every field the device
/// holds that the snapshot lacked or brought with an older stamp is queued again, with its
/// original stamp, for the engine to push ([`resend_missing`]).
pub fn apply_page(store: &mut Store, page: &PullResponse, scopes: Option<&[String]>) -> SyncResult<PageOutcome> {
    apply_owned_page(store, page.clone(), scopes)
}

/// [`apply_page`] for a page the caller no longer needs, as the engine has it: each field's name
/// and value move into the merge instead of being copied, which a first sync of many rows feels.
pub fn apply_owned_page(store: &mut Store, mut page: PullResponse, scopes: Option<&[String]>) -> SyncResult<PageOutcome> {
    // Decode every node first, so a malformed page changes nothing.
    let mut decoded = Vec::with_capacity(page.rows.len());
    for row in &mut page.rows {
        let mut fields = Vec::with_capacity(row.fields.len());
        for (name, (value, hlc, node)) in std::mem::take(&mut row.fields) {
            fields.push(RemoteField { field: name, value, stamp: Stamp { hlc, node: decode_node_fast(&node)? } });
        }
        decoded.push(fields);
    }
    let page = &page;
    let outcome = store.write(|writer| {
        let mut outcome = PageOutcome { rows: page.rows.len(), ..PageOutcome::default() };
        if let Some(reset) = &page.reset {
            if reset.reason == "scope_changed" {
                if let Some(scopes) = scopes {
                    remove_out_of_scope(writer, scopes)?;
                }
            }
            writer.conn().execute("DELETE FROM sync_snapshot_seen", [])?;
            writer.conn().execute("DELETE FROM sync_snapshot_fields", [])?;
            state::set(writer.conn(), state::SNAPSHOT_SWEEP, 1)?;
            if reset.reason == SERVER_RESTORED {
                state::set(writer.conn(), state::SNAPSHOT_RESEND, 1)?;
            }
        }
        let sweeping = state::integer(writer.conn(), state::SNAPSHOT_SWEEP)? == Some(1);
        let resending = sweeping && state::integer(writer.conn(), state::SNAPSHOT_RESEND)? == Some(1);
        let mut rows = Vec::with_capacity(page.rows.len());
        for (row, fields) in page.rows.iter().zip(&decoded) {
            let Some(table) = schema::table(&row.tbl) else {
                // A table this version does not know (a newer server); ignored like unknown fields.
                outcome.rows_skipped += 1;
                continue;
            };
            rows.push(RemoteRow { table, id: &row.id, scope_id: &row.scope_id, fields });
        }
        outcome.fields_applied += writer.apply_remote_rows(&rows)?;
        if sweeping {
            {
                let mut seen = writer.conn().prepare_cached("INSERT OR IGNORE INTO sync_snapshot_seen (tbl, row_id) VALUES (?1, ?2)")?;
                for row in &page.rows {
                    seen.execute([&row.tbl, &row.id])?;
                }
            }
            if resending {
                // The greatest stamp per field, since a row changed while the snapshot pages comes
                // again on a later page.
                let mut carried = writer.conn().prepare_cached(
                    "INSERT INTO sync_snapshot_fields (tbl, row_id, field, hlc, node) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (tbl, row_id, field) DO UPDATE SET hlc = excluded.hlc, node = excluded.node
                     WHERE (excluded.hlc, excluded.node) > (sync_snapshot_fields.hlc, sync_snapshot_fields.node)",
                )?;
                for (row, fields) in page.rows.iter().zip(&decoded) {
                    for field in fields {
                        carried.execute(params![row.tbl, row.id, field.field, field.stamp.hlc, field.stamp.node.0.to_vec()])?;
                    }
                }
            }
            let restarting = page.reset.is_some() && page.cursor.is_empty();
            if !page.has_more && !restarting {
                if resending {
                    outcome.fields_resent = resend_missing(writer.conn())?;
                } else {
                    outcome.rows_dropped = drop_unseen(writer)?;
                }
            }
        }
        if page.cursor.is_empty() {
            state::remove(writer.conn(), state::PULL_CURSOR)?;
        } else {
            state::set(writer.conn(), state::PULL_CURSOR, &page.cursor)?;
        }
        Ok(outcome)
    })?;
    Ok(outcome)
}

/// Decodes a pulled field's node ([`crate::hlc::NodeId::from_base64`]): almost every node on a
/// page is standard base64 of 16 bytes, which decodes without allocating; the URL-safe form is
/// taken too, and anything else says what is wrong.
fn decode_node_fast(text: &str) -> SyncResult<crate::hlc::NodeId> {
    crate::hlc::NodeId::from_base64(text).map_err(|error| crate::sync::error::SyncError::Protocol(error.to_string()))
}

/// Starts over from a snapshot after the server refused the stored cursor as one it never issued
/// (400 `invalid_cursor`): a server that forgot its own cursors has gone back in time as surely
/// as one answering `reset: server_restored`, so the device drops the cursor and takes a fresh
/// snapshot that drops nothing and ends by re-sending what the server lacks, as after that reset.
/// The unsynced changes stay in the outbox.
pub fn restart_after_restore(store: &mut Store) -> SyncResult<()> {
    store.write(|writer| {
        let conn = writer.conn();
        state::remove(conn, state::PULL_CURSOR)?;
        conn.execute("DELETE FROM sync_snapshot_seen", [])?;
        conn.execute("DELETE FROM sync_snapshot_fields", [])?;
        state::set(conn, state::SNAPSHOT_SWEEP, 1)?;
        state::set(conn, state::SNAPSHOT_RESEND, 1)
    })?;
    Ok(())
}

/// Ends a snapshot that followed `reset: server_restored`: queues again every field the device
/// holds (its value and its stamp in `sync_field_clock`) that the snapshot lacked or brought with
/// an older `(hlc, node)` stamp, keeping the field's original stamp and writer, so the restored
/// server gets back what it lost, whichever device wrote it. The base of a re-sent field is the
/// stamp the snapshot brought, so a `reject_if_stale` field the server has not changed since is
/// accepted. Nothing is dropped. Fields with a change in the outbox are left alone (that change
/// carries them), as are platform tables and server-only fields, which a device may not write.
/// Tables go parents first and rows in id order (UUIDv7, the order they were made), and a row's
/// `scope_id` comes first and `deleted` last, so the server learns of a row before its fields and
/// of a parent before its children. Returns how many fields were queued.
fn resend_missing(conn: &rusqlite::Connection) -> crate::Result<usize> {
    // A field is missing when the snapshot did not bring it or brought an older stamp; after
    // the snapshot is applied the device's stamp is never older than the one it brought.
    const MISSING: &str = "FROM sync_field_clock c
         LEFT JOIN sync_snapshot_fields s ON s.tbl = c.tbl AND s.row_id = c.row_id AND s.field = c.field
         WHERE c.tbl = ?1 AND (s.hlc IS NULL OR (s.hlc, s.node) < (c.hlc, c.node))
           AND NOT EXISTS (SELECT 1 FROM sync_outbox o WHERE o.tbl = c.tbl AND o.row_id = c.row_id AND o.field = c.field)";
    let mut queued = 0;
    for table in schema::TABLES.iter().filter(|table| !table.platform_only) {
        // Row ids first, then each row's fields: a device that lost its whole server holds every
        // field of every row here, far too many to keep in memory at once.
        let rows: Vec<String> = {
            let mut statement = conn.prepare(&format!(
                "SELECT DISTINCT c.row_id {MISSING} AND EXISTS (SELECT 1 FROM {name} r WHERE r.id = c.row_id) ORDER BY c.row_id",
                name = table.name
            ))?;
            let ids = statement.query_map([table.name], |row| row.get(0))?;
            ids.collect::<rusqlite::Result<_>>()?
        };
        let mut fields = conn.prepare_cached(&format!(
            "SELECT c.field, c.hlc, c.node, s.hlc {MISSING} AND c.row_id = ?2
             ORDER BY c.field <> 'scope_id', c.field = 'deleted', c.field"
        ))?;
        let mut insert = conn.prepare_cached(
            "INSERT INTO sync_outbox (change_id, tbl, row_id, field, value, hlc, node, base_hlc, resend)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1)",
        )?;
        for row_id in rows {
            let Some(row) = crate::record::read_row(conn, table, &row_id)? else { continue };
            let held: Vec<(String, i64, Vec<u8>, Option<i64>)> = fields
                .query_map(params![table.name, row_id], |found| Ok((found.get(0)?, found.get(1)?, found.get(2)?, found.get(3)?)))?
                .collect::<rusqlite::Result<_>>()?;
            for (field, hlc, node, base) in held {
                let value = match field.as_str() {
                    "scope_id" => serde_json::Value::String(row.scope_id.clone()),
                    "deleted" => serde_json::Value::from(i64::from(row.deleted)),
                    name => match table.field(name) {
                        Some(spec) if spec.policy != schema::Policy::ServerOnly => row.fields.get(name).cloned().unwrap_or_default(),
                        // Written by the platform only, or a field this version does not know.
                        _ => continue,
                    },
                };
                insert.execute(params![
                    uuid::Uuid::now_v7().as_bytes().to_vec(),
                    table.name,
                    row_id,
                    field,
                    value.to_string(),
                    hlc,
                    node,
                    base
                ])?;
                queued += 1;
            }
        }
    }
    conn.execute("DELETE FROM sync_snapshot_seen", [])?;
    conn.execute("DELETE FROM sync_snapshot_fields", [])?;
    state::remove(conn, state::SNAPSHOT_SWEEP)?;
    state::remove(conn, state::SNAPSHOT_RESEND)?;
    Ok(queued)
}

/// Ends a snapshot the server asked for: drops every row it did not bring that has no unsynced
/// change (the device never discards unsynced work), with its field clocks, through the writer,
/// which tells the roster search. Returns how many rows were dropped.
fn drop_unseen(writer: &mut Writer<'_>) -> crate::Result<usize> {
    let mut dropped = 0;
    for table in schema::TABLES {
        let condition = format!(
            "NOT EXISTS (SELECT 1 FROM sync_snapshot_seen s WHERE s.tbl = '{name}' AND s.row_id = {name}.id)
             AND NOT EXISTS (SELECT 1 FROM sync_outbox o WHERE o.tbl = '{name}' AND o.row_id = {name}.id)",
            name = table.name
        );
        dropped += writer.purge(table, &condition, None)?;
    }
    writer.conn().execute("DELETE FROM sync_snapshot_seen", [])?;
    state::remove(writer.conn(), state::SNAPSHOT_SWEEP)?;
    Ok(dropped)
}

/// Removes rows of villages the assistant no longer works in, except rows with unsynced changes,
/// which the device never discards.
fn remove_out_of_scope(writer: &mut Writer<'_>, scopes: &[String]) -> crate::Result<()> {
    let list = serde_json::to_string(scopes)?;
    for table in schema::TABLES {
        let condition = format!(
            "scope_id NOT IN (SELECT value FROM json_each(?1))
             AND NOT EXISTS (SELECT 1 FROM sync_outbox o WHERE o.tbl = '{name}' AND o.row_id = {name}.id)",
            name = table.name
        );
        writer.purge(table, &condition, Some(&list))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use base64::Engine as _;
    use serde_json::{json, Value};

    use super::*;
    use crate::hlc::{self, NodeId};
    use crate::sync::outbox::{self, BatchLimits};
    use crate::sync::wire::{PulledRow, Reset};

    const VILLAGE: &str = "530102001001";
    /// Another device, the writer of a household this one only received.
    const OTHER: NodeId = NodeId([0x0A; 16]);
    /// The server's own node (the platform's writes).
    const PLATFORM: NodeId = NodeId([0xEE; 16]);

    fn save(store: &mut Store, table: &'static schema::TableSpec, id: Option<&str>, fields: Value) -> String {
        let Value::Object(map) = fields else { panic!("fields must be an object") };
        store.write(|writer| writer.save(table, id, map)).unwrap().id
    }

    /// Forgets the outbox, as a push the server acknowledged does.
    fn acknowledge(store: &Store) {
        store.conn.execute("DELETE FROM sync_outbox", []).unwrap();
    }

    fn receive(store: &mut Store, table: &'static schema::TableSpec, id: &str, fields: &[(&str, Value, i64, NodeId)]) {
        let fields: Vec<RemoteField> = fields
            .iter()
            .map(|(name, value, hlc, node)| RemoteField { field: (*name).into(), value: value.clone(), stamp: Stamp { hlc: *hlc, node: *node } })
            .collect();
        store.write(|writer| writer.apply_remote(table, id, &fields)).unwrap();
    }

    /// Every field clock the device holds of a row: field → (hlc, node).
    fn clocks(store: &Store, tbl: &str, id: &str) -> BTreeMap<String, (i64, Vec<u8>)> {
        let mut statement = store.conn.prepare("SELECT field, hlc, node FROM sync_field_clock WHERE tbl = ?1 AND row_id = ?2").unwrap();
        let rows = statement.query_map([tbl, id], |row| Ok((row.get(0)?, (row.get(1)?, row.get(2)?)))).unwrap();
        rows.map(Result::unwrap).collect()
    }

    /// The row as a restored server would send it in a snapshot: every field the device holds
    /// with the device's stamp, except `lacking` (absent) and `older` (an older stamp and value).
    fn as_snapshot(store: &Store, table: &'static schema::TableSpec, id: &str, lacking: &[&str], older: &[&str]) -> PulledRow {
        let row = crate::record::read_row(&store.conn, table, id).unwrap().unwrap();
        let mut fields = BTreeMap::new();
        for (name, (hlc, node)) in clocks(store, table.name, id) {
            if lacking.contains(&name.as_str()) {
                continue;
            }
            let value = match name.as_str() {
                "scope_id" => Value::String(row.scope_id.clone()),
                "deleted" => Value::from(i64::from(row.deleted)),
                other => row.fields[other].clone(),
            };
            let (value, hlc) = if older.contains(&name.as_str()) { (json!("旧值"), hlc - 1) } else { (value, hlc) };
            fields.insert(name, (value, hlc, base64::engine::general_purpose::STANDARD.encode(&node)));
        }
        PulledRow { tbl: table.name.into(), id: id.into(), scope_id: row.scope_id, sv: 1, fields }
    }

    fn outbox_rows(store: &Store) -> Vec<(String, String, String, String, i64, Vec<u8>, Option<i64>, i64)> {
        let mut statement = store
            .conn
            .prepare("SELECT tbl, row_id, field, value, hlc, node, base_hlc, resend FROM sync_outbox ORDER BY seq")
            .unwrap();
        let rows = statement
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?))
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[test]
    fn the_end_of_a_server_restored_snapshot_requeues_exactly_the_missing_and_older_fields_with_their_stamps() {
        let mut store = Store::open_in_memory().unwrap();
        let village = save(&mut store, &schema::VILLAGES, None, json!({ "code": VILLAGE, "name": "小河村" }));
        let household = |head: &str| json!({ "village_id": village, "head_name": head, "attribute": "general", "poverty_status": "not_exited" });
        // Written here and acknowledged, then edited and acknowledged again.
        let edited = save(&mut store, &schema::HOUSEHOLDS, None, household("褚一"));
        let unsent = save(&mut store, &schema::HOUSEHOLDS, None, household("褚二"));
        acknowledge(&store);
        save(&mut store, &schema::HOUSEHOLDS, Some(&edited), json!({ "phone": "13800000001", "notes": "下午改的" }));
        acknowledge(&store);
        // Written on another device and received from the server.
        let foreign = uuid::Uuid::now_v7().to_string();
        let stamp = hlc::pack(hlc::wall_ms() - 60_000, 3);
        receive(
            &mut store,
            &schema::HOUSEHOLDS,
            &foreign,
            &[
                ("scope_id", json!(VILLAGE), stamp, OTHER),
                ("village_id", json!(village), stamp, OTHER),
                ("head_name", json!("褚三"), stamp, OTHER),
                ("attribute", json!("general"), stamp, OTHER),
                ("poverty_status", json!("not_exited"), stamp + 1, OTHER),
            ],
        );
        // The platform's sale, which a device may not write.
        let sale = uuid::Uuid::now_v7().to_string();
        receive(&mut store, &schema::SALES, &sale, &[("scope_id", json!(VILLAGE), stamp, PLATFORM), ("order_no", json!("T-1"), stamp, PLATFORM)]);
        // An edit not yet sent when the server went back in time.
        save(&mut store, &schema::HOUSEHOLDS, Some(&unsent), json!({ "notes": "还没同步" }));
        let queued_before = outbox_rows(&store);
        assert_eq!(queued_before.len(), 1);
        let dump_before = crate::sync::canonical_dump(&store, None).unwrap();
        let clocks_before: Vec<_> = [&edited, &unsent, &foreign].iter().map(|id| clocks(&store, "households", id)).collect();

        // The restored server holds the village, the first household without its afternoon phone
        // and with an older note, the second one without the unsent note, a household made
        // elsewhere that this device never had, and neither the foreign household nor the sale.
        // It comes in two pages.
        let new_elsewhere = uuid::Uuid::now_v7().to_string();
        let mut elsewhere = BTreeMap::new();
        for (name, value) in [("scope_id", json!(VILLAGE)), ("village_id", json!(village)), ("head_name", json!("褚四")), ("attribute", json!("general")), ("poverty_status", json!("not_exited"))] {
            elsewhere.insert(name.to_owned(), (value, stamp, base64::engine::general_purpose::STANDARD.encode(OTHER.0)));
        }
        let first = PullResponse {
            cursor: "2:0".into(),
            has_more: true,
            server_time: hlc::wall_ms(),
            reset: Some(Reset { reason: SERVER_RESTORED.into() }),
            rows: vec![as_snapshot(&store, &schema::VILLAGES, &village, &[], &[]), as_snapshot(&store, &schema::HOUSEHOLDS, &edited, &["phone"], &["notes"])],
        };
        let second = PullResponse {
            cursor: "4:4".into(),
            has_more: false,
            server_time: hlc::wall_ms(),
            reset: None,
            rows: vec![
                as_snapshot(&store, &schema::HOUSEHOLDS, &unsent, &["notes"], &[]),
                PulledRow { tbl: "households".into(), id: new_elsewhere.clone(), scope_id: VILLAGE.into(), sv: 4, fields: elsewhere },
            ],
        };
        let outcome = apply_page(&mut store, &first, None).unwrap();
        assert_eq!((outcome.fields_resent, outcome.rows_dropped), (0, 0), "nothing happens before the snapshot ends");
        assert_eq!(outbox_rows(&store), queued_before);
        let outcome = apply_page(&mut store, &second, None).unwrap();
        assert_eq!(outcome.rows_dropped, 0);

        // Exactly the fields the server lacks or holds older, each with its original stamp and
        // writer; the unsent edit is untouched, ahead of them; nothing of the sale.
        let own = store.node().0.to_vec();
        let queued = outbox_rows(&store);
        assert_eq!(queued[0], queued_before[0], "the unsynced edit stays as it was");
        let resent: Vec<(String, String, i64, Vec<u8>, Option<i64>, i64)> =
            queued[1..].iter().map(|(_, row_id, field, _, hlc, node, base, resend)| (row_id.clone(), field.clone(), *hlc, node.clone(), *base, *resend)).collect();
        let (notes_hlc, _) = clocks_before[0]["notes"].clone();
        let mut expected = vec![
            (edited.clone(), "notes".to_owned(), notes_hlc, own.clone(), Some(notes_hlc - 1), 1),
            (edited.clone(), "phone".to_owned(), clocks_before[0]["phone"].0, own.clone(), None, 1),
        ];
        for field in ["scope_id", "attribute", "head_name", "poverty_status", "village_id"] {
            let (hlc, node) = clocks_before[2][field].clone();
            expected.push((foreign.clone(), field.to_owned(), hlc, node, None, 1));
        }
        // Rows go in id order, the earlier household first.
        if foreign < edited {
            expected.rotate_left(2);
        }
        assert_eq!(resent, expected);
        assert_eq!(outcome.fields_resent, expected.len());
        let value_of = |row_id: &str, field: &str| queued.iter().find(|entry| entry.1 == row_id && entry.2 == field).map(|entry| entry.3.clone());
        assert_eq!(value_of(&edited, "phone").as_deref(), Some("\"13800000001\""));
        assert_eq!(value_of(&foreign, "scope_id").as_deref(), Some(&*format!("\"{VILLAGE}\"")));

        // Nothing was dropped and no stamp changed; the household made elsewhere arrived.
        let clocks_after: Vec<_> = [&edited, &unsent, &foreign].iter().map(|id| clocks(&store, "households", id)).collect();
        assert_eq!(clocks_after, clocks_before);
        let dump_after = crate::sync::canonical_dump(&store, None).unwrap();
        for line in dump_before.lines() {
            assert!(dump_after.contains(line), "{line} was kept");
        }
        assert!(crate::record::read_row(&store.conn, &schema::HOUSEHOLDS, &new_elsewhere).unwrap().is_some());
        assert!(crate::record::read_row(&store.conn, &schema::SALES, &sale).unwrap().is_some());
        let left: i64 = store.conn.query_row("SELECT count(*) FROM sync_snapshot_fields", [], |row| row.get(0)).unwrap();
        assert_eq!(left, 0);
        assert_eq!(state::integer(&store.conn, state::SNAPSHOT_RESEND).unwrap(), None);

        // A clock correction re-stamps the unsent edit only: the re-sent stamps were acknowledged
        // once and other devices may hold them.
        let restamped = outbox::restamp(&mut store, hlc::wall_ms() + 3_600_000).unwrap();
        assert_eq!(restamped, 1);
        let after = outbox_rows(&store);
        assert_ne!(after[0].4, queued_before[0].4, "the unsent edit has a new stamp");
        assert_eq!(after[1..], queued[1..], "the re-sent fields keep theirs");
        assert_eq!(clocks(&store, "households", &foreign), clocks_before[2]);

        // On the wire, a field another device wrote names its writer; this device's own do not.
        let batch = outbox::next_batch(&mut store.conn, BatchLimits::default()).unwrap().unwrap();
        let request = batch.request(&store.node().to_uuid_string());
        for change in &request.changes {
            let expected = (change.row_id == foreign).then(|| base64::engine::general_purpose::STANDARD.encode(OTHER.0));
            assert_eq!(change.node, expected, "{} {}", change.row_id, change.field);
        }
    }

    #[test]
    fn a_refused_cursor_starts_a_snapshot_that_drops_nothing_and_resends_what_is_missing() {
        let mut store = Store::open_in_memory().unwrap();
        let village = save(&mut store, &schema::VILLAGES, None, json!({ "code": VILLAGE, "name": "小河村" }));
        let household = save(
            &mut store,
            &schema::HOUSEHOLDS,
            None,
            json!({ "village_id": village, "head_name": "褚一", "attribute": "general", "poverty_status": "not_exited" }),
        );
        acknowledge(&store);
        state::set(&store.conn, state::PULL_CURSOR, "a cursor the server no longer knows").unwrap();
        restart_after_restore(&mut store).unwrap();
        assert_eq!(cursor(&store).unwrap(), None);
        // The server lost everything but the village; its snapshot is one page without a reset.
        let page = PullResponse {
            cursor: "1:1".into(),
            has_more: false,
            server_time: hlc::wall_ms(),
            reset: None,
            rows: vec![as_snapshot(&store, &schema::VILLAGES, &village, &[], &[])],
        };
        let outcome = apply_page(&mut store, &page, None).unwrap();
        assert_eq!(outcome.rows_dropped, 0);
        let queued = outbox_rows(&store);
        assert_eq!(outcome.fields_resent, queued.len());
        assert!(queued.iter().all(|entry| entry.1 == household && entry.7 == 1), "{queued:?}");
        assert_eq!(queued[0].2, "scope_id", "the row's scope goes first");
        assert!(crate::record::read_row(&store.conn, &schema::HOUSEHOLDS, &household).unwrap().is_some());
    }

    #[test]
    fn a_first_sync_only_notes_households_for_the_search_index_which_is_built_after_it() {
        let mut store = Store::open_in_memory().unwrap();
        let node = base64::engine::general_purpose::STANDARD.encode(OTHER.0);
        let stamp = hlc::pack(hlc::wall_ms() - 60_000, 0);
        for page in 0..3 {
            let rows = (0..10)
                .map(|index| {
                    let id = format!("0190a000-0000-7000-8000-{:012}", page * 10 + index);
                    let mut fields = BTreeMap::new();
                    for (name, value) in [("scope_id", json!(VILLAGE)), ("head_name", json!(format!("户主{page}{index}"))), ("attribute", json!("general"))] {
                        fields.insert(name.to_owned(), (value, stamp, node.clone()));
                    }
                    PulledRow { tbl: "households".into(), id, scope_id: VILLAGE.into(), sv: page * 10 + index, fields }
                })
                .collect();
            let page = PullResponse { cursor: format!("{}:0", page * 10 + 10), has_more: page < 2, server_time: hlc::wall_ms(), reset: None, rows };
            apply_page(&mut store, &page, None).unwrap();
        }
        let count = |store: &Store, sql: &str| store.conn.query_row(sql, [], |row| row.get::<_, i64>(0)).unwrap();
        assert_eq!(count(&store, "SELECT count(*) FROM household_search_doc"), 0, "no search document is written while pages are stored");
        assert_eq!(count(&store, "SELECT count(*) FROM household_search_pending"), 30, "every household is noted");
        assert_eq!(store.flush_search_index().unwrap(), 30);
        assert_eq!(count(&store, "SELECT count(*) FROM household_search_doc"), 30, "the index is built after the snapshot");
        assert_eq!(count(&store, "SELECT count(*) FROM household_search_pending"), 0);
    }
}
