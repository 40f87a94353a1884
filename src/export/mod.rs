//! 导出 Excel reports: the roster with its members, a session's sign-in sheet (签到表, to
//! print), scores, visits (帮扶记录) and income, each an .xlsx workbook with Chinese headers,
//! columns as wide as their contents and the header rows frozen.
//!
//! Identity card and phone numbers are masked (5307**********0018, 138****5678) unless the
//! export is asked for full numbers: a sheet handed on should not carry them by default.

mod sheets;

use rust_xlsxwriter::{Color, Format, FormatAlign, FormatBorder, Workbook, Worksheet, XlsxError};
use serde::{Deserialize, Serialize};

pub use sheets::{income, scores, sign_in_sheet, visits};

use crate::codes::{self, EnumDef};
use crate::error::{Error, Result};
use crate::store::Store;

/// How to export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(default)]
pub struct ExportOptions {
    /// 显示完整号码 Write identity card and phone numbers in full instead of masked.
    pub full_numbers: bool,
}

/// An identity card number with all but its first and last four characters hidden: the same
/// masking lists and views use.
pub use crate::audit::mask_id_card;

/// A phone number with its middle hidden: a mobile keeps its first three and last four digits
/// (138****5678), a landline its area code and last four (0871-***2345).
pub fn mask_phone(number: &str) -> String {
    let number = number.trim();
    let (prefix, local) = match number.split_once('-') {
        Some((area, local)) => (format!("{area}-"), local),
        None if number.len() == 11 => (number[..3].to_owned(), &number[3..]),
        None => (String::new(), number),
    };
    let characters: Vec<char> = local.chars().collect();
    if characters.len() <= 4 {
        return format!("{prefix}{}", "*".repeat(characters.len()));
    }
    format!("{prefix}{}{}", "*".repeat(characters.len() - 4), characters[characters.len() - 4..].iter().collect::<String>())
}

impl ExportOptions {
    fn id_card(&self, number: Option<String>) -> Option<String> {
        number.map(|number| if self.full_numbers { number } else { mask_id_card(&number) })
    }

    fn phone(&self, number: Option<String>) -> Option<String> {
        number.map(|number| if self.full_numbers { number } else { mask_phone(&number) })
    }
}

/// A value of one cell.
pub(crate) enum Out {
    Text(Option<String>),
    Whole(Option<i64>),
    /// Money in fen, written in yuan with two decimals.
    Yuan(Option<i64>),
}

impl From<Option<String>> for Out {
    fn from(value: Option<String>) -> Self {
        Out::Text(value)
    }
}

impl From<String> for Out {
    fn from(value: String) -> Self {
        Out::Text(Some(value))
    }
}

impl From<&str> for Out {
    fn from(value: &str) -> Self {
        Out::Text(Some(value.to_owned()))
    }
}

/// The Chinese label of a code.
pub(crate) fn label(def: &EnumDef, code: Option<&str>) -> Option<String> {
    code.map(|code| def.get(code).map(|value| value.zh.to_owned()).unwrap_or_else(|| code.to_owned()))
}

/// The labels of a JSON list of codes, joined with 、.
pub(crate) fn labels(def: &EnumDef, codes: Option<&str>) -> Option<String> {
    let codes: Vec<String> = serde_json::from_str(codes?).ok()?;
    Some(codes.iter().filter_map(|code| label(def, Some(code))).collect::<Vec<_>>().join("、"))
}

/// How wide text shows: two units for a Chinese character, one for others.
fn width_of(text: &str) -> usize {
    text.chars().map(|character| if character.is_ascii() { 1 } else { 2 }).sum()
}

pub(crate) fn xlsx(error: XlsxError) -> Error {
    Error::Io(std::io::Error::other(error))
}

pub(crate) fn header_format() -> Format {
    Format::new()
        .set_bold()
        .set_background_color(Color::RGB(0xE3EFE3))
        .set_border(FormatBorder::Thin)
        .set_align(FormatAlign::Center)
        .set_align(FormatAlign::VerticalCenter)
        .set_text_wrap()
}

/// Writes a table from `first_row`: its header row, then its rows, with columns as wide as their
/// longest value (within bounds) and everything above the first data row frozen.
pub(crate) fn write_table(sheet: &mut Worksheet, first_row: u32, headers: &[&str], rows: &[Vec<Out>], bordered: bool) -> Result<()> {
    let header = header_format();
    let mut plain = Format::new().set_align(FormatAlign::VerticalCenter);
    let mut money = Format::new().set_num_format("0.00").set_align(FormatAlign::VerticalCenter);
    if bordered {
        plain = plain.set_border(FormatBorder::Thin);
        money = money.set_border(FormatBorder::Thin);
    }
    let mut widths: Vec<usize> = headers.iter().map(|text| width_of(text)).collect();
    for (column, text) in headers.iter().enumerate() {
        sheet.write_string_with_format(first_row, column as u16, *text, &header).map_err(xlsx)?;
    }
    for (index, row) in rows.iter().enumerate() {
        let at = first_row + 1 + index as u32;
        for (column, value) in row.iter().enumerate() {
            let column_number = column as u16;
            let shown = match value {
                Out::Text(Some(text)) => {
                    sheet.write_string_with_format(at, column_number, text, &plain).map_err(xlsx)?;
                    width_of(text)
                }
                Out::Whole(Some(number)) => {
                    sheet.write_number_with_format(at, column_number, *number as f64, &plain).map_err(xlsx)?;
                    number.to_string().len()
                }
                Out::Yuan(Some(fen)) => {
                    // The number is parsed from the decimal text of the fen, so it is the double
                    // nearest the exact amount; Excel keeps every number as a double.
                    let yuan = format!("{}.{:02}", fen.div_euclid(100), fen.rem_euclid(100));
                    sheet.write_number_with_format(at, column_number, yuan.parse::<f64>().unwrap_or_default(), &money).map_err(xlsx)?;
                    yuan.len()
                }
                _ => {
                    if bordered {
                        sheet.write_blank(at, column_number, &plain).map_err(xlsx)?;
                    }
                    0
                }
            };
            if let Some(width) = widths.get_mut(column) {
                *width = (*width).max(shown);
            }
        }
    }
    for (column, width) in widths.iter().enumerate() {
        sheet.set_column_width(column as u16, (*width as f64 * 1.1 + 2.0).clamp(6.0, 60.0)).map_err(xlsx)?;
    }
    sheet.set_freeze_panes(first_row + 1, 0).map_err(xlsx)?;
    Ok(())
}

