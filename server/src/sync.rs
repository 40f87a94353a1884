//! The server half of sync (sync-design.md section 4): the push algorithm with its per-change
//! merge, and pull pages with an opaque cursor. Written once over [`Tx`], so both backends run
//! the same rule.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use base64::Engine;
use furrow_contract::hlc;
use furrow_contract::pull::{page_fields, sent_whole, Positions};
use furrow_contract::schema::{self, FieldType, Policy, ScopeRule, TableSpec};
use furrow_contract::wire::{Change, ChangeResult, CurrentValue, PullResponse, PulledRow, PushRequest, PushResponse, Reset, SCHEMA_VERSION};
use furrow_contract::validate;
use furrow_contract::FieldError;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::platform::ServerClock;
use crate::store::{ChangeLogEntry, ChangedRow, Prune, RowMeta, StoredField, Tx};

/// The oldest schema version the server still serves.
pub const MIN_SCHEMA_VERSION: i64 = 1;

/// How far ahead of the server's clock a change's HLC may be (sync-design.md section 2).
pub const MAX_CLOCK_AHEAD_MS: i64 = 10 * 60 * 1000;

/// Default and largest pull page, in rows.
pub const DEFAULT_PULL_LIMIT: i64 = 1000;
/// The largest pull page, in rows.
pub const MAX_PULL_LIMIT: i64 = 5000;

/// The pseudo-field carrying a row's scope.
pub const SCOPE_FIELD: &str = "scope_id";
/// The pseudo-field carrying a row's tombstone flag.
pub const DELETED_FIELD: &str = "deleted";

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

/// The node bytes of a client id.
pub fn client_node(client_id: &str) -> Result<Vec<u8>> {
    uuid::Uuid::parse_str(client_id)
        .map(|id| id.as_bytes().to_vec())
        .map_err(|_| Error::bad_request("invalid_client_id", "client_id must be the device's node id, a UUID"))
}

/// Checks a push body before anything is read or written: its shape, every change's table and
/// field, and every value's type. Any failure refuses the whole batch with a 400, and nothing is
/// applied; a device never sends such a batch, because it checks values with the same code.
pub fn check_push(request: &PushRequest) -> Result<()> {
    check_schema_version(request.schema_version)?;
    client_node(&request.client_id)?;
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
        if change.node.as_deref().is_some_and(|node| decode_node(node).is_none()) {
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

/// The code of a batch refused for a value: `control_character` when the value holds one,
/// `invalid_value` otherwise.
pub fn value_error_code(failure_code: &str) -> &'static str {
    if failure_code == "control_character" {
        "control_character"
    } else {
        "invalid_value"
    }
}

fn deleted_flag(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::Number(number) => match number.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        _ => None,
    }
}

/// The wire form of a node id.
pub fn node_base64(node: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(node)
}

/// The 16 bytes of a node id in its wire form (standard base64), if it is one.
fn decode_node(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok().filter(|bytes| bytes.len() == 16)
}

/// The node a change is merged and stored under: the writer it names when a device re-sends a
/// field another device wrote (to a server restored from a backup), otherwise the sending
/// device's own. [`check_push`] has checked the named node.
fn writer_node(change: &Change, sender: &[u8]) -> Vec<u8> {
    change.node.as_deref().and_then(decode_node).unwrap_or_else(|| sender.to_vec())
}

fn current(stored: &StoredField) -> CurrentValue {
    CurrentValue {
        value: stored.value.clone(),
        hlc: stored.hlc,
        node: Some(node_base64(&stored.node)),
        actor: Some(stored.actor.clone()),
    }
}

fn result(change: &Change, status: &str) -> ChangeResult {
    ChangeResult { change_id: change.change_id.clone(), status: status.into(), reason: None, message: None, current: None }
}

fn rejected(change: &Change, reason: &str, message: impl Into<String>, stored: Option<&StoredField>) -> ChangeResult {
    ChangeResult {
        change_id: change.change_id.clone(),
        status: "rejected".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        current: stored.map(current),
    }
}

fn superseded(change: &Change, stored: &StoredField) -> ChangeResult {
    ChangeResult { current: Some(current(stored)), ..result(change, "superseded") }
}

/// What a push produced: the response body, exactly as stored for replay.
#[derive(Debug, Clone)]
pub struct PushOutcome {
    /// The JSON body.
    pub body: String,
    /// Whether it is a replay of a stored response.
    pub replayed: bool,
    /// The greatest HLC accepted, for the server's clock to observe.
    pub max_hlc: i64,
}

/// The savepoint a push returns to when a row of its batch fails the whole-record check.
const ROW_CHECK_SAVEPOINT: &str = "push_rows";

/// The rows of a batch refused as a whole, with every failing field.
type RefusedRows = BTreeMap<(String, String), Vec<FieldError>>;

