//! Requests' bodies and text: a body is read whole within its size limit, its idle timeout and
//! a least pace; JSON is parsed only after its strings are checked for control characters, and
//! so are paths and queries.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use super::AppState;
use crate::error::{Error, Result};

/// Whether `character` is a control character (Unicode category Cc).
fn is_control(character: char) -> bool {
    character.is_control()
}

/// The first control character of `text` that is not one of `allowed`.
pub fn control_character(text: &str, allowed: &[char]) -> Option<char> {
    text.chars().find(|character| is_control(*character) && !allowed.contains(character))
}

pub use crate::error::control_character_error;

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
pub(super) async fn refuse_control_characters(request: Request, next: axum::middleware::Next) -> Response {
    let uri = request.uri();
    let places = [("the path", Some(uri.path())), ("the query", uri.query())];
    for (place, text) in places {
        if let Some(character) = text.and_then(|text| control_character(&percent_decoded(text), &[])) {
            return control_character_error(place, character).into_response();
        }
    }
    next.run(request).await
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
pub(super) async fn read_body(state: &AppState, body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes> {
    let (bytes, outcome) = read_body_keeping(state, body, headers, limit).await;
    outcome.map(|()| Bytes::from(bytes))
}

/// Reads a body like [`read_body`], and also hands back what arrived before it was cut or
/// stalled: an upload chunk's received bytes are kept (tus semantics), so a drop costs only the
/// bytes in flight. A body over the limit keeps nothing.
pub(super) async fn read_body_keeping(state: &AppState, body: Body, headers: &HeaderMap, limit: usize) -> (Vec<u8>, Result<()>) {
    match read_body_into(state, body, headers, limit).await {
        Ok(bytes) => (bytes, Ok(())),
        Err((bytes, error)) => (bytes, Err(error)),
    }
}

async fn read_body_into(state: &AppState, body: Body, headers: &HeaderMap, limit: usize) -> std::result::Result<Vec<u8>, (Vec<u8>, Error)> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|value| value.to_str().ok()).and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err((Vec::new(), unread_too_large(limit)));
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
                return Err((Vec::new(), unread_too_large(limit)));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// 413 for a body refused before it was read to its end. The rest of the body is still on the
/// connection, so the answer closes it: a client that sent the next request on the same
/// connection would otherwise find it cut under that request.
fn unread_too_large(limit: usize) -> Error {
    Error::too_large(format!("the body is larger than {limit} bytes")).with_header("connection", "close".to_owned())
}

/// Parses a JSON body, refusing control characters in any of its strings first (newlines and
/// tabs excepted, which notes may hold; which text may hold them is checked per field): no field
/// of this contract holds one, and PostgreSQL cannot store a NUL.
pub(super) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
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

/// Reads a body of at most `limit` bytes ([`read_body`]) and parses it as JSON ([`parse_json`]).
pub(super) async fn json_body<T: DeserializeOwned>(state: &AppState, body: Body, headers: &HeaderMap, limit: usize) -> Result<T> {
    let bytes = read_body(state, body, headers, limit).await?;
    parse_json(&bytes)
}

/// An answer whose body is JSON text made already (a stored push response, byte for byte).
pub(super) fn json_text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
