//! The error every command returns, and its JSON shape across IPC.

use furrow::FieldError;
use serde::Serialize;
use ts_rs::TS;

/// An error as the front end receives it: a stable code, a message in both languages, and the
/// field errors of a failed validation so the form can show each beside its field.
///
/// The shape is `{code, message, message_zh, message_en, fields?}`; `message` is the English
/// text for logs, and `fields` is left out when there are none. A unit test pins it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(optional_fields)]
pub struct CommandError {
    /// A stable code (`validation`, `not_found`, `database`, `sync_unavailable`, ...).
    pub code: String,
    /// The message in English, for logs and developers.
    pub message: String,
    /// The message for the user in Chinese.
    pub message_zh: String,
    /// The message for the user in English.
    pub message_en: String,
    /// The fields that failed their checks, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldError>>,
}

impl CommandError {
    /// A background task that panicked or was cancelled before it could answer.
    pub fn background(error: impl std::fmt::Display) -> Self {
        CommandError::new("internal", format!("后台任务失败：{error}"), format!("background task failed: {error}"))
    }

    /// An error raised by the shell itself rather than the core.
    pub fn new(code: &str, message_zh: impl Into<String>, message_en: impl Into<String>) -> Self {
        let message_en = message_en.into();
        Self { code: code.to_owned(), message: message_en.clone(), message_zh: message_zh.into(), message_en, fields: None }
    }
}

impl From<furrow::Error> for CommandError {
    fn from(error: furrow::Error) -> Self {
        let fields = error.field_errors();
        Self {
            code: error.code().to_owned(),
            message: error.to_string(),
            message_zh: error.message_zh(),
            message_en: error.message_en(),
            fields: (!fields.is_empty()).then(|| fields.to_vec()),
        }
    }
}

impl From<furrow::sync::SyncError> for CommandError {
    fn from(error: furrow::sync::SyncError) -> Self {
        if let furrow::sync::SyncError::Store(inner) = error {
            return inner.into();
        }
        Self {
            code: error.code().to_owned(),
            message: error.to_string(),
            message_zh: error.message_zh(),
            message_en: error.to_string(),
            fields: None,
        }
    }
}

impl From<std::io::Error> for CommandError {
    fn from(error: std::io::Error) -> Self {
        furrow::Error::Io(error).into()
    }
}

/// The result type of every command.
pub type CommandResult<T> = Result<T, CommandError>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_validation_error_crosses_ipc_with_its_fields() {
        let error = furrow::Error::Validation(vec![FieldError::new(
            "phone",
            "invalid_phone",
            "手机号应为11位数字，以1开头",
            "must be an 11-digit mobile number starting with 1",
        )]);
        let value = serde_json::to_value(CommandError::from(error)).unwrap();
        assert_eq!(
            value,
            json!({
                "code": "validation",
                "message": "validation failed: phone: invalid_phone",
                "message_zh": "填写有误：手机号应为11位数字，以1开头",
                "message_en": "Please correct: must be an 11-digit mobile number starting with 1",
                "fields": [{
                    "field": "phone",
                    "code": "invalid_phone",
                    "message_zh": "手机号应为11位数字，以1开头",
                    "message_en": "must be an 11-digit mobile number starting with 1"
                }]
            })
        );
    }

    #[test]
    fn an_error_without_fields_leaves_them_out() {
        let error = furrow::Error::NotFound { table: "households".into(), id: "x".into() };
        let value = serde_json::to_value(CommandError::from(error)).unwrap();
        assert_eq!(
            value,
            json!({
                "code": "not_found",
                "message": "households x not found",
                "message_zh": "记录不存在或已删除",
                "message_en": "households x not found"
            })
        );
    }
}