/// A batch's refused rows, and the answers their changes keep: a change that was rejected or
/// superseded on its own merits keeps that answer; only the row's applied changes become
/// `invalid_record`.
#[derive(Default)]
struct Refusals {
    rows: RefusedRows,
    kept: BTreeMap<usize, ChangeResult>,
}

/// What one pass over a batch's changes produced.
struct Pass {
    results: Vec<ChangeResult>,
    max_hlc: i64,
    greatest_seq: i64,
    /// The rows this pass wrote to, by table and id.
    written: BTreeSet<(String, String)>,
}

/// Runs the push algorithm of sync-design.md section 4 inside one write transaction. The body
/// must have passed [`check_push`].
///
/// A known batch id replays its stored response, unless it was stored with the digest of other
/// changes ([`request_digest`]): that is 422 `idempotency_key_reused`. A new change under a
/// sequence number already applied from this client refuses the batch with 409 `seq_reused`
/// ([`Error::SeqReused`]); nothing of a refused batch is applied.
///
/// Changes are merged one field at a time, and then every row the batch wrote to is checked
/// whole, as the device's write path checks it ([`validate::check_record`] on the stored row
/// with the batch's changes laid over it, server-only fields left out). A row that fails has
/// none of its changes stored: the batch is merged again from a savepoint without that row's
/// changes, each of them answered `rejected/invalid_record` with the failing fields in both
/// languages. Refusing a row can make another one fail (a member of a new household that was
/// refused), so this repeats until every written row passes; each round refuses at least one
/// more row, so it ends.
///
/// A listing that reaches the server submitted with a submission key it has not seen is
/// recorded as a submission, once per key, and its server-only `moderation_status` becomes
/// `pending`, written with the server's clock (see [`crate::platform::record_submissions`]).
pub fn push(tx: &mut Tx<'_>, caller: &Caller, clock: &ServerClock, request: &PushRequest, now: i64) -> Result<PushOutcome> {
    let owner = tx.client(&request.client_id)?;
    if let Some((user_id, _)) = owner {
        if user_id != caller.user_id {
            return Err(Error::forbidden("this client id is registered to another account"));
        }
    }
    let digest = request_digest(request)?;
    if let Some(stored) = tx.stored_batch(&request.client_id, &request.batch_id)? {
        // A batch stored before digests were kept has none and replays as it always did.
        if stored.request_hash.as_deref().is_some_and(|hash| hash != digest) {
            return Err(Error::api(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                format!(
                    "batch {} was already answered for other changes; a batch id names one body only. Send these changes under a new batch id.",
                    request.batch_id
                ),
            ));
        }
        return Ok(PushOutcome { body: stored.response, replayed: true, max_hlc: 0 });
    }
    if let Some(change) = request.changes.iter().find(|change| hlc::physical_ms(change.hlc) > now + MAX_CLOCK_AHEAD_MS) {
        return Err(Error::Api {
            status: StatusCode::CONFLICT,
            code: "clock_ahead",
            message: format!(
                "change {} is stamped {} ms ahead of the server's clock; correct the clock offset and re-stamp unsent changes",
                change.change_id,
                hlc::physical_ms(change.hlc) - now
            ),
            server_time: Some(now),
            headers: Vec::new(),
        });
    }
    let node = client_node(&request.client_id)?;
    let last_applied = owner.map(|(_, seq)| seq).unwrap_or(0);
    if let Some(change) = reused_seq(tx, request, last_applied, &node)? {
        return Err(Error::SeqReused {
            message: format!(
                "change {} reuses seq {}, which this server already applied from this device for another change (was the device's data restored from an old copy?); renumber unsent changes above last_applied_seq {last_applied} and send them under a new batch id",
                change.change_id, change.seq
            ),
            last_applied_seq: last_applied,
        });
    }
    let context = MergeContext { caller, node: &node, client_id: &request.client_id, now };
    let mut refused = Refusals::default();
    let pass = loop {
        tx.savepoint(ROW_CHECK_SAVEPOINT)?;
        let pass = merge_batch(tx, &context, request, last_applied, &refused)?;
        let failures = check_rows(tx, caller, &pass.written)?;
        if failures.is_empty() {
            tx.release(ROW_CHECK_SAVEPOINT)?;
            break pass;
        }
        tx.rollback_to(ROW_CHECK_SAVEPOINT)?;
        tx.release(ROW_CHECK_SAVEPOINT)?;
        for (index, (change, outcome)) in request.changes.iter().zip(&pass.results).enumerate() {
            let key = (change.tbl.clone(), change.row_id.clone());
            if failures.contains_key(&key) && outcome.status != "applied" {
                refused.kept.insert(index, outcome.clone());
            }
        }
        refused.rows.extend(failures);
    };
    grant_photo_blobs(tx, caller, &pass.written, now)?;
    let listings: Vec<String> =
        pass.written.iter().filter(|(tbl, _)| tbl == schema::LISTINGS.name).map(|(_, row_id)| row_id.clone()).collect();
    crate::platform::record_submissions(tx, clock, caller, &request.client_id, &listings, now)?;
    let Pass { results, max_hlc, greatest_seq, .. } = pass;
    tx.put_client(&request.client_id, caller.user_id, greatest_seq, now)?;
    let response =
        PushResponse { batch_id: request.batch_id.clone(), last_applied_seq: greatest_seq, server_time: now, results };
    let body = serde_json::to_string(&response).map_err(|error| Error::Storage(format!("response encoding: {error}")))?;
    tx.put_batch_with_digest(&request.client_id, &request.batch_id, &digest, &body, now)?;
    Ok(PushOutcome { body, replayed: false, max_hlc })
}

