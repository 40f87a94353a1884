//! A link that drops, delivers twice and meets clocks that are days off, between real devices and
//! the real server: every edit arrives exactly once, nothing is lost, and everyone converges.

use furrow::schema;
use furrow::sync;
use furrow_sync_tests::proxy::{Fault, FaultProxy};
use furrow_sync_tests::{household_fields, on_both_backends, Backend, Device, TestServer};
use serde_json::json;

const V1: &str = "530102001001";

fn setup(backend: Backend) -> (TestServer, FaultProxy, String) {
    let server = TestServer::start_on(backend);
    let village = server.add_village(V1, "小河村");
    server.add_assistant("lihua", "li-password-1", &[V1]);
    let proxy = FaultProxy::start(server.address);
    (server, proxy, village)
}

fn duplicates_in_change_log(server: &TestServer) -> i64 {
    server.query_count("SELECT count(*) FROM (SELECT change_id FROM sync_changes GROUP BY change_id HAVING count(*) > 1) AS duplicated")
}

fn every_kind_of_drop_during_push_loses_nothing_and_duplicates_nothing(backend: Backend) {
    let (server, proxy, village) = setup(backend);
    let laptop = Device::new(&proxy.url);
    laptop.login("lihua", "li-password-1");
    laptop.sync().unwrap();
    // Enough edits for several batches of 500.
    laptop
        .store()
        .write(|writer| {
            for index in 0..260 {
                let serde_json::Value::Object(fields) = household_fields(&village, &format!("户主{index}")) else { unreachable!() };
                writer.save(&schema::HOUSEHOLDS, None, fields)?;
            }
            Ok(())
        })
        .unwrap();
    let queued = laptop.pending();
    assert!(queued > 1000, "{queued}");
    for fault in Fault::ALL {
        proxy.inject("/sync/v1/push", fault);
    }
    let report = laptop.sync_until_idle().unwrap();
    assert_eq!(laptop.pending(), 0);
    assert_eq!(report.applied as i64, queued, "each change applied once, none rejected");
    // Drops after the server committed are recovered by re-sending the same batch, once each.
    assert!(report.batches_resent >= 2 && report.batches_resent <= 5, "{report:?}");
    assert_eq!(duplicates_in_change_log(&server), 0);
    assert_eq!(server.query_count("SELECT count(*) FROM sync_changes"), queued);
    let fresh = Device::new(&server.url);
    fresh.login("lihua", "li-password-1");
    fresh.sync().unwrap();
    assert_eq!(fresh.dump(), laptop.dump());
}

fn drops_in_the_middle_of_pull_pages_resume_from_the_last_saved_page(backend: Backend) {
    let (server, proxy, village) = setup(backend);
    let writer = Device::new(&server.url);
    writer.login("lihua", "li-password-1");
    writer.sync().unwrap();
    writer
        .store()
        .write(|store| {
            for index in 0..900 {
                let serde_json::Value::Object(fields) = household_fields(&village, &format!("户{index}")) else { unreachable!() };
                store.save(&schema::HOUSEHOLDS, None, fields)?;
            }
            Ok(())
        })
        .unwrap();
    writer.sync().unwrap();
    let reader = Device::new(&proxy.url);
    reader.login("lihua", "li-password-1");
    proxy.inject("/sync/v1/pull", Fault::DropMidResponse);
    proxy.inject("/sync/v1/pull", Fault::Duplicate);
    proxy.inject("/sync/v1/pull", Fault::DropAfterCommit);
    proxy.inject("/sync/v1/pull", Fault::DropBeforeRequest);
    let mut cursors = Vec::new();
    loop {
        let result = reader.sync();
        if let Some(rusqlite::types::Value::Text(cursor)) = reader.store().state("pull_cursor").unwrap() {
            cursors.push(furrow_sync_tests::cursor_seq(&cursor).expect("a cursor of this server"));
        }
        if result.is_ok() {
            break;
        }
        assert!(cursors.len() < 20, "sync does not settle");
    }
    assert!(cursors.windows(2).all(|pair| pair[0] <= pair[1]), "the cursor never goes back: {cursors:?}");
    // 901 rows in pages of 200: each page fetched once, plus one per drop at most.
    let pulls = proxy.traffic("/sync/v1/pull").requests;
    assert!(pulls <= 5 + 4 + 1, "{pulls} pull requests");
    assert_eq!(reader.dump(), writer.dump());
}

fn a_clock_days_fast_is_corrected_and_a_clock_days_slow_still_converges(backend: Backend) {
    let (server, proxy, village) = setup(backend);
    let fast = Device::new(&proxy.url);
    let slow = Device::new(&proxy.url);
    fast.login("lihua", "li-password-1");
    slow.login("lihua", "li-password-1");
    fast.sync().unwrap();
    slow.sync().unwrap();
    let household = fast.save(&schema::HOUSEHOLDS, None, household_fields(&village, "钱七")).unwrap();
    fast.sync().unwrap();
    slow.sync().unwrap();
    // Clocks drift while offline: one three days fast, the other two days slow.
    const DAY: i64 = 24 * 3600 * 1000;
    sync::set_clock_offset(&mut fast.store(), 3 * DAY).unwrap();
    sync::set_clock_offset(&mut slow.store(), -2 * DAY).unwrap();
    fast.save(&schema::HOUSEHOLDS, Some(&household), json!({ "notes": "快" , "phone": "13900000001" })).unwrap();
    slow.save(&schema::HOUSEHOLDS, Some(&household), json!({ "group_name": "二组" })).unwrap();
    let report = fast.sync_until_idle().unwrap();
    assert_eq!(report.clock_corrections, 1, "{report:?}");
    slow.sync_until_idle().unwrap();
    fast.sync().unwrap();
    assert_eq!(fast.dump(), slow.dump());
    assert_eq!(slow.field(&schema::HOUSEHOLDS, &household, "notes"), Some(json!("快")));
    assert_eq!(slow.field(&schema::HOUSEHOLDS, &household, "group_name"), Some(json!("二组")));
    // No stamp the server accepted is beyond its clock plus the allowed skew.
    let limit = furrow::hlc::pack(furrow::hlc::wall_ms() + 10 * 60 * 1000, 0);
    assert_eq!(server.query_count(&format!("SELECT count(*) FROM sync_fields WHERE hlc > {limit}")), 0);
    // A new edit on the corrected laptop orders after everything it has seen.
    assert!(furrow::hlc::physical_ms(sync::field_clock(&fast.store(), "households", &household, "notes").unwrap().unwrap().hlc)
        < furrow::hlc::wall_ms() + 60_000);
}

on_both_backends!(
    every_kind_of_drop_during_push_loses_nothing_and_duplicates_nothing,
    drops_in_the_middle_of_pull_pages_resume_from_the_last_saved_page,
    a_clock_days_fast_is_corrected_and_a_clock_days_slow_still_converges,
);
