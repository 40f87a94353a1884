//! Photo blobs over HTTP: ranged downloads of the blobs a caller may read, and resumable
//! uploads in chunks (tus semantics: a cut chunk keeps the bytes that arrived).

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use furrow_contract::hlc;
use serde::{Deserialize, Serialize};

use super::body::{json_body, read_body_keeping};
use super::{AppState, MAX_BLOB_BYTES, MAX_CHUNK_BYTES, MAX_SMALL_BODY};
use crate::auth::{self, Caller};
use crate::blobs::is_sha256;
use crate::error::{Error, Result};
use crate::store::{self, BlobMeta, Upload};

/// How many locks the chunks of uploads take turns on (an upload always takes the same one).
pub(super) const UPLOAD_TURNS: usize = 64;

/// 400 `invalid_digest` unless `sha256` names a blob.
fn check_digest(sha256: &str) -> Result<()> {
    if is_sha256(sha256) {
        Ok(())
    } else {
        Err(Error::bad_request("invalid_digest", "a blob is named by its SHA-256 in lowercase hex"))
    }
}

/// `HEAD /blobs/{sha256}`: whether the caller may read a blob, with its size and type.
pub(super) async fn blob_exists(State(state): State<AppState>, caller: Caller, Path(sha256): Path<String>) -> Result<Response> {
    check_digest(&sha256)?;
    let digest = sha256.clone();
    // Only a blob the caller may read exists for them: its existence and size are not told to
    // assistants of other villages.
    let blob = state.read(move |_, tx| tx.readable_blob(&digest, caller.user_id, &caller.scopes)).await?;
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

/// `GET /blobs/{sha256}`: a blob's bytes, whole or one range of them.
pub(super) async fn download_blob(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(sha256): Path<String>,
) -> Result<Response> {
    check_digest(&sha256)?;
    let digest = sha256.clone();
    // A blob is readable by its uploader and in the villages it was granted to (where it was
    // uploaded, or named by a photo of someone who could read it); to everyone else it does not
    // exist.
    let blob: Option<BlobMeta> = state.read(move |_, tx| tx.readable_blob(&digest, caller.user_id, &caller.scopes)).await?;
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

/// `POST /blobs/uploads`: starts an upload, or reports a blob the caller may already read.
pub(super) async fn create_upload(State(state): State<AppState>, caller: Caller, headers: HeaderMap, body: Body) -> Result<Response> {
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
        .write(move |_, tx| {
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

/// An upload of the caller's.
async fn own_upload(state: &AppState, caller: &Caller, id: String) -> Result<Upload> {
    let user_id = caller.user_id;
    let upload = state.read(move |_, tx| tx.upload(&id)).await?;
    // Another user's upload is answered exactly like a missing one.
    upload.filter(|upload| upload.user_id == user_id).ok_or_else(|| Error::not_found("no such upload"))
}

/// `HEAD /blobs/uploads/{id}`: where an upload stands.
pub(super) async fn upload_offset(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Response> {
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

/// `PATCH /blobs/uploads/{id}`: the next chunk of an upload; the last one makes the blob.
pub(super) async fn upload_chunk(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response> {
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
}
