//! Synced rows: the per-device bookkeeping (clients, stored batch answers), the row index and
//! its fields, the change log, pull pages, and the history's pruning and epoch.

use super::{in_list, optional_int, optional_text, Kind, Param, Rows, Tx};
use crate::error::{Error, Result};

/// A push answer kept for exact replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    /// The response body, byte for byte.
    pub response: String,
    /// The SHA-256 (hex) of the request's changes; `None` for a batch stored before digests
    /// were kept, which replays to any body.
    pub request_hash: Option<String>,
}

/// The index entry of a synced row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowMeta {
    /// The row's scope (a village code).
    pub scope_id: String,
    /// Whether the row is a tombstone.
    pub deleted: bool,
    /// The server sequence number of the row's latest change.
    pub sv: i64,
}

/// The stored version of one field.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredField {
    /// The value.
    pub value: serde_json::Value,
    /// Its HLC.
    pub hlc: i64,
    /// The node that wrote it.
    pub node: Vec<u8>,
    /// The sequence number of the change that wrote it.
    pub server_seq: i64,
    /// Who wrote it (`assistant:3`, `platform`, `moderator:li`).
    pub actor: String,
}

/// A row of a pull page with all its stored fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedRow {
    /// Table.
    pub tbl: String,
    /// Row id.
    pub row_id: String,
    /// Index entry.
    pub meta: RowMeta,
    /// Every stored field, by name.
    pub fields: Vec<(String, StoredField)>,
}

/// One entry of the change log: an accepted change and the sequence number it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeLogEntry<'a> {
    /// The sequence number.
    pub server_seq: i64,
    /// The change's id.
    pub change_id: &'a str,
    /// The device that sent it.
    pub client_id: &'a str,
    /// Table.
    pub tbl: &'a str,
    /// Row id.
    pub row_id: &'a str,
    /// Field.
    pub field: &'a str,
    /// When it was accepted (Unix ms).
    pub created_at: i64,
}

/// One pruning run of the history (docs/sync.md section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prune {
    /// Tombstones whose latest change was accepted before this time (Unix ms) were purged.
    pub horizon_ms: i64,
    /// The same horizon as a sequence number: a pull cursor below it is answered with
    /// `reset: history_pruned`.
    pub horizon_seq: i64,
    /// Tombstoned rows purged.
    pub rows_purged: u64,
    /// Change-log entries of those rows purged.
    pub changes_purged: u64,
    /// When the run happened (Unix ms).
    pub pruned_at: i64,
}

