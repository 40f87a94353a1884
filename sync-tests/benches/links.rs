//! The day's work over the links assistants meet in town, printing figures: for each link, the
//! time until the text of the day is on the server, the time until everything is (photos
//! included), the bytes on the wire over those of a run on a clean link, and whether anything was
//! lost or applied twice on the server.
//!
//! The day (scaled down so the whole run takes minutes): 200 households, each edited once after
//! it was made, 10 visits, and 5 listings with a photo of 120 KB each. `FURROW_LINK_PHOTO_KB`
//! changes the photo size. Run with `cargo bench -p furrow-sync-tests --bench links`.

use std::time::{Duration, Instant};

use furrow::schema;
use furrow::sync::{self, Progress, SyncEngine, SyncOptions};
use furrow_sync_tests::proxy::{FaultProxy, Link};
use furrow_sync_tests::{household_fields, new_listing, Device, TestServer};
use serde_json::json;

const VILLAGE: &str = "530102001001";

struct Outcome {
    text: Duration,
    everything: Duration,
    bytes: u64,
    lost: i64,
    duplicated: i64,
}

fn day_over(link: Option<Link>, seed: u64, photo_bytes: usize) -> Outcome {
    let server = TestServer::start();
    let village = server.add_village(VILLAGE, "小河村");
    server.add_assistant("lihua", "li-password-1", &[VILLAGE]);
    let proxy = FaultProxy::start(server.address);
    let mut laptop = Device::new(&proxy.url);
    laptop.engine = SyncEngine::new(&proxy.url).expect("an engine").with_options(SyncOptions::default());
    laptop.login("lihua", "li-password-1");
    laptop.sync().expect("the first sync on a clean link");

    let mut households = Vec::new();
    for index in 0..200 {
        households.push(laptop.save(&schema::HOUSEHOLDS, None, household_fields(&village, &format!("户主{index}"))).expect("saved"));
    }
    for (index, household) in households.iter().enumerate() {
        laptop.save(&schema::HOUSEHOLDS, Some(household), json!({ "notes": format!("回访记录 {index}") })).expect("edited");
    }
    for household in households.iter().take(10) {
        laptop
            .save(
                &schema::VISITS,
                None,
                json!({ "household_id": household, "visited_at": "2026-11-30T10:00:00+08:00", "purpose": "follow_up", "notes": "电商经营情况良好" }),
            )
            .ok();
    }
    let dir = tempfile::tempdir().expect("a directory");
    let mut photos = Vec::new();
    for index in 0..5u64 {
        let listing = new_listing(&laptop, &village, Some(&households[index as usize]));
        let mut rng = fastrand::Rng::with_seed(index + 100);
        let path = dir.path().join(format!("photo-{index}.jpg"));
        std::fs::write(&path, (0..photo_bytes).map(|_| rng.u8(..)).collect::<Vec<u8>>()).expect("the photo is written");
        let sha = sync::add_attachment(&mut laptop.store(), &path, "image/jpeg").expect("the photo is added");
        laptop
            .save(
                &schema::PHOTOS,
                None,
                json!({ "owner_type": "listing", "owner_id": listing, "sha256": sha, "bytes": photo_bytes, "kind": "main", "mime": "image/jpeg" }),
            )
            .expect("the photo row is saved");
        photos.push(sha);
    }
    proxy.reset_traffic();
    proxy.set_link(link, seed);
    let started = Instant::now();
    // The text is on the server when the first photo chunk starts (photos go after the text), or
    // when a sync ends with nothing pending.
    let text: std::cell::Cell<Option<Duration>> = std::cell::Cell::new(None);
    let note_text = |event: &Progress| {
        if matches!(event, Progress::Uploading { .. }) && text.get().is_none() {
            text.set(Some(started.elapsed()));
        }
    };
    // Syncs are retried as the app's background sync retries them; the clock is the wall's.
    let outcome = loop {
        let result = laptop.engine.sync(&laptop.store, &note_text);
        if text.get().is_none() && laptop.pending() == 0 {
            text.set(Some(started.elapsed()));
        }
        if result.is_ok() {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(1800), "the day did not reach the server in half an hour");
        std::thread::sleep(Duration::from_millis(200));
    };
    let traffic = proxy.traffic("/");
    let on_server = server.query_count("SELECT count(*) FROM sync_rows WHERE tbl = 'households'");
    let blobs = server.query_count("SELECT count(*) FROM blobs");
    let duplicated =
        server.query_count("SELECT count(*) FROM (SELECT change_id FROM sync_changes GROUP BY change_id HAVING count(*) > 1) AS duplicated");
    Outcome {
        text: text.get().unwrap_or(outcome),
        everything: outcome,
        bytes: traffic.request_bytes + traffic.response_bytes,
        lost: (households.len() as i64 - on_server) + (photos.len() as i64 - blobs),
        duplicated,
    }
}

fn main() {
    let photo_kb: usize = std::env::var("FURROW_LINK_PHOTO_KB").ok().and_then(|text| text.parse().ok()).unwrap_or(120);
    let links: [(&str, Option<Link>); 4] = [
        ("clean loopback", None),
        ("64 kbit/s, 800 ms RTT", Some(Link::new(64.0, 800, 0.0))),
        ("64 kbit/s, 800 ms RTT, 10% drops per 16 KB", Some(Link::new(64.0, 800, 0.10))),
        ("200 kbit/s, 300 ms RTT, 3% drops per 16 KB", Some(Link::new(200.0, 300, 0.03))),
    ];
    let mut clean_bytes = 0;
    for (index, (name, link)) in links.into_iter().enumerate() {
        let outcome = day_over(link, 40 + index as u64, photo_kb * 1024);
        if link.is_none() {
            clean_bytes = outcome.bytes;
        }
        println!(
            "{name}: text on the server after {:.1} s, everything after {:.1} s; {:.2} of the clean run's bytes; {} missing, {} applied twice",
            outcome.text.as_secs_f64(),
            outcome.everything.as_secs_f64(),
            outcome.bytes as f64 / clean_bytes.max(1) as f64,
            outcome.lost,
            outcome.duplicated
        );
    }
}
