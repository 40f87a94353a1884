//! End-to-end tests of the real app window: the built `furrow-app` binary under Xvfb, driven
//! through tauri-driver and WebKitWebDriver. Each test owns its data directory. Screenshots of
//! every main screen in both languages go to `artifacts/screenshots/`.

mod support;

use std::path::Path;
use std::time::Instant;

use furrow::domain::household::{self, Household, Member};
use furrow::codes::{HouseholdAttribute, IncomeCategory, PovertyStatus, RelationToHead};
use furrow::domain::income::{self, IncomeRecord};
use furrow_app::state::{Settings, DATABASE_FILE};
use serde_json::json;
use support::{rss_kib, App};

/// A data directory with demo households, one known household of three (赵小村's), and the
/// sign-in screen already passed (offline).
fn prepared(households: usize) -> tempfile::TempDir {
    let directory = tempfile::Builder::new().prefix("furrow-e2e-").tempdir().unwrap();
    let mut store = support::open_store(&directory.path().join(DATABASE_FILE));
    furrow_app::demo::seed(&mut store, households).unwrap();
    let village = furrow::domain::village::list(&store).unwrap()[0].id.clone();
    let zhao = household::save(
        &mut store,
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
    .unwrap();
    for (name, relation) in [("赵小村", RelationToHead::Head), ("钱桂花", RelationToHead::Spouse), ("赵小宝", RelationToHead::Son)] {
        household::save_member(
            &mut store,
            &Member { household_id: zhao.id.clone(), name: Some(name.into()), relation: Some(relation), ..Member::default() },
        )
        .unwrap();
    }
    for (year, wage) in [(2022, 1_020_000), (2023, 1_260_000), (2024, 1_530_000)] {
        for (category, amount) in [(IncomeCategory::Wage, wage), (IncomeCategory::Operating, wage / 3), (IncomeCategory::Transfer, 90_000)] {
            income::record(
                &mut store,
                &IncomeRecord {
                    household_id: zhao.id.clone(),
                    year: Some(year),
                    category: Some(category),
                    amount_fen: Some(amount),
                    recorded_on: Some(format!("{year}-12-20")),
                    ..IncomeRecord::default()
                },
            )
            .unwrap();
        }
    }
    Settings { signed_in: true, ..Settings::default() }.save(directory.path()).unwrap();
    directory
}

fn open_zhao(app: &App) {
    app.click("[data-nav=roster]");
    app.type_into("[data-testid=roster-search]", "赵小村");
    app.wait_until("one roster row", "return document.querySelectorAll('[data-testid=roster-row]').length === 1");
    app.click("[data-testid=roster-row]");
    app.wait_text("[data-testid=household-name]", |text| text == "赵小村");
}

#[test]
fn a_household_with_a_bad_phone_shows_the_chinese_error_beside_the_field_then_saves() {
    let directory = prepared(20);
    let app = App::start(directory.path());
    app.find("[data-testid=roster-row]");
    let before = app.pending();
    assert!(before > 0, "demo data is queued for sync");
    app.click("[data-testid=add-household]");
    app.type_into("#household-head_name", "测试户主");
    app.choose("#household-village_id", "");
    app.choose("#household-attribute", "general");
    app.choose("#household-poverty_status", "not_exited");
    app.type_into("#household-phone", "1380013");
    app.click("[data-testid=household-save]");
    let error = app.wait_text("[data-error-for=household-phone]", |text| !text.is_empty());
    // A household's phone may be a mobile or a landline; the message says both.
    assert_eq!(error, "电话应为11位手机号，或带区号的固定电话（如 0871-6512345）");
    // The message belongs to the phone field's block, beside its input.
    assert_eq!(
        app.script(
            "return document.querySelector('[data-error-for=household-phone]').closest('.field').querySelector('input').id",
            json!([])
        ),
        json!("household-phone")
    );
    app.screenshot("household-form-error-zh");
    app.type_into("#household-phone", "13800138000");
    app.click("[data-testid=household-save]");
    app.wait_text("[data-testid=household-name]", |text| text == "测试户主");
    assert!(app.try_find("[data-error-for]").is_none());
    app.wait_until("the pending count to rise", &format!("return Number(document.querySelector('[data-testid=pending-count]').textContent) > {before}"));
    // The roster marks the new household as waiting to be sent.
    app.click("[data-nav=roster]");
    app.type_into("[data-testid=roster-search]", "测试户主");
    app.wait_until("one roster row", "return document.querySelectorAll('[data-testid=roster-row]').length === 1");
    app.wait_until(
        "the row's pending mark",
        "return document.querySelector('[data-testid=roster-row] [data-testid=row-sync]')?.dataset.state === 'pending'",
    );
    app.quit();
}

#[test]
fn a_training_session_checks_in_three_attendees_and_records_a_score() {
    let directory = prepared(20);
    let app = App::start(directory.path());
    app.click("[data-nav=training]");
    app.click("[data-testid=new-session]");
    app.type_into("#session-title", "商品拍照培训");
    app.click("input[data-topic=photography]");
    app.click("input[data-topic=pricing]");
    app.click("[data-testid=session-save]");
    app.wait_text("h2[data-testid=session-title]", |text| text == "商品拍照培训");
    app.type_into("[data-testid=member-search]", "赵小村");
    app.wait_until("three members to pick", "return document.querySelectorAll('[data-testid=member-option]').length === 3");
    // The household's box ticks its three members at once.
    app.click("[data-testid=tick-household]");
    app.wait_text("[data-testid=check-in]", |text| text.contains('3'));
    app.click("[data-testid=check-in]");
    app.wait_until("three attendees", "return document.querySelector('[data-testid=attendee-count]').dataset.count === '3'");
    assert_eq!(app.text("[data-testid=attendee-count]"), "已签到 3 人");
    app.choose("#assess-member", "");
    app.type_into("#assess-score", "85");
    app.click("[data-testid=assessment-save]");
    app.wait_text("[data-testid=notice]", |text| text == "测评已保存");
    app.screenshot("training-zh");
    // The household's page shows the training and the score.
    open_zhao(&app);
    app.wait_text("[data-testid=household-page]", |text| text.contains("商品拍照培训") && text.contains("85"));
    app.quit();
}

#[test]
fn a_visit_is_recorded_from_the_household_page_and_its_follow_up_is_due() {
    let directory = prepared(20);
    let app = App::start(directory.path());
    open_zhao(&app);
    let before = app.pending();
    app.click("[data-testid=add-visit]");
    app.type_into("#visit-summary", "查看核桃晾晒情况");
    app.type_into("#visit-actions", "下周帮助拍摄主图");
    let next = (chrono::Local::now().date_naive() + chrono::Duration::days(3)).to_string();
    app.set_value("#visit-next", &next);
    app.click("[data-testid=visit-save]");
    app.wait_text("[data-testid=visit-list]", |text| text.contains("查看核桃晾晒情况"));
    app.wait_until("the pending count to rise", &format!("return Number(document.querySelector('[data-testid=pending-count]').textContent) > {before}"));
    app.screenshot("household-zh");
    app.click("[data-nav=visits]");
    // The list is longer than the window: read the table's text, not only the rows in view.
    app.wait_until(
        "the follow-up in the list",
        "const table = document.querySelector('[data-testid=follow-ups]');
         return !!table && table.textContent.includes('赵小村') && table.textContent.includes('下周帮助拍摄主图');",
    );
    app.quit();
}

/// Visits every main screen and saves its screenshot under `name-language`.
fn screenshot_every_screen(app: &App, language: &str) {
    app.click("[data-nav=roster]");
    app.find("[data-testid=roster-row]");
    app.screenshot(&format!("roster-{language}"));
    open_zhao(app);
    app.find("[data-testid=income-chart]");
    app.screenshot(&format!("household-{language}"));
    app.click("[data-testid=edit-household]");
    app.type_into("#household-phone", "12");
    app.click("[data-testid=household-save]");
    app.find("[data-error-for=household-phone]");
    app.screenshot(&format!("household-form-error-{language}"));
    app.click("[data-testid=household-cancel]");
    app.click("[data-testid=add-member]");
    app.type_into("#member-phone", "12");
    app.click("[data-testid=member-save]");
    app.find("[data-error-for=member-phone]");
    app.screenshot(&format!("member-form-error-{language}"));
    app.click("[data-testid=member-cancel]");
    app.click("[data-testid=add-income]");
    app.type_into("#income-amount", "12.345");
    app.click("[data-testid=income-save]");
    app.find("[data-error-for=income-amount]");
    app.screenshot(&format!("income-form-error-{language}"));
    app.click("[data-testid=income-cancel]");
    app.click("[data-nav=training]");
    app.click("[data-testid=new-session]");
    app.find("#session-title");
    app.screenshot(&format!("training-form-{language}"));
    app.click("[data-nav=visits]");
    app.find("[data-testid=follow-ups]");
    app.screenshot(&format!("visits-{language}"));
    app.click("[data-nav=products]");
    app.find("section.products");
    app.screenshot(&format!("products-{language}"));
    app.click("[data-nav=settings]");
    app.find("[data-testid=data-dir]");
    app.screenshot(&format!("settings-{language}"));
}

#[test]
fn switching_to_english_and_back_takes_effect_at_once_and_persists() {
    let directory = prepared(60);
    let app = App::start(directory.path());
    app.resize(1024, 768);
    assert_eq!(app.text("[data-nav=roster]"), "农户名册");
    screenshot_every_screen(&app, "zh");
    app.click("[data-testid=language-toggle]");
    app.wait_text("[data-nav=roster]", |text| text == "Households");
    screenshot_every_screen(&app, "en");
    app.quit();

    // The choice survives a restart.
    let app = App::start(directory.path());
    app.wait_text("[data-nav=roster]", |text| text == "Households");
    app.click("[data-testid=language-toggle]");
    app.wait_text("[data-nav=roster]", |text| text == "农户名册");
    app.resize(1920, 1080);
    screenshot_every_screen(&app, "zh-1920");
    app.click("[data-testid=language-toggle]");
    app.wait_text("[data-nav=roster]", |text| text == "Households");
    screenshot_every_screen(&app, "en-1920");
    app.click("[data-testid=language-toggle]");
    app.wait_text("[data-nav=roster]", |text| text == "农户名册");
    app.quit();
    let settings = Settings::load(directory.path());
    assert_eq!(settings.language, "zh-CN");
}

#[test]
fn the_sign_in_screen_comes_first_and_a_new_device_is_told_to_sign_in_once() {
    let directory = tempfile::Builder::new().prefix("furrow-e2e-").tempdir().unwrap();
    let app = App::start(directory.path());
    app.resize(1024, 768);
    app.find("[data-testid=signin-form]");
    app.screenshot("signin-zh");
    app.type_into("#signin-server", "ftp://bad");
    app.click("[data-testid=signin-submit]");
    assert_eq!(app.wait_text("[data-error-for=signin-server]", |text| !text.is_empty()), "地址应以 http:// 或 https:// 开头");
    app.click(".lang");
    app.wait_text("[data-testid=signin-submit]", |text| text == "Sign in");
    app.screenshot("signin-en");
    app.click(".lang");
    // No server listens on port 9: the sign-in fails with the reason, nothing else happens.
    app.type_into("#signin-server", "http://127.0.0.1:9");
    app.type_into("#signin-username", "demo");
    app.type_into("#signin-password", "demo-password");
    app.click("[data-testid=signin-submit]");
    app.wait_text(".form-error", |text| text.contains("网络不通"));
    // A new device knows no village, so working offline could save nothing: it says that one
    // sign-in is needed, and stays on the sign-in screen.
    app.click("[data-testid=work-offline]");
    app.wait_text("[data-testid=signin-error]", |text| text.contains("请先联网登录一次"));
    assert!(app.try_find("[data-testid=sync-indicator]").is_none(), "the app did not open without a village");
    app.screenshot("signin-no-villages-zh");
    app.click(".lang");
    app.wait_text("[data-testid=signin-error]", |text| text.contains("Sign in once while online"));
    app.screenshot("signin-no-villages-en");
    app.click(".lang");
    app.quit();
    assert!(!Settings::load(directory.path()).signed_in);
}

/// A furrow-server on a free port with the demo villages and a demo assistant.
struct Server {
    binary: std::path::PathBuf,
    data_dir: tempfile::TempDir,
    port: u16,
    process: Option<std::process::Child>,
}

impl Server {
    const VILLAGES: [(&'static str, &'static str); 2] = [("530724100201", "演示·青山村"), ("530724100202", "演示·石门村")];

    fn new() -> Server {
        let binary = Path::new(env!("CARGO_BIN_EXE_furrow-app")).with_file_name("furrow-server");
        if !binary.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo).args(["build", "-p", "furrow-server"]).status().unwrap();
            assert!(status.success(), "building furrow-server failed");
        }
        let data_dir = tempfile::Builder::new().prefix("furrow-server-e2e-").tempdir().unwrap();
        let run = |args: &[&str], stdin: Option<&str>| {
            use std::io::Write;
            let mut child = std::process::Command::new(&binary)
                .args(args)
                .args(["--data-dir", data_dir.path().to_str().unwrap()])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            if let Some(text) = stdin {
                child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            }
            assert!(child.wait().unwrap().success(), "furrow-server {args:?} failed");
        };
        for (code, name) in Self::VILLAGES {
            run(&["village", "add", "--code", code, "--name", name], None);
        }
        run(
            &["assistant", "add", "--username", "demo", "--password-stdin", "--village", Self::VILLAGES[0].0, "--village", Self::VILLAGES[1].0],
            Some("qingshan-walnut-2024\n"),
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = Server { binary, data_dir, port, process: None };
        server.start();
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&mut self) {
        let child = std::process::Command::new(&self.binary)
            .args(["serve", "--data-dir", self.data_dir.path().to_str().unwrap(), "--listen", &format!("127.0.0.1:{}", self.port)])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        self.process = Some(child);
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "furrow-server did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_pending(app: &App, test: &str) {
    app.wait_until(&format!("pending {test}"), &format!("return Number(document.querySelector('[data-testid=pending-count]').textContent) {test}"));
}

#[test]
fn sign_in_edit_offline_then_sync_brings_pending_to_zero_and_a_second_device_sees_it() {
    let mut server = Server::new();
    let directory = tempfile::Builder::new().prefix("furrow-e2e-").tempdir().unwrap();
    let app = App::start(directory.path());
    app.type_into("#signin-server", &server.url());
    app.type_into("#signin-username", "demo");
    app.type_into("#signin-password", "qingshan-walnut-2024");
    app.click("[data-testid=signin-submit]");
    app.find("[data-testid=sync-indicator]");
    app.wait_text("[data-testid=sync-online]", |text| text.contains("在线"));
    // The first sync brings the assistant's villages.
    app.click("[data-testid=sync-button]");
    wait_pending(&app, "=== 0");
    app.wait_text("[data-testid=sync-indicator]", |text| !text.contains("尚未同步"));

    app.click("[data-testid=add-household]");
    app.type_into("#household-head_name", "孙同步");
    app.choose("#household-village_id", "");
    app.choose("#household-attribute", "general");
    app.choose("#household-poverty_status", "not_exited");
    app.type_into("#household-phone", "13700137000");
    app.click("[data-testid=household-save]");
    app.wait_text("[data-testid=household-name]", |text| text == "孙同步");
    wait_pending(&app, "> 0");
    app.click("[data-testid=sync-button]");
    wait_pending(&app, "=== 0");

    // The server goes away; edits keep being saved and queued.
    server.stop();
    app.click("[data-testid=edit-household]");
    app.type_into("#household-phone", "13700137001");
    app.click("[data-testid=household-save]");
    app.wait_text("[data-testid=household-page]", |text| text.contains("13700137001"));
    wait_pending(&app, "> 0");
    app.wait_text("[data-testid=sync-online]", |text| text.contains("离线"));
    app.screenshot("sync-offline-pending-zh");

    server.start();
    app.wait_text("[data-testid=sync-online]", |text| text.contains("在线"));
    app.click("[data-testid=sync-button]");
    wait_pending(&app, "=== 0");
    app.screenshot("sync-done-zh");
    app.quit();

    // A second device signed in to the same account sees the edit.
    let second = tempfile::tempdir().unwrap();
    let store = std::sync::Mutex::new(support::open_store(&second.path().join(DATABASE_FILE)));
    let engine = furrow::sync::SyncEngine::new(&server.url()).unwrap();
    engine.login(&store, "demo", "qingshan-walnut-2024", "second device").unwrap();
    engine.sync(&store, &|_| {}).unwrap();
    let store = store.lock().unwrap();
    let found = household::search(&store, &furrow::domain::household::RosterQuery { text: Some("孙同步".into()), ..Default::default() }).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].phone.as_deref(), Some("13700137001"));
}

