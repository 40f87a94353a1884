//! A day's work done offline and pushed in small batches: every record reaches the server whole.
//!
//! Re-editing a field that is still unsent queues its change again at the end of the outbox, so
//! one record's changes end up far apart in the queue. The server checks every record whole at
//! the end of each batch, so a new record whose required field fell into a later batch would be
//! refused, and the later field refused in turn because the record did not exist. The device
//! therefore sends every unsent change of a record in one batch, and a record after the records
//! it references; these tests push such a day with batch limits far below a day's work and check
//! that nothing is refused and that a fresh device ends with the same data.

use furrow::codes::{AttendanceStatus, ListingStatus, PhotoKind, PhotoOwner, Platform, ProductCategory, SaleUnit, Storage};
use furrow::domain::listing::{self, Listing, Photo, Product};
use furrow::domain::{listing_rules, training};
use furrow::schema;
use furrow::sync::outbox::BatchLimits;
use furrow::sync::{SyncEngine, SyncOptions};
use furrow_sync_tests::{
    household_fields, on_both_backends, signed_in, test_options, Backend, Device, OneVillage, TestServer, ASSISTANT, ASSISTANT_PASSWORD,
};
use serde_json::json;

/// A device signed in to `server` that pushes batches of at most `max_changes` changes.
fn device_with_batches_of(server: &TestServer, max_changes: usize) -> Device {
    let mut device = Device::new(&server.url);
    let options = SyncOptions { batch_limits: BatchLimits { max_changes, ..BatchLimits::default() }, ..test_options() };
    device.engine = SyncEngine::new(&server.url).expect("an engine").with_options(options);
    device.login(ASSISTANT, ASSISTANT_PASSWORD);
    device
}

/// A draft listing that passes every rule of its platform, with a main and a carousel photo;
/// returns its id.
fn draft_listing(device: &Device, village_id: &str, producer: &str, index: usize) -> String {
    let mut store = device.store();
    let product = listing::save_product(
        &mut store,
        &Product {
            village_id: Some(village_id.into()),
            name: Some(format!("薄皮核桃{index}")),
            category: Some(ProductCategory::Nuts),
            producer_household_id: Some(producer.into()),
            ..Product::default()
        },
    )
    .expect("the product saves");
    let draft = listing::save_listing(
        &mut store,
        &Listing {
            product_id: product.id,
            platform: Some(Platform::Taobao),
            title: Some(format!("高坡村薄皮核桃 500g 第{index}批")),
            description: Some("高坡村农户自家核桃树上打下的薄皮核桃，晒干后手工挑选。".into()),
            category: Some(ProductCategory::Nuts),
            price_fen: Some(3_990),
            unit: Some(SaleUnit::Jin),
            stock_qty: Some(200),
            shelf_life_days: Some(180),
            storage: Some(Storage::CoolDry),
            production_date: Some("2025-10-01".into()),
            status: Some(ListingStatus::Draft),
            ..Listing::default()
        },
    )
    .expect("the draft saves");
    let id = draft.id.expect("a listing id");
    for (kind, width, height, digest) in [(PhotoKind::Main, 800, 800, 2 * index + 1), (PhotoKind::Carousel, 1200, 800, 2 * index + 2)] {
        listing::save_photo(
            &mut store,
            &Photo {
                owner_type: Some(PhotoOwner::Listing),
                owner_id: Some(id.clone()),
                sha256: Some(format!("{digest:064x}")),
                bytes: Some(300_000),
                width_px: Some(width),
                height_px: Some(height),
                mime: Some("image/jpeg".into()),
                kind: Some(kind),
                ..Photo::default()
            },
        )
        .expect("the photo saves");
    }
    id
}

