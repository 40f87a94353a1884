//! End-to-end test of the listing studio in the real app window: a listing drafted offline with
//! real photo files, its failing platform rules shown and fixed, submitted, synced to a local
//! `furrow-server`, approved and sold on the platform's side, and both seen in the app after the
//! next sync. The bytes the device sent for the listing and the time to process a 12-megapixel
//! photo are measured and written to `artifacts/listing-figures.txt`.

mod support;

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Instant;

use furrow_app::state::DATABASE_FILE;
use serde_json::json;
use support::{App, CountingRelay, PlatformServer};

/// A photo-like picture: smooth colour fields with fine noise, so it compresses like a photo
/// rather than like a flat test card.
fn photo_jpeg(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    let picture = image::RgbImage::from_fn(width, height, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 24) as u8;
        image::Rgb([
            (x * 200 / width) as u8 + noise,
            (y * 180 / height) as u8 + noise,
            ((x + y + seed * 40) % 160) as u8 + noise,
        ])
    });
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut bytes), 92).encode_image(&picture).unwrap();
    bytes
}

fn rule_passed(app: &App, rule: &str) -> bool {
    app.script(
        "const item = document.querySelector(`[data-rule=${arguments[0]}]`); return !!item && item.dataset.passed === 'true';",
        json!([rule]),
    ) == json!(true)
}

fn wait_pending(app: &App, test: &str) {
    app.wait_until(
        &format!("pending {test}"),
        &format!("return Number(document.querySelector('[data-testid=pending-count]').textContent) {test}"),
    );
}

fn sync(app: &App) {
    app.wait_until("the sync button to be ready", "const b = document.querySelector('[data-testid=sync-button]'); return !!b && !b.disabled;");
    app.click("[data-testid=sync-button]");
    wait_pending(app, "=== 0");
    app.wait_until("the sync to finish", "const b = document.querySelector('[data-testid=sync-button]'); return !!b && !b.disabled;");
}

/// The app's store, read beside the running app: it is encrypted, so the connection is given
/// the data key, unwrapped with the tests' passphrase.
fn database(directory: &std::path::Path) -> rusqlite::Connection {
    let path = directory.join(DATABASE_FILE);
    let (_store, key) = furrow::encryption::unlock(&path, support::PASSPHRASE).unwrap();
    let connection = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    connection.pragma_update(None, "key", key.sqlcipher_key().as_str()).unwrap();
    connection
}

/// The text content of the element matching `css` (cells and spans joined as written).
fn content(app: &App, css: &str) -> String {
    app.find(css);
    app.script("return document.querySelector(arguments[0]).textContent", json!([css])).as_str().unwrap_or_default().to_owned()
}

fn count(app: &App, css: &str) -> i64 {
    app.script("return document.querySelectorAll(arguments[0]).length", json!([css])).as_i64().unwrap_or(-1)
}

