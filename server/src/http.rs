//! The HTTP contract (sync-design.md sections 4 and 10): the router, its handlers and the
//! server loop. Handlers are thin: they read and check the request, run the storage work on a
//! blocking thread, and answer with the wire types of `furrow::sync::wire`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, head, post};
use axum::{Json, Router};
use furrow::hlc;
use furrow::sync::wire::{LoginRequest, PushRequest, RefreshRequest, MAX_BATCH_BYTES, SCHEMA_VERSION};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;

use crate::auth::{self, Caller, PasswordCost, RateLimiter, TokenLifetimes};
use crate::blobs::{is_sha256, BlobStore};
use crate::error::{Error, Result};
use crate::platform::{self, ModerationRequest, SaleRequest, ServerClock};
use crate::store::{self, BlobMeta, Database, Upload};
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
    /// The token guarding the platform's `/admin/v1` endpoints; they answer 404 without one.
    pub admin_token: Option<String>,
    /// Token lifetimes.
    pub lifetimes: TokenLifetimes,
    /// Cost of hashing new passwords.
    pub password_cost: PasswordCost,
    /// Whether the server sits behind a reverse proxy whose `X-Forwarded-For` names the client;
    /// the failed-sign-in limit per address then counts the client's address, not the proxy's.
    pub trust_forwarded_for: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            admin_token: None,
            lifetimes: TokenLifetimes::default(),
            password_cost: PasswordCost::STANDARD,
            trust_forwarded_for: false,
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
    limiter: RateLimiter,
    dummy_hash: String,
}

impl AppState {
    /// State over a database and a blob store.
    pub fn new(database: Arc<dyn Database>, blobs: Arc<dyn BlobStore>, settings: Settings) -> Result<Self> {
        let dummy_hash = auth::dummy_hash(settings.password_cost)?;
        Ok(Self {
            inner: Arc::new(Inner {
                database,
                blobs,
                clock: ServerClock::new(),
                settings,
                limiter: RateLimiter::default(),
                dummy_hash,
            }),
        })
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
        .route("/admin/v1/villages", post(admin_village))
        .route("/admin/v1/assistants", post(admin_assistant))
        .route("/admin/v1/assistants/{username}/villages", post(admin_assign))
        .route("/admin/v1/assistants/{username}/status", post(admin_status))
        .route("/admin/v1/listings/{id}/moderation", post(admin_moderation))
        .route("/admin/v1/listings/{id}/submissions", get(admin_submissions))
        .route("/admin/v1/sales", post(admin_sale))
        .layer(CompressionLayer::new())
        .layer(RequestDecompressionLayer::new());
    let blobs = Router::new()
        .route("/blobs/uploads", post(create_upload))
        .route("/blobs/uploads/{id}", head(upload_offset).patch(upload_chunk))
        .route("/blobs/{sha256}", get(download_blob).head(blob_exists));
    json_api
        .merge(blobs)
        .fallback(not_found)
        .layer(axum::middleware::map_response(stamp_server_time))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// Serves the router on a bound listener until the process is stopped.
pub async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>()).await
}

/// Serves until `shutdown` completes, then finishes the requests in flight.
pub async fn serve_until(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
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

/// Reads a whole body of at most `limit` bytes: a larger one is 413, a body cut off before its
/// end is 400, and in either case nothing has been done yet.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()).and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(Error::too_large(format!("the body is larger than {limit} bytes")));
    }
    let mut body = body;
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| Error::bad_request("truncated_body", format!("the body could not be read to its end: {error}")))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return Err(Error::too_large(format!("the body is larger than {limit} bytes")));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(bytes))
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|error| {
        let code = if error.is_data() { "invalid_body" } else { "invalid_json" };
        Error::bad_request(code, format!("the body is not what this endpoint takes: {error}"))
    })
}

