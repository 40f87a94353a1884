//! The randomized convergence test of docs/sync.md section 9, against the real server through
//! the fault-injecting proxy. Each seed builds a small world (one assistant with two laptops, a
//! second assistant in another village, the platform moderating listings), makes random edits,
//! deletes, moves between villages, clock jumps and syncs while the link drops and duplicates
//! requests, with other devices editing and syncing between the pages of a pull, then heals the
//! link and checks the invariants. Each seed draws the devices' pull page size from
//! [`PAGE_SIZES`], so first syncs and catch-ups span many pages of a history edited after
//! creation. It runs on both server backends. The seed and backend of a
//! failing run are printed; `FURROW_SEED=N` reruns one seed and `FURROW_SEEDS=N` runs N seeds on
//! each backend (by default 200 on SQLite and POSTGRES_SEEDS on PostgreSQL, within CI's time).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use furrow::schema::{self, TableSpec};
use furrow::sync::{self, HttpTransport, Progress, SyncOptions, SyncState};
use furrow_sync_tests::proxy::FaultProxy;
use furrow_sync_tests::{cursor_seq, household_fields, new_listing, on_both_backends, test_options, Backend, Device, TestServer};
use serde_json::{json, Value};

const DAY: i64 = 24 * 3600 * 1000;

/// The pull page sizes a seed draws from: one row a page up to the device's default.
const PAGE_SIZES: [usize; 6] = [1, 2, 3, 7, 50, 1000];

/// The HTTP clients of one worker: through its proxy, and straight to the server.
struct Links {
    proxied: HttpTransport,
    direct: HttpTransport,
}

/// One local edit, as the oracle remembers it.
#[derive(Debug, Clone)]
struct Write {
    device: usize,
    table: &'static TableSpec,
    row: String,
    field: String,
    value: Value,
}

struct World<'a> {
    server: &'a TestServer,
    devices: Vec<Device>,
    /// The assistant of each device: 0 is A (two laptops), 1 is B.
    owner: Vec<usize>,
    /// The village row ids: A works in 0 and 2, B in 1.
    villages: [String; 3],
    logins: [(String, String); 2],
    households: Vec<(usize, String)>,
    listings: Vec<(usize, String)>,
    writes: Vec<Write>,
    deleted: Vec<(&'static TableSpec, String)>,
    cursors: Vec<i64>,
}

impl World<'_> {
    fn save(&mut self, device: usize, table: &'static TableSpec, id: Option<&str>, fields: Value) -> Option<String> {
        let saved = self.devices[device].save(table, id, fields.clone()).ok()?;
        let Value::Object(map) = fields else { unreachable!() };
        for (field, value) in map {
            self.writes.push(Write { device, table, row: saved.clone(), field, value });
        }
        Some(saved)
    }

    fn live(&self, device: usize, table: &'static TableSpec, candidates: &[(usize, String)]) -> Vec<String> {
        candidates
            .iter()
            .filter(|(owner, _)| *owner == self.owner[device])
            .filter(|(_, id)| self.devices[device].field(table, id, "deleted") == Some(Value::Bool(false)))
            .map(|(_, id)| id.clone())
            .collect()
    }

    fn sync(&mut self, device: usize) {
        // Failures are the faults at work; what matters is the state they leave.
        let _ = self.devices[device].sync();
        self.check_cursor(device);
    }

    /// A sync of `device` during whose pull another device edits a household and syncs after
    /// each page that has more after it, so rows change between and during the pages of a pull.
    fn sync_with_edits_during_pull(&mut self, device: usize, rng: &mut fastrand::Rng) {
        let other = (device + 1 + rng.usize(..2)) % self.devices.len();
        let assistant = self.owner[other];
        let candidates: Vec<String> =
            self.households.iter().filter(|(owner, _)| *owner == assistant).map(|(_, id)| id.clone()).collect();
        let edits = RefCell::new(Vec::new());
        let inner = RefCell::new(fastrand::Rng::with_seed(rng.u64(..)));
        {
            let devices = &self.devices;
            let progress = |event: &Progress| {
                let Progress::Pulled { has_more: true, pages, .. } = event else { return };
                let mut inner = inner.borrow_mut();
                let live: Vec<&String> = candidates
                    .iter()
                    .filter(|id| devices[other].field(&schema::HOUSEHOLDS, id, "deleted") == Some(Value::Bool(false)))
                    .collect();
                let Some(id) = live.get(inner.usize(..live.len().max(1))) else { return };
                let notes = format!("翻页第{pages}页时 设备{other}");
                if devices[other].save(&schema::HOUSEHOLDS, Some(id), json!({ "notes": notes })).is_ok() {
                    edits.borrow_mut().push(Write {
                        device: other,
                        table: &schema::HOUSEHOLDS,
                        row: (*id).clone(),
                        field: "notes".into(),
                        value: json!(notes),
                    });
                    let _ = devices[other].sync();
                }
            };
            let target = &self.devices[device];
            let _ = target.engine.sync(&target.store, &progress);
        }
        self.writes.extend(edits.into_inner());
        self.check_cursor(device);
        self.check_cursor(other);
    }

    fn check_cursor(&mut self, device: usize) {
        if let Some(rusqlite::types::Value::Text(cursor)) = self.devices[device].store().state("pull_cursor").unwrap() {
            let seq = cursor_seq(&cursor).expect("a cursor this server issued");
            assert!(seq >= self.cursors[device], "device {device}'s cursor went back from {} to {seq}", self.cursors[device]);
            self.cursors[device] = seq;
        }
    }
}

