//! The test harness of the server's own integration tests and of the end-to-end sync tests
//! (feature `testing`): the real server started in-process on 127.0.0.1:0 over either backend (a
//! SQLite data directory, or a fresh PostgreSQL database of its own), the bootstrap admin token,
//! the test villages and accounts, and the platform's admin calls.
//!
//! Tests that hold for both backends are written once as a function taking a [`Backend`] and
//! named for each backend with [`on_both_backends!`](crate::on_both_backends), so a failure names
//! its backend.
//!
//! The harness works from plain tests and from async ones alike: the server runs on a thread and
//! a runtime of its own, and the synchronous PostgreSQL client, which must not run on an async
//! worker thread, is only used on threads of its own. The blocking admin calls
//! ([`TestServer::add_village`] and the like) are for plain tests; async tests use
//! [`TestServer::http`] and the async calls ([`TestServer::login`] and the like).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use furrow_contract::wire::{PushRequest, TokenResponse, SCHEMA_VERSION};
use serde_json::{json, Value};

use crate::auth::PasswordCost;
use crate::platform::{self, ServerClock};
use crate::store::{self, Database};
use crate::{AppState, Settings, Storage};

/// The bootstrap admin token of test servers (the server accepts one of 32 characters or more).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123";

/// The village of the seeded assistant `alice` (see [`seed`]).
pub const VILLAGE_A: &str = "520402101201";
/// The village of the seeded assistant `bob`.
pub const VILLAGE_B: &str = "520402101202";
/// The password of the seeded assistants.
pub const PASSWORD: &str = "correct horse";

/// The PostgreSQL server the tests use (`FURROW_TEST_DATABASE_URL`, else the one CI and this
/// machine run at 127.0.0.1:5432). Each test makes a database of its own on it.
pub fn postgres_url() -> String {
    std::env::var("FURROW_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The storage backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite in the test's data directory (the embedded default).
    Sqlite,
    /// PostgreSQL: a fresh database of the test's own, dropped when the test is done with it.
    Postgres,
}

impl Backend {
    /// Both backends.
    pub const ALL: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Names a test body taking a [`Backend`] once per backend: `sqlite::NAME` and `postgres::NAME`,
/// so a failure names its backend. Plain bodies `fn NAME(backend: Backend)` are listed as they
/// are; async bodies `async fn NAME(backend: Backend)` after `async:`, and each runs on a
/// single-threaded runtime of its own, as a `#[tokio::test]` does. One list per test file:
///
/// ```ignore
/// on_both_backends!(a_plain_test, another_plain_test);
/// on_both_backends!(async: an_async_test, another_async_test);
/// ```
#[macro_export]
macro_rules! on_both_backends {
    (async: $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    $crate::testing::block_on(super::$name($crate::testing::Backend::Sqlite))
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    $crate::testing::block_on(super::$name($crate::testing::Backend::Postgres))
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::testing::Backend::Sqlite)
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::testing::Backend::Postgres)
                }
            )*
        }
    };
}

/// Runs an async test body to its end on a single-threaded runtime with time and I/O, as a
/// `#[tokio::test]` does.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(future)
}

/// Runs blocking work away from any runtime: on a thread of its own when called from async code,
/// because the synchronous PostgreSQL client owns a small runtime, which can be neither started
/// nor dropped on an async worker thread.
fn apart<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return work();
    }
    std::thread::scope(|scope| scope.spawn(work).join()).unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// A PostgreSQL database made for one test: created empty under a unique name, reached as
/// `postgres://…/NAME` (what `furrow-server serve --database-url` is given), and dropped, with
/// any connection still open to it, when the test is done with it.
struct FreshDatabase {
    /// The URL of the database the server and the test's own queries use.
    url: String,
    name: String,
    /// The URL of the database the fresh one was created from, to drop it from.
    maintenance_url: String,
}

