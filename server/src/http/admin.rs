//! The platform's endpoints over HTTP (`/admin/v1`): their guard (a signed-in admin or the
//! bootstrap token, within the sign-in limiter), the audit log, and the handlers for villages,
//! accounts, moderation and sales.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use furrow_contract::hlc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::body::json_body;
use super::{bearer, client_address, AppState, MAX_SMALL_BODY};
use crate::auth;
use crate::error::{Error, Result};
use crate::platform::{self, ModerationRequest, SaleRequest};
use crate::store::{self, AuditEntry};

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
pub(super) async fn require_admin(State(state): State<AppState>, mut request: Request, next: axum::middleware::Next) -> Response {
    let address = client_address(&state, &request);
    match state.inner.limiter.check_noting(ADMIN_LIMIT_KEY, &address) {
        Ok(()) => {}
        Err(refusal) => {
            let seconds = auth::retry_after_seconds(refusal.wait);
            // Someone guessing the bootstrap token or an admin's token: recorded once per
            // address and limiter window, as refused sign-ins are, so a flood cannot fill the log.
            if refusal.first_in_window {
                let state = state.clone();
                let detail = format!("refused for {seconds} s; further refusals from this address until then are not recorded");
                let subject = format!("{} {}", request.method(), request.uri().path());
                let address = address.clone();
                let _ = tokio::task::spawn_blocking(move || audit(&state, "admin_limited", "unknown", &address, &subject, &detail)).await;
            }
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
        match state.read(move |_, tx| auth::authenticate_admin(tx, &token, hlc::wall_ms())).await {
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

/// Appends an entry to the audit log in its own transaction. Blocking. A failure is logged and
/// does not fail the request the entry is about.
pub(super) fn audit(state: &AppState, kind: &str, actor: &str, address: &str, subject: &str, detail: &str) {
    let entry = audit_entry(kind, actor, address, subject, detail);
    if let Err(error) = store::write(state.database().as_ref(), |tx| tx.audit(&entry)) {
        tracing::warn!(%error, kind, "an audit log entry could not be written");
    }
}

/// An audit log entry stamped now; text is cut to 200 characters so a long name cannot bloat it.
pub(super) fn audit_entry(kind: &str, actor: &str, address: &str, subject: &str, detail: &str) -> AuditEntry {
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

/// `POST /admin/v1/villages` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VillageRequest {
    /// The 12-digit administrative division code.
    pub code: String,
    /// The name.
    pub name: String,
}

/// `POST /admin/v1/villages`: adds a village, or renames it.
pub(super) async fn village(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response> {
    let request: VillageRequest = json_body(&state, body, &headers, MAX_SMALL_BODY).await?;
    platform::check_village(&request.code, &request.name)?;
    let created = state
        .write(move |state, tx| Ok((platform::add_village(tx, state.clock(), &request.code, &request.name)?, request.code.clone())))
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

/// `POST /admin/v1/assistants`: creates an assistant's account.
pub(super) async fn assistant(
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

/// `POST /admin/v1/assistants/{username}/villages`: assigns villages to an account, or removes them.
pub(super) async fn assign(
    State(state): State<AppState>,
    Extension(admin): Extension<AdminIdentity>,
    headers: HeaderMap,
    Path(username): Path<String>,
    body: Body,
) -> Result<Response> {
    let request: AssignRequest = json_body(&state, body, &headers, MAX_SMALL_BODY).await?;
    let scopes = state
        .write(move |_, tx| {
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

/// `POST /admin/v1/assistants/{username}/status`: disables an account (revoking its sessions)
/// or enables it.
pub(super) async fn status(
    State(state): State<AppState>,
    Extension(admin): Extension<AdminIdentity>,
    headers: HeaderMap,
    Path(username): Path<String>,
    body: Body,
) -> Result<Response> {
    let request: StatusRequest = json_body(&state, body, &headers, MAX_SMALL_BODY).await?;
    state
        .write(move |_, tx| {
            let id = platform::user_id(tx, &username)?;
            tx.set_disabled(id, request.disabled)?;
            if request.disabled {
                tx.delete_user_tokens(id)?;
            }
            let detail = if request.disabled { "account disabled, its sessions revoked" } else { "account enabled" };
            tx.audit(&audit_entry("scope_change", &admin.actor(), &admin.address, &username, detail))?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /admin/v1/listings/{id}/moderation`: a verdict on a listing's latest submission.
pub(super) async fn moderation(
    State(state): State<AppState>,
    Extension(admin): Extension<AdminIdentity>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response> {
    let request: ModerationRequest = json_body(&state, body, &headers, MAX_SMALL_BODY).await?;
    state.write(move |state, tx| platform::moderate(tx, state.clock(), &admin.writer(), &id, &request)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /admin/v1/listings/{id}/submissions`: a listing's submissions, oldest first.
pub(super) async fn submissions(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let submissions = state.read(move |_, tx| platform::listing_submissions(tx, &id)).await?;
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

/// `GET /admin/v1/audit`: a page of the audit log, newest first.
pub(super) async fn audit_log(State(state): State<AppState>, query: std::result::Result<Query<AuditQuery>, QueryRejection>) -> Result<Response> {
    let Query(query) = query.map_err(|error| Error::bad_request("invalid_query", error.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::bad_request("invalid_query", "limit is 1 to 1000"));
    }
    let before = query.before.unwrap_or(i64::MAX);
    let entries = state.read(move |_, tx| tx.audit_entries(before, limit)).await?;
    Ok(Json(serde_json::json!({ "entries": entries })).into_response())
}

/// `POST /admin/v1/sales`: records a sale and its allocations.
pub(super) async fn sale(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response> {
    let request: SaleRequest = json_body(&state, body, &headers, MAX_SMALL_BODY).await?;
    let recorded = state.write(move |state, tx| platform::record_sale(tx, state.clock(), &request)).await?;
    Ok((StatusCode::CREATED, Json(recorded)).into_response())
}

