//! The engine's rules on in-memory stores, over a small in-memory server that follows the push
//! and pull algorithms of docs/sync.md section 4 and can inject the faults a slow link causes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use furrow_contract::merge::{decide, Rule, Verdict};
use serde_json::{json, Map, Value};

use super::error::TransportError;
use super::outbox::{self, BatchLimits};
use super::transport::{RequestMeta, Transport};
use super::wire::*;
use super::*;
use crate::hlc::{self, NodeId, Stamp};
use crate::schema;
use crate::sync::page::{page_fields, Positions};
use crate::store::Store;

/// A fault the fake server injects into the next request of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The connection drops before the server sees the request.
    DropBefore,
    /// The server commits, then the connection drops before the answer arrives.
    DropAfterCommit,
    /// The server answers with this status.
    Status(u16),
    /// The server answers with this status and error code.
    Coded(u16, &'static str),
}

#[derive(Default)]
struct Inner {
    fields: BTreeMap<(String, String, String), (Value, Stamp, i64)>,
    scopes: BTreeMap<(String, String), String>,
    seq: i64,
    batches: HashMap<(String, String), PushResponse>,
    /// The changes each stored batch answered, to refuse the same id with other changes.
    batch_changes: HashMap<(String, String), Vec<Change>>,
    /// Every batch applied, in order.
    pushed: Vec<PushRequest>,
    /// The batch id of every push request, in order, faults included.
    attempted: Vec<String>,
    clients: HashMap<String, i64>,
    applied_change_ids: HashMap<String, usize>,
    clock_skew_ms: i64,
    push_faults: VecDeque<Fault>,
    pull_faults: VecDeque<Fault>,
    access_token: String,
    refresh_token: String,
    refresh_works: bool,
    reset_next_pull: bool,
    push_requests: usize,
}

/// The fake server, shared by every device's transport.
#[derive(Clone, Default)]
struct FakeServer(Arc<Mutex<Inner>>);

impl FakeServer {
    fn new() -> Self {
        let server = FakeServer::default();
        {
            let mut inner = server.0.lock().unwrap();
            inner.access_token = "access-1".into();
            inner.refresh_token = "refresh-1".into();
            inner.refresh_works = true;
        }
        server
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap()
    }

    fn now(&self) -> i64 {
        hlc::wall_ms() + self.inner().clock_skew_ms
    }

    /// A write by the platform (moderator) straight into the server's data.
    fn platform_write(&self, tbl: &str, row_id: &str, field: &str, value: Value) {
        let mut inner = self.inner();
        inner.seq += 1;
        let seq = inner.seq;
        let stamp = Stamp { hlc: hlc::pack(hlc::wall_ms(), 0), node: NodeId([0xEE; 16]) };
        inner.fields.insert((tbl.into(), row_id.into(), field.into()), (value, stamp, seq));
    }

    fn value(&self, tbl: &str, row_id: &str, field: &str) -> Option<Value> {
        self.inner().fields.get(&(tbl.into(), row_id.into(), field.into())).map(|(value, _, _)| value.clone())
    }

    fn status(status: u16, code: &str, server_time: Option<i64>) -> TransportError {
        let body = ErrorBody { error: code.into(), message: code.into(), server_time, last_applied_seq: None };
        TransportError::Status { status, text: serde_json::to_string(&body).unwrap(), body: Some(body) }
    }

    fn dropped() -> TransportError {
        TransportError::Network("connection reset".into())
    }

    fn check_token(&self, meta: &RequestMeta) -> Result<(), TransportError> {
        if meta.access_token != self.inner().access_token {
            return Err(Self::status(401, "unauthorized", None));
        }
        Ok(())
    }

    fn apply_push(&self, request: &PushRequest) -> Result<PushResponse, TransportError> {
        let now = self.now();
        let mut inner = self.inner();
        let key = (request.client_id.clone(), request.batch_id.clone());
        if let Some(stored) = inner.batches.get(&key) {
            if inner.batch_changes.get(&key) != Some(&request.changes) {
                return Err(Self::status(422, "idempotency_key_reused", None));
            }
            return Ok(stored.clone());
        }
        if request.changes.iter().any(|change| hlc::physical_ms(change.hlc) > now + 10 * 60 * 1000) {
            return Err(Self::status(409, "clock_ahead", Some(now)));
        }
        let node = NodeId::from_client_id(&request.client_id).unwrap();
        let mut last = *inner.clients.get(&request.client_id).unwrap_or(&0);
        // A change the server does not hold under a sequence number it already applied.
        let reused = request.changes.iter().take_while(|change| change.seq <= last).any(|change| {
            let stored = inner.fields.get(&(change.tbl.clone(), change.row_id.clone(), change.field.clone()));
            let held = stored.is_some_and(|stored| stored.1 >= Stamp { hlc: change.hlc, node });
            !held && !inner.applied_change_ids.contains_key(&change.change_id)
        });
        if reused {
            let body = ErrorBody { error: "seq_reused".into(), message: "seq reused".into(), server_time: None, last_applied_seq: Some(last) };
            return Err(TransportError::Status { status: 409, text: serde_json::to_string(&body).unwrap(), body: Some(body) });
        }
        let mut results = Vec::new();
        for change in &request.changes {
            let key = (change.tbl.clone(), change.row_id.clone(), change.field.clone());
            let stamp = Stamp { hlc: change.hlc, node };
            let stored = inner.fields.get(&key).cloned();
            let current = |stored: &(Value, Stamp, i64)| CurrentValue {
                value: stored.0.clone(),
                hlc: stored.1.hlc,
                node: Some(stored.1.node.to_base64()),
                actor: Some("platform".into()),
            };
            let mut result =
                ChangeResult { change_id: change.change_id.clone(), status: "applied".into(), reason: None, message: None, current: None };
            if change.seq <= last {
                results.push(result);
                continue;
            }
            let rule = schema::table(&change.tbl).map_or(Rule::LastWriterWins, |table| Rule::of(table, &change.field));
            let verdict = decide(stored.as_ref().map(|stored| stored.1), stamp, rule, change.base_hlc);
            result.status = verdict.status().into();
            result.reason = verdict.reason().map(Into::into);
            match verdict {
                Verdict::Apply => {
                    inner.seq += 1;
                    let seq = inner.seq;
                    inner.fields.insert(key.clone(), (change.value.clone(), stamp, seq));
                    if change.field == "scope_id" {
                        inner.scopes.insert((change.tbl.clone(), change.row_id.clone()), change.value.as_str().unwrap_or_default().into());
                    }
                    *inner.applied_change_ids.entry(change.change_id.clone()).or_default() += 1;
                }
                // Re-delivery of a change already applied.
                Verdict::AlreadyApplied => {}
                _ => result.current = stored.as_ref().map(current),
            }
            results.push(result);
            last = last.max(change.seq);
        }
        inner.clients.insert(request.client_id.clone(), last);
        let response = PushResponse { batch_id: request.batch_id.clone(), last_applied_seq: last, server_time: now, results };
        inner.batches.insert(key.clone(), response.clone());
        inner.batch_changes.insert(key, request.changes.clone());
        inner.pushed.push(request.clone());
        Ok(response)
    }