/// A workbook of one named sheet, written by `fill`, as bytes.
pub(crate) fn workbook(name: &str, fill: impl FnOnce(&mut Worksheet) -> Result<()>) -> Result<Vec<u8>> {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name(name).map_err(xlsx)?;
    fill(sheet)?;
    book.save_to_buffer().map_err(xlsx)
}

/// The file name of an export: what it is and when, e.g. 花名册-20261201-0930.xlsx.
pub fn file_name(what: &str) -> String {
    format!("{what}-{}.xlsx", chrono::Local::now().format("%Y%m%d-%H%M%S"))
}

/// The headers of the roster; the same words the import knows, so an exported roster (with full
/// numbers) imports again unchanged.
pub const ROSTER_HEADERS: &[&str] = &[
    "户编号", "行政村", "村民小组", "户主姓名", "联系电话", "贫困户属性", "脱贫状态", "监测对象类型", "主要致贫原因", "识别年度",
    "脱贫年度", "姓名", "与户主关系", "性别", "身份证号", "出生日期", "文化程度", "健康状况", "劳动能力", "务工情况", "手机号",
    "销户原因",
];

/// The roster: one row per member (a household without members has one row of its own), the
/// household's columns on each, households by village and register number, the head first.
pub fn roster(store: &Store, options: &ExportOptions) -> Result<Vec<u8>> {
    let conn = store.conn();
    let mut members: std::collections::HashMap<String, Vec<Vec<Out>>> = std::collections::HashMap::new();
    {
        let mut statement = conn.prepare(
            "SELECT household_id, name, relation, sex, id_card_no, birth_date, education, health, labour_capacity, migrant_work, phone
               FROM members WHERE deleted = 0 ORDER BY household_id, relation <> 'head', birth_date, name, id",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let text = |index: usize| row.get::<_, Option<String>>(index);
            let cells = vec![
                Out::from(text(1)?),
                label(&codes::RelationToHead::DEF, text(2)?.as_deref()).into(),
                label(&codes::Sex::DEF, text(3)?.as_deref()).into(),
                options.id_card(text(4)?).into(),
                text(5)?.into(),
                label(&codes::Education::DEF, text(6)?.as_deref()).into(),
                label(&codes::Health::DEF, text(7)?.as_deref()).into(),
                label(&codes::LabourCapacity::DEF, text(8)?.as_deref()).into(),
                label(&codes::MigrantWork::DEF, text(9)?.as_deref()).into(),
                options.phone(text(10)?).into(),
            ];
            members.entry(row.get(0)?).or_default().push(cells);
        }
    }
    let mut table: Vec<Vec<Out>> = Vec::new();
    let mut statement = conn.prepare(
        "SELECT h.id, h.register_no, v.name, h.group_name, h.head_name, h.phone, h.attribute, h.poverty_status, h.monitoring_type,
                h.main_cause, h.identified_year, h.exit_year, h.closed_reason
           FROM households h LEFT JOIN villages v ON v.id = h.village_id
          WHERE h.deleted = 0 ORDER BY v.name, h.register_no, h.head_name, h.id",
    )?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let text = |index: usize| row.get::<_, Option<String>>(index);
        let id: String = row.get(0)?;
        let household = || -> rusqlite::Result<Vec<Out>> {
            Ok(vec![
                text(1)?.into(),
                text(2)?.into(),
                text(3)?.into(),
                text(4)?.into(),
                options.phone(text(5)?).into(),
                label(&codes::HouseholdAttribute::DEF, text(6)?.as_deref()).into(),
                label(&codes::PovertyStatus::DEF, text(7)?.as_deref()).into(),
                label(&codes::MonitoringType::DEF, text(8)?.as_deref()).into(),
                label(&codes::PovertyCause::DEF, text(9)?.as_deref()).into(),
                Out::Whole(row.get(10)?),
                Out::Whole(row.get(11)?),
            ])
        };
        let closed = label(&codes::HouseholdClosure::DEF, text(12)?.as_deref());
        match members.remove(&id) {
            Some(list) => {
                for member in list {
                    let mut cells = household()?;
                    cells.extend(member);
                    cells.push(closed.clone().into());
                    table.push(cells);
                }
            }
            None => {
                let mut cells = household()?;
                cells.extend((0..10).map(|_| Out::Text(None)));
                cells.push(closed.clone().into());
                table.push(cells);
            }
        }
    }
    workbook("花名册", |sheet| write_table(sheet, 0, ROSTER_HEADERS, &table, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_masked_as_people_expect() {
        assert_eq!(mask_id_card("530724198001010018"), "5307**********0018");
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("0871-6512345"), "0871-***2345");
    }
}
