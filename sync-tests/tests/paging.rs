//! Pulls of many pages through the real engine and the real server, on both backends: a first
//! sync and a catch-up of a history whose rows were edited, deleted and re-edited after they were
//! created leave the device holding every row whole, whatever the page size; a device holding a
//! cursor of the first format gets a fresh snapshot and keeps its unsynced work.

use base64::Engine;
use furrow::schema;
use furrow::sync::SyncOptions;
use furrow_sync_tests::{household_fields, new_listing, on_both_backends, test_options, Backend, Device, TestServer};
use serde_json::json;

const VILLAGE: &str = "530102001001";

const PAGE_SIZES: [usize; 6] = [1, 2, 3, 7, 50, 1000];

fn device_with_pages(server: &TestServer, pull_limit: usize) -> Device {
    let mut device = Device::new(&server.url);
    device.engine = furrow::sync::SyncEngine::new(&server.url)
        .expect("an engine")
        .with_options(SyncOptions { pull_limit, ..test_options() });
    device.login("lihua", "li-password-1");
    device
}

/// Rows created, then edited, deleted and re-edited in later pushes, so most rows' latest change
/// is far from their first.
fn edited_history(author: &Device, village: &str) -> Vec<String> {
    let mut households = Vec::new();
    for index in 0..24 {
        households.push(author.save(&schema::HOUSEHOLDS, None, household_fields(village, &format!("户主{index}"))).expect("saved"));
    }
    new_listing(author, village, Some(&households[0]));
    author.sync().expect("the first push");
    for (index, id) in households.iter().enumerate().filter(|(index, _)| index % 3 == 0) {
        author.save(&schema::HOUSEHOLDS, Some(id), json!({ "notes": format!("回访 {index}") })).expect("edited");
    }
    author.sync().expect("the edits");
    for id in households.iter().skip(1).step_by(7) {
        author.delete(&schema::HOUSEHOLDS, id).expect("deleted");
    }
    for (index, id) in households.iter().enumerate().filter(|(index, _)| index % 3 == 0) {
        author.save(&schema::HOUSEHOLDS, Some(id), json!({ "phone": format!("138{index:08}"), "group_name": "二组" })).expect("re-edited");
    }
    author.sync().expect("the re-edits");
    households
}

fn every_page_size_gives_whole_rows_on_a_first_sync_and_a_catch_up(backend: Backend) {
    let server = TestServer::start_on(backend);
    let village = server.add_village(VILLAGE, "小河村");
    server.add_assistant("lihua", "li-password-1", &[VILLAGE]);
    let author = device_with_pages(&server, 1000);
    author.sync().expect("the author's first sync");
    // Devices that synced before the history was written catch up over many pages afterwards.
    let early: Vec<Device> = PAGE_SIZES
        .iter()
        .map(|size| {
            let device = device_with_pages(&server, *size);
            device.sync().expect("an early sync");
            device
        })
        .collect();
    let households = edited_history(&author, &village);
    author.sync().expect("the author is at the head");
    let expected = author.dump();
    assert!(expected.contains(&households[3]), "the history is in the author's copy");

    for (size, device) in PAGE_SIZES.iter().zip(&early) {
        let report = device.sync().expect("the catch-up");
        assert!(*size >= 50 || report.pages > 3, "a catch-up in pages of {size} takes many pages");
        assert_eq!(device.dump(), expected, "a catch-up in pages of {size} holds every row whole");
    }
    for size in PAGE_SIZES {
        let fresh = device_with_pages(&server, size);
        fresh.sync().expect("a first sync");
        assert_eq!(fresh.dump(), expected, "a first sync in pages of {size} holds every row whole");
        assert_eq!(fresh.field(&schema::HOUSEHOLDS, &households[3], "head_name"), Some(json!("户主3")));
        assert_eq!(fresh.field(&schema::HOUSEHOLDS, &households[3], "notes"), Some(json!("回访 3")));
    }
}

fn a_device_holding_a_first_format_cursor_gets_a_fresh_snapshot_and_keeps_its_work(backend: Backend) {
    let server = TestServer::start_on(backend);
    let village = server.add_village(VILLAGE, "小河村");
    server.add_assistant("lihua", "li-password-1", &[VILLAGE]);
    let author = device_with_pages(&server, 1000);
    let laptop = device_with_pages(&server, 2);
    author.sync().expect("the author's first sync");
    laptop.sync().expect("the laptop's first sync");
    let households = edited_history(&author, &village);

    // The laptop holds the cursor an older server issued, of the first format, at its position.
    let cursor = match laptop.store().state("pull_cursor").expect("the state reads") {
        Some(rusqlite::types::Value::Text(cursor)) => cursor,
        other => panic!("no cursor: {other:?}"),
    };
    let decoded = furrow_server::sync::Cursor::decode(&cursor).expect("a cursor of this server");
    let old = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
        "c1:{}:{}:{}",
        decoded.seq, decoded.scope_hash, decoded.schema_version
    ));
    let file = rusqlite::Connection::open(&laptop.path).expect("the laptop's file opens");
    file.execute("UPDATE sync_state SET v = ?1 WHERE k = 'pull_cursor'", [&old]).expect("the cursor is replaced");
    drop(file);
    let laptop = laptop.restart();
    // And it has unsynced work.
    let own = laptop.save(&schema::HOUSEHOLDS, None, household_fields(&village, "离线新户")).expect("saved offline");

    let report = laptop.sync().expect("the sync");
    assert_eq!(report.resets, 1, "the first-format cursor is answered with one fresh snapshot");
    assert_eq!(laptop.pending(), 0, "the unsynced household was kept and sent");
    author.sync().expect("the author pulls it");
    assert_eq!(laptop.dump(), author.dump(), "every row is whole on the laptop");
    assert_eq!(laptop.field(&schema::HOUSEHOLDS, &households[6], "phone"), Some(json!("13800000006")));
    assert_eq!(author.field(&schema::HOUSEHOLDS, &own, "head_name"), Some(json!("离线新户")));
    let cursor = match laptop.store().state("pull_cursor").expect("the state reads") {
        Some(rusqlite::types::Value::Text(cursor)) => cursor,
        other => panic!("no cursor: {other:?}"),
    };
    assert!(furrow_server::sync::Cursor::decode(&cursor).expect("a cursor").epoch.is_some(), "the new cursor is of the new format");
}

on_both_backends!(
    every_page_size_gives_whole_rows_on_a_first_sync_and_a_catch_up,
    a_device_holding_a_first_format_cursor_gets_a_fresh_snapshot_and_keeps_its_work,
);