    fn page(&self, cursor: Option<&str>, limit: usize) -> PullResponse {
        let now = self.now();
        let mut inner = self.inner();
        let reset = std::mem::take(&mut inner.reset_next_pull);
        // The cursor is `REACHED:COMPLETE`, the two positions of a pull (sync::page).
        let start = match cursor.and_then(|cursor| cursor.split_once(':')).filter(|_| !reset) {
            Some((reached, complete)) => Positions { reached: reached.parse().unwrap(), complete: complete.parse().unwrap() },
            None => Positions::SNAPSHOT,
        };
        let mut rows: BTreeMap<(String, String), (i64, Vec<(String, i64, PulledField)>)> = BTreeMap::new();
        for ((tbl, id, field), (value, stamp, seq)) in &inner.fields {
            let node = stamp.node.to_base64();
            let entry = rows.entry((tbl.clone(), id.clone())).or_default();
            entry.0 = entry.0.max(*seq);
            entry.1.push((field.clone(), *seq, (value.clone(), stamp.hlc, node)));
        }
        let mut ordered: Vec<_> = rows.into_iter().filter(|(_, (sv, _))| *sv > start.reached).collect();
        ordered.sort_by_key(|(_, (sv, _))| *sv);
        let has_more = ordered.len() > limit;
        ordered.truncate(limit);
        let next = start.after_page(ordered.last().map(|(_, (sv, _))| *sv), has_more);
        let cursor = format!("{}:{}", next.reached, next.complete);
        let rows = ordered
            .into_iter()
            .map(|((tbl, id), (sv, fields))| PulledRow {
                scope_id: inner.scopes.get(&(tbl.clone(), id.clone())).cloned().unwrap_or_default(),
                tbl,
                id,
                sv,
                fields: page_fields(fields, start.complete).into_iter().collect(),
            })
            .collect();
        PullResponse {
            cursor,
            has_more,
            server_time: now,
            reset: reset.then(|| Reset { reason: "history_pruned".into() }),
            rows,
        }
    }
}

impl Transport for FakeServer {
    fn login(&self, request: &LoginRequest, _meta: &RequestMeta) -> Result<TokenResponse, TransportError> {
        if request.password != "secret" {
            return Err(Self::status(401, "unauthorized", None));
        }
        let inner = self.inner();
        Ok(TokenResponse {
            access_token: inner.access_token.clone(),
            expires_at: hlc::wall_ms() + 3_600_000,
            refresh_token: inner.refresh_token.clone(),
            assistant_id: "7".into(),
            scopes: vec!["530102001001".into(), "530102001002".into()],
        })
    }

    fn refresh(&self, request: &RefreshRequest, _meta: &RequestMeta) -> Result<TokenResponse, TransportError> {
        let mut inner = self.inner();
        if !inner.refresh_works || request.refresh_token != inner.refresh_token {
            return Err(Self::status(401, "unauthorized", None));
        }
        inner.access_token = format!("{}+", inner.access_token);
        Ok(TokenResponse {
            access_token: inner.access_token.clone(),
            expires_at: hlc::wall_ms() + 3_600_000,
            refresh_token: inner.refresh_token.clone(),
            assistant_id: "7".into(),
            scopes: vec!["530102001001".into(), "530102001002".into()],
        })
    }

    fn logout(&self, _request: &RefreshRequest, _meta: &RequestMeta) -> Result<(), TransportError> {
        Ok(())
    }

    fn push(&self, request: &PushRequest, meta: &RequestMeta) -> Result<PushResponse, TransportError> {
        self.inner().push_requests += 1;
        self.inner().attempted.push(request.batch_id.clone());
        let fault = self.inner().push_faults.pop_front();
        match fault {
            Some(Fault::DropBefore) => return Err(Self::dropped()),
            Some(Fault::Status(status)) => return Err(Self::status(status, "injected", None)),
            Some(Fault::Coded(status, code)) => return Err(Self::status(status, code, None)),
            _ => {}
        }
        self.check_token(meta)?;
        let response = self.apply_push(request)?;
        if fault == Some(Fault::DropAfterCommit) {
            return Err(Self::dropped());
        }
        Ok(response)
    }

    fn pull(&self, cursor: Option<&str>, limit: usize, meta: &RequestMeta) -> Result<PullResponse, TransportError> {
        let fault = self.inner().pull_faults.pop_front();
        match fault {
            Some(Fault::DropBefore) | Some(Fault::DropAfterCommit) => return Err(Self::dropped()),
            Some(Fault::Status(status)) | Some(Fault::Coded(status, _)) => return Err(Self::status(status, "injected", None)),
            None => {}
        }
        self.check_token(meta)?;
        Ok(self.page(cursor, limit))
    }

    fn blob_exists(&self, _sha256: &str, _meta: &RequestMeta) -> Result<bool, TransportError> {
        Ok(false)
    }

    fn start_upload(&self, _sha256: &str, _size: u64, _mime: &str, _meta: &RequestMeta) -> Result<String, TransportError> {
        Err(Self::status(404, "not_found", None))
    }

    fn upload_offset(&self, _location: &str, _meta: &RequestMeta) -> Result<u64, TransportError> {
        Err(Self::status(404, "not_found", None))
    }

    fn upload_chunk(&self, _location: &str, _offset: u64, _chunk: &[u8], _meta: &RequestMeta) -> Result<u64, TransportError> {
        Err(Self::status(404, "not_found", None))
    }

    fn download_blob(&self, _sha256: &str, _offset: u64, _sink: &mut dyn std::io::Write, _meta: &RequestMeta) -> Result<u64, TransportError> {
        Err(Self::status(404, "not_found", None))
    }
}

const VILLAGE: &str = "530102001001";

/// Lets the wall clock move on, so that the next edit is later than the last one everywhere (two
/// edits in the same millisecond on different devices are ordered by node id, not by time).
fn later() {
    std::thread::sleep(Duration::from_millis(3));
}

fn options() -> SyncOptions {
    SyncOptions {
        pull_limit: 50,
        batch_limits: BatchLimits::default(),
        retry: RetryPolicy { initial: Duration::from_millis(1), max: Duration::from_millis(5), max_attempts: Some(10) },
        max_rounds: 5,
        chunks: crate::sync::blobs::ChunkSizes::default(),
    }
}

