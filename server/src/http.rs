//! The HTTP contract (sync-design.md sections 4 and 10): the router, its handlers and the
//! server loop. Handlers are thin: they read and check the request, run the storage work on a
//! blocking thread, and answer with the wire types of `furrow_contract::wire`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, head, post};
use axum::{Extension, Json, Router};
use furrow_contract::hlc;
use furrow_contract::wire::{LoginRequest, PushRequest, RefreshRequest, MAX_BATCH_BYTES, SCHEMA_VERSION};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::Service;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::auth::{self, Caller, PasswordCost, PasswordGate, SignInLimiter, SignInPolicy, TokenLifetimes};
use crate::blobs::{is_sha256, BlobStore};
use crate::error::{Error, Result};
use crate::platform::{self, ModerationRequest, SaleRequest, ServerClock};
use crate::store::{self, AuditEntry, BlobMeta, Database, Upload};
use crate::sync;

/// The OpenAPI document of this contract, kept in docs/openapi.yaml.
pub const OPENAPI_YAML: &str = include_str!("../../docs/openapi.yaml");

/// The largest upload chunk accepted in one PATCH.
pub const MAX_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// The largest blob accepted.
pub const MAX_BLOB_BYTES: i64 = 50 * 1024 * 1024;
/// The largest body of the small JSON endpoints.
const MAX_SMALL_BODY: usize = 64 * 1024;

/// Settings of a running server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The bootstrap token, opening the platform's `/admin/v1` endpoints to the platform's own
    /// systems and to an operator before any admin account exists (at least 32 characters);
    /// admins otherwise sign in with their own accounts.
    pub admin_token: Option<String>,
    /// Token lifetimes.
    pub lifetimes: TokenLifetimes,
    /// Cost of hashing new passwords.
    pub password_cost: PasswordCost,
    /// Whether the server sits behind a reverse proxy whose `X-Forwarded-For` names the client;
    /// the failed-sign-in limit per address then counts the client's address, not the proxy's.
    pub trust_forwarded_for: bool,
    /// How failed sign-ins are limited.
    pub sign_in: SignInPolicy,
    /// How many password hashes run at once (one per core when absent) and how many more wait.
    pub password_concurrency: Option<(usize, usize)>,
    /// Timeouts and connection limits of the server loop.
    pub connections: ConnectionLimits,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            admin_token: None,
            lifetimes: TokenLifetimes::default(),
            password_cost: PasswordCost::STANDARD,
            trust_forwarded_for: false,
            sign_in: SignInPolicy::default(),
            password_concurrency: None,
            connections: ConnectionLimits::default(),
        }
    }
}

/// What keeps slow or idle clients from holding the server: how long a client may take to send
/// a request's headers and body, how many connections it may hold, and how long a stopping server
/// waits for requests in flight.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// The time to send a request's headers, counted from the first byte or, on a kept-alive
    /// connection, from the end of the previous answer; the connection is closed after it.
    pub header_timeout: Duration,
    /// The longest pause between two pieces of a request body (408 after it).
    pub body_idle_timeout: Duration,
    /// The time a body may take before its pace counts.
    pub body_grace: Duration,
    /// The slowest pace a body may keep after the grace, in bytes per second (408 below it), so
    /// a body trickled a byte at a time cannot hold a connection for long.
    pub body_min_rate: u64,
    /// The most connections served at once; further clients wait in the listen queue.
    pub max_connections: usize,
    /// The most connections served at once for one address (more are closed at once).
    pub max_connections_per_address: usize,
    /// How long a stopping server waits for the requests in flight before it closes them.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    /// Headers within 20 s; bodies with no pause over 20 s and at least 2 KB/s after 10 s (a
    /// 1 MB photo chunk over a slow 16 kbit/s link still arrives); 8,192 connections, 1,024 from
    /// one address (a township's NAT carries many assistants); 10 s to finish on shutdown.
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(20),
            body_idle_timeout: Duration::from_secs(20),
            body_grace: Duration::from_secs(10),
            body_min_rate: 2048,
            max_connections: 8192,
            max_connections_per_address: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Everything a handler needs, built fully before the server starts.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    database: Arc<dyn Database>,
    blobs: Arc<dyn BlobStore>,
    clock: ServerClock,
    settings: Settings,
    limiter: SignInLimiter,
    gate: PasswordGate,
    dummy_hash: String,
    upload_turns: Vec<tokio::sync::Mutex<()>>,
}

/// How many locks the chunks of uploads take turns on (an upload always takes the same one).
const UPLOAD_TURNS: usize = 64;

