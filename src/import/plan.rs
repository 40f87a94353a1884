//! The plan of an import: every household of the file with its members, each checked whole as
//! the write path will check it, matched with the household on the device it may be, and every
//! problem named by its place in the file.

use std::collections::{HashMap, HashSet};

use rusqlite::OptionalExtension;
use serde_json::{Map, Value};

use super::columns::{self, ColumnMapping, FIELDS};
use super::roster::{self, SourceRow};
use super::sheet::{self, MAX_ROWS};
use super::{
    DuplicateChoice, ExistingHousehold, ImportCounts, ImportOptions, ImportPreview, MatchReason, PreviewRow, RowIssue, RowStatus,
};
use crate::error::{FieldError, Result};
use crate::schema::{TableSpec, HOUSEHOLDS, MEMBERS};
use crate::store::Store;
use crate::validate::{self, Context};

/// The id a household of the file has in the checks before it is written.
const PENDING: &str = "00000000-0000-0000-0000-000000000000";

/// The checks' context in a preview: the store, with the households of the file taken to exist.
struct Planning<'s>(&'s Store);

impl Context for Planning<'_> {
    fn exists(&self, table: &str, id: &str) -> bool {
        id == PENDING || <Store as Context>::exists(self.0, table, id)
    }

    fn platform_limit(&self, platform: &str, rule: &str) -> Option<i64> {
        <Store as Context>::platform_limit(self.0, platform, rule)
    }

    fn today(&self) -> chrono::NaiveDate {
        <Store as Context>::today(self.0)
    }
}

/// A member to write.
pub(crate) struct PlannedMember {
    pub changes: Map<String, Value>,
    pub existing_id: Option<String>,
}

/// A household to write, with its members.
pub(crate) struct PlannedHousehold {
    pub changes: Map<String, Value>,
    pub existing_id: Option<String>,
    pub members: Vec<PlannedMember>,
    /// The rows of the file it came from.
    pub rows: Vec<usize>,
}

/// An import's plan: the preview, and the valid households to write.
pub(crate) struct Plan {
    pub preview: ImportPreview,
    pub households: Vec<PlannedHousehold>,
    pub digest: String,
}

/// Where a field's problem is: the message with the sheet, row and column.
struct Places<'a> {
    sheet: &'a str,
    mapping: &'a [ColumnMapping],
}

impl Places<'_> {
    fn issue(&self, row: u32, key: Option<&str>, code: &str, zh: &str, en: &str) -> RowIssue {
        let column = key.and_then(|key| self.mapping.iter().find(|mapping| mapping.field.as_deref() == Some(key)));
        let field = key.and_then(columns::field);
        let (place_zh, place_en) = match column {
            Some(column) => (
                format!("「{}」第 {row} 行 {} 列", self.sheet, column.letter),
                format!("Sheet \"{}\", row {row}, column {}", self.sheet, column.letter),
            ),
            None => (format!("「{}」第 {row} 行", self.sheet), format!("Sheet \"{}\", row {row}", self.sheet)),
        };
        let (name_zh, name_en) = match (column, field) {
            (Some(column), _) if !column.header.is_empty() => (format!("（{}）", column.header), format!(" ({})", field.map(|field| field.en).unwrap_or(&column.header))),
            (_, Some(field)) => (format!("（{}）", field.zh), format!(" ({})", field.en)),
            _ => (String::new(), String::new()),
        };
        RowIssue {
            row,
            column: column.map(|column| column.letter.clone()),
            field: key.map(str::to_owned),
            code: code.to_owned(),
            message_zh: format!("{place_zh}{name_zh}：{zh}"),
            message_en: format!("{place_en}{name_en}: {en}"),
        }
    }

    fn field_error(&self, row: u32, table: &TableSpec, error: &FieldError) -> RowIssue {
        let key = match (table.name, error.field.as_str()) {
            ("households", "village_id") => "village",
            ("households", "phone") => "household_phone",
            ("members", "phone") => "member_phone",
            (_, other) => other,
        };
        self.issue(row, Some(key), &error.code, &error.message_zh, &error.message_en)
    }
}