struct Device {
    store: Mutex<Store>,
    engine: SyncEngine,
}

impl Device {
    fn new(server: &FakeServer) -> Self {
        let device = Device {
            store: Mutex::new(Store::open_in_memory().unwrap()),
            engine: SyncEngine::with_transport(Box::new(server.clone()), "http://fake", options()),
        };
        device.engine.login(&device.store, "li", "secret", "laptop").unwrap();
        device
    }

    /// A device whose batches hold at most `max_changes` changes.
    fn with_batches_of(server: &FakeServer, max_changes: usize) -> Self {
        let mut device = Device::new(server);
        let options = SyncOptions { batch_limits: BatchLimits { max_changes, ..BatchLimits::default() }, ..options() };
        device.engine = SyncEngine::with_transport(Box::new(server.clone()), "http://fake", options);
        device
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap()
    }

    fn sync(&self) -> SyncResult<SyncReport> {
        self.engine.sync(&self.store, &|_| {})
    }

    fn save(&self, table: &'static schema::TableSpec, id: Option<&str>, fields: Value) -> String {
        let Value::Object(map) = fields else { panic!("fields must be an object") };
        self.store().write(|writer| writer.save(table, id, map)).unwrap().id
    }

    fn field(&self, table: &'static schema::TableSpec, id: &str, field: &str) -> Value {
        let store = self.store();
        crate::record::read_row(&store.conn, table, id).unwrap().unwrap().fields[field].clone()
    }

    fn dump(&self) -> String {
        canonical_dump(&self.store(), None).unwrap()
    }

    fn pending(&self) -> i64 {
        self.store().pending_changes().unwrap()
    }
}

fn village(device: &Device) -> String {
    device.save(&schema::VILLAGES, None, json!({ "code": VILLAGE, "name": "小河村" }))
}

fn household(device: &Device, village_id: &str, head: &str) -> String {
    device.save(
        &schema::HOUSEHOLDS,
        None,
        json!({ "village_id": village_id, "head_name": head, "attribute": "general", "poverty_status": "not_exited" }),
    )
}

fn listing(device: &Device, village_id: &str) -> String {
    let product = device.save(&schema::PRODUCTS, None, json!({ "village_id": village_id, "name": "核桃", "category": "nuts" }));
    device.save(
        &schema::LISTINGS,
        None,
        json!({ "product_id": product, "platform": "taobao", "title": "高山核桃 500g", "category": "nuts",
                "price_fen": 3990, "unit": "jin", "status": "draft" }),
    )
}

#[test]
fn batches_take_at_most_the_limit_in_seq_order_and_a_retry_resends_the_same_batch() {
    let server = FakeServer::new();
    let device = Device::new(&server);
    let village_id = village(&device);
    for index in 0..300 {
        household(&device, &village_id, &format!("户主{index}"));
    }
    let total = device.pending();
    assert!(total > 1000, "{total} changes queued");
    let limits = BatchLimits::default();
    let mut store = device.store();
    let first = outbox::next_batch(&mut store.conn, limits).unwrap().unwrap();
    // At most the limit, and never ending among one row's changes: the server checks rows whole.
    assert!((490..=500).contains(&first.entries.len()), "{}", first.entries.len());
    let last = first.entries.last().unwrap();
    let next_row: String = store
        .conn
        .query_row("SELECT row_id FROM sync_outbox WHERE batch_id IS NULL ORDER BY seq LIMIT 1", [], |row| row.get(0))
        .unwrap();
    assert_ne!(next_row, last.row_id, "the batch ends with a whole row");
    assert!(!first.resent);
    assert!(first.entries.windows(2).all(|pair| pair[0].seq < pair[1].seq));
    // Until answered, the same batch comes back: same id, same rows.
    let again = outbox::next_batch(&mut store.conn, limits).unwrap().unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.entries, first.entries);
    assert!(again.resent);
    // An edit of a field in flight is queued as a new change; the frozen one is untouched.
    let frozen = first.entries.iter().find(|entry| entry.field == "head_name").unwrap().clone();
    drop(store);
    device.save(&schema::HOUSEHOLDS, Some(&frozen.row_id), json!({ "head_name": "改过的名字" }));
    let store = device.store();
    let in_flight: String = store
        .conn
        .query_row("SELECT value FROM sync_outbox WHERE seq = ?1", [frozen.seq], |row| row.get(0))
        .unwrap();
    assert_eq!(in_flight, frozen.value.to_string());
    let queued: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM sync_outbox WHERE row_id = ?1 AND field = 'head_name' AND batch_id IS NULL",
            [&frozen.row_id],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(queued, 1);
}

#[test]
fn a_large_value_limits_the_batch_by_bytes() {
    let server = FakeServer::new();
    let device = Device::new(&server);
    let village_id = village(&device);
    for index in 0..40 {
        let id = household(&device, &village_id, &format!("户主{index}"));
        device.save(&schema::HOUSEHOLDS, Some(&id), json!({ "notes": "很长的备注".repeat(380) }));
    }
    let mut store = device.store();
    let batch = outbox::next_batch(&mut store.conn, BatchLimits::default()).unwrap().unwrap();
    let bytes = serde_json::to_vec(&batch.request("x")).unwrap().len();
    assert!(bytes <= MAX_BATCH_BYTES, "{bytes} bytes");
    assert!(batch.entries.len() < 500);
}

#[test]
fn two_devices_converge_through_the_server() {
    let server = FakeServer::new();
    let first = Device::new(&server);
    let second = Device::new(&server);
    let village_id = village(&first);
    let household_id = household(&first, &village_id, "张三");
    first.sync().unwrap();
    second.sync().unwrap();
    assert_eq!(second.field(&schema::HOUSEHOLDS, &household_id, "head_name"), json!("张三"));
    // Concurrent edits of different fields both survive; of the same field the later one wins.
    first.save(&schema::HOUSEHOLDS, Some(&household_id), json!({ "phone": "13800000001", "group_name": "一组" }));
    later();
    second.save(&schema::HOUSEHOLDS, Some(&household_id), json!({ "group_name": "二组", "notes": "新房" }));
    second.sync().unwrap();
    first.sync().unwrap();
    second.sync().unwrap();
    assert_eq!(first.dump(), second.dump());
    assert_eq!(first.field(&schema::HOUSEHOLDS, &household_id, "phone"), json!("13800000001"));
    assert_eq!(first.field(&schema::HOUSEHOLDS, &household_id, "group_name"), json!("二组"));
    assert_eq!(first.field(&schema::HOUSEHOLDS, &household_id, "notes"), json!("新房"));
    assert_eq!(first.pending() + second.pending(), 0);
    // The first device's own change that lost is shown as superseded.
    let state = record_state(&first.store(), "households", &household_id).unwrap();
    let group = state.fields.iter().find(|field| field.field == "group_name").unwrap();
    assert_eq!(group.state, SyncState::Superseded);
}