/// Cold start to an interactive roster of 10,000 households, and memory once it is loaded.
/// The figures are printed and written to `artifacts/figures.txt`.
#[test]
fn cold_start_to_an_interactive_roster_of_ten_thousand_households() {
    let seeding = Instant::now();
    let directory = prepared(10_000);
    let seed_seconds = seeding.elapsed().as_secs_f64();
    let started = Instant::now();
    let app = App::start(directory.path());
    let window_seconds = started.elapsed().as_secs_f64();
    app.find("[data-testid=roster-row]");
    let first_rows = started.elapsed().as_secs_f64();
    app.wait_until(
        "10,000 households in the roster",
        "return document.querySelector('[data-testid=roster-count]')?.dataset.count === '10001' && !!document.querySelector('[data-testid=roster-row]')",
    );
    let cold_start = started.elapsed().as_secs_f64();
    let searching = Instant::now();
    app.type_into("[data-testid=roster-search]", "赵小村");
    app.wait_until("the search result", "return document.querySelectorAll('[data-testid=roster-row]').length === 1");
    let search_seconds = searching.elapsed().as_secs_f64();
    app.type_into("[data-testid=roster-search]", "");
    app.wait_until("the whole roster again", "return document.querySelector('[data-testid=roster-count]').dataset.count === '10001'");
    // A second search, once the index has caught up with the import: a member's name.
    let searching = Instant::now();
    app.type_into("[data-testid=roster-search]", "钱桂花");
    app.wait_until("the member's household", "return document.querySelectorAll('[data-testid=roster-row]').length === 1");
    let second_search_seconds = searching.elapsed().as_secs_f64();
    app.type_into("[data-testid=roster-search]", "");
    app.wait_until("the whole roster again", "return document.querySelector('[data-testid=roster-count]').dataset.count === '10001'");
    // The roster opens in the pinyin order of the heads' names; in register order the last
    // household registered is the last row.
    app.click("[data-testid=sort-register_no]");
    app.wait_until("the roster in register order", "return document.querySelector('[data-testid=sort-register_no]')?.getAttribute('aria-sort') === 'ascending' && !!document.querySelector('[data-testid=roster-row]')");
    let scrolling = Instant::now();
    app.script("const list = document.querySelector('[data-testid=roster-list]'); list.scrollTop = list.scrollHeight;", json!([]));
    // Scrolled again on every look, in case the reordered list came after the first scroll.
    app.wait_until(
        "the last row",
        "const list = document.querySelector('[data-testid=roster-list]'); list.scrollTop = list.scrollHeight; return [...document.querySelectorAll('[data-testid=roster-row]')].some(row => row.textContent.includes('YS10000'))",
    );
    let scroll_seconds = scrolling.elapsed().as_secs_f64();
    let rendered = app.script("return document.querySelectorAll('[data-testid=roster-row]').length", json!([]));
    let processes = app.processes();
    let mut lines = vec![
        format!("seed 10,000 demo households (+30,000 members): {seed_seconds:.1} s"),
        format!("cold start: window and WebDriver session ready: {window_seconds:.2} s"),
        format!("cold start to the first roster rows (interactive): {first_rows:.2} s"),
        format!("cold start to the whole roster of 10,001 households loaded: {cold_start:.2} s"),
        format!("first search as you type (赵小村), which brings the search index up to date with the import: {:.0} ms", search_seconds * 1000.0),
        format!("next search as you type (钱桂花, a member) over 10,001 households: {:.0} ms", second_search_seconds * 1000.0),
        format!("scroll to the last row: {:.0} ms, rows in the DOM: {rendered}", scroll_seconds * 1000.0),
    ];
    let mut total = 0;
    for (pid, name) in &processes {
        let rss = rss_kib(*pid);
        total += rss;
        lines.push(format!("RSS {name} (pid {pid}): {:.1} MiB", rss as f64 / 1024.0));
    }
    lines.push(format!("RSS total: {:.1} MiB", total as f64 / 1024.0));
    let report = lines.join("\n");
    println!("{report}");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("figures.txt"), format!("{report}\n")).unwrap();
    app.screenshot("roster-10k-zh");
    assert!(cold_start < 60.0, "cold start took {cold_start:.1} s");
    app.quit();
}

