//! The error of one field that failed a check, shared by the device and the server: a stable
//! code and a message in Chinese and English.

use serde::Serialize;

/// One field that failed a check: which field, a stable code, and a message in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FieldError {
    /// The field's name as in the schema (e.g. `phone`).
    pub field: String,
    /// A stable code the UI and tests match on (e.g. `invalid_phone`).
    pub code: String,
    /// The message in Chinese.
    pub message_zh: String,
    /// The message in English.
    pub message_en: String,
}

impl FieldError {
    /// A field error with the given code and messages.
    pub fn new(field: &str, code: &str, message_zh: impl Into<String>, message_en: impl Into<String>) -> Self {
        Self { field: field.to_owned(), code: code.to_owned(), message_zh: message_zh.into(), message_en: message_en.into() }
    }
}
