//! A listing against its platform's rules: each rule's state as the assistant types, drafts saved
//! while failing, submission only when every rule passes, and one submission however often it is
//! asked for.

mod common;

use common::Fixture;
use furrow::codes::{ListingStatus, PhotoKind, PhotoOwner, Platform, ProductCategory, SaleUnit, Storage};
use furrow::domain::listing::{self, Listing, Photo, Product};
use furrow::domain::listing_rules::{self, RuleCheck};
use furrow::domain::reference::{self, PlatformRule};

fn rule<'a>(checks: &'a [RuleCheck], name: &str) -> &'a RuleCheck {
    checks.iter().find(|check| check.rule == name).unwrap_or_else(|| panic!("rule {name} in {checks:?}"))
}

fn setup(category: ProductCategory) -> (Fixture, Listing) {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    let product = listing::save_product(
        &mut fixture.store,
        &Product { village_id: Some(village), name: Some("薄皮核桃".into()), category: Some(category), ..Product::default() },
    )
    .unwrap();
    let draft = Listing {
        product_id: product.id,
        platform: Some(Platform::Taobao),
        title: Some("核".repeat(31)),
        category: Some(category),
        price_fen: Some(3_990),
        unit: Some(SaleUnit::Jin),
        status: Some(ListingStatus::Draft),
        ..Listing::default()
    };
    let saved = listing::save_listing(&mut fixture.store, &draft).expect("a draft is saved although it fails rules");
    (fixture, saved)
}

fn photo_for(fixture: &mut Fixture, listing: &str, kind: PhotoKind, width: i64, height: i64, bytes: i64) -> Photo {
    listing::save_photo(
        &mut fixture.store,
        &Photo {
            owner_type: Some(PhotoOwner::Listing),
            owner_id: Some(listing.into()),
            sha256: Some(format!("{:064x}", width * 100_000 + height)),
            bytes: Some(bytes),
            width_px: Some(width),
            height_px: Some(height),
            mime: Some("image/jpeg".into()),
            kind: Some(kind),
            ..Photo::default()
        },
    )
    .unwrap()
}

#[test]
fn each_rule_shows_its_state_in_both_languages_and_follows_the_rule_table() {
    let (mut fixture, draft) = setup(ProductCategory::Nuts);
    let checks = listing_rules::check_rules(&fixture.store, &draft, &[]);
    let title = rule(&checks, "title_units");
    assert!(!title.passed);
    assert!(title.message_zh.contains("当前 62 字节"), "{}", title.message_zh);
    assert!(title.message_en.contains("now 62 bytes"), "{}", title.message_en);
    for failing in ["image_count", "main_square", "stock_qty", "shelf_life", "storage", "production_date", "description_chars"] {
        assert!(!rule(&checks, failing).passed, "{failing}");
    }
    assert!(rule(&checks, "price_fen").passed);
    assert!(checks.iter().all(|check| check.rule != "production_license"), "nuts are not processed food");

    // The limit is data: a stricter platform rule changes the check without a new version.
    reference::set_platform_rule(
        &mut fixture.store,
        &PlatformRule { platform: "taobao".into(), rule: "title_units".into(), min_value: Some(1), max_value: Some(20), unit: "units".into(), source: "test".into() },
    )
    .unwrap();
    let short = Listing { title: Some("高坡村精选薄皮核桃500g".into()), ..draft.clone() };
    assert!(!rule(&listing_rules::check_rules(&fixture.store, &short, &[]), "title_units").passed, "22 units break a 20-unit rule");
}

#[test]
fn a_listing_is_submitted_only_when_every_rule_passes_and_only_once() {
    let (mut fixture, draft) = setup(ProductCategory::Processed);
    let id = draft.id.clone().unwrap();
    let before = fixture.fingerprint();
    let refused = listing_rules::submit(&mut fixture.store, &id).expect_err("a failing listing is not submitted");
    let codes: Vec<_> = refused.field_errors().iter().map(|error| error.code.as_str()).collect();
    for code in ["rule_title_units", "rule_image_count", "rule_main_square", "rule_production_license", "rule_shelf_life"] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    assert_eq!(fixture.fingerprint(), before, "a refused submission changes nothing");

    // Fix what the checks showed.
    let fixed = Listing {
        title: Some("高坡村手工核桃酥 500g".into()),
        description: Some("高坡村农户手工制作的核桃酥，选用本地薄皮核桃，现做现发。".repeat(2)),
        stock_qty: Some(200),
        shelf_life_days: Some(90),
        storage: Some(Storage::CoolDry),
        production_date: Some("2024-10-01".into()),
        production_license_no: Some("SC12352263300012".into()),
        ..draft
    };
    listing::save_listing(&mut fixture.store, &fixed).unwrap();
    photo_for(&mut fixture, &id, PhotoKind::Main, 800, 800, 300_000);
    photo_for(&mut fixture, &id, PhotoKind::Carousel, 1200, 800, 400_000);
    let photos = listing::photos_of(&fixture.store, PhotoOwner::Listing, &id).unwrap();
    let checks = listing_rules::check_rules(&fixture.store, &listing::get_listing(&fixture.store, &id).unwrap(), &photos);
    assert!(checks.iter().all(|check| check.passed), "{:?}", checks.iter().filter(|check| !check.passed).collect::<Vec<_>>());

    let submitted = listing_rules::submit(&mut fixture.store, &id).unwrap();
    assert_eq!(submitted.status, Some(ListingStatus::Submitted));
    let key = submitted.submission_key.clone().expect("a submission key");
    let again = listing_rules::submit(&mut fixture.store, &id).unwrap();
    assert_eq!(again.submission_key.as_deref(), Some(key.as_str()), "submitting twice is one submission");

    // An ordinary save (the form sends no key) keeps the submission as it was.
    let mut edited = again.clone();
    edited.submission_key = None;
    edited.stock_qty = Some(150);
    let saved = listing::save_listing(&mut fixture.store, &edited).unwrap();
    assert_eq!(saved.submission_key.as_deref(), Some(key.as_str()));
    let queued = fixture.count("SELECT count(*) FROM sync_outbox WHERE tbl = 'listings' AND field = 'submission_key'");
    assert_eq!(queued, 1, "the key travels to the platform once");
}

