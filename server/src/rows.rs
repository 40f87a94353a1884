//! The server's rows, shared by push, pull and the platform's writes: the pseudo-fields every
//! synced row has, the code a refused value is answered with, the one way a field is written
//! (with the next server sequence number, keeping the row's index entry), the stamp of a stored
//! field, and the server's own clock.

use std::sync::Mutex;

use furrow_contract::hlc::{self, Clock, NodeId, Stamp};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::store::{RowMeta, StoredField, Tx};

/// The pseudo-field carrying a row's scope.
pub const SCOPE_FIELD: &str = "scope_id";
/// The pseudo-field carrying a row's tombstone flag.
pub const DELETED_FIELD: &str = "deleted";

/// A pushed tombstone flag as a boolean: `0`, `1`, `false` or `true`; `None` for anything else.
pub fn deleted_flag(value: &Value) -> Option<bool> {
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

/// The code of a request refused for a value (a pushed change, a platform write): `control_character` when the value holds one,
/// `invalid_value` otherwise.
pub fn value_error_code(failure_code: &str) -> &'static str {
    if failure_code == "control_character" {
        "control_character"
    } else {
        "invalid_value"
    }
}

/// The stamp of a stored field, as the merge compares it. The server stores 16-byte nodes only
/// (a device's client id, the node a re-sent change names, or its own clock's); anything else
/// reads as the all-zero node.
pub fn stored_stamp(stored: &StoredField) -> Stamp {
    Stamp { hlc: stored.hlc, node: NodeId::from_slice(&stored.node).unwrap_or(NodeId([0; 16])) }
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

/// The server's own clock and node, used for platform writes.
pub struct ServerClock {
    node: NodeId,
    clock: Mutex<Clock>,
}

impl ServerClock {
    /// A clock with a fresh random node id (each server instance is its own writer).
    pub fn new() -> Self {
        Self { node: NodeId::random(), clock: Mutex::new(Clock { last: 0, offset_ms: 0 }) }
    }

    /// The node id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Takes note of an HLC accepted from a device, so later platform writes order after it.
    pub fn observe(&self, remote: i64) {
        if let Ok(mut clock) = self.clock.lock() {
            clock.observe(remote);
        }
    }

    /// The next HLC, greater than `at_least`.
    pub fn tick_after(&self, at_least: i64) -> Result<i64> {
        let mut clock = self.clock.lock().map_err(|_| Error::Poisoned("clock"))?;
        clock.observe(at_least);
        Ok(clock.tick(hlc::wall_ms()))
    }
}

impl Default for ServerClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_is_zero_or_one() {
        assert_eq!(deleted_flag(&Value::from(1)), Some(true));
        assert_eq!(deleted_flag(&Value::from(0)), Some(false));
        assert_eq!(deleted_flag(&Value::Bool(true)), Some(true));
        assert_eq!(deleted_flag(&Value::from(2)), None);
        assert_eq!(deleted_flag(&Value::from("1")), None);
    }

    #[test]
    fn a_stored_field_has_the_stamp_it_was_written_with() {
        let node = NodeId([9; 16]);
        let stored = StoredField { value: Value::Null, hlc: 42, node: node.0.to_vec(), server_seq: 1, actor: "platform".into() };
        assert_eq!(stored_stamp(&stored), Stamp { hlc: 42, node });
    }
}