impl FreshDatabase {
    fn create() -> FreshDatabase {
        let maintenance_url = postgres_url();
        let name = format!("furrow_test_{}", uuid::Uuid::new_v4().simple());
        let (address, query) = match maintenance_url.split_once('?') {
            Some((address, query)) => (address, Some(query)),
            None => (maintenance_url.as_str(), None),
        };
        let scheme_end = address.find("://").map_or(0, |index| index + 3);
        let base = match address[scheme_end..].find('/') {
            Some(slash) => &address[..scheme_end + slash],
            None => address,
        };
        let url = match query {
            Some(query) => format!("{base}/{name}?{query}"),
            None => format!("{base}/{name}"),
        };
        apart(|| {
            let mut client = postgres::Client::connect(&maintenance_url, postgres::NoTls)
                .unwrap_or_else(|error| panic!("PostgreSQL at {maintenance_url} answers: {error}"));
            client.batch_execute(&format!("CREATE DATABASE {name}")).expect("a fresh database is created");
        });
        FreshDatabase { url, name, maintenance_url }
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        apart(|| {
            if let Ok(mut client) = postgres::Client::connect(&self.maintenance_url, postgres::NoTls) {
                // FORCE ends connections a server's pool may still be closing.
                let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
            }
        });
    }
}

/// A test's storage: a temporary data directory (the blobs, and the SQLite database on SQLite)
/// plus, on PostgreSQL, a fresh database of its own, dropped with this value.
pub struct TestStorage {
    backend: Backend,
    // Dropped after the database (fields drop in order).
    database: Option<FreshDatabase>,
    dir: tempfile::TempDir,
}

impl TestStorage {
    /// Fresh storage on `backend`.
    pub fn new(backend: Backend) -> TestStorage {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let database = (backend == Backend::Postgres).then(FreshDatabase::create);
        TestStorage { backend, database, dir }
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The data directory (the SQLite database, if any, and the blobs), as `--data-dir` names it.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The URL of the PostgreSQL database, on PostgreSQL (as `--database-url` names it).
    pub fn database_url(&self) -> Option<&str> {
        self.database.as_ref().map(|database| database.url.as_str())
    }

    /// Where the data lives, as the operator commands are pointed at it.
    pub fn storage(&self) -> Storage {
        match &self.database {
            Some(database) => Storage::Postgres { url: database.url.clone(), schema: None },
            None => Storage::Sqlite { data_dir: self.data_dir().to_owned() },
        }
    }

    /// Opens (and migrates) the database; each call is a new connection or pool, as another
    /// server instance or an operator command holds.
    pub fn open(&self) -> Arc<dyn Database> {
        let storage = self.storage();
        apart(move || crate::open_database(&storage).expect("the database opens"))
    }

    /// The blob store in the data directory, as the server keeps it.
    pub fn blobs(&self) -> Arc<crate::blobs::FileBlobStore> {
        Arc::new(crate::blobs::FileBlobStore::new(self.data_dir()).expect("the blob store opens"))
    }
}

/// Adds the two test villages and two assistants with the password [`PASSWORD`]: `alice` in
/// [`VILLAGE_A`], `bob` in [`VILLAGE_B`]. Returns their ids.
pub fn seed(database: &dyn Database) -> (i64, i64) {
    let clock = ServerClock::new();
    let hash = crate::auth::hash_password(PASSWORD, PasswordCost::CHEAP_FOR_TESTS).expect("a hash");
    store::write(database, |tx| {
        platform::add_village(tx, &clock, VILLAGE_A, "石门村")?;
        platform::add_village(tx, &clock, VILLAGE_B, "龙潭村")?;
        let alice = platform::add_assistant(tx, "alice", &hash, &[VILLAGE_A.to_owned()])?;
        let bob = platform::add_assistant(tx, "bob", &hash, &[VILLAGE_B.to_owned()])?;
        Ok((alice, bob))
    })
    .expect("the seed")
}

/// The settings of test servers: the bootstrap token [`ADMIN_TOKEN`] and cheap password hashing.
pub fn test_settings() -> Settings {
    Settings { admin_token: Some(ADMIN_TOKEN.to_owned()), password_cost: PasswordCost::CHEAP_FOR_TESTS, ..Settings::default() }
}

/// A running server, in-process on 127.0.0.1. Stops when dropped (its runtime is shut down with
/// its thread); its storage is dropped with the last instance using it.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The address it listens on.
    pub address: std::net::SocketAddr,
    /// An HTTP client for async tests.
    pub http: reqwest::Client,
    /// The server's state, for direct inspection.
    pub state: AppState,
    settings: Settings,
    // Dropped after the server stopped (fields drop in order, after `Drop::drop`).
    postgres_client: Mutex<Option<postgres::Client>>,
    storage: Arc<TestStorage>,
    admin: OnceLock<reqwest::blocking::Client>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on SQLite over a fresh data directory, with no villages or accounts.
    pub fn start() -> TestServer {
        TestServer::start_on(Backend::Sqlite)
    }

