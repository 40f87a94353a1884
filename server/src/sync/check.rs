//! What the server checks of a push: the body before anything is read (shape, tables, fields,
//! values), and every row the batch wrote, whole, as the device's write path checks it.

use std::cell::RefCell;
use std::collections::BTreeMap;

use axum::http::StatusCode;
use furrow_contract::hlc::NodeId;
use furrow_contract::schema::{self, Policy, TableSpec};
use furrow_contract::validate;
use furrow_contract::wire::{Change, PushRequest, SCHEMA_VERSION};
use furrow_contract::FieldError;
use serde_json::{Map, Value};

use super::MIN_SCHEMA_VERSION;
use crate::error::{Error, Result};
use crate::rows::{deleted_flag, value_error_code, DELETED_FIELD, SCOPE_FIELD};
use crate::store::{StoredField, Tx};

/// Answers 426 unless the schema version is one the server serves.
pub fn check_schema_version(version: i64) -> Result<()> {
    if (MIN_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(Error::api(
            StatusCode::UPGRADE_REQUIRED,
            "schema_unsupported",
            format!("schema version {version} is not served; this server serves {MIN_SCHEMA_VERSION} to {SCHEMA_VERSION}. Update the app; unsent changes are kept."),
        ))
    }
}

fn invalid_change(index: usize, change: &Change, code: &'static str, message: String) -> Error {
    Error::bad_request(code, format!("change {index} ({}): {message}", change.change_id))
}

fn is_uuid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok()
}

/// The node of the device sending a push: its client id, which must be a UUID.
pub(super) fn sender_node(client_id: &str) -> Result<NodeId> {
    NodeId::from_client_id(client_id)
        .ok_or_else(|| Error::bad_request("invalid_client_id", "client_id must be the device's node id, a UUID"))
}

