//! The server's side of the sync figures (docs/sync.md section 12), for each backend: a push
//! of 10k field changes over HTTP in batches of 500, and a snapshot of 100k rows pulled over
//! HTTP in pages of 1000 (server time and bytes only; applying rows is the device's part).
//!
//! It also counts the statements (each one round trip to a database server) of one push of 20
//! field changes and of one pull page, through a counting wrapper around the database.
//!
//! Run with `cargo bench -p furrow-server --bench server`; `FURROW_BENCH_ROWS` changes the
//! snapshot size and `FURROW_TEST_DATABASE_URL` the PostgreSQL server (default
//! postgres://postgres@127.0.0.1/test).

use std::sync::Arc;
use std::time::Instant;

use furrow_contract::hlc::{self, NodeId};
use furrow_contract::wire::{Change, PullResponse, PushRequest, SCHEMA_VERSION};
use furrow_server::auth::{self, Caller, PasswordCost};
use furrow_server::blobs::FileBlobStore;
use furrow_server::platform::{self, ServerClock};
use furrow_server::store::{self, Counting, Database};
use furrow_server::{open_database, sync, AppState, Settings, Storage};
use serde_json::json;

const VILLAGE: &str = "520402101201";

fn changes_for(node: &NodeId, first_seq: i64, households: usize, hlc: i64) -> (Vec<Change>, i64) {
    let _ = node;
    let mut seq = first_seq;
    let mut changes = Vec::with_capacity(households * 5);
    let village_row = platform::village_row_id(VILLAGE);
    for index in 0..households {
        let id = uuid::Uuid::now_v7().to_string();
        for (field, value) in [
            ("scope_id", json!(VILLAGE)),
            ("village_id", json!(village_row)),
            ("head_name", json!(format!("户主{index}"))),
            ("attribute", json!("general")),
            ("poverty_status", json!("non_poor")),
        ] {
            seq += 1;
            changes.push(Change {
                change_id: uuid::Uuid::new_v4().to_string(),
                seq,
                tbl: "households".into(),
                row_id: id.clone(),
                field: field.into(),
                value,
                hlc: hlc + index as i64,
                base_hlc: None,
                node: None,
            });
        }
    }
    (changes, seq)
}

