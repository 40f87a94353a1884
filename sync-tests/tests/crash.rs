//! A device killed with SIGKILL at random points of its work (saving, pushing, applying pages),
//! then started again from the same store file: every save it confirmed before the kill reaches
//! the server exactly once, and its copy converges with the server's.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use furrow::schema;
use furrow_sync_tests::{on_both_backends, Backend, Device, TestServer};
use serde_json::json;

const V1: &str = "530102001001";

fn a_device_killed_at_random_points_loses_no_confirmed_save_and_duplicates_nothing(backend: Backend) {
    let server = TestServer::start_on(backend);
    let village = server.add_village(V1, "小河村");
    server.add_assistant("lihua", "li-password-1", &[V1]);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("furrow.db");
    let program = env!("CARGO_BIN_EXE_furrow-sync-device");
    let seed: u64 = std::env::var("FURROW_SEED").ok().and_then(|text| text.parse().ok()).unwrap_or(7);
    let rounds: usize = std::env::var("FURROW_KILLS").ok().and_then(|text| text.parse().ok()).unwrap_or(8);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut confirmed: Vec<(String, String)> = Vec::new();
    for round in 0..rounds {
        let mut child = Command::new(program)
            .args([&server.url, "lihua", "li-password-1", store.to_str().unwrap(), &village, "40"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the device starts");
        let stdout = child.stdout.take().unwrap();
        let (lines, received) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    return;
                }
            }
        });
        // The kill lands at a random point after the device started working (its start-up time
        // varies with the machine's load), anywhere among its saves, pushes and pulls.
        let first = received.recv_timeout(Duration::from_secs(120)).expect("the device confirms a first save");
        let kill_after = Duration::from_millis(rng.u64(0..300));
        std::thread::sleep(kill_after);
        // SIGKILL: no destructor, no flush, no rollback beyond what SQLite itself guarantees.
        let _ = child.kill();
        let _ = child.wait();
        for line in std::iter::once(first).chain(received.iter()) {
            let mut words = line.split_whitespace();
            if words.next() == Some("saved") {
                confirmed.push((words.next().unwrap().to_owned(), words.next().unwrap().to_owned()));
            }
        }
        eprintln!("round {round}: killed after {kill_after:?}, {} saves confirmed so far", confirmed.len());
    }
    // Started once more, the device drains its outbox without a new edit.
    let status = Command::new(program)
        .args([&server.url, "lihua", "li-password-1", store.to_str().unwrap(), &village, "0"])
        .stdout(Stdio::null())
        .status()
        .expect("the device runs");
    assert!(status.success(), "seed {seed}: the restarted device did not settle");
    assert!(!confirmed.is_empty(), "seed {seed}: the device confirmed no save before the kills");

    let killed = Device::open(&store, &server.url);
    assert_eq!(killed.pending(), 0, "seed {seed}");
    let fresh = Device::new(&server.url);
    fresh.login("lihua", "li-password-1");
    fresh.sync().unwrap();
    for (id, head) in &confirmed {
        assert_eq!(fresh.field(&schema::HOUSEHOLDS, id, "head_name"), Some(json!(head)), "seed {seed}: confirmed save {id} lost");
    }
    assert_eq!(fresh.dump(), killed.dump(), "seed {seed}: the restarted device converges");
    let duplicated =
        server.query_count("SELECT count(*) FROM (SELECT change_id FROM sync_changes GROUP BY change_id HAVING count(*) > 1) AS duplicated");
    assert_eq!(duplicated, 0, "seed {seed}: a change was applied twice");
}

on_both_backends!(
    a_device_killed_at_random_points_loses_no_confirmed_save_and_duplicates_nothing,
);
