//! The push algorithm (docs/sync.md section 4): a batch merged one change at a time, each
//! authorised by the caller's villages and decided by the contract's merge rule, then every row
//! it wrote checked whole, in one write transaction with the stored answer for exact replay.
//!
//! The merge is set-based: what the batch touches is read in one query per table before the
//! merge ([`state::View`]), every change is decided in memory in seq order, and the winners,
//! their row index entries and the change log are written in one statement each. A batch costs
//! the same few statements whatever its size.

mod state;

use std::collections::{BTreeMap, BTreeSet};

use axum::http::StatusCode;
use furrow_contract::hlc::{self, NodeId, Stamp};
use furrow_contract::merge::{decide, Rule, Verdict};
use furrow_contract::schema::{self, FieldType, ScopeRule, TableSpec};
use furrow_contract::wire::{Change, ChangeResult, CurrentValue, PushRequest, PushResponse};
use serde_json::Value;
use sha2::{Digest, Sha256};

use self::state::{View, ViewContext};
use super::check::{record_errors, record_message, record_of, sender_node, RefusedRows, INVALID_RECORD};
use super::{node_base64, MAX_CLOCK_AHEAD_MS};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::rows::{deleted_flag, stored_stamp, ServerClock, DELETED_FIELD, SCOPE_FIELD};
use crate::store::{ChangeLogEntry, RowMeta, StoredField, Tx};

/// The node a change is merged and stored under: the writer it names when a device re-sends a
/// field another device wrote (to a server restored from a backup), otherwise the sending
/// device's own. [`check_push`](super::check_push) has checked the named node.
fn writer_node(change: &Change, sender: NodeId) -> NodeId {
    change.node.as_deref().and_then(NodeId::from_standard_base64).unwrap_or(sender)
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
    /// The changes it applied, by index, in seq order.
    applied: Vec<usize>,
    /// The view with the pass's writes.
    view: View,
}