/// The chart's bar of `year`: `(per-capita fen, poverty line fen, above the line)`, or `None`
/// when the chart has no bar for that year.
fn chart_bar(app: &App, year: i64) -> Option<(i64, i64, String)> {
    let bar = app.script(
        "const bar = document.querySelector(`[data-testid=income-chart] rect[data-year='${arguments[0]}']`);
         return bar ? [Number(bar.dataset.perCapita), Number(bar.dataset.line), bar.dataset.above] : null;",
        json!([year]),
    );
    let values = bar.as_array()?;
    Some((values[0].as_i64()?, values[1].as_i64()?, values[2].as_str()?.to_owned()))
}

#[test]
fn a_member_with_a_bad_mobile_shows_the_chinese_error_then_new_income_moves_the_chart() {
    let directory = prepared(20);
    let app = App::start(directory.path());
    open_zhao(&app);
    app.find("[data-testid=income-chart]");
    // 2024: wage 15,300 + operating 5,100 + transfer 900 yuan among three people.
    assert_eq!(chart_bar(&app, 2024), Some((710_000, 400_000, "true".into())));
    let before = app.pending();

    app.click("[data-testid=add-member]");
    app.type_into("#member-name", "赵小梅");
    app.choose("#member-relation", "daughter");
    app.choose("#member-sex", "female");
    app.set_value("#member-birth_date", "2001-05-04");
    app.choose("#member-education", "senior_secondary");
    app.type_into("#member-phone", "1391234");
    app.click("[data-testid=member-save]");
    let error = app.wait_text("[data-error-for=member-phone]", |text| !text.is_empty());
    assert_eq!(error, "手机号应为11位数字，以1开头");
    assert_eq!(
        app.script("return document.querySelector('[data-error-for=member-phone]').closest('.field').querySelector('input').id", json!([])),
        json!("member-phone")
    );
    assert_eq!(app.pending(), before, "a refused member is not queued");
    app.screenshot("member-form-error-zh");
    app.type_into("#member-phone", "13912345678");
    // Enter saves the form.
    app.press_enter("#member-phone");
    app.wait_until(
        "the new member in the list",
        "const list = document.querySelector('[data-testid=member-list]');
         return !!list && list.textContent.includes('赵小梅') && list.textContent.includes('13912345678');",
    );
    assert!(app.try_find("[data-testid=member-form]").is_none());
    wait_pending(&app, &format!("> {before}"));
    // The new member is shown as waiting to be sent, and divides the income four ways now.
    app.wait_until(
        "the new member's pending badge",
        "return [...document.querySelectorAll('[data-testid=member-row]')].some(row => row.textContent.includes('赵小梅')
           && row.querySelector('[data-testid=sync-badge]')?.dataset.state === 'pending')",
    );
    app.wait_until("the chart to divide by four", "return document.querySelector(\"rect[data-year='2024']\")?.dataset.perCapita === '532500'");

    // A first income record for 2025 puts a new bar on the chart, below the poverty line.
    assert_eq!(chart_bar(&app, 2025), None);
    app.click("[data-testid=add-income]");
    app.type_into("#income-year", "2025");
    app.choose("#income-category", "wage");
    app.type_into("#income-amount", "6000");
    app.type_into("#income-item", "外出务工");
    app.screenshot("income-form-zh");
    app.click("[data-testid=income-save]");
    app.wait_text("[data-testid=notice]", |text| text == "收入已登记");
    app.wait_until("the 2025 bar", "return !!document.querySelector(\"rect[data-year='2025']\")");
    assert_eq!(chart_bar(&app, 2025), Some((150_000, 400_000, "false".into())));
    app.wait_until("the new record in the list", "return document.querySelector('[data-testid=income-records]').textContent.includes('6,000.00')");

    // A correction replaces the record in the totals; the old record is kept.
    app.click("[data-testid=correct-income]");
    app.wait_until("the correction form from the old record", "return document.querySelector('#income-amount').value === '6000.00'");
    app.type_into("#income-amount", "20000");
    app.click("[data-testid=income-save]");
    app.wait_text("[data-testid=notice]", |text| text == "更正已登记");
    app.wait_until("the corrected 2025 bar", "return document.querySelector(\"rect[data-year='2025']\")?.dataset.perCapita === '500000'");
    assert_eq!(chart_bar(&app, 2025), Some((500_000, 400_000, "true".into())));
    app.screenshot("household-income-zh");
    app.quit();

    let store = support::open_store(&directory.path().join(DATABASE_FILE));
    let zhao = household::search(&store, &furrow::domain::household::RosterQuery { text: Some("赵小村".into()), ..Default::default() }).unwrap();
    let members = household::members(&store, &zhao[0].id).unwrap();
    let added = members.iter().find(|member| member.name.as_deref() == Some("赵小梅")).expect("the member is saved");
    assert_eq!(added.phone.as_deref(), Some("13912345678"));
    assert_eq!(added.birth_date.as_deref(), Some("2001-05-04"));
    let in_force: Vec<IncomeRecord> =
        income::in_force(&store, &zhao[0].id).unwrap().into_iter().filter(|record| record.year == Some(2025)).collect();
    assert_eq!(in_force.len(), 1);
    assert_eq!(in_force[0].amount_fen, Some(2_000_000));
    let corrected = income::get(&store, in_force[0].corrects_id.as_deref().expect("the correction names the record it replaces")).unwrap();
    assert_eq!(corrected.amount_fen, Some(600_000), "the corrected record is kept beside its correction");
}

