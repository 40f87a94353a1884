//! Test fixtures: databases of both backends, each test in its own SQLite file or PostgreSQL
//! schema, and the real server on 127.0.0.1:0.

#![allow(dead_code)]

use std::sync::Arc;

use furrow_contract::hlc::{self, NodeId};
use furrow_contract::wire::{Change, PushRequest, TokenResponse, SCHEMA_VERSION};
use furrow_server::auth::{Caller, PasswordCost};
use furrow_server::blobs::FileBlobStore;
use furrow_server::platform::{self, ServerClock};
use furrow_server::store::{self, Database};
use furrow_server::{open_database, AppState, Settings, Storage};
use serde_json::Value;

/// The PostgreSQL server the tests use; CI and this machine run one at 127.0.0.1:5432.
pub fn postgres_url() -> String {
    std::env::var("FURROW_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The bootstrap admin token of test servers (the server accepts one of 32 characters or more).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123";

/// Village codes used by the tests.
pub const VILLAGE_A: &str = "520402101201";
/// A second village.
pub const VILLAGE_B: &str = "520402101202";

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SQLite in a temporary directory.
    Sqlite,
    /// PostgreSQL in a fresh schema.
    Postgres,
}

/// A test's storage: a temporary directory (blobs, and the SQLite file) plus, for PostgreSQL,
/// a schema of its own that is dropped afterwards.
pub struct Backend {
    /// The backend.
    pub kind: Kind,
    /// The temporary directory.
    pub dir: tempfile::TempDir,
    /// The PostgreSQL schema.
    pub schema: Option<String>,
}

impl Backend {
    /// A fresh backend of the given kind.
    pub fn new(kind: Kind) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let schema = (kind == Kind::Postgres).then(|| format!("test_{}", uuid::Uuid::new_v4().simple()));
        Self { kind, dir, schema }
    }

    /// Where the data lives.
    pub fn storage(&self) -> Storage {
        match self.kind {
            Kind::Sqlite => Storage::Sqlite { data_dir: self.dir.path().join("data") },
            Kind::Postgres => Storage::Postgres { url: postgres_url(), schema: self.schema.clone() },
        }
    }

    /// Opens the database (each call is a new connection or pool: another server instance).
    pub fn open(&self) -> Arc<dyn Database> {
        open_database(&self.storage()).expect("open the database")
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(schema) = self.schema.take() {
            // The synchronous client must not run on an async worker thread.
            let url = postgres_url();
            let _ = std::thread::spawn(move || {
                if let Ok(mut client) = postgres::Client::connect(&url, postgres::NoTls) {
                    let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
                }
            })
            .join();
        }
    }
}

/// Adds the two test villages and two assistants: `alice` in village A, `bob` in village B.
/// Returns their ids.
pub fn seed(database: &dyn Database) -> (i64, i64) {
    let clock = ServerClock::new();
    let hash = furrow_server::auth::hash_password("correct horse", PasswordCost::CHEAP_FOR_TESTS).expect("hash");
    store::write(database, |tx| {
        platform::add_village(tx, &clock, VILLAGE_A, "石门村")?;
        platform::add_village(tx, &clock, VILLAGE_B, "龙潭村")?;
        let alice = platform::add_assistant(tx, "alice", &hash, &[VILLAGE_A.to_owned()])?;
        let bob = platform::add_assistant(tx, "bob", &hash, &[VILLAGE_B.to_owned()])?;
        Ok((alice, bob))
    })
    .expect("seed")
}

/// The caller of an assistant assigned to the given villages.
pub fn caller(user_id: i64, scopes: &[&str]) -> Caller {
    let mut scopes: Vec<String> = scopes.iter().map(|scope| (*scope).to_owned()).collect();
    scopes.sort();
    Caller { user_id, scopes, session_id: "test-session".into(), client_id: None }
}

/// An HLC at the current time plus `counter`.
pub fn now_hlc(counter: i64) -> i64 {
    hlc::pack(hlc::wall_ms(), counter)
}

