//! The server under load, for each backend: 200 and then 1,000 assistants sign in at once (each
//! password a real Argon2id hash of 19 MiB), then each pushes a small batch and pulls a page,
//! pausing between rounds, for a fixed time. Printed per run: how long the sign-ins took (all of
//! them, and p50/p99 of one), how many were told to come back (503 with `Retry-After`, which a
//! device obeys), requests per second after sign-in, p50 and p99 of those requests, errors, and
//! the server process's peak memory.
//!
//! The server is the real `furrow-server` binary in its own process, so its memory is its own.
//! Run with `cargo bench -p furrow-server --bench load`. `FURROW_LOAD_SECONDS` (default 60) sets
//! the time after sign-in, `FURROW_LOAD_ASSISTANTS` (default `200,1000`) the sizes,
//! `FURROW_LOAD_PAUSE_MS` (default 1000) the pause between an assistant's rounds,
//! `FURROW_LOAD_BACKENDS` (default `sqlite,postgres`) the backends, and
//! `FURROW_TEST_DATABASE_URL` the PostgreSQL server (default postgres://postgres@127.0.0.1/test).
//! Field changes/s counts the changes of the pushes answered 200, over the time after sign-in.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use furrow_contract::wire::{Change, PushRequest, TokenResponse, SCHEMA_VERSION};
use furrow_server::auth::{self, PasswordCost};
use furrow_server::platform::{self, ServerClock};
use furrow_server::{open_database, store, Storage};
use serde_json::{json, Value};
use tokio::task::JoinSet;

/// Every assistant's password (hashed once, at the production cost).
const PASSWORD: &str = "tea terraces at dawn";

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn postgres_url() -> String {
    std::env::var("FURROW_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn village(index: usize) -> String {
    format!("5204{index:08}")
}

/// What one run measured.
struct Figures {
    sign_in_all: Duration,
    sign_in_p50: Duration,
    sign_in_p99: Duration,
    busy_answers: u64,
    requests: usize,
    /// Field changes in pushes answered 200.
    pushed_changes: usize,
    seconds: f64,
    p50: Duration,
    p99: Duration,
    errors: u64,
    peak_mib: u64,
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The server process, killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The process's peak resident memory (VmHWM), in MiB.
    fn peak_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .map(|kib| kib / 1024)
            .unwrap_or(0)
    }
}

/// Makes the villages and the assistants (one village each) with one real hash, through the
/// library, before the server starts.
fn seed(storage: &Storage, assistants: usize) {
    let database = open_database(storage).expect("the database opens");
    let hash = auth::hash_password(PASSWORD, PasswordCost::STANDARD).expect("a hash");
    let clock = ServerClock::new();
    store::write(database.as_ref(), |tx| {
        for index in 0..assistants {
            platform::add_village(tx, &clock, &village(index), &format!("村{index}"))?;
            platform::add_assistant(tx, &format!("assistant{index:04}"), &hash, &[village(index)])?;
        }
        Ok(())
    })
    .expect("seed");
}

