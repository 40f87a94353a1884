//! Sync with the platform: the wire contract shared with the server ([`wire`]).
pub mod wire;
