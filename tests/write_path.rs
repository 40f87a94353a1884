//! The one write path: for every synced table, every create, edit and delete leaves each stored
//! value with a field clock and an outbox entry carrying exactly that value, in one transaction.

mod common;

use std::collections::BTreeMap;

use common::Fixture;
use furrow::record::{RemoteField, Row};
use furrow::schema::{self, FieldType, TableSpec};
use furrow::Error;
use rusqlite::Connection;
use serde_json::{json, Map, Value};

/// Every (table, row, field) → value the outbox would deliver, the latest per field.
fn outbox(conn: &Connection) -> BTreeMap<(String, String, String), Value> {
    let mut statement = conn.prepare("SELECT tbl, row_id, field, value FROM sync_outbox ORDER BY seq").unwrap();
    let rows = statement
        .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?, row.get::<_, String>(3)?)))
        .unwrap();
    let mut latest = BTreeMap::new();
    for row in rows {
        let (table, id, field, value) = row.unwrap();
        latest.insert((table, id, field), serde_json::from_str(&value).unwrap());
    }
    latest
}

/// Checks that every stored value of every synced table has a field clock and that the outbox
/// holds exactly that value: nothing was written around the write path.
fn assert_nothing_escaped(fixture: &Fixture) {
    let conn = Connection::open(fixture.path()).unwrap();
    let queued = outbox(&conn);
    for table in schema::TABLES {
        let mut statement = conn.prepare(&format!("SELECT * FROM {}", table.name)).unwrap();
        let rows: Vec<Row> = statement.query_map([], |row| furrow::record::row_from_sql(table, row)).unwrap().map(Result::unwrap).collect();
        for row in rows {
            let mut expected: Vec<(String, Value)> = vec![("scope_id".into(), Value::String(row.scope_id.clone()))];
            if row.deleted {
                expected.push(("deleted".into(), json!(1)));
            }
            for (name, value) in &row.fields {
                if !value.is_null() {
                    expected.push((name.clone(), value.clone()));
                }
            }
            for (field, value) in expected {
                let clock: i64 = conn
                    .query_row(
                        "SELECT count(*) FROM sync_field_clock WHERE tbl = ?1 AND row_id = ?2 AND field = ?3",
                        [table.name, &row.id, &field],
                        |row| row.get(0),
                    )
                    .unwrap();
                assert_eq!(clock, 1, "{}.{} of {} has no field clock", table.name, field, row.id);
                let key = (table.name.to_owned(), row.id.clone(), field.clone());
                let queued_value = queued.get(&key).unwrap_or_else(|| panic!("{}.{} of {} is not in the outbox", table.name, field, row.id));
                let matches = match (&value, queued_value) {
                    (Value::Number(stored), Value::Number(sent)) => stored.as_f64() == sent.as_f64(),
                    _ => value == *queued_value,
                };
                assert!(matches, "{}.{}: stored {value} but the outbox has {queued_value}", table.name, field);
            }
        }
    }
}

/// A valid value for a field of the given type, different for different `salt`s where the type
/// allows it.
fn sample(ty: &FieldType, salt: i64, refs: &BTreeMap<&str, String>) -> Option<Value> {
    Some(match ty {
        FieldType::Text { .. } => json!(format!("样例{salt}")),
        FieldType::Int { min, max } => json!((min + salt).min(*max)),
        FieldType::Year => json!(2020 + salt),
        FieldType::Fen => json!(1_000 + salt),
        FieldType::Grams => json!(500 + salt),
        FieldType::Real { min, max } => json!((min.max(0.0) + salt as f64 / 2.0).min(*max)),
        FieldType::Bool => json!(salt % 2 == 0),
        FieldType::Date => json!(format!("2024-06-{:02}", 10 + salt)),
        FieldType::DateTime => json!(format!("2024-06-{:02}T09:00:00+08:00", 1 + salt)),
        FieldType::TimeOfDay => json!(format!("{:02}:30", 8 + salt)),
        FieldType::Phone | FieldType::Telephone => json!(format!("1380013800{}", salt % 10)),
        FieldType::IdCard => json!(id_card(&format!("202406{:02}", 10 + salt))),
        FieldType::AdminCode => json!(format!("52263310100{}", salt % 10)),
        FieldType::Sha256 => json!(format!("{:064x}", salt + 1)),
        FieldType::Enum(def) => json!(def.values[(salt as usize) % def.values.len()].code),
        FieldType::EnumList(def) => json!([def.values[(salt as usize) % def.values.len()].code]),
        FieldType::Ref(table) => json!(refs.get(table)?.clone()),
    })
}