/// A day's work offline, through the core's write path: 60 households with two or three
/// members each, two trainings with attendees, visits, and five listings. Many records are
/// edited again after later work, so their changes are scattered through the outbox: households
/// get their head's name corrected (a required field) after their members were added, visits get
/// their date and follow-up date moved together (a cross-field rule), and listings get a new
/// title (required) and are then submitted. Returns the number of changes queued.
fn a_day_offline(device: &Device, village: &str) -> i64 {
    let mut households = Vec::new();
    let mut members = Vec::new();
    for index in 0..60 {
        let household = device.save(&schema::HOUSEHOLDS, None, household_fields(village, &format!("户主{index}"))).expect("the household saves");
        for number in 0..(2 + index % 2) {
            let member = device
                .save(
                    &schema::MEMBERS,
                    None,
                    json!({ "household_id": household, "name": format!("成员{index}-{number}"), "relation": if number == 0 { "head" } else { "son" } }),
                )
                .expect("the member saves");
            members.push(member);
        }
        households.push(household);
    }
    let mut sessions = Vec::new();
    for (index, topic) in ["photography", "pricing"].into_iter().enumerate() {
        let session = device
            .save(
                &schema::TRAINING_SESSIONS,
                None,
                json!({ "title": format!("电商培训{index}"), "topics": [topic], "format": "classroom",
                        "date": "2026-03-02", "village_id": village }),
            )
            .expect("the session saves");
        let attendees: Vec<String> = members.iter().skip(index * 15).take(15).cloned().collect();
        training::check_in(&mut device.store(), &session, &attendees, AttendanceStatus::Present).expect("the check-in");
        sessions.push(session);
    }
    let mut visits = Vec::new();
    for household in households.iter().step_by(4) {
        let visit = device
            .save(
                &schema::VISITS,
                None,
                json!({ "household_id": household, "visit_type": "home", "visited_at": "2026-03-02T09:30:00+08:00",
                        "summary": "入户了解春耕安排", "next_visit_date": "2026-04-02" }),
            )
            .expect("the visit saves");
        visits.push(visit);
    }
    let listings: Vec<String> = (0..5).map(|index| draft_listing(device, village, &households[index], index)).collect();
    // Later in the day: corrections of records made in the morning.
    for household in households.iter().step_by(3) {
        device.save(&schema::HOUSEHOLDS, Some(household), json!({ "head_name": "户主（已更正）", "group_name": "二组" })).expect("the correction");
    }
    for member in members.iter().step_by(5) {
        device.save(&schema::MEMBERS, Some(member), json!({ "name": "成员（已更正）", "phone": "13800000001" })).expect("the correction");
    }
    for session in &sessions {
        device.save(&schema::TRAINING_SESSIONS, Some(session), json!({ "title": "电商培训（下午场）", "duration_min": 90 })).expect("the session is edited");
    }
    for visit in &visits {
        // The visit moved a month later: both dates change, and the follow-up date is only valid
        // with the new visit date.
        device
            .save(&schema::VISITS, Some(visit), json!({ "visited_at": "2026-05-02T09:30:00+08:00", "next_visit_date": "2026-06-02" }))
            .expect("the visit is moved");
    }
    for (index, listing) in listings.iter().enumerate() {
        let mut current = listing::get_listing(&device.store(), listing).expect("the listing reads");
        current.title = Some(format!("高坡村薄皮核桃 新货 500g 第{index}批"));
        listing::save_listing(&mut device.store(), &current).expect("the title is changed");
        listing_rules::submit(&mut device.store(), listing).expect("the listing is submitted");
    }
    device.pending()
}

fn a_days_work_pushed_in_small_batches_arrives_whole(backend: Backend, max_changes: usize) {
    let OneVillage { server, village } = OneVillage::start(backend);
    let laptop = device_with_batches_of(&server, max_changes);
    laptop.sync().expect("the first sync");
    let queued = a_day_offline(&laptop, &village);
    assert!(queued > 1000, "{queued} changes queued");

    let report = laptop.sync_until_idle().expect("the day's work is pushed");
    let conflicts = furrow::sync::conflicts(&laptop.store(), false).expect("the conflicts list");
    assert!(conflicts.is_empty(), "batches of {max_changes}: {} conflicts, first {:?}", conflicts.len(), conflicts.first());
    assert_eq!(report.rejected, 0, "batches of {max_changes}: {report:?}");
    assert_eq!(laptop.pending(), 0);
    assert!(report.batches_sent as i64 >= queued / max_changes as i64, "{report:?}");
    assert_eq!(server.query_count("SELECT count(*) FROM sync_rows WHERE tbl = 'households'"), 60);
    assert_eq!(server.query_count("SELECT count(*) FROM sync_rows WHERE tbl = 'attendance'"), 30);
    assert_eq!(server.query_count("SELECT count(*) FROM listing_submissions"), 5);

    let fresh = device_with_batches_of(&server, max_changes);
    fresh.sync_until_idle().expect("a fresh device's first sync");
    assert_eq!(fresh.dump(), laptop.dump(), "batches of {max_changes}: the fresh device holds what the laptop made");
}

