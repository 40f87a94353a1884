//! What an assistant notices, end to end against the real server on loopback: two laptops of one
//! assistant, a second assistant in another village, and the platform moderating a listing and
//! recording a sale, all converging; conflicts shown honestly; sign-in kept offline.

use furrow::schema;
use furrow::sync::{self, Resolution, SyncState};
use furrow_sync_tests::{household_fields, new_listing, on_both_backends, Backend, Device, TestServer};
use serde_json::json;

const V1: &str = "530102001001";
const V2: &str = "530102001002";

fn later() {
    std::thread::sleep(std::time::Duration::from_millis(3));
}

fn two_laptops_a_second_village_and_the_platform_converge(backend: Backend) {
    let server = TestServer::start_on(backend);
    let v1 = server.add_village(V1, "小河村");
    let v2 = server.add_village(V2, "大山村");
    server.add_assistant("lihua", "li-password-1", &[V1]);
    server.add_assistant("wang", "stone-bridge-22", &[V2]);

    let laptop = Device::new(&server.url);
    let tablet = Device::new(&server.url);
    let other = Device::new(&server.url);
    laptop.login("lihua", "li-password-1");
    tablet.login("lihua", "li-password-1");
    other.login("wang", "stone-bridge-22");
    for device in [&laptop, &tablet, &other] {
        device.sync().expect("first sync");
    }
    // Each assistant sees their own village only.
    assert!(laptop.field(&schema::VILLAGES, &v1, "name").is_some());
    assert!(laptop.field(&schema::VILLAGES, &v2, "name").is_none());
    assert!(other.field(&schema::VILLAGES, &v2, "name").is_some());

    // Offline work on both laptops and in the other village.
    let household = laptop.save(&schema::HOUSEHOLDS, None, household_fields(&v1, "张三")).unwrap();
    let listing = new_listing(&laptop, &v1, Some(&household));
    let foreign = other.save(&schema::HOUSEHOLDS, None, household_fields(&v2, "王五")).unwrap();
    laptop.sync().unwrap();
    tablet.sync().unwrap();
    assert_eq!(tablet.field(&schema::HOUSEHOLDS, &household, "head_name"), Some(json!("张三")));
    laptop.save(&schema::HOUSEHOLDS, Some(&household), json!({ "phone": "13800000001", "notes": "笔记本" })).unwrap();
    later();
    tablet.save(&schema::HOUSEHOLDS, Some(&household), json!({ "notes": "平板", "group_name": "一组" })).unwrap();

    // The platform approves the listing and records a sale credited to the household.
    server.moderate(&listing, json!({ "moderator": "zhao", "moderation_status": "approved", "platform_item_id": "TB-1001" }));
    let sale = server.record_sale(json!({
        "listing_id": listing, "platform": "taobao", "order_no": "O-1", "order_date": "2026-03-01",
        "qty": 2, "unit_price_fen": 3990, "gross_fen": 7980, "net_to_seller_fen": 7500, "status": "paid",
        "allocations": [{ "household_id": household, "amount_fen": 7500 }]
    }));

    for device in [&laptop, &tablet, &other, &laptop, &tablet] {
        device.sync().expect("sync");
    }
    assert_eq!(laptop.pending() + tablet.pending() + other.pending(), 0);
    assert_eq!(laptop.dump(), tablet.dump(), "both laptops hold the same data and clocks");
    assert_eq!(laptop.field(&schema::HOUSEHOLDS, &household, "phone"), Some(json!("13800000001")));
    assert_eq!(laptop.field(&schema::HOUSEHOLDS, &household, "notes"), Some(json!("平板")), "the later edit wins");
    assert_eq!(laptop.field(&schema::HOUSEHOLDS, &household, "group_name"), Some(json!("一组")));
    assert_eq!(tablet.field(&schema::LISTINGS, &listing, "moderation_status"), Some(json!("approved")));
    assert_eq!(tablet.field(&schema::LISTINGS, &listing, "platform_item_id"), Some(json!("TB-1001")));
    assert_eq!(laptop.field(&schema::SALES, &sale, "gross_fen"), Some(json!(7980)));
    let credited = furrow::domain::sale::of_household(&laptop.store(), &household).unwrap();
    assert_eq!(credited.len(), 1, "the sale is credited to the household once");

    // The other village never saw any of it, and the first assistant never saw theirs.
    assert!(other.field(&schema::HOUSEHOLDS, &household, "head_name").is_none());
    assert!(other.field(&schema::LISTINGS, &listing, "title").is_none());
    assert!(laptop.field(&schema::HOUSEHOLDS, &foreign, "head_name").is_none());

    // A new laptop's first sync equals what the others hold.
    let fresh = Device::new(&server.url);
    fresh.login("lihua", "li-password-1");
    fresh.sync().unwrap();
    assert_eq!(fresh.dump(), laptop.dump());
    let fresh_other = Device::new(&server.url);
    fresh_other.login("wang", "stone-bridge-22");
    fresh_other.sync().unwrap();
    assert_eq!(fresh_other.dump(), other.dump());
}