fn run_seed(server: &TestServer, proxy: &FaultProxy, links: &Links, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let page_size = PAGE_SIZES[rng.usize(..PAGE_SIZES.len())];
    let options = SyncOptions { pull_limit: page_size, ..test_options() };
    let codes = [format!("53{:010}", seed * 3), format!("53{:010}", seed * 3 + 1), format!("53{:010}", seed * 3 + 2)];
    let villages =
        [server.add_village(&codes[0], "甲村"), server.add_village(&codes[1], "乙村"), server.add_village(&codes[2], "丙村")];
    let logins = [(format!("assistant-a{seed}"), "password-a".to_owned()), (format!("assistant-b{seed}"), "password-b".to_owned())];
    server.add_assistant(&logins[0].0, &logins[0].1, &[codes[0].as_str(), codes[2].as_str()]);
    server.add_assistant(&logins[1].0, &logins[1].1, &[codes[1].as_str()]);
    proxy.heal();
    let owner = vec![0, 0, 1];
    let devices: Vec<Device> = owner
        .iter()
        .map(|assistant: &usize| {
            let device = Device::in_memory_with(&links.proxied, options);
            device.login(&logins[*assistant].0, &logins[*assistant].1);
            device.sync().expect("the first sync on a healthy link");
            device
        })
        .collect();
    let mut world = World {
        server,
        devices,
        owner,
        villages,
        logins,
        households: Vec::new(),
        listings: Vec::new(),
        writes: Vec::new(),
        deleted: Vec::new(),
        cursors: vec![0; 3],
    };
    proxy.randomise(seed, 0.3, "/sync/");

    let steps = rng.usize(10..22);
    for step in 0..steps {
        let device = rng.usize(..world.devices.len());
        let assistant = world.owner[device];
        match rng.u8(..110) {
            0..=19 => {
                // A's households go to either of its villages.
                let village = world.villages[if assistant == 0 && rng.bool() { 2 } else { assistant }].clone();
                if let Some(id) = world.save(device, &schema::HOUSEHOLDS, None, household_fields(&village, &format!("户主{step}"))) {
                    world.households.push((assistant, id));
                }
            }
            20..=44 => {
                let live = world.live(device, &schema::HOUSEHOLDS, &world.households);
                if let Some(id) = live.get(rng.usize(..live.len().max(1))).cloned() {
                    let fields = match rng.u8(..3) {
                        0 => json!({ "notes": format!("第{step}步 设备{device}") }),
                        1 => json!({ "group_name": format!("{}组", rng.u8(1..9)) }),
                        _ => json!({ "phone": format!("138{:08}", rng.u32(..100_000_000)), "notes": format!("电话 {step}") }),
                    };
                    world.save(device, &schema::HOUSEHOLDS, Some(&id), fields);
                }
            }
            45..=51 => {
                let live = world.live(device, &schema::HOUSEHOLDS, &world.households);
                if let Some(id) = live.get(rng.usize(..live.len().max(1))).cloned() {
                    if world.devices[device].delete(&schema::HOUSEHOLDS, &id).is_ok() {
                        world.deleted.push((&schema::HOUSEHOLDS, id.clone()));
                        world.writes.push(Write { device, table: &schema::HOUSEHOLDS, row: id, field: "deleted".into(), value: json!(1) });
                    }
                }
            }
            52..=59 => {
                let live = world.live(device, &schema::LISTINGS, &world.listings);
                if live.is_empty() || rng.bool() {
                    let village = world.villages[assistant].clone();
                    let id = new_listing(&world.devices[device], &village, None);
                    world.listings.push((assistant, id));
                } else {
                    let id = live[rng.usize(..live.len())].clone();
                    world.save(device, &schema::LISTINGS, Some(&id), json!({ "price_fen": rng.i64(100..100_000) }));
                }
            }
            60..=66 => {
                if let Some((_, id)) = world.listings.get(rng.usize(..world.listings.len().max(1))).cloned() {
                    let verdict = ["approved", "rejected", "pending"][rng.usize(..3)];
                    world.server.try_moderate(&id, &json!({ "moderator": "zhao", "moderation_status": verdict, "sold_out": rng.bool() }));
                }
            }
            67..=71 => {
                let offset = [-3 * DAY, -3_600_000, 0, 2 * 3_600_000, 3 * DAY][rng.usize(..5)];
                sync::set_clock_offset(&mut world.devices[device].store(), offset).unwrap();
            }
            72..=79 if assistant == 0 => {
                // A household of A moves to A's other village, and so to another scope.
                let live = world.live(device, &schema::HOUSEHOLDS, &world.households);
                if let Some(id) = live.get(rng.usize(..live.len().max(1))).cloned() {
                    let current = world.devices[device].field(&schema::HOUSEHOLDS, &id, "village_id");
                    let target = if current == Some(json!(world.villages[0])) { 2 } else { 0 };
                    let village = world.villages[target].clone();
                    world.save(device, &schema::HOUSEHOLDS, Some(&id), json!({ "village_id": village }));
                }
            }
            80..=89 => world.sync_with_edits_during_pull(device, &mut rng),
            _ => world.sync(device),
        }
    }

    // Heal the link: every device drains its outbox and reaches the server's head, without a new
    // edit to wake it (liveness), and never loops on resets.
    proxy.heal();
    for _ in 0..2 {
        for device in 0..world.devices.len() {
            let report = world.devices[device].sync_until_idle().unwrap_or_else(|error| panic!("device {device} did not settle: {error}"));
            assert!(report.resets <= 1, "device {device} reset {} times", report.resets);
            world.check_cursor(device);
        }
    }
    for (index, device) in world.devices.iter().enumerate() {
        assert_eq!(device.pending(), 0, "device {index}'s outbox drained");
    }

    // Convergence: both laptops of A and a fresh device of each assistant hold the same data and
    // the same field clocks.
    let fresh: Vec<Device> = (0..2)
        .map(|assistant| {
            let device = Device::in_memory_with(&links.direct, options);
            device.login(&world.logins[assistant].0, &world.logins[assistant].1);
            device.sync().expect("a fresh device's first sync");
            device
        })
        .collect();
    let dumps: Vec<String> = world.devices.iter().map(Device::dump).collect();
    assert_eq!(dumps[0], dumps[1], "A's laptops converge");
    assert_eq!(dumps[0], fresh[0].dump(), "A's laptops equal the server's copy");
    assert_eq!(dumps[2], fresh[1].dump(), "B's laptop equals the server's copy");

    // No lost local write, and last-writer-wins by clock: each device's last write of a field is
    // the value everyone holds when that device's clock wins; when another writer's clock wins,
    // the device's write was answered as superseded or rejected (and then listed as a conflict),
    // or someone else wrote the field too.
    let mut last: BTreeMap<(usize, String, String, String), Write> = BTreeMap::new();
    for write in &world.writes {
        last.insert((write.device, write.table.name.to_owned(), write.row.clone(), write.field.clone()), write.clone());
    }
    for ((device, table, row, field), write) in &last {
        let holder = &fresh[world.owner[*device]];
        let node = world.devices[*device].store().node();
        let clock = sync::field_clock(&holder.store(), table, row, field).unwrap().expect("every written field is on the server");
        let state = sync::record_state(&world.devices[*device].store(), table, row).unwrap();
        let field_state = state.fields.iter().find(|candidate| &candidate.field == field).map(|candidate| candidate.state);
        let value = holder.field(write.table, row, field).unwrap();
        let expected = if field == "deleted" { Value::Bool(true) } else { write.value.clone() };
        if clock.node == node {
            assert_eq!(value, expected, "{table}.{field} of {row}: device {device}'s winning write is what everyone holds");
        } else {
            let others = world.writes.iter().any(|other| other.device != *device && other.row == *row && &other.field == field);
            let platform = table == "listings";
            match field_state {
                Some(SyncState::Rejected) => {
                    let listed = sync::conflicts(&world.devices[*device].store(), true)
                        .unwrap()
                        .iter()
                        .any(|conflict| &conflict.row_id == row && &conflict.field == field);
                    assert!(listed, "{table}.{field} of {row}: device {device}'s rejected write is in its conflicts list");
                }
                Some(SyncState::Superseded) | Some(SyncState::Accepted) => {
                    assert!(others || platform, "{table}.{field} of {row}: device {device}'s write lost to nobody");
                }
                other => panic!("{table}.{field} of {row}: device {device}'s write is in state {other:?} after sync"),
            }
        }
    }

    // Tombstones: a deleted row stays deleted everywhere (no edit here ever restores one).
    for (table, id) in &world.deleted {
        for (index, device) in world.devices.iter().enumerate() {
            if let Some(deleted) = device.field(table, id, "deleted") {
                assert_eq!(deleted, Value::Bool(true), "{} {id} came back on device {index}", table.name);
            }
        }
    }

    // Exactly-once effects: no change is in the server's log twice.
    let duplicated = world
        .server
        .query_count("SELECT count(*) FROM (SELECT change_id FROM sync_changes GROUP BY change_id HAVING count(*) > 1) AS duplicated");
    assert_eq!(duplicated, 0, "a change was applied twice");
    // No accepted stamp is beyond the server's clock plus the allowed skew.
    let limit = furrow::hlc::pack(furrow::hlc::wall_ms() + 10 * 60 * 1000, 0);
    assert_eq!(world.server.query_count(&format!("SELECT count(*) FROM sync_fields WHERE hlc > {limit}")), 0);
}

