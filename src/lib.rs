//! Furrow (田垄): the core of the offline-first field tool of e-commerce poverty alleviation
//! assistants (电商扶贫助理).
//!
//! The core holds an assistant's whole caseload in a local SQLite store ([`store`]), with every
//! domain rule ([`domain`], [`validate`]) and every write going through one path ([`record`])
//! that stamps each changed field with a hybrid logical clock ([`hlc`]) and queues it for sync.
//! The roster search index ([`search`]) and the photo files with their uploads ([`media`]) are
//! kept beside the records. It knows nothing of Tauri or of HTTP frameworks.

pub mod audit;
pub mod backup;
pub mod domain;
pub mod encryption;
pub mod error;
pub mod export;
pub mod import;
pub mod media;
pub mod record;
pub mod report;
pub mod search;
pub mod store;
pub mod sync;
pub mod vault;

pub use furrow_contract::{codes, hlc, schema, validate};

pub use error::{Error, FieldError, Result};
pub use store::{OpenOptions, Store};