fn a_price_changed_by_the_platform_meanwhile_is_rejected_shown_and_can_be_kept(backend: Backend) {
    let server = TestServer::start_on(backend);
    let v1 = server.add_village(V1, "小河村");
    server.add_assistant("lihua", "li-password-1", &[V1]);
    let laptop = Device::new(&server.url);
    laptop.login("lihua", "li-password-1");
    laptop.sync().unwrap();
    let listing = new_listing(&laptop, &v1, None);
    laptop.sync().unwrap();
    // A second laptop changes the price and syncs first; the first, offline, changes it too.
    let tablet = Device::new(&server.url);
    tablet.login("lihua", "li-password-1");
    tablet.sync().unwrap();
    tablet.save(&schema::LISTINGS, Some(&listing), json!({ "price_fen": 3500 })).unwrap();
    tablet.sync().unwrap();
    later();
    laptop.save(&schema::LISTINGS, Some(&listing), json!({ "price_fen": 4200 })).unwrap();
    let report = laptop.sync().unwrap();
    assert_eq!(report.rejected, 1);
    assert_eq!(laptop.field(&schema::LISTINGS, &listing, "price_fen"), Some(json!(3500)), "the server's price is shown");
    let state = sync::record_state(&laptop.store(), "listings", &listing).unwrap();
    assert_eq!(state.state, SyncState::Rejected);
    let price = state.fields.iter().find(|field| field.field == "price_fen").unwrap();
    assert_eq!(price.reason.as_deref(), Some("stale_base"));
    let conflicts = sync::conflicts(&laptop.store(), false).unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!((conflicts[0].local_value.clone(), conflicts[0].remote_value.clone()), (json!(4200), Some(json!(3500))));
    sync::resolve_conflict(&mut laptop.store(), conflicts[0].id, Resolution::KeepMine).unwrap();
    laptop.sync().unwrap();
    tablet.sync().unwrap();
    assert_eq!(tablet.field(&schema::LISTINGS, &listing, "price_fen"), Some(json!(4200)));
    assert_eq!(sync::record_state(&laptop.store(), "listings", &listing).unwrap().state, SyncState::Accepted);
    assert_eq!(laptop.dump(), tablet.dump());
}

fn the_assistant_works_offline_after_sign_in_and_signs_in_again_without_losing_anything(backend: Backend) {
    let server = TestServer::start_on(backend);
    let v1 = server.add_village(V1, "小河村");
    server.add_assistant("lihua", "li-password-1", &[V1]);
    let laptop = Device::new(&server.url);
    laptop.login("lihua", "li-password-1");
    laptop.sync().unwrap();
    // The server goes away; work goes on and sync says it is offline.
    let url = server.url.clone();
    drop(server);
    let household = laptop.save(&schema::HOUSEHOLDS, None, household_fields(&v1, "李四")).unwrap();
    let error = laptop.sync().unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert!(laptop.pending() > 0);
    let account = sync::signed_in_account(&laptop.store()).unwrap().expect("the account is kept");
    assert_eq!(account.username, "lihua");
    assert_eq!(account.server_url, url);
    // The app restarts from the same file and still knows the account and the queue.
    let queued = laptop.pending();
    let restarted = laptop.restart();
    assert_eq!(restarted.pending(), queued);
    assert!(restarted.field(&schema::HOUSEHOLDS, &household, "head_name").is_some());
}

