//! A device as a process of its own, for the tests that kill it with SIGKILL at random points of
//! its work and start it again: `furrow-sync-device URL USER PASSWORD STORE VILLAGE_ID EDITS`.
//! It signs in if the store has no account yet, then saves `EDITS` households one by one and syncs
//! after every few, printing `saved <id> <head>` after each committed save, so the test knows
//! which edits the device confirmed before it was killed. With `EDITS` 0 it only syncs until idle.

use std::io::Write as _;

use furrow::schema;
use furrow::sync::{self, SyncEngine};
use furrow::{OpenOptions, Store};
use furrow_sync_tests::household_fields;

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    let [_, url, username, password, path, village_id, edits] = arguments.as_slice() else {
        eprintln!("usage: furrow-sync-device URL USER PASSWORD STORE VILLAGE_ID EDITS");
        std::process::exit(2);
    };
    let edits: usize = edits.parse().expect("EDITS is a number");
    let store = std::sync::Mutex::new(Store::open(&OpenOptions::file(path)).expect("the store opens"));
    let engine = SyncEngine::new(url).expect("an engine").with_options(furrow_sync_tests::test_options());
    let signed_in = sync::signed_in_account(&store.lock().expect("the store")).expect("the account reads").is_some();
    if !signed_in {
        engine.login(&store, username, password, "killed laptop").expect("sign-in");
    }
    // The village comes from the server; until the first sync has brought it, nothing can be saved.
    let has_village = sync::read_record(&store.lock().expect("the store"), "villages", village_id).expect("the village reads").is_some();
    if !has_village {
        engine.run_until_idle(&store, &|_| {}, &std::sync::atomic::AtomicBool::new(false)).expect("the first sync");
    }
    let mut out = std::io::stdout().lock();
    let run = uuid::Uuid::new_v4().simple().to_string();
    for index in 0..edits {
        let head = format!("户{}-{index}", &run[..6]);
        let serde_json::Value::Object(fields) = household_fields(village_id, &head) else { unreachable!() };
        let saved = store.lock().expect("the store").write(|writer| writer.save(&schema::HOUSEHOLDS, None, fields)).expect("the save");
        writeln!(out, "saved {} {head}", saved.id).expect("stdout");
        out.flush().expect("stdout");
        if index % 3 == 2 {
            // A failed sync is retried by the next one; the test kills this process meanwhile.
            let _ = engine.sync(&store, &|_| {});
        }
    }
    let report = engine.run_until_idle(&store, &|_| {}, &std::sync::atomic::AtomicBool::new(false)).expect("the final sync");
    writeln!(out, "idle {}", report.applied).expect("stdout");
}
