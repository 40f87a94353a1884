//! The server's one error type. Every handler returns it; it turns itself into an HTTP answer
//! whose body is the wire contract's [`ErrorBody`], so clients see one shape for every failure.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use furrow_contract::wire::ErrorBody;

/// Everything that can go wrong in the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A failure the client caused or must act on, with the status and stable code it gets.
    #[error("{code}: {message}")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// A stable code, e.g. `invalid_json`.
        code: &'static str,
        /// A message for people.
        message: String,
        /// The server's clock, sent on `clock_ahead`.
        server_time: Option<i64>,
        /// Extra headers (e.g. `Upload-Offset` on an offset mismatch).
        headers: Vec<(&'static str, String)>,
    },
    /// 409 `seq_reused`: a push carried a new change under a sequence number the server had
    /// already applied from that client (the device's database was restored from an old copy).
    /// Nothing of the batch is applied; the answer names the client's last applied `seq`, above
    /// which the device renumbers its changes.
    #[error("seq_reused: {message}")]
    SeqReused {
        /// A message for people.
        message: String,
        /// The greatest `seq` of the client the server has applied.
        last_applied_seq: i64,
    },
    /// A row that must be unique already exists (a user name, a village code).
    #[error("already exists: {0}")]
    Duplicate(String),
    /// An SQLite error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL error.
    #[error("postgres: {0}")]
    Postgres(#[from] postgres::Error),
    /// A file could not be read or written.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The storage is in a state the code does not understand (a failed migration check, a
    /// column of an unexpected type).
    #[error("storage: {0}")]
    Storage(String),
}

/// The server's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A client-facing error with a status, a stable code and a message.
    pub fn api(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Api { status, code, message: message.into(), server_time: None, headers: Vec::new() }
    }

    /// 400 with the given code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::api(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: the bearer token is missing, unknown, expired or revoked.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::api(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::api(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::api(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 413: the body or batch is larger than allowed.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::api(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    /// Adds a header to a client-facing error.
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        if let Self::Api { headers, .. } = &mut self {
            headers.push((name, value));
        }
        self
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Api { status, .. } => *status,
            Self::Duplicate(_) | Self::SeqReused { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let (body, headers) = match self {
            Self::Api { code, message, server_time, headers, .. } => {
                (ErrorBody { error: code.to_owned(), message, server_time, last_applied_seq: None }, headers)
            }
            Self::SeqReused { message, last_applied_seq } => (
                ErrorBody { error: "seq_reused".into(), message, server_time: None, last_applied_seq: Some(last_applied_seq) },
                Vec::new(),
            ),
            Self::Duplicate(what) => {
                (ErrorBody { error: "conflict".into(), message: format!("{what} already exists"), server_time: None, last_applied_seq: None }, Vec::new())
            }
            other => {
                // The cause stays in the server's log; the client learns only that it was not its fault.
                tracing::error!(error = %other, "request failed");
                (
                    ErrorBody { error: "internal".into(), message: "the server could not complete the request".into(),
                        server_time: None,
                        last_applied_seq: None,
                    },
                    Vec::new(),
                )
            }
        };
        let mut response = (status, Json(body)).into_response();
        for (name, value) in headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(HeaderName::from_static(name), value);
            }
        }
        response
    }
}