impl AppState {
    /// State over a database and a blob store.
    pub fn new(database: Arc<dyn Database>, blobs: Arc<dyn BlobStore>, settings: Settings) -> Result<Self> {
        if let Some(token) = &settings.admin_token {
            auth::check_admin_token(token)?;
        }
        let dummy_hash = auth::dummy_hash(settings.password_cost)?;
        let gate = match settings.password_concurrency {
            Some((concurrency, waiting)) => PasswordGate::new(concurrency, waiting),
            None => PasswordGate::for_this_machine(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                database,
                blobs,
                clock: ServerClock::new(),
                limiter: SignInLimiter::new(settings.sign_in),
                gate,
                settings,
                dummy_hash,
                upload_turns: (0..UPLOAD_TURNS).map(|_| tokio::sync::Mutex::new(())).collect(),
            }),
        })
    }

    /// The gate every password hash and verification passes through.
    pub fn password_gate(&self) -> &PasswordGate {
        &self.inner.gate
    }

    /// The database.
    pub fn database(&self) -> &Arc<dyn Database> {
        &self.inner.database
    }

    /// One housekeeping round (see [`sync::housekeeping`]), deleting the partial files of
    /// abandoned uploads too. Blocking.
    pub fn housekeeping(&self) -> Result<sync::Housekeeping> {
        let done = store::write(self.database().as_ref(), |tx| sync::housekeeping(tx, hlc::wall_ms()))?;
        for id in &done.uploads {
            self.inner.blobs.discard(id)?;
        }
        Ok(done)
    }

    /// The server's clock and node, used for platform writes.
    pub fn clock(&self) -> &ServerClock {
        &self.inner.clock
    }

    /// Runs storage work on a blocking thread, so the async workers never wait on the database.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce(&AppState) -> Result<T> + Send + 'static) -> Result<T> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || work(&state))
            .await
            .map_err(|error| Error::Storage(format!("a storage task failed: {error}")))?
    }

    async fn caller(&self, headers: &HeaderMap) -> Result<Caller> {
        let token = bearer(headers).ok_or_else(|| Error::unauthorized("send Authorization: Bearer <access token>"))?;
        self.run(move |state| store::read(state.database().as_ref(), |tx| auth::authenticate(tx, &token, hlc::wall_ms())))
            .await
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

/// Builds the router with every endpoint of the contract.
pub fn router(state: AppState) -> Router {
    // JSON answers are compressed for the slow link in town, and gzip request bodies are
    // accepted; blob bytes (already compressed photos, ranged reads) are sent as they are.
    let json_api = Router::new()
        .route("/health", get(health))
        .route("/openapi.yaml", get(openapi))
        .route("/auth/v1/login", post(login))
        .route("/auth/v1/refresh", post(refresh))
        .route("/auth/v1/logout", post(logout))
        .route("/sync/v1/push", post(push))
        .route("/sync/v1/pull", get(pull))
        .merge(
            Router::new()
                .route("/admin/v1/villages", post(admin_village))
                .route("/admin/v1/assistants", post(admin_assistant))
                .route("/admin/v1/assistants/{username}/villages", post(admin_assign))
                .route("/admin/v1/assistants/{username}/status", post(admin_status))
                .route("/admin/v1/listings/{id}/moderation", post(admin_moderation))
                .route("/admin/v1/listings/{id}/submissions", get(admin_submissions))
                .route("/admin/v1/sales", post(admin_sale))
                .route("/admin/v1/audit", get(admin_audit))
                .route_layer(axum::middleware::from_fn_with_state(state.clone(), require_admin)),
        )
        .layer(CompressionLayer::new())
        .layer(RequestDecompressionLayer::new());
    let body_idle_timeout = state.inner.settings.connections.body_idle_timeout;
    let blobs = Router::new()
        .route("/blobs/uploads", post(create_upload))
        .route("/blobs/uploads/{id}", head(upload_offset).patch(upload_chunk))
        .route("/blobs/{sha256}", get(download_blob).head(blob_exists));
    json_api
        .merge(blobs)
        .fallback(not_found)
        .layer(RequestBodyTimeoutLayer::new(body_idle_timeout))
        .layer(axum::middleware::from_fn(refuse_control_characters))
        .layer(axum::middleware::map_response(stamp_server_time))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// Serves the router on a bound listener until the process is stopped.
pub async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    serve_until(listener, state, std::future::pending()).await
}

/// Serves until `shutdown` completes, then finishes the requests in flight, waiting at most the
/// settings' shutdown grace before it closes what is left (a client that never finishes its
/// request cannot keep the server from stopping).
///
/// Each connection is served by the HTTP/1 connection builder with a header read timeout; bodies
/// are timed by the router ([`ConnectionLimits`]). The number of connections is bounded in all
/// and per address: past the first bound the server stops accepting until a connection ends,
/// past the second it closes the new connection at once.
pub async fn serve_until(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.inner.settings.connections;
    let app = router(state);
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::new(Mutex::new(HashMap::new()));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors or a connection reset before it was accepted: wait
                    // a moment instead of spinning, and go on serving.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(guard) = ConnectionGuard::enter(&per_address, remote.ip(), limits.max_connections_per_address, permit) else {
            tracing::warn!(address = %remote.ip(), "too many connections from one address; closing a new one");
            drop(stream);
            continue;
        };
        // Small answers go out at once instead of waiting for more bytes to fill a packet.
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(remote));
            app.clone().call(request)
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a connection ended with an error");
            }
            drop(guard);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace_ms = limits.shutdown_grace.as_millis() as u64, "requests still open after the shutdown grace were closed");
    }
    Ok(())
}

/// A connection's place in the connection limits, given back when the connection ends.
struct ConnectionGuard {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    address: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl ConnectionGuard {
    /// Takes a place for `address`, unless it already holds `most` connections.
    fn enter(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, address: IpAddr, most: usize, permit: OwnedSemaphorePermit) -> Option<Self> {
        let mut map = counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = map.entry(address).or_insert(0);
        if *count >= most {
            return None;
        }
        *count += 1;
        Some(Self { counts: counts.clone(), address, _permit: permit })
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = map.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.address);
            }
        }
    }
}

/// Whether `character` is a control character (Unicode category Cc).
fn is_control(character: char) -> bool {
    character.is_control()
}

/// The first control character of `text` that is not one of `allowed`.
pub fn control_character(text: &str, allowed: &[char]) -> Option<char> {
    text.chars().find(|character| is_control(*character) && !allowed.contains(character))
}

/// 400 `control_character`: text that carries a control character.
pub fn control_character_error(place: &str, character: char) -> Error {
    Error::bad_request(
        "control_character",
        format!(
            "{place} contains the control character U+{:04X}; text may not hold control characters (notes may hold newlines and tabs)",
            u32::from(character)
        ),
    )
}

/// Percent-decodes a path or query, for finding control characters in it.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |byte: u8| (byte as char).to_digit(16);
        if bytes[index] == b'%' && index + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[index + 1]), hex(bytes[index + 2])) {
                decoded.push((high * 16 + low) as u8);
                index += 3;
                continue;
            }
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Refuses a request whose path or query carries a control character (percent-encoded, as a
/// client must send it), before any handler looks it up in storage: PostgreSQL refuses a NUL in
/// text, and no name, id or cursor of this contract holds one.
async fn refuse_control_characters(request: Request, next: axum::middleware::Next) -> Response {
    let uri = request.uri();
    let places = [("the path", Some(uri.path())), ("the query", uri.query())];
    for (place, text) in places {
        if let Some(character) = text.and_then(|text| control_character(&percent_decoded(text), &[])) {
            return control_character_error(place, character).into_response();
        }
    }
    next.run(request).await
}

/// Logs one line per request, with the client's `X-Request-Id` so a device's log and the
/// server's can be matched.
async fn log_request(request: Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let request_id =
        request.headers().get("x-request-id").and_then(|value| value.to_str().ok()).unwrap_or("-").to_owned();
    let response = next.run(request).await;
    tracing::info!(
        %method,
        %path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        request_id,
        "request"
    );
    response
}

/// Every answer carries the server's clock, so a client can correct its offset even from an
/// error.
async fn stamp_server_time(mut response: Response) -> Response {
    response.headers_mut().insert("x-server-time", HeaderValue::from(hlc::wall_ms()));
    response
}

async fn not_found() -> Error {
    Error::not_found("no such endpoint; see /openapi.yaml")
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "schema_version": SCHEMA_VERSION }))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML).into_response()
}