#[test]
fn a_listing_drafted_offline_with_photos_is_fixed_submitted_approved_and_sold() {
    let mut server = PlatformServer::new();
    let mut relay = CountingRelay::new(server.port);
    let photos_dir = tempfile::Builder::new().prefix("furrow-photos-").tempdir().unwrap();
    // Five real JPEG files: a 12-megapixel phone photo and four smaller ones of other shapes.
    let sizes = [(4000, 3000), (1200, 800), (900, 900), (800, 1200), (1024, 768)];
    let files: Vec<PathBuf> = sizes
        .iter()
        .enumerate()
        .map(|(index, (width, height))| {
            let path = photos_dir.path().join(format!("IMG_{:04}.jpg", index + 1));
            std::fs::write(&path, photo_jpeg(*width, *height, index as u32 + 1)).unwrap();
            path
        })
        .collect();
    let big_bytes = std::fs::metadata(&files[0]).unwrap().len();

    let directory = tempfile::Builder::new().prefix("furrow-e2e-listing-").tempdir().unwrap();
    let app = App::start(directory.path());
    app.resize(1024, 768);
    app.type_into("#signin-server", &relay.url());
    app.type_into("#signin-username", PlatformServer::ACCOUNT.0);
    app.type_into("#signin-password", PlatformServer::ACCOUNT.1);
    app.click("[data-testid=signin-submit]");
    app.find("[data-testid=sync-indicator]");
    app.wait_text("[data-testid=sync-online]", |text| text.contains("在线"));
    sync(&app);

    // A household to credit the sale to, synced while online.
    app.click("[data-nav=roster]");
    app.click("[data-testid=add-household]");
    app.type_into("#household-head_name", "钱核桃");
    app.choose("#household-village_id", "");
    app.choose("#household-attribute", "general");
    app.choose("#household-poverty_status", "not_exited");
    app.type_into("#household-phone", "13600136000");
    app.click("[data-testid=household-save]");
    app.wait_text("[data-testid=household-name]", |text| text == "钱核桃");
    sync(&app);
    let household_id: String = database(directory.path())
        .query_row("SELECT id FROM households WHERE head_name = '钱核桃' AND deleted = 0", [], |row| row.get(0))
        .unwrap();

    // The network goes away: everything from here on is drafted offline.
    server.stop();
    relay.stop();
    app.wait_text("[data-testid=sync-online]", |text| text.contains("离线"));

    app.click("[data-nav=products]");
    app.click("[data-testid=new-product]");
    app.type_into("#product-name", "高坡村手工核桃酥");
    app.choose("#product-category", "processed");
    app.click("[data-testid=product-save]");
    app.wait_until("the new product", "return !!document.querySelector('[data-testid=product-row]')?.textContent.includes('高坡村手工核桃酥')");
    app.click("[data-testid=new-listing]");
    app.find("[data-testid=listing-editor]");
    app.wait_until("the rules to be checked", "return document.querySelectorAll('[data-rule]').length > 5");
    // A title one character too long for the platform, and a price in yuan.
    app.type_into("#listing-title", &"核".repeat(31));
    app.type_into("#listing-price", "39.9");
    app.wait_text("[data-rule=title_units]", |text| text.contains("当前 62 字节"));
    assert!(!rule_passed(&app, "title_units"));
    // The draft saves although rules fail: Enter in a field saves it.
    app.send_keys("#listing-price", "\u{E007}");
    app.wait_text("[data-testid=studio-notice]", |text| text == "草稿已保存");
    let listing_id = app.script("return document.querySelector('[data-testid=listing-editor]').dataset.listingId", json!([])).as_str().unwrap().to_owned();
    assert_eq!(listing_id.len(), 36, "the draft has an id: {listing_id:?}");

    // The 12-megapixel photo first, timed from the pick to its thumbnail in the strip.
    let picked = Instant::now();
    app.choose_files("[data-testid=photo-input]", &[files[0].as_path()]);
    app.wait_until("the first photo", "return document.querySelectorAll('[data-testid=photo-card] img').length === 1");
    let big_in_app = picked.elapsed().as_secs_f64();
    // Files that cannot be used are refused with their reason in Chinese; nothing is added.
    let heic = photos_dir.path().join("IMG_0006.HEIC");
    let mut heic_bytes = vec![0, 0, 0, 0x18];
    heic_bytes.extend(b"ftypheic\0\0\0\0mif1heic");
    heic_bytes.extend(vec![0u8; 512]);
    std::fs::write(&heic, heic_bytes).unwrap();
    let broken = photos_dir.path().join("broken.jpg");
    let whole = std::fs::read(&files[1]).unwrap();
    std::fs::write(&broken, &whole[..whole.len() / 3]).unwrap();
    app.choose_files("[data-testid=photo-input]", &[heic.as_path(), broken.as_path()]);
    app.wait_until("two refusals", "return document.querySelectorAll('[data-testid=photo-error]').length === 2");
    let refusals = content(&app, "[data-testid=photo-strip]");
    assert!(refusals.contains("IMG_0006.HEIC：暂不支持 HEIC/HEIF 格式"), "{refusals}");
    assert!(refusals.contains("broken.jpg：图片已损坏或不完整，无法读取"), "{refusals}");
    assert_eq!(count(&app, "[data-testid=photo-card]"), 1, "a refused file adds nothing");
    app.script("document.querySelector('[data-testid=photo-strip]').scrollIntoView()", json!([]));
    app.screenshot("listing-studio-refused-zh");
    let rest: Vec<&Path> = files[1..].iter().map(PathBuf::as_path).collect();
    app.choose_files("[data-testid=photo-input]", &rest);
    app.wait_until("five photos", "return document.querySelectorAll('[data-testid=photo-card] img').length === 5");
    assert_eq!(count(&app, "[data-testid=photo-error]"), 0, "the refusals are cleared by the next pick");
    assert_eq!(app.text("[data-testid=photo-card]:first-child .size"), "1600×1200", "the 12-megapixel photo is scaled to 1600 px");
    assert_eq!(count(&app, "[data-testid=upload-state][data-state=pending_upload]"), 5);
    assert_eq!(count(&app, "[data-testid=photo-card][data-kind=main]"), 1);

    // The rules the draft fails, shown in Chinese; submitting is not possible yet.
    for failing in ["title_units", "main_square", "stock_qty", "description_chars", "shelf_life", "storage", "production_date", "production_license"] {
        app.wait_until(&format!("{failing} failing"), &format!("return document.querySelector('[data-rule={failing}]')?.dataset.passed === 'false'"));
    }
    for passing in ["price_fen", "image_count", "image_bytes"] {
        app.wait_until(&format!("{passing} passing"), &format!("return document.querySelector('[data-rule={passing}]')?.dataset.passed === 'true'"));
    }
    assert_eq!(app.text("[data-rule=main_square] .text"), "须有一张正方形（1:1）主图");
    assert_eq!(app.text("[data-rule=production_license] .text"), "加工食品须填写生产许可证（SC）编号");
    assert_eq!(app.script("return document.querySelector('[data-testid=submit-listing]').disabled", json!([])), json!(true));
    app.script("document.querySelector('.content').scrollTop = 0", json!([]));
    app.screenshot("listing-studio-failing-zh");
    app.script("document.querySelector('[data-testid=photo-strip]').scrollIntoView()", json!([]));
    app.screenshot("listing-studio-photos-zh");

    // A bad stock figure is shown beside its field.
    app.type_into("#listing-stock", "两百");
    assert_eq!(app.wait_text("[data-error-for=listing-stock]", |text| !text.is_empty()), "请输入整数");

    // Fix every failing rule.
    app.type_into("#listing-title", "高坡村手工核桃酥 500g 礼盒");
    app.type_into("#listing-description", "高坡村农户用本地薄皮核桃手工制作，现做现发，酥脆不腻。");
    app.type_into("#listing-stock", "200");
    app.type_into("#listing-shelf-life", "90");
    app.choose("#listing-storage", "");
    app.set_value("#listing-production-date", "2026-11-20");
    app.type_into("#listing-license", "SC12353262600012");
    // The main image is cropped to a square; a caption; the second photo moves right.
    app.click("[data-testid=photo-card]:first-child [data-testid=photo-crop]");
    app.wait_until("a square main image", "return document.querySelector('[data-testid=photo-card]:first-child').dataset.square === 'true'");
    assert_eq!(app.text("[data-testid=photo-card]:first-child .size"), "1200×1200");
    app.set_value("[data-testid=photo-card]:first-child [data-testid=photo-caption]", "核桃酥礼盒正面");
    let order = "return [...document.querySelectorAll('[data-testid=photo-card]')].map(card => card.dataset.photoId)";
    let before = app.script(order, json!([]));
    app.click("[data-testid=photo-card]:nth-child(2) [data-testid=photo-right]");
    app.wait_until("the second photo to move right", &format!("return JSON.stringify({}) === JSON.stringify([{}, {}, {}, {}, {}])",
        order.trim_start_matches("return "), before[0], before[2], before[1], before[3], before[4]));
    app.wait_until(
        "every rule to pass",
        "const count = document.querySelector('[data-testid=rules-count]'); return count.dataset.passed === count.dataset.total && Number(count.dataset.total) > 10",
    );
    app.wait_until("submit to be enabled", "return document.querySelector('[data-testid=submit-listing]').disabled === false");
    app.click("[data-testid=submit-listing]");
    app.wait_text("[data-testid=listing-status]", |text| text == "已提交审核");
    app.wait_text("[data-testid=platform-status]", |text| text.contains("已提交，等待同步"));
    wait_pending(&app, "> 0");
    app.screenshot("listing-studio-submitted-zh");
    let caption: String = database(directory.path())
        .query_row("SELECT caption FROM photos WHERE owner_id = ?1 AND kind = 'main' AND deleted = 0", [&listing_id], |row| row.get(0))
        .unwrap();
    assert_eq!(caption, "核桃酥礼盒正面");

    // Back online: one sync carries the product, the listing, its photos and their images.
    // The counts start before the server returns: the app syncs by itself as soon as it answers,
    // so photos may be on their way before the button is pressed.
    let (sent_before, received_before) = (relay.sent_bytes(), relay.received_bytes());
    server.start();
    relay.start();
    app.wait_text("[data-testid=sync-online]", |text| text.contains("在线"));
    let syncing = Instant::now();
    sync(&app);
    let sync_seconds = syncing.elapsed().as_secs_f64();
    app.wait_until("every photo uploaded", "return document.querySelectorAll('[data-testid=upload-state][data-state=uploaded]').length === 5");
    let (sent, received) = (relay.sent_bytes() - sent_before, relay.received_bytes() - received_before);
    let image_bytes: i64 = database(directory.path())
        .query_row("SELECT sum(bytes) FROM photos WHERE owner_id = ?1 AND deleted = 0", [&listing_id], |row| row.get(0))
        .unwrap();
    assert!(sent as i64 >= image_bytes, "the images went to the server: {sent} bytes sent, {image_bytes} bytes of images");

    // The platform approves the listing and sells two boxes, credited to the household.
    let (status, answer) = server.admin(
        &format!("/admin/v1/listings/{listing_id}/moderation"),
        json!({"moderation_status": "approved", "platform_item_id": "TB-665001234"}),
    );
    assert_eq!(status, 204, "moderation: {answer}");
    let (status, answer) = server.admin(
        "/admin/v1/sales",
        json!({
            "listing_id": listing_id, "platform": "taobao", "order_no": "TB20261128001", "order_date": "2026-11-28",
            "qty": 2, "unit_price_fen": 3990, "gross_fen": 7980, "net_to_seller_fen": 7500, "status": "paid",
            "buyer_region": "上海", "allocations": [{"household_id": household_id, "amount_fen": 7000}]
        }),
    );
    assert_eq!(status, 201, "sale: {answer}");
    sync(&app);
    app.wait_until("approved", "return document.querySelector('[data-testid=moderation-status]')?.dataset.status === 'approved'");
    assert_eq!(app.text("[data-testid=moderation-status]"), "审核通过");
    assert_eq!(app.text("[data-testid=platform-item-id]"), "平台商品编号：TB-665001234");
    app.wait_until("one sale", "return document.querySelectorAll('[data-testid=sale-row]').length === 1");
    let sale = content(&app, "[data-testid=sale-row]");
    assert!(sale.contains("TB20261128001") && sale.contains("79.80") && sale.contains("70.00"), "{sale}");
    assert_eq!(app.text("[data-testid=sales-total]"), "合计 2 件，79.80 元");
    app.script("document.querySelector('.content').scrollTop = 0", json!([]));
    app.screenshot("listing-studio-approved-zh");
    app.script("document.querySelector('[data-testid=listing-sales]').scrollIntoView()", json!([]));
    app.screenshot("listing-studio-sales-zh");

    // The same screen in English.
    app.click("[data-testid=language-toggle]");
    app.wait_text("[data-testid=moderation-status]", |text| text == "Approved");
    assert_eq!(app.text("[data-rule=main_square] .text"), "A square (1:1) main image");
    app.script("document.querySelector('.content').scrollTop = 0", json!([]));
    app.screenshot("listing-studio-approved-en");
    app.script("document.querySelector('[data-testid=listing-sales]').scrollIntoView()", json!([]));
    app.screenshot("listing-studio-sales-en");
    // Esc goes back to the list, which shows the verdict.
    app.send_keys("#listing-title", "\u{E00C}");
    app.wait_text("[data-testid=listing-verdict]", |text| text == "Approved");
    app.screenshot("listing-list-en");
    app.click("[data-testid=language-toggle]");
    app.wait_text("[data-testid=listing-verdict]", |text| text == "审核通过");
    app.screenshot("listing-list-zh");
    app.quit();

    // The 12-megapixel photo through the core alone, on this machine.
    let original = std::fs::read(&files[0]).unwrap();
    let preparing = Instant::now();
    let prepared = furrow::domain::photo::prepare(&original).unwrap();
    let core_seconds = preparing.elapsed().as_secs_f64();
    assert!(prepared.jpeg.len() <= 1024 * 1024);

    let report = [
        format!("listing with five photos (12 MP + four smaller), one sync: {sent} bytes sent, {received} bytes received, {sync_seconds:.2} s"),
        format!("  of which listing images: {image_bytes} bytes (five JPEGs after resizing and re-encoding)"),
        format!("  originals picked: {} bytes", files.iter().map(|file| std::fs::metadata(file).unwrap().len()).sum::<u64>()),
        format!("12-megapixel photo ({big_bytes} bytes, 4000x3000): {:.0} ms from pick to thumbnail in the app window", big_in_app * 1000.0),
        format!("12-megapixel photo: {:.0} ms to prepare in the core (decode, orient, scale to 1600 px, encode {} bytes + thumbnail)", core_seconds * 1000.0, prepared.jpeg.len()),
    ]
    .join("\n");
    println!("{report}");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("listing-figures.txt"), format!("{report}\n")).unwrap();
}