/// A valid identity card number for a birth date `YYYYMMDD` (the same date as `Date` samples).
fn id_card(born: &str) -> String {
    let body = format!("522633{born}001");
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body.bytes().zip(weights).map(|(digit, weight)| u32::from(digit - b'0') * weight).sum();
    format!("{body}{}", "10X98765432".as_bytes()[(sum % 11) as usize] as char)
}

/// A record of `table` with every field set, valid for the domain rules.
fn full_record(table: &TableSpec, salt: i64, refs: &BTreeMap<&str, String>) -> Map<String, Value> {
    let mut record = Map::new();
    for field in table.fields {
        if field.policy == schema::Policy::ServerOnly || field.name == "corrects_id" {
            continue;
        }
        if let Some(value) = sample(&field.ty, salt, refs) {
            record.insert(field.name.to_owned(), value);
        }
    }
    match table.name {
        "income_records" => {
            record.insert("category".into(), json!("operating"));
            record.insert("subcategory".into(), json!("crop"));
            record.insert("period".into(), json!("Y"));
        }
        "households" => {
            record.insert("main_cause".into(), json!("illness"));
            record.insert("secondary_causes".into(), json!(["lack_skills"]));
            record.insert("exit_year".into(), json!(2030));
        }
        "photos" => {
            record.insert("owner_type".into(), json!("household"));
            record.insert("owner_id".into(), json!(refs["households"].clone()));
        }
        "visits" => {
            record.insert("next_visit_date".into(), json!("2024-12-31"));
        }
        "members" => {
            // The sample card number's sequence (001) is odd: its holder is a man.
            record.insert("sex".into(), json!("male"));
        }
        "listings" => {
            record.insert("market_price_fen".into(), json!(99_999));
        }
        _ => {}
    }
    record
}

#[test]
fn no_write_to_any_synced_table_escapes_the_outbox() {
    let mut fixture = Fixture::new();
    let mut refs: BTreeMap<&str, String> = BTreeMap::new();
    let mut covered = Vec::new();
    for table in schema::TABLES {
        if table.platform_only {
            continue;
        }
        let record = full_record(table, 0, &refs);
        let created = fixture.store.write(|writer| writer.save(table, None, record.clone())).unwrap_or_else(|error| panic!("create {}: {error:?}", table.name));
        assert!(created.changed.len() >= 2, "{}: a create queues its fields", table.name);
        assert_nothing_escaped(&fixture);

        // Edit every editable field, twice, and check coalescing: one pending entry per field.
        if !table.append_only {
            for salt in [1, 2] {
                let mut edit = full_record(table, salt, &refs);
                if table.name == "villages" {
                    edit.remove("code");
                }
                fixture.store.write(|writer| writer.save(table, Some(&created.id), edit)).unwrap_or_else(|error| panic!("edit {}: {error:?}", table.name));
                assert_nothing_escaped(&fixture);
            }
            let pending = fixture.count(&format!(
                "SELECT max(n) FROM (SELECT count(*) AS n FROM sync_outbox WHERE tbl = '{}' AND row_id = '{}' GROUP BY field)",
                table.name, created.id
            ));
            assert_eq!(pending, 1, "{}: repeated edits of an unsent field coalesce", table.name);
        } else {
            let edit = json!({"amount_fen": 1}).as_object().unwrap().clone();
            let refused = fixture.store.write(|writer| writer.save(table, Some(&created.id), edit));
            assert!(matches!(refused, Err(Error::NotAllowed { .. })), "{} is append-only", table.name);
        }
        refs.insert(table.name, created.id.clone());
        covered.push(table.name);
    }

    // Deletes are tombstones that travel like any field, children first.
    for table in schema::TABLES.iter().rev() {
        if table.platform_only || table.append_only {
            continue;
        }
        let id = refs[table.name].clone();
        fixture.store.write(|writer| writer.delete(table, &id)).unwrap_or_else(|error| panic!("delete {}: {error:?}", table.name));
        let deleted = fixture.count(&format!("SELECT deleted FROM {} WHERE id = '{id}'", table.name));
        assert_eq!(deleted, 1, "{}: delete keeps a tombstone", table.name);
        assert_nothing_escaped(&fixture);
    }
    let synced: Vec<_> = schema::TABLES.iter().filter(|table| !table.platform_only).map(|table| table.name).collect();
    assert_eq!(covered, synced, "every synced table was exercised");
}

