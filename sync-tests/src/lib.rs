//! The harness of the end-to-end sync tests: the real `furrow-server` started in-process on
//! 127.0.0.1:0 over either backend (a SQLite data directory, or a fresh PostgreSQL database of its
//! own), the platform's admin calls, devices that are real device stores in files driven by the
//! real sync engine over HTTP, and a TCP proxy that injects the faults of a slow link that drops.
//!
//! Tests that hold for both backends are written once as a function taking a [`Backend`] and
//! named for each backend with [`on_both_backends!`], so a failure names its backend.

pub mod proxy;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use furrow::schema::{self, TableSpec};
use furrow::sync::{self, HttpTransport, RetryPolicy, SyncEngine, SyncOptions, SyncReport, SyncResult};
use furrow::{OpenOptions, Store};
use furrow_server::auth::PasswordCost;
use serde_json::{json, Value};

/// The bootstrap admin token of test servers (the server accepts one of 32 characters or more).
pub const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789abcdef";

/// The PostgreSQL server the tests use (`FURROW_TEST_DATABASE_URL`, else the one CI and this
/// machine run at 127.0.0.1:5432). Each test server makes a database of its own on it.
pub fn postgres_url() -> String {
    std::env::var("FURROW_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The storage backend a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite in the server's data directory (the embedded default).
    Sqlite,
    /// PostgreSQL: a fresh database of the test server's own, dropped when it stops.
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

/// Names a test body `fn NAME(backend: Backend)` once per backend: `sqlite::NAME` and
/// `postgres::NAME`, so a failure names its backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::Backend::Sqlite)
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    super::$name($crate::Backend::Postgres)
                }
            )*
        }
    };
}

