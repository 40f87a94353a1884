//! The day's work over the links assistants have in town, on both backends, through the proxy's
//! slow link that drops: the text of the day reaches the server while a photo cannot upload at
//! all, the photo follows once it can, and a chunk cut in the middle of its body costs only the
//! bytes that were in flight.

use furrow::schema;
use furrow::sync::blobs::ChunkSizes;
use furrow::sync::{self, SyncEngine, SyncOptions};
use furrow_sync_tests::proxy::{Fault, FaultProxy, Link};
use furrow_sync_tests::{
    household_fields, new_listing, on_both_backends, test_options, wait_for, Backend, Device, OneVillage, ASSISTANT, ASSISTANT_PASSWORD, PATIENCE,
};
use serde_json::json;

fn device_through(proxy: &FaultProxy, options: SyncOptions) -> Device {
    let mut device = Device::new(&proxy.url);
    device.engine = SyncEngine::new(&proxy.url).expect("an engine").with_options(options);
    device.login(ASSISTANT, ASSISTANT_PASSWORD);
    device
}

/// A photo file of `size` bytes of noise (the server keeps bytes, it does not decode them).
fn photo(dir: &std::path::Path, size: usize, seed: u64) -> std::path::PathBuf {
    let mut rng = fastrand::Rng::with_seed(seed);
    let bytes: Vec<u8> = (0..size).map(|_| rng.u8(..)).collect();
    let path = dir.join(format!("photo-{seed}.jpg"));
    std::fs::write(&path, bytes).expect("the photo is written");
    path
}

fn text_first_over_a_slow_dropping_link_while_a_photo_cannot_upload(backend: Backend) {
    let OneVillage { server, village } = OneVillage::start(backend);
    let proxy = FaultProxy::start(server.address);
    let laptop = device_through(&proxy, test_options());
    laptop.sync().expect("the first sync on a clean link");

    // A day offline: households, visits of them, and a listing with a photo.
    let mut households = Vec::new();
    for index in 0..20 {
        households.push(laptop.save(&schema::HOUSEHOLDS, None, household_fields(&village, &format!("户主{index}"))).expect("saved"));
    }
    for (index, household) in households.iter().enumerate().take(4) {
        laptop
            .save(&schema::HOUSEHOLDS, Some(household), json!({ "notes": format!("今天走访 {index}") }))
            .expect("edited");
    }
    let listing = new_listing(&laptop, &village, Some(&households[0]));
    let dir = tempfile::tempdir().expect("a directory");
    let sha = sync::add_attachment(&mut laptop.store(), &photo(dir.path(), 200 * 1024, 7), "image/jpeg").expect("the photo is added");
    laptop
        .save(
            &schema::PHOTOS,
            None,
            json!({ "owner_type": "listing", "owner_id": listing, "sha256": sha, "bytes": 200 * 1024, "kind": "main", "mime": "image/jpeg" }),
        )
        .expect("the photo row is saved");
    assert!(laptop.pending() > 100);

    // In town: 64 kbit/s, a tenth of a second of round trip, a drop chance of 5% per 16 KB, and
    // every photo chunk cut on the way.
    proxy.set_link(Some(Link::new(64.0, 100, 0.05)), 11);
    proxy.block("/blobs/uploads/");
    let mut attempts = 0;
    while laptop.pending() > 0 {
        attempts += 1;
        assert!(attempts <= 30, "the text did not reach the server in 30 attempts");
        let outcome = laptop.sync();
        assert!(outcome.is_err(), "a sync with a photo that cannot go up does not call itself done");
    }
    assert_eq!(sync::attachment(&laptop.store(), &sha).expect("the state reads").expect("an attachment").state, "uploading");
    // Everything but the photo's bytes is on the server: a second device sees the day.
    let office = Device::new(&server.url);
    office.login(ASSISTANT, ASSISTANT_PASSWORD);
    office.sync().expect("the office syncs");
    for household in &households {
        assert!(office.field(&schema::HOUSEHOLDS, household, "head_name").is_some(), "household {household} arrived");
    }
    assert_eq!(office.field(&schema::HOUSEHOLDS, &households[2], "notes"), Some(json!("今天走访 2")));
    assert_eq!(server.query_count(&format!("SELECT count(*) FROM blobs WHERE sha256 = '{sha}'")), 0);

    // The photo goes up once chunks pass, still over the slow link that drops.
    proxy.unblock();
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts <= 40, "the photo did not go up in 40 attempts");
        if laptop.sync().is_ok() {
            break;
        }
    }
    assert_eq!(sync::attachment(&laptop.store(), &sha).expect("the state reads").expect("an attachment").state, "uploaded");
    assert_eq!(server.query_count(&format!("SELECT count(*) FROM blobs WHERE sha256 = '{sha}'")), 1);
    let duplicated =
        server.query_count("SELECT count(*) FROM (SELECT change_id FROM sync_changes GROUP BY change_id HAVING count(*) > 1) AS duplicated");
    assert_eq!(duplicated, 0, "nothing was applied twice");
}

fn a_chunk_cut_mid_body_costs_only_the_bytes_in_flight(backend: Backend) {
    let OneVillage { server, .. } = OneVillage::start(backend);
    let proxy = FaultProxy::start(server.address);
    let chunk = 256 * 1024;
    let laptop = device_through(&proxy, SyncOptions { chunks: ChunkSizes::fixed(chunk), ..test_options() });
    laptop.sync().expect("the first sync");
    let dir = tempfile::tempdir().expect("a directory");
    let size = 600 * 1024;
    let sha = sync::add_attachment(&mut laptop.store(), &photo(dir.path(), size, 3), "image/jpeg").expect("the photo is added");

    // The first chunk is cut after half its body reached the server.
    proxy.inject_nth("PATCH", "/blobs/uploads/", 0, Fault::DropMidRequest);
    assert!(laptop.sync().is_err(), "the cut chunk fails the attempt");
    // The server notices the cut body on its own time; the device only learns of it later, when
    // it asks where the upload stands.
    let held_by_server = || server.query_count("SELECT coalesce(max(upload_offset), 0) FROM uploads") as usize;
    let held = wait_for(PATIENCE, || Some(held_by_server()).filter(|held| *held > 0)).unwrap_or_else(held_by_server);
    assert_eq!(held, chunk / 2, "the server kept the half of the chunk that arrived");

    laptop.sync().expect("the upload resumes");
    assert_eq!(sync::attachment(&laptop.store(), &sha).expect("the state reads").expect("an attachment").state, "uploaded");
    let sent = proxy.traffic("/blobs/uploads/").request_body_bytes as usize;
    // What was sent beyond the photo is the part of the cut chunk that never arrived.
    assert_eq!(sent - size, chunk - held, "only the bytes in flight were sent again");
}

on_both_backends!(
    text_first_over_a_slow_dropping_link_while_a_photo_cannot_upload,
    a_chunk_cut_mid_body_costs_only_the_bytes_in_flight,
);