#[test]
fn a_response_lost_after_the_server_committed_is_recovered_by_resending_the_same_batch() {
    let server = FakeServer::new();
    let device = Device::new(&server);
    let village_id = village(&device);
    household(&device, &village_id, "王五");
    server.inner().push_faults.push_back(Fault::DropAfterCommit);
    let error = device.sync().unwrap_err();
    assert!(error.is_retryable());
    assert!(device.pending() > 0, "nothing is removed from the outbox without an answer");
    let report = device.sync().unwrap();
    assert_eq!(report.batches_resent, 1);
    assert_eq!(device.pending(), 0);
    assert!(server.inner().applied_change_ids.values().all(|count| *count == 1), "no change applied twice");
}

#[test]
fn drops_before_the_request_and_on_pull_are_retried_on_the_engines_own_timer() {
    let server = FakeServer::new();
    let device = Device::new(&server);
    let village_id = village(&device);
    household(&device, &village_id, "赵六");
    {
        let mut inner = server.inner();
        inner.push_faults.extend([Fault::DropBefore, Fault::Status(503), Fault::DropAfterCommit]);
        inner.pull_faults.extend([Fault::DropBefore, Fault::Status(502)]);
    }
    let events = Mutex::new(Vec::new());
    let report = device
        .engine
        .run_until_idle(&device.store, &|event| events.lock().unwrap().push(event.clone()), &AtomicBool::new(false))
        .unwrap();
    assert_eq!(report.retries, 5);
    assert_eq!(device.pending(), 0);
    let retrying = events.lock().unwrap().iter().filter(|event| matches!(event, Progress::Retrying { .. })).count();
    assert_eq!(retrying, 5);
    assert!(matches!(events.lock().unwrap().last(), Some(Progress::Finished(_))));
}

#[test]
fn a_stale_price_is_rejected_shown_reverted_and_can_be_kept_on_purpose() {
    let server = FakeServer::new();
    let device = Device::new(&server);
    let village_id = village(&device);
    let listing_id = listing(&device, &village_id);
    device.sync().unwrap();
    // A moderator changes the price on the platform; the assistant, offline, changes it too.
    server.platform_write("listings", &listing_id, "price_fen", json!(3500));
    later();
    device.save(&schema::LISTINGS, Some(&listing_id), json!({ "price_fen": 4200 }));
    let report = device.sync().unwrap();
    assert_eq!(report.rejected, 1);
    assert_eq!(device.field(&schema::LISTINGS, &listing_id, "price_fen"), json!(3500), "the server's price is shown");
    let state = record_state(&device.store(), "listings", &listing_id).unwrap();
    assert_eq!(state.state, SyncState::Rejected);
    assert_eq!(state.fields.iter().find(|field| field.field == "price_fen").unwrap().reason.as_deref(), Some("stale_base"));
    let open = conflicts(&device.store(), false).unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].local_value, json!(4200));
    assert_eq!(open[0].remote_value, Some(json!(3500)));
    assert_eq!(open[0].reason.as_deref(), Some("stale_base"));
    // Keeping mine is a new edit from the server's version, so it is accepted.
    resolve_conflict(&mut device.store(), open[0].id, Resolution::KeepMine).unwrap();
    assert!(conflicts(&device.store(), false).unwrap().is_empty());
    device.sync().unwrap();
    assert_eq!(server.value("listings", &listing_id, "price_fen"), Some(json!(4200)));
    assert_eq!(record_state(&device.store(), "listings", &listing_id).unwrap().state, SyncState::Accepted);
}

#[test]
fn keep_theirs_only_marks_the_conflict_resolved() {
    let server = FakeServer::new();
    let device = Device::new(&server);
    let village_id = village(&device);
    let listing_id = listing(&device, &village_id);
    device.sync().unwrap();
    server.platform_write("listings", &listing_id, "price_fen", json!(3000));
    later();
    device.save(&schema::LISTINGS, Some(&listing_id), json!({ "price_fen": 4000 }));
    device.sync().unwrap();
    let open = conflicts(&device.store(), false).unwrap();
    resolve_conflict(&mut device.store(), open[0].id, Resolution::KeepTheirs).unwrap();
    assert_eq!(device.pending(), 0);
    assert!(conflicts(&device.store(), false).unwrap().is_empty());
    assert_eq!(conflicts(&device.store(), true).unwrap().len(), 1);
    assert_eq!(device.field(&schema::LISTINGS, &listing_id, "price_fen"), json!(3000));
}

#[test]
fn a_clock_days_ahead_is_corrected_and_unsent_changes_are_restamped() {
    let server = FakeServer::new();
    let device = Device::new(&server);
    // The laptop's clock is three days fast.
    device.store().clock.offset_ms = 3 * 24 * 3600 * 1000;
    let village_id = village(&device);
    let household_id = household(&device, &village_id, "钱七");
    device.save(&schema::HOUSEHOLDS, Some(&household_id), json!({ "head_name": "钱七七" }));
    let report = device.sync().unwrap();
    assert_eq!(report.clock_corrections, 1);
    assert_eq!(device.pending(), 0);
    let bound = hlc::pack(server.now() + 10 * 60 * 1000, 0);
    assert!(server.inner().fields.values().all(|(_, stamp, _)| stamp.hlc < bound), "no accepted HLC beyond the skew bound");
    assert_eq!(server.value("households", &household_id, "head_name"), Some(json!("钱七七")));
    // Local clocks were re-stamped to the server's stamps: the device and a fresh copy agree.
    let fresh = Device::new(&server);
    fresh.sync().unwrap();
    assert_eq!(fresh.dump(), device.dump());
    // The correction is kept for offline work.
    assert!(device.store().clock.offset_ms.abs() < 60_000);
    assert!(hlc::physical_ms(device.store().clock.tick(hlc::wall_ms())) < server.now() + 60_000);
}

