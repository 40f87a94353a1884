//! End-to-end tests of an assistant's day in the real app window, for what broke real work: the
//! app syncs by itself when the server returns and says only what is true; scores keep their
//! people after a restart; a rejected listing is fixed, submitted again and approved; a household
//! closed as 迁出 leaves the register; a visit edited and one deleted reach a second device.
//! Screenshots of each new screen, in Chinese and English at 1024x768, go to
//! `artifacts/screenshots/`.

mod support;

use std::io::Cursor;
use std::path::Path;
use std::sync::Mutex;

use furrow::codes::{
    AttendanceStatus, HouseholdAttribute, ListingStatus, Platform, PovertyStatus, ProductCategory, RelationToHead, SaleUnit, Storage,
    TrainingFormat, TrainingTopic, VisitType,
};
use furrow::domain::household::{self, Household, Member};
use furrow::domain::listing::{self, Listing, Product};
use furrow::domain::training::{self, TrainingSession};
use furrow::domain::visit::{self, Visit};
use furrow::sync::SyncEngine;
use furrow::Store;
use furrow_app::state::{Settings, DATABASE_FILE};
use serde_json::{json, Value};
use support::{App, CountingRelay, PlatformServer};

fn store_at(directory: &Path) -> Store {
    support::open_store(&directory.join(DATABASE_FILE))
}

/// A data directory signed in to `server_url` as the demo assistant and synced once (so it holds
/// the assistant's villages), with the sign-in screen passed.
fn signed_in(server_url: &str) -> tempfile::TempDir {
    let directory = tempfile::Builder::new().prefix("furrow-e2e-day-").tempdir().unwrap();
    let store = Mutex::new(store_at(directory.path()));
    let engine = SyncEngine::new(server_url).unwrap().with_media_dir(furrow_app::state::media_dir(directory.path()));
    engine.login(&store, PlatformServer::ACCOUNT.0, PlatformServer::ACCOUNT.1, "laptop").unwrap();
    engine.sync(&store, &|_| {}).unwrap();
    Settings { signed_in: true, server_url: server_url.to_owned(), username: PlatformServer::ACCOUNT.0.into(), ..Settings::default() }
        .save(directory.path())
        .unwrap();
    directory
}

/// Syncs the store in `directory` with the server at `server_url` (the app is closed).
fn sync_store(directory: &Path, server_url: &str) {
    let store = Mutex::new(store_at(directory));
    let engine = SyncEngine::new(server_url).unwrap().with_media_dir(furrow_app::state::media_dir(directory));
    engine.sync(&store, &|_| {}).unwrap();
}

/// 赵小村's household of three in the first village, with two visits.
fn zhao(store: &mut Store) -> (String, Vec<String>, Vec<String>) {
    let village = furrow::domain::village::list(store).unwrap()[0].id.clone();
    let household = household::save(
        store,
        &Household {
            register_no: Some("ZX00001".into()),
            village_id: village,
            head_name: Some("赵小村".into()),
            phone: Some("13987654321".into()),
            attribute: Some(HouseholdAttribute::General),
            poverty_status: Some(PovertyStatus::NotExited),
            ..Household::default()
        },
    )
    .unwrap()
    .id
    .unwrap();
    let members = [("赵小村", RelationToHead::Head), ("钱桂花", RelationToHead::Spouse), ("赵小宝", RelationToHead::Son)]
        .iter()
        .map(|(name, relation)| {
            household::save_member(
                store,
                &Member { household_id: Some(household.clone()), name: Some((*name).into()), relation: Some(*relation), ..Member::default() },
            )
            .unwrap()
            .id
            .unwrap()
        })
        .collect();
    let visits = [("2026-11-20T09:30:00+08:00", "查看核桃晾晒"), ("2026-11-25T15:00:00+08:00", "记错了的一次走访")]
        .iter()
        .map(|(at, summary)| {
            visit::save(
                store,
                &Visit {
                    household_id: Some(household.clone()),
                    visit_type: Some(VisitType::Home),
                    visited_at: Some((*at).into()),
                    summary: Some((*summary).into()),
                    ..Visit::default()
                },
            )
            .unwrap()
            .id
            .unwrap()
        })
        .collect();
    (household, members, visits)
}