/// A device: a node id and an outbox sequence.
pub struct Device {
    /// The node.
    pub node: NodeId,
    /// The next seq.
    pub seq: i64,
}

impl Device {
    /// A new device.
    pub fn new() -> Self {
        Self { node: NodeId::random(), seq: 0 }
    }

    /// The client id.
    pub fn id(&self) -> String {
        self.node.to_uuid_string()
    }

    /// A change with the next seq.
    pub fn change(&mut self, tbl: &str, row_id: &str, field: &str, value: Value, hlc: i64, base_hlc: Option<i64>) -> Change {
        self.seq += 1;
        Change {
            change_id: uuid::Uuid::new_v4().to_string(),
            seq: self.seq,
            tbl: tbl.into(),
            row_id: row_id.into(),
            field: field.into(),
            value,
            hlc,
            base_hlc,
            node: None,
        }
    }

    /// The changes creating a household in `village` (scope first, as the device sends them).
    pub fn household(&mut self, village: &str, row_id: &str, head: &str, hlc: i64) -> Vec<Change> {
        let village_row = platform::village_row_id(village);
        vec![
            self.change("households", row_id, "scope_id", Value::from(village), hlc, None),
            self.change("households", row_id, "village_id", Value::from(village_row), hlc, None),
            self.change("households", row_id, "head_name", Value::from(head), hlc, None),
            self.change("households", row_id, "attribute", Value::from("general"), hlc, None),
            self.change("households", row_id, "poverty_status", Value::from("non_poor"), hlc, None),
        ]
    }

    /// The changes creating a member of a household (scope first).
    pub fn member(&mut self, village: &str, row_id: &str, household: &str, name: &str, hlc: i64) -> Vec<Change> {
        vec![
            self.change("members", row_id, "scope_id", Value::from(village), hlc, None),
            self.change("members", row_id, "household_id", Value::from(household), hlc, None),
            self.change("members", row_id, "name", Value::from(name), hlc, None),
        ]
    }

    /// The changes creating a product of a village (scope first).
    pub fn product(&mut self, village: &str, row_id: &str, hlc: i64) -> Vec<Change> {
        let village_row = platform::village_row_id(village);
        vec![
            self.change("products", row_id, "scope_id", Value::from(village), hlc, None),
            self.change("products", row_id, "village_id", Value::from(village_row), hlc, None),
            self.change("products", row_id, "name", Value::from("核桃"), hlc, None),
            self.change("products", row_id, "category", Value::from("nuts"), hlc, None),
        ]
    }

    /// The changes creating a draft listing of a product (scope first).
    pub fn listing(&mut self, village: &str, row_id: &str, product: &str, hlc: i64) -> Vec<Change> {
        let fields = [
            ("scope_id", Value::from(village)),
            ("product_id", Value::from(product)),
            ("platform", Value::from("taobao")),
            ("title", Value::from("高山核桃 500g")),
            ("category", Value::from("nuts")),
            ("price_fen", Value::from(1500)),
            ("unit", Value::from("jin")),
            ("status", Value::from("draft")),
        ];
        fields.into_iter().map(|(field, value)| self.change("listings", row_id, field, value, hlc, None)).collect()
    }

    /// The changes creating an income record of a household (scope first).
    pub fn income(&mut self, village: &str, row_id: &str, household: &str, amount_fen: i64, hlc: i64) -> Vec<Change> {
        let fields = [
            ("scope_id", Value::from(village)),
            ("household_id", Value::from(household)),
            ("year", Value::from(2025)),
            ("category", Value::from("wage")),
            ("amount_fen", Value::from(amount_fen)),
            ("recorded_on", Value::from("2025-12-01")),
        ];
        fields.into_iter().map(|(field, value)| self.change("income_records", row_id, field, value, hlc, None)).collect()
    }

    /// A push request creating a household.
    pub fn household_batch(&mut self, village: &str, row_id: &str, head: &str, hlc: i64) -> PushRequest {
        let changes = self.household(village, row_id, head, hlc);
        self.batch(changes)
    }

