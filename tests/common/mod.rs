//! Fixtures shared by the core's integration tests: a store in its own temporary directory (a
//! real SQLite file), a few records to hang others on, fields arriving as a sync brings them,
//! and a fingerprint of everything stored so a test can prove that a refused write left the
//! database unchanged.

#![allow(dead_code)]

use std::path::PathBuf;

use furrow::codes::{HouseholdAttribute, ListingStatus, Platform, PovertyStatus, ProductCategory, RelationToHead, SaleUnit, Sex, Storage};
use furrow::domain::household::{self, Household, Member};
use furrow::domain::listing::{self, Listing, Product};
use furrow::domain::village::{self, Village};
use furrow::hlc::{pack, wall_ms, NodeId, Stamp};
use furrow::record::RemoteField;
use furrow::schema::TableSpec;
use furrow::{OpenOptions, Store};
use sha2::{Digest, Sha256};

/// A store in a temporary directory that lives as long as the fixture.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: Store,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = Store::open(&OpenOptions::file(dir.path().join("furrow.db"))).expect("the store opens");
        Self { dir, store }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("furrow.db")
    }

    /// A hash of every row of every table (domain, clocks, outbox, state), read through a second
    /// connection so nothing the store caches can hide a write.
    pub fn fingerprint(&self) -> String {
        let conn = rusqlite::Connection::open(self.path()).expect("a second connection");
        let mut tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'household_search%' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        tables.push("household_search_doc".into());
        let mut hasher = Sha256::new();
        for table in tables {
            let mut statement = conn.prepare(&format!("SELECT * FROM {table} ORDER BY 1")).unwrap();
            let columns = statement.column_count();
            let mut rows = statement.query([]).unwrap();
            hasher.update(table.as_bytes());
            while let Some(row) = rows.next().unwrap() {
                for index in 0..columns {
                    let value: rusqlite::types::Value = row.get(index).unwrap();
                    hasher.update(format!("{value:?}|").as_bytes());
                }
            }
        }
        hex::encode(hasher.finalize())
    }

    /// Counts rows of a table through a second connection.
    pub fn count(&self, sql: &str) -> i64 {
        let conn = rusqlite::Connection::open(self.path()).unwrap();
        conn.query_row(sql, [], |row| row.get(0)).unwrap()
    }

    pub fn village(&mut self, code: &str, name: &str) -> String {
        let village = Village { code: Some(code.into()), name: Some(name.into()), ..Village::default() };
        village::save(&mut self.store, &village).expect("village saved").id.unwrap()
    }

    pub fn household(&mut self, village_id: &str, head: &str) -> String {
        household::save(&mut self.store, &household_draft(village_id, head)).expect("household saved").id.unwrap()
    }

    pub fn member(&mut self, household_id: &str, name: &str) -> String {
        let member = Member {
            household_id: Some(household_id.into()),
            name: Some(name.into()),
            sex: Some(Sex::Female),
            relation: Some(RelationToHead::Other),
            ..Member::default()
        };
        household::save_member(&mut self.store, &member).expect("member saved").id.unwrap()
    }

    /// A draft listing of walnuts from 高坡村, a new village, complete but for its photos;
    /// returns its id.
    pub fn draft_listing(&mut self) -> String {
        let village = self.village("522633101001", "高坡村");
        let product = listing::save_product(
            &mut self.store,
            &Product { village_id: Some(village), name: Some("薄皮核桃".into()), category: Some(ProductCategory::Nuts), ..Product::default() },
        )
        .unwrap();
        let draft = listing::save_listing(
            &mut self.store,
            &Listing {
                product_id: product.id,
                platform: Some(Platform::Taobao),
                title: Some("高坡村薄皮核桃 500g".into()),
                description: Some("高坡村农户种植的薄皮核桃，当年新货，皮薄易剥，果仁饱满香脆。".repeat(2)),
                category: Some(ProductCategory::Nuts),
                price_fen: Some(3_990),
                unit: Some(SaleUnit::Jin),
                stock_qty: Some(200),
                shelf_life_days: Some(180),
                storage: Some(Storage::CoolDry),
                production_date: Some("2024-10-01".into()),
                status: Some(ListingStatus::Draft),
                ..Listing::default()
            },
        )
        .unwrap();
        draft.id.unwrap()
    }

    /// Applies fields of a row of `table` as a sync brings them, all under `stamp`.
    pub fn apply_remote(&mut self, table: &'static TableSpec, id: &str, stamp: Stamp, fields: &[(&str, serde_json::Value)]) {
        let fields: Vec<RemoteField> =
            fields.iter().map(|(field, value)| RemoteField { field: (*field).into(), value: value.clone(), stamp }).collect();
        self.store.write(|writer| writer.apply_remote(table, id, &fields)).unwrap();
    }
}

/// The stamp of another device, `node` repeated, `offset_ms` after this machine's clock.
pub fn remote_stamp(offset_ms: i64, node: u8) -> Stamp {
    Stamp { hlc: pack(wall_ms() + offset_ms, 0), node: NodeId([node; 16]) }
}

pub fn household_draft(village_id: &str, head: &str) -> Household {
    Household {
        village_id: Some(village_id.into()),
        head_name: Some(head.into()),
        register_no: Some("5226330001".into()),
        phone: Some("13800138000".into()),
        attribute: Some(HouseholdAttribute::General),
        poverty_status: Some(PovertyStatus::NotExited),
        ..Household::default()
    }
}
