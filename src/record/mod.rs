//! The one write path. Every create, edit and delete of a synced record goes through
//! [`Writer::save`] or [`Writer::delete`], which in the caller's transaction validate the record,
//! write the row, stamp each changed field with a new HLC in `sync_field_clock`, and append the
//! change to `sync_outbox` (coalescing with an unsent change of the same field). Changes from the
//! server come in through [`Writer::apply_remote`], which merges field by field by `(hlc, node)`
//! (the contract's rule, [`furrow_contract::merge::decide`]) and never touches the outbox. No
//! other code writes a synced table.
//!
//! This module holds the rows as the store keeps them and the [`Writer`]; its local saves and
//! deletes are in `write`, the merge of pulled rows in `remote`.

mod remote;
mod write;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::hlc::{Clock, NodeId, Stamp};
use crate::schema::{self, FieldType, TableSpec};

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
pub(crate) fn exists(conn: &Connection, table: &str, id: &str) -> Result<bool> {
    let Some(spec) = schema::table(table) else { return Ok(false) };
    let mut statement = conn.prepare_cached(&format!("SELECT 1 FROM {} WHERE id = ?1 AND deleted = 0", spec.name))?;
    Ok(statement.query_row([id], |_| Ok(())).optional()?.is_some())
}

/// A platform rule's upper limit.
pub(crate) fn platform_limit(conn: &Connection, platform: &str, rule: &str) -> Result<Option<i64>> {
    Ok(conn
        .query_row("SELECT max_value FROM platform_rules WHERE platform = ?1 AND rule = ?2", [platform, rule], |row| {
            row.get::<_, Option<i64>>(0)
        })
        .optional()?
        .flatten())
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
    /// The households whose roster search documents this write changes.
    search: crate::search::Changed,
    /// The first storage error a check met through [`Context`], which cannot return one.
    failure: std::cell::RefCell<Option<Error>>,
}

/// The stamp of a field of a row, if it was ever written.
pub fn field_stamp(conn: &Connection, table: &str, id: &str, field: &str) -> Result<Option<Stamp>> {
    let found: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT hlc, node FROM sync_field_clock WHERE tbl = ?1 AND row_id = ?2 AND field = ?3")?
        .query_row(params![table, id, field], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(found.map(|(hlc, node)| Stamp { hlc, node: NodeId(node.try_into().unwrap_or([0; 16])) }))
}
