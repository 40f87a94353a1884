//! Pull pages (docs/sync.md section 4) and their opaque cursor. Which fields a row carries is
//! the contract's page rule ([`page_fields`]); this module pages the server's rows by their
//! latest sequence number and answers a cursor that no longer fits with a reset.

use std::collections::BTreeMap;

use base64::Engine;
use furrow_contract::pull::{page_fields, sent_whole, Positions};
use furrow_contract::wire::{PullResponse, PulledRow, Reset};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{check_schema_version, node_base64, HISTORY_PRUNED, MAX_PULL_LIMIT};
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::rows::DELETED_FIELD;
use crate::store::{ChangedRow, Tx};

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

/// The reset reason of a pull whose cursor is of the first format, which did not carry the
/// point up to which its device is complete (see [`Cursor`]).
pub const CURSOR_FORMAT: &str = "cursor_format";

/// One pull page (docs/sync.md section 4). Without a cursor the page starts a snapshot: every
/// row in scope, each with all its fields, in server order; later pages are incremental. Rows
/// are paged by their latest server sequence number, which is unique per row, so a row changed
/// while a client pages simply comes again later and no change is ever skipped. Which fields a
/// row carries is [`page_fields`]: every field changed after the point where the pull began, so
/// the union of the pages is always complete, whatever the page size.
pub fn pull(tx: &mut Tx<'_>, caller: &Caller, cursor: Option<&str>, limit: i64, schema_version: i64, now: i64) -> Result<PullResponse> {
    check_schema_version(schema_version)?;
    let limit = limit.clamp(1, MAX_PULL_LIMIT);
    let hash = scope_hash(&caller.scopes);
    // The epoch, the counter and the horizon in one query, and the page in one more: a pull
    // page costs two statements whatever its size.
    let (epoch, current_seq, horizon) = tx.history()?;
    let decoded = cursor.filter(|text| !text.is_empty()).map(Cursor::decode).transpose()?;
    let reset = |reason: &str| (Positions::SNAPSHOT, Some(Reset { reason: reason.into() }));
    let (start, reset) = match decoded {
        None => (Positions::SNAPSHOT, None),
        // A first-format cursor cannot say how complete its device is: the server that issued
        // it sent rows first met on a later page without the fields changed earlier in the same
        // pull. A fresh snapshot both continues safely and repairs any row received partially.
        Some(cursor) if cursor.epoch.is_none() => reset(CURSOR_FORMAT),
        Some(cursor) if cursor.epoch.as_ref().is_some_and(|other| *other != epoch) => reset(SERVER_RESTORED),
        Some(cursor) if cursor.seq > current_seq => reset(SERVER_RESTORED),
        Some(cursor) if cursor.scope_hash != hash => reset("scope_changed"),
        Some(cursor) if cursor.schema_version != schema_version => reset("schema"),
        // Tombstones the client has not seen may have been purged: it starts again from a
        // snapshot, and keeps and pushes its outbox as after any reset.
        Some(cursor) if cursor.complete < horizon => reset(HISTORY_PRUNED),
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
        fields.entry(DELETED_FIELD.to_owned()).or_insert_with(|| (Value::from(0), never.hlc, never.node.to_base64()));
    }
    PulledRow { tbl: row.tbl, id: row.row_id, scope_id: row.meta.scope_id, sv: row.meta.sv, fields }
}

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
}
