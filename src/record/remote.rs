//! The merge of rows received from the server: field by field by `(hlc, node)` through the
//! contract's rule ([`decide`]), a row never held inserted whole, and the removal of rows the
//! server no longer holds for this device. Nothing here touches the outbox.

use furrow_contract::merge::{decide, Rule, Verdict};
use rusqlite::params;
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use serde_json::Value;

use super::{to_sql, RemoteField, RemoteRow, Writer};
use crate::error::Result;
use crate::hlc::{NodeId, Stamp};
use crate::schema::{FieldType, TableSpec};

impl Writer<'_> {
    /// Merges a row received from the server: each field is applied only if its `(hlc, node)` is
    /// greater than the local field's ([`decide`]), so a pending local edit with a later clock is
    /// kept. The clock takes note of every remote HLC. Returns the fields applied.
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
            // What the server sends is already merged there, so every field merges by last
            // writer wins here, the platform's fields included.
            let held = local.iter().find(|(name, _)| *name == change.field).map(|(_, stamp)| *stamp);
            if decide(held, change.stamp, Rule::LastWriterWins, None) == Verdict::Apply {
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

    /// Tells the roster search that a row changed from the server; a member's household is read
    /// only when the change did not carry it.
    fn mark_dirty_remote(&mut self, table: &TableSpec, id: &str, values: &[(&str, &Value)]) -> Result<()> {
        let household = values.iter().find(|(name, _)| *name == "household_id").and_then(|(_, value)| value.as_str());
        self.search.row_changed(self.tx, table.name, id, household)
    }

    /// Removes the rows of `table` that `condition` selects (SQL over the table's columns, with
    /// `argument` bound as `?1` when given), with their field clocks, queueing nothing: the pull's
    /// purges of rows the server no longer holds for this device, whose conditions keep every row
    /// with an unsynced change. Returns how many rows were removed.
    pub(crate) fn purge(&mut self, table: &'static TableSpec, condition: &str, argument: Option<&str>) -> Result<usize> {
        let args: Vec<&dyn rusqlite::ToSql> = argument.iter().map(|argument| argument as &dyn rusqlite::ToSql).collect();
        let ids: Vec<String> = {
            let mut statement = self.tx.prepare(&format!("SELECT id FROM {} WHERE {condition}", table.name))?;
            let ids = statement.query_map(args.as_slice(), |row| row.get(0))?;
            ids.collect::<rusqlite::Result<_>>()?
        };
        for id in &ids {
            self.search.row_changed(self.tx, table.name, id, None)?;
        }
        self.tx.execute(
            &format!("DELETE FROM sync_field_clock WHERE tbl = '{name}' AND row_id IN (SELECT id FROM {name} WHERE {condition})", name = table.name),
            args.as_slice(),
        )?;
        Ok(self.tx.execute(&format!("DELETE FROM {} WHERE {condition}", table.name), args.as_slice())?)
    }
}

/// Whether a remote field is one this version stores: a domain field, `scope_id` or `deleted`.
fn is_known_field(table: &TableSpec, field: &str) -> bool {
    field == "scope_id" || field == "deleted" || table.field(field).is_some()
}

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

/// The SQLite form of a remote field's value.
fn remote_sql_value(table: &TableSpec, field: &str, value: &Value) -> SqlValue {
    match field {
        "scope_id" => SqlValue::Text(value.as_str().unwrap_or_default().to_owned()),
        "deleted" => SqlValue::Integer(i64::from(value.as_i64().unwrap_or(0) != 0 || value.as_bool() == Some(true))),
        other => to_sql(&table.field(other).expect("known field").ty, value),
    }
}