/// 408 `request_timeout`: the body came too slowly.
fn body_timeout() -> Error {
    Error::api(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "the body arrived too slowly (a long pause, or under the least pace the server accepts); send it again",
    )
}

/// Whether a body error is the body idle timeout's.
fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = current.source();
    }
    false
}

/// Reads a whole body of at most `limit` bytes: a larger one is 413, a body cut off before its
/// end is 400, one that pauses too long or comes slower than the settings' least pace is 408,
/// and in each case nothing has been done yet.
async fn read_body(state: &AppState, body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes> {
    let (bytes, outcome) = read_body_keeping(state, body, headers, limit).await;
    outcome.map(|()| Bytes::from(bytes))
}

/// Reads a body like [`read_body`], and also hands back what arrived before it was cut or
/// stalled: an upload chunk's received bytes are kept (tus semantics), so a drop costs only the
/// bytes in flight. A body over the limit keeps nothing.
async fn read_body_keeping(state: &AppState, body: Body, headers: &HeaderMap, limit: usize) -> (Vec<u8>, Result<()>) {
    match read_body_into(state, body, headers, limit).await {
        Ok(bytes) => (bytes, Ok(())),
        Err((bytes, error)) => (bytes, Err(error)),
    }
}

async fn read_body_into(state: &AppState, body: Body, headers: &HeaderMap, limit: usize) -> std::result::Result<Vec<u8>, (Vec<u8>, Error)> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()).and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err((Vec::new(), Error::too_large(format!("the body is larger than {limit} bytes"))));
    }
    let limits = state.inner.settings.connections;
    let started = tokio::time::Instant::now();
    let mut body = body;
    let mut bytes = Vec::new();
    loop {
        // The deadline moves on with every byte received: a body keeping the least pace never
        // meets it, one trickled slower does soon after the grace.
        let paced = Duration::from_secs_f64(bytes.len() as f64 / limits.body_min_rate.max(1) as f64);
        let deadline = started + limits.body_grace + paced;
        let Ok(next) = tokio::time::timeout_at(deadline, body.frame()).await else { return Err((bytes, body_timeout())) };
        let Some(frame) = next else { break };
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) if is_timeout(&error) => return Err((bytes, body_timeout())),
            Err(error) => return Err((bytes, Error::bad_request("truncated_body", format!("the body could not be read to its end: {error}")))),
        };
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err((Vec::new(), Error::too_large(format!("the body is larger than {limit} bytes"))));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// Parses a JSON body, refusing control characters in any of its strings first (newlines and
/// tabs excepted, which notes may hold; which text may hold them is checked per field): no field
/// of this contract holds one, and PostgreSQL cannot store a NUL.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let invalid = |error: serde_json::Error| {
        let code = if error.is_data() { "invalid_body" } else { "invalid_json" };
        Error::bad_request(code, format!("the body is not what this endpoint takes: {error}"))
    };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
    if let Some((place, character)) = json_control_character(&value, "body") {
        return Err(control_character_error(&place, character));
    }
    T::deserialize(value).map_err(invalid)
}

/// The first control character (other than a newline or a tab) in a JSON value's strings or
/// keys, with where it is.
fn json_control_character(value: &serde_json::Value, place: &str) -> Option<(String, char)> {
    const ALLOWED: &[char] = &['\n', '\t'];
    match value {
        serde_json::Value::String(text) => control_character(text, ALLOWED).map(|character| (place.to_owned(), character)),
        serde_json::Value::Array(items) => {
            items.iter().enumerate().find_map(|(index, item)| json_control_character(item, &format!("{place}[{index}]")))
        }
        serde_json::Value::Object(map) => map.iter().find_map(|(key, item)| {
            let inner = format!("{place}.{key}");
            match control_character(key, &[]) {
                Some(character) => Some((inner, character)),
                None => json_control_character(item, &inner),
            }
        }),
        _ => None,
    }
}

async fn json_body<T: DeserializeOwned>(state: &AppState, body: Body, headers: &HeaderMap, limit: usize) -> Result<T> {
    let bytes = read_body(state, body, headers, limit).await?;
    parse_json(&bytes)
}

fn schema_header(headers: &HeaderMap) -> Result<Option<i64>> {
    match headers.get("x-schema-version") {
        None => Ok(None),
        Some(value) => {
            let version = value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<i64>().ok())
                .ok_or_else(|| Error::bad_request("invalid_header", "X-Schema-Version must be an integer"))?;
            sync::check_schema_version(version)?;
            Ok(Some(version))
        }
    }
}

fn json_text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

// Accounts.

/// The client's address as the trusted proxy saw it: the last entry of `X-Forwarded-For`, the
/// one the proxy itself appended (entries before it come from the client and prove nothing).
fn forwarded_address(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("x-forwarded-for")?.to_str().ok()?;
    let last = value.rsplit(',').next()?.trim();
    last.parse::<std::net::IpAddr>().ok().map(|address| address.to_string())
}

/// The address a request comes from: the connection's, or behind a trusted proxy the one it
/// appended to `X-Forwarded-For`.
fn client_address(state: &AppState, request: &Request) -> String {
    let forwarded = state.inner.settings.trust_forwarded_for.then(|| forwarded_address(request.headers())).flatten();
    forwarded.unwrap_or_else(|| {
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into())
    })
}

