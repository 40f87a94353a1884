//! A device offline past the history horizon: the operator pruned old tombstones meanwhile, so
//! its pull gets `reset: history_pruned` and a fresh snapshot; it keeps its outbox through the
//! reset and pushes it, and a row deleted while it was away does not come back, on the server,
//! on other devices or on the laptop itself.

use std::sync::Mutex;

use furrow::schema;
use furrow::sync::Progress;
use furrow_server::store::{self, Prune};
use furrow_sync_tests::{household_fields, on_both_backends, signed_in, Backend, OneVillage, TestServer};
use serde_json::json;

/// What `furrow-server prune` does, with a horizon of now instead of 180 days ago (the command
/// keeps at least 180 days; the library function used here has no minimum), run on a second
/// handle to the server's storage, as the operator command would be.
fn prune_everything_deleted_so_far(server: &TestServer) -> Prune {
    std::thread::sleep(std::time::Duration::from_millis(5));
    let database = furrow_server::open_database(&server.storage()).expect("the server's storage opens");
    let now = furrow::hlc::wall_ms();
    store::write(database.as_ref(), |tx| furrow_server::sync::prune_history_before(tx, now, now)).expect("the history is pruned")
}

fn a_device_offline_past_the_horizon_re_snapshots_keeps_its_outbox_and_no_deleted_row_returns(backend: Backend) {
    let OneVillage { server, village } = OneVillage::start(backend);
    let laptop = signed_in(&server.url);
    let tablet = signed_in(&server.url);
    laptop.sync().expect("the laptop's first sync");
    let gone = laptop.save(&schema::HOUSEHOLDS, None, household_fields(&village, "张三")).expect("a household saves");
    let kept = laptop.save(&schema::HOUSEHOLDS, None, household_fields(&village, "李四")).expect("a household saves");
    laptop.sync_until_idle().expect("the laptop's sync");
    tablet.sync_until_idle().expect("the tablet's first sync");

    // The laptop goes to the villages: edits of both households and a new one, all queued.
    laptop.save(&schema::HOUSEHOLDS, Some(&gone), json!({ "notes": "离线时写的笔记" })).expect("an offline edit");
    laptop.save(&schema::HOUSEHOLDS, Some(&kept), json!({ "phone": "13800000002" })).expect("an offline edit");
    let new = laptop.save(&schema::HOUSEHOLDS, None, household_fields(&village, "王五")).expect("an offline household");
    let queued = laptop.pending();
    assert!(queued > 0);

    // Meanwhile the tablet deletes a household, and the operator prunes the history.
    tablet.delete(&schema::HOUSEHOLDS, &gone).expect("the tablet deletes");
    tablet.sync_until_idle().expect("the tablet's sync");
    let pruned = prune_everything_deleted_so_far(&server);
    assert_eq!(pruned.rows_purged, 1, "{pruned:?}");
    let rows_of_gone = format!("SELECT count(*) FROM sync_rows WHERE row_id = '{gone}'");
    assert_eq!(server.query_count(&rows_of_gone), 0);
    assert_eq!(server.query_count("SELECT count(*) FROM sync_prunes"), 1);

    // Back in town. The laptop pushes its outbox, then its pull is answered with a reset; an
    // edit made while the snapshot comes in stays queued and is pushed after it.
    let resets = Mutex::new(Vec::new());
    let progress = |progress: &Progress| {
        if let Progress::Reset { reason } = progress {
            resets.lock().expect("the list of resets").push(reason.clone());
            laptop.save(&schema::HOUSEHOLDS, Some(&kept), json!({ "notes": "快照时写的" })).expect("an edit during the reset");
        }
    };
    let report = laptop.engine.sync(&laptop.store, &progress).expect("the laptop's sync after the reset");
    assert_eq!(*resets.lock().expect("the list of resets"), vec!["history_pruned".to_owned()]);
    assert_eq!(report.resets, 1);
    laptop.sync_until_idle().expect("the laptop's next sync");
    assert_eq!(laptop.pending(), 0, "the outbox was pushed, nothing left behind");
    let again = laptop.sync().expect("a later sync");
    assert_eq!(again.resets, 0, "the reset happens once");

    // The outbox reached the server: the phone, the edit made during the reset, the new row.
    let fresh = signed_in(&server.url);
    fresh.sync_until_idle().expect("a fresh device's sync");
    tablet.sync_until_idle().expect("the tablet's sync");
    for device in [&fresh, &tablet] {
        assert_eq!(device.field(&schema::HOUSEHOLDS, &kept, "phone"), Some(json!("13800000002")));
        assert_eq!(device.field(&schema::HOUSEHOLDS, &kept, "notes"), Some(json!("快照时写的")));
        assert_eq!(device.field(&schema::HOUSEHOLDS, &new, "head_name"), Some(json!("王五")));
    }
    // The deleted household does not come back: the laptop's edit of it was refused (the server
    // no longer knows the row) and is kept in the laptop's conflicts list, not lost; the server,
    // a fresh device and the tablet do not have it back.
    assert_eq!(server.query_count(&rows_of_gone), 0);
    assert_eq!(fresh.field(&schema::HOUSEHOLDS, &gone, "head_name"), None);
    assert_eq!(tablet.field(&schema::HOUSEHOLDS, &gone, "deleted"), Some(json!(true)));
    let conflicts = furrow::sync::conflicts(&laptop.store(), false).expect("the conflicts list");
    let refused: Vec<_> = conflicts.iter().filter(|conflict| conflict.row_id == gone).collect();
    assert_eq!(refused.len(), 1, "{conflicts:?}");
    assert_eq!((refused[0].field.as_str(), refused[0].kind.as_str()), ("notes", "rejected"));
    assert_eq!(refused[0].local_value, json!("离线时写的笔记"));
    // Nor on the laptop itself: the snapshot that followed the reset did not bring it, and the
    // laptop had nothing unsent of it, so the row is dropped there too.
    assert_eq!(laptop.field(&schema::HOUSEHOLDS, &gone, "head_name"), None, "the laptop no longer shows the purged household");
    assert_eq!(laptop.field(&schema::HOUSEHOLDS, &kept, "head_name"), Some(json!("李四")));
    assert_eq!(server.query_count("SELECT count(*) FROM sync_prunes"), 1);
}

on_both_backends!(a_device_offline_past_the_horizon_re_snapshots_keeps_its_outbox_and_no_deleted_row_returns);