#[test]
fn an_expired_session_is_renewed_once_and_otherwise_asks_to_sign_in_again_keeping_everything() {
    let server = FakeServer::new();
    let device = Device::new(&server);
    let village_id = village(&device);
    household(&device, &village_id, "孙八");
    // The server rotated the access token: one renewal fixes it.
    server.inner().access_token = "access-2".into();
    device.sync().unwrap();
    assert_eq!(device.pending(), 0);
    // Now the refresh token is revoked too.
    household(&device, &village_id, "周九");
    let queued = device.pending();
    {
        let mut inner = server.inner();
        inner.access_token = "access-3".into();
        inner.refresh_works = false;
    }
    let error = device.sync().unwrap_err();
    assert!(matches!(error, SyncError::SignInRequired(_)), "{error:?}");
    assert!(!error.is_retryable());
    assert_eq!(device.pending(), queued, "nothing discarded");
    let summary = summary(&device.store()).unwrap();
    assert_eq!(summary.account.unwrap().assistant_id, "7", "the account is still known offline");
    // Signing in again resumes with the same outbox.
    server.inner().refresh_works = true;
    device.engine.login(&device.store, "li", "secret", "laptop").unwrap();
    device.sync().unwrap();
    assert_eq!(device.pending(), 0);
}

#[test]
fn wrong_credentials_are_told_apart_from_a_dead_link() {
    let server = FakeServer::new();
    let store = Mutex::new(Store::open_in_memory().unwrap());
    let engine = SyncEngine::with_transport(Box::new(server), "http://fake", options());
    let error = engine.login(&store, "li", "wrong", "laptop").unwrap_err();
    assert_eq!(error.code(), "wrong_credentials");
    assert_eq!(engine.sync(&store, &|_| {}).unwrap_err().code(), "not_signed_in");
}

#[test]
fn an_old_app_keeps_its_outbox_and_is_told_to_update() {
    let server = FakeServer::new();
    let device = Device::new(&server);
    let village_id = village(&device);
    household(&device, &village_id, "吴十");
    let queued = device.pending();
    server.inner().push_faults.push_back(Fault::Status(426));
    let error = device.sync().unwrap_err();
    assert_eq!(error.code(), "update_required");
    assert_eq!(device.pending(), queued);
}

#[test]
fn a_reset_resnapshots_and_keeps_the_outbox() {
    let server = FakeServer::new();
    let first = Device::new(&server);
    let village_id = village(&first);
    household(&first, &village_id, "郑一");
    first.sync().unwrap();
    let local = household(&first, &village_id, "郑二");
    server.inner().reset_next_pull = true;
    // The outbox is pushed before the pull, so make the reset meet an unsent edit: queue one
    // after the push by failing the push with a drop.
    let report = first.sync().unwrap();
    assert_eq!(report.resets, 1);
    assert_eq!(first.pending(), 0);
    assert!(server.value("households", &local, "head_name").is_some());
    let fresh = Device::new(&server);
    fresh.sync().unwrap();
    assert_eq!(fresh.dump(), first.dump());
}

#[test]
fn a_row_purged_on_the_server_while_away_is_dropped_when_the_fresh_snapshot_ends() {
    let server = FakeServer::new();
    let writer = Device::new(&server);
    let village_id = village(&writer);
    let kept = household(&writer, &village_id, "褚一");
    let purged = household(&writer, &village_id, "褚二");
    writer.sync().unwrap();
    let laptop = Device::new(&server);
    laptop.sync().unwrap();
    let unsent = household(&laptop, &village_id, "褚三");
    assert!(laptop.store().conn.query_row("SELECT count(*) FROM households", [], |row| row.get::<_, i64>(0)).unwrap() == 3);

    // The server purged the second household's history; its fresh snapshot comes in two pages
    // without it.
    let mut snapshot = server.page(None, 1000);
    snapshot.rows.retain(|row| row.id != purged);
    snapshot.reset = Some(crate::sync::wire::Reset { reason: "history_pruned".into() });
    let mut first = snapshot.clone();
    let second_rows = first.rows.split_off(1);
    first.has_more = true;
    first.cursor = format!("{}:0", first.rows[0].sv);
    let second = crate::sync::wire::PullResponse { reset: None, rows: second_rows, ..snapshot };

    let outcome = pull::apply_page(&mut laptop.store(), &first, None).unwrap();
    assert_eq!(outcome.rows_dropped, 0, "nothing is dropped before the snapshot ends");
    assert_eq!(laptop.field(&schema::HOUSEHOLDS, &purged, "head_name"), json!("褚二"));
    let outcome = pull::apply_page(&mut laptop.store(), &second, None).unwrap();
    assert_eq!(outcome.rows_dropped, 1);
    let left: Vec<String> = {
        let store = laptop.store();
        let mut statement = store.conn.prepare("SELECT id FROM households ORDER BY id").unwrap();
        let ids = statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
        ids
    };
    let mut expected = vec![kept.clone(), unsent.clone()];
    expected.sort();
    assert_eq!(left, expected, "the purged household is gone; the unsynced one is kept");
    let clocks: i64 = laptop
        .store()
        .conn
        .query_row("SELECT count(*) FROM sync_field_clock WHERE row_id = ?1", [&purged], |row| row.get(0))
        .unwrap();
    assert_eq!(clocks, 0, "with its field clocks");
    let found = crate::domain::household::search(
        &laptop.store(),
        &crate::domain::household::RosterQuery { text: Some("褚二".into()), ..Default::default() },
    )
    .unwrap();
    assert!(found.is_empty(), "and it is no longer found");
    assert!(laptop.pending() > 0, "the unsynced household is still queued");
    laptop.sync().unwrap();
    assert!(server.value("households", &unsent, "head_name").is_some());
}

#[test]
fn a_page_is_applied_with_its_cursor_and_replaying_it_changes_nothing() {
    let server = FakeServer::new();
    let writer = Device::new(&server);
    let village_id = village(&writer);
    for index in 0..120 {
        household(&writer, &village_id, &format!("户{index}"));
    }
    writer.sync().unwrap();
    let reader = Device::new(&server);
    let page = server.page(None, 50);
    assert!(page.has_more);
    pull::apply_page(&mut reader.store(), &page, None).unwrap();
    let after_once = reader.dump();
    assert_eq!(pull::cursor(&reader.store()).unwrap(), Some(page.cursor.clone()));
    pull::apply_page(&mut reader.store(), &page, None).unwrap();
    assert_eq!(reader.dump(), after_once);
    reader.sync().unwrap();
    assert_eq!(reader.dump(), writer.dump());
}

#[test]
fn a_pending_local_edit_is_not_overwritten_by_an_older_server_value() {
    let server = FakeServer::new();
    let first = Device::new(&server);
    let second = Device::new(&server);
    let village_id = village(&first);
    let household_id = household(&first, &village_id, "冯一");
    first.sync().unwrap();
    second.sync().unwrap();
    // The first device's edit is older than the second device's, which is still unsent.
    first.save(&schema::HOUSEHOLDS, Some(&household_id), json!({ "notes": "旧" }));
    later();
    second.save(&schema::HOUSEHOLDS, Some(&household_id), json!({ "notes": "新" }));
    first.sync().unwrap();
    let page = server.page(pull::cursor(&second.store()).unwrap().as_deref(), 100);
    pull::apply_page(&mut second.store(), &page, None).unwrap();
    assert_eq!(second.field(&schema::HOUSEHOLDS, &household_id, "notes"), json!("新"));
    second.sync().unwrap();
    first.sync().unwrap();
    assert_eq!(first.field(&schema::HOUSEHOLDS, &household_id, "notes"), json!("新"));
    assert_eq!(first.dump(), second.dump());
}