fn text<'a>(map: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    map.get(name).and_then(Value::as_str)
}

/// The fields of a stored row (live), for laying the file's values over them.
fn stored(store: &Store, table: &TableSpec, id: &str) -> Result<Option<Map<String, Value>>> {
    Ok(crate::record::read_row(store.conn(), table, id)?.filter(|row| !row.deleted).map(|row| row.fields))
}

fn checked(store: &Store, table: &TableSpec, base: Option<Map<String, Value>>, changes: &Map<String, Value>) -> Vec<FieldError> {
    let mut record = base.unwrap_or_default();
    record.extend(changes.clone());
    record.retain(|_, value| !value.is_null());
    validate::check_record(table, &record, &Planning(store))
}

/// Reads the file and plans the import.
pub(crate) fn plan(store: &Store, file_name: &str, bytes: &[u8], options: &ImportOptions) -> Result<Plan> {
    let grid = sheet::read(file_name, bytes, options.sheet.as_deref())?;
    if grid.rows.len() > MAX_ROWS + 20 {
        return Err(sheet::too_many_rows(grid.rows.len()));
    }
    let header = columns::find_header(&grid, options.mapping.as_deref())?;
    let rows = roster::read_rows(&grid, header.row, &header.columns);
    if rows.is_empty() {
        return Err(sheet::empty());
    }
    if rows.len() > MAX_ROWS {
        return Err(sheet::too_many_rows(rows.len()));
    }
    let mapped: HashSet<&str> = header.columns.iter().filter_map(|column| column.field.as_deref()).collect();
    let places = Places { sheet: &grid.sheet, mapping: &header.columns };
    let mut issues: Vec<Vec<RowIssue>> = rows
        .iter()
        .map(|source| {
            source.problems.iter().map(|(_, key, failure)| places.issue(source.row, Some(key), failure.code, &failure.zh, &failure.en)).collect()
        })
        .collect();

    let villages: Vec<(String, String, String)> = {
        let mut statement = store.conn().prepare("SELECT id, code, name FROM villages WHERE deleted = 0")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let needs_village = !mapped.contains("village") && options.village_id.is_none() && villages.len() != 1;
    let default_village = options.village_id.clone().or_else(|| (villages.len() == 1).then(|| villages[0].0.clone()));
    let by_register: HashMap<String, (String, String)> = {
        let mut statement = store.conn().prepare("SELECT register_no, id, coalesce(head_name, '') FROM households WHERE deleted = 0 AND register_no IS NOT NULL")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, (row.get(1)?, row.get(2)?))))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut card_statement = store.conn().prepare_cached(
        "SELECT h.id, coalesce(h.head_name, '') FROM members m JOIN households h ON h.id = m.household_id AND h.deleted = 0
          WHERE m.id_card_no = ?1 AND m.deleted = 0 LIMIT 1",
    )?;

    let mut planned = Vec::new();
    let mut existing_list = Vec::new();
    let mut statuses = vec![RowStatus::New; rows.len()];
    let mut heads = vec![String::new(); rows.len()];
    let mut registers: Vec<Option<String>> = vec![None; rows.len()];
    let mut cards_seen: HashMap<String, u32> = HashMap::new();
    let mut counts = ImportCounts { rows: rows.len() as u32, ..ImportCounts::default() };

    for group in roster::group(&rows) {
        counts.households += 1;
        let source = *group
            .iter()
            .find(|&&index| text(&rows[index].member, "relation") == Some("head"))
            .unwrap_or(&group[0]);
        let mut changes = rows[source].household.clone();
        for &index in &group {
            for (name, value) in &rows[index].household {
                changes.entry(name.clone()).or_insert_with(|| value.clone());
            }
        }
        let source_row = rows[source].row;
        let village_text = rows[source].village.clone().or_else(|| group.iter().find_map(|&index| rows[index].village.clone()));
        let mut household_issues = Vec::new();
        match &village_text {
            Some(written) => match villages.iter().find(|(_, code, name)| name.trim() == written.trim() || code == written.trim()) {
                Some((id, _, _)) => {
                    changes.insert("village_id".into(), Value::from(id.clone()));
                }
                None => {
                    let known: Vec<&str> = villages.iter().map(|(_, _, name)| name.as_str()).collect();
                    household_issues.push(places.issue(
                        source_row,
                        Some("village"),
                        "unknown_village",
                        &format!("本机没有「{written}」这个村（本机的村：{}）", known.join("、")),
                        &format!("this device has no village \"{written}\" (its villages: {})", known.join(", ")),
                    ));
                }
            },
            None => match &default_village {
                Some(id) => {
                    changes.insert("village_id".into(), Value::from(id.clone()));
                }
                None => household_issues.push(places.issue(
                    source_row,
                    Some("village"),
                    "village_needed",
                    "没有填写村：请在上方选择这些农户所在的村",
                    "no village given: choose the village of these households above",
                )),
            },
        }
        let head_name = text(&changes, "head_name")
            .map(str::to_owned)
            .or_else(|| group.iter().find(|&&index| text(&rows[index].member, "relation") == Some("head")).and_then(|&index| text(&rows[index].member, "name").map(str::to_owned)))
            .or_else(|| text(&rows[group[0]].member, "name").map(str::to_owned))
            .unwrap_or_default();
        if !head_name.is_empty() {
            changes.insert("head_name".into(), Value::from(head_name.clone()));
        }

        // The household on the device it may be: the same register number, else a member with
        // the same identity card number.
        let register = text(&changes, "register_no").map(str::to_owned);
        let mut existing = register.as_ref().and_then(|register| by_register.get(register)).map(|(id, head)| (id.clone(), head.clone(), MatchReason::SameRegisterNo));
        if existing.is_none() {
            for &index in &group {
                if let Some(card) = text(&rows[index].member, "id_card_no") {
                    if let Some((id, head)) = card_statement.query_row([card], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))).optional()? {
                        existing = Some((id, head, MatchReason::SameIdCard));
                        break;
                    }
                }
            }
        }
        if let Some((id, head, reason)) = &existing {
            counts.households_existing += 1;
            existing_list.push(ExistingHousehold {
                row: source_row,
                head_name: head_name.clone(),
                register_no: register.clone(),
                existing_id: id.clone(),
                existing_head_name: head.clone(),
                reason: *reason,
            });
        }
        let target = match (&existing, options.duplicates) {
            (Some((id, _, _)), DuplicateChoice::Update | DuplicateChoice::Skip) => Some(id.clone()),
            _ => None,
        };
        let skipped = target.is_some() && options.duplicates == DuplicateChoice::Skip;
        let base = match &target {
            Some(id) => stored(store, &HOUSEHOLDS, id)?,
            None => None,
        };
        household_issues.extend(checked(store, &HOUSEHOLDS, base, &changes).iter().map(|error| places.field_error(source_row, &HOUSEHOLDS, error)));
        let cell_problem = group.iter().any(|&index| rows[index].problems.iter().any(|(_, key, _)| columns::field(key).is_some_and(|field| field.level == columns::Level::Household)));
        let household_valid = household_issues.is_empty() && !cell_problem;
        issues[source].extend(household_issues);

        // Existing members of a household being updated, matched by card number or name.
        let existing_members: Vec<(String, Option<String>, Option<String>)> = match (&target, skipped) {
            (Some(id), false) => {
                let mut statement = store.conn().prepare_cached("SELECT id, id_card_no, name FROM members WHERE household_id = ?1 AND deleted = 0")?;
                let found = statement.query_map([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
                found.collect::<rusqlite::Result<_>>()?
            }
            _ => Vec::new(),
        };
        let name_mapped = mapped.contains("name");
        let mut members = Vec::new();
        for &index in &group {
            let row: &SourceRow = &rows[index];
            heads[index] = head_name.clone();
            registers[index] = register.clone();
            let mut member = row.member.clone();
            if !name_mapped && index == source {
                member.insert("name".into(), Value::from(head_name.clone()));
                member.entry("relation").or_insert_with(|| Value::from("head"));
            }
            if !name_mapped && index != source && member.is_empty() {
                continue;
            }
            if let Some(card) = text(&member, "id_card_no") {
                if let Some(first) = cards_seen.get(card) {
                    issues[index].push(places.issue(row.row, Some("id_card_no"), "duplicate_in_file", &format!("与第 {first} 行的身份证号相同"), &format!("the same ID card number as row {first}")));
                } else {
                    cards_seen.insert(card.to_owned(), row.row);
                }
            }
            let existing_id = existing_members
                .iter()
                .find(|(_, card, name)| {
                    (card.is_some() && card.as_deref() == text(&member, "id_card_no")) || (name.is_some() && name.as_deref() == text(&member, "name"))
                })
                .map(|(id, _, _)| id.clone());
            let base = match &existing_id {
                Some(id) => stored(store, &MEMBERS, id)?,
                None => None,
            };
            member.insert("household_id".into(), Value::from(target.clone().filter(|_| !skipped).unwrap_or_else(|| PENDING.to_owned())));
            let errors = checked(store, &MEMBERS, base, &member);
            issues[index].extend(errors.iter().map(|error| places.field_error(row.row, &MEMBERS, error)));
            member.remove("household_id");
            if issues[index].is_empty() && household_valid {
                members.push(PlannedMember { changes: member, existing_id });
            }
        }
        // A household none of whose people can be imported is not imported either.
        let household_valid = household_valid && !(name_mapped && members.is_empty());
        for &index in &group {
            if !household_valid && issues[index].is_empty() {
                issues[index].push(places.issue(
                    rows[index].row,
                    None,
                    "household_invalid",
                    &format!("本户的户信息有误（见第 {source_row} 行），整户未导入"),
                    &format!("the household's own details are wrong (see row {source_row}), so none of it is imported"),
                ));
            }
            statuses[index] = match () {
                _ if !issues[index].is_empty() => RowStatus::Error,
                _ if skipped => RowStatus::Skip,
                _ if target.is_some() => RowStatus::Update,
                _ => RowStatus::New,
            };
        }
        if !household_valid {
            counts.households_with_errors += 1;
        } else if target.is_none() {
            counts.households_new += 1;
        }
        if household_valid && !skipped {
            planned.push(PlannedHousehold { changes, existing_id: target, members, rows: group.clone() });
        }
    }
    drop(card_statement);

    let preview_rows: Vec<PreviewRow> = rows
        .iter()
        .enumerate()
        .map(|(index, row)| PreviewRow {
            row: row.row,
            name: text(&row.member, "name").map(str::to_owned).unwrap_or_else(|| heads[index].clone()),
            head_name: heads[index].clone(),
            register_no: registers[index].clone(),
            status: statuses[index],
            issues: std::mem::take(&mut issues[index]),
        })
        .collect();
    for row in &preview_rows {
        match row.status {
            RowStatus::Error => counts.rows_with_errors += 1,
            RowStatus::Skip => counts.rows_skipped += 1,
            RowStatus::New | RowStatus::Update => counts.rows_to_import += 1,
        }
    }
    let mut missing: Vec<String> = FIELDS.iter().filter(|field| field.required && !mapped.contains(field.key)).map(|field| field.key.to_owned()).collect();
    if mapped.contains("head_name") {
        missing.retain(|key| key != "name");
    }
    let options = ImportOptions { mapping: Some(header.columns.iter().map(|column| column.field.clone()).collect()), sheet: Some(grid.sheet.clone()), ..options.clone() };
    let preview = ImportPreview {
        file_name: file_name.to_owned(),
        format: grid.format.to_owned(),
        encoding: grid.encoding.map(str::to_owned),
        sheet: grid.sheet.clone(),
        sheets: grid.sheets.clone(),
        header_row: header.row as u32 + 1,
        columns: header.columns,
        fields: FIELDS.to_vec(),
        missing,
        needs_village,
        rows: preview_rows,
        existing: existing_list,
        counts,
        options,
    };
    use sha2::Digest;
    Ok(Plan { preview, households: planned, digest: hex::encode(sha2::Sha256::digest(bytes)) })
}