    /// Starts a server on `backend` with no villages or accounts: on SQLite over a fresh data
    /// directory, on PostgreSQL over a fresh database of its own (blobs stay in the data
    /// directory, as with `furrow-server serve --database-url`).
    pub fn start_on(backend: Backend) -> TestServer {
        TestServer::launch(Arc::new(TestStorage::new(backend)), false, test_settings(), None)
    }

    /// Starts a server on `backend` seeded with the test villages and assistants (see [`seed`]).
    pub fn seeded(backend: Backend) -> TestServer {
        TestServer::seeded_with(backend, |_| {})
    }

    /// Starts a seeded server on `backend` with the test settings changed by `configure`.
    pub fn seeded_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestServer {
        let mut settings = test_settings();
        configure(&mut settings);
        TestServer::launch(Arc::new(TestStorage::new(backend)), true, settings, None)
    }

    /// Starts a second instance of this server on another port, sharing its database and its
    /// blob directory, as several stateless instances share one PostgreSQL database behind a
    /// load balancer; it has the test settings. The storage is dropped when the last instance
    /// stops.
    pub fn start_another_instance(&self) -> TestServer {
        TestServer::launch(Arc::clone(&self.storage), false, test_settings(), None)
    }

    /// Stops the server and keeps what it runs on, for a server started again at the same address.
    fn stop(self) -> (Arc<TestStorage>, Settings, std::net::SocketAddr) {
        let kept = (Arc::clone(&self.storage), self.settings.clone(), self.address);
        drop(self);
        kept
    }

    /// Stops the server, copies its database as it is on disk (the SQLite files, or a PostgreSQL
    /// copy made with `CREATE DATABASE … TEMPLATE`, which needs the server's connections gone),
    /// and starts it again at the same address over the same data, so devices keep their URL.
    /// The copy is what a backup holds, or what a power cut leaves of a server that did not wait
    /// for the disk.
    pub fn copy_database(self) -> (TestServer, DatabaseCopy) {
        let (storage, settings, address) = self.stop();
        let copy = match &storage.database {
            None => DatabaseCopy::of_files(storage.data_dir()),
            Some(fresh) => DatabaseCopy::of_postgres(fresh),
        };
        (TestServer::launch(storage, false, settings, Some(address)), copy)
    }

    /// Stops the server, puts `copy` back in place of its database, and starts a server on it at
    /// the same address: the server has gone back to the moment of the copy. The blobs stay.
    pub fn restore_database(self, copy: &DatabaseCopy) -> TestServer {
        let (storage, settings, address) = self.stop();
        match &storage.database {
            None => copy.put_files_back(storage.data_dir()),
            Some(fresh) => copy.put_postgres_back(fresh),
        }
        TestServer::launch(storage, false, settings, Some(address))
    }