#[test]
fn deletes_stay_deleted_everywhere() {
    let server = FakeServer::new();
    let first = Device::new(&server);
    let second = Device::new(&server);
    let village_id = village(&first);
    let household_id = household(&first, &village_id, "陈一");
    first.sync().unwrap();
    second.sync().unwrap();
    first.store().write(|writer| writer.delete(&schema::HOUSEHOLDS, &household_id)).unwrap();
    // An edit made elsewhere before the delete arrives does not bring the row back.
    second.save(&schema::HOUSEHOLDS, Some(&household_id), json!({ "notes": "走访过" }));
    first.sync().unwrap();
    second.sync().unwrap();
    first.sync().unwrap();
    assert_eq!(first.dump(), second.dump());
    let deleted: bool = second
        .store()
        .conn
        .query_row("SELECT deleted FROM households WHERE id = ?1", [&household_id], |row| row.get(0))
        .unwrap();
    assert!(deleted);
}

#[test]
fn progress_is_reported_through_the_callback() {
    let server = FakeServer::new();
    let device = Device::new(&server);
    let village_id = village(&device);
    household(&device, &village_id, "褚一");
    let events = Mutex::new(Vec::new());
    device.engine.sync(&device.store, &|event| events.lock().unwrap().push(event.clone())).unwrap();
    let events = events.into_inner().unwrap();
    assert_eq!(events.first(), Some(&Progress::Started));
    assert!(events.iter().any(|event| matches!(event, Progress::Pushing { resent: false, .. })));
    assert!(events.iter().any(|event| matches!(event, Progress::Pushed { applied, .. } if *applied > 0)));
    assert!(events.iter().any(|event| matches!(event, Progress::Pulled { has_more: false, .. })));
    assert!(matches!(events.last(), Some(Progress::Finished(report)) if report.applied > 0));
    let json = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(json, json!({ "stage": "started" }));
}

#[test]
fn the_background_thread_syncs_on_its_own_timer() {
    let server = FakeServer::new();
    let device = Device::new(&server);
    let village_id = village(&device);
    household(&device, &village_id, "卫一");
    server.inner().push_faults.extend([Fault::DropBefore, Fault::DropBefore]);
    let Device { store, engine } = device;
    let store = Arc::new(store);
    let (sender, receiver) = std::sync::mpsc::channel();
    let background = BackgroundSync::start(Arc::new(engine), Arc::clone(&store), Duration::from_secs(3600), move |event| {
        let _ = sender.send(event.clone());
    });
    // No sync_now and no new edit: the first run and the retries happen by themselves.
    let finished = receiver
        .iter()
        .find(|event| matches!(event, Progress::Finished(_)))
        .expect("a sync finished");
    assert!(matches!(finished, Progress::Finished(report) if report.applied > 0));
    background.stop();
    assert_eq!(store.lock().unwrap().pending_changes().unwrap(), 0);
}

#[test]
fn a_too_large_batch_is_split_and_nothing_is_lost() {
    let server = FakeServer::new();
    let device = Device::new(&server);
    let village_id = village(&device);
    for index in 0..30 {
        household(&device, &village_id, &format!("户{index}"));
    }
    server.inner().push_faults.extend([Fault::Status(413), Fault::Status(413)]);
    device.sync().unwrap();
    assert_eq!(device.pending(), 0);
    let fresh = Device::new(&server);
    fresh.sync().unwrap();
    assert_eq!(fresh.dump(), device.dump());
}

#[test]
fn the_merge_of_pulled_pages_is_order_independent() {
    // Three devices edit the same fields; whatever order they sync in, all end equal.
    for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2]] {
        let server = FakeServer::new();
        let devices: Vec<Device> = (0..3).map(|_| Device::new(&server)).collect();
        let village_id = village(&devices[0]);
        let household_id = household(&devices[0], &village_id, "蒋一");
        devices[0].sync().unwrap();
        for device in &devices {
            device.sync().unwrap();
        }
        for (index, device) in devices.iter().enumerate() {
            device.save(&schema::HOUSEHOLDS, Some(&household_id), json!({ "notes": format!("设备{index}"), "group_name": format!("{index}组") }));
            later();
        }
        for index in order {
            devices[index].sync().unwrap();
        }
        for device in &devices {
            device.sync().unwrap();
        }
        let dumps: Vec<String> = devices.iter().map(Device::dump).collect();
        assert!(dumps.windows(2).all(|pair| pair[0] == pair[1]), "order {order:?}");
        assert_eq!(devices[0].field(&schema::HOUSEHOLDS, &household_id, "notes"), json!("设备2"));
    }
}

#[test]
fn a_change_to_a_server_only_field_is_never_queued() {
    let server = FakeServer::new();
    let device = Device::new(&server);
    let village_id = village(&device);
    let listing_id = listing(&device, &village_id);
    let mut changes = Map::new();
    changes.insert("sold_out".into(), json!(true));
    let error = device.store().write(|writer| writer.save(&schema::LISTINGS, Some(&listing_id), changes)).unwrap_err();
    assert_eq!(error.code(), "validation");
}

#[test]
fn a_row_moved_to_another_village_before_its_first_sync_sends_its_scope_first() {
    let server = FakeServer::new();
    let device = Device::new(&server);
    let first = village(&device);
    let second = device.save(&schema::VILLAGES, None, json!({ "code": "530102001002", "name": "大山村" }));
    let household = household(&device, &first, "韩一");
    device.save(&schema::HOUSEHOLDS, Some(&household), json!({ "village_id": second }));
    let mut store = device.store();
    let batch = outbox::next_batch(&mut store.conn, BatchLimits::default()).unwrap().unwrap();
    let fields: Vec<&str> =
        batch.entries.iter().filter(|entry| entry.row_id == household).map(|entry| entry.field.as_str()).collect();
    assert_eq!(fields.first(), Some(&"scope_id"), "{fields:?}");
    assert_eq!(fields.len(), 5, "no change lost in the move: {fields:?}");
    assert!(batch.entries.windows(2).all(|pair| pair[0].seq < pair[1].seq));
    drop(store);
    device.sync().unwrap();
    assert_eq!(server.value("households", &household, "scope_id"), Some(json!("530102001002")));
}

