//! The conflicts list as the window shows it, and the two ways out of a refused edit: a corrected
//! value sent again, or a side kept. Each settles the conflict in the same transaction as the
//! edit it makes, so a refused correction leaves the conflict open and nothing written.

mod common;

use common::Fixture;
use furrow::domain::household;
use furrow::sync::{self, Resolution};
use furrow::Error;
use rusqlite::Connection;
use serde_json::json;

/// Records a refused change of `field` of a row, as a push's answer does; returns its id.
fn refused(fixture: &Fixture, table: &str, row_id: &str, field: &str, local: &str, remote: &str) -> i64 {
    let conn = Connection::open(fixture.path()).unwrap();
    conn.execute(
        "INSERT INTO sync_conflicts (tbl, row_id, field, local_value, remote_value, remote_actor, kind, reason, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'moderator:17', 'rejected', 'invalid', 1700000000000)",
        [table, row_id, field, local, remote],
    )
    .unwrap();
    conn.last_insert_rowid()
}

#[test]
fn the_conflicts_list_names_each_record_its_household_and_the_value_held_now() {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    let household = fixture.household(&village, "王小梅");
    let member = fixture.member(&household, "李大山");
    let on_household = refused(&fixture, "households", &household, "notes", "\"我的备注\"", "\"他们的备注\"");
    let on_member = refused(&fixture, "members", &member, "phone", "\"1380000\"", "null");

    let views = sync::conflict_views(&fixture.store).unwrap();
    assert_eq!(views.iter().map(|view| view.id).collect::<Vec<_>>(), [on_member, on_household], "newest first");
    let member_view = &views[0];
    assert_eq!(member_view.record_name.as_deref(), Some("李大山"));
    assert_eq!(member_view.household_id.as_deref(), Some(household.as_str()));
    assert_eq!(member_view.local_value, "\"1380000\"");
    assert_eq!(member_view.remote_value.as_deref(), Some("null"));
    assert_eq!(member_view.current_value, None, "the member has no phone now");
    let household_view = &views[1];
    assert_eq!(household_view.record_name.as_deref(), Some("王小梅"));
    assert_eq!(household_view.household_id.as_deref(), Some(household.as_str()));
    assert_eq!(household_view.remote_actor.as_deref(), Some("moderator:17"));
    assert_eq!(household_view.created_at, "2023-11-14T22:13:20+00:00");

    sync::resolve_conflict(&mut fixture.store, on_household, Resolution::KeepTheirs).unwrap();
    assert_eq!(sync::conflict_views(&fixture.store).unwrap().len(), 1, "a settled conflict leaves the list");
}

#[test]
fn a_corrected_value_is_queued_and_settles_the_conflict_in_one_write() {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    let household = fixture.household(&village, "王小梅");
    let conflict = refused(&fixture, "households", &household, "phone", "\"1380000\"", "null");

    // A correction that fails its checks changes nothing, and the conflict stays open.
    let before = fixture.fingerprint();
    let error = sync::resend_edit(&mut fixture.store, conflict, json!("12")).expect_err("not a phone number");
    assert!(matches!(error, Error::Validation(_)), "{error:?}");
    assert_eq!(error.field_errors()[0].field, "phone");
    assert_eq!(fixture.fingerprint(), before);
    assert_eq!(sync::conflict_views(&fixture.store).unwrap().len(), 1);

    sync::resend_edit(&mut fixture.store, conflict, json!("13800000001")).unwrap();
    assert_eq!(household::get(&fixture.store, &household).unwrap().phone.as_deref(), Some("13800000001"));
    assert_eq!(fixture.count("SELECT count(*) FROM sync_outbox WHERE field = 'phone' AND value = '\"13800000001\"'"), 1, "the correction is queued");
    assert!(sync::conflict_views(&fixture.store).unwrap().is_empty());

    let missing = sync::resend_edit(&mut fixture.store, conflict + 100, json!("13800000002")).expect_err("no such conflict");
    assert!(matches!(missing, Error::NotFound { .. }), "{missing:?}");
}