async fn json_body<T: DeserializeOwned>(body: Body, headers: &HeaderMap, limit: usize) -> Result<T> {
    let bytes = read_body(body, headers, limit).await?;
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

async fn login(State(state): State<AppState>, request: Request) -> Result<Response> {
    let forwarded = state
        .inner
        .settings
        .trust_forwarded_for
        .then(|| forwarded_address(request.headers()))
        .flatten();
    let address = forwarded.unwrap_or_else(|| {
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into())
    });
    let (parts, body) = request.into_parts();
    let login: LoginRequest = json_body(body, &parts.headers, MAX_SMALL_BODY).await?;
    if login.device_name.chars().count() > 100 {
        return Err(Error::bad_request("invalid_body", "device_name is at most 100 characters"));
    }
    let account_key = format!("account:{}", login.username.to_lowercase());
    let address_key = format!("address:{address}");
    for key in [&account_key, &address_key] {
        if let Some(seconds) = state.inner.limiter.locked(key) {
            return Err(Error::api(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many failed sign-ins; try again in {seconds} s"),
            )
            .with_header("retry-after", seconds.to_string()));
        }
    }
    let tokens = state
        .run(move |state| {
            let user = store::read(state.database().as_ref(), |tx| tx.user_by_name(&login.username))?;
            // An unknown name is checked against a dummy hash so it costs the same time and
            // gets the same answer as a wrong password.
            let stored = user.as_ref().map(|user| user.password_hash.as_str()).unwrap_or(&state.inner.dummy_hash);
            let matches = auth::verify_password(&login.password, stored);
            let user = user.filter(|user| matches && !user.disabled);
            let Some(user) = user else {
                state.inner.limiter.fail(&account_key);
                state.inner.limiter.fail(&address_key);
                return Err(Error::unauthorized("wrong user name or password"));
            };
            state.inner.limiter.succeed(&account_key);
            let session = uuid::Uuid::new_v4().to_string();
            let lifetimes = state.inner.settings.lifetimes;
            store::write(state.database().as_ref(), |tx| {
                auth::issue_pair(tx, user.id, &session, &login.device_name, lifetimes, hlc::wall_ms())
            })
        })
        .await?;
    Ok(Json(tokens).into_response())
}