#[test]
fn platform_tables_refuse_device_writes_and_accept_pulled_rows() {
    let mut fixture = Fixture::new();
    let before = fixture.fingerprint();
    for table in schema::TABLES.iter().filter(|table| table.platform_only) {
        let refused = fixture.store.write(|writer| writer.save(table, None, Map::new()));
        assert!(matches!(refused, Err(Error::NotAllowed { .. })), "{}", table.name);
    }
    assert_eq!(fixture.fingerprint(), before);

    let stamp = furrow::hlc::Stamp { hlc: furrow::hlc::pack(1_700_000_000_000, 0), node: furrow::hlc::NodeId([9; 16]) };
    let fields = vec![
        RemoteField { field: "scope_id".into(), value: json!("522633101001"), stamp },
        RemoteField { field: "order_no".into(), value: json!("P-1"), stamp },
    ];
    fixture.store.write(|writer| writer.apply_remote(&schema::SALES, "0190a000-0000-7000-8000-000000000001", &fields)).unwrap();
    assert_eq!(fixture.count("SELECT count(*) FROM sales"), 1);
    assert_eq!(fixture.count("SELECT count(*) FROM sync_outbox"), 0, "pulled rows are never queued back");
}

#[test]
fn a_failed_write_rolls_back_every_part_of_the_transaction() {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    let before = fixture.fingerprint();
    let result = fixture.store.write(|writer| {
        let draft = serde_json::to_value(common::household_draft(&village, "甲")).unwrap();
        let mut changes = draft.as_object().unwrap().clone();
        changes.retain(|name, value| schema::HOUSEHOLDS.field(name).is_some() && !value.is_null());
        writer.save(&schema::HOUSEHOLDS, None, changes.clone())?;
        changes.insert("phone".into(), json!("bad"));
        writer.save(&schema::HOUSEHOLDS, None, changes)
    });
    assert!(result.is_err());
    assert_eq!(fixture.fingerprint(), before, "the first, valid household was rolled back with the second");
}

#[test]
fn an_in_flight_change_is_frozen_and_a_new_edit_queues_beside_it() {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    let household = fixture.household(&village, "甲");
    let conn = Connection::open(fixture.path()).unwrap();
    conn.execute("UPDATE sync_outbox SET batch_id = x'01' WHERE tbl = 'households'", []).unwrap();
    let mut saved = furrow::domain::household::get(&fixture.store, &household).unwrap();
    saved.phone = Some("13900139000".into());
    furrow::domain::household::save(&mut fixture.store, &saved).unwrap();
    let phones: Vec<(Option<Vec<u8>>, String)> = conn
        .prepare("SELECT batch_id, value FROM sync_outbox WHERE tbl = 'households' AND field = 'phone' ORDER BY seq")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(phones, vec![(Some(vec![1]), "\"13800138000\"".to_owned()), (None, "\"13900139000\"".to_owned())]);
    let base: Option<i64> = conn
        .query_row("SELECT base_hlc FROM sync_outbox WHERE field = 'phone' AND batch_id IS NULL", [], |row| row.get(0))
        .unwrap();
    assert!(base.is_some(), "an edit names the version it was made from");
}

