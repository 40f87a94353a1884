//! End-to-end test of the lock, in the real window: a laptop whose older version kept a plain
//! store sets its passphrase at the first start (the store is encrypted), restarts and unlocks
//! offline after a wrong try, locks after sitting idle and unlocks again, changes the
//! passphrase, writes an encrypted backup to another folder (restored into a fresh data
//! directory, it opens in the window), and after a restart opens with the new passphrase only.

mod support;

use std::path::Path;

use furrow::codes::{HouseholdAttribute, PovertyStatus};
use furrow::domain::household::{self, Household};
use furrow_app::state::{Settings, DATABASE_FILE};
use support::App;

const FIRST: &str = "302118";
const SECOND: &str = "qingshan-walnut-7";

/// A data directory as an older version left it: a plain store with demo households and one
/// known household, the sign-in passed, and a short idle lock for the test.
fn older_version() -> tempfile::TempDir {
    let directory = tempfile::Builder::new().prefix("furrow-e2e-lock-").tempdir().unwrap();
    let mut store = furrow::Store::open(&furrow::OpenOptions::file(directory.path().join(DATABASE_FILE))).unwrap();
    furrow_app::demo::seed(&mut store, 12).unwrap();
    let village = furrow::domain::village::list(&store).unwrap()[0].id.clone();
    household::save(
        &mut store,
        &Household {
            village_id: village,
            head_name: Some("龚秀芝".into()),
            phone: Some("13987650001".into()),
            attribute: Some(HouseholdAttribute::General),
            poverty_status: Some(PovertyStatus::NotExited),
            ..Household::default()
        },
    )
    .unwrap();
    drop(store);
    Settings { signed_in: true, lock_after_seconds: 8, ..Settings::default() }.save(directory.path()).unwrap();
    directory
}

fn holds(path: &Path, text: &str) -> bool {
    std::fs::read(path).map(|bytes| bytes.windows(text.len()).any(|window| window == text.as_bytes())).unwrap_or(false)
}

fn enter(app: &App, passphrase: &str) {
    app.set_value("[data-testid=lock-passphrase]", passphrase);
    app.click("[data-testid=lock-submit]");
}

fn roster_shows_gong(app: &App) {
    app.type_into("[data-testid=roster-search]", "龚秀芝");
    app.wait_until("one roster row", "return document.querySelectorAll('[data-testid=roster-row]').length === 1");
}

#[test]
fn the_passphrase_is_set_asked_at_each_start_locks_on_idle_and_changes() {
    let directory = older_version();
    let database = directory.path().join(DATABASE_FILE);
    assert!(holds(&database, "龚秀芝"), "the older version's store is readable by anyone");

    // First start: the window asks for a passphrase, in Chinese, twice.
    let app = App::start_locked(directory.path());
    app.wait_text("[data-testid=lock-screen] h1", |text| text == "设置本机密码");
    assert!(app.text("[data-testid=lock-screen]").contains("原来的未加密文件会被覆盖并删除"));
    app.set_value("[data-testid=lock-passphrase]", FIRST);
    app.set_value("[data-testid=lock-again]", FIRST);
    app.screenshot("lock-first-run-zh");
    app.click("[data-testid=lock-submit]");
    roster_shows_gong(&app);
    app.quit();
    assert!(!holds(&database, "龚秀芝") && !holds(&database, "SQLite format 3"), "the store is encrypted");
    assert!(directory.path().join("furrow.db.key").exists());
    assert!(!directory.path().join("furrow.db.replaced").exists(), "the plain file is gone");

    // Every start asks; a wrong passphrase opens nothing and says so.
    let app = App::start_locked(directory.path());
    app.wait_text("[data-testid=lock-screen] h1", |text| text == "田垄已锁定");
    enter(&app, "000000");
    app.wait_text("[data-testid=lock-error]", |text| text.contains("密码不正确"));
    app.screenshot("lock-wrong-passphrase-zh");
    enter(&app, FIRST);
    roster_shows_gong(&app);

    // Idle for longer than the lock time (eight seconds here): the window locks and hides the
    // roster; the passphrase brings it back as it was.
    app.wait_until("the idle lock", "return !!document.querySelector('[data-testid=lock-screen]')");
    assert!(app.script("return getComputedStyle(document.querySelector('.frame')).visibility", serde_json::json!([])).as_str() == Some("hidden"));
    app.screenshot("lock-idle-zh");
    enter(&app, FIRST);
    app.wait_until("unlocked", "return !document.querySelector('[data-testid=lock-screen]')");
    assert_eq!(app.script("return document.querySelectorAll('[data-testid=roster-row]').length", serde_json::json!([])).as_i64(), Some(1));

    // A new passphrase in Settings.
    app.click("[data-nav=settings]");
    app.set_value("[data-testid=old-passphrase]", FIRST);
    app.set_value("[data-testid=new-passphrase]", SECOND);
    app.click("[data-testid=change-passphrase]");
    app.wait_text("[data-testid=security-notice]", |text| text == "密码已修改");

    // An encrypted backup with a passphrase of its own, to another folder (a USB stick).
    let usb = tempfile::Builder::new().prefix("furrow-e2e-usb-").tempdir().unwrap();
    app.set_value("[data-testid=backup-folder]", &usb.path().display().to_string());
    app.set_value("[data-testid=backup-passphrase]", "county-office-9");
    app.click("[data-testid=backup]");
    let notice = app.wait_text("[data-testid=backup-notice]", |text| text.starts_with("备份已保存到："));
    app.screenshot("lock-settings-backup-zh");
    app.quit();
    let backup = std::path::PathBuf::from(notice.trim_start_matches("备份已保存到：").trim());
    assert!(backup.starts_with(usb.path()), "{}", backup.display());
    assert!(!holds(&backup, "龚秀芝") && !holds(&backup, "SQLite format 3"), "the backup is encrypted");

    // Restored into a fresh data directory, it opens in the window with the backup's passphrase.
    let fresh = tempfile::Builder::new().prefix("furrow-e2e-fresh-").tempdir().unwrap();
    furrow::backup::restore(&fresh.path().join(DATABASE_FILE), &backup, "county-office-9", None, false).unwrap().unwrap();
    Settings { signed_in: true, ..Settings::default() }.save(fresh.path()).unwrap();
    let app = App::start_locked(fresh.path());
    app.wait_text("[data-testid=lock-screen] h1", |text| text == "田垄已锁定");
    enter(&app, "county-office-9");
    roster_shows_gong(&app);
    app.quit();

    let app = App::start_locked(directory.path());
    enter(&app, FIRST);
    app.wait_text("[data-testid=lock-error]", |text| text.contains("密码不正确"));
    enter(&app, SECOND);
    app.click("[data-nav=roster]");
    roster_shows_gong(&app);
    app.quit();
}
