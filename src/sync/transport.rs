//! How the engine reaches the server: the [`Transport`] trait, one method per endpoint of the HTTP
//! contract (docs/sync.md sections 4 and 10), and [`HttpTransport`], its implementation over
//! HTTP. The engine's rules are tested over other implementations of the same trait.

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, LOCATION};

use crate::sync::error::TransportError;
use crate::sync::wire::{ErrorBody, LoginRequest, PullResponse, PushRequest, PushResponse, RefreshRequest, TokenResponse};

/// The headers every sync request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestMeta {
    /// The bearer token; empty for sign-in.
    pub access_token: String,
    /// The device's node id as a UUID (`X-Client-Id`).
    pub client_id: String,
    /// `<client>-<session>-<n>`, for the server's log (`X-Request-Id`).
    pub request_id: String,
}

/// One endpoint per method. Implementations must not retry on their own: the engine decides what
/// to retry, so that a batch is never re-sent under a different id.
pub trait Transport: Send + Sync {
    /// `POST /auth/v1/login`.
    fn login(&self, request: &LoginRequest, meta: &RequestMeta) -> Result<TokenResponse, TransportError>;
    /// `POST /auth/v1/refresh`.
    fn refresh(&self, request: &RefreshRequest, meta: &RequestMeta) -> Result<TokenResponse, TransportError>;
    /// `POST /auth/v1/logout`.
    fn logout(&self, request: &RefreshRequest, meta: &RequestMeta) -> Result<(), TransportError>;
    /// `POST /sync/v1/push` with `Idempotency-Key: <batch_id>`.
    fn push(&self, request: &PushRequest, meta: &RequestMeta) -> Result<PushResponse, TransportError>;
    /// `GET /sync/v1/pull?cursor=..&limit=..`.
    fn pull(&self, cursor: Option<&str>, limit: usize, meta: &RequestMeta) -> Result<PullResponse, TransportError>;
    /// `HEAD /blobs/{sha256}`: whether the server already has the blob.
    fn blob_exists(&self, sha256: &str, meta: &RequestMeta) -> Result<bool, TransportError>;
    /// `POST /blobs/uploads`: starts an upload; returns its location.
    fn start_upload(&self, sha256: &str, size: u64, mime: &str, meta: &RequestMeta) -> Result<String, TransportError>;
    /// `HEAD /blobs/uploads/{id}`: how many bytes the server holds.
    fn upload_offset(&self, location: &str, meta: &RequestMeta) -> Result<u64, TransportError>;
    /// `PATCH /blobs/uploads/{id}`: sends a chunk at `offset`; returns the new offset.
    fn upload_chunk(&self, location: &str, offset: u64, chunk: &[u8], meta: &RequestMeta) -> Result<u64, TransportError>;
    /// `GET /blobs/{sha256}` from byte `offset` on (a `Range` request when `offset > 0`): writes
    /// the bytes into `sink` as they arrive, so that after a drop the bytes received are kept.
    /// Returns the bytes written.
    fn download_blob(&self, sha256: &str, offset: u64, sink: &mut dyn std::io::Write, meta: &RequestMeta) -> Result<u64, TransportError>;
}

/// The HTTP transport (reqwest, blocking: the engine runs on a background thread).
#[derive(Debug, Clone)]
pub struct HttpTransport {
    base_url: String,
    client: Client,
    compress_requests: bool,
}

impl HttpTransport {
    /// A transport to the server at `base_url` (e.g. `https://sync.example.cn`).
    pub fn new(base_url: &str) -> Result<Self, TransportError> {
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(120))
            .gzip(true)
            .build()
            .map_err(|error| TransportError::Network(Box::new(error)))?;
        Ok(Self { base_url: base_url.trim_end_matches('/').to_owned(), client, compress_requests: true })
    }

    /// The same transport sending push bodies uncompressed (for a server that does not accept
    /// `Content-Encoding: gzip`, and for measuring).
    pub fn without_request_compression(mut self) -> Self {
        self.compress_requests = false;
        self
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{}", self.base_url, path)
        }
    }

    fn with_meta(&self, builder: RequestBuilder, meta: &RequestMeta) -> RequestBuilder {
        let mut headers = HeaderMap::new();
        if !meta.access_token.is_empty() {
            if let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", meta.access_token)) {
                headers.insert(AUTHORIZATION, value);
            }
        }
        if let Ok(value) = HeaderValue::from_str(&meta.client_id) {
            headers.insert("x-client-id", value);
        }
        headers.insert("x-schema-version", HeaderValue::from(crate::sync::wire::SCHEMA_VERSION));
        if let Ok(value) = HeaderValue::from_str(&meta.request_id) {
            headers.insert("x-request-id", value);
        }
        builder.headers(headers)
    }
}

fn gzip(body: &[u8]) -> Result<Vec<u8>, TransportError> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::default());
    encoder.write_all(body).map_err(|error| TransportError::Decode(Box::new(error)))?;
    encoder.finish().map_err(|error| TransportError::Decode(Box::new(error)))
}

fn network(error: reqwest::Error) -> TransportError {
    TransportError::Network(Box::new(error))
}

/// Turns an answer into its body, or an error carrying the status and the error body.
fn checked(response: Response) -> Result<Response, TransportError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().unwrap_or_default();
    let body = serde_json::from_str::<ErrorBody>(&text).ok();
    Err(TransportError::Status { status: status.as_u16(), body, text })
}