impl Tx<'_> {
    // Sync bookkeeping.

    /// A client's owner and the greatest `seq` applied from it.
    pub fn client(&mut self, client_id: &str) -> Result<Option<(i64, i64)>> {
        let rows =
            self.sql.query("SELECT user_id, last_applied_seq FROM sync_clients WHERE client_id = $1", &[client_id.into()])?;
        rows.first().map(|row| Ok((row[0].int()?, row[1].int()?))).transpose()
    }

    /// Records a client's owner and last applied `seq`.
    pub fn put_client(&mut self, client_id: &str, user_id: i64, last_applied_seq: i64, now: i64) -> Result<()> {
        self.sql.execute(
            "INSERT INTO sync_clients (client_id, user_id, last_applied_seq, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (client_id) DO UPDATE SET last_applied_seq = excluded.last_applied_seq, updated_at = excluded.updated_at",
            &[client_id.into(), user_id.into(), last_applied_seq.into(), now.into()],
        )?;
        Ok(())
    }

    /// The stored response of a batch, byte for byte.
    pub fn batch(&mut self, client_id: &str, batch_id: &str) -> Result<Option<String>> {
        let rows = self.sql.query(
            "SELECT response FROM sync_batches WHERE client_id = $1 AND batch_id = $2",
            &[client_id.into(), batch_id.into()],
        )?;
        rows.first().map(|row| row[0].text()).transpose()
    }

    /// The stored response of a batch with the digest of the request it answered, which is
    /// `None` for a batch stored before digests were kept.
    pub fn stored_batch(&mut self, client_id: &str, batch_id: &str) -> Result<Option<StoredBatch>> {
        let rows = self.sql.query(
            "SELECT response, request_hash FROM sync_batches WHERE client_id = $1 AND batch_id = $2",
            &[client_id.into(), batch_id.into()],
        )?;
        rows.first().map(|row| Ok(StoredBatch { response: row[0].text()?, request_hash: optional_text(&row[1])? })).transpose()
    }

    /// Stores a batch's response for exact replay, without the request's digest: such a batch
    /// replays to any body under its id, as batches stored before digests were kept do.
    pub fn put_batch(&mut self, client_id: &str, batch_id: &str, response: &str, now: i64) -> Result<()> {
        self.sql.execute(
            "INSERT INTO sync_batches (client_id, batch_id, response, created_at) VALUES ($1, $2, $3, $4)",
            &[client_id.into(), batch_id.into(), response.into(), now.into()],
        )?;
        Ok(())
    }

    /// Stores a batch's response for exact replay with the digest of its request, so the same
    /// batch id with another body is refused instead of answered with this response.
    pub fn put_batch_with_digest(&mut self, client_id: &str, batch_id: &str, request_hash: &str, response: &str, now: i64) -> Result<()> {
        self.sql.execute(
            "INSERT INTO sync_batches (client_id, batch_id, response, created_at, request_hash) VALUES ($1, $2, $3, $4, $5)",
            &[client_id.into(), batch_id.into(), response.into(), now.into(), request_hash.into()],
        )?;
        Ok(())
    }

    /// Forgets stored batch responses older than `before` (the retention is at least 30 days).
    pub fn delete_batches_before(&mut self, before: i64) -> Result<u64> {
        self.sql.execute("DELETE FROM sync_batches WHERE created_at < $1", &[before.into()])
    }

    // Synced rows.

    /// The index entry of a row.
    pub fn row(&mut self, tbl: &str, row_id: &str) -> Result<Option<RowMeta>> {
        let rows = self.sql.query(
            "SELECT scope_id, deleted, sv FROM sync_rows WHERE tbl = $1 AND row_id = $2",
            &[tbl.into(), row_id.into()],
        )?;
        rows.first()
            .map(|row| Ok(RowMeta { scope_id: row[0].text()?, deleted: row[1].int()? != 0, sv: row[2].int()? }))
            .transpose()
    }

    /// Writes the index entry of a row.
    pub fn put_row(&mut self, tbl: &str, row_id: &str, meta: &RowMeta) -> Result<()> {
        self.sql.execute(
            "INSERT INTO sync_rows (tbl, row_id, scope_id, deleted, sv) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tbl, row_id) DO UPDATE SET scope_id = excluded.scope_id, deleted = excluded.deleted, sv = excluded.sv",
            &[tbl.into(), row_id.into(), meta.scope_id.as_str().into(), i64::from(meta.deleted).into(), meta.sv.into()],
        )?;
        Ok(())
    }

    fn stored_from(row: &[Param]) -> Result<StoredField> {
        let text = row[0].text()?;
        let value = serde_json::from_str(&text).map_err(Error::StoredValue)?;
        Ok(StoredField { value, hlc: row[1].int()?, node: row[2].bytes()?, server_seq: row[3].int()?, actor: row[4].text()? })
    }

    /// The stored version of a field.
    pub fn field(&mut self, tbl: &str, row_id: &str, field: &str) -> Result<Option<StoredField>> {
        let rows = self.sql.query(
            "SELECT value, hlc, node, server_seq, actor FROM sync_fields WHERE tbl = $1 AND row_id = $2 AND field = $3",
            &[tbl.into(), row_id.into(), field.into()],
        )?;
        rows.first().map(|row| Self::stored_from(row)).transpose()
    }

    /// Every stored field of a row, by name.
    pub fn fields(&mut self, tbl: &str, row_id: &str) -> Result<Vec<(String, StoredField)>> {
        let rows = self.sql.query(
            "SELECT value, hlc, node, server_seq, actor, field FROM sync_fields WHERE tbl = $1 AND row_id = $2 ORDER BY field",
            &[tbl.into(), row_id.into()],
        )?;
        rows.iter().map(|row| Ok((row[5].text()?, Self::stored_from(row)?))).collect()
    }

    /// Writes a field's value and version.
    pub fn put_field(&mut self, tbl: &str, row_id: &str, field: &str, stored: &StoredField) -> Result<()> {
        self.sql.execute(
            "INSERT INTO sync_fields (tbl, row_id, field, value, hlc, node, server_seq, actor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (tbl, row_id, field) DO UPDATE SET value = excluded.value, hlc = excluded.hlc, node = excluded.node,
               server_seq = excluded.server_seq, actor = excluded.actor",
            &[
                tbl.into(),
                row_id.into(),
                field.into(),
                stored.value.to_string().into(),
                stored.hlc.into(),
                stored.node.clone().into(),
                stored.server_seq.into(),
                stored.actor.as_str().into(),
            ],
        )?;
        Ok(())
    }

    /// The index entries of many rows in one query, by table and id; rows storage does not
    /// hold are absent.
    pub fn rows_of(&mut self, keys: &[(String, String)]) -> Result<Vec<(String, String, RowMeta)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut table = Rows::new(&[Kind::Text, Kind::Text]);
        for (tbl, row_id) in keys {
            table.push(vec![tbl.into(), row_id.into()]);
        }
        // The rows to look up come first (CROSS JOIN keeps that order on SQLite), so each is one
        // lookup in the primary key.
        let rows = self.sql.query_rows(
            "SELECT r.tbl, r.row_id, r.scope_id, r.deleted, r.sv FROM $rows AS k CROSS JOIN sync_rows r
             WHERE r.tbl = k.column1 AND r.row_id = k.column2",
            &[],
            &table,
        )?;
        rows.iter()
            .map(|row| {
                Ok((row[0].text()?, row[1].text()?, RowMeta { scope_id: row[2].text()?, deleted: row[3].int()? != 0, sv: row[4].int()? }))
            })
            .collect()
    }

    /// Every stored field of many rows in one query: (table, row id, field, version).
    pub fn fields_of(&mut self, keys: &[(String, String)]) -> Result<Vec<(String, String, String, StoredField)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut table = Rows::new(&[Kind::Text, Kind::Text]);
        for (tbl, row_id) in keys {
            table.push(vec![tbl.into(), row_id.into()]);
        }
        let rows = self.sql.query_rows(
            "SELECT f.value, f.hlc, f.node, f.server_seq, f.actor, f.tbl, f.row_id, f.field FROM $rows AS k CROSS JOIN sync_fields f
             WHERE f.tbl = k.column1 AND f.row_id = k.column2",
            &[],
            &table,
        )?;
        rows.iter().map(|row| Ok((row[5].text()?, row[6].text()?, row[7].text()?, Self::stored_from(row)?))).collect()
    }

    /// Writes many fields' values and versions in one statement; a field may appear once.
    pub fn put_fields(&mut self, fields: &[(&str, &str, &str, &StoredField)]) -> Result<()> {
        if fields.is_empty() {
            return Ok(());
        }
        let mut table = Rows::new(&[Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Int, Kind::Bytes, Kind::Int, Kind::Text]);
        for (tbl, row_id, field, stored) in fields {
            table.push(vec![
                (*tbl).into(),
                (*row_id).into(),
                (*field).into(),
                stored.value.to_string().into(),
                stored.hlc.into(),
                stored.node.clone().into(),
                stored.server_seq.into(),
                stored.actor.as_str().into(),
            ]);
        }
        // `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT.
        self.sql.execute_rows(
            "INSERT INTO sync_fields (tbl, row_id, field, value, hlc, node, server_seq, actor)
             SELECT column1, column2, column3, column4, column5, column6, column7, column8 FROM $rows AS k WHERE true
             ON CONFLICT (tbl, row_id, field) DO UPDATE SET value = excluded.value, hlc = excluded.hlc, node = excluded.node,
               server_seq = excluded.server_seq, actor = excluded.actor",
            &[],
            &table,
        )?;
        Ok(())
    }

    /// Writes many rows' index entries in one statement; a row may appear once.
    pub fn put_rows(&mut self, rows: &[(&str, &str, &RowMeta)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut table = Rows::new(&[Kind::Text, Kind::Text, Kind::Text, Kind::Int, Kind::Int]);
        for (tbl, row_id, meta) in rows {
            table.push(vec![(*tbl).into(), (*row_id).into(), meta.scope_id.as_str().into(), i64::from(meta.deleted).into(), meta.sv.into()]);
        }
        self.sql.execute_rows(
            "INSERT INTO sync_rows (tbl, row_id, scope_id, deleted, sv)
             SELECT column1, column2, column3, column4, column5 FROM $rows AS k WHERE true
             ON CONFLICT (tbl, row_id) DO UPDATE SET scope_id = excluded.scope_id, deleted = excluded.deleted, sv = excluded.sv",
            &[],
            &table,
        )?;
        Ok(())
    }

    /// Appends many accepted changes to the change log in one statement.
    pub fn log_changes(&mut self, entries: &[ChangeLogEntry<'_>]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut table = Rows::new(&[Kind::Int, Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Int]);
        for entry in entries {
            table.push(vec![
                entry.server_seq.into(),
                entry.change_id.into(),
                entry.client_id.into(),
                entry.tbl.into(),
                entry.row_id.into(),
                entry.field.into(),
                entry.created_at.into(),
            ]);
        }
        self.sql.execute_rows(
            "INSERT INTO sync_changes (server_seq, change_id, client_id, tbl, row_id, field, created_at)
             SELECT column1, column2, column3, column4, column5, column6, column7 FROM $rows AS k",
            &[],
            &table,
        )?;
        Ok(())
    }

    /// Which of these changes (table, row id, field, change id) the change log holds, in one
    /// query; answers their change ids.
    pub fn changes_logged(&mut self, changes: &[(&str, &str, &str, &str)]) -> Result<Vec<String>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut table = Rows::new(&[Kind::Text, Kind::Text, Kind::Text, Kind::Text]);
        for (tbl, row_id, field, change_id) in changes {
            table.push(vec![(*tbl).into(), (*row_id).into(), (*field).into(), (*change_id).into()]);
        }
        let rows = self.sql.query_rows(
            "SELECT c.change_id FROM $rows AS k CROSS JOIN sync_changes c
             WHERE c.tbl = k.column1 AND c.row_id = k.column2 AND c.field = k.column3 AND c.change_id = k.column4",
            &[],
            &table,
        )?;
        rows.iter().map(|row| row[0].text()).collect()
    }

    /// A client's owner and last applied `seq`, and the stored answer of one of its batches, in
    /// one query.
    pub fn client_and_batch(&mut self, client_id: &str, batch_id: &str) -> Result<(Option<(i64, i64)>, Option<StoredBatch>)> {
        let rows = self.sql.query(
            "SELECT c.user_id, c.last_applied_seq, b.response, b.request_hash, b.client_id
             FROM (SELECT 1 AS one) AS o
             LEFT JOIN sync_clients c ON c.client_id = $1
             LEFT JOIN sync_batches b ON b.client_id = $1 AND b.batch_id = $2",
            &[client_id.into(), batch_id.into()],
        )?;
        let Some(row) = rows.first() else { return Ok((None, None)) };
        let client = match (optional_int(&row[0])?, optional_int(&row[1])?) {
            (Some(user_id), Some(seq)) => Some((user_id, seq)),
            _ => None,
        };
        let batch = match optional_text(&row[4])? {
            Some(_) => Some(StoredBatch { response: row[2].text()?, request_hash: optional_text(&row[3])? }),
            None => None,
        };
        Ok((client, batch))
    }

    /// Appends an accepted change to the change log.
    pub fn log_change(&mut self, entry: &ChangeLogEntry<'_>) -> Result<()> {
        self.sql.execute(
            "INSERT INTO sync_changes (server_seq, change_id, client_id, tbl, row_id, field, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                entry.server_seq.into(),
                entry.change_id.into(),
                entry.client_id.into(),
                entry.tbl.into(),
                entry.row_id.into(),
                entry.field.into(),
                entry.created_at.into(),
            ],
        )?;
        Ok(())
    }

    /// Whether the change log holds this change id for this field (looked up through the log's
    /// row index, as the change id alone is not indexed).
    pub fn change_logged(&mut self, tbl: &str, row_id: &str, field: &str, change_id: &str) -> Result<bool> {
        let rows = self.sql.query(
            "SELECT 1 FROM sync_changes WHERE tbl = $1 AND row_id = $2 AND field = $3 AND change_id = $4 LIMIT 1",
            &[tbl.into(), row_id.into(), field.into(), change_id.into()],
        )?;
        Ok(!rows.is_empty())
    }

    /// How many change-log entries carry this change id (at most one, by invariant).
    pub fn change_log_count(&mut self, change_id: &str) -> Result<i64> {
        let rows = self.sql.query("SELECT COUNT(*) FROM sync_changes WHERE change_id = $1", &[change_id.into()])?;
        rows.first().ok_or(Error::MissingRow("count of sync_changes"))?[0].int()
    }

    /// The rows in `scopes` whose latest change is after `after`, in server order, at most
    /// `limit`, each with all its stored fields.
    pub fn changed_rows(&mut self, scopes: &[String], after: i64, limit: i64) -> Result<Vec<ChangedRow>> {
        if scopes.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT r.tbl, r.row_id, r.scope_id, r.deleted, r.sv, f.field, f.value, f.hlc, f.node, f.server_seq, f.actor
             FROM (SELECT tbl, row_id, scope_id, deleted, sv FROM sync_rows
                   WHERE sv > $1 AND scope_id IN ({}) ORDER BY sv LIMIT $2) r
             JOIN sync_fields f ON f.tbl = r.tbl AND f.row_id = r.row_id
             ORDER BY r.sv, f.field",
            in_list(3, scopes.len())
        );
        let mut params = vec![Param::Int(after), Param::Int(limit)];
        params.extend(scopes.iter().map(Param::from));
        let rows = self.sql.query(&sql, &params)?;
        let mut out: Vec<ChangedRow> = Vec::new();
        for row in rows {
            let sv = row[4].int()?;
            let field = row[5].text()?;
            let stored = Self::stored_from(&row[6..11])?;
            match out.last_mut() {
                Some(last) if last.meta.sv == sv => last.fields.push((field, stored)),
                _ => out.push(ChangedRow {
                    tbl: row[0].text()?,
                    row_id: row[1].text()?,
                    meta: RowMeta { scope_id: row[2].text()?, deleted: row[3].int()? != 0, sv },
                    fields: vec![(field, stored)],
                }),
            }
        }
        Ok(out)
    }

    /// Whether a photo row in one of `scopes` names this blob digest.
    pub fn photo_in_scopes(&mut self, sha256: &str, scopes: &[String]) -> Result<bool> {
        if scopes.is_empty() {
            return Ok(false);
        }
        let sql = format!(
            "SELECT 1 FROM sync_fields f JOIN sync_rows r ON r.tbl = f.tbl AND r.row_id = f.row_id
             WHERE f.tbl = 'photos' AND f.field = 'sha256' AND f.value = $1 AND r.scope_id IN ({}) LIMIT 1",
            in_list(2, scopes.len())
        );
        let mut params = vec![Param::Text(serde_json::Value::String(sha256.to_owned()).to_string())];
        params.extend(scopes.iter().map(Param::from));
        Ok(!self.sql.query(&sql, &params)?.is_empty())
    }

    // History pruning.

    /// The greatest sequence number of a change accepted before `before` (Unix ms), by the
    /// change log's server times; 0 when there is none.
    pub fn last_seq_before(&mut self, before: i64) -> Result<i64> {
        let rows = self.sql.query("SELECT MAX(server_seq) FROM sync_changes WHERE created_at < $1", &[before.into()])?;
        Ok(rows.first().map(|row| optional_int(&row[0])).transpose()?.flatten().unwrap_or(0))
    }

    /// Purges tombstoned rows whose latest change is at or below `horizon_seq`: their change-log
    /// entries, their fields and their index entries. Returns (rows, change-log entries) purged.
    pub fn purge_tombstones(&mut self, horizon_seq: i64) -> Result<(u64, u64)> {
        let purged = "SELECT 1 FROM sync_rows r WHERE r.deleted = 1 AND r.sv <= $1";
        let changes = self.sql.execute(
            &format!("DELETE FROM sync_changes WHERE EXISTS ({purged} AND r.tbl = sync_changes.tbl AND r.row_id = sync_changes.row_id)"),
            &[horizon_seq.into()],
        )?;
        self.sql.execute(
            &format!("DELETE FROM sync_fields WHERE EXISTS ({purged} AND r.tbl = sync_fields.tbl AND r.row_id = sync_fields.row_id)"),
            &[horizon_seq.into()],
        )?;
        let rows = self.sql.execute("DELETE FROM sync_rows WHERE deleted = 1 AND sv <= $1", &[horizon_seq.into()])?;
        Ok((rows, changes))
    }

    /// What a pull checks its cursor against, in one query: the history's epoch, the greatest
    /// sequence number handed out, and the history horizon (0 when nothing was ever pruned).
    pub fn history(&mut self) -> Result<(String, i64, i64)> {
        let rows = self.sql.query(
            "SELECT (SELECT epoch FROM sync_epoch WHERE id = 1), (SELECT v FROM sync_counter WHERE id = 1),
                    (SELECT MAX(horizon_seq) FROM sync_prunes)",
            &[],
        )?;
        let row = rows.first().ok_or(Error::MissingRow("sync_epoch"))?;
        let epoch = optional_text(&row[0])?.ok_or(Error::MissingRow("sync_epoch"))?;
        let current = optional_int(&row[1])?.ok_or(Error::MissingRow("sync_counter"))?;
        Ok((epoch, current, optional_int(&row[2])?.unwrap_or(0)))
    }

    /// The name of this server's history (its epoch), carried in every pull cursor.
    pub fn epoch(&mut self) -> Result<String> {
        let rows = self.sql.query("SELECT epoch FROM sync_epoch WHERE id = 1", &[])?;
        rows.first().ok_or(Error::MissingRow("sync_epoch"))?[0].text()
    }

    /// Gives the history a new epoch (after a restore from a backup): every cursor issued before
    /// names the old one, so its device re-sends what this history lacks.
    pub fn set_epoch(&mut self, epoch: &str, now: i64) -> Result<()> {
        self.sql.execute("UPDATE sync_epoch SET epoch = $1, started_at = $2 WHERE id = 1", &[epoch.into(), now.into()])?;
        Ok(())
    }

    /// Records a pruning run.
    pub fn record_prune(&mut self, prune: &Prune) -> Result<()> {
        self.sql.execute(
            "INSERT INTO sync_prunes (horizon_ms, horizon_seq, rows_purged, changes_purged, pruned_at) VALUES ($1, $2, $3, $4, $5)",
            &[
                prune.horizon_ms.into(),
                prune.horizon_seq.into(),
                (prune.rows_purged as i64).into(),
                (prune.changes_purged as i64).into(),
                prune.pruned_at.into(),
            ],
        )?;
        Ok(())
    }

    /// The history horizon: a cursor below this sequence number may have missed a purged
    /// tombstone. 0 when nothing was ever pruned.
    pub fn history_horizon(&mut self) -> Result<i64> {
        let rows = self.sql.query("SELECT MAX(horizon_seq) FROM sync_prunes", &[])?;
        Ok(rows.first().map(|row| optional_int(&row[0])).transpose()?.flatten().unwrap_or(0))
    }
}