#[test]
fn a_price_rejected_by_the_server_is_listed_with_its_reason_fixed_and_sent_again() {
    use furrow::schema::{LISTINGS, PRODUCTS};
    let server = Server::new();
    let directory = tempfile::Builder::new().prefix("furrow-e2e-").tempdir().unwrap();
    let object = |value: serde_json::Value| value.as_object().unwrap().clone();
    // This device signs in, sends a listing, and goes offline.
    let listing = {
        let store = std::sync::Mutex::new(support::open_store(&directory.path().join(DATABASE_FILE)));
        let engine = furrow::sync::SyncEngine::new(&server.url()).unwrap();
        engine.login(&store, "demo", "qingshan-walnut-2024", "laptop").unwrap();
        engine.sync(&store, &|_| {}).unwrap();
        let mut guard = store.lock().unwrap();
        let village = furrow::domain::village::list(&guard).unwrap()[0].id.clone().unwrap();
        let listing = guard
            .write(|writer| {
                let product = writer.save(&PRODUCTS, None, object(json!({"village_id": village, "name": "核桃", "category": "nuts"})))?;
                writer.save(
                    &LISTINGS,
                    None,
                    object(json!({"product_id": product.id, "platform": "taobao", "title": "高山薄皮核桃 500g", "category": "nuts",
                        "price_fen": 3990, "unit": "jin", "status": "draft"})),
                )
            })
            .unwrap()
            .id;
        drop(guard);
        engine.sync(&store, &|_| {}).unwrap();
        listing
    };
    // Another device changes the price and syncs first.
    let tablet_dir = tempfile::tempdir().unwrap();
    let tablet = std::sync::Mutex::new(support::open_store(&tablet_dir.path().join(DATABASE_FILE)));
    let tablet_engine = furrow::sync::SyncEngine::new(&server.url()).unwrap();
    tablet_engine.login(&tablet, "demo", "qingshan-walnut-2024", "tablet").unwrap();
    tablet_engine.sync(&tablet, &|_| {}).unwrap();
    tablet.lock().unwrap().write(|writer| writer.save(&LISTINGS, Some(&listing), object(json!({"price_fen": 3500})))).unwrap();
    tablet_engine.sync(&tablet, &|_| {}).unwrap();
    // Meanwhile, offline, this device changes the price from the old one.
    std::thread::sleep(std::time::Duration::from_millis(5));
    {
        let mut store = support::open_store(&directory.path().join(DATABASE_FILE));
        store.write(|writer| writer.save(&LISTINGS, Some(&listing), object(json!({"price_fen": 4200})))).unwrap();
    }
    Settings { signed_in: true, server_url: server.url(), username: "demo".into(), ..Settings::default() }.save(directory.path()).unwrap();

    let app = App::start(directory.path());
    app.find("[data-testid=sync-indicator]");
    app.wait_text("[data-testid=sync-online]", |text| text.contains("在线"));
    // The app syncs when it opens; the server refuses the stale price.
    app.click("[data-testid=sync-button]");
    app.wait_until(
        "the sync to finish with a conflict",
        "return !document.querySelector('[data-testid=sync-button]').disabled && !!document.querySelector('[data-testid=conflicts-link]')",
    );
    app.click("[data-testid=conflicts-link]");
    app.wait_until("one rejected edit", "return document.querySelectorAll('[data-testid=rejected-edit]').length === 1");
    let shown = app.text("[data-testid=rejected-edit]");
    assert!(shown.contains("高山薄皮核桃 500g"), "{shown}");
    assert!(shown.contains("平台已改过此值，您的修改基于旧值"), "{shown}");
    assert!(shown.contains("¥42.00") && shown.contains("¥35.00"), "{shown}");
    app.screenshot("rejected-edits-zh");
    wait_pending(&app, "=== 0");
    app.click("[data-testid=fix-edit]");
    app.wait_until("the fix form with the rejected price", "return document.querySelector('#fix-value')?.value === '42.00'");
    app.type_into("#fix-value", "0");
    app.press_enter("#fix-value");
    assert_eq!(app.wait_text("[data-error-for=fix-value]", |text| !text.is_empty()), "价格必须大于0");
    app.type_into("#fix-value", "39.50");
    app.press_enter("#fix-value");
    app.wait_text("[data-testid=resend-notice]", |text| text == "已重新排队，下次同步时发送");
    app.wait_until("the list to empty", "return document.querySelectorAll('[data-testid=rejected-edit]').length === 0");
    wait_pending(&app, "> 0");
    app.click("[data-testid=sync-button]");
    wait_pending(&app, "=== 0");
    assert!(app.try_find("[data-testid=conflicts-link]").is_none());
    app.quit();

    tablet_engine.sync(&tablet, &|_| {}).unwrap();
    let tablet = tablet.lock().unwrap();
    let price = furrow::sync::status::read_record(&tablet, "listings", &listing).unwrap().unwrap().fields["price_fen"].clone();
    assert_eq!(price, json!(3950), "the fixed price reached the other device");
}

