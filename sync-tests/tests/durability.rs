//! An acknowledged push survives a power cut, and a server that went back in time loses nothing
//! any device holds.
//!
//! The server's commits wait for the disk (SQLite `synchronous = FULL`, PostgreSQL
//! `synchronous_commit = on` in every session). A server that went back anyway, with the state
//! of its files before an acknowledged push (what a power cut left under the old SQLite setting),
//! or restored from a backup and given a new epoch by the operator, answers the devices' next pull
//! with `reset: server_restored`; each device takes a fresh snapshot without dropping anything and
//! re-sends every field it holds that the server lacks, with its original stamp, whichever device
//! wrote it.

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use furrow::schema;
use furrow::sync::{Progress, SyncReport};
use furrow_server::store::{self, Param};
use furrow_server::Storage;
use furrow_sync_tests::{household_fields, on_both_backends, signed_in, Backend, Device, OneVillage, TestServer};
use serde_json::json;

/// What `furrow-server new-epoch` does, run on a second handle to the server's storage as the
/// operator command would be.
fn give_the_history_a_new_epoch(server: &TestServer) -> String {
    let database = furrow_server::open_database(&server.storage()).expect("the server's storage opens");
    let before = store::read(database.as_ref(), |tx| tx.epoch()).expect("the epoch reads");
    let epoch = store::write(database.as_ref(), |tx| furrow_server::sync::new_epoch(tx, furrow::hlc::wall_ms()))
        .expect("the history gets a new epoch");
    assert_ne!(epoch, before);
    epoch
}

/// One `sync_until_idle` that also lists the resets the server asked for.
fn sync_listing_resets(device: &Device) -> (SyncReport, Vec<String>) {
    let resets = Mutex::new(Vec::new());
    let progress = |progress: &Progress| {
        if let Progress::Reset { reason } = progress {
            resets.lock().expect("the list of resets").push(reason.clone());
        }
    };
    let report = device.engine.run_until_idle(&device.store, &progress, &AtomicBool::new(false)).expect("the device syncs");
    (report, resets.into_inner().expect("the list of resets"))
}

fn households_on_the_server(server: &TestServer) -> i64 {
    server.query_count("SELECT count(*) FROM sync_rows WHERE tbl = 'households'")
}

fn acknowledged_commits_wait_for_the_disk(backend: Backend) {
    let server = TestServer::start_on(backend);
    let (storage, query, expected) = match backend {
        Backend::Sqlite => (server.storage(), "PRAGMA synchronous", Param::Int(2)),
        Backend::Postgres => {
            // A default of `off` reaching every session, as a server-wide, database or role
            // default would; here it comes with the connection URL.
            let url = server.database_url().expect("a database URL");
            let separator = if url.contains('?') { '&' } else { '?' };
            let url = format!("{url}{separator}options=-csynchronous_commit%3Doff");
            let mut plain = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("PostgreSQL answers");
            let setting: String = plain.query_one("SELECT current_setting('synchronous_commit')", &[]).expect("the setting reads").get(0);
            assert_eq!(setting, "off", "a plain session takes the default");
            drop(plain);
            (Storage::Postgres { url, schema: None }, "SELECT current_setting('synchronous_commit')", Param::Text("on".into()))
        }
    };
    // The server's own database handle, as `serve` opens it.
    let database = furrow_server::open_database(&storage).expect("the server's database opens");
    let mut found = Vec::new();
    database
        .transaction(false, &mut |sql| {
            found = sql.query(query, &[])?;
            Ok(())
        })
        .expect("the setting reads");
    // SQLite's FULL is 2 (NORMAL is 1): every commit syncs the WAL before the push is answered.
    assert_eq!(found, vec![vec![expected]], "{}: {query}", backend.name());
}