/// Runs the push algorithm of docs/sync.md section 4 inside one write transaction. The body
/// must have passed [`check_push`](super::check_push).
///
/// A known batch id replays its stored response, unless it was stored with the digest of other
/// changes ([`request_digest`]): that is 422 `idempotency_key_reused`. A new change under a
/// sequence number already applied from this client refuses the batch with 409 `seq_reused`
/// ([`Error::SeqReused`]); nothing of a refused batch is applied.
///
/// Changes are merged one field at a time, in memory over what the batch read of storage, and
/// then every row the batch wrote to is checked whole, as the device's write path checks it
/// ([`furrow_contract::validate::check_record`] on the stored row with the batch's changes laid
/// over it, server-only fields left out). A row that fails has none of its changes stored: the
/// batch is merged again without that row's changes, each of them answered
/// `rejected/invalid_record` with the failing fields in both languages. Refusing a row can make
/// another one fail (a member of a new household that was refused), so this repeats until every
/// written row passes; each round refuses at least one more row, so it ends. Only then is
/// anything written, with sequence numbers taken at once for the applied changes, so no number
/// is lost.
///
/// A listing that reaches the server submitted with a submission key it has not seen is
/// recorded as a submission, once per key, and its server-only `moderation_status` becomes
/// `pending`, written with the server's clock (see [`crate::platform::record_submissions`]).
pub fn push(tx: &mut Tx<'_>, caller: &Caller, clock: &ServerClock, request: &PushRequest, now: i64) -> Result<PushOutcome> {
    let (owner, stored) = tx.client_and_batch(&request.client_id, &request.batch_id)?;
    if let Some((user_id, _)) = owner {
        if user_id != caller.user_id {
            return Err(Error::forbidden("this client id is registered to another account"));
        }
    }
    let digest = request_digest(request)?;
    if let Some(stored) = stored {
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
    let node = sender_node(&request.client_id)?;
    let last_applied = owner.map(|(_, seq)| seq).unwrap_or(0);
    let loaded = View::load(tx, request)?;
    if let Some(change) = reused_seq(tx, &loaded, request, last_applied, node)? {
        return Err(Error::SeqReused {
            message: format!(
                "change {} reuses seq {}, which this server already applied from this device for another change (was the device's data restored from an old copy?); renumber unsent changes above last_applied_seq {last_applied} and send them under a new batch id",
                change.change_id, change.seq
            ),
            last_applied_seq: last_applied,
        });
    }
    let context = MergeContext { caller, node };
    let mut refused = Refusals::default();
    let pass = loop {
        let mut pass = merge_batch(tx, &context, request, last_applied, &refused, loaded.clone())?;
        let failures = check_rows(tx, caller, &mut pass)?;
        if failures.is_empty() {
            break pass;
        }
        for (index, (change, outcome)) in request.changes.iter().zip(&pass.results).enumerate() {
            let key = (change.tbl.clone(), change.row_id.clone());
            if failures.contains_key(&key) && outcome.status != "applied" {
                refused.kept.insert(index, outcome.clone());
            }
        }
        refused.rows.extend(failures);
    };
    store_pass(tx, caller, request, &pass, now)?;
    grant_photo_blobs(tx, caller, &pass, now)?;
    let listings: Vec<String> =
        pass.written.iter().filter(|(tbl, _)| tbl == schema::LISTINGS.name).map(|(_, row_id)| row_id.clone()).collect();
    crate::platform::record_submissions(tx, clock, caller, &request.client_id, &listings, now)?;
    let Pass { results, max_hlc, greatest_seq, .. } = pass;
    tx.put_client(&request.client_id, caller.user_id, greatest_seq, now)?;
    let response =
        PushResponse { batch_id: request.batch_id.clone(), last_applied_seq: greatest_seq, server_time: now, results };
    let body = serde_json::to_string(&response).map_err(Error::Encoding)?;
    tx.put_batch_with_digest(&request.client_id, &request.batch_id, &digest, &body, now)?;
    Ok(PushOutcome { body, replayed: false, max_hlc })
}

/// Stores what a pass applied: sequence numbers for its changes in seq order (taken at once),
/// each written field's last version, each written row's index entry and the change log, one
/// statement each.
fn store_pass(tx: &mut Tx<'_>, caller: &Caller, request: &PushRequest, pass: &Pass, now: i64) -> Result<()> {
    if pass.applied.is_empty() {
        return Ok(());
    }
    let first = tx.take_seqs(pass.applied.len() as i64)?;
    let actor = caller.actor();
    let mut fields: BTreeMap<(&str, &str, &str), StoredField> = BTreeMap::new();
    let mut rows: BTreeMap<(&str, &str), RowMeta> = BTreeMap::new();
    let mut log = Vec::with_capacity(pass.applied.len());
    for (offset, &index) in pass.applied.iter().enumerate() {
        let change = &request.changes[index];
        let seq = first + offset as i64;
        let (tbl, row_id, field) = (change.tbl.as_str(), change.row_id.as_str(), change.field.as_str());
        let mut stored = pass.view.field(tbl, row_id, field).cloned().ok_or(Error::MissingRow("a merged field"))?;
        // The view holds the field's last version; an earlier change to the same field keeps its
        // own number in the change log only.
        stored.server_seq = seq;
        stored.actor = actor.clone();
        fields.insert((tbl, row_id, field), stored);
        let meta = rows.entry((tbl, row_id)).or_insert_with(|| RowMeta { scope_id: String::new(), deleted: false, sv: seq });
        meta.sv = seq;
        log.push(ChangeLogEntry { server_seq: seq, change_id: &change.change_id, client_id: &request.client_id, tbl, row_id, field, created_at: now });
    }
    let mut view = pass.view.clone();
    for ((tbl, row_id), meta) in rows.iter_mut() {
        let stored = view.row(tx, tbl, row_id)?.ok_or(Error::MissingRow("a merged row"))?;
        meta.scope_id = stored.scope_id;
        meta.deleted = stored.deleted;
    }
    let fields: Vec<(&str, &str, &str, &StoredField)> =
        fields.iter().map(|((tbl, row_id, field), stored)| (*tbl, *row_id, *field, stored)).collect();
    tx.put_fields(&fields)?;
    let rows: Vec<(&str, &str, &RowMeta)> = rows.iter().map(|((tbl, row_id), meta)| (*tbl, *row_id, meta)).collect();
    tx.put_rows(&rows)?;
    tx.log_changes(&log)
}

/// Checks every live row a pass wrote whole, over the pass's view (the references it names
/// looked up at once); returns those that fail, with their errors.
fn check_rows(tx: &mut Tx<'_>, caller: &Caller, pass: &mut Pass) -> Result<RefusedRows> {
    let mut records = Vec::new();
    let mut named = Vec::new();
    for (tbl, row_id) in &pass.written {
        let Some(table) = schema::table(tbl) else { continue };
        match pass.view.row(tx, tbl, row_id)? {
            Some(meta) if !meta.deleted => {}
            // A tombstone is not checked: deleting is always allowed where the merge allowed it.
            _ => continue,
        }
        let record = record_of(table, pass.view.fields(tbl, row_id).into_iter().flatten());
        named.extend(state::references(table, |name| record.get(name)));
        records.push((tbl, row_id, table, record));
    }
    pass.view.fetch(tx, named)?;
    let mut failures = RefusedRows::new();
    let context = ViewContext::new(&mut pass.view, tx, &caller.scopes);
    for (tbl, row_id, table, record) in records {
        let errors = record_errors(table, &record, &context);
        if !errors.is_empty() {
            failures.insert((tbl.clone(), row_id.clone()), errors);
        }
    }
    context.finish()?;
    Ok(failures)
}

/// The photos a push wrote make the blobs they name (image and thumbnail) readable in the
/// photo's village, when the pusher could already read them (uploaded them, or they are readable
/// in one of the pusher's villages). A photo naming a hash learnt elsewhere is stored like any
/// other, so the answer reveals nothing, but grants nothing: its blob stays unreadable there
/// until someone in that village uploads the bytes.
fn grant_photo_blobs(tx: &mut Tx<'_>, caller: &Caller, pass: &Pass, now: i64) -> Result<()> {
    let mut view = pass.view.clone();
    for (tbl, row_id) in pass.written.iter().filter(|(tbl, _)| tbl == schema::PHOTOS.name) {
        let Some(row) = view.row(tx, tbl, row_id)?.filter(|row| !row.deleted) else { continue };
        for field in ["sha256", "thumb_sha256"] {
            let named = view.field(tbl, row_id, field).and_then(|stored| stored.value.as_str().map(str::to_owned));
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
    let bytes = serde_json::to_vec(&request.changes).map_err(Error::Encoding)?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// The first change of a batch that re-uses a sequence number the server has already applied
/// from this client for a change it does not hold: its change id is not in the change log, and
/// the stored field's stamp is neither its own nor newer. Answering such a change `superseded`
/// would hand the device a value older than its own edit as the winner, and the change would be
/// lost. A re-send of an old change whose stored answer has expired is never one: its stamp is
/// stored, or a newer one superseded it, or its id is in the log. Changes come in increasing seq,
/// so only the batch's head is looked at, and the log is asked about all its doubtful changes at
/// once.
fn reused_seq<'r>(
    tx: &mut Tx<'_>,
    view: &View,
    request: &'r PushRequest,
    last_applied: i64,
    sender: NodeId,
) -> Result<Option<&'r Change>> {
    let doubtful: Vec<&Change> = request
        .changes
        .iter()
        .take_while(|change| change.seq <= last_applied)
        .filter(|change| {
            let stamp = Stamp { hlc: change.hlc, node: writer_node(change, sender) };
            !view.field(&change.tbl, &change.row_id, &change.field).is_some_and(|stored| stored_stamp(stored) >= stamp)
        })
        .collect();
    if doubtful.is_empty() {
        return Ok(None);
    }
    let asked: Vec<(&str, &str, &str, &str)> = doubtful
        .iter()
        .map(|change| (change.tbl.as_str(), change.row_id.as_str(), change.field.as_str(), change.change_id.as_str()))
        .collect();
    let logged: BTreeSet<String> = tx.changes_logged(&asked)?.into_iter().collect();
    Ok(doubtful.into_iter().find(|change| !logged.contains(&change.change_id)))
}

/// One pass over a batch's changes in seq order, in memory over `view`; the changes of
/// `refused` rows are answered `rejected/invalid_record` without being merged.
fn merge_batch(
    tx: &mut Tx<'_>,
    context: &MergeContext<'_>,
    request: &PushRequest,
    last_applied: i64,
    refused: &Refusals,
    view: View,
) -> Result<Pass> {
    let mut pass = Pass {
        results: Vec::with_capacity(request.changes.len()),
        max_hlc: 0,
        greatest_seq: last_applied,
        written: BTreeSet::new(),
        applied: Vec::new(),
        view,
    };
    for (index, change) in request.changes.iter().enumerate() {
        let key = (change.tbl.clone(), change.row_id.clone());
        let outcome = if change.seq <= last_applied {
            // Already applied in an earlier batch whose stored response has expired: report what
            // the server holds without writing anything.
            already_applied(&pass.view, change, writer_node(change, context.node))
        } else if let Some(errors) = refused.rows.get(&key) {
            match refused.kept.get(&index) {
                Some(kept) => kept.clone(),
                None => {
                    let stored = pass.view.field(&change.tbl, &change.row_id, &change.field);
                    rejected(change, INVALID_RECORD, record_message(errors), stored)
                }
            }
        } else {
            let (outcome, wrote) = merge_field(tx, &mut pass.view, context, change)?;
            if wrote {
                pass.written.insert(key);
                pass.applied.push(index);
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

fn already_applied(view: &View, change: &Change, node: NodeId) -> ChangeResult {
    match view.field(&change.tbl, &change.row_id, &change.field) {
        Some(stored) if stored_stamp(stored) == (Stamp { hlc: change.hlc, node }) => result(change, "applied"),
        Some(stored) => superseded(change, stored),
        // Processed before without leaving a value: it was refused then, and is not judged again.
        None => rejected(change, "invalid", "this change was processed in an earlier batch and left no value", None),
    }
}

struct MergeContext<'a> {
    caller: &'a Caller,
    node: NodeId,
}

/// Merges one change the caller may make: scope and permission are checked here, and what
/// becomes of the change is [`decide`]'s verdict on the stored stamp and the field's [`Rule`].
/// Returns the change's result and whether it wrote the field (into the view).
fn merge_field(tx: &mut Tx<'_>, view: &mut View, context: &MergeContext<'_>, change: &Change) -> Result<(ChangeResult, bool)> {
    let Some(table) = schema::table(&change.tbl) else {
        return Ok((rejected(change, "invalid", format!("there is no synced table {:?}", change.tbl), None), false));
    };
    let rule = Rule::of(table, &change.field);
    let node = writer_node(change, context.node);
    let incoming = Stamp { hlc: change.hlc, node };
    // The platform's fields are refused whatever is stored, before the row is looked at.
    if decide(None, incoming, rule, change.base_hlc) == Verdict::RejectedServerOnly {
        return Ok((refused(table, change, Verdict::RejectedServerOnly, None), false));
    }
    let row = view.row(tx, table.name, &change.row_id)?;
    let caller = context.caller;
    // Scopes come from the token alone: the stored row's scope decides who may touch it, and a
    // new scope must be one of the caller's too.
    let foreign = row.as_ref().is_some_and(|row| !caller.may_use(&row.scope_id));
    if change.field == SCOPE_FIELD {
        let scope = change.value.as_str().unwrap_or_default();
        if !caller.may_use(scope) {
            return Ok((rejected(change, "forbidden", format!("you are not assigned to village {scope}"), None), false));
        }
        // A new scope the caller may use, for an id taken by a row of another village: the row
        // can be neither created nor moved, and the answer is the one every change gets that
        // names an id the caller cannot use, so it does not tell that the id exists elsewhere.
        if foreign {
            return Ok((rejected(change, "invalid", UNKNOWN_ROW, None), false));
        }
    } else if row.is_none() || foreign {
        // A row of another village is answered exactly like a row the server does not know, so
        // the answer does not tell whether the id exists elsewhere.
        return Ok((rejected(change, "invalid", UNKNOWN_ROW, None), false));
    }
    // A reference to a row of a village the caller is not assigned to is not refused here: such
    // a row counts as missing, and the whole-record check refuses the record with `not_found`
    // exactly as for a reference to nothing (`ViewContext`), so the answer does not tell whether
    // the id exists elsewhere.
    if let Some(problem) = parent_scope_problem(tx, view, caller, table, change, row.as_ref())? {
        return Ok((problem, false));
    }
    let stored = view.field(table.name, &change.row_id, &change.field);
    let verdict = decide(stored.map(stored_stamp), incoming, rule, change.base_hlc);
    if verdict != Verdict::Apply {
        return Ok((refused(table, change, verdict, stored), false));
    }
    let value = if change.field == DELETED_FIELD {
        Value::from(i64::from(deleted_flag(&change.value).unwrap_or(false)))
    } else {
        change.value.clone()
    };
    let written = StoredField { value, hlc: change.hlc, node: node.0.to_vec(), server_seq: 0, actor: caller.actor() };
    view.write(table.name, &change.row_id, &change.field, written);
    Ok((result(change, "applied"), true))
}

/// The answer to a change [`decide`] did not let through, with the server's message and, where
/// the device needs it, the stored value.
fn refused(table: &TableSpec, change: &Change, verdict: Verdict, stored: Option<&StoredField>) -> ChangeResult {
    match verdict {
        // The same change delivered again: already in place.
        Verdict::Apply | Verdict::AlreadyApplied => result(change, "applied"),
        Verdict::Superseded => ChangeResult { current: stored.map(current), ..result(change, "superseded") },
        Verdict::RejectedStale => {
            rejected(change, "stale_base", "the value was changed on the server since you edited it", stored)
        }
        Verdict::RejectedServerOnly => {
            rejected(change, "server_only", format!("{}.{} is written by the platform only", table.name, change.field), None)
        }
        Verdict::RejectedEdit => {
            rejected(change, "invalid", format!("{} records cannot be edited; add a correction instead", table.name), stored)
        }
        Verdict::RejectedDelete => rejected(change, "invalid", format!("{} records cannot be deleted", table.name), None),
    }
}

/// What a change naming an id the caller cannot use is answered: a change other than `scope_id`
/// to a row the server does not know or that is in another village, and a `scope_id` change
/// (a create) for an id taken by a row of another village. One answer for all, so it never
/// tells whether the id exists elsewhere.
const UNKNOWN_ROW: &str =
    "there is no record with this id in your villages; a new record starts with its scope_id change, under an id not used before";

/// A row takes its village from its parent (a household from its village, a listing from its
/// product): pointing a row at a parent in another village than the row's own would file it
/// under one village while it belongs to another, so it is refused. A parent the server does not
/// know yet (pushed in a later batch) is accepted.
fn parent_scope_problem(
    tx: &mut Tx<'_>,
    view: &mut View,
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
        ScopeRule::FromOwner { kind_field, id_field } if id_field == change.field => view
            .field(table.name, &change.row_id, kind_field)
            .and_then(|stored| stored.value.as_str().and_then(schema::photo_owner_table).map(str::to_owned)),
        _ => None,
    };
    let (Some(parent_table), Some(parent_id)) = (parent_table, change.value.as_str()) else { return Ok(None) };
    match view.row(tx, &parent_table, parent_id)? {
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

#[cfg(test)]
mod tests;
