//! `furrow-server`: the platform's sync service of Furrow (田垄).
//!
//! Devices sign in ([`auth`]), push field changes and pull pages of rows ([`sync`]) and upload
//! photos ([`blobs`]) over the HTTP contract of docs/sync.md ([`http`]); the platform writes
//! moderation results and sales ([`platform`]). Storage sits behind a trait with a SQLite and a
//! PostgreSQL backend ([`store`]).

#![warn(missing_docs)]

pub mod auth;
pub mod blobs;
pub mod error;
pub mod http;
pub mod platform;
pub mod rows;
pub mod store;
pub mod sync;
#[cfg(feature = "testing")]
pub mod testing;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::{Error, Result};
pub use http::{router, serve, AppState, Settings};

use store::Database;

/// Where the server keeps its data.
#[derive(Debug, Clone)]
pub enum Storage {
    /// A SQLite file `furrow.db` in the data directory.
    Sqlite {
        /// The data directory.
        data_dir: PathBuf,
    },
    /// A PostgreSQL database, optionally inside a schema of its own.
    Postgres {
        /// The connection URL.
        url: String,
        /// The schema (created if missing); the connection's default when absent.
        schema: Option<String>,
    },
}

/// The SQLite file inside a data directory.
pub fn sqlite_path(data_dir: &Path) -> PathBuf {
    data_dir.join("furrow.db")
}

/// Opens (and migrates) the database. Blocking: call it outside async code or in
/// `spawn_blocking`.
pub fn open_database(storage: &Storage) -> Result<Arc<dyn Database>> {
    Ok(match storage {
        Storage::Sqlite { data_dir } => {
            std::fs::create_dir_all(data_dir)?;
            Arc::new(store::sqlite::SqliteDatabase::open(&sqlite_path(data_dir))?)
        }
        Storage::Postgres { url, schema } => Arc::new(store::postgres::PostgresDatabase::open(url, schema.as_deref())?),
    })
}