fn a_power_cut_after_an_acknowledged_push_loses_nothing(backend: Backend) {
    let OneVillage { server, village } = OneVillage::start(backend);
    let laptop = signed_in(&server.url);
    let tablet = signed_in(&server.url);
    laptop.sync_until_idle().expect("the laptop's first sync");
    tablet.sync_until_idle().expect("the tablet's first sync");

    // What the server's files hold before the push.
    let (server, before_push) = server.copy_database();
    let households: Vec<(String, String)> = (0..6)
        .map(|index| {
            let head = format!("褚{index}");
            let id = laptop.save(&schema::HOUSEHOLDS, None, household_fields(&village, &head)).expect("a household saves");
            (id, head)
        })
        .collect();
    let report = laptop.sync_until_idle().expect("the laptop pushes");
    assert!(report.applied >= 6 * 5, "{report:?}");
    assert_eq!(laptop.pending(), 0, "acknowledged: the outbox is empty");
    assert_eq!(households_on_the_server(&server), 6);

    // The power fails before the acknowledged push reached the disk: the server comes back with
    // the files as they were before it. No operator does anything.
    let server = server.restore_database(&before_push);
    assert_eq!(households_on_the_server(&server), 0, "the server lost the acknowledged push");

    let (report, resets) = sync_listing_resets(&laptop);
    assert_eq!(resets, vec!["server_restored".to_owned()], "{report:?}");
    assert_eq!(laptop.pending(), 0, "the re-sent households were pushed in the same sync");
    assert_eq!(households_on_the_server(&server), 6, "every household is back on the server");
    let (_, resets) = sync_listing_resets(&tablet);
    assert!(resets.is_empty(), "the tablet's cursor is still good: {resets:?}");
    for (id, head) in &households {
        assert_eq!(laptop.field(&schema::HOUSEHOLDS, id, "head_name"), Some(json!(head)), "kept on the laptop");
        assert_eq!(tablet.field(&schema::HOUSEHOLDS, id, "head_name"), Some(json!(head)), "arrived on the tablet");
    }
    let fresh = signed_in(&server.url);
    fresh.sync_until_idle().expect("a fresh device's sync");
    assert_eq!(fresh.dump(), laptop.dump(), "the server holds what the laptop holds, stamps included");
    assert_eq!(fresh.dump(), tablet.dump());
    let again = laptop.sync().expect("a later sync");
    assert_eq!(again.resets, 0, "the reset happens once");
}

fn a_server_restored_from_a_backup_gets_back_everything_the_devices_held(backend: Backend) {
    let OneVillage { server, village } = OneVillage::start(backend);
    let laptop = signed_in(&server.url);
    let tablet = signed_in(&server.url);
    laptop.sync_until_idle().expect("the laptop's first sync");
    tablet.sync_until_idle().expect("the tablet's first sync");
    let household = |device: &Device, head: &str| device.save(&schema::HOUSEHOLDS, None, household_fields(&village, head)).expect("a household saves");
    let edit = |device: &Device, id: &str, fields: serde_json::Value| {
        device.save(&schema::HOUSEHOLDS, Some(id), fields).expect("an edit saves");
    };

    // The morning: households made on both devices, edited on the other one, all synced.
    let first = household(&laptop, "褚一");
    let deleted = household(&laptop, "褚二");
    let third = household(&laptop, "褚三");
    laptop.sync_until_idle().expect("the laptop's sync");
    tablet.sync_until_idle().expect("the tablet's sync");
    let fourth = household(&tablet, "褚四");
    edit(&tablet, &first, json!({ "notes": "上午平板写的" }));
    tablet.sync_until_idle().expect("the tablet's sync");
    laptop.sync_until_idle().expect("the laptop's sync");
    edit(&laptop, &fourth, json!({ "phone": "13800000004" }));
    laptop.sync_until_idle().expect("the laptop's sync");

    // The noon backup.
    let (server, noon) = server.copy_database();

    // The afternoon: a new household with a member, edits of the morning's rows on either
    // device, a deletion; all pushed and acknowledged, and each device pulls the other's work.
    let fifth = household(&laptop, "褚五");
    let member = laptop
        .save(&schema::MEMBERS, None, json!({ "household_id": fifth, "name": "褚小五", "has_smartphone": true }))
        .expect("a member saves");
    edit(&laptop, &first, json!({ "phone": "13800000001" }));
    laptop.delete(&schema::HOUSEHOLDS, &deleted).expect("the laptop deletes");
    laptop.sync_until_idle().expect("the laptop's sync");
    let sixth = household(&tablet, "褚六");
    edit(&tablet, &third, json!({ "notes": "下午平板写的" }));
    edit(&tablet, &fourth, json!({ "head_name": "褚四（改）" }));
    tablet.sync_until_idle().expect("the tablet's sync");
    laptop.sync_until_idle().expect("the laptop's sync");
    // An edit the tablet has not sent yet when the server goes back.
    edit(&tablet, &third, json!({ "phone": "13800000003" }));
    assert_eq!(laptop.pending(), 0);
    let unsent = tablet.pending();
    assert!(unsent > 0);
    let tablet_before = tablet.dump();

    // The server's disk fails in the evening; the operator restores the noon backup and gives the
    // history a new epoch before serving it.
    let server = server.restore_database(&noon);
    give_the_history_a_new_epoch(&server);
    let rows_of = |id: &str| format!("SELECT count(*) FROM sync_rows WHERE row_id = '{id}'");
    assert_eq!(server.query_count(&rows_of(&fifth)), 0, "the afternoon is gone from the server");

    // Every device syncs once. The tablet re-sends what it holds, the laptop's afternoon work
    // included (under the laptop's node), and its unsent edit; the laptop then re-sends nothing
    // the tablet already gave back, and receives the tablet's edit.
    let (tablet_report, tablet_resets) = sync_listing_resets(&tablet);
    assert_eq!(tablet_resets, vec!["server_restored".to_owned()], "{tablet_report:?}");
    assert_eq!(tablet.pending(), 0);
    let (laptop_report, laptop_resets) = sync_listing_resets(&laptop);
    assert_eq!(laptop_resets, vec!["server_restored".to_owned()], "{laptop_report:?}");
    assert_eq!(laptop.pending(), 0);

    // Nothing any device held is lost, and every stamp is the original one: the tablet holds what
    // it held, the laptop holds the same, and so does the server, as a fresh device sees it.
    let fresh = signed_in(&server.url);
    fresh.sync_until_idle().expect("a fresh device's sync");
    assert_eq!(tablet.dump(), tablet_before, "the tablet kept everything as it was");
    assert_eq!(fresh.dump(), tablet.dump(), "the server holds what the tablet holds");
    assert_eq!(fresh.dump(), laptop.dump(), "the server holds what the laptop holds");
    for device in [&fresh, &laptop, &tablet] {
        assert_eq!(device.field(&schema::HOUSEHOLDS, &first, "phone"), Some(json!("13800000001")));
        assert_eq!(device.field(&schema::HOUSEHOLDS, &first, "notes"), Some(json!("上午平板写的")));
        assert_eq!(device.field(&schema::HOUSEHOLDS, &deleted, "deleted"), Some(json!(true)));
        assert_eq!(device.field(&schema::HOUSEHOLDS, &third, "notes"), Some(json!("下午平板写的")));
        assert_eq!(device.field(&schema::HOUSEHOLDS, &fourth, "head_name"), Some(json!("褚四（改）")));
        assert_eq!(device.field(&schema::HOUSEHOLDS, &fourth, "phone"), Some(json!("13800000004")));
        assert_eq!(device.field(&schema::HOUSEHOLDS, &fifth, "head_name"), Some(json!("褚五")));
        assert_eq!(device.field(&schema::MEMBERS, &member, "name"), Some(json!("褚小五")));
        assert_eq!(device.field(&schema::MEMBERS, &member, "has_smartphone"), Some(json!(true)));
        assert_eq!(device.field(&schema::HOUSEHOLDS, &sixth, "head_name"), Some(json!("褚六")));
        assert_eq!(device.field(&schema::HOUSEHOLDS, &third, "phone"), Some(json!("13800000003")));
    }
    let conflicts = furrow::sync::conflicts(&laptop.store(), false).expect("the laptop's conflicts");
    assert!(conflicts.is_empty(), "re-sending refuses nothing: {conflicts:?}");
    let conflicts = furrow::sync::conflicts(&tablet.store(), false).expect("the tablet's conflicts");
    assert!(conflicts.is_empty(), "re-sending refuses nothing: {conflicts:?}");
    let again = laptop.sync().expect("a later sync");
    assert_eq!(again.resets, 0, "the reset happens once");
}