async fn run(name: &str, storage: Storage, blob_dir: &std::path::Path, rows: usize) {
    let opened: Arc<dyn Database> = tokio::task::spawn_blocking(move || open_database(&storage).expect("open"))
        .await
        .expect("task");
    let counting = Arc::new(Counting::new(opened));
    let database: Arc<dyn Database> = counting.clone();
    let seeding = database.clone();
    let user = tokio::task::spawn_blocking(move || {
        let hash = auth::hash_password("correct horse", PasswordCost::CHEAP_FOR_TESTS).expect("hash");
        store::write(seeding.as_ref(), |tx| {
            platform::add_village(tx, &ServerClock::new(), VILLAGE, "石门村")?;
            platform::add_assistant(tx, "bench", &hash, &[VILLAGE.to_owned()])
        })
        .expect("seed")
    })
    .await
    .expect("task");
    let settings = Settings { password_cost: PasswordCost::CHEAP_FOR_TESTS, ..Settings::default() };
    let state = AppState::new(database.clone(), Arc::new(FileBlobStore::new(blob_dir).expect("blobs")), settings).expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(furrow_server::serve(listener, state));
    let http = reqwest::Client::builder().no_gzip().build().expect("client");
    let tokens: furrow_contract::wire::TokenResponse = http
        .post(format!("{base}/auth/v1/login"))
        .json(&json!({"username": "bench", "password": "correct horse", "device_name": "bench"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("tokens");

    // Push: 10k field changes in 20 batches of 500.
    let node = NodeId::random();
    let (changes, _) = changes_for(&node, 0, 2000, hlc::pack(hlc::wall_ms(), 0));
    let started = Instant::now();
    let mut sent_bytes = 0;
    for (index, batch) in changes.chunks(500).enumerate() {
        let request = PushRequest {
            client_id: node.to_uuid_string(),
            batch_id: format!("batch-{index}"),
            schema_version: SCHEMA_VERSION,
            changes: batch.to_vec(),
        };
        let body = serde_json::to_vec(&request).expect("json");
        sent_bytes += body.len();
        let response = http
            .post(format!("{base}/sync/v1/push"))
            .bearer_auth(&tokens.access_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("push");
        assert_eq!(response.status(), 200);
    }
    let push_seconds = started.elapsed().as_secs_f64();
    println!(
        "{name}: push of {} field changes in 20 batches: {:.2} s, {:.0} changes/s, {:.1} ms per batch, {} B uncompressed",
        changes.len(),
        push_seconds,
        changes.len() as f64 / push_seconds,
        push_seconds * 1000.0 / 20.0,
        sent_bytes
    );

    // Round trips: one push of 20 field changes (four new households) and the pull page after it,
    // counted from the request's token check to its answer.
    let (changes, _) = changes_for(&node, 10_000, 4, hlc::pack(hlc::wall_ms(), 0));
    let request =
        PushRequest { client_id: node.to_uuid_string(), batch_id: "batch-counted".into(), schema_version: SCHEMA_VERSION, changes };
    let before = counting.counts();
    let response =
        http.post(format!("{base}/sync/v1/push")).bearer_auth(&tokens.access_token).json(&request).send().await.expect("push");
    assert_eq!(response.status(), 200);
    let pushed = counting.counts();
    let first: PullResponse = http
        .get(format!("{base}/sync/v1/pull?limit=1000"))
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .expect("pull")
        .json()
        .await
        .expect("page");
    let pulled = counting.counts();
    println!(
        "{name}: push of 20 field changes over HTTP: {} transactions (the token check and the push), {} statements; \
         pull page of {} rows: {} transactions (the token check and the page), {} statements \
         (a write adds one round trip to begin and lock and one to commit, shared by the writers of its group)",
        pushed.transactions - before.transactions,
        pushed.statements - before.statements,
        first.rows.len(),
        pulled.transactions - pushed.transactions,
        pulled.statements - pushed.statements
    );

    // Snapshot: `rows` households written straight into storage, then pulled over HTTP.
    let seeding = database.clone();
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        let who = Caller { user_id: user, scopes: vec![VILLAGE.to_owned()], session_id: "bench-session".into(), client_id: None };
        let client = NodeId::random();
        let clock = ServerClock::new();
        let mut seq = 0;
        let mut remaining = rows.saturating_sub(2000);
        let mut batch = 0;
        while remaining > 0 {
            let count = remaining.min(2000);
            let (changes, last) = changes_for(&client, seq, count, hlc::pack(hlc::wall_ms(), 0));
            seq = last;
            let request = PushRequest { client_id: client.to_uuid_string(), batch_id: format!("seed-{batch}"), schema_version: 1, changes };
            store::write(seeding.as_ref(), |tx| sync::push(tx, &who, &clock, &request, hlc::wall_ms())).expect("seed push");
            remaining -= count;
            batch += 1;
        }
    })
    .await
    .expect("task");
    println!("{name}: seeded {rows} rows in {:.1} s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    let mut cursor: Option<String> = None;
    let (mut pulled, mut pages, mut bytes) = (0usize, 0usize, 0usize);
    loop {
        let mut url = format!("{base}/sync/v1/pull?limit=1000");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let response = http.get(url).bearer_auth(&tokens.access_token).header("accept-encoding", "gzip").send().await.expect("pull");
        let body = response.bytes().await.expect("body");
        bytes += body.len();
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body.as_ref()), &mut text).expect("gunzip");
        let page: PullResponse = serde_json::from_slice(&text).expect("page");
        pulled += page.rows.len();
        pages += 1;
        cursor = Some(page.cursor);
        if !page.has_more {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{name}: snapshot of {pulled} rows in {pages} pages: {:.2} s, {:.0} rows/s served, {:.1} MB gzip ({:.0} B per row)",
        seconds,
        pulled as f64 / seconds,
        bytes as f64 / 1e6,
        bytes as f64 / pulled as f64
    );
}

fn main() {
    let rows: usize = std::env::var("FURROW_BENCH_ROWS").ok().and_then(|text| text.parse().ok()).unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = std::env::var("FURROW_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
    runtime.block_on(async {
        run("sqlite", Storage::Sqlite { data_dir: dir.path().join("sqlite") }, &dir.path().join("blobs-sqlite"), rows).await;
        run("postgres", Storage::Postgres { url: url.clone(), schema: Some(schema.clone()) }, &dir.path().join("blobs-postgres"), rows).await;
    });
    drop(runtime);
    if let Ok(mut client) = postgres::Client::connect(&url, postgres::NoTls) {
        let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    }
}