#[test]
fn settings_show_the_data_location_keep_the_server_address_sign_in_there_and_export_a_backup() {
    let server = Server::new();
    let directory = prepared(20);
    let app = App::start(directory.path());
    app.click("[data-nav=settings]");
    assert_eq!(app.text("[data-testid=data-dir]"), directory.path().display().to_string());
    app.wait_text("[data-testid=account]", |text| text == "未登录（离线工作）");

    app.type_into("#settings-server", "ftp://127.0.0.1");
    app.click("[data-testid=save-server]");
    assert_eq!(app.wait_text("[data-error-for=settings-server]", |text| !text.is_empty()), "地址应以 http:// 或 https:// 开头");
    app.type_into("#settings-server", &server.url());
    app.press_enter("#settings-server");
    app.wait_text("[data-testid=server-notice]", |text| text == "已保存");
    assert!(app.try_find("[data-error-for=settings-server]").is_none());
    assert_eq!(Settings::load(directory.path()).server_url, server.url());

    // With the password, the same form signs in to that server; the indicator then reaches it.
    app.type_into("#settings-username", "demo");
    app.type_into("#settings-password", "qingshan-walnut-2024");
    app.click("[data-testid=save-server]");
    app.wait_text("[data-testid=server-notice]", |text| text.starts_with("已登录"));
    app.wait_text("[data-testid=account]", |text| text == "demo");
    app.wait_text("[data-testid=sync-online]", |text| text.contains("在线"));
    let settings = Settings::load(directory.path());
    assert_eq!((settings.username.as_str(), settings.server_url.as_str()), ("demo", server.url().as_str()));

    app.click("[data-testid=backup]");
    let notice = app.wait_text("[data-testid=backup-notice]", |text| text.starts_with("备份已保存到："));
    app.screenshot("settings-backup-zh");
    app.quit();
    let path = notice.trim_start_matches("备份已保存到：").trim().to_owned();
    assert!(path.starts_with(&directory.path().display().to_string()), "{path}");
    // The backup is a whole store: it opens and holds the households.
    let backup = support::open_store(Path::new(&path));
    let found = household::search(&backup, &furrow::domain::household::RosterQuery { text: Some("赵小村".into()), ..Default::default() }).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(household::members(&backup, &found[0].id).unwrap().len(), 3);
}