/// The text content of the element matching `css` (WebDriver's visible text leaves out text in
/// cells and clipped spans that the screenshots show).
fn content(app: &App, css: &str) -> String {
    app.find(css);
    app.script("return document.querySelector(arguments[0]).textContent", json!([css])).as_str().unwrap_or_default().trim().to_owned()
}

/// Waits until the text content of the element matching `css` satisfies `test`; returns it.
fn wait_content(app: &App, css: &str, test: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + support::PATIENCE;
    loop {
        let text = content(app, css);
        if test(&text) {
            return text;
        }
        if std::time::Instant::now() > deadline {
            let shot = app.screenshot(&format!("failure-{}", chrono::Local::now().format("%H%M%S")));
            panic!("{css} holds {text:?}; screenshot {}", shot.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn pending(app: &App, test: &str) {
    app.wait_until(
        &format!("pending {test}"),
        &format!("return Number(document.querySelector('[data-testid=pending-count]').textContent) {test}"),
    );
}

fn sync(app: &App) {
    app.wait_until("the sync button to be ready", "const b = document.querySelector('[data-testid=sync-button]'); return !!b && !b.disabled;");
    app.click("[data-testid=sync-button]");
    pending(app, "=== 0");
    app.wait_until("the sync to finish", "const b = document.querySelector('[data-testid=sync-button]'); return !!b && !b.disabled;");
}

fn language(app: &App, to: &str) {
    // Clicked from the page: an open dialog covers the rail, and a pointer click would land on it.
    app.find("[data-testid=language-toggle]");
    app.script("document.querySelector('[data-testid=language-toggle]').click()", json!([]));
    wait_content(&app, "[data-nav=roster]", |text| text == if to == "en" { "Households" } else { "农户名册" });
}

fn open_household(app: &App, head: &str) {
    app.click("[data-nav=roster]");
    app.type_into("[data-testid=roster-search]", head);
    app.wait_until("one roster row", "return document.querySelectorAll('[data-testid=roster-row]').length === 1");
    app.click("[data-testid=roster-row]");
    wait_content(&app, "[data-testid=household-name]", |text| text == head);
}

#[test]
fn the_app_syncs_by_itself_when_the_server_returns_and_says_only_what_is_true() {
    let mut server = PlatformServer::new();
    let relay = CountingRelay::new(server.port);
    let directory = signed_in(&relay.url());
    let app = App::start(directory.path());
    app.resize(1024, 768);
    wait_content(&app, "[data-testid=sync-online]", |text| text.contains("在线"));

    // The server stops; the relay in front of it still accepts connections, as a proxy would.
    server.stop();
    wait_content(&app, "[data-testid=sync-online]", |text| text.contains("离线"));
    app.click("[data-nav=roster]");
    app.click("[data-testid=add-household]");
    app.type_into("#household-head_name", "孙自动");
    app.choose("#household-village_id", "");
    app.choose("#household-attribute", "general");
    app.choose("#household-poverty_status", "not_exited");
    app.click("[data-testid=household-save]");
    wait_content(&app, "[data-testid=household-name]", |text| text == "孙自动");
    pending(&app, "> 0");
    assert_eq!(wait_content(&app, "[data-testid=sync-hint]", |text| !text.is_empty()), "连上服务器后会自动同步");
    wait_content(&app, "[data-testid=sync-online]", |text| text.contains("离线"));
    app.screenshot("sync-offline-pending-zh");
    language(&app, "en");
    assert_eq!(content(&app, "[data-testid=sync-hint]"), "Syncs by itself once the server answers");
    app.screenshot("sync-offline-pending-en");
    language(&app, "zh");

    // The server comes back: the household goes without anyone pressing 同步.
    server.start();
    pending(&app, "=== 0");
    wait_content(&app, "[data-testid=sync-online]", |text| text.contains("在线"));
    assert!(app.try_find("[data-testid=sync-hint]").is_none(), "nothing left to promise");
    app.screenshot("sync-back-online-zh");
    app.quit();

    let tablet = tempfile::tempdir().unwrap();
    let store = Mutex::new(store_at(tablet.path()));
    let engine = SyncEngine::new(&server.url()).unwrap();
    engine.login(&store, PlatformServer::ACCOUNT.0, PlatformServer::ACCOUNT.1, "tablet").unwrap();
    engine.sync(&store, &|_| {}).unwrap();
    let found = household::search(&store.lock().unwrap(), &household::RosterQuery { text: Some("孙自动".into()), ..Default::default() }).unwrap();
    assert_eq!(found.len(), 1, "the household reached the server by itself");
}

#[test]
fn scores_keep_their_people_after_a_restart() {
    let directory = tempfile::Builder::new().prefix("furrow-e2e-day-").tempdir().unwrap();
    let session = {
        let mut store = store_at(directory.path());
        furrow_app::demo::seed(&mut store, 12).unwrap();
        let (_, members, _) = zhao(&mut store);
        let village = furrow::domain::village::list(&store).unwrap()[0].id.clone();
        let session = training::save_session(
            &mut store,
            &TrainingSession {
                title: Some("商品拍照培训".into()),
                topics: Some(vec![TrainingTopic::Photography, TrainingTopic::Pricing]),
                format: Some(TrainingFormat::Classroom),
                date: Some("2026-11-30".into()),
                village_id: village,
                ..TrainingSession::default()
            },
        )
        .unwrap()
        .id
        .unwrap();
        training::check_in(&mut store, &session, &members, AttendanceStatus::Present).unwrap();
        session
    };
    Settings { signed_in: true, ..Settings::default() }.save(directory.path()).unwrap();

    let app = App::start(directory.path());
    app.resize(1024, 768);
    app.click("[data-nav=training]");
    app.click("[data-testid=session-item]");
    app.wait_until("three attendees", "return document.querySelectorAll('[data-testid=attendee]').length === 3");
    let choices = app.script("return [...document.querySelectorAll('#assess-member option')].map(option => option.textContent)", json!([]));
    for name in ["赵小村", "钱桂花", "赵小宝"] {
        assert!(choices.as_array().unwrap().iter().any(|choice| choice.as_str().unwrap_or_default().contains(name)), "{name} in {choices}");
    }
    // A decimal score is refused beside its field; a whole one is saved.
    let son = app.script(
        "return [...document.querySelectorAll('#assess-member option')].find(option => option.textContent.includes('赵小宝')).value",
        json!([]),
    );
    app.choose("#assess-member", son.as_str().unwrap());
    app.type_into("#assess-score", "85.5");
    app.click("[data-testid=assessment-save]");
    assert_eq!(wait_content(&app, "[data-error-for=assess-score]", |text| !text.is_empty()), "分数应为0到100的整数");
    app.screenshot("training-score-error-zh");
    app.type_into("#assess-score", "85");
    app.click("[data-testid=assessment-save]");
    wait_content(&app, "[data-testid=score-list]", |text| text.contains("赵小宝") && text.contains("85"));
    app.quit();

    // After a restart, the people and the score are still there, by name.
    let app = App::start(directory.path());
    app.resize(1024, 768);
    app.click("[data-nav=training]");
    app.click("[data-testid=session-item]");
    wait_content(&app, "[data-testid=score-list]", |text| text.contains("赵小宝") && text.contains("85"));
    wait_content(&app, "[data-testid=attendee-list]", |text| text.contains("赵小宝") && text.contains("钱桂花"));
    app.screenshot("training-session-zh");
    language(&app, "en");
    wait_content(&app, "[data-testid=assessment-form]", |text| text.contains("Skill assessment"));
    app.screenshot("training-session-en");
    language(&app, "zh");
    app.quit();
    let store = store_at(directory.path());
    let scores = training::assessments_of_session(&store, &session).unwrap();
    assert_eq!(scores.iter().map(|score| score.score).collect::<Vec<_>>(), [Some(85)]);
}

/// A square photo-like JPEG.
fn square_jpeg(side: u32) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(side, side, |x, y| image::Rgb([(x * 200 / side) as u8, (y * 180 / side) as u8, ((x + y) % 160) as u8]));
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut bytes), 90).encode_image(&picture).unwrap();
    bytes
}

#[test]
fn a_rejected_listing_is_fixed_submitted_again_and_approved() {
    let server = PlatformServer::new();
    let directory = signed_in(&server.url());
    let listing_id = {
        let mut store = store_at(directory.path());
        let village = furrow::domain::village::list(&store).unwrap()[0].id.clone();
        let product = listing::save_product(
            &mut store,
            &Product { village_id: village, name: Some("薄皮核桃".into()), category: Some(ProductCategory::Nuts), ..Product::default() },
        )
        .unwrap();
        let draft = listing::save_listing(
            &mut store,
            &Listing {
                product_id: product.id,
                platform: Some(Platform::Taobao),
                title: Some("全网最好吃的核桃".into()),
                description: Some("高坡村农户种植的薄皮核桃，当年新货，皮薄易剥，果仁饱满香脆。".into()),
                category: Some(ProductCategory::Nuts),
                price_fen: Some(3_990),
                unit: Some(SaleUnit::Jin),
                stock_qty: Some(200),
                shelf_life_days: Some(180),
                storage: Some(Storage::CoolDry),
                production_date: Some("2026-10-01".into()),
                status: Some(ListingStatus::Draft),
                ..Listing::default()
            },
        )
        .unwrap();
        let id = draft.id.unwrap();
        let media = furrow_app::state::media_dir(directory.path());
        furrow::domain::photo::import_bytes(
            &mut store,
            &media,
            &square_jpeg(900),
            furrow::codes::PhotoOwner::Listing,
            &id,
            &furrow::domain::photo::ImportOptions::default(),
        )
        .unwrap();
        furrow::domain::listing_rules::submit(&mut store, &id).expect("every rule passes");
        id
    };
    sync_store(directory.path(), &server.url());
    let (status, answer) = server.admin(
        &format!("/admin/v1/listings/{listing_id}/moderation"),
        json!({"moderation_status": "rejected", "moderation_reason": "标题含有夸大用语（全网最好）"}),
    );
    assert_eq!(status, 204, "rejection: {answer}");

    let app = App::start(directory.path());
    app.resize(1024, 768);
    sync(&app);
    app.click("[data-nav=products]");
    app.click(&format!("[data-testid=listing-row][data-listing-id='{listing_id}'] [data-testid=open-listing]"));
    wait_content(&app, "[data-testid=moderation-status]", |text| text == "审核未通过");
    assert_eq!(content(&app, "[data-testid=moderation-reason]"), "原因：标题含有夸大用语（全网最好）");
    wait_content(&app, "[data-testid=submit-listing]", |text| text == "修改后重新提交");
    app.script("document.querySelector('.content').scrollTop = 0", json!([]));
    app.screenshot("listing-rejected-zh");
    language(&app, "en");
    wait_content(&app, "[data-testid=submit-listing]", |text| text == "Submit again");
    app.screenshot("listing-rejected-en");
    language(&app, "zh");

    app.type_into("#listing-title", "高坡村薄皮核桃 当年新货 500g");
    app.wait_until("submit to be enabled", "return document.querySelector('[data-testid=submit-listing]').disabled === false");
    app.click("[data-testid=submit-listing]");
    wait_content(&app, "[data-testid=studio-notice]", |text| text == "已重新提交，同步后发送到平台");
    wait_content(&app, "[data-testid=moderation-status]", |text| text == "已提交，等待同步");
    wait_content(&app, "[data-testid=submission-history]", |text| text.contains("审核未通过") && text.contains("全网最好"));
    sync(&app);
    wait_content(&app, "[data-testid=moderation-status]", |text| text == "审核中");

    let (status, answer) = server.admin(
        &format!("/admin/v1/listings/{listing_id}/moderation"),
        json!({"moderation_status": "approved", "platform_item_id": "TB-7788"}),
    );
    assert_eq!(status, 204, "approval: {answer}");
    sync(&app);
    wait_content(&app, "[data-testid=moderation-status]", |text| text == "审核通过");
    assert_eq!(content(&app, "[data-testid=platform-item-id]"), "平台商品编号：TB-7788");
    wait_content(&app, "[data-testid=submission-history]", |text| text.contains("审核未通过"));
    assert_eq!(content(&app, "[data-testid=submit-listing]"), "已提交");
    app.script("document.querySelector('.content').scrollTop = 0", json!([]));
    app.screenshot("listing-resubmitted-approved-zh");
    language(&app, "en");
    wait_content(&app, "[data-testid=moderation-status]", |text| text == "Approved");
    app.screenshot("listing-resubmitted-approved-en");
    language(&app, "zh");
    app.quit();

    // The platform holds both submissions, the rejected one and the approved one.
    let submissions: Value = reqwest::blocking::Client::new()
        .get(format!("{}/admin/v1/listings/{listing_id}/submissions", server.url()))
        .bearer_auth(&server.admin_token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let verdicts: Vec<&str> =
        submissions["submissions"].as_array().unwrap().iter().map(|submission| submission["moderation_status"].as_str().unwrap_or_default()).collect();
    assert_eq!(verdicts, ["rejected", "approved"], "{submissions}");
}

#[test]
fn a_household_closed_as_moved_away_leaves_the_register_and_keeps_its_history() {
    let directory = tempfile::Builder::new().prefix("furrow-e2e-day-").tempdir().unwrap();
    {
        let mut store = store_at(directory.path());
        furrow_app::demo::seed(&mut store, 12).unwrap();
        zhao(&mut store);
    }
    Settings { signed_in: true, ..Settings::default() }.save(directory.path()).unwrap();
    let app = App::start(directory.path());
    app.resize(1024, 768);
    app.wait_until("the whole roster", "return document.querySelector('[data-testid=roster-count]')?.dataset.count === '13'");
    open_household(&app, "赵小村");

    // A member is deleted after a confirmation naming them; cancelling keeps them.
    app.click("[data-testid=member-row]:nth-child(3) [data-testid=delete-member]");
    wait_content(&app, "[data-testid=confirm-lines]", |text| text.contains("家庭成员「赵小宝」"));
    app.screenshot("confirm-delete-member-zh");
    language(&app, "en");
    wait_content(&app, "[data-testid=confirm-lines]", |text| text.contains("The member \"赵小宝\""));
    app.screenshot("confirm-delete-member-en");
    language(&app, "zh");
    app.click("[data-testid=confirm-cancel]");
    assert!(app.try_find("[data-testid=confirm-dialog]").is_none());
    assert_eq!(app.script("return document.querySelectorAll('[data-testid=member-row]').length", json!([])), json!(3));

    // Closed as moved away, with a date and a note.
    app.click("[data-testid=close-household]");
    app.find("[data-testid=close-form]");
    app.choose("#close-reason", "moved_out");
    app.set_value("#close-on", "2026-11-30");
    app.type_into("#close-note", "全家迁往昆明务工");
    app.screenshot("close-household-form-zh");
    language(&app, "en");
    app.screenshot("close-household-form-en");
    language(&app, "zh");
    app.click("[data-testid=close-save]");
    wait_content(&app, "[data-testid=closed-banner]", |text| text.contains("已销户：迁出，2026-11-30") && text.contains("全家迁往昆明务工"));
    // Its history stays on its page.
    wait_content(&app, "[data-testid=visit-list]", |text| text.contains("查看核桃晾晒"));
    assert_eq!(app.script("return document.querySelectorAll('[data-testid=member-row]').length", json!([])), json!(3));
    app.screenshot("household-closed-zh");
    language(&app, "en");
    wait_content(&app, "[data-testid=closed-banner]", |text| text.contains("Closed: Moved away, 2026-11-30"));
    app.screenshot("household-closed-en");
    language(&app, "zh");

    // No longer counted in the register; found among the closed ones.
    app.click("[data-nav=roster]");
    app.type_into("[data-testid=roster-search]", "");
    app.wait_until("twelve in the register", "return document.querySelector('[data-testid=roster-count]')?.dataset.count === '12'");
    app.choose("[data-testid=filter-closed]", "closed");
    app.wait_until("one closed household", "return document.querySelector('[data-testid=roster-count]')?.dataset.count === '1'");
    wait_content(&app, "[data-testid=row-closed]", |text| text.contains("迁出"));
    app.screenshot("roster-closed-zh");
    language(&app, "en");
    wait_content(&app, "[data-testid=row-closed]", |text| text.contains("Moved away"));
    app.screenshot("roster-closed-en");
    language(&app, "zh");
    app.quit();

    let store = store_at(directory.path());
    let open = household::search(&store, &household::RosterQuery::default()).unwrap();
    assert_eq!(open.len(), 12);
    assert!(open.iter().all(|entry| entry.head_name != "赵小村"));
}

#[test]
fn a_visit_edited_and_one_deleted_reach_a_second_device() {
    let server = PlatformServer::new();
    let directory = signed_in(&server.url());
    let (visits, tablet, tablet_engine) = {
        let (_, _, visits) = zhao(&mut store_at(directory.path()));
        sync_store(directory.path(), &server.url());
        let tablet = tempfile::tempdir().unwrap();
        let store = Mutex::new(store_at(tablet.path()));
        let engine = SyncEngine::new(&server.url()).unwrap();
        engine.login(&store, PlatformServer::ACCOUNT.0, PlatformServer::ACCOUNT.1, "tablet").unwrap();
        engine.sync(&store, &|_| {}).unwrap();
        (visits, (tablet, store), engine)
    };
    let app = App::start(directory.path());
    app.resize(1024, 768);
    open_household(&app, "赵小村");

    // The first visit is corrected: the time it began and what was found.
    let first = format!("[data-testid=visit-row][data-visit-id='{}']", visits[0]);
    app.click(&format!("{first} [data-testid=edit-visit]"));
    app.wait_until("the visit's own values", "return document.querySelector('#visit-summary')?.value === '查看核桃晾晒'");
    assert_eq!(app.script("return document.querySelector('#visit-visited_at').value", json!([])), json!("2026-11-20"));
    app.type_into("#visit-time", "10:15");
    app.type_into("#visit-summary", "查看核桃晾晒，已拍主图");
    app.screenshot("visit-edit-zh");
    language(&app, "en");
    app.screenshot("visit-edit-en");
    language(&app, "zh");
    app.click("[data-testid=visit-save]");
    wait_content(&app, "[data-testid=notice]", |text| text == "走访已修改");
    wait_content(&app, &first, |text| text.contains("已拍主图") && text.contains("10:15"));

    // The second is deleted, once the dialog has said which visit goes.
    let second = format!("[data-testid=visit-row][data-visit-id='{}']", visits[1]);
    app.click(&format!("{second} [data-testid=delete-visit]"));
    wait_content(&app, "[data-testid=confirm-lines]", |text| text.contains("2026-11-25") && text.contains("记错了的一次走访"));
    app.screenshot("confirm-delete-visit-zh");
    language(&app, "en");
    app.screenshot("confirm-delete-visit-en");
    language(&app, "zh");
    app.click("[data-testid=confirm-ok]");
    wait_content(&app, "[data-testid=notice]", |text| text == "走访已删除");
    app.wait_until("one visit left", "return document.querySelectorAll('[data-testid=visit-row]').length === 1");
    sync(&app);
    app.quit();

    let (_tablet_dir, tablet_store) = tablet;
    tablet_engine.sync(&tablet_store, &|_| {}).unwrap();
    let store = tablet_store.lock().unwrap();
    let household = household::search(&store, &household::RosterQuery { text: Some("赵小村".into()), ..Default::default() }).unwrap();
    let seen = visit::of_household(&store, &household[0].id).unwrap();
    assert_eq!(seen.len(), 1, "the deleted visit is gone on the other device too");
    assert_eq!(seen[0].summary.as_deref(), Some("查看核桃晾晒，已拍主图"));
    assert_eq!(seen[0].visited_at.as_deref(), Some("2026-11-20T10:15:00+08:00"));
}

#[test]
fn a_villages_members_are_checked_in_at_once_and_scored_in_the_grid_after_a_restart() {
    let directory = tempfile::Builder::new().prefix("furrow-e2e-day-").tempdir().unwrap();
    let (session, members) = {
        let mut store = store_at(directory.path());
        furrow_app::demo::seed(&mut store, 6).unwrap();
        let (household, _, _) = zhao(&mut store);
        let village = household::get(&store, &household).unwrap().village_id;
        let session = training::save_session(
            &mut store,
            &TrainingSession {
                title: Some("定价与包装培训".into()),
                topics: Some(vec![TrainingTopic::Pricing, TrainingTopic::Packaging]),
                format: Some(TrainingFormat::Classroom),
                date: Some("2026-11-30".into()),
                village_id: village.clone(),
                ..TrainingSession::default()
            },
        )
        .unwrap()
        .id
        .unwrap();
        let listed = training::check_in_candidates(&store, &session, None, None).unwrap();
        (session, listed.len())
    };
    assert!(members > 3, "the village has more than one household's members ({members})");
    Settings { signed_in: true, ..Settings::default() }.save(directory.path()).unwrap();

    let app = App::start(directory.path());
    app.resize(1024, 768);
    app.click("[data-nav=training]");
    app.click("[data-testid=session-item]");
    // With nothing typed, the session village's members are listed, household by household.
    app.wait_until(
        "the village's members",
        &format!("return document.querySelectorAll('[data-testid=member-option]').length === {members}"),
    );
    app.screenshot("check-in-village-zh");
    language(&app, "en");
    wait_content(&app, "[data-testid=tick-all]", |text| text.starts_with("Tick all"));
    app.screenshot("check-in-village-en");
    language(&app, "zh");
    app.click("[data-testid=tick-all]");
    wait_content(&app, "[data-testid=check-in]", |text| text.contains(&members.to_string()));
    app.click("[data-testid=check-in]");
    wait_content(&app, "[data-testid=check-in-notice]", |text| text == format!("已签到 {members} 人"));
    app.wait_until(
        "everyone checked in",
        &format!("return document.querySelector('[data-testid=attendee-count]').dataset.count === '{members}'"),
    );
    assert_eq!(
        app.script("return [...document.querySelectorAll('[data-testid=member-option]')].every(input => input.disabled)", json!([])),
        json!(true),
        "checked-in people are shown as such"
    );
    app.quit();

    // After a restart, the scores go into the sheet: Enter moves down a column.
    let app = App::start(directory.path());
    app.resize(1024, 768);
    app.click("[data-nav=training]");
    app.click("[data-testid=session-item]");
    app.wait_until("the sheet's cells", &format!("return document.querySelectorAll('[data-testid=score-cell]').length === {}", members * 2));
    app.choose("[data-testid=score-phase]", "pre");
    for row in 0..members {
        let cell = format!("[data-testid=score-cell][data-row='{row}'][data-column='0']");
        app.type_into(&cell, &(60 + row).to_string());
        app.send_keys(&cell, "\u{E007}");
    }
    assert_eq!(
        app.script("return document.activeElement.dataset.testid", json!([])),
        json!("save-scores"),
        "Enter on the last row goes to the save button"
    );
    app.type_into("[data-testid=score-cell][data-row='0'][data-column='1']", "八十");
    app.click("[data-testid=save-scores]");
    wait_content(&app, "[data-testid=score-cell-error]", |text| text == "分数应为0到100的整数");
    app.screenshot("score-sheet-error-zh");
    app.type_into("[data-testid=score-cell][data-row='0'][data-column='1']", "80");
    app.click("[data-testid=save-scores]");
    wait_content(&app, "[data-testid=scores-notice]", |text| text == "成绩已保存");
    app.screenshot("score-sheet-zh");
    language(&app, "en");
    wait_content(&app, "[data-testid=save-scores]", |text| text == "Save the sheet");
    app.screenshot("score-sheet-en");
    language(&app, "zh");
    app.quit();

    let store = store_at(directory.path());
    let scores = training::assessments_of_session(&store, &session).unwrap();
    assert_eq!(scores.len(), members + 1, "a score for everyone on pricing, one on packaging");
    assert!(scores.iter().all(|score| score.phase == Some(furrow::codes::AssessmentPhase::Pre)));
    // The sheet shows them again after another start.
    let app = App::start(directory.path());
    app.click("[data-nav=training]");
    app.click("[data-testid=session-item]");
    app.choose("[data-testid=score-phase]", "pre");
    app.wait_until(
        "the saved scores in the sheet",
        "return document.querySelector(\"[data-testid=score-cell][data-row='0'][data-column='1']\")?.value === '80'",
    );
    app.quit();
}