fn a_revoked_session_asks_to_sign_in_again_and_then_resumes_with_the_same_outbox(backend: Backend) {
    let server = TestServer::start_on(backend);
    let v1 = server.add_village(V1, "小河村");
    server.add_assistant("lihua", "li-password-1", &[V1]);
    let laptop = Device::new(&server.url);
    laptop.login("lihua", "li-password-1");
    laptop.sync().unwrap();
    // Another sign-out revokes this laptop's tokens on the server.
    laptop.engine.logout(&laptop.store).unwrap();
    let household = laptop.save(&schema::HOUSEHOLDS, None, household_fields(&v1, "赵六")).unwrap();
    let queued = laptop.pending();
    let error = laptop.sync().unwrap_err();
    assert_eq!(error.code(), "sign_in_required");
    assert_eq!(laptop.pending(), queued, "nothing is discarded");
    let wrong = laptop.engine.login(&laptop.store, "lihua", "not-the-password", "laptop").unwrap_err();
    assert_eq!(wrong.code(), "wrong_credentials");
    laptop.login("lihua", "li-password-1");
    laptop.sync().unwrap();
    assert_eq!(laptop.pending(), 0);
    let fresh = Device::new(&server.url);
    fresh.login("lihua", "li-password-1");
    fresh.sync().unwrap();
    assert_eq!(fresh.field(&schema::HOUSEHOLDS, &household, "head_name"), Some(json!("赵六")));
}

fn a_photo_upload_resumes_after_a_drop_and_dedups_on_a_second_device(backend: Backend) {
    use furrow_sync_tests::proxy::{Fault, FaultProxy};
    let server = TestServer::start_on(backend);
    server.add_village(V1, "小河村");
    server.add_assistant("lihua", "li-password-1", &[V1]);
    let proxy = FaultProxy::start(server.address);
    let laptop = Device::new(&proxy.url);
    laptop.login("lihua", "li-password-1");
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("walnut.jpg");
    let bytes: Vec<u8> = (0..1_300_000u32).map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&photo, &bytes).unwrap();
    let sha = sync::add_attachment(&mut laptop.store(), &photo, "image/jpeg").unwrap();
    // The second chunk's answer is lost after the server stored it.
    proxy.inject("/blobs/uploads/", Fault::DropMidRequest);
    proxy.inject("/blobs/uploads/", Fault::DropAfterCommit);
    let report = laptop.sync_until_idle().unwrap();
    assert_eq!(report.uploads, 1);
    let attachment = sync::attachment(&laptop.store(), &sha).unwrap().unwrap();
    assert_eq!(attachment.state, "uploaded");
    let patches = proxy.traffic("/blobs/uploads/");
    // Three chunks of 512 KB; at most one chunk is sent again per drop.
    assert!(patches.request_body_bytes <= bytes.len() as u64 + 2 * 512 * 1024, "{patches:?}");
    let downloaded = reqwest::blocking::Client::new()
        .get(format!("{}/blobs/{sha}", server.url))
        .bearer_auth(laptop.access_token())
        .send()
        .unwrap();
    assert!(downloaded.status().is_success(), "{}", downloaded.status());
    assert_eq!(downloaded.bytes().unwrap().as_ref(), bytes.as_slice(), "the server holds exactly the photo");
    // The same photo on another device is not uploaded again.
    let tablet = Device::new(&server.url);
    tablet.login("lihua", "li-password-1");
    sync::add_attachment(&mut tablet.store(), &photo, "image/jpeg").unwrap();
    let before = proxy.traffic("/blobs/uploads/").requests;
    tablet.sync().unwrap();
    assert_eq!(sync::attachment(&tablet.store(), &sha).unwrap().unwrap().state, "uploaded");
    assert_eq!(proxy.traffic("/blobs/uploads/").requests, before);
}