async fn start_server(storage_args: Vec<String>) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("address").port();
    let child = Command::new(env!("CARGO_BIN_EXE_furrow-server"))
        .arg("serve")
        .args(&storage_args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("FURROW_LOG", "warn")
        .env_remove("FURROW_ADMIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let server = Server { child, base: format!("http://127.0.0.1:{port}") };
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http.get(format!("{}/health", server.base)).send().await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not answer");
}

/// An assistant's device: its session, its client id, its outbox sequence and its cursor.
struct Assistant {
    tokens: TokenResponse,
    client_id: String,
    seq: i64,
    cursor: Option<String>,
    village: String,
}

/// Signs in, coming back after `Retry-After` when the server is busy, as a device does.
/// Returns the device, the time it took, and how many busy answers it met.
async fn sign_in(http: reqwest::Client, base: String, index: usize) -> Result<(Assistant, Duration, u64), String> {
    let started = Instant::now();
    let client_id = uuid::Uuid::new_v4().to_string();
    let mut busy = 0;
    loop {
        let response = http
            .post(format!("{base}/auth/v1/login"))
            .header("x-client-id", &client_id)
            .json(&json!({"username": format!("assistant{index:04}"), "password": PASSWORD, "device_name": "laptop"}))
            .send()
            .await
            .map_err(|error| error.to_string())?;
        match response.status().as_u16() {
            200 => {
                let tokens: TokenResponse = response.json().await.map_err(|error| error.to_string())?;
                let assistant = Assistant { tokens, client_id, seq: 0, cursor: None, village: village(index) };
                return Ok((assistant, started.elapsed(), busy));
            }
            503 => {
                busy += 1;
                let wait: u64 = response.headers().get("retry-after").and_then(|value| value.to_str().ok()?.parse().ok()).unwrap_or(1);
                // A little spread, so the devices told to come back do not all come at once.
                let spread = fastrand::u64(0..1000);
                tokio::time::sleep(Duration::from_millis(wait * 1000 + spread)).await;
            }
            other => return Err(format!("sign-in answered {other}")),
        }
    }
}

/// The field changes of one round's push.
const CHANGES_PER_PUSH: usize = 10;

/// One round: a push of two new households (ten field changes) and a pull of one page.
/// Returns each request's latency and whether it succeeded, the push first.
async fn round(http: &reqwest::Client, base: &str, assistant: &mut Assistant) -> Vec<(Duration, bool)> {
    let mut measured = Vec::with_capacity(2);
    let village_row = platform::village_row_id(&assistant.village);
    let stamp = furrow_contract::hlc::pack(furrow_contract::hlc::wall_ms(), 0);
    let mut changes = Vec::with_capacity(CHANGES_PER_PUSH);
    for _ in 0..2 {
        let id = uuid::Uuid::now_v7().to_string();
        for (field, value) in [
            ("scope_id", json!(assistant.village)),
            ("village_id", json!(village_row)),
            ("head_name", json!("王大山")),
            ("attribute", json!("general")),
            ("poverty_status", json!("non_poor")),
        ] {
            assistant.seq += 1;
            changes.push(Change {
                change_id: uuid::Uuid::new_v4().to_string(),
                seq: assistant.seq,
                tbl: "households".into(),
                row_id: id.clone(),
                field: field.into(),
                value,
                hlc: stamp,
                base_hlc: None,
                node: None,
            });
        }
    }
    let request = PushRequest {
        client_id: assistant.client_id.clone(),
        batch_id: uuid::Uuid::new_v4().to_string(),
        schema_version: SCHEMA_VERSION,
        changes,
    };
    let started = Instant::now();
    let pushed = http
        .post(format!("{base}/sync/v1/push"))
        .bearer_auth(&assistant.tokens.access_token)
        .header("idempotency-key", &request.batch_id)
        .json(&request)
        .send()
        .await;
    let ok = match pushed {
        Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
        Err(_) => false,
    };
    measured.push((started.elapsed(), ok));
    let mut url = format!("{base}/sync/v1/pull?limit=1000");
    if let Some(cursor) = &assistant.cursor {
        url.push_str(&format!("&cursor={cursor}"));
    }
    let started = Instant::now();
    let pulled = http.get(url).bearer_auth(&assistant.tokens.access_token).header("x-client-id", &assistant.client_id).send().await;
    let ok = match pulled {
        Ok(response) if response.status().is_success() => match response.json::<Value>().await {
            Ok(page) => {
                assistant.cursor = page["cursor"].as_str().map(str::to_owned);
                true
            }
            Err(_) => false,
        },
        _ => false,
    };
    measured.push((started.elapsed(), ok));
    measured
}

async fn run(storage: Storage, storage_args: Vec<String>, assistants: usize, seconds: u64, pause: Duration) -> Figures {
    tokio::task::spawn_blocking(move || seed(&storage, assistants)).await.expect("seed task");
    let server = start_server(storage_args).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).pool_max_idle_per_host(assistants).build().expect("client");
    // Everyone signs in at once.
    let started = Instant::now();
    let mut sign_ins = JoinSet::new();
    for index in 0..assistants {
        sign_ins.spawn(sign_in(http.clone(), server.base.clone(), index));
    }
    let (mut devices, mut sign_in_times, mut busy_answers, mut errors) = (Vec::new(), Vec::new(), 0, 0);
    while let Some(outcome) = sign_ins.join_next().await {
        match outcome.expect("sign-in task") {
            Ok((assistant, took, busy)) => {
                devices.push(assistant);
                sign_in_times.push(took);
                busy_answers += busy;
            }
            Err(error) => {
                errors += 1;
                eprintln!("a sign-in failed: {error}");
            }
        }
    }
    let sign_in_all = started.elapsed();
    sign_in_times.sort();
    // Then every device pushes and pulls, round after round, until the time is up.
    let load_started = Instant::now();
    let deadline = load_started + Duration::from_secs(seconds);
    let mut rounds = JoinSet::new();
    for mut assistant in devices {
        let (http, base) = (http.clone(), server.base.clone());
        rounds.spawn(async move {
            let mut measured = Vec::new();
            // Devices start spread over one pause, as they would after a sign-in wave.
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..pause.as_millis().max(1) as u64))).await;
            while Instant::now() < deadline {
                measured.extend(round(&http, &base, &mut assistant).await);
                tokio::time::sleep(pause).await;
            }
            measured
        });
    }
    let (mut latencies, mut pushed_changes) = (Vec::new(), 0);
    while let Some(measured) = rounds.join_next().await {
        for (index, (latency, ok)) in measured.expect("load task").into_iter().enumerate() {
            latencies.push(latency);
            if !ok {
                errors += 1;
            } else if index % 2 == 0 {
                pushed_changes += CHANGES_PER_PUSH;
            }
        }
    }
    let elapsed = load_started.elapsed().as_secs_f64();
    latencies.sort();
    Figures {
        sign_in_all,
        sign_in_p50: percentile(&sign_in_times, 0.50),
        sign_in_p99: percentile(&sign_in_times, 0.99),
        busy_answers,
        requests: latencies.len(),
        pushed_changes,
        seconds: elapsed,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        errors,
        peak_mib: server.peak_mib(),
    }
}

