//! Writing an import and taking it back. Every record goes in through the one write path, a
//! thousand rows to a transaction; what each transaction wrote is noted in `excel_import_rows` in
//! the same transaction, so an import stopped part-way is still undone exactly. An undo deletes
//! (through the write path) only records none of whose changes has been sent, and puts back the
//! values an update replaced while that update is unsent.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{Map, Value};

use super::plan::{self, PlannedHousehold};
use super::ImportOptions;
use crate::error::{Error, Result};
use crate::record::{read_row, Writer};
use crate::schema::{TableSpec, HOUSEHOLDS, MEMBERS};
use crate::store::Store;

/// Rows of the file written in one transaction.
const ROWS_PER_TRANSACTION: usize = 1000;

/// How far an import has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ImportProgress {
    /// Rows of the file written so far.
    pub rows_done: u32,
    /// Rows of the file to write.
    pub rows_total: u32,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ImportSummary {
    /// The import, to undo it; `None` when it changed nothing.
    pub import_id: Option<String>,
    /// Households added.
    pub households_created: u32,
    /// Households changed.
    pub households_updated: u32,
    /// Members added.
    pub members_created: u32,
    /// Members changed.
    pub members_updated: u32,
    /// Rows of the file not imported (errors, or households skipped).
    pub rows_not_imported: u32,
}

/// An import as the list of imports shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ImportRecord {
    /// The import.
    pub id: String,
    /// The file imported.
    pub file_name: String,
    /// When (RFC 3339).
    pub imported_at: String,
    /// Households added.
    pub households_created: u32,
    /// Households changed.
    pub households_updated: u32,
    /// Members added.
    pub members_created: u32,
    /// Members changed.
    pub members_updated: u32,
    /// When it was undone.
    pub undone_at: Option<String>,
    /// Records it wrote whose changes were sent already; undoing leaves them.
    pub records_sent: u32,
}

/// What an undo did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct UndoReport {
    /// Households deleted.
    pub households_removed: u32,
    /// Members deleted.
    pub members_removed: u32,
    /// Records whose replaced values were put back.
    pub records_restored: u32,
    /// Records left as they are: sent already, or used since (a visit, a check-in, income).
    pub records_kept: u32,
}

/// The import's record in its local tables, written inside the write's transaction.
struct Journal {
    id: String,
    file_name: String,
    digest: String,
    started: bool,
    seq: i64,
}