/// A PostgreSQL database made for one test server: created empty under a unique name, reached
/// by the server as `postgres://…/NAME` (what `furrow-server serve --database-url` is given), and
/// dropped, with any connection still open to it, when the test server stops.
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
        let name = format!("furrow_sync_{}", uuid::Uuid::new_v4().simple());
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
        let mut client = postgres::Client::connect(&maintenance_url, postgres::NoTls)
            .unwrap_or_else(|error| panic!("PostgreSQL at {maintenance_url} answers: {error}"));
        client.batch_execute(&format!("CREATE DATABASE {name}")).expect("a fresh database is created");
        FreshDatabase { url, name, maintenance_url }
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.maintenance_url, postgres::NoTls) {
            // FORCE ends connections the server's pool may still be closing.
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// A running server. Stops when dropped (its runtime is shut down with the thread).
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The address it listens on.
    pub address: std::net::SocketAddr,
    backend: Backend,
    // Dropped after the server stopped (fields drop in order, after `Drop::drop`).
    postgres_client: Mutex<Option<postgres::Client>>,
    database: Option<Arc<FreshDatabase>>,
    data_dir: Arc<tempfile::TempDir>,
    admin: reqwest::blocking::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on SQLite over a fresh data directory, with cheap password hashing.
    pub fn start() -> TestServer {
        TestServer::start_on(Backend::Sqlite)
    }

    /// Starts a server on `backend`, with cheap password hashing: on SQLite over a fresh data
    /// directory, on PostgreSQL over a fresh database of its own (blobs stay in the data
    /// directory, as with `furrow-server serve --database-url`).
    pub fn start_on(backend: Backend) -> TestServer {
        let data_dir = Arc::new(tempfile::tempdir().expect("a temporary directory"));
        let database = (backend == Backend::Postgres).then(|| Arc::new(FreshDatabase::create()));
        TestServer::launch(backend, data_dir, database, None)
    }

    /// Starts a second instance of this server on another port, sharing its database and its
    /// blob directory, as several stateless instances share one PostgreSQL database behind a
    /// load balancer. The database is dropped when the last instance stops.
    pub fn start_another_instance(&self) -> TestServer {
        TestServer::launch(self.backend, Arc::clone(&self.data_dir), self.database.clone(), None)
    }

    /// Stops the server and keeps what it runs on, for a server started again at the same address.
    fn stop(self) -> (Backend, Arc<tempfile::TempDir>, Option<Arc<FreshDatabase>>, std::net::SocketAddr) {
        let kept = (self.backend, Arc::clone(&self.data_dir), self.database.clone(), self.address);
        drop(self);
        kept
    }

    /// Stops the server, copies its database as it is on disk (the SQLite files, or a PostgreSQL
    /// copy made with `CREATE DATABASE … TEMPLATE`, which needs the server's connections gone),
    /// and starts it again at the same address over the same data, so devices keep their URL.
    /// The copy is what a backup holds, or what a power cut leaves of a server that did not wait
    /// for the disk.
    pub fn copy_database(self) -> (TestServer, DatabaseCopy) {
        let (backend, data_dir, database, address) = self.stop();
        let copy = match &database {
            None => DatabaseCopy::of_files(data_dir.path()),
            Some(fresh) => DatabaseCopy::of_postgres(fresh),
        };
        (TestServer::launch(backend, data_dir, database, Some(address)), copy)
    }

    /// Stops the server, puts `copy` back in place of its database, and starts a server on it at
    /// the same address: the server has gone back to the moment of the copy. The blobs stay.
    pub fn restore_database(self, copy: &DatabaseCopy) -> TestServer {
        let (backend, data_dir, database, address) = self.stop();
        match &database {
            None => copy.put_files_back(data_dir.path()),
            Some(fresh) => copy.put_postgres_back(fresh),
        }
        TestServer::launch(backend, data_dir, database, Some(address))
    }

    fn launch(
        backend: Backend,
        data_dir: Arc<tempfile::TempDir>,
        database: Option<Arc<FreshDatabase>>,
        address: Option<std::net::SocketAddr>,
    ) -> TestServer {
        let storage = match &database {
            None => furrow_server::Storage::Sqlite { data_dir: data_dir.path().to_owned() },
            Some(fresh) => furrow_server::Storage::Postgres { url: fresh.url.clone(), schema: None },
        };
        let database_handle = furrow_server::open_database(&storage).expect("the server's database opens");
        let blobs = Arc::new(furrow_server::blobs::FileBlobStore::new(data_dir.path()).expect("the blob store opens"));
        let settings = furrow_server::Settings {
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            password_cost: PasswordCost::CHEAP_FOR_TESTS,
            ..furrow_server::Settings::default()
        };
        let state = furrow_server::AppState::new(database_handle, blobs, settings).expect("the server's state builds");
        let (address_sender, address_receiver) = std::sync::mpsc::channel();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
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
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        Err(error) => panic!("the port {wanted} stays taken: {error}"),
                    }
                };
                address_sender.send(listener.local_addr().expect("an address")).expect("the test waits");
                tokio::select! {
                    result = furrow_server::serve(listener, state) => result.expect("the server runs"),
                    _ = stop => {}
                }
            });
        });
        let address = address_receiver.recv().expect("the server started");
        TestServer {
            url: format!("http://{address}"),
            address,
            backend,
            postgres_client: Mutex::new(None),
            database,
            data_dir,
            admin: reqwest::blocking::Client::new(),
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// The backend it runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The PostgreSQL URL of its database, when it runs on PostgreSQL (for operator commands
    /// given `--database-url`).
    pub fn database_url(&self) -> Option<&str> {
        self.database.as_ref().map(|database| database.url.as_str())
    }

    /// Where the server keeps its data, as the operator commands are pointed at it (`--data-dir`
    /// or `--database-url`): open it for a second handle on the same backend.
    pub fn storage(&self) -> furrow_server::Storage {
        match &self.database {
            Some(database) => furrow_server::Storage::Postgres { url: database.url.clone(), schema: None },
            None => furrow_server::Storage::Sqlite { data_dir: self.data_dir().to_owned() },
        }
    }

    /// The server's data directory (the SQLite database, if any, and the blobs).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    fn admin_post(&self, path: &str, body: &Value) -> Value {
        let response = self
            .admin
            .post(format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .expect("the admin endpoint answers");
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
        let response = self.admin.post(format!("{}{path}", self.url)).bearer_auth(token).json(&verdict).send().expect("the admin endpoint answers");
        assert!(response.status().is_success(), "POST {path} {verdict} answered {}", response.status());
    }

    /// Signs in as the admin `name`, making the account on first use; returns an access token.
    fn admin_sign_in(&self, name: &str) -> String {
        const PASSWORD: &str = "moderation desk at dawn";
        let database = furrow_server::open_database(&self.storage()).expect("the server's database opens");
        let hash = furrow_server::auth::hash_password(PASSWORD, PasswordCost::CHEAP_FOR_TESTS).expect("a hash");
        furrow_server::store::write(database.as_ref(), |tx| match tx.user_by_name(name)? {
            Some(_) => Ok(()),
            None => furrow_server::platform::add_admin(tx, name, &hash).map(|_| ()),
        })
        .expect("the admin's account");
        let answer: Value = self
            .admin
            .post(format!("{}/auth/v1/login", self.url))
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
        self.admin
            .post(format!("{}/admin/v1/listings/{listing_id}/moderation", self.url))
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
    /// any query answering one integer (a first column of one row) will do. The SQL runs on the server's backend, so it keeps to what SQLite and PostgreSQL share
    /// (a subquery in FROM has an alias, for example).
    pub fn query_count(&self, sql: &str) -> i64 {
        if let Some(database) = &self.database {
            let mut client = self.postgres_client.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if client.as_ref().is_none_or(postgres::Client::is_closed) {
                *client = Some(postgres::Client::connect(&database.url, postgres::NoTls).expect("the server's database answers"));
            }
            let client = client.as_mut().expect("a client");
            let row = client.query_one(sql, &[]).unwrap_or_else(|error| panic!("the query {sql} runs: {error}"));
            // count(*) and BIGINT columns are 64-bit; an INTEGER column or literal is 32-bit.
            return row
                .try_get::<_, i64>(0)
                .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
                .unwrap_or_else(|error| panic!("the query {sql} answers an integer: {error}"));
        }
        let connection = rusqlite::Connection::open_with_flags(
            furrow_server::sqlite_path(self.data_dir()),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
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
        // The test's own connection closes before its database is dropped.
        drop(self.postgres_client.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take());
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
    let database = furrow_server::sqlite_path(data_dir);
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
            if let Ok(mut client) = postgres::Client::connect(&maintenance_url, postgres::NoTls) {
                let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// Options for test devices: small pull pages so paging is exercised, and quick retries.
pub fn test_options() -> SyncOptions {
    SyncOptions {
        pull_limit: 200,
        retry: RetryPolicy { initial: Duration::from_millis(5), max: Duration::from_millis(40), max_attempts: Some(12) },
        ..SyncOptions::default()
    }
}

/// A device: a store in a file and the real sync engine.
pub struct Device {
    /// The store, as the desktop app holds it.
    pub store: Mutex<Store>,
    /// The engine.
    pub engine: SyncEngine,
    /// The store's file.
    pub path: PathBuf,
    /// The server the device talks to.
    pub url: String,
    dir: Option<tempfile::TempDir>,
}

impl Device {
    /// A new device with its store in a fresh temporary directory, syncing with `url`.
    pub fn new(url: &str) -> Device {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("furrow.db");
        let mut device = Device::open(&path, url);
        device.dir = Some(dir);
        device
    }

    /// A device whose store lives in memory: the same engine and the same SQLite, without the
    /// file, for the randomized test's many short-lived devices.
    /// Devices made from one transport share its connection pool (building an HTTP client
    /// costs more than a whole sync of a small world).
    pub fn in_memory(transport: &HttpTransport) -> Device {
        Device::in_memory_with(transport, test_options())
    }

    /// An in-memory device with other engine options (another pull page size, other batch
    /// limits).
    pub fn in_memory_with(transport: &HttpTransport, options: SyncOptions) -> Device {
        let store = Store::open_in_memory().expect("the device store opens");
        let url = transport.base_url().to_owned();
        let engine = SyncEngine::with_transport(Box::new(transport.clone()), &url, options);
        Device { store: Mutex::new(store), engine, path: PathBuf::new(), url, dir: None }
    }

    /// A device over an existing store file (a restart).
    pub fn open(path: &Path, url: &str) -> Device {
        let store = Store::open(&OpenOptions::file(path)).expect("the device store opens");
        let engine = SyncEngine::new(url).expect("an engine").with_options(test_options());
        Device { store: Mutex::new(store), engine, path: path.to_owned(), url: url.to_owned(), dir: None }
    }

    /// Closes the store and opens it again from its file, as after the app was restarted.
    pub fn restart(self) -> Device {
        let Device { store, engine, path, url, dir } = self;
        drop(engine);
        drop(store);
        let mut device = Device::open(&path, &url);
        device.dir = dir;
        device
    }

    /// The access token the device holds (for checks that call the server directly).
    pub fn access_token(&self) -> String {
        match self.store().state("access_token").expect("the state reads") {
            Some(rusqlite::types::Value::Text(token)) => token,
            other => panic!("no access token: {other:?}"),
        }
    }

    /// Signs in.
    pub fn login(&self, username: &str, password: &str) {
        self.engine.login(&self.store, username, password, "test laptop").expect("sign-in succeeds");
    }

    /// The store, locked.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One sync attempt.
    pub fn sync(&self) -> SyncResult<SyncReport> {
        self.engine.sync(&self.store, &|_| {})
    }

    /// Syncs until done, retrying failures.
    pub fn sync_until_idle(&self) -> SyncResult<SyncReport> {
        self.engine.run_until_idle(&self.store, &|_| {}, &std::sync::atomic::AtomicBool::new(false))
    }

    /// Saves through the one write path; returns the row id.
    pub fn save(&self, table: &'static TableSpec, id: Option<&str>, fields: Value) -> furrow::Result<String> {
        let Value::Object(map) = fields else { panic!("fields must be a JSON object") };
        self.store().write(|writer| writer.save(table, id, map)).map(|saved| saved.id)
    }

    /// Deletes through the one write path.
    pub fn delete(&self, table: &'static TableSpec, id: &str) -> furrow::Result<()> {
        self.store().write(|writer| writer.delete(table, id))
    }

    /// A field's value, or `None` when the row is not on the device.
    pub fn field(&self, table: &'static TableSpec, id: &str, field: &str) -> Option<Value> {
        sync::read_record(&self.store(), table.name, id).expect("the row reads").map(|row| match field {
            "deleted" => Value::Bool(row.deleted),
            "scope_id" => Value::String(row.scope_id),
            other => row.fields.get(other).cloned().unwrap_or(Value::Null),
        })
    }

    /// The canonical dump of the device's synced data.
    pub fn dump(&self) -> String {
        sync::canonical_dump(&self.store(), None).expect("the dump reads")
    }

    /// Changes queued or in flight.
    pub fn pending(&self) -> i64 {
        self.store().pending_changes().expect("the outbox reads")
    }
}

/// Household fields that pass the core's checks.
pub fn household_fields(village_id: &str, head: &str) -> Value {
    json!({ "village_id": village_id, "head_name": head, "attribute": "general", "poverty_status": "not_exited" })
}

/// Creates a product and a listing of it; returns the listing's id.
pub fn new_listing(device: &Device, village_id: &str, producer: Option<&str>) -> String {
    let product = device
        .save(&schema::PRODUCTS, None, json!({ "village_id": village_id, "name": "核桃", "category": "nuts", "producer_household_id": producer }))
        .expect("the product saves");
    device
        .save(
            &schema::LISTINGS,
            None,
            json!({ "product_id": product, "platform": "taobao", "title": "高山核桃 500g", "category": "nuts",
                    "price_fen": 3990, "unit": "jin", "status": "submitted" }),
        )
        .expect("the listing saves")
}

/// Decodes the sequence number of a pull cursor of this server (for the monotonic check).
pub fn cursor_seq(cursor: &str) -> Option<i64> {
    furrow_server::sync::Cursor::decode(cursor).ok().map(|cursor| cursor.seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_exists(name: &str) -> bool {
        let mut client = postgres::Client::connect(&postgres_url(), postgres::NoTls).expect("PostgreSQL answers");
        let count: i64 = client.query_one("SELECT count(*) FROM pg_database WHERE datname = $1", &[&name]).expect("the query runs").get(0);
        count == 1
    }

    #[test]
    fn a_postgres_test_server_keeps_its_data_in_a_fresh_database_dropped_when_it_stops() {
        let server = TestServer::start_on(Backend::Postgres);
        assert_eq!(server.backend(), Backend::Postgres);
        let url = server.database_url().expect("a database URL").to_owned();
        let name = url.rsplit('/').next().expect("a database name").to_owned();
        assert!(name.starts_with("furrow_sync_"), "{url}");
        assert!(database_exists(&name));
        assert_eq!(server.query_count("SELECT count(*) FROM villages"), 0, "the database starts empty");
        server.add_village("530102001001", "小河村");
        server.add_assistant("lihua", "li-password-1", &["530102001001"]);
        assert_eq!(server.query_count("SELECT count(*) FROM villages"), 1);
        assert_eq!(server.query_count("SELECT count(*) FROM users WHERE username = 'lihua'"), 1);
        assert!(!furrow_server::sqlite_path(server.data_dir()).exists(), "no SQLite database beside it");
        // What the operator commands write, given the same `--database-url`, the server serves.
        let operator = furrow_server::open_database(&server.storage()).expect("a second handle opens");
        let clock = furrow_server::platform::ServerClock::new();
        furrow_server::store::write(operator.as_ref(), |tx| furrow_server::platform::add_village(tx, &clock, "530102001002", "大山村").map(drop))
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
        assert!(furrow_server::sqlite_path(server.data_dir()).is_file());
        assert_eq!(server.query_count("SELECT count(*) FROM villages"), 1);
    }
}
