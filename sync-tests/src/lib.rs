//! The device side of the end-to-end sync tests: devices that are real device stores in files
//! driven by the real sync engine over HTTP, the world most tests start from, and a TCP proxy
//! that injects the faults of a slow link that drops. The server side is the one test harness of
//! `furrow_server::testing`: the real `furrow-server` started in-process on 127.0.0.1:0 over
//! either backend (a SQLite data directory, or a fresh PostgreSQL database of its own) and the
//! platform's admin calls.
//!
//! Tests that hold for both backends are written once as a function taking a [`Backend`] and
//! named for each backend with [`on_both_backends!`], so a failure names its backend.

pub mod proxy;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use furrow::schema::{self, TableSpec};
use furrow::sync::{self, HttpTransport, RetryPolicy, SyncEngine, SyncOptions, SyncReport, SyncResult};
use furrow::{OpenOptions, Store};
pub use furrow_server::on_both_backends;
pub use furrow_server::testing::{postgres_url, Backend, DatabaseCopy, TestServer, ADMIN_TOKEN};
use serde_json::{json, Value};

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

/// How long a test waits for something the server does on its own time (keep the part of a cut
/// chunk, say) before it calls the server stuck: far above what it takes on a slow machine.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Checks `condition` every few milliseconds until it answers `Some`, for at most `patience`;
/// `None` if it never did.
pub fn wait_for<T>(patience: Duration, mut condition: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        if let Some(found) = condition() {
            return Some(found);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
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

/// The village of the world most tests start from ([`OneVillage`]).
pub const V1: &str = "530102001001";
/// The assistant working in [`V1`].
pub const ASSISTANT: &str = "lihua";
/// Her password.
pub const ASSISTANT_PASSWORD: &str = "li-password-1";

/// The world most tests start from: a test server with one village, [`V1`] (小河村), and one
/// assistant, [`ASSISTANT`], working in it.
pub struct OneVillage {
    /// The server.
    pub server: TestServer,
    /// The village's row id.
    pub village: String,
}

impl OneVillage {
    /// Starts a server on `backend` and adds the village and the assistant.
    pub fn start(backend: Backend) -> OneVillage {
        let server = TestServer::start_on(backend);
        let village = server.add_village(V1, "小河村");
        server.add_assistant(ASSISTANT, ASSISTANT_PASSWORD, &[V1]);
        OneVillage { server, village }
    }
}

/// A new device syncing with `url` (a server's, or a proxy's in front of it), signed in as
/// [`ASSISTANT`].
pub fn signed_in(url: &str) -> Device {
    let device = Device::new(url);
    device.login(ASSISTANT, ASSISTANT_PASSWORD);
    device
}
