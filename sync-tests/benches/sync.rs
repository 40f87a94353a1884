//! The sync benchmark (docs/sync.md section 12), printing figures: a new device's initial sync
//! of 100k rows of a history where a tenth of the rows were edited after every row was created,
//! so those rows are first met on later pages (rows per second, and the device's peak memory,
//! measured in a child process so the server's memory is not counted; the child then checks a
//! sample of the rows field by field against the server's copy), a push of 10k field changes with a connection dropped
//! after the server committed (batches sent and re-sent), and the bytes per field change on the
//! wire, with and without compression of the push body.
//!
//! Run with `cargo bench -p furrow-sync-tests`; `FURROW_BENCH_ROWS` changes the row count.

use std::process::Command;
use std::time::Instant;

use furrow::schema;
use furrow::sync::{HttpTransport, SyncEngine, SyncOptions};
use furrow_server::store::{RowMeta, StoredField};
use furrow_sync_tests::proxy::{Fault, FaultProxy};
use furrow_sync_tests::{household_fields, Device, TestServer};
use serde_json::{json, Value};

const VILLAGE: &str = "530102001001";

fn peak_resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|value| value.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds this process has used (user and system), from /proc/self/stat; the machine may be
/// shared, so rows per CPU second is the figure that does not depend on its load.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = fields.get(11).and_then(|value| value.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|value| value.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// The child process: a new device signs in and makes its first sync; prints its figures, then
/// the number of sampled rows it checked against the server's database and how many differ.
fn device_main(url: &str, username: &str, password: &str, server_data: &str) {
    let mut device = Device::new(url);
    device.engine = SyncEngine::new(url).expect("an engine").with_options(SyncOptions::default());
    device.login(username, password);
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let report = device.sync().expect("the initial sync");
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let peak = peak_resident_kib();
    let (checked, incomplete) = check_sample(&device, std::path::Path::new(server_data));
    println!(
        "{} {} {:.3} {} {:.3} {:.3} {checked} {incomplete}",
        report.rows,
        report.pages,
        seconds,
        peak,
        cpu,
        report.apply_micros as f64 / 1e6
    );
}

