//! The contract the device (`furrow`) and the platform's sync server (`furrow-server`) share.
//!
//! Everything two sides must agree on lives here, once: the national codes and enumerations
//! ([`codes`]), the synced tables and their merge policies ([`schema`]), the field and record
//! checks ([`validate`]), the hybrid logical clock and the one codec of node ids ([`hlc`]), the
//! HTTP bodies ([`wire`]), and two pure rules: which stored change wins ([`merge`]) and which
//! fields a row carries on a page of a pull ([`pull`]). Nothing here touches a database or a
//! network, so every rule is tested as data.

pub mod codes;
pub mod error;
pub mod hlc;
pub mod merge;
pub mod pull;
pub mod schema;
pub mod validate;
pub mod wire;

pub use error::FieldError;