fn main() {
    let seconds: u64 = setting("FURROW_LOAD_SECONDS", 60);
    let pause = Duration::from_millis(setting("FURROW_LOAD_PAUSE_MS", 1000));
    let sizes: Vec<usize> = std::env::var("FURROW_LOAD_ASSISTANTS")
        .unwrap_or_else(|_| "200,1000".to_owned())
        .split(',')
        .filter_map(|size| size.trim().parse().ok())
        .collect();
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    println!("load: {seconds} s of push and pull after sign-in, {} ms between an assistant's rounds, {cores} cores", pause.as_millis());
    println!(
        "{:<10} {:>10} {:>12} {:>12} {:>12} {:>8} {:>10} {:>10} {:>9} {:>9} {:>7} {:>9}",
        "backend", "assistants", "sign-in all", "sign-in p50", "sign-in p99", "busy", "requests/s", "changes/s", "p50", "p99", "errors", "peak MiB"
    );
    let backends = std::env::var("FURROW_LOAD_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".to_owned());
    for backend in backends.split(',').map(str::trim).filter(|backend| ["sqlite", "postgres"].contains(backend)) {
        for &assistants in &sizes {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let data_dir = dir.path().join("data");
            let (storage, args, schema) = if backend == "sqlite" {
                let args = vec!["--data-dir".to_owned(), data_dir.to_string_lossy().into_owned()];
                (Storage::Sqlite { data_dir: data_dir.clone() }, args, None)
            } else {
                let schema = format!("load_{}", uuid::Uuid::new_v4().simple());
                let url = format!("{}?options=-csearch_path%3D{schema}", postgres_url());
                let mut client = postgres::Client::connect(&postgres_url(), postgres::NoTls).expect("PostgreSQL answers");
                client.batch_execute(&format!("CREATE SCHEMA {schema}")).expect("a schema");
                let args = vec!["--database-url".to_owned(), url.clone(), "--data-dir".to_owned(), data_dir.to_string_lossy().into_owned()];
                (Storage::Postgres { url, schema: None }, args, Some(schema))
            };
            let figures = runtime.block_on(run(storage, args, assistants, seconds, pause));
            println!(
                "{:<10} {:>10} {:>10.1} s {:>10.0} ms {:>10.0} ms {:>8} {:>10.0} {:>10.0} {:>6.0} ms {:>6.0} ms {:>7} {:>9}",
                backend,
                assistants,
                figures.sign_in_all.as_secs_f64(),
                figures.sign_in_p50.as_secs_f64() * 1000.0,
                figures.sign_in_p99.as_secs_f64() * 1000.0,
                figures.busy_answers,
                figures.requests as f64 / figures.seconds,
                figures.pushed_changes as f64 / figures.seconds,
                figures.p50.as_secs_f64() * 1000.0,
                figures.p99.as_secs_f64() * 1000.0,
                figures.errors,
                figures.peak_mib
            );
            if let Some(schema) = schema {
                if let Ok(mut client) = postgres::Client::connect(&postgres_url(), postgres::NoTls) {
                    let _ = client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
                }
            }
        }
    }
}
