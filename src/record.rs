//! The one write path. Every create, edit and delete of a synced record goes through
//! [`Writer::save`] or [`Writer::delete`], which in the caller's transaction validate the record,
//! write the row, stamp each changed field with a new HLC in `sync_field_clock`, and append the
//! change to `sync_outbox` (coalescing with an unsent change of the same field). Changes from the
//! server come in through [`Writer::apply_remote`], which merges field by field by `(hlc, node)`
//! and never touches the outbox. No other code writes a synced table.

use std::collections::BTreeSet;

use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde_json::{Map, Value};

use crate::error::{Error, FieldError, Result};
use crate::hlc::{self, Clock, NodeId, Stamp};
use crate::schema::{self, FieldType, Policy, ScopeRule, TableSpec};
use crate::validate::{self, Context};

/// The SQLite storage type of a field type.
pub fn storage_type(ty: &FieldType) -> &'static str {
    match ty {
        FieldType::Int { .. } | FieldType::Year | FieldType::Fen | FieldType::Grams | FieldType::Bool => "INTEGER",
        FieldType::Real { .. } => "REAL",
        _ => "TEXT",
    }
}

/// Converts a checked JSON value to its SQLite form.
pub fn to_sql(ty: &FieldType, value: &Value) -> SqlValue {
    match (ty, value) {
        (_, Value::Null) => SqlValue::Null,
        (FieldType::Bool, Value::Bool(flag)) => SqlValue::Integer(i64::from(*flag)),
        (FieldType::Real { .. }, number) => number.as_f64().map(SqlValue::Real).unwrap_or(SqlValue::Null),
        (_, Value::Number(number)) => number.as_i64().map(SqlValue::Integer).unwrap_or(SqlValue::Null),
        (_, Value::String(text)) => SqlValue::Text(text.clone()),
        (_, other) => SqlValue::Text(other.to_string()),
    }
}

/// Converts a stored SQLite value back to its JSON form.
pub fn from_sql(ty: &FieldType, value: SqlValue) -> Value {
    match (ty, value) {
        (_, SqlValue::Null) => Value::Null,
        (FieldType::Bool, SqlValue::Integer(flag)) => Value::Bool(flag != 0),
        (FieldType::EnumList(_), SqlValue::Text(text)) => serde_json::from_str(&text).unwrap_or(Value::Array(vec![])),
        (_, SqlValue::Integer(number)) => Value::from(number),
        (_, SqlValue::Real(number)) => serde_json::Number::from_f64(number).map(Value::Number).unwrap_or(Value::Null),
        (_, SqlValue::Text(text)) => Value::String(text),
        (_, SqlValue::Blob(bytes)) => Value::String(hex::encode(bytes)),
    }
}

/// Whether a live row with this id exists in the named synced table.
pub(crate) fn exists(conn: &Connection, table: &str, id: &str) -> bool {
    let Some(spec) = schema::table(table) else { return false };
    conn.prepare_cached(&format!("SELECT 1 FROM {} WHERE id = ?1 AND deleted = 0", spec.name))
        .and_then(|mut statement| statement.query_row([id], |_| Ok(())).optional())
        .map(|found| found.is_some())
        .unwrap_or(false)
}

/// A platform rule's upper limit.
pub(crate) fn platform_limit(conn: &Connection, platform: &str, rule: &str) -> Option<i64> {
    conn.query_row(
        "SELECT max_value FROM platform_rules WHERE platform = ?1 AND rule = ?2",
        [platform, rule],
        |row| row.get::<_, Option<i64>>(0),
    )
    .optional()
    .ok()
    .flatten()
    .flatten()
}

/// A stored row: its id, scope, tombstone flag and its fields as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The row id.
    pub id: String,
    /// The scope (village code) the row belongs to.
    pub scope_id: String,
    /// Whether the row is a tombstone.
    pub deleted: bool,
    /// The domain fields, every one present (null when empty).
    pub fields: Map<String, Value>,
}

impl Row {
    /// The row as one JSON object with `id`, `scope_id`, `deleted` and the fields, the shape the
    /// domain structs deserialize from.
    pub fn into_json(self) -> Value {
        let mut object = self.fields;
        object.insert("id".into(), Value::String(self.id));
        object.insert("scope_id".into(), Value::String(self.scope_id));
        object.insert("deleted".into(), Value::Bool(self.deleted));
        Value::Object(object)
    }
}