    /// A push request of these changes.
    pub fn batch(&self, changes: Vec<Change>) -> PushRequest {
        PushRequest { client_id: self.id(), batch_id: uuid::Uuid::new_v4().to_string(), schema_version: SCHEMA_VERSION, changes }
    }
}

/// A running server on 127.0.0.1:0 over a backend.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The HTTP client.
    pub http: reqwest::Client,
    /// The server's state, for direct inspection.
    pub state: AppState,
    /// The storage (kept alive for the server's lifetime).
    pub backend: Arc<Backend>,
}

impl TestServer {
    /// Starts a server over a fresh backend, seeded with the test villages and assistants.
    pub async fn start(kind: Kind) -> Self {
        let backend = Arc::new(Backend::new(kind));
        Self::start_on(backend, true).await
    }

    /// Starts a server over a fresh backend, seeded, with settings changed by `configure`.
    pub async fn start_with(kind: Kind, configure: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        Self::start_configured(Arc::new(Backend::new(kind)), true, configure).await
    }

    /// Starts a server over an existing backend (a second instance sharing the database).
    pub async fn start_on(backend: Arc<Backend>, seed_data: bool) -> Self {
        Self::start_configured(backend, seed_data, |_| {}).await
    }

    /// Starts a server over a backend with settings changed by `configure`.
    pub async fn start_configured(backend: Arc<Backend>, seed_data: bool, configure: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        let opened = backend.clone();
        let state = tokio::task::spawn_blocking(move || {
            let database = opened.open();
            if seed_data {
                seed(database.as_ref());
            }
            let blobs = Arc::new(FileBlobStore::new(&opened.dir.path().join("blobs")).expect("blob directory"));
            let mut settings =
                Settings { admin_token: Some(ADMIN_TOKEN.into()), password_cost: PasswordCost::CHEAP_FOR_TESTS, ..Settings::default() };
            configure(&mut settings);
            AppState::new(database, blobs, settings).expect("state")
        })
        .await
        .expect("open task");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let serving = state.clone();
        tokio::spawn(async move {
            let _ = furrow_server::serve(listener, serving).await;
        });
        Self { base: format!("http://{address}"), http: reqwest::Client::new(), state, backend }
    }

    /// The full URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signs in and returns the tokens.
    pub async fn login(&self, username: &str) -> TokenResponse {
        let response = self
            .http
            .post(self.url("/auth/v1/login"))
            .json(&serde_json::json!({"username": username, "password": "correct horse", "device_name": "test laptop"}))
            .send()
            .await
            .expect("login request");
        assert_eq!(response.status(), 200, "login of {username}");
        response.json().await.expect("token body")
    }

    /// Pushes a batch with a token; returns status and body.
    pub async fn push(&self, token: &str, request: &PushRequest) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/sync/v1/push"))
            .bearer_auth(token)
            .header("Idempotency-Key", &request.batch_id)
            .header("X-Client-Id", &request.client_id)
            .header("X-Schema-Version", SCHEMA_VERSION.to_string())
            .json(request)
            .send()
            .await
            .expect("push request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("push answer is JSON"))
    }

    /// Pulls one page; returns status and body.
    pub async fn pull(&self, token: &str, cursor: Option<&str>, limit: i64) -> (u16, Value) {
        let mut url = format!("{}?limit={limit}", self.url("/sync/v1/pull"));
        if let Some(cursor) = cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let response = self.http.get(url).bearer_auth(token).send().await.expect("pull request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("pull answer is JSON"))
    }

    /// Pulls every page from the start; returns all rows and the last cursor.
    pub async fn pull_all(&self, token: &str, limit: i64) -> (Vec<Value>, String) {
        let mut rows = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let (status, page) = self.pull(token, cursor.as_deref(), limit).await;
            assert_eq!(status, 200, "{page}");
            rows.extend(page["rows"].as_array().cloned().unwrap_or_default());
            cursor = page["cursor"].as_str().map(str::to_owned);
            if page["has_more"] != Value::Bool(true) {
                break;
            }
        }
        (rows, cursor.unwrap_or_default())
    }
}