fn a_days_work_in_batches_of_seven_arrives_whole(backend: Backend) {
    a_days_work_pushed_in_small_batches_arrives_whole(backend, 7);
}

fn a_days_work_in_batches_of_fifty_arrives_whole(backend: Backend) {
    a_days_work_pushed_in_small_batches_arrives_whole(backend, 50);
}

/// The greatest sequence number of the device the server has acknowledged.
fn last_acked_seq(device: &Device) -> i64 {
    match device.store().state("last_acked_seq").expect("the state reads") {
        Some(rusqlite::types::Value::Integer(seq)) => seq,
        other => panic!("no acknowledged sequence number: {other:?}"),
    }
}

/// A device whose data is restored from an old copy hands out sequence numbers the server has
/// already applied from it. The server refuses such a batch (409 `seq_reused`) instead of taking
/// the new changes for old ones; the device renumbers its queue above the server's last applied
/// sequence number and sends it again, and nothing is lost.
fn a_device_restored_from_an_old_copy_renumbers_and_loses_nothing(backend: Backend) {
    let OneVillage { server, village } = OneVillage::start(backend);
    let laptop = signed_in(&server.url);
    laptop.sync().expect("the first sync");

    // Monday: a household is queued, and a copy of the device's data is taken before it is sent.
    let monday = laptop.save(&schema::HOUSEHOLDS, None, household_fields(&village, "周一")).expect("the household saves");
    let copy_dir = tempfile::tempdir().expect("a temporary directory");
    let copy = copy_dir.path().join("furrow.db");
    rusqlite::Connection::open(&laptop.path)
        .and_then(|connection| connection.execute("VACUUM INTO ?1", [copy.to_str().expect("a UTF-8 path")]))
        .expect("the device's data is copied");
    laptop.sync_until_idle().expect("Monday's sync");
    // Tuesday's work reaches the server too, so its sequence numbers are applied.
    let tuesday: Vec<String> = (0..4)
        .map(|index| laptop.save(&schema::HOUSEHOLDS, None, household_fields(&village, &format!("周二{index}"))).expect("the household saves"))
        .collect();
    laptop.sync_until_idle().expect("Tuesday's sync");
    let applied_before_restore = last_acked_seq(&laptop);
    drop(laptop);

    // The laptop's data is restored from Monday's copy, and Wednesday's work is done on it.
    let restored = Device::open(&copy, &server.url);
    restored.login(ASSISTANT, ASSISTANT_PASSWORD);
    let wednesday = restored.save(&schema::HOUSEHOLDS, None, household_fields(&village, "周三")).expect("the household saves");
    restored.save(&schema::HOUSEHOLDS, Some(&monday), json!({ "notes": "周三回访" })).expect("Monday's household is edited");
    let report = restored.sync_until_idle().expect("the restored device syncs");
    let conflicts = furrow::sync::conflicts(&restored.store(), false).expect("the conflicts list");
    assert!(conflicts.is_empty(), "{conflicts:?}");
    assert_eq!(report.rejected, 0, "{report:?}");
    assert_eq!(restored.pending(), 0);
    // The copy numbered its new changes at or below what the server had applied; they were
    // refused, renumbered above it and applied.
    assert!(last_acked_seq(&restored) > applied_before_restore, "the restored device's changes were renumbered");
    let server_head = |id: &str| {
        server.query_count(&format!(
            "SELECT count(*) FROM sync_fields WHERE tbl = 'households' AND row_id = '{id}' AND field = 'head_name'"
        ))
    };
    assert_eq!(server_head(&wednesday), 1, "Wednesday's household reached the server");
    assert_eq!(
        server.query_count(&format!("SELECT count(*) FROM sync_fields WHERE row_id = '{monday}' AND field = 'notes' AND value = '\"周三回访\"'")),
        1,
        "the edit of Monday's household reached the server"
    );
    for household in &tuesday {
        assert_eq!(restored.field(&schema::HOUSEHOLDS, household, "head_name").map(|name| name.is_string()), Some(true));
    }
    let fresh = signed_in(&server.url);
    fresh.sync_until_idle().expect("a fresh device's first sync");
    assert_eq!(fresh.dump(), restored.dump());
}

on_both_backends!(
    a_days_work_in_batches_of_seven_arrives_whole,
    a_days_work_in_batches_of_fifty_arrives_whole,
    a_device_restored_from_an_old_copy_renumbers_and_loses_nothing,
);