#[test]
fn a_listing_shows_its_sales_newest_first_with_what_reached_households() {
    let (fixture, draft) = setup(ProductCategory::Nuts);
    let id = draft.id.clone().unwrap();
    assert!(furrow::domain::sale::of_listing(&fixture.store, &id).unwrap().is_empty());
    let household = "a-household";
    // Sales arrive from the platform by sync; here they are written as a sync would.
    let conn = rusqlite::Connection::open(fixture.path()).unwrap();
    let scope = draft.scope_id.clone().unwrap();
    for (sale, date, status, qty, gross) in
        [("s1", "2024-11-01", "completed", 2, 7_980), ("s2", "2024-11-03", "shipped", 1, 3_990), ("s3", "2024-11-02", "refunded", 1, 3_990)]
    {
        conn.execute(
            "INSERT INTO sales (id, scope_id, listing_id, platform, order_no, order_date, qty, unit_price_fen, gross_fen, net_to_seller_fen, status)
             VALUES (?1, ?2, ?3, 'taobao', ?1 || '-order', ?4, ?5, 3990, ?6, ?6 - 100, ?7)",
            rusqlite::params![sale, scope, id, date, qty, gross, status],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO sale_allocations (id, scope_id, sale_id, household_id, amount_fen) VALUES ('a1', ?1, 's1', ?2, 7000)",
        rusqlite::params![scope, household],
    )
    .unwrap();
    let sales = furrow::domain::sale::of_listing(&fixture.store, &id).unwrap();
    let order: Vec<_> = sales.iter().map(|sale| sale.sale_id.as_str()).collect();
    assert_eq!(order, ["s2", "s3", "s1"], "newest first, refunded ones shown too");
    assert_eq!(sales[2].allocated_fen, 7_000);
    assert_eq!(sales[2].qty, Some(2));
    assert_eq!(sales[2].status, Some(furrow::codes::OrderStatus::Completed));
    assert_eq!(sales[0].allocated_fen, 0);
    assert_eq!(furrow::domain::sale::totals_of_listing(&fixture.store, &id).unwrap(), (3, 11_970), "the refund is not counted");
}

#[test]
fn a_form_read_before_the_platforms_verdict_neither_clears_nor_forges_it() {
    use furrow::hlc::{pack, wall_ms, NodeId, Stamp};
    use furrow::record::RemoteField;
    use serde_json::json;

    let (mut fixture, draft) = setup(ProductCategory::Nuts);
    let id = draft.id.clone().unwrap();
    // The form was opened on the draft; meanwhile a sync brings the platform's verdict.
    let verdict = Stamp { hlc: pack(wall_ms() + 1_000, 0), node: NodeId([0x5E; 16]) };
    let fields = [("moderation_status", json!("approved")), ("platform_item_id", json!("TB-2001")), ("sold_out", json!(true))]
        .into_iter()
        .map(|(field, value)| RemoteField { field: field.into(), value, stamp: verdict })
        .collect::<Vec<_>>();
    fixture.store.write(|writer| writer.apply_remote(&furrow::schema::LISTINGS, &id, &fields)).unwrap();
    let queued = fixture.count("SELECT count(*) FROM sync_outbox");

    let mut form = draft.clone();
    form.title = Some("高山薄皮核桃".into());
    let saved = listing::save_listing(&mut fixture.store, &form).expect("the edit saves");
    assert_eq!(saved.title.as_deref(), Some("高山薄皮核桃"));
    assert_eq!(saved.moderation_status, Some(furrow::codes::ModerationStatus::Approved), "the verdict is kept");
    assert_eq!(saved.platform_item_id.as_deref(), Some("TB-2001"));
    assert_eq!(saved.sold_out, Some(true));

    // A form cannot forge a verdict either: the platform's fields are never written from it.
    let mut forged = saved.clone();
    forged.moderation_status = Some(furrow::codes::ModerationStatus::Rejected);
    forged.platform_item_id = Some("FAKE".into());
    let kept = listing::save_listing(&mut fixture.store, &forged).expect("the save goes through");
    assert_eq!(kept.moderation_status, Some(furrow::codes::ModerationStatus::Approved));
    assert_eq!(kept.platform_item_id.as_deref(), Some("TB-2001"));
    assert_eq!(
        fixture.count("SELECT count(*) FROM sync_outbox WHERE field IN ('moderation_status', 'platform_item_id', 'sold_out')"),
        0,
        "no platform field is ever queued from the device"
    );
    assert_eq!(fixture.count("SELECT count(*) FROM sync_outbox"), queued, "the new title replaced the unsent one, nothing else was queued");
    assert_eq!(fixture.count("SELECT count(*) FROM sync_outbox WHERE field = 'title' AND value = '\"高山薄皮核桃\"'"), 1);
}