/// The photos a push wrote make the blobs they name (image and thumbnail) readable in the
/// photo's village, when the pusher could already read them (uploaded them, or they are readable
/// in one of the pusher's villages). A photo naming a hash learnt elsewhere is stored like any
/// other, so the answer reveals nothing, but grants nothing: its blob stays unreadable there
/// until someone in that village uploads the bytes.
fn grant_photo_blobs(tx: &mut Tx<'_>, caller: &Caller, written: &BTreeSet<(String, String)>, now: i64) -> Result<()> {
    for (tbl, row_id) in written.iter().filter(|(tbl, _)| tbl == schema::PHOTOS.name) {
        let Some(row) = tx.row(tbl, row_id)?.filter(|row| !row.deleted) else { continue };
        for field in ["sha256", "thumb_sha256"] {
            let named = tx.field(tbl, row_id, field)?.and_then(|stored| stored.value.as_str().map(str::to_owned));
            let Some(sha256) = named else { continue };
            if tx.readable_blob(&sha256, caller.user_id, &caller.scopes)?.is_some() {
                tx.grant_blob(&sha256, &row.scope_id, now)?;
            }
        }
    }
    Ok(())
}

/// The digest kept with a batch's stored answer: the SHA-256 (hex) of its changes serialised as
/// JSON from the parsed body, so the same changes give the same digest however the body was
/// spaced or compressed. The same batch id with another digest is refused.
pub fn request_digest(request: &PushRequest) -> Result<String> {
    let bytes = serde_json::to_vec(&request.changes).map_err(|error| Error::Storage(format!("request encoding: {error}")))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// The first change of a batch that re-uses a sequence number the server has already applied
/// from this client for a change it does not hold: its change id is not in the change log, and
/// the stored field's stamp is neither its own nor newer. Answering such a change `superseded`
/// would hand the device a value older than its own edit as the winner, and the change would be
/// lost. A re-send of an old change whose stored answer has expired is never one: its stamp is
/// stored, or a newer one superseded it, or its id is in the log. Changes come in increasing seq,
/// so only the batch's head is looked at.
fn reused_seq<'r>(tx: &mut Tx<'_>, request: &'r PushRequest, last_applied: i64, sender: &[u8]) -> Result<Option<&'r Change>> {
    for change in request.changes.iter().take_while(|change| change.seq <= last_applied) {
        let node = writer_node(change, sender);
        let stored = tx.field(&change.tbl, &change.row_id, &change.field)?;
        if stored.is_some_and(|stored| (stored.hlc, stored.node.as_slice()) >= (change.hlc, node.as_slice())) {
            continue;
        }
        if tx.change_logged(&change.tbl, &change.row_id, &change.field, &change.change_id)? {
            continue;
        }
        return Ok(Some(change));
    }
    Ok(None)
}

/// One pass over a batch's changes in seq order; the changes of `refused` rows are answered
/// `rejected/invalid_record` without being merged.
fn merge_batch(
    tx: &mut Tx<'_>,
    context: &MergeContext<'_>,
    request: &PushRequest,
    last_applied: i64,
    refused: &Refusals,
) -> Result<Pass> {
    let mut pass =
        Pass { results: Vec::with_capacity(request.changes.len()), max_hlc: 0, greatest_seq: last_applied, written: BTreeSet::new() };
    for (index, change) in request.changes.iter().enumerate() {
        let key = (change.tbl.clone(), change.row_id.clone());
        let outcome = if change.seq <= last_applied {
            // Already applied in an earlier batch whose stored response has expired: report what
            // the server holds without writing anything.
            already_applied(tx, change, &writer_node(change, context.node))?
        } else if let Some(errors) = refused.rows.get(&key) {
            match refused.kept.get(&index) {
                Some(kept) => kept.clone(),
                None => {
                    let stored = tx.field(&change.tbl, &change.row_id, &change.field)?;
                    rejected(change, INVALID_RECORD, record_message(errors), stored.as_ref())
                }
            }
        } else {
            let (outcome, wrote) = merge(tx, context, change)?;
            if wrote {
                pass.written.insert(key);
            }
            outcome
        };
        if outcome.status == "applied" {
            pass.max_hlc = pass.max_hlc.max(change.hlc);
        }
        pass.greatest_seq = pass.greatest_seq.max(change.seq);
        pass.results.push(outcome);
    }
    Ok(pass)
}

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
    let mut record = Map::new();
    for (name, stored) in tx.fields(table.name, row_id)? {
        let Some(field) = table.field(&name) else { continue };
        if field.policy == Policy::ServerOnly || stored.value.is_null() {
            continue;
        }
        record.insert(name, stored.value);
    }
    Ok(record)
}

