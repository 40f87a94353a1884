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
    /// A column held another kind of value than the query expects (e.g. text where an integer
    /// belongs).
    #[error("storage: expected {expected} column, found {found}")]
    ColumnKind {
        /// The kind the query expects (`an integer`, `a text`, `a bytes`).
        expected: &'static str,
        /// The kind of value found (`NULL`, `an integer`, `text`, `bytes`).
        found: &'static str,
    },
    /// A PostgreSQL column of a type the server never uses.
    #[error("storage: column {column} has unexpected type {type_name}")]
    ColumnType {
        /// The column's name.
        column: String,
        /// The type's name.
        type_name: String,
    },
    /// A floating-point value read from storage that is no exact 64-bit integer (every column the
    /// server uses is an integer, text or bytes): it is refused instead of being cut to one.
    #[error("storage: column {column} holds {value}, which is no exact integer")]
    InexactNumber {
        /// The column's index in the query's answer.
        column: usize,
        /// The value read.
        value: f64,
    },
    /// A query that always answers a row answered none (`sync_counter`, `sync_epoch`, an insert
    /// returning its id, a count); the text names which.
    #[error("storage: {0} returned no row")]
    MissingRow(&'static str),
    /// A transaction committed without its work producing a result.
    #[error("storage: the transaction finished without a result")]
    NoResult,
    /// A value could not be encoded as JSON (a push response to store, a request to digest).
    #[error("encoding: {0}")]
    Encoding(#[source] serde_json::Error),
    /// A stored field value is not JSON.
    #[error("storage: stored value is not JSON: {0}")]
    StoredValue(#[source] serde_json::Error),
    /// The database records a migration under another name than this build has.
    #[error("storage: migration {version} is recorded as {recorded} but this version has {known}")]
    MigrationRenamed {
        /// The migration's number.
        version: i64,
        /// The name the database records.
        recorded: String,
        /// The name this build has.
        known: &'static str,
    },
    /// The database records a migration this build does not know: a newer server wrote it.
    #[error("storage: the database has migration {version} ({name}) from a newer server")]
    MigrationFromNewerServer {
        /// The migration's number.
        version: i64,
        /// Its recorded name.
        name: String,
    },
    /// A PostgreSQL schema name that is not letters, digits and underscores.
    #[error("storage: schema name {0:?} must be letters, digits and underscores")]
    SchemaName(String),
    /// The PostgreSQL server runs with `fsync = off`.
    #[error(
        "storage: the PostgreSQL server runs with fsync = off, so a power cut can lose or corrupt changes it has already \
         acknowledged to devices, which then no longer hold them; set fsync = on in postgresql.conf and reload \
         the server before starting furrow-server"
    )]
    FsyncOff,
    /// No pooled database connection became free in time.
    #[error("storage: no database connection became free in time")]
    PoolExhausted,
    /// A pooled connection was missing from its lease.
    #[error("storage: the lease lost its connection")]
    LeaseLost,
    /// A lock was poisoned by a panic while held; the text names the lock.
    #[error("storage: the {0} lock was poisoned by a panic")]
    Poisoned(&'static str),
    /// A blocking task running storage work failed (it panicked or was cancelled).
    #[error("storage: a storage task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// The operating system gave no random bytes.
    #[error("no randomness available: {0}")]
    Randomness(#[source] getrandom::Error),
    /// Argon2 refused its parameters.
    #[error("bad Argon2 parameters: {0}")]
    PasswordParams(#[source] argon2::Error),
    /// Hashing a password failed (its salt or the hash itself).
    #[error("password hashing failed: {0}")]
    PasswordHash(#[source] argon2::password_hash::Error),
    /// The password gate was closed, so no turn can be given.
    #[error("the password gate was closed")]
    GateClosed,
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
