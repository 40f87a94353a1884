//! A push's view of the rows it touches: read from storage in one query per table before the
//! merge, merged in memory change by change, and written back in one statement per table.
//! Nothing is written while a batch merges, so a row refused by the whole-record check is merged
//! again from the same view without it, and storage is only written once every row passes.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use furrow_contract::schema::{self, FieldType, TableSpec};
use furrow_contract::validate;
use furrow_contract::wire::PushRequest;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::rows::{deleted_flag, DELETED_FIELD, SCOPE_FIELD};
use crate::store::{RowMeta, StoredField, Tx};

/// A row by table and id.
pub(super) type RowKey = (String, String);

/// What a batch knows of storage, as of its own changes so far.
#[derive(Clone, Default)]
pub(super) struct View {
    /// Index entries looked up; `None` for a row storage does not hold.
    rows: BTreeMap<RowKey, Option<RowMeta>>,
    /// Every stored field of the batch's rows.
    fields: BTreeMap<RowKey, BTreeMap<String, StoredField>>,
}

/// The rows a record names: its typed references and, for a photo, its owner.
pub(super) fn references<'v>(table: &TableSpec, value: impl Fn(&str) -> Option<&'v Value>) -> Vec<RowKey> {
    let mut keys = Vec::new();
    for field in table.fields {
        if let FieldType::Ref(target) = field.ty {
            if let Some(id) = value(field.name).and_then(Value::as_str) {
                keys.push((target.to_owned(), id.to_owned()));
            }
        }
    }
    if table.name == schema::PHOTOS.name {
        let owner = value("owner_type").and_then(Value::as_str).and_then(schema::photo_owner_table);
        if let (Some(owner), Some(id)) = (owner, value("owner_id").and_then(Value::as_str)) {
            keys.push((owner.to_owned(), id.to_owned()));
        }
    }
    keys
}

impl View {
    /// Reads what a batch needs in two queries: every stored field of its rows, then the index
    /// entries of its rows and of every row they name (stored or pushed references, parents).
    pub(super) fn load(tx: &mut Tx<'_>, request: &PushRequest) -> Result<Self> {
        let batch: BTreeSet<RowKey> = request.changes.iter().map(|change| (change.tbl.clone(), change.row_id.clone())).collect();
        let keys: Vec<RowKey> = batch.iter().cloned().collect();
        let mut view = Self::default();
        for key in &keys {
            view.fields.insert(key.clone(), BTreeMap::new());
        }
        for (tbl, row_id, field, stored) in tx.fields_of(&keys)? {
            view.fields.entry((tbl, row_id)).or_default().insert(field, stored);
        }
        // A row's references as stored and as the batch would make them (whatever the merge
        // decides), so the parents and the whole-record check find what they name here.
        let mut pushed: BTreeMap<RowKey, BTreeMap<&str, &Value>> = BTreeMap::new();
        for change in &request.changes {
            let key = (change.tbl.clone(), change.row_id.clone());
            pushed.entry(key).or_default().insert(change.field.as_str(), &change.value);
        }
        let mut wanted: BTreeSet<RowKey> = batch;
        let empty = BTreeMap::new();
        for (key, changes) in &pushed {
            let Some(table) = schema::table(&key.0) else { continue };
            let stored = view.fields.get(key).unwrap_or(&empty);
            wanted.extend(references(table, |name| stored.get(name).map(|stored| &stored.value)));
            wanted.extend(references(table, |name| changes.get(name).copied().or_else(|| stored.get(name).map(|stored| &stored.value))));
        }
        view.fetch(tx, wanted)?;
        Ok(view)
    }

    /// Looks up, in one query, the index entries of the rows in `keys` not yet known.
    pub(super) fn fetch(&mut self, tx: &mut Tx<'_>, keys: impl IntoIterator<Item = RowKey>) -> Result<()> {
        let missing: Vec<RowKey> = keys.into_iter().filter(|key| !self.rows.contains_key(key)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        for key in &missing {
            self.rows.insert(key.clone(), None);
        }
        for (tbl, row_id, meta) in tx.rows_of(&missing)? {
            self.rows.insert((tbl, row_id), Some(meta));
        }
        Ok(())
    }

    /// A row's index entry: from the view, or looked up when the view has not met the row (a
    /// row the batch has not written, so storage holds it as the batch found it).
    pub(super) fn row(&mut self, tx: &mut Tx<'_>, tbl: &str, row_id: &str) -> Result<Option<RowMeta>> {
        let key = (tbl.to_owned(), row_id.to_owned());
        if let Some(known) = self.rows.get(&key) {
            return Ok(known.clone());
        }
        let found = tx.row(tbl, row_id)?;
        self.rows.insert(key, found.clone());
        Ok(found)
    }

    /// A field of one of the batch's rows.
    pub(super) fn field(&self, tbl: &str, row_id: &str, field: &str) -> Option<&StoredField> {
        self.fields.get(&(tbl.to_owned(), row_id.to_owned())).and_then(|fields| fields.get(field))
    }

    /// Every field of one of the batch's rows, by name.
    pub(super) fn fields(&self, tbl: &str, row_id: &str) -> Option<&BTreeMap<String, StoredField>> {
        self.fields.get(&(tbl.to_owned(), row_id.to_owned()))
    }

    /// Writes a field into the view and keeps the row's index entry as storage would
    /// ([`crate::rows::write_field`]); sequence numbers are given when the batch is stored.
    pub(super) fn write(&mut self, tbl: &str, row_id: &str, field: &str, stored: StoredField) {
        let key = (tbl.to_owned(), row_id.to_owned());
        let meta = self.rows.entry(key.clone()).or_insert(None);
        let meta = meta.get_or_insert_with(|| RowMeta { scope_id: String::new(), deleted: false, sv: 0 });
        if field == SCOPE_FIELD {
            meta.scope_id = stored.value.as_str().unwrap_or_default().to_owned();
        }
        if field == DELETED_FIELD {
            meta.deleted = deleted_flag(&stored.value).unwrap_or(false);
        }
        self.fields.entry(key).or_default().insert(field.to_owned(), stored);
    }
}

/// What the core's checks need from storage, answered from a batch's view (rows written earlier
/// in the same batch count as existing), looking up a row the view has not met. Rows outside
/// `scopes` count as missing.
pub(super) struct ViewContext<'v, 't, 'a> {
    view: RefCell<&'v mut View>,
    tx: RefCell<&'t mut Tx<'a>>,
    scopes: &'v [String],
    failure: RefCell<Option<Error>>,
}

impl<'v, 't, 'a> ViewContext<'v, 't, 'a> {
    /// A context over a view.
    pub(super) fn new(view: &'v mut View, tx: &'t mut Tx<'a>, scopes: &'v [String]) -> Self {
        Self { view: RefCell::new(view), tx: RefCell::new(tx), scopes, failure: RefCell::new(None) }
    }

    /// The first storage error a check met, if any (a check itself cannot return one).
    pub(super) fn finish(self) -> Result<()> {
        match self.failure.into_inner() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl validate::Context for ViewContext<'_, '_, '_> {
    fn exists(&self, table: &str, id: &str) -> bool {
        let found = self.view.borrow_mut().row(&mut self.tx.borrow_mut(), table, id);
        match found {
            Ok(row) => row.is_some_and(|row| {
                !row.deleted && self.scopes.binary_search_by(|own| own.as_str().cmp(&row.scope_id)).is_ok()
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