/// Compares every 97th household of the server's copy with the device's, field by field (value
/// and clock); returns the rows checked and the rows that differ.
fn check_sample(device: &Device, server_data: &std::path::Path) -> (usize, usize) {
    let server = rusqlite::Connection::open_with_flags(
        furrow_server::sqlite_path(server_data),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("the server's database opens read-only");
    let ids: Vec<String> = {
        let mut statement = server
            .prepare("SELECT row_id FROM sync_rows WHERE tbl = 'households' ORDER BY sv")
            .expect("the rows read");
        let rows = statement.query_map([], |row| row.get::<_, String>(0)).expect("the rows read");
        rows.filter_map(Result::ok).step_by(97).collect()
    };
    let mut incomplete = 0;
    let mut statement = server
        .prepare("SELECT field, value, hlc FROM sync_fields WHERE tbl = 'households' AND row_id = ?1 ORDER BY field")
        .expect("the fields read");
    for id in &ids {
        let fields: Vec<(String, String, i64)> = statement
            .query_map([id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .expect("the fields read")
            .filter_map(Result::ok)
            .collect();
        let whole = fields.iter().all(|(field, value, hlc)| {
            let expected: Value = serde_json::from_str(value).unwrap_or(Value::Null);
            let held = device.field(&schema::HOUSEHOLDS, id, field);
            let clock = furrow::sync::field_clock(&device.store(), "households", id, field).ok().flatten();
            held == Some(expected) && clock.is_some_and(|clock| clock.hlc == *hlc)
        });
        if !whole {
            incomplete += 1;
        }
    }
    (ids.len(), incomplete)
}

/// Writes `rows` households straight into the server's storage, as the platform's own data.
fn seed_server(server: &TestServer, village_id: &str, rows: usize) {
    let storage = furrow_server::Storage::Sqlite { data_dir: server.data_dir().to_owned() };
    let database = furrow_server::open_database(&storage).expect("the server's database");
    let node = vec![0x5Eu8; 16];
    let base = furrow::hlc::pack(furrow::hlc::wall_ms() - 60_000, 0);
    let mut written = 0;
    while written < rows {
        let chunk = (rows - written).min(20_000);
        furrow_server::store::write(database.as_ref(), |tx| {
            for index in written..written + chunk {
                let id = uuid::Uuid::now_v7().to_string();
                let hlc = base + index as i64;
                let mut meta: Option<RowMeta> = None;
                let fields: [(&str, Value); 6] = [
                    ("scope_id", json!(VILLAGE)),
                    ("village_id", json!(village_id)),
                    ("head_name", json!(format!("户主{index}"))),
                    ("attribute", json!("general")),
                    ("poverty_status", json!("not_exited")),
                    ("group_name", json!(format!("{}组", index % 9 + 1))),
                ];
                for (field, value) in fields {
                    let stored = StoredField { value, hlc, node: node.clone(), server_seq: 0, actor: "platform".into() };
                    let seq = furrow_server::sync::write_field(tx, "households", &id, field, meta.as_ref(), stored)?;
                    meta = Some(RowMeta { scope_id: VILLAGE.into(), deleted: false, sv: seq });
                }
            }
            Ok(())
        })
        .expect("the seed is written");
        written += chunk;
    }
    // A tenth of the rows are edited after every row was created, so each of them has its latest
    // change at the end of the history and is first met on a late page of the first sync, while
    // its other fields were written long before that page's cursor.
    furrow_server::store::write(database.as_ref(), |tx| {
        let ids: Vec<String> = tx.changed_rows(&[VILLAGE.to_owned()], 0, rows as i64)?.into_iter().map(|row| row.row_id).collect();
        for (index, id) in ids.iter().enumerate().filter(|(index, _)| index % 10 == 3) {
            let meta = tx.row("households", id)?;
            let stored = StoredField {
                value: json!(format!("走访后补记 {index}")),
                hlc: base + (rows + index) as i64,
                node: node.clone(),
                server_seq: 0,
                actor: "platform".into(),
            };
            furrow_server::sync::write_field(tx, "households", id, "notes", meta.as_ref(), stored)?;
        }
        Ok(())
    })
    .expect("the edits are written");
}

fn push_figures(server: &TestServer, village_id: &str, compress: bool) {
    let proxy = FaultProxy::start(server.address);
    let mut device = Device::new(&proxy.url);
    let mut transport = HttpTransport::new(&proxy.url).expect("a transport");
    if !compress {
        transport = transport.without_request_compression();
    }
    device.engine = SyncEngine::with_transport(Box::new(transport), &proxy.url, furrow_sync_tests::test_options());
    device.login("bench", "quiet-river-42");
    device.sync().expect("the first sync");
    // 10k field changes: new households of six fields each, then edits of four fields.
    device
        .store()
        .write(|writer| {
            for index in 0..1112 {
                let Value::Object(fields) = household_fields(village_id, &format!("新户{index}")) else { unreachable!() };
                let id = writer.save(&schema::HOUSEHOLDS, None, fields)?.id;
                let Value::Object(edits) = json!({ "group_name": "三组", "phone": format!("139{:08}", index), "notes": format!("走访记录 {index}"), "register_no": format!("R{index:06}") }) else { unreachable!() };
                writer.save(&schema::HOUSEHOLDS, Some(&id), edits)?;
            }
            Ok(())
        })
        .expect("the edits are saved");
    let changes = device.pending();
    proxy.reset_traffic();
    proxy.inject("/sync/v1/push", Fault::DropAfterCommit);
    let started = Instant::now();
    let report = device.sync_until_idle().expect("the push completes");
    let seconds = started.elapsed().as_secs_f64();
    let traffic = proxy.traffic("/sync/v1/push");
    let duplicates =
        server.query_count("SELECT count(*) FROM (SELECT change_id FROM sync_changes GROUP BY change_id HAVING count(*) > 1)");
    println!(
        "push of {changes} field changes ({}): {:.2} s, {:.0} changes/s; {} batches sent, {} re-sent after a dropped answer; {} duplicates on the server",
        if compress { "gzip bodies" } else { "plain bodies" },
        seconds,
        changes as f64 / seconds,
        report.batches_sent,
        report.batches_resent,
        duplicates
    );
    println!(
        "  bytes per field change on the wire: {:.1} B request body, {:.1} B with headers, {:.1} B of answers (all sends, re-send included)",
        traffic.request_body_bytes as f64 / changes as f64,
        traffic.request_bytes as f64 / changes as f64,
        traffic.response_bytes as f64 / changes as f64
    );
}

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    if arguments.get(1).map(String::as_str) == Some("--device") {
        device_main(&arguments[2], &arguments[3], &arguments[4], &arguments[5]);
        return;
    }
    // `cargo bench` passes `--bench`; any other argument is a filter we do not use.
    let rows: usize = std::env::var("FURROW_BENCH_ROWS").ok().and_then(|text| text.parse().ok()).unwrap_or(100_000);
    let server = TestServer::start();
    let village_id = server.add_village(VILLAGE, "小河村");
    server.add_assistant("bench", "quiet-river-42", &[VILLAGE]);

    let started = Instant::now();
    seed_server(&server, &village_id, rows);
    println!("seeded {rows} households on the server in {:.1} s", started.elapsed().as_secs_f64());

    let output = Command::new(std::env::current_exe().expect("this program"))
        .args(["--device", &server.url, "bench", "quiet-river-42", &server.data_dir().to_string_lossy()])
        .output()
        .expect("the device process runs");
    assert!(output.status.success(), "the device failed: {}", String::from_utf8_lossy(&output.stderr));
    let line = String::from_utf8_lossy(&output.stdout);
    let figures: Vec<&str> = line.split_whitespace().collect();
    let (synced, pages, seconds, peak, cpu, apply): (f64, u64, f64, u64, f64, f64) = (
        figures[0].parse().unwrap(),
        figures[1].parse().unwrap(),
        figures[2].parse().unwrap(),
        figures[3].parse().unwrap(),
        figures[4].parse().unwrap(),
        figures[5].parse().unwrap(),
    );
    let (checked, incomplete): (usize, usize) = (figures[6].parse().unwrap(), figures[7].parse().unwrap());
    println!("checked {checked} sampled rows of the first sync field by field against the server: {incomplete} incomplete");
    assert_eq!(incomplete, 0, "the first sync stored rows without some of their fields");
    println!(
        "initial sync of {synced} rows in {pages} pages: {seconds:.2} s wall, {:.0} rows/s end to end; storing the pages took {apply:.2} s, {:.0} rows/s applied (target >= 50000 rows/s); device CPU {cpu:.2} s, {:.0} rows per device CPU second; device peak memory {:.1} MB (target < 150 MB)",
        synced / seconds,
        synced / apply.max(0.001),
        synced / cpu.max(0.001),
        peak as f64 / 1024.0
    );

    push_figures(&server, &village_id, true);
    push_figures(&server, &village_id, false);
}