impl Journal {
    fn note(&mut self, conn: &Connection, table: &str, id: &str, created: bool, previous: Option<Value>) -> Result<()> {
        if !self.started {
            conn.execute(
                "INSERT INTO excel_imports (id, file_name, file_digest, imported_at) VALUES (?1, ?2, ?3, ?4)",
                params![self.id, self.file_name, self.digest, chrono::Utc::now().to_rfc3339()],
            )?;
            self.started = true;
        }
        self.seq += 1;
        conn.prepare_cached("INSERT INTO excel_import_rows (import_id, seq, tbl, row_id, action, previous) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
            .execute(params![self.id, self.seq, table, id, if created { "created" } else { "updated" }, previous.map(|value| value.to_string())])?;
        Ok(())
    }
}

/// Saves one record: created when `id` is `None`; for an edit, only when the file changes it,
/// noting the values it replaced. Returns the id and whether it was created, changed or neither.
fn save(writer: &mut Writer<'_>, journal: &mut Journal, table: &'static TableSpec, id: Option<&str>, changes: Map<String, Value>) -> Result<(String, Option<bool>)> {
    let Some(id) = id else {
        let saved = writer.save(table, None, changes)?;
        journal.note(writer.conn(), table.name, &saved.id, true, None)?;
        return Ok((saved.id, Some(true)));
    };
    let current = read_row(writer.conn(), table, id)?.map(|row| row.fields).unwrap_or_default();
    let differing: Map<String, Value> = changes.into_iter().filter(|(name, value)| current.get(name).unwrap_or(&Value::Null) != value).collect();
    if differing.is_empty() {
        return Ok((id.to_owned(), None));
    }
    let previous: Map<String, Value> = differing
        .iter()
        .map(|(name, value)| (name.clone(), Value::Array(vec![current.get(name).cloned().unwrap_or(Value::Null), value.clone()])))
        .collect();
    writer.save(table, Some(id), differing)?;
    journal.note(writer.conn(), table.name, id, false, Some(Value::Object(previous)))?;
    Ok((id.to_owned(), Some(false)))
}

fn write_household(writer: &mut Writer<'_>, journal: &mut Journal, household: &PlannedHousehold, summary: &mut ImportSummary) -> Result<()> {
    let (id, done) = save(writer, journal, &HOUSEHOLDS, household.existing_id.as_deref(), household.changes.clone())?;
    match done {
        Some(true) => summary.households_created += 1,
        Some(false) => summary.households_updated += 1,
        None => {}
    }
    for member in &household.members {
        let mut changes = member.changes.clone();
        changes.insert("household_id".into(), Value::from(id.clone()));
        match save(writer, journal, &MEMBERS, member.existing_id.as_deref(), changes)?.1 {
            Some(true) => summary.members_created += 1,
            Some(false) => summary.members_updated += 1,
            None => {}
        }
    }
    Ok(())
}

/// Imports a roster as previewed with `options`: every valid row, through the write path, one
/// transaction per thousand rows, telling `progress` after each. Importing the same file again
/// changes nothing (with the choice to update or skip the households already on the device).
pub fn run(store: &mut Store, file_name: &str, bytes: &[u8], options: &ImportOptions, progress: &mut dyn FnMut(ImportProgress)) -> Result<ImportSummary> {
    let plan = plan::plan(store, file_name, bytes, options)?;
    let mut summary = ImportSummary { rows_not_imported: plan.preview.counts.rows_with_errors + plan.preview.counts.rows_skipped, ..ImportSummary::default() };
    let rows_total: usize = plan.households.iter().map(|household| household.rows.len()).sum();
    let mut journal = Journal { id: uuid::Uuid::now_v7().to_string(), file_name: file_name.to_owned(), digest: plan.digest, started: false, seq: 0 };
    let mut done = 0;
    let mut households = plan.households.iter().peekable();
    progress(ImportProgress { rows_done: 0, rows_total: rows_total as u32 });
    while households.peek().is_some() {
        let mut batch = Vec::new();
        let mut rows = 0;
        while let Some(household) = households.next_if(|_| rows < ROWS_PER_TRANSACTION) {
            rows += household.rows.len();
            batch.push(household);
        }
        store.write(|writer| {
            for household in &batch {
                write_household(writer, &mut journal, household, &mut summary)?;
            }
            if journal.started {
                writer.conn().execute(
                    "UPDATE excel_imports SET households_created = ?2, households_updated = ?3, members_created = ?4, members_updated = ?5 WHERE id = ?1",
                    params![journal.id, summary.households_created, summary.households_updated, summary.members_created, summary.members_updated],
                )?;
            }
            Ok(())
        })?;
        done += rows;
        progress(ImportProgress { rows_done: done as u32, rows_total: rows_total as u32 });
    }
    if journal.started {
        summary.import_id = Some(journal.id);
        store.optimize()?;
    }
    Ok(summary)
}

/// Whether none of a record's changes has been sent: every field it has a clock for waits unsent
/// in the outbox, and no change of it is in flight.
fn unsent(conn: &Connection, table: &str, id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT NOT EXISTS (SELECT 1 FROM sync_outbox WHERE tbl = ?1 AND row_id = ?2 AND batch_id IS NOT NULL)
                AND NOT EXISTS (SELECT 1 FROM sync_field_clock c WHERE c.tbl = ?1 AND c.row_id = ?2 AND NOT EXISTS
                     (SELECT 1 FROM sync_outbox o WHERE o.tbl = c.tbl AND o.row_id = c.row_id AND o.field = c.field AND o.batch_id IS NULL))",
        )?
        .query_row(params![table, id], |row| row.get(0))?)
}

/// Whether a field's change waits unsent.
fn field_unsent(conn: &Connection, table: &str, id: &str, field: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM sync_outbox WHERE tbl = ?1 AND row_id = ?2 AND field = ?3 AND batch_id IS NULL)")?
        .query_row(params![table, id, field], |row| row.get(0))?)
}

/// Whether other records use this one now (recorded since the import), so deleting it would
/// take someone's work along.
fn in_use(conn: &Connection, table: &str, id: &str) -> Result<bool> {
    let sql = match table {
        "members" => {
            "SELECT EXISTS (SELECT 1 FROM attendance WHERE member_id = ?1 AND deleted = 0)
                 OR EXISTS (SELECT 1 FROM skill_assessments WHERE member_id = ?1 AND deleted = 0)
                 OR EXISTS (SELECT 1 FROM income_records WHERE member_id = ?1 AND deleted = 0)"
        }
        _ => {
            "SELECT EXISTS (SELECT 1 FROM members WHERE household_id = ?1 AND deleted = 0)
                 OR EXISTS (SELECT 1 FROM visits WHERE household_id = ?1 AND deleted = 0)
                 OR EXISTS (SELECT 1 FROM income_records WHERE household_id = ?1 AND deleted = 0)"
        }
    };
    Ok(conn.prepare_cached(sql)?.query_row([id], |row| row.get(0))?)
}

