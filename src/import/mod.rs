//! 导入 Importing a 建档立卡 roster from Excel (.xlsx, .xls) or CSV (UTF-8 or GBK).
//!
//! [`preview`] reads the file and writes nothing: the column mapping it guessed (which the user
//! may change and preview again), every row with what is wrong with it, named by sheet, row and
//! column as a person finds it in Excel, the households already on the device (same 户编号 or a
//! member's 身份证号), and the counts. [`run`] then writes every valid row through the one write
//! path, one transaction per thousand rows, and records what it wrote in a local table, so that
//! [`undo`] can take the import back as a whole while its changes are unsent.
//!
//! Reading the file is `sheet`, the columns and their headers `columns`, rows to values and
//! households `roster`, the checks of whole records `plan`, writing and undoing `apply`.

mod apply;
mod columns;
mod plan;
mod roster;
mod sheet;

use serde::{Deserialize, Serialize};

pub use apply::{imports, run, undo, ImportProgress, ImportRecord, ImportSummary, UndoReport};
pub use columns::{ColumnMapping, FieldChoice, Level, FIELDS};
pub use sheet::{column_letter, MAX_ROWS};

use crate::error::Result;
use crate::store::Store;

/// What to do with a household of the file that is on the device already, chosen once for all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum DuplicateChoice {
    /// 更新 Write the file's values over the household's (fields the file leaves empty stay).
    #[default]
    Update,
    /// 跳过 Leave the household on the device as it is.
    Skip,
    /// 都保留 Add the file's household as another one.
    KeepBoth,
}

/// How to read the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields = nullable))]
#[serde(default)]
pub struct ImportOptions {
    /// The sheet to read; the first with anything in it when `None`.
    pub sheet: Option<String>,
    /// The field of each column (by position; `None` for a column not imported); the guess
    /// when `None`.
    pub mapping: Option<Vec<Option<String>>>,
    /// What to do with households already on the device.
    pub duplicates: DuplicateChoice,
    /// The village of the rows that name none (a roster without a village column).
    pub village_id: Option<String>,
}

/// Something wrong with a row, named as a person finds it in Excel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RowIssue {
    /// The row as Excel numbers it (from 1).
    pub row: u32,
    /// The column's letter, when one column is at fault.
    pub column: Option<String>,
    /// The field's key.
    pub field: Option<String>,
    /// A stable code (`required`, `invalid_id_card`, `unknown_value`, `digits_lost`, ...).
    pub code: String,
    /// The whole message in Chinese: 「花名册」第 12 行 D 列（身份证号）：…
    pub message_zh: String,
    /// The whole message in English.
    pub message_en: String,
}

/// What will become of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    /// 新增 A new household or member.
    New,
    /// 更新 Written over a household on the device.
    Update,
    /// 跳过 Its household is on the device and is left as it is.
    Skip,
    /// 有错误 Not imported.
    Error,
}

/// One data row of the file in the preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PreviewRow {
    /// The row as Excel numbers it.
    pub row: u32,
    /// 姓名 The member's name.
    pub name: String,
    /// 户主 The head of the household the row belongs to.
    pub head_name: String,
    /// 户编号 The household's register number.
    pub register_no: Option<String>,
    /// What will become of it.
    pub status: RowStatus,
    /// What is wrong with it.
    pub issues: Vec<RowIssue>,
}

/// Why a household of the file is taken to be one on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum MatchReason {
    /// The same 户编号.
    SameRegisterNo,
    /// A member with the same 身份证号.
    SameIdCard,
}

/// A household of the file that is on the device already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ExistingHousehold {
    /// The file's row of its head.
    pub row: u32,
    /// 户主 Its head in the file.
    pub head_name: String,
    /// 户编号 Its register number in the file.
    pub register_no: Option<String>,
    /// The household on the device.
    pub existing_id: String,
    /// Its head on the device.
    pub existing_head_name: String,
    /// Why they are taken to be one.
    pub reason: MatchReason,
}

/// The counts of the preview.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ImportCounts {
    /// Data rows read.
    pub rows: u32,
    /// Rows that will be imported (new or update).
    pub rows_to_import: u32,
    /// Rows with errors, not imported.
    pub rows_with_errors: u32,
    /// Rows left out because their household is on the device and the choice is to skip.
    pub rows_skipped: u32,
    /// Households in the file.
    pub households: u32,
    /// Households that will be added.
    pub households_new: u32,
    /// Households of the file already on the device.
    pub households_existing: u32,
    /// Households with errors, not imported.
    pub households_with_errors: u32,
}

/// What the file holds and what importing it would do; nothing is written.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ImportPreview {
    /// The file's name.
    pub file_name: String,
    /// `xlsx`, `xls` or `csv`.
    pub format: String,
    /// A CSV file's encoding (`UTF-8` or `GBK`).
    pub encoding: Option<String>,
    /// The sheet read.
    pub sheet: String,
    /// Every sheet of the file.
    pub sheets: Vec<String>,
    /// The header row as Excel numbers it.
    pub header_row: u32,
    /// Every column and the field it holds.
    pub columns: Vec<ColumnMapping>,
    /// The fields a column may be mapped to.
    pub fields: Vec<FieldChoice>,
    /// The keys of required fields no column holds.
    pub missing: Vec<String>,
    /// Whether the rows need a village chosen for them (no village column and several villages).
    pub needs_village: bool,
    /// Every data row.
    pub rows: Vec<PreviewRow>,
    /// The households already on the device.
    pub existing: Vec<ExistingHousehold>,
    /// The counts.
    pub counts: ImportCounts,
    /// The options this preview was made with (the mapping filled in), to confirm with.
    pub options: ImportOptions,
}

/// Reads a roster and tells what importing it would do, writing nothing.
pub fn preview(store: &Store, file_name: &str, bytes: &[u8], options: &ImportOptions) -> Result<ImportPreview> {
    Ok(plan::plan(store, file_name, bytes, options)?.preview)
}
