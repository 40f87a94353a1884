//! Sync over HTTP: push and pull, each checked against the session's device and the schema
//! version the client names.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use furrow_contract::hlc;
use furrow_contract::wire::{PushRequest, MAX_BATCH_BYTES, SCHEMA_VERSION};

use super::body::{json_text, parse_json, read_body};
use super::AppState;
use crate::auth::Caller;
use crate::error::{Error, Result};
use crate::sync;

/// The schema version a request names in `X-Schema-Version`, if any: a version this server
/// cannot serve is refused (400 or 409) before the bearer token is looked at, so a handler takes
/// this argument before its [`Caller`].
pub(super) struct SchemaVersion(Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for SchemaVersion {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self> {
        schema_header(&parts.headers).map(Self)
    }
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

/// `POST /sync/v1/push`: applies a batch of field changes (docs/server.md, Push).
pub(super) async fn push(
    State(state): State<AppState>,
    _: SchemaVersion,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let bytes = read_body(&state, body, &headers, MAX_BATCH_BYTES).await.map_err(|error| match error {
        Error::Api { status: StatusCode::PAYLOAD_TOO_LARGE, headers, .. } => headers.into_iter().fold(
            Error::too_large(format!("a push body is at most {MAX_BATCH_BYTES} bytes; split the batch")),
            |error, (name, value)| error.with_header(name, value),
        ),
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
        .write(move |state, tx| {
            // A session signed in without naming its device is bound to the first one that
            // pushes with it.
            if caller.client_id.is_none() {
                tx.bind_session(&caller.session_id, &device)?;
            }
            sync::push(tx, &caller, state.clock(), &request, hlc::wall_ms())
        })
        .await?;
    state.clock().observe(outcome.max_hlc);
    let mut response = json_text(StatusCode::OK, outcome.body);
    if outcome.replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `GET /sync/v1/pull`: the next page of rows after a cursor (docs/server.md, Pull).
pub(super) async fn pull(
    State(state): State<AppState>,
    SchemaVersion(schema_version): SchemaVersion,
    caller: Caller,
    headers: HeaderMap,
    query: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response> {
    let schema_version = schema_version.unwrap_or(SCHEMA_VERSION);
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
        .read(move |_, tx| sync::pull(tx, &caller, cursor.as_deref(), limit, schema_version, hlc::wall_ms()))
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
