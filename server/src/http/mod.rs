//! The HTTP contract (docs/sync.md sections 4 and 10): the router, its handlers and the
//! server loop. Handlers are thin: they read and check the request, run the storage work on a
//! blocking thread, and answer with the wire types of `furrow_contract::wire`.
//!
//! The parts: `serve` (the connection loop and its limits), `body` (reading bodies within their
//! limits and pace, and the checks of text in requests), and the handlers by concern: `auth`
//! (sign-in, refresh, sign-out), `sync` (push and pull), `blobs` (photos) and `admin` (the
//! platform's endpoints, their guard and the audit log). A handler names the signed-in user it
//! serves by taking a [`Caller`] argument, whose extractor checks the bearer token.

mod admin;
mod auth;
mod blobs;
mod body;
mod serve;
mod sync;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, head, post};
use axum::{Json, Router};
use furrow_contract::hlc;
use furrow_contract::wire::SCHEMA_VERSION;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

pub use admin::{AdminIdentity, AssignRequest, AssistantRequest, AuditQuery, StatusRequest, VillageRequest};
pub use blobs::{UploadCreated, UploadRequest};
pub use body::{control_character, control_character_error};
pub use serve::{serve, serve_until, ConnectionLimits};

use crate::auth::{self as accounts, Caller, PasswordCost, PasswordGate, SignInLimiter, SignInPolicy, TokenLifetimes};
use crate::blobs::BlobStore;
use crate::error::{Error, Result};
use crate::platform::ServerClock;
use crate::store::{self, Database, Tx};

/// The OpenAPI document of this contract, kept in docs/openapi.yaml.
pub const OPENAPI_YAML: &str = include_str!("../../../docs/openapi.yaml");

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

impl AppState {
    /// State over a database and a blob store.
    pub fn new(database: Arc<dyn Database>, blobs: Arc<dyn BlobStore>, settings: Settings) -> Result<Self> {
        if let Some(token) = &settings.admin_token {
            accounts::check_admin_token(token)?;
        }
        let dummy_hash = accounts::dummy_hash(settings.password_cost)?;
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
                upload_turns: (0..blobs::UPLOAD_TURNS).map(|_| tokio::sync::Mutex::new(())).collect(),
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

    /// One housekeeping round (see [`crate::sync::housekeeping`]), deleting the partial files of
    /// abandoned uploads too. Blocking.
    pub fn housekeeping(&self) -> Result<crate::sync::Housekeeping> {
        let done = store::write(self.database().as_ref(), |tx| crate::sync::housekeeping(tx, hlc::wall_ms()))?;
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
        tokio::task::spawn_blocking(move || work(&state)).await.map_err(Error::Task)?
    }

    /// Runs `work` in one write transaction on a blocking thread; every handler's write goes
    /// through here.
    pub async fn write<T: Send + 'static>(
        &self,
        mut work: impl FnMut(&AppState, &mut Tx<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run(move |state| store::write(state.database().as_ref(), |tx| work(state, tx))).await
    }

    /// Runs `work` in one read transaction on a blocking thread.
    pub async fn read<T: Send + 'static>(
        &self,
        mut work: impl FnMut(&AppState, &mut Tx<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.run(move |state| store::read(state.database().as_ref(), |tx| work(state, tx))).await
    }
}

/// The signed-in user a request comes from: a handler taking a [`Caller`] argument is reached
/// only with a live access token (`Authorization: Bearer …`), and is refused with 401 otherwise.
/// The token is looked up in a read transaction, before any later argument is read.
impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = bearer(&parts.headers).ok_or_else(|| Error::unauthorized("send Authorization: Bearer <access token>"))?;
        state.read(move |_, tx| accounts::authenticate(tx, &token, hlc::wall_ms())).await
    }
}

/// The bearer token of a request's `Authorization` header.
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
        .route("/auth/v1/login", post(auth::login))
        .route("/auth/v1/refresh", post(auth::refresh))
        .route("/auth/v1/logout", post(auth::logout))
        .route("/sync/v1/push", post(sync::push))
        .route("/sync/v1/pull", get(sync::pull))
        .merge(
            Router::new()
                .route("/admin/v1/villages", post(admin::village))
                .route("/admin/v1/assistants", post(admin::assistant))
                .route("/admin/v1/assistants/{username}/villages", post(admin::assign))
                .route("/admin/v1/assistants/{username}/status", post(admin::status))
                .route("/admin/v1/listings/{id}/moderation", post(admin::moderation))
                .route("/admin/v1/listings/{id}/submissions", get(admin::submissions))
                .route("/admin/v1/sales", post(admin::sale))
                .route("/admin/v1/audit", get(admin::audit_log))
                .route_layer(axum::middleware::from_fn_with_state(state.clone(), admin::require_admin)),
        )
        .layer(CompressionLayer::new())
        .layer(RequestDecompressionLayer::new());
    let body_idle_timeout = state.inner.settings.connections.body_idle_timeout;
    let blob_routes = Router::new()
        .route("/blobs/uploads", post(blobs::create_upload))
        .route("/blobs/uploads/{id}", head(blobs::upload_offset).patch(blobs::upload_chunk))
        .route("/blobs/{sha256}", get(blobs::download_blob).head(blobs::blob_exists));
    json_api
        .merge(blob_routes)
        .fallback(not_found)
        .layer(RequestBodyTimeoutLayer::new(body_idle_timeout))
        .layer(axum::middleware::from_fn(body::refuse_control_characters))
        .layer(axum::middleware::map_response(stamp_server_time))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).expect("header"));
        headers
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
