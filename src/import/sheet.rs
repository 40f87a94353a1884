//! Reading the file a user picked into a grid of cells: .xlsx and .xls through calamine, .csv in
//! UTF-8 or GBK through csv and encoding_rs. The kind of file is told from its bytes, not its
//! name, so a renamed file is still read (or refused) for what it is.

use std::io::Cursor;

use calamine::{Data, Reader, Xls, Xlsx};
use chrono::NaiveDate;

use crate::error::{Error, Result};

/// The most data rows one import takes: an assistant's roster is a few thousand people; a file
/// far larger is a county's or a mistake, and is refused before anything is read into records.
pub const MAX_ROWS: usize = 50_000;

/// One cell as read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Empty,
    Text(String),
    Number(f64),
    Bool(bool),
    /// A date or moment Excel stored with a date format, as its serial number (days since
    /// 1899-12-30, the fraction the time of day).
    Date(f64),
    /// An error value (#REF!, #VALUE!), usually a formula's.
    Error(String),
}

impl Cell {
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(text) => text.trim().is_empty(),
            _ => false,
        }
    }

    /// The cell as a person reads it, for headers and names.
    pub(crate) fn text(&self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(text) => text.trim().to_owned(),
            Cell::Number(number) if number.fract() == 0.0 && number.abs() < 1e15 => format!("{}", *number as i64),
            Cell::Number(number) => number.to_string(),
            Cell::Bool(flag) => if *flag { "TRUE" } else { "FALSE" }.to_owned(),
            Cell::Date(serial) => serial_to_date(*serial).map(|date| date.to_string()).unwrap_or_default(),
            Cell::Error(text) => text.clone(),
        }
    }
}

/// The date of an Excel serial number (days since 1899-12-30), for dates 1900 to 2100.
pub(crate) fn serial_to_date(serial: f64) -> Option<NaiveDate> {
    if !(1.0..73_051.0).contains(&serial) {
        return None;
    }
    NaiveDate::from_ymd_opt(1899, 12, 30)?.checked_add_days(chrono::Days::new(serial.floor() as u64))
}

/// A rectangle of merged cells, 0-based and inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Merged {
    pub first_row: u32,
    pub last_row: u32,
    pub first_column: u32,
    pub last_column: u32,
}

/// The cells of one sheet, by absolute position (row 0 is Excel's row 1).
#[derive(Debug, Clone, Default)]
pub(crate) struct Grid {
    /// The sheet's name (a CSV file's name without its extension, as Excel names it).
    pub sheet: String,
    /// Every sheet of the workbook, for the user to pick another.
    pub sheets: Vec<String>,
    /// `xlsx`, `xls` or `csv`.
    pub format: &'static str,
    /// A CSV file's encoding (`UTF-8` or `GBK`).
    pub encoding: Option<&'static str>,
    pub rows: Vec<Vec<Cell>>,
    /// The cells holding a formula.
    pub formulas: std::collections::HashSet<(u32, u32)>,
    pub merged: Vec<Merged>,
}

impl Grid {
    pub(crate) fn cell(&self, row: usize, column: usize) -> &Cell {
        self.rows.get(row).and_then(|cells| cells.get(column)).unwrap_or(&Cell::Empty)
    }
}

fn refuse(code: &'static str, zh: impl Into<String>, en: impl Into<String>) -> Error {
    Error::File { code, message_zh: zh.into(), message_en: en.into() }
}

fn not_a_spreadsheet() -> Error {
    refuse(
        "not_a_spreadsheet",
        "这不是 Excel 或 CSV 文件，无法读取。请选择 .xlsx、.xls 或 .csv 格式的花名册。",
        "This is not an Excel or CSV file and cannot be read. Please choose a roster saved as .xlsx, .xls or .csv.",
    )
}

fn password_protected() -> Error {
    refuse(
        "password_protected",
        "文件设有密码，无法读取。请在 Excel 中打开它，去掉密码（文件 → 信息 → 保护工作簿），保存后再导入。",
        "The file is protected by a password and cannot be read. Open it in Excel, remove the password (File → Info → Protect Workbook), save it and import it again.",
    )
}