fn json<T: serde::de::DeserializeOwned>(response: Response) -> Result<T, TransportError> {
    let response = checked(response)?;
    // The body is read whole before decoding, so a connection dropped mid-body is a network
    // error (retry) rather than a decoding error.
    let bytes = response.bytes().map_err(network)?;
    serde_json::from_slice(&bytes).map_err(|error| TransportError::Decode(Box::new(error)))
}

fn offset_header(response: &Response) -> Result<u64, TransportError> {
    response
        .headers()
        .get("upload-offset")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| TransportError::Decode("the answer has no Upload-Offset".into()))
}

impl Transport for HttpTransport {
    fn login(&self, request: &LoginRequest, meta: &RequestMeta) -> Result<TokenResponse, TransportError> {
        let builder = self.client.post(self.url("/auth/v1/login")).json(request);
        json(self.with_meta(builder, meta).send().map_err(network)?)
    }

    fn refresh(&self, request: &RefreshRequest, meta: &RequestMeta) -> Result<TokenResponse, TransportError> {
        let builder = self.client.post(self.url("/auth/v1/refresh")).json(request);
        json(self.with_meta(builder, meta).send().map_err(network)?)
    }

    fn logout(&self, request: &RefreshRequest, meta: &RequestMeta) -> Result<(), TransportError> {
        let builder = self.client.post(self.url("/auth/v1/logout")).json(request);
        checked(self.with_meta(builder, meta).send().map_err(network)?)?;
        Ok(())
    }

    fn push(&self, request: &PushRequest, meta: &RequestMeta) -> Result<PushResponse, TransportError> {
        let body = serde_json::to_vec(request).map_err(|error| TransportError::Decode(Box::new(error)))?;
        let mut builder = self
            .client
            .post(self.url("/sync/v1/push"))
            .header("idempotency-key", &request.batch_id)
            .header(CONTENT_TYPE, "application/json");
        // A batch of field changes compresses to a fraction of its size (ids and field names
        // repeat), which matters on the slow link in town; small bodies are sent as they are.
        if self.compress_requests && body.len() > 1024 {
            builder = builder.header(CONTENT_ENCODING, "gzip").body(gzip(&body)?);
        } else {
            builder = builder.body(body);
        }
        json(self.with_meta(builder, meta).send().map_err(network)?)
    }

    fn pull(&self, cursor: Option<&str>, limit: usize, meta: &RequestMeta) -> Result<PullResponse, TransportError> {
        let mut query: Vec<(&str, String)> = vec![("limit", limit.to_string())];
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        let builder = self.client.get(self.url("/sync/v1/pull")).query(&query);
        json(self.with_meta(builder, meta).send().map_err(network)?)
    }

    fn blob_exists(&self, sha256: &str, meta: &RequestMeta) -> Result<bool, TransportError> {
        let builder = self.client.head(self.url(&format!("/blobs/{sha256}")));
        let response = self.with_meta(builder, meta).send().map_err(network)?;
        if response.status().as_u16() == 404 {
            return Ok(false);
        }
        checked(response)?;
        Ok(true)
    }

    fn start_upload(&self, sha256: &str, size: u64, mime: &str, meta: &RequestMeta) -> Result<String, TransportError> {
        let body = serde_json::json!({ "sha256": sha256, "size": size, "mime": mime });
        let builder = self.client.post(self.url("/blobs/uploads")).json(&body);
        let response = checked(self.with_meta(builder, meta).send().map_err(network)?)?;
        response
            .headers()
            .get(LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| TransportError::Decode("the answer has no Location".into()))
    }

    fn upload_offset(&self, location: &str, meta: &RequestMeta) -> Result<u64, TransportError> {
        let builder = self.client.head(self.url(location));
        let response = checked(self.with_meta(builder, meta).send().map_err(network)?)?;
        offset_header(&response)
    }

    fn upload_chunk(&self, location: &str, offset: u64, chunk: &[u8], meta: &RequestMeta) -> Result<u64, TransportError> {
        let builder = self
            .client
            .patch(self.url(location))
            .header("upload-offset", offset)
            .header(CONTENT_TYPE, "application/offset+octet-stream")
            // A chunk may take as long as the link needs at 16 kbit/s plus half a minute: the
            // engine sizes chunks to pass in seconds, so this bounds a stalled link, not a slow one.
            .timeout(Duration::from_secs(30) + Duration::from_millis(chunk.len() as u64 / 2))
            .body(chunk.to_vec());
        let response = checked(self.with_meta(builder, meta).send().map_err(network)?)?;
        offset_header(&response)
    }

    fn download_blob(&self, sha256: &str, offset: u64, sink: &mut dyn std::io::Write, meta: &RequestMeta) -> Result<u64, TransportError> {
        let mut builder = self.client.get(self.url(&format!("/blobs/{sha256}")));
        if offset > 0 {
            builder = builder.header(reqwest::header::RANGE, format!("bytes={offset}-"));
        }
        let mut response = checked(self.with_meta(builder, meta).send().map_err(network)?)?;
        if offset > 0 && response.status().as_u16() != 206 {
            return Err(TransportError::Decode("the server ignored the range of a resumed download".into()));
        }
        response.copy_to(sink).map_err(network)
    }
}