#[test]
fn a_pulled_page_inserts_new_rows_whole_and_merges_known_rows_field_by_field() {
    use furrow::domain::household::{self, RosterQuery};
    use furrow::hlc::{pack, wall_ms, NodeId, Stamp};
    use furrow::record::RemoteRow;

    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    let known = fixture.household(&village, "杨老三");
    let mut edit = household::get(&fixture.store, &known).unwrap();
    edit.phone = Some("13800001111".into());
    household::save(&mut fixture.store, &edit).unwrap();
    let queued_before = fixture.count("SELECT count(*) FROM sync_outbox");

    let old = Stamp { hlc: pack(1_700_000_000_000, 0), node: NodeId([7; 16]) };
    let later = Stamp { hlc: pack(wall_ms() + 60_000, 0), node: NodeId([7; 16]) };
    let field = |name: &str, value: Value, stamp: Stamp| RemoteField { field: name.into(), value, stamp };
    let new_household = "0190a000-0000-7000-8000-0000000000a1";
    let new_member = "0190a000-0000-7000-8000-0000000000b1";
    let household_fields = vec![
        field("scope_id", json!("522633101001"), old),
        field("village_id", json!(village), old),
        field("head_name", json!("龙新户"), old),
        field("attribute", json!("general"), old),
        field("poverty_status", json!("not_exited"), old),
        field("group_name", json!("二组"), old),
        field("field_of_a_newer_server", json!("x"), old),
    ];
    let known_fields = vec![field("head_name", json!("杨老四"), later), field("phone", json!("13999999999"), old)];
    let member_fields = vec![
        field("household_id", json!(new_household), old),
        field("name", json!("龙小妹"), old),
        field("sex", json!("female"), old),
        field("relation", json!("daughter"), old),
    ];
    let unknown_only = vec![field("field_of_a_newer_server", json!("x"), old)];
    let rows = [
        RemoteRow { table: &schema::HOUSEHOLDS, id: new_household, scope_id: "522633101001", fields: &household_fields },
        RemoteRow { table: &schema::HOUSEHOLDS, id: &known, scope_id: "522633101001", fields: &known_fields },
        RemoteRow { table: &schema::MEMBERS, id: new_member, scope_id: "522633101001", fields: &member_fields },
        RemoteRow { table: &schema::VISITS, id: "0190a000-0000-7000-8000-0000000000c1", scope_id: "522633101001", fields: &unknown_only },
    ];
    let applied = fixture.store.write(|writer| writer.apply_remote_rows(&rows)).unwrap();
    assert_eq!(applied, 6 + 1 + 4, "every known field of the new rows, and the one newer field of the known row");

    let inserted = household::get(&fixture.store, new_household).unwrap();
    assert_eq!(inserted.head_name.as_deref(), Some("龙新户"));
    assert_eq!(inserted.group_name.as_deref(), Some("二组"));
    let merged = household::get(&fixture.store, &known).unwrap();
    assert_eq!(merged.head_name.as_deref(), Some("杨老四"), "the server's later head name is taken");
    assert_eq!(merged.phone.as_deref(), Some("13800001111"), "the device's later phone is kept");
    assert_eq!(
        fixture.count(&format!("SELECT count(*) FROM members WHERE id = '{new_member}' AND scope_id = '522633101001'")),
        1,
        "a row pulled without its scope field takes the row's scope"
    );
    assert_eq!(fixture.count("SELECT count(*) FROM visits"), 0, "a row of only unknown fields is not made");
    assert_eq!(fixture.count(&format!("SELECT count(*) FROM sync_field_clock WHERE row_id = '{new_household}'")), 6);
    assert_eq!(fixture.count("SELECT count(*) FROM sync_field_clock WHERE field = 'field_of_a_newer_server'"), 0);
    assert_eq!(fixture.count("SELECT count(*) FROM sync_outbox"), queued_before, "pulled rows are never queued back");
    let found = |text: &str| {
        household::search(&fixture.store, &RosterQuery { text: Some(text.into()), ..RosterQuery::default() })
            .unwrap()
            .into_iter()
            .map(|entry| entry.head_name)
            .collect::<Vec<_>>()
    };
    assert_eq!(found("新户"), vec!["龙新户"], "a pulled household is searchable");
    assert_eq!(found("小妹"), vec!["龙新户"], "a pulled member is searchable under her household");

    let before = fixture.fingerprint();
    let again = fixture.store.write(|writer| writer.apply_remote_rows(&rows)).unwrap();
    assert_eq!(again, 0, "a page applied twice changes nothing the second time");
    assert_eq!(fixture.fingerprint(), before);
}

/// A storage failure a check meets (here the platform rules the title check reads are gone) is
/// the write's error, not a record that passed or failed its checks; nothing is written.
#[test]
fn a_storage_error_met_by_a_check_is_the_writes_error_and_writes_nothing() {
    let mut fixture = Fixture::new();
    let listing = fixture.draft_listing();
    Connection::open(fixture.path()).unwrap().execute_batch("ALTER TABLE platform_rules RENAME TO platform_rules_gone").unwrap();
    let before = fixture.fingerprint();
    let Value::Object(changes) = json!({ "status": "ready" }) else { unreachable!() };
    let error = fixture.store.write(|writer| writer.save(&schema::LISTINGS, Some(&listing), changes)).expect_err("the check could not read");
    assert!(matches!(error, Error::Sqlite(_)), "{error:?}");
    assert_eq!(fixture.fingerprint(), before);

    // The same holds for a check made before a write.
    let mut record = furrow::sync::read_record(&fixture.store, "listings", &listing).unwrap().expect("the listing").fields;
    record.retain(|_, value| !value.is_null());
    record.insert("status".into(), json!("ready"));
    let error = fixture.store.check(&schema::LISTINGS, &record).expect_err("the check could not read");
    assert!(matches!(error, Error::Sqlite(_)), "{error:?}");
}
