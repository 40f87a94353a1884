//! Tests of the push algorithm: each verdict's answer, and the statements a push costs.

use std::sync::Arc;

use super::*;
use crate::store::{self, Counting, Database};

const VILLAGE: &str = "520402101201";

/// Four new households (20 field changes), as a device sends them.
fn households(client: NodeId, first_seq: i64, hlc: i64) -> PushRequest {
    let village_row = crate::platform::village_row_id(VILLAGE);
    let mut changes = Vec::new();
    for household in 0..4 {
        let id = uuid::Uuid::new_v4().to_string();
        for (field, value) in [
            ("scope_id", Value::from(VILLAGE)),
            ("village_id", Value::from(village_row.as_str())),
            ("head_name", Value::from(format!("户主{household}"))),
            ("attribute", Value::from("general")),
            ("poverty_status", Value::from("non_poor")),
        ] {
            changes.push(Change {
                change_id: uuid::Uuid::new_v4().to_string(),
                seq: first_seq + changes.len() as i64,
                tbl: "households".into(),
                row_id: id.clone(),
                field: field.into(),
                value,
                hlc,
                base_hlc: None,
                node: None,
            });
        }
    }
    PushRequest { client_id: client.to_uuid_string(), batch_id: uuid::Uuid::new_v4().to_string(), schema_version: 1, changes }
}

/// A push of 20 field changes costs at most 10 statements, new rows or edits alike, and a
/// replay two; every change is applied and each field's stamp and sequence number stored.
fn push_within_budget(database: Arc<dyn Database>) {
    let counting = Counting::new(database);
    let clock = ServerClock::new();
    let user = store::write(&counting, |tx| {
        crate::platform::add_village(tx, &clock, VILLAGE, "石门村")?;
        crate::platform::add_assistant(tx, "wang", "not a real hash", &[VILLAGE.to_owned()])
    })
    .expect("seed");
    let caller = Caller { user_id: user, scopes: vec![VILLAGE.to_owned()], session_id: "session".into(), client_id: None };
    let client = NodeId::random();
    let now = hlc::wall_ms();
    let created = households(client, 1, hlc::pack(now, 0));
    let mut edits = households(client, 21, hlc::pack(now, 1));
    for (edit, original) in edits.changes.iter_mut().zip(&created.changes) {
        edit.row_id = original.row_id.clone();
    }
    for request in [&created, &edits] {
        let before = counting.counts();
        let outcome = store::write(&counting, |tx| push(tx, &caller, &clock, request, now)).expect("push");
        let statements = counting.counts().statements - before.statements;
        assert!(statements <= 10, "a push of 20 field changes took {statements} statements");
        let response: PushResponse = serde_json::from_str(&outcome.body).expect("response");
        assert!(response.results.iter().all(|result| result.status == "applied"), "{:?}", response.results);
        let before = counting.counts();
        let replay = store::write(&counting, |tx| push(tx, &caller, &clock, request, now)).expect("replay");
        assert!(replay.replayed && replay.body == outcome.body);
        assert!(counting.counts().statements - before.statements <= 2);
    }
    let (seqs, fields) = store::read(&counting, |tx| {
        let fields = tx.fields("households", &edits.changes[0].row_id)?;
        Ok((tx.current_seq()?, fields))
    })
    .expect("read");
    assert_eq!(fields.len(), 5);
    assert!(fields.iter().all(|(_, stored)| stored.hlc == hlc::pack(now, 1) && stored.node == client.0.to_vec()));
    // The villages row, then 40 changes, each with a number of its own and none lost.
    let numbers: BTreeSet<i64> = fields.iter().map(|(_, stored)| stored.server_seq).collect();
    assert_eq!(numbers.len(), 5);
    assert!(numbers.iter().all(|seq| *seq > seqs - 40 && *seq <= seqs), "{numbers:?} up to {seqs}");
}

#[test]
fn a_push_of_twenty_changes_costs_at_most_ten_statements_on_sqlite() {
    push_within_budget(Arc::new(crate::store::sqlite::SqliteDatabase::in_memory().expect("database")));
}

#[test]
fn a_push_of_twenty_changes_costs_at_most_ten_statements_on_postgres() {
    let url = std::env::var("FURROW_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("test_push_{}", uuid::Uuid::new_v4().simple());
    let database = crate::store::postgres::PostgresDatabase::open(&url, Some(&schema)).expect("the test server at 127.0.0.1:5432");
    push_within_budget(Arc::new(database));
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).expect("drop the schema");
}

fn change(tbl: &str, field: &str) -> Change {
    Change {
        change_id: "c1".into(),
        seq: 1,
        tbl: tbl.into(),
        row_id: uuid::Uuid::nil().to_string(),
        field: field.into(),
        value: Value::from(1),
        hlc: 7,
        base_hlc: None,
        node: None,
    }
}

fn answer(result: &ChangeResult) -> (&str, Option<&str>, Option<&str>, Option<i64>) {
    (result.status.as_str(), result.reason.as_deref(), result.message.as_deref(), result.current.as_ref().map(|current| current.hlc))
}

#[test]
fn every_verdict_is_answered_with_the_servers_words() {
    let stored = StoredField { value: Value::from(5), hlc: 9, node: vec![3; 16], server_seq: 4, actor: "assistant:1".into() };
    let listing = change("listings", "price_fen");
    let income = change("income_records", "amount_fen");
    let table = schema::table("income_records").expect("income records");
    let listings = schema::table("listings").expect("listings");
    assert_eq!(answer(&refused(listings, &listing, Verdict::AlreadyApplied, Some(&stored))), ("applied", None, None, None));
    assert_eq!(answer(&refused(listings, &listing, Verdict::Superseded, Some(&stored))), ("superseded", None, None, Some(9)));
    assert_eq!(
        answer(&refused(listings, &listing, Verdict::RejectedStale, Some(&stored))),
        ("rejected", Some("stale_base"), Some("the value was changed on the server since you edited it"), Some(9))
    );
    let platform = change("listings", "moderation_status");
    assert_eq!(
        answer(&refused(listings, &platform, Verdict::RejectedServerOnly, None)),
        ("rejected", Some("server_only"), Some("listings.moderation_status is written by the platform only"), None)
    );
    assert_eq!(
        answer(&refused(table, &income, Verdict::RejectedEdit, Some(&stored))),
        ("rejected", Some("invalid"), Some("income_records records cannot be edited; add a correction instead"), Some(9))
    );
    assert_eq!(
        answer(&refused(table, &change("income_records", "deleted"), Verdict::RejectedDelete, None)),
        ("rejected", Some("invalid"), Some("income_records records cannot be deleted"), None)
    );
    for verdict in [Verdict::Superseded, Verdict::RejectedStale, Verdict::RejectedServerOnly, Verdict::RejectedEdit, Verdict::RejectedDelete] {
        let result = refused(table, &income, verdict, Some(&stored));
        assert_eq!((result.status.as_str(), result.reason.as_deref()), (verdict.status(), verdict.reason()), "{verdict:?}");
    }
}