/// Takes an import back: the households and members it added are deleted (through the write
/// path) unless any of their changes was sent or they are used since, and the values it
/// replaced are put back where its change is still unsent and unchanged since.
pub fn undo(store: &mut Store, import_id: &str) -> Result<UndoReport> {
    let undone: Option<Option<String>> =
        store.conn().query_row("SELECT undone_at FROM excel_imports WHERE id = ?1", [import_id], |row| row.get(0)).optional()?;
    match undone {
        None => return Err(Error::NotFound { table: "excel_imports".into(), id: import_id.into() }),
        Some(Some(_)) => {
            return Err(Error::File {
                code: "already_undone",
                message_zh: "这次导入已经撤销过了".into(),
                message_en: "This import has been undone already".into(),
            })
        }
        Some(None) => {}
    }
    let rows: Vec<(String, String, String, Option<String>)> = {
        let mut statement = store.conn().prepare("SELECT tbl, row_id, action, previous FROM excel_import_rows WHERE import_id = ?1 ORDER BY seq DESC")?;
        let found = statement.query_map([import_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?;
        found.collect::<rusqlite::Result<_>>()?
    };
    store.write(|writer| {
        let mut report = UndoReport::default();
        // Members first (the rows are in reverse order of writing), so a household the import
        // added is left with no member of its own when its turn comes.
        for (table_name, id, action, previous) in &rows {
            let table: &'static TableSpec = if table_name == "members" { &MEMBERS } else { &HOUSEHOLDS };
            let Some(row) = read_row(writer.conn(), table, id)?.filter(|row| !row.deleted) else { continue };
            if action == "created" {
                if unsent(writer.conn(), table.name, id)? && !in_use(writer.conn(), table.name, id)? {
                    writer.delete(table, id)?;
                    if table.name == "members" {
                        report.members_removed += 1;
                    } else {
                        report.households_removed += 1;
                    }
                } else {
                    report.records_kept += 1;
                }
                continue;
            }
            let previous: Map<String, Value> = previous.as_deref().and_then(|text| serde_json::from_str(text).ok()).unwrap_or_default();
            let mut restore = Map::new();
            for (field, values) in previous {
                let [before, after] = values.as_array().map(Vec::as_slice).unwrap_or_default() else { continue };
                if row.fields.get(&field).unwrap_or(&Value::Null) == after && field_unsent(writer.conn(), table.name, id, &field)? {
                    restore.insert(field, before.clone());
                }
            }
            if restore.is_empty() {
                report.records_kept += 1;
            } else {
                writer.save(table, Some(id), restore)?;
                report.records_restored += 1;
            }
        }
        writer.conn().execute("UPDATE excel_imports SET undone_at = ?2 WHERE id = ?1", params![import_id, chrono::Utc::now().to_rfc3339()])?;
        Ok(report)
    })
}

/// The imports made on this device, newest first, with how many of their records were sent.
pub fn imports(store: &Store) -> Result<Vec<ImportRecord>> {
    let mut statement = store.conn().prepare(
        "SELECT id, file_name, imported_at, households_created, households_updated, members_created, members_updated, undone_at
           FROM excel_imports ORDER BY imported_at DESC, id DESC LIMIT 50",
    )?;
    let found = statement.query_map([], |row| {
        Ok(ImportRecord {
            id: row.get(0)?,
            file_name: row.get(1)?,
            imported_at: row.get(2)?,
            households_created: row.get(3)?,
            households_updated: row.get(4)?,
            members_created: row.get(5)?,
            members_updated: row.get(6)?,
            undone_at: row.get(7)?,
            records_sent: 0,
        })
    })?;
    let mut records = found.collect::<rusqlite::Result<Vec<_>>>()?;
    for record in records.iter_mut().filter(|record| record.undone_at.is_none()) {
        let mut rows = store.conn().prepare_cached("SELECT tbl, row_id FROM excel_import_rows WHERE import_id = ?1 AND action = 'created'")?;
        let ids = rows.query_map([&record.id], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
        for (table, id) in ids {
            if !unsent(store.conn(), &table, &id)? {
                record.records_sent += 1;
            }
        }
    }
    Ok(records)
}