/// Checks the batches a server received when every edit was made before one sync: sequence
/// numbers increase across batches, each record's changes sit in one batch only, next to each
/// other with its scope first, and no record comes before a record it references that was pushed
/// too.
fn assert_records_whole(pushed: &[PushRequest]) {
    let mut batch_of: HashMap<(String, String), usize> = HashMap::new();
    let mut place: HashMap<(String, String), usize> = HashMap::new();
    let mut previous_seq = i64::MIN;
    let mut position = 0;
    for (number, request) in pushed.iter().enumerate() {
        let mut previous_row: Option<(String, String)> = None;
        for change in &request.changes {
            assert!(change.seq > previous_seq, "batches are a prefix of the queue in seq order");
            previous_seq = change.seq;
            let key = (change.tbl.clone(), change.row_id.clone());
            match batch_of.get(&key) {
                Some(batch) => {
                    assert_eq!(*batch, number, "{key:?} is split across batches");
                    assert_eq!(previous_row.as_ref(), Some(&key), "{key:?} is not contiguous in its batch");
                    assert_ne!(change.field, "scope_id", "{key:?} does not start with its scope");
                }
                None => {
                    batch_of.insert(key.clone(), number);
                    place.insert(key.clone(), position);
                }
            }
            previous_row = Some(key);
            position += 1;
        }
    }
    for change in pushed.iter().flat_map(|request| request.changes.iter()) {
        let Some(schema::FieldType::Ref(target)) = schema::table(&change.tbl).and_then(|table| table.field(&change.field)).map(|field| field.ty)
        else {
            continue;
        };
        let Some(id) = change.value.as_str() else { continue };
        if let Some(target_place) = place.get(&(target.to_owned(), id.to_owned())) {
            let own = place[&(change.tbl.clone(), change.row_id.clone())];
            assert!(*target_place < own, "{} {} is sent before the {target} row {id} it references", change.tbl, change.row_id);
        }
    }
}

fn member(device: &Device, household_id: &str, name: &str) -> String {
    device.save(&schema::MEMBERS, None, json!({ "household_id": household_id, "name": name }))
}

fn outbox_seqs(device: &Device, row_id: &str) -> Vec<i64> {
    let store = device.store();
    let mut statement = store.conn.prepare("SELECT seq FROM sync_outbox WHERE row_id = ?1 ORDER BY seq").unwrap();
    let seqs = statement.query_map([row_id], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
    seqs
}

#[test]
fn a_record_whose_field_was_edited_again_is_sent_whole_in_one_batch() {
    let server = FakeServer::new();
    let device = Device::with_batches_of(&server, 7);
    let village_id = village(&device);
    let corrected = household(&device, &village_id, "冯一");
    for index in 0..3 {
        household(&device, &village_id, &format!("冯{index}"));
    }
    // The correction of a required field is queued last, far from the rest of its record.
    device.save(&schema::HOUSEHOLDS, Some(&corrected), json!({ "head_name": "冯一一" }));
    let seqs = outbox_seqs(&device, &corrected);
    assert!(seqs.windows(2).any(|pair| pair[1] - pair[0] > 1), "the record is scattered: {seqs:?}");
    device.sync().unwrap();
    assert_eq!(device.pending(), 0);
    let pushed = server.inner().pushed.clone();
    assert_records_whole(&pushed);
    let batch = pushed.iter().find(|request| request.changes.iter().any(|change| change.row_id == corrected)).unwrap();
    let fields: Vec<&str> = batch.changes.iter().filter(|change| change.row_id == corrected).map(|change| change.field.as_str()).collect();
    assert_eq!(fields.len(), 5, "{fields:?}");
    assert_eq!(fields[0], "scope_id");
    assert!(fields.contains(&"head_name"));
    assert!(pushed.iter().all(|request| request.changes.len() <= 7));
    assert_eq!(server.value("households", &corrected, "head_name"), Some(json!("冯一一")));
    let fresh = Device::new(&server);
    fresh.sync().unwrap();
    assert_eq!(fresh.dump(), device.dump());
}

#[test]
fn a_member_goes_after_its_household_when_the_household_is_edited_again() {
    let server = FakeServer::new();
    let device = Device::with_batches_of(&server, 4);
    let village_id = village(&device);
    // One household was synced earlier; another is new today.
    let synced = household(&device, &village_id, "蒋一");
    device.sync().unwrap();
    let new = household(&device, &village_id, "蒋二");
    let members = [member(&device, &synced, "蒋小一"), member(&device, &new, "蒋小二")];
    // Both households are edited again after their members were added.
    device.save(&schema::HOUSEHOLDS, Some(&synced), json!({ "notes": "新房" }));
    device.save(&schema::HOUSEHOLDS, Some(&new), json!({ "head_name": "蒋二二" }));
    server.inner().pushed.clear();
    device.sync().unwrap();
    assert_eq!(device.pending(), 0);
    let pushed = server.inner().pushed.clone();
    assert_records_whole(&pushed);
    let order: Vec<&str> = pushed.iter().flat_map(|request| request.changes.iter()).map(|change| change.row_id.as_str()).collect();
    for (household, member) in [(&synced, &members[0]), (&new, &members[1])] {
        let household_last = order.iter().rposition(|id| id == household).unwrap();
        let member_first = order.iter().position(|id| id == member).unwrap();
        assert!(household_last < member_first, "the member of {household} is sent before its household's edit: {order:?}");
    }
    let fresh = Device::new(&server);
    fresh.sync().unwrap();
    assert_eq!(fresh.dump(), device.dump());
}

#[test]
fn a_large_queue_in_small_batches_never_splits_a_record() {
    for max_changes in [1, 3, 7, 12, 50] {
        let server = FakeServer::new();
        let device = Device::with_batches_of(&server, max_changes);
        let village_id = village(&device);
        let mut households = Vec::new();
        for index in 0..40 {
            let household = household(&device, &village_id, &format!("褚{index}"));
            for number in 0..(1 + index % 3) {
                member(&device, &household, &format!("褚{index}-{number}"));
            }
            households.push(household);
        }
        for (index, household) in households.iter().enumerate().filter(|(index, _)| index % 3 == 0) {
            device.save(&schema::HOUSEHOLDS, Some(household), json!({ "head_name": format!("褚更正{index}"), "group_name": "一组" }));
        }
        device.sync().unwrap();
        assert_eq!(device.pending(), 0, "batches of {max_changes}");
        let pushed = server.inner().pushed.clone();
        assert_records_whole(&pushed);
        for request in &pushed {
            let rows: std::collections::HashSet<&str> = request.changes.iter().map(|change| change.row_id.as_str()).collect();
            // Over the limit only when one record alone is larger than it.
            assert!(request.changes.len() <= max_changes || rows.len() == 1, "batches of {max_changes}: {} changes", request.changes.len());
        }
        let fresh = Device::new(&server);
        fresh.sync().unwrap();
        assert_eq!(fresh.dump(), device.dump(), "batches of {max_changes}");
    }
}

#[test]
fn an_import_already_in_order_is_sent_without_renumbering() {
    let server = FakeServer::new();
    let device = Device::with_batches_of(&server, 7);
    let village_id = village(&device);
    for index in 0..50 {
        let household = household(&device, &village_id, &format!("卫{index}"));
        member(&device, &household, &format!("卫小{index}"));
    }
    let queued: Vec<i64> = {
        let store = device.store();
        let mut statement = store.conn.prepare("SELECT seq FROM sync_outbox ORDER BY seq").unwrap();
        let seqs = statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect();
        seqs
    };
    device.sync().unwrap();
    let pushed = server.inner().pushed.clone();
    assert_records_whole(&pushed);
    let sent: Vec<i64> = pushed.iter().flat_map(|request| request.changes.iter().map(|change| change.seq)).collect();
    assert_eq!(sent, queued, "every change kept its sequence number: the queue was never regrouped");
}

#[test]
fn grouping_the_queue_leaves_a_batch_in_flight_untouched() {
    let server = FakeServer::new();
    let device = Device::with_batches_of(&server, 8);
    let village_id = village(&device);
    let first = household(&device, &village_id, "韩一");
    let second = household(&device, &village_id, "韩二");
    let limits = BatchLimits { max_changes: 8, ..BatchLimits::default() };
    let in_flight = outbox::next_batch(&mut device.store().conn, limits).unwrap().unwrap();
    assert!(in_flight.entries.iter().any(|entry| entry.row_id == first));
    let frozen = |device: &Device| -> Vec<(i64, Vec<u8>, String)> {
        let store = device.store();
        let mut statement = store.conn.prepare("SELECT seq, batch_id, value FROM sync_outbox WHERE batch_id IS NOT NULL ORDER BY seq").unwrap();
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?))).unwrap().map(Result::unwrap).collect();
        rows
    };
    let before = frozen(&device);
    // Edits of a record in flight and of a queued one scatter the queue.
    device.save(&schema::HOUSEHOLDS, Some(&first), json!({ "notes": "走访过" }));
    household(&device, &village_id, "韩三");
    device.save(&schema::HOUSEHOLDS, Some(&second), json!({ "head_name": "韩二二" }));
    assert!(outbox::group_rows(&device.store().conn).unwrap(), "the queued changes were regrouped");
    assert_eq!(frozen(&device), before, "the batch in flight kept its rows, numbers and id");
    let again = outbox::next_batch(&mut device.store().conn, limits).unwrap().unwrap();
    assert_eq!((again.id, &again.entries), (in_flight.id, &in_flight.entries));
    device.sync().unwrap();
    assert_eq!(device.pending(), 0);
    assert_eq!(server.value("households", &second, "head_name"), Some(json!("韩二二")));
    let fresh = Device::new(&server);
    fresh.sync().unwrap();
    assert_eq!(fresh.dump(), device.dump());
}