/// Appends an entry to the audit log in its own transaction. Blocking. A failure is logged and
/// does not fail the request the entry is about.
fn audit(state: &AppState, kind: &str, actor: &str, address: &str, subject: &str, detail: &str) {
    let entry = audit_entry(kind, actor, address, subject, detail);
    if let Err(error) = store::write(state.database().as_ref(), |tx| tx.audit(&entry)) {
        tracing::warn!(%error, kind, "an audit log entry could not be written");
    }
}

/// An audit log entry stamped now; text is cut to 200 characters so a long name cannot bloat it.
fn audit_entry(kind: &str, actor: &str, address: &str, subject: &str, detail: &str) -> AuditEntry {
    let cut = |text: &str| text.chars().take(200).collect::<String>();
    AuditEntry {
        id: 0,
        at: hlc::wall_ms(),
        kind: kind.to_owned(),
        actor: cut(actor),
        address: cut(address),
        subject: cut(subject),
        detail: cut(detail),
    }
}

async fn login(State(state): State<AppState>, request: Request) -> Result<Response> {
    let address = client_address(&state, &request);
    let (parts, body) = request.into_parts();
    let client = parts.headers.get("x-client-id").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let login: LoginRequest = json_body(&state, body, &parts.headers, MAX_SMALL_BODY).await?;
    if login.device_name.chars().count() > 100 {
        return Err(Error::bad_request("invalid_body", "device_name is at most 100 characters"));
    }
    if let Some(character) = control_character(&login.device_name, &[]) {
        return Err(control_character_error("device_name", character));
    }
    // The attempt is counted before the password is verified, in one step, so guesses sent at
    // once cannot all pass the limit between a check and a count.
    let attempt = state.inner.limiter.admit(&login.username, &address).map_err(|wait| {
        let seconds = auth::retry_after_seconds(wait);
        Error::api(StatusCode::TOO_MANY_REQUESTS, "rate_limited", format!("too many failed sign-ins; try again in {seconds} s"))
            .with_header("retry-after", seconds.to_string())
    })?;
    let pass = match state.inner.gate.enter().await {
        Ok(pass) => pass,
        Err(busy) => {
            state.inner.limiter.withdraw(attempt);
            return Err(busy);
        }
    };
    let tokens = state
        .run(move |state| {
            let mut pass = pass;
            let user = store::read(state.database().as_ref(), |tx| tx.user_by_name(&login.username))?;
            // An unknown name is checked against a dummy hash so it costs the same time and
            // gets the same answer as a wrong password.
            let stored = user.as_ref().map(|user| user.password_hash.as_str()).unwrap_or(&state.inner.dummy_hash);
            let matches = pass.verify(&login.password, stored);
            // The next verification may start while this sign-in writes its tokens.
            drop(pass);
            let user = user.filter(|user| matches && !user.disabled);
            let Some(user) = user else {
                // The attempt stays counted as the failure it is, and the log keeps it, so a
                // password sprayed over many accounts is seen.
                drop(attempt);
                audit(state, "sign_in_failed", &login.username, &address, &login.username, "wrong user name or password");
                return Err(Error::unauthorized("wrong user name or password"));
            };
            state.inner.limiter.succeed(attempt);
            let lifetimes = state.inner.settings.lifetimes;
            let entry = audit_entry("sign_in", &user.username, &address, &user.username, &format!("device {}", login.device_name));
            store::write(state.database().as_ref(), |tx| {
                tx.audit(&entry)?;
                auth::start_session(tx, user.id, client.as_deref(), &login.device_name, lifetimes, hlc::wall_ms())
            })
        })
        .await?;
    Ok(Json(tokens).into_response())
}