/// Checks every live row in `rows` whole; returns those that fail, with their errors.
fn check_rows(tx: &mut Tx<'_>, caller: &Caller, rows: &BTreeSet<(String, String)>) -> Result<RefusedRows> {
    let mut failures = RefusedRows::new();
    for (tbl, row_id) in rows {
        let Some(table) = schema::table(tbl) else { continue };
        match tx.row(tbl, row_id)? {
            Some(meta) if !meta.deleted => {}
            // A tombstone is not checked: deleting is always allowed where the merge allowed it.
            _ => continue,
        }
        let record = checked_record(tx, table, row_id)?;
        let errors = {
            // Rows in villages the caller is not assigned to count as missing, so a reference
            // to one is refused exactly like a reference to nothing, and the answer does not tell
            // whether the id exists elsewhere.
            let context = StoreContext::within(tx, &caller.scopes);
            let mut errors = validate::check_record(table, &record, &context);
            photo_owner_problem(table, &record, &context, &mut errors);
            context.finish()?;
            errors
        };
        if !errors.is_empty() {
            failures.insert((tbl.clone(), row_id.clone()), errors);
        }
    }
    Ok(failures)
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
fn photo_owner_problem(table: &TableSpec, record: &Map<String, Value>, context: &StoreContext<'_, '_>, errors: &mut Vec<FieldError>) {
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

fn already_applied(tx: &mut Tx<'_>, change: &Change, node: &[u8]) -> Result<ChangeResult> {
    Ok(match tx.field(&change.tbl, &change.row_id, &change.field)? {
        Some(stored) if (stored.hlc, stored.node.as_slice()) == (change.hlc, node) => result(change, "applied"),
        Some(stored) => superseded(change, &stored),
        // Processed before without leaving a value: it was refused then, and is not judged again.
        None => rejected(change, "invalid", "this change was processed in an earlier batch and left no value", None),
    })
}

struct MergeContext<'a> {
    caller: &'a Caller,
    node: &'a [u8],
    client_id: &'a str,
    now: i64,
}

/// Authorises, checks and merges one change (the body was checked by [`check_push`]). Returns
/// the change's result and whether it wrote the field.
fn merge(tx: &mut Tx<'_>, context: &MergeContext<'_>, change: &Change) -> Result<(ChangeResult, bool)> {
    let mut wrote = false;
    let result = merge_field(tx, context, change, &mut wrote)?;
    Ok((result, wrote))
}

fn merge_field(tx: &mut Tx<'_>, context: &MergeContext<'_>, change: &Change, wrote: &mut bool) -> Result<ChangeResult> {
    let Some(table) = schema::table(&change.tbl) else {
        return Ok(rejected(change, "invalid", format!("there is no synced table {:?}", change.tbl), None));
    };
    let spec = table.field(&change.field);
    if table.platform_only || spec.is_some_and(|field| field.policy == Policy::ServerOnly) {
        return Ok(rejected(change, "server_only", format!("{}.{} is written by the platform only", table.name, change.field), None));
    }
    let row = tx.row(table.name, &change.row_id)?;
    let caller = context.caller;
    // Scopes come from the token alone: the stored row's scope decides who may touch it, and a
    // new scope must be one of the caller's too.
    let foreign = row.as_ref().is_some_and(|row| !caller.may_use(&row.scope_id));
    if change.field == SCOPE_FIELD {
        let scope = change.value.as_str().unwrap_or_default();
        if !caller.may_use(scope) {
            return Ok(rejected(change, "forbidden", format!("you are not assigned to village {scope}"), None));
        }
        if foreign {
            return Ok(rejected(change, "forbidden", "the record belongs to a village you are not assigned to", None));
        }
    } else if row.is_none() || foreign {
        // A row of another village is answered exactly like a row the server does not know, so
        // the answer does not tell whether the id exists elsewhere.
        return Ok(rejected(change, "invalid", UNKNOWN_ROW, None));
    }
    // A reference to a row of a village the caller is not assigned to is not refused here: such
    // a row counts as missing, and the whole-record check refuses the record with `not_found`
    // exactly as for a reference to nothing ([`StoreContext::within`]), so the answer does not
    // tell whether the id exists elsewhere.
    if let Some(problem) = parent_scope_problem(tx, caller, table, change, row.as_ref())? {
        return Ok(problem);
    }
    let stored = tx.field(table.name, &change.row_id, &change.field)?;
    let node = writer_node(change, context.node);
    let incoming = (change.hlc, node.as_slice());
    if let Some(stored) = &stored {
        if (stored.hlc, stored.node.as_slice()) == incoming {
            // The same change delivered again: already in place.
            return Ok(result(change, "applied"));
        }
        if table.append_only && change.field != SCOPE_FIELD {
            return Ok(rejected(change, "invalid", format!("{} records cannot be edited; add a correction instead", table.name), Some(stored)));
        }
        if spec.is_some_and(|field| field.policy == Policy::RejectIfStale) && change.base_hlc != Some(stored.hlc) {
            return Ok(rejected(change, "stale_base", "the value was changed on the server since you edited it", Some(stored)));
        }
        if (stored.hlc, stored.node.as_slice()) > incoming {
            return Ok(superseded(change, stored));
        }
    } else if table.append_only && change.field == DELETED_FIELD {
        return Ok(rejected(change, "invalid", format!("{} records cannot be deleted", table.name), None));
    }
    let value = if change.field == DELETED_FIELD {
        Value::from(i64::from(deleted_flag(&change.value).unwrap_or(false)))
    } else {
        change.value.clone()
    };
    *wrote = true;
    let seq = write_field(
        tx,
        table.name,
        &change.row_id,
        &change.field,
        row.as_ref(),
        StoredField { value, hlc: change.hlc, node, server_seq: 0, actor: caller.actor() },
    )?;
    tx.log_change(&ChangeLogEntry {
        server_seq: seq,
        change_id: &change.change_id,
        client_id: context.client_id,
        tbl: table.name,
        row_id: &change.row_id,
        field: &change.field,
        created_at: context.now,
    })?;
    Ok(result(change, "applied"))
}

/// What a change to a row the caller cannot see is answered, whether the row is missing or in
/// another village.
const UNKNOWN_ROW: &str = "the record does not exist on the server yet; its scope_id change must come first";

/// A row takes its village from its parent (a household from its village, a listing from its
/// product): pointing a row at a parent in another village than the row's own would file it
/// under one village while it belongs to another, so it is refused. A parent the server does not
/// know yet (pushed in a later batch) is accepted.
fn parent_scope_problem(
    tx: &mut Tx<'_>,
    caller: &Caller,
    table: &TableSpec,
    change: &Change,
    row: Option<&RowMeta>,
) -> Result<Option<ChangeResult>> {
    let Some(row) = row else { return Ok(None) };
    let parent_table = match table.scope {
        ScopeRule::From(field) if field == change.field => match table.field(field).map(|spec| spec.ty) {
            Some(FieldType::Ref(target)) => Some(target.to_owned()),
            _ => None,
        },
        ScopeRule::FromOwner { kind_field, id_field } if id_field == change.field => tx
            .field(table.name, &change.row_id, kind_field)?
            .and_then(|stored| stored.value.as_str().and_then(schema::photo_owner_table).map(str::to_owned)),
        _ => None,
    };
    let (Some(parent_table), Some(parent_id)) = (parent_table, change.value.as_str()) else { return Ok(None) };
    match tx.row(&parent_table, parent_id)? {
        // A parent the caller cannot see is left to the whole-record check, which counts it as
        // missing; naming its village here would tell where it is.
        Some(parent) if parent.scope_id != row.scope_id && caller.may_use(&parent.scope_id) => Ok(Some(rejected(
            change,
            "invalid",
            format!("the {parent_table} record is in village {}, not in this record's village {}", parent.scope_id, row.scope_id),
            None,
        ))),
        _ => Ok(None),
    }
}

/// Writes one field with the next server sequence number and updates the row's index entry.
/// Returns the sequence number.
pub fn write_field(tx: &mut Tx<'_>, tbl: &str, row_id: &str, field: &str, row: Option<&RowMeta>, mut stored: StoredField) -> Result<i64> {
    let seq = tx.next_seq()?;
    stored.server_seq = seq;
    let mut meta = row.cloned().unwrap_or(RowMeta { scope_id: String::new(), deleted: false, sv: seq });
    if field == SCOPE_FIELD {
        meta.scope_id = stored.value.as_str().unwrap_or_default().to_owned();
    }
    if field == DELETED_FIELD {
        meta.deleted = deleted_flag(&stored.value).unwrap_or(false);
    }
    meta.sv = seq;
    tx.put_field(tbl, row_id, field, &stored)?;
    tx.put_row(tbl, row_id, &meta)?;
    Ok(seq)
}

/// A decoded pull cursor: the two positions of a pull ([`Positions`]), the scope set and schema
/// version it was made for, and the epoch of the history it points into.
///
/// The wire form is `c2:REACHED:COMPLETE:SCOPE_HASH:SCHEMA_VERSION:EPOCH`, base64url. A cursor of
/// the first format (`c1:SEQ:SCOPE_HASH:SCHEMA_VERSION`) meant that the device was complete up
/// to where the pages had reached, so it decodes as both positions at `SEQ`, with no epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Rows with a later change than this were not yet sent.
    pub seq: i64,
    /// The device holds every change up to this sequence number; a row on the next page carries
    /// every field changed after it.
    pub complete: i64,
    /// The hash of the scope set the cursor was made for.
    pub scope_hash: String,
    /// The schema version the cursor was made for.
    pub schema_version: i64,
    /// The epoch of the history the cursor points into; `None` in a first-format cursor.
    pub epoch: Option<String>,
}

