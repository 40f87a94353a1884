//! The domain, one module per kind of record. Each module holds its typed record, its save,
//! read and delete functions (all writes through [`crate::record::Writer`]), and the queries an
//! assistant needs of it. A household's page, which draws on every kind, is [`household_view`],
//! on which nothing depends.

pub mod household;
pub mod household_view;
pub mod income;
pub mod listing;
pub mod listing_rules;
pub mod photo;
pub mod reference;
pub mod sale;
pub mod training;
pub mod village;
pub mod visit;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::record::{self, Saved};
use crate::schema::TableSpec;
use crate::store::Store;

/// Turns a typed record into the field changes the write path takes: every domain field the
/// device writes, with the bookkeeping fields (`id`, `scope_id`, `deleted`), computed ones and the
/// platform's own fields (moderation, sold out: the server sets them and they only flow back)
/// left out, so a form read before the platform's verdict arrived can never clear it.
pub(crate) fn changes_of<T: Serialize>(table: &TableSpec, record: &T) -> Result<Map<String, Value>> {
    let Value::Object(mut object) = serde_json::to_value(record)? else {
        unreachable!("domain records serialize to objects")
    };
    object.retain(|name, _| table.field(name).is_some_and(|field| field.policy != crate::schema::Policy::ServerOnly));
    Ok(object)
}

/// Saves a typed record (create when it has no id) and reads it back.
pub(crate) fn save<T: Serialize + DeserializeOwned>(
    store: &mut Store,
    table: &'static TableSpec,
    id: Option<&str>,
    record: &T,
) -> Result<T> {
    let changes = changes_of(table, record)?;
    let Saved { id, .. } = store.write(|writer| writer.save(table, id, changes))?;
    get(store, table, &id)
}

/// Reads a live record.
pub(crate) fn get<T: DeserializeOwned>(store: &Store, table: &TableSpec, id: &str) -> Result<T> {
    let row = record::read_row(store.conn(), table, id)?
        .filter(|row| !row.deleted)
        .ok_or_else(|| Error::NotFound { table: table.name.into(), id: id.into() })?;
    Ok(serde_json::from_value(row.into_json())?)
}

/// Reads the live records matching a `WHERE` clause.
pub(crate) fn list<T: DeserializeOwned>(
    store: &Store,
    table: &TableSpec,
    clause: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<T>> {
    record::query_rows(store.conn(), table, clause, args)?
        .into_iter()
        .map(|value| serde_json::from_value(value).map_err(Error::from))
        .collect()
}

/// The ids a query of one parameter returns (the live records that depend on one, for a delete
/// that takes them along).
pub(crate) fn live_ids(conn: &rusqlite::Connection, sql: &str, parameter: &str) -> Result<Vec<String>> {
    let mut statement = conn.prepare_cached(sql)?;
    let ids = statement.query_map([parameter], |row| row.get(0))?;
    Ok(ids.collect::<rusqlite::Result<_>>()?)
}

/// Deletes a record (a tombstone that syncs).
pub(crate) fn delete(store: &mut Store, table: &'static TableSpec, id: &str) -> Result<()> {
    store.write(|writer| writer.delete(table, id))
}

/// What a delete takes with it, so the confirmation can name everything that goes: the record's
/// name and how many records depend on it. Income records are append-only and are never
/// deleted; the ones that stay behind are counted so the user is told.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct DeletionImpact {
    /// The name the user knows the record by (a head of household, a member, a session title).
    pub name: String,
    /// Members deleted with it.
    pub members: i64,
    /// Visits deleted with it.
    pub visits: i64,
    /// Attendance rows (check-ins) deleted with it.
    pub attendance: i64,
    /// Skill scores deleted with it.
    pub assessments: i64,
    /// Income records that stay, because income is never deleted.
    pub income_records_kept: i64,
}