async fn refresh(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response> {
    let request: RefreshRequest = json_body(&state, body, &headers, MAX_SMALL_BODY).await?;
    let client = headers.get("x-client-id").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let tokens = state
        .run(move |state| {
            let lifetimes = state.inner.settings.lifetimes;
            // A refusal that revoked the session is answered after the revocation commits.
            store::write(state.database().as_ref(), |tx| {
                auth::renew_session(tx, &request.refresh_token, client.as_deref(), lifetimes, hlc::wall_ms())
            })?
        })
        .await?;
    Ok(Json(tokens).into_response())
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response> {
    let request: RefreshRequest = json_body(&state, body, &headers, MAX_SMALL_BODY).await?;
    state
        .run(move |state| {
            store::write(state.database().as_ref(), |tx| {
                if let Some(row) = tx.token(&auth::token_hash(&request.refresh_token))? {
                    tx.delete_session(&row.session_id)?;
                }
                Ok(())
            })
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// Sync.

async fn push(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response> {
    schema_header(&headers)?;
    let caller = state.caller(&headers).await?;
    let bytes = read_body(&state, body, &headers, MAX_BATCH_BYTES).await.map_err(|error| match error {
        Error::Api { status: StatusCode::PAYLOAD_TOO_LARGE, .. } => {
            Error::too_large(format!("a push body is at most {MAX_BATCH_BYTES} bytes; split the batch"))
        }
        other => other,
    })?;
    let request: PushRequest = parse_json(&bytes)?;
    if let Some(key) = headers.get("idempotency-key") {
        if key.to_str().ok() != Some(request.batch_id.as_str()) {
            return Err(Error::bad_request("invalid_header", "Idempotency-Key must equal the body's batch_id"));
        }
    }
    if let Some(client) = headers.get("x-client-id") {
        if client.to_str().ok() != Some(request.client_id.as_str()) {
            return Err(Error::bad_request("invalid_header", "X-Client-Id must equal the body's client_id"));
        }
    }
    sync::check_push(&request)?;
    let device = uuid::Uuid::parse_str(&request.client_id).map(|id| id.to_string()).unwrap_or_default();
    check_device(&caller, &device)?;
    let outcome = state
        .run(move |state| {
            store::write(state.database().as_ref(), |tx| {
                // A session signed in without naming its device is bound to the first one that
                // pushes with it.
                if caller.client_id.is_none() {
                    tx.bind_session(&caller.session_id, &device)?;
                }
                sync::push(tx, &caller, state.clock(), &request, hlc::wall_ms())
            })
        })
        .await?;
    state.clock().observe(outcome.max_hlc);
    let mut response = json_text(StatusCode::OK, outcome.body);
    if outcome.replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

async fn pull(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response> {
    let schema_version = schema_header(&headers)?.unwrap_or(SCHEMA_VERSION);
    let caller = state.caller(&headers).await?;
    if let Some(device) = headers.get("x-client-id").and_then(|value| value.to_str().ok()) {
        check_device(&caller, &uuid::Uuid::parse_str(device).map(|id| id.to_string()).unwrap_or_default())?;
    }
    let Query(query) = query.map_err(|error| Error::bad_request("invalid_query", error.body_text()))?;
    let limit = match query.get("limit") {
        None => sync::DEFAULT_PULL_LIMIT,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|limit| *limit > 0)
            .ok_or_else(|| Error::bad_request("invalid_query", "limit must be a positive integer"))?,
    };
    let cursor = query.get("cursor").cloned().filter(|cursor| !cursor.is_empty() && cursor != "null");
    let page = state
        .run(move |state| {
            store::read(state.database().as_ref(), |tx| {
                sync::pull(tx, &caller, cursor.as_deref(), limit, schema_version, hlc::wall_ms())
            })
        })
        .await?;
    Ok(Json(page).into_response())
}

/// 403 unless the caller's session may be used from `device` (a client id): a session is bound
/// to the device it signed in from, so a token copied to another device is refused there.
fn check_device(caller: &Caller, device: &str) -> Result<()> {
    match &caller.client_id {
        Some(bound) if bound != device => {
            Err(Error::forbidden("this session was signed in on another device; sign in on this one"))
        }
        _ => Ok(()),
    }
}

// Blobs.

fn check_digest(sha256: &str) -> Result<()> {
    if is_sha256(sha256) {
        Ok(())
    } else {
        Err(Error::bad_request("invalid_digest", "a blob is named by its SHA-256 in lowercase hex"))
    }
}

async fn blob_exists(State(state): State<AppState>, headers: HeaderMap, Path(sha256): Path<String>) -> Result<Response> {
    let caller = state.caller(&headers).await?;
    check_digest(&sha256)?;
    let digest = sha256.clone();
    // Only a blob the caller may read exists for them: its existence and size are not told to
    // assistants of other villages.
    let blob = state
        .run(move |state| store::read(state.database().as_ref(), |tx| tx.readable_blob(&digest, caller.user_id, &caller.scopes)))
        .await?;
    match blob {
        Some(blob) => Ok((
            StatusCode::OK,
            [(header::CONTENT_LENGTH, blob.size.to_string()), (header::CONTENT_TYPE, blob.mime)],
        )
            .into_response()),
        None => Ok(StatusCode::NOT_FOUND.into_response()),
    }
}

/// Parses a single `bytes=` range against a size: `Ok(None)` for no range header.
fn parse_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>> {
    let Some(value) = headers.get(header::RANGE) else { return Ok(None) };
    let unsatisfiable = || {
        Error::api(StatusCode::RANGE_NOT_SATISFIABLE, "invalid_range", "the range is not one byte range within the blob")
            .with_header("content-range", format!("bytes */{size}"))
    };
    let text = value.to_str().map_err(|_| unsatisfiable())?;
    let spec = text.strip_prefix("bytes=").ok_or_else(unsatisfiable)?;
    let (start, end) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let (first, last) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let length: u64 = suffix.parse().map_err(|_| unsatisfiable())?;
            if length == 0 {
                return Err(unsatisfiable());
            }
            (size.saturating_sub(length), size.saturating_sub(1))
        }
        (start, "") => (start.parse().map_err(|_| unsatisfiable())?, size.saturating_sub(1)),
        (start, end) => {
            let first: u64 = start.parse().map_err(|_| unsatisfiable())?;
            let last: u64 = end.parse().map_err(|_| unsatisfiable())?;
            (first, last.min(size.saturating_sub(1)))
        }
    };
    if size == 0 || first > last || first >= size {
        return Err(unsatisfiable());
    }
    Ok(Some((first, last)))
}

async fn download_blob(State(state): State<AppState>, headers: HeaderMap, Path(sha256): Path<String>) -> Result<Response> {
    let caller = state.caller(&headers).await?;
    check_digest(&sha256)?;
    let digest = sha256.clone();
    let lookup_caller = caller.clone();
    // A blob is readable by its uploader and in the villages it was granted to (where it was
    // uploaded, or named by a photo of someone who could read it); to everyone else it does not
    // exist.
    let blob: Option<BlobMeta> = state
        .run(move |state| {
            store::read(state.database().as_ref(), |tx| tx.readable_blob(&digest, lookup_caller.user_id, &lookup_caller.scopes))
        })
        .await?;
    let blob = blob.ok_or_else(|| Error::not_found("no such blob"))?;
    let size = blob.size as u64;
    let range = parse_range(&headers, size)?;
    let (first, last) = range.unwrap_or((0, size.saturating_sub(1)));
    let length = if size == 0 { 0 } else { last - first + 1 };
    let digest = sha256.clone();
    let bytes = state.run(move |state| Ok(state.inner.blobs.read(&digest, first, length)?)).await?;
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let headers = response.headers_mut();
    if let Ok(mime) = HeaderValue::from_str(&blob.mime) {
        headers.insert(header::CONTENT_TYPE, mime);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{sha256}\"")) {
        headers.insert(header::ETAG, etag);
    }
    if range.is_some() {
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {first}-{last}/{size}")) {
            headers.insert(header::CONTENT_RANGE, value);
        }
    }
    Ok(response)
}

/// `POST /blobs/uploads` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The digest the finished blob must have.
    pub sha256: String,
    /// Its size in bytes.
    pub size: i64,
    /// Its media type.
    pub mime: String,
}

/// `POST /blobs/uploads` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadCreated {
    /// The upload's id (absent when the blob already exists).
    pub id: Option<String>,
    /// Where to send the chunks, or the blob when it already exists.
    pub location: String,
    /// Bytes already received.
    pub offset: i64,
    /// Whether the blob already exists (nothing to upload).
    pub exists: bool,
}

async fn create_upload(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response> {
    let caller = state.caller(&headers).await?;
    let request: UploadRequest = json_body(&state, body, &headers, MAX_SMALL_BODY).await?;
    check_digest(&request.sha256)?;
    if !(1..=MAX_BLOB_BYTES).contains(&request.size) {
        return Err(Error::bad_request("invalid_body", format!("size must be 1 to {MAX_BLOB_BYTES} bytes")));
    }
    let mime_ok = !request.mime.is_empty()
        && request.mime.len() <= 100
        && request.mime.contains('/')
        && request.mime.bytes().all(|byte| byte.is_ascii_graphic());
    if !mime_ok {
        return Err(Error::bad_request("invalid_body", "mime must be a media type such as image/jpeg"));
    }
    let id = hex::encode(auth::random_bytes::<16>()?);
    let created = state
        .run(move |state| {
            store::write(state.database().as_ref(), |tx| {
                // Only a blob the caller may already read is reported as existing; anyone else
                // uploads the bytes, which proves they have them.
                if let Some(blob) = tx.readable_blob(&request.sha256, caller.user_id, &caller.scopes)? {
                    return Ok(UploadCreated { id: None, location: format!("/blobs/{}", blob.sha256), offset: blob.size, exists: true });
                }
                let upload = Upload {
                    id: id.clone(),
                    sha256: request.sha256.clone(),
                    size: request.size,
                    mime: request.mime.clone(),
                    user_id: caller.user_id,
                    offset: 0,
                };
                tx.put_upload(&upload, hlc::wall_ms())?;
                Ok(UploadCreated { id: Some(id.clone()), location: format!("/blobs/uploads/{id}"), offset: 0, exists: false })
            })
        })
        .await?;
    let status = if created.exists { StatusCode::OK } else { StatusCode::CREATED };
    let mut response = (status, Json(&created)).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&created.location) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert("upload-offset", HeaderValue::from(created.offset));
    headers.insert("tus-resumable", HeaderValue::from_static("1.0.0"));
    Ok(response)
}

async fn own_upload(state: &AppState, caller: &Caller, id: String) -> Result<Upload> {
    let user_id = caller.user_id;
    let upload = state.run(move |state| store::read(state.database().as_ref(), |tx| tx.upload(&id))).await?;
    // Another user's upload is answered exactly like a missing one.
    upload.filter(|upload| upload.user_id == user_id).ok_or_else(|| Error::not_found("no such upload"))
}

async fn upload_offset(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response> {
    let caller = state.caller(&headers).await?;
    let upload = own_upload(&state, &caller, id).await?;
    Ok((
        StatusCode::OK,
        [
            ("upload-offset", upload.offset.to_string()),
            ("upload-length", upload.size.to_string()),
            ("cache-control", "no-store".to_owned()),
            ("tus-resumable", "1.0.0".to_owned()),
        ],
    )
        .into_response())
}

async fn upload_chunk(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>, body: Body) -> Result<Response> {
    let caller = state.caller(&headers).await?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
    if content_type != "application/offset+octet-stream" {
        return Err(Error::api(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_content_type",
            "chunks are sent as Content-Type: application/offset+octet-stream",
        ));
    }
    let offset = headers
        .get("upload-offset")
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<i64>().ok())
        .filter(|offset| *offset >= 0)
        .ok_or_else(|| Error::bad_request("invalid_header", "Upload-Offset must be a non-negative integer"))?;
    let upload = own_upload(&state, &caller, id).await?;
    if offset != upload.offset {
        return Err(Error::api(
            StatusCode::CONFLICT,
            "offset_mismatch",
            format!("the upload is at offset {}, not {offset}; resume from there", upload.offset),
        )
        .with_header("upload-offset", upload.offset.to_string()));
    }
    let (received, outcome) = read_body_keeping(&state, body, &headers, MAX_CHUNK_BYTES).await;
    // Chunks of one upload take turns from here on, and the offset is read again: of two chunks
    // sent at the same offset, the second finds it moved and is refused before it writes a byte
    // into the partial file the first one wrote.
    let turn = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        upload.id.hash(&mut hasher);
        &state.inner.upload_turns[(hasher.finish() % UPLOAD_TURNS as u64) as usize]
    };
    let _turn = turn.lock().await;
    let upload = own_upload(&state, &caller, upload.id).await?;
    if offset != upload.offset {
        return Err(Error::api(
            StatusCode::CONFLICT,
            "offset_mismatch",
            format!("another chunk moved the upload to offset {} first; resume from there", upload.offset),
        )
        .with_header("upload-offset", upload.offset.to_string()));
    }
    if let Err(error) = outcome {
        // The chunk was cut or stalled: the bytes that arrived are kept and the upload's offset
        // moves past them, so the device, asking where the upload stands, sends again only the
        // bytes that were in flight.
        let kept = offset + received.len() as i64;
        if !received.is_empty() && kept < upload.size {
            let upload_id = upload.id.clone();
            state
                .run(move |state| {
                    state.inner.blobs.write_part(&upload_id, offset as u64, &received)?;
                    store::write(state.database().as_ref(), |tx| tx.advance_upload(&upload_id, offset, kept))
                })
                .await?;
        }
        return Err(error);
    }
    let bytes = Bytes::from(received);
    let end = offset + bytes.len() as i64;
    if end > upload.size {
        return Err(Error::too_large(format!("the chunk runs past the declared size of {} bytes", upload.size)));
    }
    let new_offset = state
        .run(move |state| {
            let blobs = &state.inner.blobs;
            blobs.write_part(&upload.id, offset as u64, &bytes)?;
            let database = state.database().as_ref();
            if end < upload.size {
                let moved = store::write(database, |tx| tx.advance_upload(&upload.id, offset, end))?;
                if !moved {
                    return Err(Error::api(StatusCode::CONFLICT, "offset_mismatch", "another chunk moved the upload first; ask for the offset"));
                }
                return Ok(end);
            }
            // The last chunk: the bytes must hash to the promised digest, or the upload is
            // thrown away and nothing becomes visible.
            let digest = blobs.part_digest(&upload.id)?;
            if digest != upload.sha256 {
                blobs.discard(&upload.id)?;
                store::write(database, |tx| tx.delete_upload(&upload.id))?;
                return Err(Error::api(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "hash_mismatch",
                    format!("the bytes hash to {digest}, not {}; the upload was discarded, start again", upload.sha256),
                ));
            }
            if blobs.exists(&upload.sha256) {
                blobs.discard(&upload.id)?;
            } else {
                blobs.promote(&upload.id, &upload.sha256)?;
            }
            let blob = BlobMeta { sha256: upload.sha256.clone(), size: upload.size, mime: upload.mime.clone(), uploaded_by: upload.user_id };
            store::write(database, |tx| {
                let now = hlc::wall_ms();
                tx.put_blob(&blob, now)?;
                // Whoever sent the bytes may read them in every village of theirs.
                for scope in &caller.scopes {
                    tx.grant_blob(&blob.sha256, scope, now)?;
                }
                tx.delete_upload(&upload.id)
            })?;
            Ok(end)
        })
        .await?;
    Ok((StatusCode::NO_CONTENT, [("upload-offset", new_offset.to_string()), ("tus-resumable", "1.0.0".to_owned())]).into_response())
}

