//! Test fixtures of the server's tests: the one harness of `furrow_server::testing` (both
//! backends, each test in its own SQLite data directory or PostgreSQL database, and the real
//! server on 127.0.0.1:0), and the wire-level pieces of a device the tests push as.

#![allow(dead_code)]

use furrow_contract::hlc::{self, NodeId};
use furrow_contract::wire::{Change, PushRequest, SCHEMA_VERSION};
use furrow_server::auth::Caller;
use furrow_server::platform;
use serde_json::Value;

#[allow(unused_imports)]
pub use furrow_server::testing::{postgres_url, seed, Backend, TestServer, TestStorage, ADMIN_TOKEN, PASSWORD, VILLAGE_A, VILLAGE_B};

/// The caller of an assistant assigned to the given villages.
pub fn caller(user_id: i64, scopes: &[&str]) -> Caller {
    let mut scopes: Vec<String> = scopes.iter().map(|scope| (*scope).to_owned()).collect();
    scopes.sort();
    Caller { user_id, scopes, session_id: "test-session".into(), client_id: None }
}

/// An HLC at the current time plus `counter`.
pub fn now_hlc(counter: i64) -> i64 {
    hlc::pack(hlc::wall_ms(), counter)
}

/// A device: a node id and an outbox sequence.
pub struct Device {
    /// The node.
    pub node: NodeId,
    /// The next seq.
    pub seq: i64,
}

impl Device {
    /// A new device.
    pub fn new() -> Self {
        Self { node: NodeId::random(), seq: 0 }
    }

    /// The client id.
    pub fn id(&self) -> String {
        self.node.to_uuid_string()
    }

    /// A change with the next seq.
    pub fn change(&mut self, tbl: &str, row_id: &str, field: &str, value: Value, hlc: i64, base_hlc: Option<i64>) -> Change {
        self.seq += 1;
        Change {
            change_id: uuid::Uuid::new_v4().to_string(),
            seq: self.seq,
            tbl: tbl.into(),
            row_id: row_id.into(),
            field: field.into(),
            value,
            hlc,
            base_hlc,
            node: None,
        }
    }

    /// The changes creating a household in `village` (scope first, as the device sends them).
    pub fn household(&mut self, village: &str, row_id: &str, head: &str, hlc: i64) -> Vec<Change> {
        let village_row = platform::village_row_id(village);
        vec![
            self.change("households", row_id, "scope_id", Value::from(village), hlc, None),
            self.change("households", row_id, "village_id", Value::from(village_row), hlc, None),
            self.change("households", row_id, "head_name", Value::from(head), hlc, None),
            self.change("households", row_id, "attribute", Value::from("general"), hlc, None),
            self.change("households", row_id, "poverty_status", Value::from("non_poor"), hlc, None),
        ]
    }

    /// The changes creating a member of a household (scope first).
    pub fn member(&mut self, village: &str, row_id: &str, household: &str, name: &str, hlc: i64) -> Vec<Change> {
        vec![
            self.change("members", row_id, "scope_id", Value::from(village), hlc, None),
            self.change("members", row_id, "household_id", Value::from(household), hlc, None),
            self.change("members", row_id, "name", Value::from(name), hlc, None),
        ]
    }

    /// The changes creating a product of a village (scope first).
    pub fn product(&mut self, village: &str, row_id: &str, hlc: i64) -> Vec<Change> {
        let village_row = platform::village_row_id(village);
        vec![
            self.change("products", row_id, "scope_id", Value::from(village), hlc, None),
            self.change("products", row_id, "village_id", Value::from(village_row), hlc, None),
            self.change("products", row_id, "name", Value::from("核桃"), hlc, None),
            self.change("products", row_id, "category", Value::from("nuts"), hlc, None),
        ]
    }

    /// The changes creating a draft listing of a product (scope first).
    pub fn listing(&mut self, village: &str, row_id: &str, product: &str, hlc: i64) -> Vec<Change> {
        let fields = [
            ("scope_id", Value::from(village)),
            ("product_id", Value::from(product)),
            ("platform", Value::from("taobao")),
            ("title", Value::from("高山核桃 500g")),
            ("category", Value::from("nuts")),
            ("price_fen", Value::from(1500)),
            ("unit", Value::from("jin")),
            ("status", Value::from("draft")),
        ];
        fields.into_iter().map(|(field, value)| self.change("listings", row_id, field, value, hlc, None)).collect()
    }

    /// The changes creating an income record of a household (scope first).
    pub fn income(&mut self, village: &str, row_id: &str, household: &str, amount_fen: i64, hlc: i64) -> Vec<Change> {
        let fields = [
            ("scope_id", Value::from(village)),
            ("household_id", Value::from(household)),
            ("year", Value::from(2025)),
            ("category", Value::from("wage")),
            ("amount_fen", Value::from(amount_fen)),
            ("recorded_on", Value::from("2025-12-01")),
        ];
        fields.into_iter().map(|(field, value)| self.change("income_records", row_id, field, value, hlc, None)).collect()
    }

    /// A push request creating a household.
    pub fn household_batch(&mut self, village: &str, row_id: &str, head: &str, hlc: i64) -> PushRequest {
        let changes = self.household(village, row_id, head, hlc);
        self.batch(changes)
    }

    /// A push request of these changes.
    pub fn batch(&self, changes: Vec<Change>) -> PushRequest {
        PushRequest { client_id: self.id(), batch_id: uuid::Uuid::new_v4().to_string(), schema_version: SCHEMA_VERSION, changes }
    }
}
