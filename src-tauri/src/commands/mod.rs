//! The commands the front end calls, one module per domain. Each is a few lines over the core
//! and runs off the UI thread (async commands, store work on a blocking thread).

pub mod excel;
pub mod households;
pub mod listings;
pub mod outcomes;
pub mod photos;
pub mod reference;
pub mod settings;
pub mod sync;
pub mod training;
pub mod vault;
pub mod visits;