/// Too many rows for one import.
pub(crate) fn too_many_rows(rows: usize) -> Error {
    refuse(
        "too_many_rows",
        format!("文件有 {rows} 行，一次最多导入 {MAX_ROWS} 行。请把花名册按村或乡镇分成几个文件，分几次导入。"),
        format!("The file has {rows} rows; one import takes at most {MAX_ROWS}. Please split the roster by village or township into several files and import them one by one."),
    )
}

/// An empty file or sheet.
pub(crate) fn empty() -> Error {
    refuse(
        "empty",
        "文件中没有数据：找不到任何填写了内容的行。",
        "The file holds no data: no row has anything in it.",
    )
}

const ZIP: &[u8] = b"PK\x03\x04";
const COMPOUND: &[u8] = &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// Reads a file's bytes into the grid of one sheet: `sheet` by name, or the first sheet with
/// anything in it.
pub(crate) fn read(file_name: &str, bytes: &[u8], sheet: Option<&str>) -> Result<Grid> {
    if bytes.is_empty() {
        return Err(empty());
    }
    if bytes.starts_with(ZIP) {
        let mut workbook = Xlsx::new(Cursor::new(bytes)).map_err(|_| not_a_spreadsheet())?;
        let names = workbook.sheet_names();
        let (name, range) = pick_sheet(&names, sheet, |name| workbook.worksheet_range(name).map_err(|_| not_a_spreadsheet()))?;
        // A file far too large is refused before its formulas and merged cells are read.
        if range.height() > MAX_ROWS + 20 {
            return Err(too_many_rows(range.height()));
        }
        let formulas = workbook.worksheet_formula(&name).ok();
        let merged = workbook.merge_cells_by_sheet_name(&name).unwrap_or_default();
        return Ok(from_range("xlsx", name, names, &range, formulas.as_ref(), &merged));
    }
    if bytes.starts_with(COMPOUND) {
        // An encrypted .xlsx is a compound file holding an `EncryptedPackage` stream, whose
        // name its directory keeps in UTF-16.
        let marker: Vec<u8> = "EncryptedPackage".encode_utf16().flat_map(u16::to_le_bytes).collect();
        if bytes.windows(marker.len()).any(|window| window == marker.as_slice()) {
            return Err(password_protected());
        }
        let mut workbook = match Xls::new(Cursor::new(bytes)) {
            Ok(workbook) => workbook,
            Err(calamine::XlsError::Password) => return Err(password_protected()),
            Err(_) => return Err(not_a_spreadsheet()),
        };
        let names = workbook.sheet_names();
        let (name, range) = pick_sheet(&names, sheet, |name| match workbook.worksheet_range(name) {
            Ok(range) => Ok(range),
            Err(calamine::XlsError::Password) => Err(password_protected()),
            Err(_) => Err(not_a_spreadsheet()),
        })?;
        // A file far too large is refused before its formulas and merged cells are read.
        if range.height() > MAX_ROWS + 20 {
            return Err(too_many_rows(range.height()));
        }
        let formulas = workbook.worksheet_formula(&name).ok();
        let merged = workbook.merge_cells_by_sheet_name(&name).unwrap_or_default();
        return Ok(from_range("xls", name, names, &range, formulas.as_ref(), &merged));
    }
    read_csv(file_name, bytes)
}

/// The sheet asked for, or the first one with anything in it, with its cells; each sheet is read
/// once.
fn pick_sheet(
    names: &[String],
    wanted: Option<&str>,
    mut range_of: impl FnMut(&str) -> Result<calamine::Range<Data>>,
) -> Result<(String, calamine::Range<Data>)> {
    if let Some(wanted) = wanted.filter(|wanted| names.iter().any(|name| name == wanted)) {
        return Ok((wanted.to_owned(), range_of(wanted)?));
    }
    for name in names {
        let range = range_of(name)?;
        if !range.is_empty() {
            return Ok((name.clone(), range));
        }
    }
    Err(empty())
}

