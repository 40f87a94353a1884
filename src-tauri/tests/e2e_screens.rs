//! The window's screens at 1024x768, in Chinese and in English, as an assistant first sees them:
//! the roster in pinyin order with its import and export, the outcomes with the households behind
//! a figure, training, visits, products and settings. Each screen must fit the window's width (no
//! sideways scrolling) and show its own title in the language chosen. Screenshots go to
//! `artifacts/screenshots/screen-*`.

mod support;

use furrow_app::state::{Settings, DATABASE_FILE};
use serde_json::json;
use support::App;

/// A data directory with demo households (incomes, trainings, visits, listings and sales among
/// them), past the sign-in screen (offline).
fn prepared(households: usize) -> tempfile::TempDir {
    let directory = tempfile::Builder::new().prefix("furrow-e2e-screens-").tempdir().unwrap();
    let mut store = support::open_store(&directory.path().join(DATABASE_FILE));
    furrow_app::demo::seed(&mut store, households).unwrap();
    drop(store);
    Settings { signed_in: true, ..Settings::default() }.save(directory.path()).unwrap();
    directory
}

/// Whether the page scrolls sideways: a layout broken at this width does.
fn overflows_sideways(app: &App) -> bool {
    app.script("return document.documentElement.scrollWidth > window.innerWidth + 1", json!([])).as_bool().unwrap_or(true)
}

/// Opens a screen from the navigation rail and waits for `ready` (a CSS selector) to show.
fn open(app: &App, screen: &str, ready: &str) {
    app.click(&format!("[data-nav={screen}]"));
    app.find(ready);
}

#[test]
fn every_main_screen_fits_1024_by_768_in_both_languages() {
    let directory = prepared(60);
    let app = App::start(directory.path());
    app.resize(1024, 768);
    app.find("[data-testid=roster-row]");

    for (language, roster_title, outcomes_word) in [("zh", "农户名册", "成效"), ("en", "Households", "Outcomes")] {
        if language == "en" {
            app.click("[data-testid=language-toggle]");
        }
        let nav = app.text("[data-nav=outcomes]");
        assert!(nav.contains(outcomes_word), "the rail names the outcomes screen in {language}: {nav:?}");

        // The roster: ordered by the heads' names in pinyin, sortable by column.
        open(&app, "roster", "[data-testid=roster-row]");
        let page = app.script("return document.querySelector('main').innerText", json!([])).as_str().unwrap_or_default().to_owned();
        assert!(page.contains(roster_title), "the roster says {roster_title:?} in {language}");
        app.wait_until(
            "the roster in pinyin order of the head's name",
            "return document.querySelector('[data-testid=sort-head_name]')?.getAttribute('aria-sort') === 'ascending'",
        );
        assert!(!overflows_sideways(&app), "the roster fits 1024 px in {language}");
        app.screenshot(&format!("screen-roster-{language}"));

        // Import and export open over the roster and fit too.
        app.click("[data-testid=open-import]");
        app.find("[data-testid=import-wizard]");
        assert!(!overflows_sideways(&app), "the import wizard fits 1024 px in {language}");
        app.screenshot(&format!("screen-import-{language}"));
        app.click("[data-testid=import-close]");
        app.click("[data-testid=open-export]");
        app.find("[data-testid=export-panel]");
        assert!(!overflows_sideways(&app), "the export panel fits 1024 px in {language}");
        app.screenshot(&format!("screen-export-{language}"));
        app.click("[data-testid=export-close]");

        // The outcomes: four cards with figures, and the households behind one of them.
        open(&app, "outcomes", "[data-testid=card-poverty]");
        app.wait_until("the outcomes' figures", "return document.querySelectorAll('[data-testid=figure]').length > 3");
        for card in ["card-skills", "card-poverty", "card-sustainability", "card-reproducibility"] {
            app.find(&format!("[data-testid={card}]"));
        }
        assert!(!overflows_sideways(&app), "the outcomes fit 1024 px in {language}");
        app.screenshot(&format!("screen-outcomes-{language}"));
        app.click("[data-testid=card-poverty] [data-testid=figure]");
        app.find("[data-testid=drill-down]");
        app.wait_until("the households behind a figure", "return !!document.querySelector('[data-testid=drill-down] table, [data-testid=drill-down] p')");
        assert!(!overflows_sideways(&app), "the households behind a figure fit 1024 px in {language}");
        app.screenshot(&format!("screen-outcomes-households-{language}"));
        app.click("[data-testid=drill-close]");

        for (screen, ready) in [("training", "main"), ("visits", "main"), ("products", "main"), ("settings", "[data-testid=server-form]")] {
            open(&app, screen, ready);
            assert!(!overflows_sideways(&app), "the {screen} screen fits 1024 px in {language}");
            app.screenshot(&format!("screen-{screen}-{language}"));
        }
    }
    app.quit();
}