/// PostgreSQL is the backend for several stateless server instances sharing one database. Two
/// laptops of one assistant, each behind another instance (one of them over a link that drops
/// and delivers twice), save and sync at the same time; the platform writes through either
/// instance. Everyone converges, nothing is applied twice, and a laptop whose sign-in and cursor
/// came from one instance carries on with the other.
#[test]
fn two_server_instances_sharing_one_postgresql_database_serve_laptops_that_converge() {
    use furrow_sync_tests::proxy::FaultProxy;
    let first = TestServer::start_on(Backend::Postgres);
    let second = first.start_another_instance();
    assert_ne!(first.url, second.url);
    let v1 = first.add_village(V1, "小河村");
    second.add_assistant("lihua", "li-password-1", &[V1]);
    let proxy = FaultProxy::start(second.address);
    let laptop = Device::new(&first.url);
    let tablet = Device::new(&proxy.url);
    for device in [&laptop, &tablet] {
        device.login("lihua", "li-password-1");
        device.sync().expect("first sync");
    }
    let shared = laptop.save(&schema::HOUSEHOLDS, None, household_fields(&v1, "张三")).unwrap();
    let listing = new_listing(&laptop, &v1, Some(&shared));
    laptop.sync().unwrap();
    tablet.sync().unwrap();
    assert_eq!(tablet.field(&schema::LISTINGS, &listing, "title"), Some(json!("高山核桃 500g")));

    // Both laptops save and sync at the same time, through different instances: each creates
    // households and edits its own field of the shared one; the tablet's link is faulty.
    proxy.randomise(11, 0.25, "/sync/");
    let work = |device: Device, name: &'static str, field: &'static str| {
        let village = v1.clone();
        let shared = shared.clone();
        std::thread::spawn(move || {
            let mut created = Vec::new();
            for round in 0..12 {
                let id = device.save(&schema::HOUSEHOLDS, None, household_fields(&village, &format!("{name}{round}"))).unwrap();
                created.push(id);
                device.save(&schema::HOUSEHOLDS, Some(&shared), json!({ field: format!("{name} {round}") })).unwrap();
                // Failures are the faults at work; the outbox keeps what was not sent.
                let _ = device.sync();
            }
            (device, created)
        })
    };
    let laptop_work = work(laptop, "笔记本", "notes");
    let tablet_work = work(tablet, "平板", "group_name");
    let (laptop, laptop_created) = laptop_work.join().unwrap();
    let (tablet, tablet_created) = tablet_work.join().unwrap();
    second.moderate(&listing, json!({ "moderator": "zhao", "moderation_status": "approved", "platform_item_id": "TB-2002" }));
    assert!(proxy.injected_total() > 0, "the tablet's link dropped or duplicated something");
    proxy.heal();
    for device in [&laptop, &tablet, &laptop, &tablet] {
        let report = device.sync_until_idle().expect("sync settles");
        assert_eq!(report.resets, 0, "{report:?}");
    }
    assert_eq!(laptop.pending() + tablet.pending(), 0);
    assert_eq!(laptop.dump(), tablet.dump(), "the laptops converge across instances");
    for id in laptop_created.iter().chain(&tablet_created) {
        assert!(tablet.field(&schema::HOUSEHOLDS, id, "head_name").is_some(), "household {id} reached both laptops");
    }
    assert_eq!(tablet.field(&schema::HOUSEHOLDS, &shared, "notes"), Some(json!("笔记本 11")));
    assert_eq!(laptop.field(&schema::HOUSEHOLDS, &shared, "group_name"), Some(json!("平板 11")));
    assert_eq!(laptop.field(&schema::LISTINGS, &listing, "platform_item_id"), Some(json!("TB-2002")));
    for server in [&first, &second] {
        let fresh = Device::new(&server.url);
        fresh.login("lihua", "li-password-1");
        fresh.sync().unwrap();
        assert_eq!(fresh.dump(), laptop.dump(), "a new laptop's first sync through {} equals the others", server.url);
    }
    let duplicated = first
        .query_count("SELECT count(*) FROM (SELECT change_id FROM sync_changes GROUP BY change_id HAVING count(*) > 1) AS duplicated");
    assert_eq!(duplicated, 0, "a change was applied twice");

    // The laptop moves to the other instance with the sign-in and cursor the first one issued.
    let moved = Device::open(&laptop.path, &second.url);
    moved.save(&schema::HOUSEHOLDS, Some(&shared), json!({ "phone": "13800000002" })).unwrap();
    let report = moved.sync().expect("the other instance takes the first one's token and cursor");
    assert_eq!((report.applied, report.resets), (1, 0), "{report:?}");
    tablet.sync().unwrap();
    assert_eq!(tablet.field(&schema::HOUSEHOLDS, &shared, "phone"), Some(json!("13800000002")));
    drop(moved);
    drop(first);
    // The database outlives the first instance while the second still serves it.
    let late = Device::new(&second.url);
    late.login("lihua", "li-password-1");
    late.sync().unwrap();
    assert_eq!(late.dump(), tablet.dump());
}

on_both_backends!(
    two_laptops_a_second_village_and_the_platform_converge,
    a_price_changed_by_the_platform_meanwhile_is_rejected_shown_and_can_be_kept,
    the_assistant_works_offline_after_sign_in_and_signs_in_again_without_losing_anything,
    a_revoked_session_asks_to_sign_in_again_and_then_resumes_with_the_same_outbox,
    a_photo_upload_resumes_after_a_drop_and_dedups_on_a_second_device,
);