// The platform's endpoints.

/// Who is calling an admin endpoint, as the admin middleware established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminIdentity {
    /// The signed-in admin's user name; `None` for the bootstrap token.
    pub name: Option<String>,
    /// The address the request came from.
    pub address: String,
}

impl AdminIdentity {
    /// Who the audit log names: `admin:<name>`, or `bootstrap` for the bootstrap token.
    pub fn actor(&self) -> String {
        match &self.name {
            Some(name) => format!("admin:{name}"),
            None => "bootstrap".to_owned(),
        }
    }

    /// Who platform writes are recorded as: `moderator:<name>`, or `platform` for the
    /// platform's own systems using the bootstrap token.
    pub fn writer(&self) -> String {
        match &self.name {
            Some(name) => format!("moderator:{name}"),
            None => "platform".to_owned(),
        }
    }
}

/// The limiter's name for attempts at the admin endpoints, counted per address like sign-ins to
/// one account, so the bootstrap token cannot be guessed at speed either.
const ADMIN_LIMIT_KEY: &str = "(admin endpoints)";

/// Guards the admin endpoints: the caller is a signed-in admin (an access token of an account
/// with the admin role) or holds the bootstrap token. An address whose refused attempts used up
/// the sign-in limiter's free failures waits before anything is compared; each refused attempt
/// counts against it (a correct one is not counted, so a platform system's parallel calls are
/// never slowed). Every admin action other than a read is written to the audit log with its
/// answer's status.
async fn require_admin(State(state): State<AppState>, mut request: Request, next: axum::middleware::Next) -> Response {
    let address = client_address(&state, &request);
    match state.inner.limiter.check(ADMIN_LIMIT_KEY, &address) {
        Ok(()) => {}
        Err(wait) => {
            let seconds = auth::retry_after_seconds(wait);
            return Error::api(StatusCode::TOO_MANY_REQUESTS, "rate_limited", format!("too many refused admin requests; try again in {seconds} s"))
                .with_header("retry-after", seconds.to_string())
                .into_response();
        }
    };
    let given = bearer(request.headers()).unwrap_or_default();
    // Comparing digests keeps the comparison's time independent of where the strings differ.
    let bootstrap = state
        .inner
        .settings
        .admin_token
        .as_ref()
        .is_some_and(|expected| Sha256::digest(given.as_bytes()) == Sha256::digest(expected.as_bytes()));
    let name = if bootstrap || given.is_empty() {
        None
    } else {
        let token = given.clone();
        match state.run(move |state| store::read(state.database().as_ref(), |tx| auth::authenticate_admin(tx, &token, hlc::wall_ms()))).await {
            Ok(name) => name,
            Err(error) => return error.into_response(),
        }
    };
    if !bootstrap && name.is_none() {
        state.inner.limiter.fail(ADMIN_LIMIT_KEY, &address);
        return Error::unauthorized("the platform endpoints need an admin's access token (or the bootstrap token)").into_response();
    }
    let identity = AdminIdentity { name, address };
    let action = format!("{} {}", request.method(), request.uri().path());
    let read = request.method() == axum::http::Method::GET;
    request.extensions_mut().insert(identity.clone());
    let response = next.run(request).await;
    if !read {
        let detail = format!("answered {}", response.status().as_u16());
        let state = state.clone();
        let _ = tokio::task::spawn_blocking(move || audit(&state, "admin_action", &identity.actor(), &identity.address, &action, &detail)).await;
    }
    response
}