fn a_cursor_the_server_refuses_makes_the_device_resend_instead_of_retrying_forever(backend: Backend) {
    let OneVillage { server, village } = OneVillage::start(backend);
    let laptop = signed_in(&server.url);
    laptop.sync_until_idle().expect("the laptop's first sync");
    let (server, before_push) = server.copy_database();
    let id = laptop.save(&schema::HOUSEHOLDS, None, household_fields(&village, "褚一")).expect("a household saves");
    laptop.sync_until_idle().expect("the laptop pushes");
    let server = server.restore_database(&before_push);
    // The server no longer knows the device's cursor at all (400 invalid_cursor).
    let file = rusqlite::Connection::open(&laptop.path).expect("the laptop's store opens");
    file.busy_timeout(std::time::Duration::from_secs(5)).expect("a busy timeout");
    let changed = file.execute("UPDATE sync_state SET v = 'Y3VyaW91cw' WHERE k = 'pull_cursor'", []).expect("the cursor is replaced");
    assert_eq!(changed, 1);
    drop(file);

    let (report, resets) = sync_listing_resets(&laptop);
    assert_eq!(resets, vec!["server_restored".to_owned()], "{report:?}");
    assert_eq!(server.query_count(&format!("SELECT count(*) FROM sync_rows WHERE row_id = '{id}'")), 1, "the household is back");
    assert_eq!(laptop.field(&schema::HOUSEHOLDS, &id, "head_name"), Some(json!("褚一")));
}

on_both_backends!(
    acknowledged_commits_wait_for_the_disk,
    a_power_cut_after_an_acknowledged_push_loses_nothing,
    a_server_restored_from_a_backup_gets_back_everything_the_devices_held,
    a_cursor_the_server_refuses_makes_the_device_resend_instead_of_retrying_forever,
);
