//! A listing drafted offline, submitted twice and pushed over a link that drops the server's
//! answer: the platform records one listing and one submission, the listing goes to pending
//! review, and the platform's approval and a sale reach the device.

use furrow::codes::{ListingStatus, PhotoKind, PhotoOwner, Platform, ProductCategory, SaleUnit, Storage};
use furrow::domain::listing::{self, Listing, Photo, Product};
use furrow::domain::listing_rules;
use furrow::schema;
use furrow_sync_tests::proxy::{Fault, FaultProxy};
use furrow_sync_tests::{household_fields, on_both_backends, signed_in, Backend, Device, OneVillage, TestServer, ADMIN_TOKEN};
use serde_json::{json, Value};

/// A listing that passes every rule of its platform, with a square main image and a carousel
/// image, saved as a draft on the device; returns its id.
fn draft_listing(device: &Device, village_id: &str) -> String {
    let mut store = device.store();
    let product = listing::save_product(
        &mut store,
        &Product { village_id: Some(village_id.into()), name: Some("薄皮核桃".into()), category: Some(ProductCategory::Nuts), ..Product::default() },
    )
    .expect("the product saves");
    let draft = listing::save_listing(
        &mut store,
        &Listing {
            product_id: product.id,
            platform: Some(Platform::Taobao),
            title: Some("高坡村薄皮核桃 500g".into()),
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
    for (kind, width, height, digest) in [(PhotoKind::Main, 800, 800, 1), (PhotoKind::Carousel, 1200, 800, 2)] {
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

/// The platform's view of a listing's submissions.
fn submissions(server: &TestServer, listing: &str) -> Value {
    let response = reqwest::blocking::Client::new()
        .get(format!("{}/admin/v1/listings/{listing}/submissions", server.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .expect("the submissions endpoint answers");
    assert_eq!(response.status(), 200);
    response.json().expect("a JSON answer")
}

/// The server sequence number of the listing's stored moderation status: it moves only when the
/// field is written again.
fn moderation_written_at(server: &TestServer, listing: &str) -> i64 {
    server.query_count(&format!(
        "SELECT server_seq FROM sync_fields WHERE tbl = 'listings' AND row_id = '{listing}' AND field = 'moderation_status'"
    ))
}

fn a_listing_submitted_twice_and_retried_after_a_drop_is_one_submission(backend: Backend) {
    let OneVillage { server, village } = OneVillage::start(backend);
    let proxy = FaultProxy::start(server.address);
    let laptop = signed_in(&proxy.url);
    laptop.sync().expect("the first sync");

    // Offline: a household, and a listing drafted and submitted twice.
    let household = laptop.save(&schema::HOUSEHOLDS, None, household_fields(&village, "张三")).expect("the household saves");
    let listing = draft_listing(&laptop, &village);
    let first = listing_rules::submit(&mut laptop.store(), &listing).expect("a listing passing every rule is submitted");
    let key = first.submission_key.clone().expect("a submission key");
    let second = listing_rules::submit(&mut laptop.store(), &listing).expect("submitting again");
    assert_eq!(second.submission_key.as_deref(), Some(key.as_str()));

    // Back in town: the server commits the push and the answer is lost; the device sends the
    // same batch again.
    proxy.inject("/sync/v1/push", Fault::DropAfterCommit);
    let report = laptop.sync_until_idle().expect("the sync recovers from the drop");
    assert_eq!(proxy.injected(Fault::DropAfterCommit), 1);
    assert!(report.batches_resent >= 1, "{report:?}");
    assert_eq!(report.rejected, 0, "{report:?}");
    assert_eq!(laptop.pending(), 0);
    assert_eq!(server.query_count("SELECT count(*) FROM sync_rows WHERE tbl = 'listings'"), 1);
    assert_eq!(server.query_count("SELECT count(*) FROM listing_submissions"), 1);
    assert_eq!(
        server.query_count(&format!("SELECT count(*) FROM listing_submissions WHERE submission_key = '{key}' AND listing_id = '{listing}'")),
        1
    );
    let seen = submissions(&server, &listing);
    assert_eq!(seen["submissions"].as_array().map(Vec::len), Some(1), "{seen}");
    assert_eq!(seen["submissions"][0]["submission_key"], json!(key));
    assert_eq!(seen["submissions"][0]["submitted_by"], json!("lihua"));
    assert_eq!(seen["submissions"][0]["moderation_status"], json!("pending"));
    // The server's pending status comes back to the device.
    assert_eq!(laptop.field(&schema::LISTINGS, &listing, "moderation_status"), Some(json!("pending")));
    let pending_at = moderation_written_at(&server, &listing);

    // The same key again, from an edit of the submitted listing delivered twice, from a second
    // submit, and from a second device: nothing new is recorded or written.
    laptop.save(&schema::LISTINGS, Some(&listing), json!({ "stock_qty": 150 })).expect("the stock is edited");
    proxy.inject("/sync/v1/push", Fault::Duplicate);
    laptop.sync_until_idle().expect("a sync with a duplicate delivery");
    assert_eq!(proxy.injected(Fault::Duplicate), 1);
    listing_rules::submit(&mut laptop.store(), &listing).expect("a third submit");
    laptop.sync_until_idle().expect("a sync");
    let tablet = signed_in(&server.url);
    tablet.sync_until_idle().expect("the tablet's first sync");
    assert_eq!(tablet.field(&schema::LISTINGS, &listing, "submission_key"), Some(json!(key)));
    tablet.save(&schema::LISTINGS, Some(&listing), json!({ "stock_qty": 120 })).expect("the tablet edits the stock");
    tablet.sync_until_idle().expect("the tablet's sync");
    assert_eq!(server.query_count("SELECT count(*) FROM listing_submissions"), 1);
    assert_eq!(server.query_count("SELECT count(*) FROM sync_rows WHERE tbl = 'listings'"), 1);
    assert_eq!(moderation_written_at(&server, &listing), pending_at, "the pending status was not written again");

    // The platform approves the listing and records a sale credited to the household.
    server.moderate(&listing, json!({ "moderator": "zhao", "moderation_status": "approved", "platform_item_id": "TB-2001" }));
    let sale = server.record_sale(json!({
        "listing_id": listing, "platform": "taobao", "order_no": "O-77", "order_date": "2026-03-01",
        "qty": 3, "unit_price_fen": 3990, "gross_fen": 11970, "net_to_seller_fen": 11000, "status": "paid",
        "allocations": [{ "household_id": household, "amount_fen": 11000 }]
    }));
    let seen = submissions(&server, &listing);
    assert_eq!(seen["submissions"][0]["moderation_status"], json!("approved"));
    assert_eq!(seen["submissions"][0]["platform_item_id"], json!("TB-2001"));
    assert_eq!(seen["submissions"][0]["moderated_by"], json!("moderator:zhao"));

    laptop.sync_until_idle().expect("the sync after the verdict");
    assert_eq!(laptop.field(&schema::LISTINGS, &listing, "moderation_status"), Some(json!("approved")));
    assert_eq!(laptop.field(&schema::LISTINGS, &listing, "platform_item_id"), Some(json!("TB-2001")));
    assert_eq!(laptop.field(&schema::LISTINGS, &listing, "stock_qty"), Some(json!(120)));
    assert_eq!(laptop.field(&schema::SALES, &sale, "listing_id"), Some(json!(listing)));
    assert_eq!(laptop.field(&schema::SALES, &sale, "net_to_seller_fen"), Some(json!(11000)));
    assert_eq!(server.query_count("SELECT count(*) FROM listing_submissions"), 1);
}

fn a_listing_missing_what_it_requires_is_refused_whole_and_kept_on_the_device(backend: Backend) {
    let OneVillage { server, village } = OneVillage::start(backend);
    let laptop = signed_in(&server.url);
    laptop.sync().expect("the first sync");
    let listing = draft_listing(&laptop, &village);
    laptop.sync_until_idle().expect("the draft is pushed");
    // The listing's product is deleted on the server by another device; the laptop's later
    // submission names a product that no longer exists, so the server refuses that row whole
    // and records no submission, while the device keeps its value and lists the conflict.
    let product = laptop.field(&schema::LISTINGS, &listing, "product_id").and_then(|value| value.as_str().map(str::to_owned));
    let product = product.expect("the listing's product");
    let tablet = signed_in(&server.url);
    tablet.sync_until_idle().expect("the tablet's first sync");
    tablet.delete(&schema::PRODUCTS, &product).expect("the tablet deletes the product");
    tablet.sync_until_idle().expect("the tablet's sync");
    listing_rules::submit(&mut laptop.store(), &listing).expect("the laptop submits offline");
    let report = laptop.sync_until_idle().expect("the laptop's sync");
    assert!(report.rejected >= 1, "{report:?}");
    assert_eq!(server.query_count("SELECT count(*) FROM listing_submissions"), 0);
    let conflicts = furrow::sync::conflicts(&laptop.store(), false).expect("the conflicts list");
    let refused: Vec<_> = conflicts.iter().filter(|conflict| conflict.row_id == listing).collect();
    assert!(!refused.is_empty(), "{conflicts:?}");
    assert!(refused.iter().all(|conflict| conflict.reason.as_deref() == Some("invalid_record")), "{refused:?}");
}

on_both_backends!(
    a_listing_submitted_twice_and_retried_after_a_drop_is_one_submission,
    a_listing_missing_what_it_requires_is_refused_whole_and_kept_on_the_device,
);