/// `POST /admin/v1/villages` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VillageRequest {
    /// The 12-digit administrative division code.
    pub code: String,
    /// The name.
    pub name: String,
}

async fn admin_village(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response> {
    let request: VillageRequest = json_body(&state, body, &headers, MAX_SMALL_BODY).await?;
    platform::check_village(&request.code, &request.name)?;
    let created = state
        .run(move |state| {
            store::write(state.database().as_ref(), |tx| platform::add_village(tx, state.clock(), &request.code, &request.name))
                .map(|new| (new, request.code.clone()))
        })
        .await?;
    let status = if created.0 { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(serde_json::json!({ "code": created.1, "row_id": platform::village_row_id(&created.1) }))).into_response())
}

/// `POST /admin/v1/assistants` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssistantRequest {
    /// The login name.
    pub username: String,
    /// The first password.
    pub password: String,
    /// The villages assigned.
    #[serde(default)]
    pub villages: Vec<String>,
}

async fn admin_assistant(
    State(state): State<AppState>,
    Extension(admin): Extension<AdminIdentity>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let request: AssistantRequest = json_body(&state, body, &headers, MAX_SMALL_BODY).await?;
    platform::check_username(&request.username)?;
    platform::check_password(&request.username, &request.password)?;
    // Hashing takes a hash's memory like a sign-in, so it waits its turn at the same gate.
    let pass = state.inner.gate.enter().await?;
    let id = state
        .run(move |state| {
            let hash = platform::new_password_hash(&request.username, &request.password, state.inner.settings.password_cost)?;
            drop(pass);
            let detail = format!("account created with villages [{}]", request.villages.join(", "));
            let entry = audit_entry("scope_change", &admin.actor(), &admin.address, &request.username, &detail);
            store::write(state.database().as_ref(), |tx| {
                let id = platform::add_assistant(tx, &request.username, &hash, &request.villages)?;
                tx.audit(&entry)?;
                Ok(id)
            })
        })
        .await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "assistant_id": id.to_string() }))).into_response())
}