/// Reads a row (live or deleted) of a synced table.
pub fn read_row(conn: &Connection, table: &TableSpec, id: &str) -> Result<Option<Row>> {
    let sql = format!("SELECT * FROM {} WHERE id = ?1", table.name);
    let mut statement = conn.prepare_cached(&sql)?;
    Ok(statement.query_row([id], |row| row_from_sql(table, row)).optional()?)
}

/// Builds a [`Row`] from a `SELECT *` of a synced table.
pub fn row_from_sql(table: &TableSpec, row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let mut fields = Map::new();
    for (index, field) in table.fields.iter().enumerate() {
        let value: SqlValue = row.get(index + 3)?;
        fields.insert(field.name.to_owned(), from_sql(&field.ty, value));
    }
    Ok(Row { id: row.get(0)?, scope_id: row.get(1)?, deleted: row.get::<_, i64>(2)? != 0, fields })
}

/// Reads live rows of a table matching a `WHERE` clause, as JSON objects.
pub fn query_rows(conn: &Connection, table: &TableSpec, clause: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<Value>> {
    let sql = format!("SELECT * FROM {} WHERE deleted = 0 AND ({clause})", table.name);
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(args, |row| row_from_sql(table, row))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row?.into_json());
    }
    Ok(out)
}

/// One field change of a remote row, as pulled from the server.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteField {
    /// The field name (a domain field, `scope_id` or `deleted`).
    pub field: String,
    /// The value.
    pub value: Value,
    /// Its version.
    pub stamp: Stamp,
}

/// A row received from the server, for [`Writer::apply_remote_rows`].
#[derive(Debug, Clone, Copy)]
pub struct RemoteRow<'a> {
    /// The row's table.
    pub table: &'static TableSpec,
    /// The row id.
    pub id: &'a str,
    /// The row's scope, taken when its fields do not carry `scope_id`.
    pub scope_id: &'a str,
    /// The field changes.
    pub fields: &'a [RemoteField],
}

/// What a local save did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// The row id.
    pub id: String,
    /// The fields that changed (and were stamped and queued); empty when nothing changed.
    pub changed: Vec<String>,
}

/// The write path inside one transaction. Made by [`crate::Store::write`].
pub struct Writer<'a> {
    tx: &'a Transaction<'a>,
    node: NodeId,
    clock: &'a mut Clock,
    dirty_households: BTreeSet<String>,
    dirty_villages: BTreeSet<String>,
}

impl Context for Writer<'_> {
    fn exists(&self, table: &str, id: &str) -> bool {
        exists(self.tx, table, id)
    }

    fn platform_limit(&self, platform: &str, rule: &str) -> Option<i64> {
        platform_limit(self.tx, platform, rule)
    }

    /// The device's own date: a date the assistant types is checked against the day it is
    /// where they are.
    fn today(&self) -> chrono::NaiveDate {
        chrono::Local::now().date_naive()
    }
}

impl<'a> Writer<'a> {
    pub(crate) fn new(tx: &'a Transaction<'a>, node: NodeId, clock: &'a mut Clock) -> Self {
        Self { tx, node, clock, dirty_households: BTreeSet::new(), dirty_villages: BTreeSet::new() }
    }

    /// The transaction, for reads inside the write.
    pub fn conn(&self) -> &Connection {
        self.tx
    }

    /// Creates a row (when `id` is `None` or names no row) or edits one, with `changes` laid over
    /// the current fields (a null clears a field). Validates the whole resulting record and
    /// writes nothing if any field fails.
    pub fn save(&mut self, table: &'static TableSpec, id: Option<&str>, changes: Map<String, Value>) -> Result<Saved> {
        if table.platform_only {
            return Err(Error::NotAllowed { table: table.name.into(), action: "edited" });
        }
        let current = match id {
            Some(id) => read_row(self.tx, table, id)?,
            None => None,
        };
        let mut errors = Vec::new();
        for name in changes.keys() {
            if let Some(field) = table.field(name) {
                if field.policy == Policy::ServerOnly {
                    let before = current.as_ref().and_then(|row| row.fields.get(name)).unwrap_or(&Value::Null);
                    if changes[name] != *before {
                        errors.push(FieldError::new(name, "server_only", "该字段由平台填写", "is set by the platform only"));
                    }
                }
            }
        }
        let mut record = match &current {
            Some(row) => row.fields.clone(),
            None => Map::new(),
        };
        let revived = current.as_ref().map(|row| row.deleted).unwrap_or(false);
        if let Some(row) = &current {
            if table.append_only && !row.deleted {
                let differs = changes.iter().any(|(name, value)| row.fields.get(name).unwrap_or(&Value::Null) != value);
                if differs {
                    return Err(Error::NotAllowed { table: table.name.into(), action: "edited" });
                }
            }
        }
        for (name, value) in changes {
            record.insert(name, normalise(value));
        }
        record.retain(|_, value| !value.is_null());
        let server_only_fields: Vec<&str> =
            table.fields.iter().filter(|field| field.policy == Policy::ServerOnly).map(|field| field.name).collect();
        let mut checked = record.clone();
        checked.retain(|name, _| !server_only_fields.contains(&name.as_str()));
        errors.extend(validate::check_record(table, &checked, self));
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }

        let stamp = Stamp { hlc: self.clock.tick(hlc::wall_ms()), node: self.node };
        let created = current.is_none();
        let (id, changed) = match current {
            Some(row) => {
                let mut changed: Vec<String> = table
                    .fields
                    .iter()
                    .filter(|field| record.get(field.name).unwrap_or(&Value::Null) != row.fields.get(field.name).unwrap_or(&Value::Null))
                    .map(|field| field.name.to_owned())
                    .collect();
                let scope = if row.deleted || changed.iter().any(|name| scope_source(table) == Some(name.as_str())) {
                    Some(self.scope_for(table, &record)?)
                } else {
                    None
                };
                if !changed.is_empty() || revived {
                    self.update_row(table, &row.id, &record, &changed, scope.as_deref(), revived.then_some(false))?;
                }
                if scope.is_some_and(|scope| scope != row.scope_id) {
                    changed.push("scope_id".into());
                }
                if revived {
                    changed.push("deleted".into());
                }
                (row.id, changed)
            }
            None => {
                let id = id.map(str::to_owned).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
                let scope = self.scope_for(table, &record)?;
                self.insert_row(table, &id, &scope, &record)?;
                let mut changed = vec!["scope_id".to_owned()];
                changed.extend(table.fields.iter().filter(|field| record.contains_key(field.name)).map(|field| field.name.to_owned()));
                (id, changed)
            }
        };
        for name in &changed {
            let value = match name.as_str() {
                "scope_id" => Value::String(self.scope_of(table, &id)?),
                "deleted" => Value::from(0),
                other => record.get(other).cloned().unwrap_or(Value::Null),
            };
            self.stamp_and_queue(table.name, &id, name, &value, stamp, created)?;
        }
        self.mark_dirty(table, &id, &record);
        Ok(Saved { id, changed })
    }

    /// Deletes a row: a tombstone (`deleted = 1`) stamped and queued like any other field.
    pub fn delete(&mut self, table: &'static TableSpec, id: &str) -> Result<()> {
        if table.platform_only || table.append_only {
            return Err(Error::NotAllowed { table: table.name.into(), action: "deleted" });
        }
        let row = read_row(self.tx, table, id)?
            .filter(|row| !row.deleted)
            .ok_or_else(|| Error::NotFound { table: table.name.into(), id: id.into() })?;
        let stamp = Stamp { hlc: self.clock.tick(hlc::wall_ms()), node: self.node };
        self.tx.execute(&format!("UPDATE {} SET deleted = 1 WHERE id = ?1", table.name), [id])?;
        self.stamp_and_queue(table.name, id, "deleted", &Value::from(1), stamp, false)?;
        self.mark_dirty(table, id, &row.fields);
        Ok(())
    }

    /// Merges a row received from the server: each field is applied only if its `(hlc, node)` is
    /// greater than the local field's, so a pending local edit with a later clock is kept. The
    /// clock takes note of every remote HLC. Returns the fields applied.
    pub fn apply_remote(&mut self, table: &'static TableSpec, id: &str, fields: &[RemoteField]) -> Result<Vec<String>> {
        let exists = self.tx.prepare_cached(&format!("SELECT 1 FROM {} WHERE id = ?1", table.name))?.exists([id])?;
        let local = self.row_stamps(table.name, id)?;
        let mut applied = Vec::new();
        let mut values: Vec<(&str, &Value)> = Vec::new();
        for change in fields {
            self.clock.observe(change.stamp.hlc);
            if !is_known_field(table, &change.field) {
                // A field this version does not know (a newer server); ignoring it is safe because
                // the device never pushes a field it did not change.
                continue;
            }
            let newer = local
                .iter()
                .find(|(name, _)| *name == change.field)
                .map(|(_, stamp)| change.stamp > *stamp)
                .unwrap_or(true);
            if newer {
                self.set_clock(table.name, id, &change.field, change.stamp)?;
                values.push((change.field.as_str(), &change.value));
                applied.push(change.field.clone());
            }
        }
        if values.is_empty() {
            return Ok(applied);
        }
        if !exists {
            let scope = values.iter().find(|(name, _)| *name == "scope_id").and_then(|(_, value)| value.as_str()).unwrap_or_default();
            self.tx
                .prepare_cached(&format!("INSERT INTO {} (id, scope_id) VALUES (?1, ?2)", table.name))?
                .execute(params![id, scope])?;
        }
        let mut assignments = Vec::with_capacity(values.len());
        let mut args: Vec<SqlValue> = Vec::with_capacity(values.len() + 1);
        for (name, value) in &values {
            assignments.push(format!("{name} = ?{}", args.len() + 1));
            args.push(remote_sql_value(table, name, value));
        }
        args.push(SqlValue::Text(id.to_owned()));
        let sql = format!("UPDATE {} SET {} WHERE id = ?{}", table.name, assignments.join(", "), args.len());
        self.tx.prepare_cached(&sql)?.execute(rusqlite::params_from_iter(args))?;
        self.mark_dirty_remote(table, id, &values)?;
        Ok(applied)
    }

    /// Merges a page of rows received from the server, each as [`Writer::apply_remote`] would,
    /// with one read per table of which rows the device already holds instead of reads per row
    /// and field. A row the device has never seen (all of a new device's first sync) cannot have
    /// a local clock to compare with, so it is inserted whole: one row insert and one insert of
    /// its field clocks. A row that arrives without its scope field takes the row's scope.
    /// Returns the number of fields applied.
    pub fn apply_remote_rows(&mut self, rows: &[RemoteRow<'_>]) -> Result<usize> {
        let mut known: std::collections::HashSet<(&str, &str)> = std::collections::HashSet::with_capacity(rows.len());
        let mut tables: Vec<&'static TableSpec> = Vec::new();
        for row in rows {
            if !tables.iter().any(|table| table.name == row.table.name) {
                tables.push(row.table);
            }
        }
        for table in tables {
            let ids: Vec<&str> = rows.iter().filter(|row| row.table.name == table.name).map(|row| row.id).collect();
            let list = serde_json::to_string(&ids)?;
            let sql = format!(
                "SELECT id FROM {name} WHERE id IN (SELECT value FROM json_each(?1))
                 UNION SELECT row_id FROM sync_field_clock WHERE tbl = '{name}' AND row_id IN (SELECT value FROM json_each(?1))",
                name = table.name
            );
            let by_id: std::collections::HashSet<&str> = ids.iter().copied().collect();
            let mut statement = self.tx.prepare_cached(&sql)?;
            let found = statement.query_map([&list], |row| row.get::<_, String>(0))?;
            for id in found {
                if let Some(id) = by_id.get(id?.as_str()) {
                    known.insert((table.name, *id));
                }
            }
        }
        let mut applied = 0;
        for row in rows {
            if known.contains(&(row.table.name, row.id)) {
                applied += self.apply_remote(row.table, row.id, row.fields)?.len();
                self.tx
                    .prepare_cached(&format!("UPDATE {} SET scope_id = ?1 WHERE id = ?2 AND scope_id = ''", row.table.name))?
                    .execute(params![row.scope_id, row.id])?;
            } else {
                let inserted = self.insert_remote(row)?;
                if inserted > 0 {
                    known.insert((row.table.name, row.id));
                }
                applied += inserted;
            }
        }
        Ok(applied)
    }

    /// Inserts a row the device has never held, with every known field and its clock. A first
    /// sync inserts every row this way, so the statements' text is made once per table and set
    /// of columns ([`insert_sql`]) and values are bound without copying.
    fn insert_remote(&mut self, row: &RemoteRow<'_>) -> Result<usize> {
        let table = row.table;
        // (column position, change): `scope_id` first, `deleted` second, then the table's fields
        // in schema order, so one set of columns always gives the same statement.
        let mut present: Vec<(usize, &RemoteField)> = Vec::with_capacity(row.fields.len());
        for change in row.fields {
            self.clock.observe(change.stamp.hlc);
            let Some(position) = column_position(table, &change.field) else { continue };
            if !present.iter().any(|(known, _)| *known == position) {
                present.push((position, change));
            }
        }
        if present.is_empty() {
            return Ok(0);
        }
        present.sort_unstable_by_key(|(position, _)| *position);
        let with_scope = present[0].0 == 0;
        let mask = present.iter().fold(0u128, |mask, (position, _)| mask | (1u128 << position));
        let sql = insert_sql(table, mask, with_scope);
        let mut args: Vec<ToSqlOutput<'_>> = Vec::with_capacity(present.len() + 2);
        for (_, change) in &present {
            args.push(remote_sql_ref(table, &change.field, &change.value));
        }
        args.push(ToSqlOutput::Borrowed(ValueRef::Text(row.id.as_bytes())));
        if !with_scope {
            args.push(ToSqlOutput::Borrowed(ValueRef::Text(row.scope_id.as_bytes())));
        }
        self.tx.prepare_cached(&sql)?.execute(rusqlite::params_from_iter(args))?;

        // A never-deleted row's `deleted` flag comes with no real clock (Stamp::NONE).
        let clocks: Vec<&RemoteField> =
            present.iter().map(|(_, change)| *change).filter(|change| change.stamp != Stamp::NONE).collect();
        if !clocks.is_empty() {
            let sql = clock_sql(clocks.len());
            let mut clock_args: Vec<ToSqlOutput<'_>> = Vec::with_capacity(clocks.len() * 3 + 2);
            clock_args.push(ToSqlOutput::Borrowed(ValueRef::Text(table.name.as_bytes())));
            clock_args.push(ToSqlOutput::Borrowed(ValueRef::Text(row.id.as_bytes())));
            for change in &clocks {
                clock_args.push(ToSqlOutput::Borrowed(ValueRef::Text(change.field.as_bytes())));
                clock_args.push(ToSqlOutput::Owned(SqlValue::Integer(change.stamp.hlc)));
                clock_args.push(ToSqlOutput::Borrowed(ValueRef::Blob(&change.stamp.node.0)));
            }
            self.tx.prepare_cached(&sql)?.execute(rusqlite::params_from_iter(clock_args))?;
        }
        let values: Vec<(&str, &Value)> = present.iter().map(|(_, change)| (change.field.as_str(), &change.value)).collect();
        self.mark_dirty_remote(table, row.id, &values)?;
        Ok(values.len())
    }

    /// The stamps of every field of a row, in one read.
    fn row_stamps(&self, table: &str, id: &str) -> Result<Vec<(String, Stamp)>> {
        let mut statement = self.tx.prepare_cached("SELECT field, hlc, node FROM sync_field_clock WHERE tbl = ?1 AND row_id = ?2")?;
        let stamps = statement.query_map(params![table, id], |row| {
            let node: Vec<u8> = row.get(2)?;
            Ok((row.get::<_, String>(0)?, Stamp { hlc: row.get(1)?, node: NodeId(node.try_into().unwrap_or([0; 16])) }))
        })?;
        Ok(stamps.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Notes the household whose search document a remote change affects; a member's household
    /// is read only when the change did not carry it.
    fn mark_dirty_remote(&mut self, table: &TableSpec, id: &str, values: &[(&str, &Value)]) -> Result<()> {
        match table.name {
            "households" => {
                self.dirty_households.insert(id.to_owned());
            }
            "members" => {
                let carried = values.iter().find(|(name, _)| *name == "household_id").and_then(|(_, value)| value.as_str());
                let household = match carried {
                    Some(household) => Some(household.to_owned()),
                    None => self
                        .tx
                        .prepare_cached("SELECT household_id FROM members WHERE id = ?1")?
                        .query_row([id], |row| row.get::<_, Option<String>>(0))
                        .optional()?
                        .flatten(),
                };
                if let Some(household) = household {
                    self.dirty_households.insert(household);
                }
            }
            "villages" => {
                self.dirty_villages.insert(id.to_owned());
            }
            _ => {}
        }
        Ok(())
    }

    /// The stamp of a field of a row, if it was ever written.
    pub fn field_stamp(&self, table: &str, id: &str, field: &str) -> Result<Option<Stamp>> {
        field_stamp(self.tx, table, id, field)
    }

    fn set_clock(&self, table: &str, id: &str, field: &str, stamp: Stamp) -> Result<()> {
        if stamp == Stamp::NONE {
            // "Never written" (a pulled row's `deleted` flag when it was never deleted) is what
            // having no clock already means.
            return Ok(());
        }
        self.tx
            .prepare_cached(
                "INSERT INTO sync_field_clock (tbl, row_id, field, hlc, node) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tbl, row_id, field) DO UPDATE SET hlc = excluded.hlc, node = excluded.node",
            )?
            .execute(params![table, id, field, stamp.hlc, stamp.node.0.to_vec()])?;
        Ok(())
    }

    /// Stamps a field and queues its change. `created` says the row was made in this write, so it
    /// can have no earlier clock and no unsent change to coalesce with (a bulk import's fast path).
    fn stamp_and_queue(&self, table: &str, id: &str, field: &str, value: &Value, stamp: Stamp, created: bool) -> Result<()> {
        if created {
            self.tx
                .prepare_cached("INSERT INTO sync_field_clock (tbl, row_id, field, hlc, node) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![table, id, field, stamp.hlc, stamp.node.0.to_vec()])?;
            self.queue(table, id, field, value, stamp, None)?;
            return Ok(());
        }
        let previous = self.field_stamp(table, id, field)?;
        self.set_clock(table, id, field, stamp)?;
        // Coalesce with an unsent change of the same field: the new value replaces it, keeping
        // the base the user first edited from (the version the server last confirmed).
        let unsent: Option<(i64, Option<i64>)> = self
            .tx
            .prepare_cached("SELECT seq, base_hlc FROM sync_outbox WHERE tbl = ?1 AND row_id = ?2 AND field = ?3 AND batch_id IS NULL")?
            .query_row(params![table, id, field], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        let base = match unsent {
            Some((seq, base)) => {
                self.tx.prepare_cached("DELETE FROM sync_outbox WHERE seq = ?1")?.execute([seq])?;
                base
            }
            None => previous.map(|stamp| stamp.hlc),
        };
        self.queue(table, id, field, value, stamp, base)
    }

    fn queue(&self, table: &str, id: &str, field: &str, value: &Value, stamp: Stamp, base: Option<i64>) -> Result<()> {
        let change_id = uuid::Uuid::now_v7();
        self.tx
            .prepare_cached(
                "INSERT INTO sync_outbox (change_id, tbl, row_id, field, value, hlc, node, base_hlc)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                change_id.as_bytes().to_vec(),
                table,
                id,
                field,
                value.to_string(),
                stamp.hlc,
                stamp.node.0.to_vec(),
                base
            ])?;
        Ok(())
    }

    fn insert_row(&self, table: &TableSpec, id: &str, scope: &str, record: &Map<String, Value>) -> Result<()> {
        let mut columns = vec!["id", "scope_id"];
        let mut args: Vec<SqlValue> = vec![SqlValue::Text(id.to_owned()), SqlValue::Text(scope.to_owned())];
        for field in table.fields {
            if let Some(value) = record.get(field.name) {
                columns.push(field.name);
                args.push(to_sql(&field.ty, value));
            }
        }
        let placeholders: Vec<String> = (1..=args.len()).map(|index| format!("?{index}")).collect();
        let sql = format!("INSERT INTO {} ({}) VALUES ({})", table.name, columns.join(", "), placeholders.join(", "));
        self.tx.prepare_cached(&sql)?.execute(rusqlite::params_from_iter(args))?;
        Ok(())
    }

    fn update_row(
        &self,
        table: &TableSpec,
        id: &str,
        record: &Map<String, Value>,
        changed: &[String],
        scope: Option<&str>,
        deleted: Option<bool>,
    ) -> Result<()> {
        let mut assignments = Vec::new();
        let mut args: Vec<SqlValue> = Vec::new();
        for name in changed {
            let field = table.field(name).expect("changed fields come from the table");
            assignments.push(format!("{name} = ?{}", args.len() + 1));
            args.push(to_sql(&field.ty, record.get(name).unwrap_or(&Value::Null)));
        }
        if let Some(scope) = scope {
            assignments.push(format!("scope_id = ?{}", args.len() + 1));
            args.push(SqlValue::Text(scope.to_owned()));
        }
        if let Some(deleted) = deleted {
            assignments.push(format!("deleted = ?{}", args.len() + 1));
            args.push(SqlValue::Integer(i64::from(deleted)));
        }
        if assignments.is_empty() {
            return Ok(());
        }
        args.push(SqlValue::Text(id.to_owned()));
        let sql = format!("UPDATE {} SET {} WHERE id = ?{}", table.name, assignments.join(", "), args.len());
        self.tx.prepare_cached(&sql)?.execute(rusqlite::params_from_iter(args))?;
        Ok(())
    }

    fn scope_of(&self, table: &TableSpec, id: &str) -> Result<String> {
        Ok(self.tx.prepare_cached(&format!("SELECT scope_id FROM {} WHERE id = ?1", table.name))?.query_row([id], |row| row.get(0))?)
    }

    /// The scope a record belongs to, from its own code (villages) or from its parent.
    fn scope_for(&self, table: &TableSpec, record: &Map<String, Value>) -> Result<String> {
        let (parent_table, parent_id) = match table.scope {
            ScopeRule::OwnCode => return Ok(record.get("code").and_then(Value::as_str).unwrap_or_default().to_owned()),
            ScopeRule::From(field) => {
                let Some(FieldType::Ref(target)) = table.field(field).map(|spec| spec.ty) else {
                    unreachable!("scope fields are references")
                };
                (target, record.get(field).and_then(Value::as_str).unwrap_or_default())
            }
            ScopeRule::FromOwner { kind_field, id_field } => {
                let kind = record.get(kind_field).and_then(Value::as_str).unwrap_or_default();
                let target = schema::photo_owner_table(kind).unwrap_or("households");
                (target, record.get(id_field).and_then(Value::as_str).unwrap_or_default())
            }
        };
        let scope: Option<String> = self
            .tx
            .prepare_cached(&format!("SELECT scope_id FROM {parent_table} WHERE id = ?1 AND deleted = 0"))?
            .query_row([parent_id], |row| row.get(0))
            .optional()?;
        scope.ok_or_else(|| {
            let field = match table.scope {
                ScopeRule::From(field) => field,
                ScopeRule::FromOwner { id_field, .. } => id_field,
                ScopeRule::OwnCode => "code",
            };
            Error::Validation(vec![FieldError::new(field, "not_found", "关联的记录不存在或已删除", "refers to a record that does not exist")])
        })
    }

    fn mark_dirty(&mut self, table: &TableSpec, id: &str, fields: &Map<String, Value>) {
        let text = |name: &str| fields.get(name).and_then(Value::as_str).map(str::to_owned);
        match table.name {
            "households" => {
                self.dirty_households.insert(id.to_owned());
            }
            "members" => {
                if let Some(household) = text("household_id") {
                    self.dirty_households.insert(household);
                }
            }
            "villages" => {
                self.dirty_villages.insert(id.to_owned());
            }
            _ => {}
        }
    }

    /// Brings the search index up to date with this transaction's writes; called once before the
    /// commit, so a bulk import refreshes each household once.
    pub(crate) fn finish(mut self) -> Result<()> {
        for village in std::mem::take(&mut self.dirty_villages) {
            let mut statement = self.tx.prepare("SELECT id FROM households WHERE village_id = ?1")?;
            let ids = statement.query_map([&village], |row| row.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
            self.dirty_households.extend(ids);
        }
        // The search index is brought up to date before the next search, not here: rewriting a
        // full-text document can set off a merge of index segments, which an edit must not wait
        // for.
        for household in std::mem::take(&mut self.dirty_households) {
            self.tx
                .prepare_cached("INSERT OR IGNORE INTO household_search_pending (household_id) VALUES (?1)")?
                .execute([&household])?;
        }
        self.tx
            .prepare_cached("INSERT INTO sync_state (k, v) VALUES ('hlc_last', ?1) ON CONFLICT (k) DO UPDATE SET v = excluded.v")?
            .execute([self.clock.last])?;
        Ok(())
    }
}

/// Whether a remote field is one this version stores: a domain field, `scope_id` or `deleted`.
fn is_known_field(table: &TableSpec, field: &str) -> bool {
    field == "scope_id" || field == "deleted" || table.field(field).is_some()
}

/// The SQLite form of a remote field's value.
/// Where a pulled field goes in [`insert_sql`]'s column order: `scope_id` 0, `deleted` 1, then
/// the table's fields from 2 in schema order; `None` for a field this version does not know.
fn column_position(table: &TableSpec, field: &str) -> Option<usize> {
    match field {
        "scope_id" => Some(0),
        "deleted" => Some(1),
        other => table.fields.iter().position(|spec| spec.name == other).map(|index| index + 2).filter(|position| *position < 128),
    }
}

thread_local! {
    /// The text of the row inserts of a first sync, by table and set of columns.
    static INSERT_SQL: std::cell::RefCell<std::collections::HashMap<(&'static str, u128), std::rc::Rc<str>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
    /// The text of the field-clock inserts, by number of fields.
    static CLOCK_SQL: std::cell::RefCell<std::collections::HashMap<usize, std::rc::Rc<str>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The insert of a row with the columns of `mask` ([`column_position`]), then `id`, then
/// `scope_id` unless the mask holds it.
fn insert_sql(table: &'static TableSpec, mask: u128, with_scope: bool) -> std::rc::Rc<str> {
    INSERT_SQL.with(|cache| {
        cache
            .borrow_mut()
            .entry((table.name, mask))
            .or_insert_with(|| {
                let mut columns: Vec<&str> = Vec::new();
                for position in (0..128).filter(|position| mask & (1u128 << position) != 0) {
                    columns.push(match position {
                        0 => "scope_id",
                        1 => "deleted",
                        field => table.fields[field - 2].name,
                    });
                }
                columns.push("id");
                if !with_scope {
                    columns.push("scope_id");
                }
                let placeholders: Vec<String> = (1..=columns.len()).map(|index| format!("?{index}")).collect();
                format!("INSERT INTO {} ({}) VALUES ({})", table.name, columns.join(", "), placeholders.join(", ")).into()
            })
            .clone()
    })
}

/// The insert of `count` field clocks of one row.
fn clock_sql(count: usize) -> std::rc::Rc<str> {
    CLOCK_SQL.with(|cache| {
        cache
            .borrow_mut()
            .entry(count)
            .or_insert_with(|| {
                let tuples: Vec<String> =
                    (0..count).map(|index| format!("(?1, ?2, ?{}, ?{}, ?{})", index * 3 + 3, index * 3 + 4, index * 3 + 5)).collect();
                format!("INSERT INTO sync_field_clock (tbl, row_id, field, hlc, node) VALUES {}", tuples.join(", ")).into()
            })
            .clone()
    })
}

/// [`remote_sql_value`] without copying text: a string value is bound where it lies.
fn remote_sql_ref<'a>(table: &TableSpec, field: &str, value: &'a Value) -> ToSqlOutput<'a> {
    match (field, value) {
        ("deleted", _) => ToSqlOutput::Owned(remote_sql_value(table, field, value)),
        // A real field stores numbers only (a string there is stored as NULL, as to_sql does).
        (_, Value::String(text)) if !matches!(table.field(field).map(|spec| &spec.ty), Some(FieldType::Real { .. })) => {
            ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes()))
        }
        _ => ToSqlOutput::Owned(remote_sql_value(table, field, value)),
    }
}

fn remote_sql_value(table: &TableSpec, field: &str, value: &Value) -> SqlValue {
    match field {
        "scope_id" => SqlValue::Text(value.as_str().unwrap_or_default().to_owned()),
        "deleted" => SqlValue::Integer(i64::from(value.as_i64().unwrap_or(0) != 0 || value.as_bool() == Some(true))),
        other => to_sql(&table.field(other).expect("known field").ty, value),
    }
}

fn scope_source(table: &TableSpec) -> Option<&'static str> {
    match table.scope {
        ScopeRule::From(field) => Some(field),
        ScopeRule::FromOwner { id_field, .. } => Some(id_field),
        ScopeRule::OwnCode => Some("code"),
    }
}

/// Empty strings and empty lists mean "no value"; text is trimmed.
fn normalise(value: Value) -> Value {
    match value {
        Value::String(text) => {
            let trimmed = text.trim();
            if trimmed.is_empty() {
                Value::Null
            } else if trimmed.len() == text.len() {
                Value::String(text)
            } else {
                Value::String(trimmed.to_owned())
            }
        }
        Value::Array(items) if items.is_empty() => Value::Null,
        other => other,
    }
}

/// The stamp of a field of a row, if it was ever written.
pub fn field_stamp(conn: &Connection, table: &str, id: &str, field: &str) -> Result<Option<Stamp>> {
    let found: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT hlc, node FROM sync_field_clock WHERE tbl = ?1 AND row_id = ?2 AND field = ?3")?
        .query_row(params![table, id, field], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(found.map(|(hlc, node)| Stamp { hlc, node: NodeId(node.try_into().unwrap_or([0; 16])) }))
}