fn from_range(
    format: &'static str,
    sheet: String,
    sheets: Vec<String>,
    range: &calamine::Range<Data>,
    formulas: Option<&calamine::Range<String>>,
    merged: &[calamine::Dimensions],
) -> Grid {
    let (top, left) = range.start().unwrap_or((0, 0));
    let mut rows = vec![Vec::new(); top as usize];
    for cells in range.rows() {
        let mut row = vec![Cell::Empty; left as usize];
        row.extend(cells.iter().map(cell_of));
        rows.push(row);
    }
    let mut formula_cells = std::collections::HashSet::new();
    if let Some(formulas) = formulas {
        for (row, column, text) in formulas.used_cells() {
            if !text.is_empty() {
                let (start_row, start_column) = formulas.start().unwrap_or((0, 0));
                formula_cells.insert((start_row + row as u32, start_column + column as u32));
            }
        }
    }
    let merged = merged
        .iter()
        .map(|region| Merged { first_row: region.start.0, first_column: region.start.1, last_row: region.end.0, last_column: region.end.1 })
        .collect();
    Grid { sheet, sheets, format, encoding: None, rows, formulas: formula_cells, merged }
}

fn cell_of(data: &Data) -> Cell {
    match data {
        Data::Empty => Cell::Empty,
        Data::String(text) => Cell::Text(text.clone()),
        Data::Int(number) => Cell::Number(*number as f64),
        Data::Float(number) => Cell::Number(*number),
        Data::Bool(flag) => Cell::Bool(*flag),
        Data::DateTime(moment) if moment.is_datetime() => Cell::Date(moment.as_f64()),
        Data::DateTime(moment) => Cell::Number(moment.as_f64()),
        Data::DateTimeIso(text) | Data::DurationIso(text) => Cell::Text(text.clone()),
        Data::Error(error) => Cell::Error(error.to_string()),
    }
}

/// Reads a CSV file: UTF-8 (with or without its byte-order mark) or, when it is not valid
/// UTF-8, GBK as Excel saves it on a Chinese Windows; comma- or tab-separated.
fn read_csv(file_name: &str, bytes: &[u8]) -> Result<Grid> {
    let (text, encoding) = match bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes) {
        body if std::str::from_utf8(body).is_ok() => (std::str::from_utf8(body).expect("checked").to_owned(), "UTF-8"),
        body => match encoding_rs::GBK.decode_without_bom_handling_and_without_replacement(body) {
            Some(text) => (text.into_owned(), "GBK"),
            None => return Err(not_a_spreadsheet()),
        },
    };
    // Text with control characters other than line ends and tabs is some other binary file.
    if text.chars().any(|character| character.is_control() && !matches!(character, '\n' | '\r' | '\t')) {
        return Err(not_a_spreadsheet());
    }
    let first_line = text.lines().next().unwrap_or_default();
    let delimiter = if first_line.matches('\t').count() > first_line.matches(',').count() { b'\t' } else { b',' };
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|_| not_a_spreadsheet())?;
        rows.push(record.iter().map(|value| if value.trim().is_empty() { Cell::Empty } else { Cell::Text(value.to_owned()) }).collect());
        if rows.len() > MAX_ROWS + 100 {
            return Err(too_many_rows(text.lines().count()));
        }
    }
    let sheet = std::path::Path::new(file_name).file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Grid { sheets: vec![sheet.clone()], sheet, format: "csv", encoding: Some(encoding), rows, ..Grid::default() })
}

/// Excel's name of a column: A … Z, AA, AB …
pub fn column_letter(column: u32) -> String {
    let mut number = column + 1;
    let mut letters = Vec::new();
    while number > 0 {
        let rest = (number - 1) % 26;
        letters.push(b'A' + rest as u8);
        number = (number - 1) / 26;
    }
    letters.reverse();
    String::from_utf8(letters).expect("ASCII letters")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_named_as_excel_names_them() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(3), "D");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(701), "ZZ");
        assert_eq!(column_letter(702), "AAA");
    }
}