/// `POST /admin/v1/assistants/{username}/villages` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// Village codes.
    pub villages: Vec<String>,
    /// Remove these villages instead of adding them.
    #[serde(default)]
    pub remove: bool,
}

async fn admin_assign(
    State(state): State<AppState>,
    Extension(admin): Extension<AdminIdentity>,
    headers: HeaderMap,
    Path(username): Path<String>,
    body: Body,
) -> Result<Response> {
    let request: AssignRequest = json_body(&state, body, &headers, MAX_SMALL_BODY).await?;
    let scopes = state
        .run(move |state| {
            store::write(state.database().as_ref(), |tx| {
                let id = platform::user_id(tx, &username)?;
                if !request.remove {
                    platform::require_villages(tx, &request.villages)?;
                }
                for code in &request.villages {
                    if request.remove {
                        tx.unassign(id, code)?;
                    } else {
                        tx.assign(id, code)?;
                    }
                }
                let change = if request.remove { "removed" } else { "assigned" };
                let detail = format!("{change} villages [{}]", request.villages.join(", "));
                tx.audit(&audit_entry("scope_change", &admin.actor(), &admin.address, &username, &detail))?;
                tx.scopes(id)
            })
        })
        .await?;
    // The assistant's devices notice at their next pull: the cursor's scope hash no longer fits.
    Ok(Json(serde_json::json!({ "scopes": scopes })).into_response())
}

/// `POST /admin/v1/assistants/{username}/status` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// Whether sign-in is refused; disabling also revokes every token of the account.
    pub disabled: bool,
}

async fn admin_status(
    State(state): State<AppState>,
    Extension(admin): Extension<AdminIdentity>,
    headers: HeaderMap,
    Path(username): Path<String>,
    body: Body,
) -> Result<Response> {
    let request: StatusRequest = json_body(&state, body, &headers, MAX_SMALL_BODY).await?;
    state
        .run(move |state| {
            store::write(state.database().as_ref(), |tx| {
                let id = platform::user_id(tx, &username)?;
                tx.set_disabled(id, request.disabled)?;
                if request.disabled {
                    tx.delete_user_tokens(id)?;
                }
                let detail = if request.disabled { "account disabled, its sessions revoked" } else { "account enabled" };
                tx.audit(&audit_entry("scope_change", &admin.actor(), &admin.address, &username, detail))?;
                Ok(())
            })
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn admin_moderation(
    State(state): State<AppState>,
    Extension(admin): Extension<AdminIdentity>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response> {
    let request: ModerationRequest = json_body(&state, body, &headers, MAX_SMALL_BODY).await?;
    state
        .run(move |state| {
            store::write(state.database().as_ref(), |tx| platform::moderate(tx, state.clock(), &admin.writer(), &id, &request))
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn admin_submissions(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let submissions =
        state.run(move |state| store::read(state.database().as_ref(), |tx| platform::listing_submissions(tx, &id))).await?;
    Ok(Json(submissions).into_response())
}

/// `GET /admin/v1/audit` query: a page of the audit log, newest first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries with an id below this one (the last id of the previous page); the newest when absent.
    pub before: Option<i64>,
    /// Entries per page (default 100, at most 1000).
    pub limit: Option<i64>,
}

async fn admin_audit(State(state): State<AppState>, query: std::result::Result<Query<AuditQuery>, QueryRejection>) -> Result<Response> {
    let Query(query) = query.map_err(|error| Error::bad_request("invalid_query", error.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::bad_request("invalid_query", "limit is 1 to 1000"));
    }
    let before = query.before.unwrap_or(i64::MAX);
    let entries = state.run(move |state| store::read(state.database().as_ref(), |tx| tx.audit_entries(before, limit))).await?;
    Ok(Json(serde_json::json!({ "entries": entries })).into_response())
}

async fn admin_sale(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response> {
    let request: SaleRequest = json_body(&state, body, &headers, MAX_SMALL_BODY).await?;
    let recorded = state
        .run(move |state| store::write(state.database().as_ref(), |tx| platform::record_sale(tx, state.clock(), &request)))
        .await?;
    Ok((StatusCode::CREATED, Json(recorded)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).expect("header"));
        headers
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        let range = |text: &str| parse_range(&with("range", text), 1000).map_err(|error| error.status().as_u16());
        assert_eq!(parse_range(&HeaderMap::new(), 1000).map_err(|error| error.status().as_u16()), Ok(None));
        assert_eq!(range("bytes=0-99"), Ok(Some((0, 99))));
        assert_eq!(range("bytes=900-"), Ok(Some((900, 999))));
        assert_eq!(range("bytes=-100"), Ok(Some((900, 999))));
        assert_eq!(range("bytes=990-5000"), Ok(Some((990, 999))));
        for bad in ["bytes=1000-", "bytes=5-4", "bytes=-0", "items=0-1", "bytes=a-b", "bytes=0-1,5-6"] {
            assert_eq!(range(bad), Err(416), "{bad}");
        }
    }

    #[test]
    fn only_the_proxys_own_entry_of_x_forwarded_for_counts() {
        assert_eq!(forwarded_address(&with("x-forwarded-for", "1.2.3.4, 10.0.0.7")), Some("10.0.0.7".into()));
        assert_eq!(forwarded_address(&with("x-forwarded-for", "2001:db8::1")), Some("2001:db8::1".into()));
        assert_eq!(forwarded_address(&with("x-forwarded-for", "1.2.3.4, forged")), None);
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        assert_eq!(bearer(&with("authorization", "Bearer abc")), Some("abc".into()));
        assert_eq!(bearer(&with("authorization", "Basic abc")), None);
        assert_eq!(bearer(&with("authorization", "Bearer ")), None);
    }
}