impl Cursor {
    /// The pull's positions.
    pub fn positions(&self) -> Positions {
        Positions { reached: self.seq, complete: self.complete }
    }

    /// The opaque wire form.
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "c2:{}:{}:{}:{}:{}",
            self.seq,
            self.complete,
            self.scope_hash,
            self.schema_version,
            self.epoch.as_deref().unwrap_or_default()
        ))
    }

    /// Decodes a cursor from its wire form, either format.
    pub fn decode(text: &str) -> Result<Self> {
        let bad = || Error::bad_request("invalid_cursor", "the cursor is not one this server issued; pull without a cursor");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let parts: Vec<&str> = text.split(':').collect();
        let number = |part: &str| part.parse::<i64>().ok().filter(|value| *value >= 0).ok_or_else(bad);
        match parts.as_slice() {
            ["c1", seq, hash, version] => {
                let seq = number(seq)?;
                Ok(Self { seq, complete: seq, scope_hash: (*hash).to_owned(), schema_version: number(version)?, epoch: None })
            }
            ["c2", seq, complete, hash, version, epoch] => {
                let (seq, complete) = (number(seq)?, number(complete)?);
                if complete > seq {
                    return Err(bad());
                }
                Ok(Self {
                    seq,
                    complete,
                    scope_hash: (*hash).to_owned(),
                    schema_version: number(version)?,
                    epoch: (!epoch.is_empty()).then(|| (*epoch).to_owned()),
                })
            }
            _ => Err(bad()),
        }
    }
}

