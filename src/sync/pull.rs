//! The pull side of sync as plain database work: applying one page of rows through the merge
//! path, with the cursor stored in the same transaction, and the handling of a reset.

use crate::hlc::Stamp;
use crate::record::{RemoteField, RemoteRow};
use crate::schema;
use crate::store::Store;
use crate::sync::error::SyncResult;
use crate::sync::outbox::decode_node;
use crate::sync::state;
use crate::sync::wire::PullResponse;

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
pub fn apply_page(store: &mut Store, page: &PullResponse, scopes: Option<&[String]>) -> SyncResult<PageOutcome> {
    // Decode every node first, so a malformed page changes nothing.
    let mut decoded = Vec::with_capacity(page.rows.len());
    for row in &page.rows {
        let mut fields = Vec::with_capacity(row.fields.len());
        for (name, (value, hlc, node)) in &row.fields {
            fields.push(RemoteField { field: name.clone(), value: value.clone(), stamp: Stamp { hlc: *hlc, node: decode_node(node)? } });
        }
        decoded.push(fields);
    }
    let outcome = store.write(|writer| {
        let mut outcome = PageOutcome { rows: page.rows.len(), ..PageOutcome::default() };
        if let Some(reset) = &page.reset {
            if reset.reason == "scope_changed" {
                if let Some(scopes) = scopes {
                    remove_out_of_scope(writer.conn(), scopes)?;
                }
            }
            writer.conn().execute("DELETE FROM sync_snapshot_seen", [])?;
            state::set(writer.conn(), state::SNAPSHOT_SWEEP, 1)?;
        }
        let sweeping = state::integer(writer.conn(), state::SNAPSHOT_SWEEP)? == Some(1);
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
            let mut seen = writer.conn().prepare_cached("INSERT OR IGNORE INTO sync_snapshot_seen (tbl, row_id) VALUES (?1, ?2)")?;
            for row in &page.rows {
                seen.execute([&row.tbl, &row.id])?;
            }
            let restarting = page.reset.is_some() && page.cursor.is_empty();
            if !page.has_more && !restarting {
                outcome.rows_dropped = drop_unseen(writer.conn())?;
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

/// Ends a snapshot the server asked for: drops every row it did not bring that has no unsynced
/// change (the device never discards unsynced work), with its field clocks, and notes the
/// households whose search documents change. Returns how many rows were dropped.
fn drop_unseen(conn: &rusqlite::Connection) -> crate::Result<usize> {
    let mut dropped = 0;
    for table in schema::TABLES {
        let condition = format!(
            "NOT EXISTS (SELECT 1 FROM sync_snapshot_seen s WHERE s.tbl = '{name}' AND s.row_id = {name}.id)
             AND NOT EXISTS (SELECT 1 FROM sync_outbox o WHERE o.tbl = '{name}' AND o.row_id = {name}.id)",
            name = table.name
        );
        let household = match table.name {
            "households" => Some("id"),
            "members" => Some("household_id"),
            _ => None,
        };
        if let Some(column) = household {
            conn.execute(
                &format!(
                    "INSERT OR IGNORE INTO household_search_pending (household_id)
                     SELECT {column} FROM {name} WHERE {column} IS NOT NULL AND {condition}",
                    name = table.name
                ),
                [],
            )?;
        }
        conn.execute(
            &format!("DELETE FROM sync_field_clock WHERE tbl = '{name}' AND row_id IN (SELECT id FROM {name} WHERE {condition})", name = table.name),
            [],
        )?;
        dropped += conn.execute(&format!("DELETE FROM {} WHERE {condition}", table.name), [])?;
    }
    conn.execute("DELETE FROM sync_snapshot_seen", [])?;
    state::remove(conn, state::SNAPSHOT_SWEEP)?;
    Ok(dropped)
}

/// Removes rows of villages the assistant no longer works in, except rows with unsynced changes,
/// which the device never discards.
fn remove_out_of_scope(conn: &rusqlite::Connection, scopes: &[String]) -> crate::Result<()> {
    let list = serde_json::to_string(scopes)?;
    for table in schema::TABLES {
        let condition = format!(
            "scope_id NOT IN (SELECT value FROM json_each(?1))
             AND NOT EXISTS (SELECT 1 FROM sync_outbox o WHERE o.tbl = '{name}' AND o.row_id = {name}.id)",
            name = table.name
        );
        conn.execute(
            &format!("DELETE FROM sync_field_clock WHERE tbl = '{name}' AND row_id IN (SELECT id FROM {name} WHERE {condition})", name = table.name),
            [&list],
        )?;
        conn.execute(&format!("DELETE FROM {} WHERE {condition}", table.name), [&list])?;
    }
    Ok(())
}
