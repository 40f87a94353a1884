//! The merge of rows received from the server: field by field by `(hlc, node)` through the
//! contract's rule ([`decide`]), a row never held inserted whole, and the removal of rows the
//! server no longer holds for this device. Nothing here touches the outbox.

use std::collections::{HashMap, HashSet};

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
    /// a local clock to compare with, so it is inserted whole, with the page's other new rows
    /// ([`Writer::insert_remote_rows`]). A row that arrives without its scope field takes the
    /// row's scope. Returns the number of fields applied.
    pub fn apply_remote_rows(&mut self, rows: &[RemoteRow<'_>]) -> Result<usize> {
        let mut known: HashSet<(&str, &str)> = HashSet::with_capacity(rows.len());
        let mut tables: Vec<&'static TableSpec> = Vec::new();
        for row in rows {
            if !tables.iter().any(|table| table.name == row.table.name) {
                tables.push(row.table);
            }
        }
        for table in tables {
            let ids: Vec<&str> = rows.iter().filter(|row| row.table.name == table.name).map(|row| row.id).collect();
            let list = serde_json::to_string(&ids)?;
            let by_id: HashSet<&str> = ids.iter().copied().collect();
            let mut statement = self.tx.prepare_cached(&held_sql(table))?;
            let found = statement.query_map([&list], |row| row.get::<_, String>(0))?;
            for id in found {
                if let Some(id) = by_id.get(id?.as_str()) {
                    known.insert((table.name, *id));
                }
            }
        }
        let mut applied = 0;
        let mut fresh: Vec<&RemoteRow<'_>> = Vec::new();
        let mut fresh_ids: HashSet<(&str, &str)> = HashSet::new();
        for row in rows {
            let key = (row.table.name, row.id);
            if fresh_ids.contains(&key) {
                // The same row twice on a page: the first is stored before the second merges
                // over it (a row with no field this version knows is not stored at all).
                applied += self.insert_remote_rows(&fresh)?;
                fresh.clear();
                fresh_ids.clear();
                let list = serde_json::to_string(&[row.id])?;
                if self.tx.prepare_cached(&held_sql(row.table))?.exists([&list])? {
                    known.insert(key);
                }
            }
            if known.contains(&key) {
                applied += self.apply_remote(row.table, row.id, row.fields)?.len();
                self.tx
                    .prepare_cached(&format!("UPDATE {} SET scope_id = ?1 WHERE id = ?2 AND scope_id = ''", row.table.name))?
                    .execute(params![row.scope_id, row.id])?;
            } else {
                fresh.push(row);
                fresh_ids.insert(key);
            }
        }
        applied += self.insert_remote_rows(&fresh)?;
        Ok(applied)
    }

    /// Inserts rows the device has never held, with every known field and its clock. A first
    /// sync inserts every row this way, so the rows of a table with the same columns go in
    /// statements of [`ROWS_PER_INSERT`] rows, and the field clocks of them all in statements of
    /// [`CLOCKS_PER_INSERT`]: the statements' text is made once ([`insert_sql`], [`clock_sql`])
    /// and values are bound without copying. Returns the number of fields applied.
    fn insert_remote_rows(&mut self, rows: &[&RemoteRow<'_>]) -> Result<usize> {
        let mut fresh: Vec<Fresh<'_>> = Vec::with_capacity(rows.len());
        for row in rows {
            // (column position, change): `scope_id` first, `deleted` second, then the table's
            // fields in schema order, so one set of columns always gives the same statement.
            let mut present: Vec<(usize, &RemoteField)> = Vec::with_capacity(row.fields.len());
            for change in row.fields {
                self.clock.observe(change.stamp.hlc);
                let Some(position) = column_position(row.table, &change.field) else { continue };
                if !present.iter().any(|(known, _)| *known == position) {
                    present.push((position, change));
                }
            }
            if present.is_empty() {
                continue;
            }
            present.sort_unstable_by_key(|(position, _)| *position);
            let mask = present.iter().fold(0u128, |mask, (position, _)| mask | (1u128 << position));
            fresh.push(Fresh { table: row.table, id: row.id, scope_id: row.scope_id, mask, present });
        }
        // The rows of a table with the same columns side by side, in page order among them.
        fresh.sort_by_key(|row| (row.table.name, row.mask));
        for group in fresh.chunk_by(|one, other| one.table.name == other.table.name && one.mask == other.mask) {
            let mut chunks = group.chunks_exact(ROWS_PER_INSERT);
            for chunk in chunks.by_ref() {
                self.insert_rows(chunk)?;
            }
            for row in chunks.remainder() {
                self.insert_rows(std::slice::from_ref(row))?;
            }
        }
        // A never-deleted row's `deleted` flag comes with no real clock (Stamp::NONE).
        let clocks: Vec<(&str, &str, &RemoteField)> = fresh
            .iter()
            .flat_map(|row| row.present.iter().map(move |(_, change)| (row.table.name, row.id, *change)))
            .filter(|(_, _, change)| change.stamp != Stamp::NONE)
            .collect();
        let mut chunks = clocks.chunks_exact(CLOCKS_PER_INSERT);
        for chunk in chunks.by_ref() {
            self.insert_clocks(chunk)?;
        }
        for clock in chunks.remainder() {
            self.insert_clocks(std::slice::from_ref(clock))?;
        }
        let mut applied = 0;
        for row in &fresh {
            let values: Vec<(&str, &Value)> = row.present.iter().map(|(_, change)| (change.field.as_str(), &change.value)).collect();
            self.mark_dirty_remote(row.table, row.id, &values)?;
            applied += values.len();
        }
        Ok(applied)
    }

    /// Inserts rows of one table with the same columns in one statement.
    fn insert_rows(&mut self, rows: &[Fresh<'_>]) -> Result<()> {
        let (table, mask) = (rows[0].table, rows[0].mask);
        let with_scope = mask & 1 != 0;
        let sql = insert_sql(table, mask, rows.len());
        let mut args: Vec<ToSqlOutput<'_>> = Vec::with_capacity(rows.len() * (rows[0].present.len() + 2));
        for row in rows {
            for (position, change) in &row.present {
                args.push(remote_sql_ref(table, *position, &change.value));
            }
            args.push(ToSqlOutput::Borrowed(ValueRef::Text(row.id.as_bytes())));
            if !with_scope {
                args.push(ToSqlOutput::Borrowed(ValueRef::Text(row.scope_id.as_bytes())));
            }
        }
        self.tx.prepare_cached(&sql)?.execute(rusqlite::params_from_iter(args))?;
        Ok(())
    }

    /// Inserts field clocks (table, row id, change) in one statement.
    fn insert_clocks(&mut self, clocks: &[(&str, &str, &RemoteField)]) -> Result<()> {
        let sql = clock_sql(clocks.len());
        let mut args: Vec<ToSqlOutput<'_>> = Vec::with_capacity(clocks.len() * 5);
        for (table, id, change) in clocks {
            args.push(ToSqlOutput::Borrowed(ValueRef::Text(table.as_bytes())));
            args.push(ToSqlOutput::Borrowed(ValueRef::Text(id.as_bytes())));
            args.push(ToSqlOutput::Borrowed(ValueRef::Text(change.field.as_bytes())));
            args.push(ToSqlOutput::Owned(SqlValue::Integer(change.stamp.hlc)));
            args.push(ToSqlOutput::Borrowed(ValueRef::Blob(&change.stamp.node.0)));
        }
        self.tx.prepare_cached(&sql)?.execute(rusqlite::params_from_iter(args))?;
        Ok(())
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

/// Rows of a table with the same columns a first sync inserts in one statement, and field clocks
/// in one statement: fewer, larger statements spend less per row than one statement a row (see
/// the sync benchmark), and stay far below SQLite's limit of bound values.
const ROWS_PER_INSERT: usize = 50;
/// See [`ROWS_PER_INSERT`].
const CLOCKS_PER_INSERT: usize = 200;

/// A row of a page the device never held, ready to insert: the known fields by column position
/// ([`column_position`]), and the set of those positions.
struct Fresh<'a> {
    table: &'static TableSpec,
    id: &'a str,
    scope_id: &'a str,
    mask: u128,
    present: Vec<(usize, &'a RemoteField)>,
}

/// Which of the ids in the JSON array `?1` the device holds in `table`, as a row or as field
/// clocks.
fn held_sql(table: &TableSpec) -> String {
    format!(
        "SELECT id FROM {name} WHERE id IN (SELECT value FROM json_each(?1))
         UNION SELECT row_id FROM sync_field_clock WHERE tbl = '{name}' AND row_id IN (SELECT value FROM json_each(?1))",
        name = table.name
    )
}

thread_local! {
    /// The text of the row inserts of a first sync, by table, set of columns and number of rows.
    static INSERT_SQL: std::cell::RefCell<HashMap<(&'static str, u128, usize), std::rc::Rc<str>>> =
        std::cell::RefCell::new(HashMap::new());
    /// The text of the field-clock inserts, by number of clocks.
    static CLOCK_SQL: std::cell::RefCell<HashMap<usize, std::rc::Rc<str>>> = std::cell::RefCell::new(HashMap::new());
}

/// The insert of `rows` rows with the columns of `mask` ([`column_position`]), then `id`, then
/// `scope_id` unless the mask holds it.
fn insert_sql(table: &'static TableSpec, mask: u128, rows: usize) -> std::rc::Rc<str> {
    INSERT_SQL.with(|cache| {
        cache
            .borrow_mut()
            .entry((table.name, mask, rows))
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
                if mask & 1 == 0 {
                    columns.push("scope_id");
                }
                let tuple = format!("({})", vec!["?"; columns.len()].join(", "));
                format!("INSERT INTO {} ({}) VALUES {}", table.name, columns.join(", "), vec![tuple; rows].join(", ")).into()
            })
            .clone()
    })
}

/// The insert of `count` field clocks.
fn clock_sql(count: usize) -> std::rc::Rc<str> {
    CLOCK_SQL.with(|cache| {
        cache
            .borrow_mut()
            .entry(count)
            .or_insert_with(|| {
                format!("INSERT INTO sync_field_clock (tbl, row_id, field, hlc, node) VALUES {}", vec!["(?, ?, ?, ?, ?)"; count].join(", "))
                    .into()
            })
            .clone()
    })
}

/// The SQLite form of the value of the column at `position` ([`column_position`]) without
/// copying text: a string value is bound where it lies.
fn remote_sql_ref<'a>(table: &TableSpec, position: usize, value: &'a Value) -> ToSqlOutput<'a> {
    let field = match position {
        0 => "scope_id",
        1 => "deleted",
        field => {
            let spec = &table.fields[field - 2];
            // A real field stores numbers only (a string there is stored as NULL, as to_sql does).
            if let (Value::String(text), false) = (value, matches!(spec.ty, FieldType::Real { .. })) {
                return ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes()));
            }
            return ToSqlOutput::Owned(to_sql(&spec.ty, value));
        }
    };
    match (field, value) {
        ("scope_id", Value::String(text)) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::hlc::NodeId;
    use crate::schema;
    use crate::store::Store;

    const VILLAGE: &str = "530102001001";

    /// The households noted for the roster search, and what the store holds (values and clocks).
    fn state(store: &Store) -> (String, Vec<String>) {
        let mut statement = store.conn.prepare("SELECT household_id FROM household_search_pending ORDER BY household_id").unwrap();
        let pending = statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
        (crate::sync::canonical_dump(store, None).unwrap(), pending)
    }

    /// A page of a first sync of every shape the batched insert groups: more rows of one shape
    /// than one statement takes, rows of other columns in between, two tables, a deleted row,
    /// rows without their scope field, a row of only unknown fields, and a row twice.
    fn page() -> Vec<(&'static TableSpec, String, Vec<RemoteField>)> {
        let stamp = |index: usize| Stamp { hlc: crate::hlc::pack(1_700_000_000_000 + index as i64, 0), node: NodeId([(index % 200) as u8 + 1; 16]) };
        let field = |name: &str, value: Value, index: usize| RemoteField { field: name.into(), value, stamp: stamp(index) };
        let id = |index: usize| format!("0190a000-0000-7000-8000-{index:012}");
        let mut rows = Vec::new();
        for index in 0..(ROWS_PER_INSERT * 2 + 37) {
            let mut fields = vec![
                field("scope_id", json!(VILLAGE), index),
                field("deleted", json!(0), index),
                field("head_name", json!(format!("户主{index}")), index),
                field("group_name", json!(format!("{}组", index % 9 + 1)), index),
                field("cultivated_land_mu", json!(index as f64 / 4.0), index),
            ];
            fields[1].stamp = Stamp::NONE;
            if index % 10 == 3 {
                fields.push(field("notes", json!(format!("补记 {index}")), index + 1));
            }
            if index % 41 == 5 {
                fields[1] = field("deleted", json!(1), index + 2);
            }
            if index % 29 == 7 {
                // Pulled without its scope field: it takes the row's.
                fields.remove(0);
            }
            if index % 53 == 11 {
                fields.push(field("field_of_a_newer_server", json!("x"), index));
            }
            rows.push((&schema::HOUSEHOLDS, id(index), fields));
            if index % 3 == 0 {
                let member = vec![
                    field("household_id", json!(id(index)), index),
                    field("name", json!(format!("成员{index}")), index),
                    field("sex", json!("female"), index),
                ];
                rows.push((&schema::MEMBERS, id(100_000 + index), member));
            }
        }
        rows.push((&schema::VISITS, id(900_000), vec![field("field_of_a_newer_server", json!("x"), 1)]));
        // The same row again later on the page, one field newer and one older.
        rows.push((&schema::HOUSEHOLDS, id(12), vec![field("head_name", json!("改过的户主"), 5_000), field("group_name", json!("旧组"), 0)]));
        rows
    }

    #[test]
    fn a_page_of_new_rows_stored_in_batches_is_what_merging_each_row_alone_stores() {
        let page = page();
        let remote: Vec<RemoteRow<'_>> =
            page.iter().map(|(table, id, fields)| RemoteRow { table, id, scope_id: VILLAGE, fields }).collect();

        let mut batched = Store::open_in_memory().unwrap();
        let applied = batched.write(|writer| writer.apply_remote_rows(&remote)).unwrap();

        // The reference: every row merged on its own, field by field.
        let mut alone = Store::open_in_memory().unwrap();
        let mut expected = 0;
        for row in &remote {
            alone
                .write(|writer| {
                    expected += writer.apply_remote(row.table, row.id, row.fields)?.len();
                    writer.conn().execute(&format!("UPDATE {} SET scope_id = ?1 WHERE id = ?2 AND scope_id = ''", row.table.name), params![row.scope_id, row.id])?;
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(applied, expected, "the same fields are applied");
        let (dump, pending) = state(&batched);
        assert_eq!((dump.clone(), pending.clone()), state(&alone), "the same rows, values, clocks and search notes");
        assert!(dump.contains("改过的户主"), "the row met twice took its later field");
        let households: i64 = batched.conn.query_row("SELECT count(*) FROM households", [], |row| row.get(0)).unwrap();
        assert_eq!(households as usize, ROWS_PER_INSERT * 2 + 37);
        assert_eq!(pending.len(), households as usize, "every household is noted for the search index");
        let visits: i64 = batched.conn.query_row("SELECT count(*) FROM visits", [], |row| row.get(0)).unwrap();
        assert_eq!(visits, 0, "a row of only unknown fields is not made");

        // The page again changes nothing.
        batched.write(|writer| writer.apply_remote_rows(&remote)).unwrap();
        assert_eq!(state(&batched).0, dump);
    }
}