/// A short hash of a sorted scope set, embedded in cursors so a change of assignment is noticed.
pub fn scope_hash(scopes: &[String]) -> String {
    let digest = Sha256::digest(scopes.join(",").as_bytes());
    hex::encode(&digest[..8])
}

/// The reset reason of a pull whose cursor points into a history this server does not hold: one
/// of another epoch (the database was restored from a backup and given a new epoch), or one
/// ahead of the server's sequence (the server lost acknowledged changes). The device takes a
/// fresh snapshot and then re-sends every field it holds that the server lacks or holds older.
pub const SERVER_RESTORED: &str = furrow_contract::wire::SERVER_RESTORED;

/// Gives the history a fresh random epoch: what `furrow-server new-epoch` does, and what an
/// operator runs after restoring the database from a backup, before serving it. Every cursor a
/// device holds names the old epoch, so its next pull answers `reset: server_restored`: the
/// device takes a fresh snapshot, keeps every row, and re-sends every field it holds that the
/// restored database lacks or holds older. Without a new epoch, a device whose cursor is behind
/// the restored counter would trust sequence numbers that now name other changes. Returns the
/// new epoch.
pub fn new_epoch(tx: &mut Tx<'_>, now: i64) -> Result<String> {
    let previous = tx.epoch()?;
    let epoch = loop {
        // Sixteen hex digits, the form the migrations give the first epoch.
        let candidate = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
        if candidate != previous {
            break candidate;
        }
    };
    tx.set_epoch(&epoch, now)?;
    Ok(epoch)
}

/// The reset reason of a pull whose cursor is of the first format, which did not carry the
/// point up to which its device is complete (see [`Cursor`]).
pub const CURSOR_FORMAT: &str = "cursor_format";