async fn refresh(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response> {
    let request: RefreshRequest = json_body(body, &headers, MAX_SMALL_BODY).await?;
    let tokens = state
        .run(move |state| {
            let lifetimes = state.inner.settings.lifetimes;
            store::write(state.database().as_ref(), |tx| {
                let now = hlc::wall_ms();
                let row = tx.token(&auth::token_hash(&request.refresh_token))?.filter(|row| row.kind == "refresh");
                let Some(row) = row.filter(|row| row.expires_at > now) else {
                    return Err(Error::unauthorized("the refresh token is unknown, used, revoked or expired; sign in again"));
                };
                if tx.user_by_id(row.user_id)?.is_none_or(|user| user.disabled) {
                    return Err(Error::unauthorized("the account is disabled"));
                }
                // Rotation: the used refresh token and its access token stop working.
                tx.delete_session(&row.session_id)?;
                auth::issue_pair(tx, row.user_id, &row.session_id, &row.device_name, lifetimes, now)
            })
        })
        .await?;
    Ok(Json(tokens).into_response())
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response> {
    let request: RefreshRequest = json_body(body, &headers, MAX_SMALL_BODY).await?;
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
    let bytes = read_body(body, &headers, MAX_BATCH_BYTES).await.map_err(|error| match error {
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
    let outcome = state
        .run(move |state| {
            store::write(state.database().as_ref(), |tx| sync::push(tx, &caller, state.clock(), &request, hlc::wall_ms()))
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

// Blobs.

fn check_digest(sha256: &str) -> Result<()> {
    if is_sha256(sha256) {
        Ok(())
    } else {
        Err(Error::bad_request("invalid_digest", "a blob is named by its SHA-256 in lowercase hex"))
    }
}

async fn blob_exists(State(state): State<AppState>, headers: HeaderMap, Path(sha256): Path<String>) -> Result<Response> {
    state.caller(&headers).await?;
    check_digest(&sha256)?;
    let digest = sha256.clone();
    let blob = state.run(move |state| store::read(state.database().as_ref(), |tx| tx.blob(&digest))).await?;
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
    // A blob is readable by its uploader and by anyone whose villages hold a photo naming it;
    // to everyone else it does not exist.
    let blob: Option<BlobMeta> = state
        .run(move |state| {
            store::read(state.database().as_ref(), |tx| {
                let Some(blob) = tx.blob(&digest)? else { return Ok(None) };
                let visible = blob.uploaded_by == lookup_caller.user_id || tx.photo_in_scopes(&digest, &lookup_caller.scopes)?;
                Ok(visible.then_some(blob))
            })
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
    let request: UploadRequest = json_body(body, &headers, MAX_SMALL_BODY).await?;
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
                if let Some(blob) = tx.blob(&request.sha256)? {
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
    let bytes = read_body(body, &headers, MAX_CHUNK_BYTES).await?;
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
                tx.put_blob(&blob, hlc::wall_ms())?;
                tx.delete_upload(&upload.id)
            })?;
            Ok(end)
        })
        .await?;
    Ok((StatusCode::NO_CONTENT, [("upload-offset", new_offset.to_string()), ("tus-resumable", "1.0.0".to_owned())]).into_response())
}

// The platform's endpoints.

fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<()> {
    let Some(expected) = &state.inner.settings.admin_token else {
        return Err(Error::not_found("the platform endpoints are disabled on this server"));
    };
    let given = bearer(headers).unwrap_or_default();
    // Comparing digests keeps the comparison's time independent of where the strings differ.
    if Sha256::digest(given.as_bytes()) == Sha256::digest(expected.as_bytes()) {
        Ok(())
    } else {
        Err(Error::unauthorized("the platform endpoints need the admin token"))
    }
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
    require_admin(&state, &headers)?;
    let request: VillageRequest = json_body(body, &headers, MAX_SMALL_BODY).await?;
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

async fn admin_assistant(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response> {
    require_admin(&state, &headers)?;
    let request: AssistantRequest = json_body(body, &headers, MAX_SMALL_BODY).await?;
    platform::check_username(&request.username)?;
    platform::check_password(&request.password)?;
    let id = state
        .run(move |state| {
            let hash = platform::new_password_hash(&request.password, state.inner.settings.password_cost)?;
            store::write(state.database().as_ref(), |tx| platform::add_assistant(tx, &request.username, &hash, &request.villages))
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

async fn admin_assign(State(state): State<AppState>, headers: HeaderMap, Path(username): Path<String>, body: Body) -> Result<Response> {
    require_admin(&state, &headers)?;
    let request: AssignRequest = json_body(body, &headers, MAX_SMALL_BODY).await?;
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

async fn admin_status(State(state): State<AppState>, headers: HeaderMap, Path(username): Path<String>, body: Body) -> Result<Response> {
    require_admin(&state, &headers)?;
    let request: StatusRequest = json_body(body, &headers, MAX_SMALL_BODY).await?;
    state
        .run(move |state| {
            store::write(state.database().as_ref(), |tx| {
                let id = platform::user_id(tx, &username)?;
                tx.set_disabled(id, request.disabled)?;
                if request.disabled {
                    tx.delete_user_tokens(id)?;
                }
                Ok(())
            })
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn admin_moderation(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>, body: Body) -> Result<Response> {
    require_admin(&state, &headers)?;
    let request: ModerationRequest = json_body(body, &headers, MAX_SMALL_BODY).await?;
    state
        .run(move |state| store::write(state.database().as_ref(), |tx| platform::moderate(tx, state.clock(), &id, &request)))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn admin_submissions(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response> {
    require_admin(&state, &headers)?;
    let submissions =
        state.run(move |state| store::read(state.database().as_ref(), |tx| platform::listing_submissions(tx, &id))).await?;
    Ok(Json(submissions).into_response())
}

async fn admin_sale(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response> {
    require_admin(&state, &headers)?;
    let request: SaleRequest = json_body(body, &headers, MAX_SMALL_BODY).await?;
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