    fn launch(storage: Arc<TestStorage>, seed_data: bool, settings: Settings, address: Option<std::net::SocketAddr>) -> TestServer {
        let (started_sender, started) = std::sync::mpsc::channel();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let opened = Arc::clone(&storage);
        let serving_settings = settings.clone();
        // The database opens and the runtime runs on the server's own thread, away from any
        // runtime of the test's.
        let thread = std::thread::spawn(move || {
            let database = crate::open_database(&opened.storage()).expect("the server's database opens");
            if seed_data {
                seed(database.as_ref());
            }
            let state = AppState::new(database, opened.blobs(), serving_settings).expect("the server's state builds");
            drop(opened);
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                let wanted = address.unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
                // A server started again at its old address may find the port still held for a
                // moment by the one that just stopped.
                let mut attempts = 0;
                let listener = loop {
                    match tokio::net::TcpListener::bind(wanted).await {
                        Ok(listener) => break listener,
                        Err(error) if attempts < 100 => {
                            attempts += 1;
                            eprintln!("binding {wanted} again: {error}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(error) => panic!("the port {wanted} stays taken: {error}"),
                    }
                };
                let bound = listener.local_addr().expect("an address");
                started_sender.send((bound, state.clone())).expect("the test waits");
                tokio::select! {
                    result = crate::serve(listener, state) => result.expect("the server runs"),
                    _ = stop => {}
                }
            });
        });
        let (address, state) = match started.recv() {
            Ok(started) => started,
            // The thread failed before it served: its panic is the test's.
            Err(_) => std::panic::resume_unwind(thread.join().expect_err("the server thread stopped before it served")),
        };
        TestServer {
            url: format!("http://{address}"),
            address,
            http: reqwest::Client::new(),
            state,
            settings,
            postgres_client: Mutex::new(None),
            storage,
            admin: OnceLock::new(),
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The full URL of a path (`/auth/v1/login`).
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// The backend it runs on.
    pub fn backend(&self) -> Backend {
        self.storage.backend()
    }

    /// What it runs on.
    pub fn test_storage(&self) -> &TestStorage {
        &self.storage
    }

    /// The PostgreSQL URL of its database, when it runs on PostgreSQL (for operator commands
    /// given `--database-url`).
    pub fn database_url(&self) -> Option<&str> {
        self.storage.database_url()
    }

    /// Where the server keeps its data, as the operator commands are pointed at it (`--data-dir`
    /// or `--database-url`): open it for a second handle on the same backend.
    pub fn storage(&self) -> Storage {
        self.storage.storage()
    }

    /// The server's data directory (the SQLite database, if any, and the blobs).
    pub fn data_dir(&self) -> &Path {
        self.storage.data_dir()
    }

    // The async calls of async tests.

    /// Signs in as a seeded assistant and returns the tokens.
    pub async fn login(&self, username: &str) -> TokenResponse {
        let response = self
            .http
            .post(self.endpoint("/auth/v1/login"))
            .json(&json!({"username": username, "password": PASSWORD, "device_name": "test laptop"}))
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
            .post(self.endpoint("/sync/v1/push"))
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
        let mut url = format!("{}?limit={limit}", self.endpoint("/sync/v1/pull"));
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

    // The blocking calls of plain tests.

    fn admin(&self) -> &reqwest::blocking::Client {
        self.admin.get_or_init(reqwest::blocking::Client::new)
    }

    fn admin_post(&self, path: &str, body: &Value) -> Value {
        let response = self.admin().post(self.endpoint(path)).bearer_auth(ADMIN_TOKEN).json(body).send().expect("the admin endpoint answers");
        let status = response.status();
        let text = response.text().unwrap_or_default();
        assert!(status.is_success(), "POST {path} {body} answered {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Adds a village; returns its row id (the server makes village rows itself).
    pub fn add_village(&self, code: &str, name: &str) -> String {
        let answer = self.admin_post("/admin/v1/villages", &json!({ "code": code, "name": name }));
        answer["row_id"].as_str().expect("a row id").to_owned()
    }

    /// Adds an assistant working in `villages`.
    pub fn add_assistant(&self, username: &str, password: &str, villages: &[&str]) {
        self.admin_post("/admin/v1/assistants", &json!({ "username": username, "password": password, "villages": villages }));
    }

    /// The platform's moderation of a listing. A verdict naming a `moderator` is given by that
    /// admin, signed in with an account of its own (made on first use), because the server
    /// records the signed-in admin as the moderator, never a name in the body; other verdicts
    /// come from the platform's systems with the bootstrap token.
    pub fn moderate(&self, listing_id: &str, verdict: Value) {
        let path = format!("/admin/v1/listings/{listing_id}/moderation");
        let Some(name) = verdict.get("moderator").and_then(Value::as_str) else {
            self.admin_post(&path, &verdict);
            return;
        };
        let token = self.admin_sign_in(name);
        let response = self.admin().post(self.endpoint(&path)).bearer_auth(token).json(&verdict).send().expect("the admin endpoint answers");
        assert!(response.status().is_success(), "POST {path} {verdict} answered {}", response.status());
    }

    /// Signs in as the admin `name`, making the account on first use; returns an access token.
    fn admin_sign_in(&self, name: &str) -> String {
        const PASSWORD: &str = "moderation desk at dawn";
        let database = self.storage.open();
        let hash = crate::auth::hash_password(PASSWORD, PasswordCost::CHEAP_FOR_TESTS).expect("a hash");
        store::write(database.as_ref(), |tx| match tx.user_by_name(name)? {
            Some(_) => Ok(()),
            None => platform::add_admin(tx, name, &hash).map(|_| ()),
        })
        .expect("the admin's account");
        let answer: Value = self
            .admin()
            .post(self.endpoint("/auth/v1/login"))
            .json(&json!({ "username": name, "password": PASSWORD, "device_name": "platform console" }))
            .send()
            .expect("the sign-in answers")
            .json()
            .expect("tokens");
        answer["access_token"].as_str().expect("an access token").to_owned()
    }

    /// The platform's moderation of a listing, which may not have reached the server yet;
    /// returns whether the server took it.
    pub fn try_moderate(&self, listing_id: &str, verdict: &Value) -> bool {
        self.admin()
            .post(self.endpoint(&format!("/admin/v1/listings/{listing_id}/moderation")))
            .bearer_auth(ADMIN_TOKEN)
            .json(verdict)
            .send()
            .is_ok_and(|response| response.status().is_success())
    }

    /// Records a sale credited to households; returns the sale's id.
    pub fn record_sale(&self, sale: Value) -> String {
        self.admin_post("/admin/v1/sales", &sale)["sale_id"].as_str().expect("a sale id").to_owned()
    }

    /// Counts rows of the server's own database (read-only), for checks of exactly-once effects;
    /// any query answering one integer (a first column of one row) will do. The SQL runs on the
    /// server's backend, so it keeps to what SQLite and PostgreSQL share (a subquery in FROM has
    /// an alias, for example).
    pub fn query_count(&self, sql: &str) -> i64 {
        if let Some(url) = self.database_url() {
            return apart(|| {
                let mut client = self.postgres_client.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if client.as_ref().is_none_or(postgres::Client::is_closed) {
                    *client = Some(postgres::Client::connect(url, postgres::NoTls).expect("the server's database answers"));
                }
                let client = client.as_mut().expect("a client");
                let row = client.query_one(sql, &[]).unwrap_or_else(|error| panic!("the query {sql} runs: {error}"));
                // count(*) and BIGINT columns are 64-bit; an INTEGER column or literal is 32-bit.
                row.try_get::<_, i64>(0)
                    .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
                    .unwrap_or_else(|error| panic!("the query {sql} answers an integer: {error}"))
            });
        }
        let connection = rusqlite::Connection::open_with_flags(crate::sqlite_path(self.data_dir()), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("the server's database opens read-only");
        connection.busy_timeout(Duration::from_secs(5)).expect("a busy timeout");
        connection.query_row(sql, [], |row| row.get(0)).expect("the query runs")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // The test's own connection closes before its database is dropped, away from any runtime.
        let client = self.postgres_client.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if client.is_some() {
            apart(move || drop(client));
        }
        // The blocking client owns a runtime too.
        if let Some(admin) = self.admin.take() {
            apart(move || drop(admin));
        }
    }
}

/// A test server's database as it was at one moment, made by [`TestServer::copy_database`] and
/// put back by [`TestServer::restore_database`]: the SQLite files (with the WAL, if any), or a
/// PostgreSQL database copied from the server's own, dropped with this value.
pub struct DatabaseCopy {
    files: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

/// The SQLite files of a server's database: the file and its WAL and shared-memory files.
fn sqlite_files(data_dir: &Path) -> Vec<PathBuf> {
    let database = crate::sqlite_path(data_dir);
    let name = database.file_name().expect("a file name").to_string_lossy().into_owned();
    ["", "-wal", "-shm"].iter().map(|suffix| database.with_file_name(format!("{name}{suffix}"))).collect()
}

impl DatabaseCopy {
    fn of_files(data_dir: &Path) -> DatabaseCopy {
        let copy = tempfile::tempdir().expect("a temporary directory");
        for file in sqlite_files(data_dir).into_iter().filter(|file| file.exists()) {
            std::fs::copy(&file, copy.path().join(file.file_name().expect("a file name"))).expect("the database file is copied");
        }
        DatabaseCopy { files: Some(copy), postgres: None }
    }

    fn put_files_back(&self, data_dir: &Path) {
        let copy = self.files.as_ref().expect("a copy of SQLite files");
        for file in sqlite_files(data_dir) {
            if file.exists() {
                std::fs::remove_file(&file).expect("the database file is removed");
            }
            let saved = copy.path().join(file.file_name().expect("a file name"));
            if saved.exists() {
                std::fs::copy(&saved, &file).expect("the database file is put back");
            }
        }
    }

    /// Runs SQL on the PostgreSQL server that needs the server's last connections to its
    /// database gone; a stopped pool closes them on a thread of its own, so this waits for them.
    fn run_when_unused(maintenance_url: &str, sql: &str) {
        apart(|| {
            let mut client = postgres::Client::connect(maintenance_url, postgres::NoTls).expect("PostgreSQL answers");
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                match client.batch_execute(sql) {
                    Ok(()) => return,
                    Err(error) if error.code() == Some(&postgres::error::SqlState::OBJECT_IN_USE) && std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(error) => panic!("{sql}: {error}"),
                }
            }
        });
    }

    fn of_postgres(fresh: &FreshDatabase) -> DatabaseCopy {
        let name = format!("{}_copy_{}", fresh.name, &uuid::Uuid::new_v4().simple().to_string()[..8]);
        DatabaseCopy::run_when_unused(&fresh.maintenance_url, &format!("CREATE DATABASE {name} TEMPLATE {}", fresh.name));
        DatabaseCopy { files: None, postgres: Some((name, fresh.maintenance_url.clone())) }
    }

    fn put_postgres_back(&self, fresh: &FreshDatabase) {
        let (copy, _) = self.postgres.as_ref().expect("a copy of a PostgreSQL database");
        // Each its own statement: neither may run inside a transaction block, which a string of
        // several statements is.
        DatabaseCopy::run_when_unused(&fresh.maintenance_url, &format!("DROP DATABASE {} WITH (FORCE)", fresh.name));
        DatabaseCopy::run_when_unused(&fresh.maintenance_url, &format!("CREATE DATABASE {} TEMPLATE {copy}", fresh.name));
    }
}

impl Drop for DatabaseCopy {
    fn drop(&mut self) {
        if let Some((name, maintenance_url)) = self.postgres.take() {
            apart(move || {
                if let Ok(mut client) = postgres::Client::connect(&maintenance_url, postgres::NoTls) {
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_exists(name: &str) -> bool {
        apart(|| {
            let mut client = postgres::Client::connect(&postgres_url(), postgres::NoTls).expect("PostgreSQL answers");
            let count: i64 = client.query_one("SELECT count(*) FROM pg_database WHERE datname = $1", &[&name]).expect("the query runs").get(0);
            count == 1
        })
    }

    #[test]
    fn a_postgres_test_server_keeps_its_data_in_a_fresh_database_dropped_when_it_stops() {
        let server = TestServer::start_on(Backend::Postgres);
        assert_eq!(server.backend(), Backend::Postgres);
        let url = server.database_url().expect("a database URL").to_owned();
        let name = url.rsplit('/').next().expect("a database name").to_owned();
        assert!(name.starts_with("furrow_test_"), "{url}");
        assert!(database_exists(&name));
        assert_eq!(server.query_count("SELECT count(*) FROM villages"), 0, "the database starts empty");
        server.add_village("530102001001", "小河村");
        server.add_assistant("lihua", "li-password-1", &["530102001001"]);
        assert_eq!(server.query_count("SELECT count(*) FROM villages"), 1);
        assert_eq!(server.query_count("SELECT count(*) FROM users WHERE username = 'lihua'"), 1);
        assert!(!crate::sqlite_path(server.data_dir()).exists(), "no SQLite database beside it");
        // What the operator commands write, given the same `--database-url`, the server serves.
        let operator = crate::open_database(&server.storage()).expect("a second handle opens");
        let clock = ServerClock::new();
        store::write(operator.as_ref(), |tx| platform::add_village(tx, &clock, "530102001002", "大山村").map(drop))
            .expect("the operator adds a village");
        drop(operator);
        assert_eq!(server.query_count("SELECT count(*) FROM villages"), 2);
        server.add_assistant("wang", "stone-bridge-22", &["530102001002"]);
        // A second server has a database of its own.
        let other = TestServer::start_on(Backend::Postgres);
        assert_ne!(other.database_url(), Some(url.as_str()));
        assert_eq!(other.query_count("SELECT count(*) FROM villages"), 0);
        drop(server);
        assert!(!database_exists(&name), "the database is dropped with its server");
    }

    #[test]
    fn a_sqlite_test_server_keeps_its_data_in_its_data_directory() {
        let server = TestServer::start();
        assert_eq!(server.backend(), Backend::Sqlite);
        assert_eq!(server.database_url(), None);
        server.add_village("530102001001", "小河村");
        assert!(crate::sqlite_path(server.data_dir()).is_file());
        assert_eq!(server.query_count("SELECT count(*) FROM villages"), 1);
    }
}