/// One pull page (sync-design.md section 4). Without a cursor the page starts a snapshot: every
/// row in scope, each with all its fields, in server order; later pages are incremental. Rows
/// are paged by their latest server sequence number, which is unique per row, so a row changed
/// while a client pages simply comes again later and no change is ever skipped. Which fields a
/// row carries is [`page_fields`]: every field changed after the point where the pull began, so
/// the union of the pages is always complete, whatever the page size.
pub fn pull(tx: &mut Tx<'_>, caller: &Caller, cursor: Option<&str>, limit: i64, schema_version: i64, now: i64) -> Result<PullResponse> {
    check_schema_version(schema_version)?;
    let limit = limit.clamp(1, MAX_PULL_LIMIT);
    let hash = scope_hash(&caller.scopes);
    let epoch = tx.epoch()?;
    let decoded = cursor.filter(|text| !text.is_empty()).map(Cursor::decode).transpose()?;
    let reset = |reason: &str| (Positions::SNAPSHOT, Some(Reset { reason: reason.into() }));
    let (start, reset) = match decoded {
        None => (Positions::SNAPSHOT, None),
        // A first-format cursor cannot say how complete its device is: the server that issued
        // it sent rows first met on a later page without the fields changed earlier in the same
        // pull. A fresh snapshot both continues safely and repairs any row received partially.
        Some(cursor) if cursor.epoch.is_none() => reset(CURSOR_FORMAT),
        Some(cursor) if cursor.epoch.as_ref().is_some_and(|other| *other != epoch) => reset(SERVER_RESTORED),
        Some(cursor) if cursor.seq > tx.current_seq()? => reset(SERVER_RESTORED),
        Some(cursor) if cursor.scope_hash != hash => reset("scope_changed"),
        Some(cursor) if cursor.schema_version != schema_version => reset("schema"),
        // Tombstones the client has not seen may have been purged: it starts again from a
        // snapshot, and keeps and pushes its outbox as after any reset.
        Some(cursor) if cursor.complete < tx.history_horizon()? => reset(HISTORY_PRUNED),
        Some(cursor) => (cursor.positions(), None),
    };
    // One row more than the page tells whether more follow.
    let mut rows = tx.changed_rows(&caller.scopes, start.reached, limit + 1)?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = start.after_page(rows.last().map(|row| row.meta.sv), has_more);
    let rows = rows.into_iter().map(|row| pulled_row(row, start.complete)).collect();
    Ok(PullResponse {
        cursor: Cursor { seq: next.reached, complete: next.complete, scope_hash: hash, schema_version, epoch: Some(epoch) }
            .encode(),
        has_more,
        server_time: now,
        reset,
        rows,
    })
}

/// The wire form of a row: the fields [`page_fields`] chooses for a pull complete up to
/// `complete`.
///
/// A row sent whole always says whether it is deleted, as [`PulledRow`] promises: a row never
/// deleted nor restored has no stored `deleted` field, so it carries `0` with the least stamp
/// ([`furrow_contract::hlc::Stamp::NONE`]), which every real deletion beats and devices keep no clock
/// for.
fn pulled_row(row: ChangedRow, complete: i64) -> PulledRow {
    let whole = sent_whole(row.fields.iter().map(|(name, stored)| (name.as_str(), stored.server_seq)), complete);
    let versions = row.fields.into_iter().map(|(name, stored)| (name, stored.server_seq, stored)).collect();
    let mut fields: BTreeMap<String, furrow_contract::wire::PulledField> = page_fields(versions, complete)
        .into_iter()
        .map(|(name, stored)| (name, (stored.value, stored.hlc, node_base64(&stored.node))))
        .collect();
    if whole {
        let never = furrow_contract::hlc::Stamp::NONE;
        fields.entry(DELETED_FIELD.to_owned()).or_insert_with(|| (Value::from(0), never.hlc, node_base64(&never.node.0)));
    }
    PulledRow { tbl: row.tbl, id: row.row_id, scope_id: row.meta.scope_id, sv: row.meta.sv, fields }
}

/// The reset reason of a pull whose cursor is older than the pruned history.
pub const HISTORY_PRUNED: &str = "history_pruned";