/// Seeds run on SQLite by default.
const SQLITE_SEEDS: u64 = 200;
/// Seeds run on PostgreSQL by default (each seed's transactions cost more round trips there).
const POSTGRES_SEEDS: u64 = 200;

fn random_edits_over_a_faulty_link_converge_without_losing_or_duplicating_anything(backend: Backend) {
    let seeds: Vec<u64> = match std::env::var("FURROW_SEED").ok().and_then(|text| text.parse().ok()) {
        Some(seed) => vec![seed],
        None => {
            let default = match backend {
                Backend::Sqlite => SQLITE_SEEDS,
                Backend::Postgres => POSTGRES_SEEDS,
            };
            let count = std::env::var("FURROW_SEEDS").ok().and_then(|text| text.parse().ok()).unwrap_or(default);
            (1..=count).collect()
        }
    };
    let server = TestServer::start_on(backend);
    let started = std::time::Instant::now();
    // Seeds are independent worlds (their own villages and accounts), so two workers share the
    // server, each with its own proxy and its own fault generator.
    let workers = 2;
    let faults: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                let server = &server;
                let seeds: Vec<u64> = seeds.iter().copied().skip(worker).step_by(workers).collect();
                scope.spawn(move || {
                    let proxy = FaultProxy::start(server.address);
                    let links = Links {
                        proxied: HttpTransport::new(&proxy.url).expect("a client"),
                        direct: HttpTransport::new(&server.url).expect("a client"),
                    };
                    for seed in seeds {
                        let outcome = catch_unwind(AssertUnwindSafe(|| run_seed(server, &proxy, &links, seed)));
                        if let Err(panic) = outcome {
                            eprintln!(
                                "convergence failed for seed {seed} on {}; rerun with FURROW_SEED={seed}",
                                backend.name()
                            );
                            std::panic::resume_unwind(panic);
                        }
                    }
                    proxy.injected_total()
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).sum()
    });
    eprintln!(
        "{} seeds converged on {} in {:.1} s; {faults} faults injected",
        seeds.len(),
        backend.name(),
        started.elapsed().as_secs_f64()
    );
}

on_both_backends!(random_edits_over_a_faulty_link_converge_without_losing_or_duplicating_anything);