/// Checks a push body before anything is read or written: its shape, every change's table and
/// field, and every value's type. Any failure refuses the whole batch with a 400, and nothing is
/// applied; a device never sends such a batch, because it checks values with the same code.
pub fn check_push(request: &PushRequest) -> Result<()> {
    check_schema_version(request.schema_version)?;
    sender_node(&request.client_id)?;
    if request.batch_id.is_empty() || request.batch_id.len() > 64 {
        return Err(Error::bad_request("invalid_batch_id", "batch_id must be 1 to 64 characters"));
    }
    if request.changes.len() > furrow_contract::wire::MAX_BATCH_CHANGES {
        return Err(Error::too_large(format!(
            "a batch holds at most {} changes; this one has {}. Split it.",
            furrow_contract::wire::MAX_BATCH_CHANGES,
            request.changes.len()
        )));
    }
    let mut previous_seq = i64::MIN;
    for (index, change) in request.changes.iter().enumerate() {
        if change.change_id.is_empty() || change.change_id.len() > 64 {
            return Err(invalid_change(index, change, "invalid_change", "change_id must be 1 to 64 characters".into()));
        }
        if change.seq <= previous_seq {
            return Err(invalid_change(index, change, "invalid_change", "changes must be in increasing seq order".into()));
        }
        previous_seq = change.seq;
        if change.hlc <= 0 {
            return Err(invalid_change(index, change, "invalid_change", "hlc must be positive".into()));
        }
        if !is_uuid(&change.row_id) {
            return Err(invalid_change(index, change, "invalid_change", "row_id must be a UUID".into()));
        }
        if change.node.as_deref().is_some_and(|node| NodeId::from_standard_base64(node).is_none()) {
            return Err(invalid_change(index, change, "invalid_change", "node must be base64 of a 16-byte node id".into()));
        }
        let Some(table) = schema::table(&change.tbl) else {
            return Err(invalid_change(index, change, "unknown_table", format!("there is no synced table {:?}", change.tbl)));
        };
        match change.field.as_str() {
            SCOPE_FIELD => {
                if !change.value.as_str().is_some_and(|scope| !scope.is_empty() && scope.len() <= 64) {
                    return Err(invalid_change(index, change, "invalid_value", "scope_id must be a village code".into()));
                }
            }
            DELETED_FIELD => {
                if deleted_flag(&change.value).is_none() {
                    return Err(invalid_change(index, change, "invalid_value", "deleted must be 0 or 1".into()));
                }
            }
            name => {
                let Some(field) = table.field(name) else {
                    return Err(invalid_change(
                        index,
                        change,
                        "unknown_field",
                        format!("table {} has no field {name:?}", table.name),
                    ));
                };
                if let Err(failure) = validate::check_value(field, &change.value) {
                    return Err(invalid_change(
                        index,
                        change,
                        value_error_code(&failure.code),
                        format!("{}.{} {} ({})", table.name, name, failure.message_en, failure.code),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The rows of a batch refused as a whole, with every failing field.
pub(super) type RefusedRows = BTreeMap<(String, String), Vec<FieldError>>;

/// The reason of a change whose row, with the batch's changes laid over it, fails the core's
/// whole-record check.
pub const INVALID_RECORD: &str = "invalid_record";

/// The message of an `invalid_record` rejection: every failing field with its code, in Chinese
/// and in English.
pub fn record_message(errors: &[FieldError]) -> String {
    let zh: Vec<String> = errors.iter().map(|error| format!("{}：{}", error.field, error.message_zh)).collect();
    let en: Vec<String> = errors.iter().map(|error| format!("{} {} ({})", error.field, error.message_en, error.code)).collect();
    format!(
        "整条记录未通过检查，本条记录的修改均未保存：{}。The record fails its checks, so none of its changes were stored: {}.",
        zh.join("；"),
        en.join("; ")
    )
}

/// A row as the core's checks see it: its stored domain fields, without the scope, the
/// tombstone flag, server-only fields and empty values (as the device's write path leaves them
/// out).
pub fn checked_record(tx: &mut Tx<'_>, table: &TableSpec, row_id: &str) -> Result<Map<String, Value>> {
    let fields = tx.fields(table.name, row_id)?;
    Ok(record_of(table, fields.iter().map(|(name, stored)| (name, stored))))
}

/// The record the core's checks see from a row's stored fields (see [`checked_record`]).
pub(super) fn record_of<'f>(table: &TableSpec, fields: impl IntoIterator<Item = (&'f String, &'f StoredField)>) -> Map<String, Value> {
    let mut record = Map::new();
    for (name, stored) in fields {
        let Some(field) = table.field(name) else { continue };
        if field.policy == Policy::ServerOnly || stored.value.is_null() {
            continue;
        }
        record.insert(name.clone(), stored.value.clone());
    }
    record
}

/// What is wrong with a record as a whole: the core's whole-record check
/// ([`validate::check_record`]) and, for a photo, its owner. References are answered by
/// `context`, in which rows of villages the caller is not assigned to count as missing, so a
/// reference to one is refused exactly like a reference to nothing, and the answer does not
/// tell whether the id exists elsewhere.
pub(super) fn record_errors(table: &TableSpec, record: &Map<String, Value>, context: &dyn validate::Context) -> Vec<FieldError> {
    let mut errors = validate::check_record(table, record, context);
    photo_owner_problem(table, record, context, &mut errors);
    errors
}

/// What the core's checks need from storage, answered from the server's rows inside the push's
/// transaction, so a row written earlier in the same batch (a new household of a new member)
/// counts as existing.
pub struct StoreContext<'t, 'a> {
    tx: RefCell<&'t mut Tx<'a>>,
    failure: RefCell<Option<Error>>,
    scopes: Option<&'t [String]>,
}

/// A photo's owner is named by a kind and an id (not a typed reference): the owner must be a
/// live row of the table its kind names, in reach of the writer, or the photo is refused whole.
fn photo_owner_problem(table: &TableSpec, record: &Map<String, Value>, context: &dyn validate::Context, errors: &mut Vec<FieldError>) {
    if table.name != schema::PHOTOS.name || !errors.is_empty() {
        return;
    }
    let kind = record.get("owner_type").and_then(Value::as_str);
    let owner = record.get("owner_id").and_then(Value::as_str);
    let (Some(owner_table), Some(owner)) = (kind.and_then(schema::photo_owner_table), owner) else { return };
    if !validate::Context::exists(context, owner_table, owner) {
        errors.push(FieldError::new(
            "owner_id",
            "not_found",
            "照片所属的记录不存在、已删除或不是所填的类型",
            "refers to no existing record of the declared owner kind",
        ));
    }
}

impl<'t, 'a> StoreContext<'t, 'a> {
    /// A context over an open transaction.
    pub fn new(tx: &'t mut Tx<'a>) -> Self {
        Self { tx: RefCell::new(tx), failure: RefCell::new(None), scopes: None }
    }

    /// A context over an open transaction in which only rows of `scopes` exist.
    pub fn within(tx: &'t mut Tx<'a>, scopes: &'t [String]) -> Self {
        Self { tx: RefCell::new(tx), failure: RefCell::new(None), scopes: Some(scopes) }
    }

    /// The first storage error a check met, if any (a check itself cannot return one).
    pub fn finish(self) -> Result<()> {
        match self.failure.into_inner() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl validate::Context for StoreContext<'_, '_> {
    fn exists(&self, table: &str, id: &str) -> bool {
        match self.tx.borrow_mut().row(table, id) {
            Ok(row) => row.is_some_and(|row| {
                !row.deleted && self.scopes.is_none_or(|scopes| scopes.binary_search_by(|own| own.as_str().cmp(&row.scope_id)).is_ok())
            }),
            Err(error) => {
                self.failure.borrow_mut().get_or_insert(error);
                false
            }
        }
    }

    /// The server keeps no platform rule table; `None` makes the core use its default, the
    /// strictest documented rule, which every seeded platform rule equals.
    fn platform_limit(&self, _platform: &str, _rule: &str) -> Option<i64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_versions_outside_the_served_range_are_426() {
        assert!(check_schema_version(SCHEMA_VERSION).is_ok());
        for version in [MIN_SCHEMA_VERSION - 1, SCHEMA_VERSION + 1] {
            assert_eq!(check_schema_version(version).map_err(|error| error.status().as_u16()), Err(426));
        }
    }
}
