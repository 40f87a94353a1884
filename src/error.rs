//! The core's errors. Each has a stable code and a message in Chinese and English; causes are
//! kept as sources, never flattened into strings.

pub use furrow_contract::FieldError;

/// Everything that can go wrong in the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One or more fields failed their checks; nothing was written.
    #[error("validation failed: {}", summary(.0))]
    Validation(Vec<FieldError>),
    /// The record does not exist (or was deleted).
    #[error("{table} {id} not found")]
    NotFound {
        /// The table looked in.
        table: String,
        /// The id looked for.
        id: String,
    },
    /// The record may not be changed this way (e.g. an income record, which is append-only).
    #[error("{table} records cannot be {action}")]
    NotAllowed {
        /// The table.
        table: String,
        /// What was attempted.
        action: &'static str,
    },
    /// The database could not be opened with the given key (or is not a database).
    #[error("the database key is wrong or the file is not a Furrow database")]
    WrongKey,
    /// The applied migrations recorded in the database differ from the ones in this build.
    #[error("the database's migrations differ from this version's: {0}")]
    MigrationMismatch(String),
    /// The database was written by a newer version of Furrow.
    #[error("the database was created by a newer version (migration {0})")]
    NewerDatabase(String),
    /// An SQLite error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file could not be read or written.
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
    /// A value could not be converted to or from JSON.
    #[error("data error: {0}")]
    Json(#[from] serde_json::Error),
    /// A file the user gave (a roster to import) cannot be used as it is: what is wrong with it
    /// and what to do, in both languages. Nothing was written.
    #[error("{message_en}")]
    File {
        /// A stable code (`not_a_spreadsheet`, `password_protected`, `empty`, ...).
        code: &'static str,
        /// The message in Chinese.
        message_zh: String,
        /// The message in English.
        message_en: String,
    },
}

fn summary(errors: &[FieldError]) -> String {
    errors.iter().map(|error| format!("{}: {}", error.field, error.code)).collect::<Vec<_>>().join(", ")
}

impl Error {
    /// A stable code for the kind of error, for the UI and the IPC boundary.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation(_) => "validation",
            Error::NotFound { .. } => "not_found",
            Error::NotAllowed { .. } => "not_allowed",
            Error::WrongKey => "wrong_key",
            Error::MigrationMismatch(_) => "migration_mismatch",
            Error::NewerDatabase(_) => "newer_database",
            Error::Sqlite(_) => "database",
            Error::Io(_) => "io",
            Error::Json(_) => "data",
            Error::File { code, .. } => code,
        }
    }

    /// A message for the user in Chinese.
    pub fn message_zh(&self) -> String {
        match self {
            Error::Validation(errors) => {
                let fields = errors.iter().map(|error| error.message_zh.as_str()).collect::<Vec<_>>().join("；");
                format!("填写有误：{fields}")
            }
            Error::NotFound { .. } => "记录不存在或已删除".to_owned(),
            Error::NotAllowed { action, .. } => format!("该记录不允许{}", if *action == "edited" { "修改" } else { "删除" }),
            Error::WrongKey => "数据库密钥错误，或该文件不是田垄数据库".to_owned(),
            Error::MigrationMismatch(detail) => format!("数据库结构与本版本不一致，已停止打开以保护数据（{detail}）"),
            Error::NewerDatabase(_) => "该数据库由更新版本的田垄创建，请升级后再打开".to_owned(),
            Error::Sqlite(error) => format!("数据库错误：{error}"),
            Error::Io(error) => format!("文件读写错误：{error}"),
            Error::Json(error) => format!("数据格式错误：{error}"),
            Error::File { message_zh, .. } => message_zh.clone(),
        }
    }

    /// A message for the user in English.
    pub fn message_en(&self) -> String {
        match self {
            Error::Validation(errors) => {
                let fields = errors.iter().map(|error| error.message_en.as_str()).collect::<Vec<_>>().join("; ");
                format!("Please correct: {fields}")
            }
            Error::MigrationMismatch(detail) => {
                format!("The database's structure differs from this version's; it was not opened, to protect the data ({detail})")
            }
            Error::NewerDatabase(_) => "This database was created by a newer version of Furrow; please update".to_owned(),
            other => other.to_string(),
        }
    }

    /// The field errors, if this is a validation error.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Error::Validation(errors) => errors,
            _ => &[],
        }
    }
}

/// The core's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