#[test]
fn a_device_told_its_sequence_numbers_were_used_renumbers_and_everything_arrives() {
    let server = FakeServer::new();
    let device = Device::new(&server);
    let village_id = village(&device);
    household(&device, &village_id, "沈一");
    device.sync().unwrap();
    // The device's data was restored from an old copy: the server has applied sequence numbers
    // from it far beyond the ones it now hands out.
    let client_id = device.store().node().to_uuid_string();
    server.inner().clients.insert(client_id.clone(), 10_000);
    let restored = household(&device, &village_id, "沈二");
    device.save(&schema::HOUSEHOLDS, Some(&restored), json!({ "notes": "恢复后" }));
    let queued = device.pending();
    let report = device.sync().unwrap();
    assert_eq!(device.pending(), 0);
    assert_eq!(report.applied as i64, queued, "{report:?}");
    assert_eq!(report.rejected + report.superseded, 0);
    assert_eq!(server.value("households", &restored, "notes"), Some(json!("恢复后")));
    let inner = server.inner();
    let last = inner.pushed.last().unwrap();
    assert!(last.changes.iter().all(|change| change.seq > 10_000), "renumbered above the server's last applied seq");
    assert!(inner.attempted.len() > inner.pushed.len(), "the first attempt was refused");
    let refused = &inner.attempted[inner.attempted.len() - 2];
    assert_ne!(refused, &last.batch_id, "the renumbered batch went under a new id");
    drop(inner);
    let fresh = Device::new(&server);
    fresh.sync().unwrap();
    assert_eq!(fresh.dump(), device.dump());
}

#[test]
fn a_batch_id_the_server_holds_for_other_changes_is_replaced_and_nothing_is_lost() {
    let server = FakeServer::new();
    let device = Device::new(&server);
    let village_id = village(&device);
    let household_id = household(&device, &village_id, "杨一");
    server.inner().push_faults.push_back(Fault::Coded(422, "idempotency_key_reused"));
    device.sync().unwrap();
    assert_eq!(device.pending(), 0);
    assert_eq!(server.value("households", &household_id, "head_name"), Some(json!("杨一")));
    let inner = server.inner();
    assert_eq!(inner.attempted.len(), 2);
    assert_ne!(inner.attempted[0], inner.attempted[1], "the same changes went under a new batch id");
    assert_eq!(inner.pushed.len(), 1);
}

#[test]
fn a_split_batch_is_cut_at_a_row_boundary_under_a_new_id() {
    let server = FakeServer::new();
    let device = Device::new(&server);
    let village_id = village(&device);
    for index in 0..3 {
        household(&device, &village_id, &format!("朱{index}"));
    }
    let mut store = device.store();
    let batch = outbox::next_batch(&mut store.conn, BatchLimits::default()).unwrap().unwrap();
    assert_eq!(batch.entries.len(), 18, "a village and three households");
    assert!(outbox::split_batch(&mut store.conn, &batch).unwrap());
    let kept = outbox::next_batch(&mut store.conn, BatchLimits::default()).unwrap().unwrap();
    assert_ne!(kept.id, batch.id, "a new body goes under a new id");
    // The middle (the tenth change) falls inside the second household; the nearest row boundary
    // is where that household begins.
    assert_eq!(kept.entries[..], batch.entries[..8]);
    assert_ne!(batch.entries[8].row_id, batch.entries[7].row_id);
    drop(store);
    device.sync().unwrap();
    assert_eq!(device.pending(), 0);
    assert_records_whole(&server.inner().pushed.clone());
}
