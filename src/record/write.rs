//! The local half of the write path: saves and deletes validated whole, stamped field by field
//! and queued in the outbox, and what every write ends with (the search documents it changes
//! and the clock).

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde_json::{Map, Value};

use super::{exists, field_stamp, platform_limit, read_row, to_sql, Saved, Writer};
use crate::error::{Error, FieldError, Result};
use crate::hlc::{self, Clock, NodeId, Stamp};
use crate::schema::{self, FieldType, Policy, ScopeRule, TableSpec};
use crate::validate::{self, Context};

impl Context for Writer<'_> {
    fn exists(&self, table: &str, id: &str) -> bool {
        self.recorded(exists(self.tx, table, id)).unwrap_or(false)
    }

    fn platform_limit(&self, platform: &str, rule: &str) -> Option<i64> {
        self.recorded(platform_limit(self.tx, platform, rule)).flatten()
    }

    /// The device's own date: a date the assistant types is checked against the day it is
    /// where they are.
    fn today(&self) -> chrono::NaiveDate {
        chrono::Local::now().date_naive()
    }
}

impl<'a> Writer<'a> {
    pub(crate) fn new(tx: &'a Transaction<'a>, node: NodeId, clock: &'a mut Clock) -> Self {
        Self { tx, node, clock, search: crate::search::Changed::default(), failure: std::cell::RefCell::new(None) }
    }

    /// The value of a storage read a check made, keeping its error (the first one) for
    /// [`Writer::save`] to return instead of the check's verdict.
    fn recorded<T>(&self, result: Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.failure.borrow_mut().get_or_insert(error);
                None
            }
        }
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
        if let Some(error) = self.failure.take() {
            return Err(error);
        }
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
        self.mark_dirty(table, &id, &record)?;
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
        self.mark_dirty(table, id, &row.fields)?;
        Ok(())
    }

    /// The stamp of a field of a row, if it was ever written.
    pub fn field_stamp(&self, table: &str, id: &str, field: &str) -> Result<Option<Stamp>> {
        field_stamp(self.tx, table, id, field)
    }

    /// Sets a field's clock; the least stamp ([`Stamp::NONE`]) is no clock at all.
    pub(super) fn set_clock(&self, table: &str, id: &str, field: &str, stamp: Stamp) -> Result<()> {
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

    /// Tells the roster search that a row was saved or deleted here.
    fn mark_dirty(&mut self, table: &TableSpec, id: &str, fields: &Map<String, Value>) -> Result<()> {
        let household = fields.get("household_id").and_then(Value::as_str);
        self.search.row_changed(self.tx, table.name, id, household)
    }

    /// Notes the roster search documents this transaction's writes change and stores the clock;
    /// called once before the commit, so a bulk import notes each household once.
    pub(crate) fn finish(mut self) -> Result<()> {
        // The search index is brought up to date before the next search, not here: rewriting a
        // full-text document can set off a merge of index segments, which an edit must not wait
        // for.
        self.search.note_pending(self.tx)?;
        self.tx
            .prepare_cached("INSERT INTO sync_state (k, v) VALUES ('hlc_last', ?1) ON CONFLICT (k) DO UPDATE SET v = excluded.v")?
            .execute([self.clock.last])?;
        Ok(())
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