/// The shortest history a server keeps, in days: `max_offline_days` of sync-design.md section 6.
/// A device offline longer than the horizon gets a full snapshot instead of the changes it
/// missed.
pub const MIN_HISTORY_DAYS: i64 = 180;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Purges tombstones older than `older_than_days` (at least [`MIN_HISTORY_DAYS`], refused with
/// 400 `history_too_short` otherwise) and records the horizon. See [`prune_history_before`].
pub fn prune_history(tx: &mut Tx<'_>, older_than_days: i64, now: i64) -> Result<Prune> {
    check_history_days(older_than_days)?;
    prune_history_before(tx, now.saturating_sub(older_than_days.saturating_mul(DAY_MS)), now)
}

/// Refuses a history horizon shorter than [`MIN_HISTORY_DAYS`] (400 `history_too_short`).
pub fn check_history_days(older_than_days: i64) -> Result<()> {
    if older_than_days < MIN_HISTORY_DAYS {
        return Err(Error::bad_request(
            "history_too_short",
            format!(
                "--older-than-days must be at least {MIN_HISTORY_DAYS} (max_offline_days, sync-design.md section 6), not {older_than_days}: \
                 a device offline longer than the horizon could miss a deletion"
            ),
        ));
    }
    Ok(())
}

/// Purges every tombstoned row whose latest change the server accepted before `horizon_ms`,
/// with its fields and its change-log entries, and records the horizon, so a pull whose cursor
/// is older answers `reset: history_pruned`. The horizon never moves back. This function has no
/// minimum age: [`prune_history`] (the `prune` command) keeps `max_offline_days`; tests use it
/// with a recent horizon.
///
/// The horizon's sequence number is that of the last change the change log shows accepted
/// before `horizon_ms` (server clock). A tombstoned row whose latest change is at or below it
/// was deleted before the horizon and not touched since; a client whose cursor is at or above
/// it has received that tombstone already.
pub fn prune_history_before(tx: &mut Tx<'_>, horizon_ms: i64, now: i64) -> Result<Prune> {
    let horizon_seq = tx.last_seq_before(horizon_ms)?.max(tx.history_horizon()?);
    let (rows_purged, changes_purged) = tx.purge_tombstones(horizon_seq)?;
    let prune = Prune { horizon_ms, horizon_seq, rows_purged, changes_purged, pruned_at: now };
    tx.record_prune(&prune)?;
    Ok(prune)
}

/// How long stored push responses are kept for exact replay (at least 30 days, as
/// sync-design.md asks; after that the seq check still makes a re-sent batch a no-op).
pub const BATCH_RETENTION_MS: i64 = 45 * 24 * 60 * 60 * 1000;

/// How long an unfinished upload is kept for its device to resume it.
pub const UPLOAD_RETENTION_MS: i64 = 14 * 24 * 60 * 60 * 1000;

/// What a housekeeping round removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Housekeeping {
    /// Expired tokens.
    pub tokens: u64,
    /// Push responses past their retention.
    pub batches: u64,
    /// Unfinished uploads past their retention; their partial files are the caller's to delete.
    pub uploads: Vec<String>,
}

/// Periodic cleanup: expired tokens, push responses past their retention and abandoned uploads.
/// Tombstones are never removed here; an operator prunes them with `furrow-server prune`
/// ([`prune_history`]).
pub fn housekeeping(tx: &mut Tx<'_>, now: i64) -> Result<Housekeeping> {
    let tokens = tx.delete_expired_tokens(now)?;
    tx.delete_audit_before(now - AUDIT_RETENTION_MS)?;
    let batches = tx.delete_batches_before(now - BATCH_RETENTION_MS)?;
    let uploads = tx.stale_uploads(now - UPLOAD_RETENTION_MS)?;
    for id in &uploads {
        tx.delete_upload(id)?;
    }
    Ok(Housekeeping { tokens, batches, uploads })
}

/// How long the audit log is kept: 180 days.
pub const AUDIT_RETENTION_MS: i64 = 180 * 24 * 60 * 60 * 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = Cursor {
            seq: 98_812,
            complete: 90_000,
            scope_hash: scope_hash(&["520402101201".into()]),
            schema_version: 1,
            epoch: Some("0123456789abcdef".into()),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).ok(), Some(cursor));
        let encode = |text: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        // A cursor of the first format meant both positions at its one sequence number.
        let old = Cursor::decode(&encode("c1:42:abcd:1")).expect("a first-format cursor decodes");
        assert_eq!(old.positions(), Positions::single(42));
        assert_eq!(old.epoch, None);
        let garbage = [encode("c2:5:6:abcd:1:e"), encode("c2:-1:0:abcd:1:e"), encode("c2:5:1:abcd:1"), encode("c1:x:abcd:1")];
        for bad in ["", "abc", "YzE6eDp5OjE", "c1:1:2:3"].iter().map(|text| text.to_string()).chain(garbage) {
            assert!(Cursor::decode(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_scope_hash_depends_on_the_set() {
        let one = scope_hash(&["a".into()]);
        assert_eq!(one, scope_hash(&["a".into()]));
        assert_ne!(one, scope_hash(&["a".into(), "b".into()]));
        assert_ne!(one, scope_hash(&[]));
    }

    #[test]
    fn deleted_is_zero_or_one() {
        assert_eq!(deleted_flag(&Value::from(1)), Some(true));
        assert_eq!(deleted_flag(&Value::from(0)), Some(false));
        assert_eq!(deleted_flag(&Value::Bool(true)), Some(true));
        assert_eq!(deleted_flag(&Value::from(2)), None);
        assert_eq!(deleted_flag(&Value::from("1")), None);
    }

    #[test]
    fn schema_versions_outside_the_served_range_are_426() {
        assert!(check_schema_version(SCHEMA_VERSION).is_ok());
        for version in [MIN_SCHEMA_VERSION - 1, SCHEMA_VERSION + 1] {
            assert_eq!(check_schema_version(version).map_err(|error| error.status().as_u16()), Err(426));
        }
    }
}
