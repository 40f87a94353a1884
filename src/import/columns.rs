//! The fields a roster column can hold, the headers the national system and county offices give
//! them, and the guess of which column is which: the header row is the row, among the first
//! twenty, whose cells name the most fields.

use serde::{Deserialize, Serialize};

use super::sheet::{column_letter, Cell, Grid};
use crate::error::{Error, Result};

/// Whether a field belongs to the household or to one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// 户 A household's field, read from its head's row.
    Household,
    /// 人 A member's field, read from their own row.
    Member,
}

/// A field a column can be mapped to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FieldChoice {
    /// The field's key (what a mapping names).
    pub key: &'static str,
    /// Its name in Chinese, as the header a county office gives it.
    pub zh: &'static str,
    /// Its name in English.
    pub en: &'static str,
    /// Household or member.
    pub level: Level,
    /// Whether a roster must have it.
    pub required: bool,
    /// The headers it is known by.
    #[serde(skip)]
    #[cfg_attr(feature = "ts", ts(skip))]
    pub headers: &'static [&'static str],
}

const fn household(key: &'static str, zh: &'static str, en: &'static str, headers: &'static [&'static str]) -> FieldChoice {
    FieldChoice { key, zh, en, level: Level::Household, required: false, headers }
}

const fn member(key: &'static str, zh: &'static str, en: &'static str, headers: &'static [&'static str]) -> FieldChoice {
    FieldChoice { key, zh, en, level: Level::Member, required: false, headers }
}

const fn needed(mut field: FieldChoice) -> FieldChoice {
    field.required = true;
    field
}

/// Every field a roster column can hold, in the order the mapping lists them. A key is the
/// schema's field name, except `village` (a name or code, looked up), `household_phone` and
/// `member_phone`.
pub const FIELDS: &[FieldChoice] = &[
    household("register_no", "户编号", "Register no.", &["户编号", "户号", "家庭编号", "户代码", "户编码", "户主编号"]),
    household("village", "行政村", "Village", &["行政村", "村", "所在村", "村名", "村名称", "村(社区)", "村居", "所属村", "行政村名称"]),
    household("group_name", "村民小组", "Village group", &["村民小组", "自然村", "组", "村民组", "小组", "自然村(组)", "组别"]),
    household("head_name", "户主姓名", "Head of household", &["户主姓名", "户主"]),
    household("household_phone", "联系电话", "Household phone", &["联系电话", "户主电话", "家庭电话", "电话", "户主联系电话"]),
    needed(household("attribute", "贫困户属性", "Household attribute", &["贫困户属性", "户属性", "贫困属性", "家庭属性"])),
    needed(household("poverty_status", "脱贫状态", "Poverty status", &["脱贫状态", "脱贫属性", "贫困状态", "脱贫情况", "是否脱贫"])),
    household("monitoring_type", "监测对象类型", "Monitoring type", &["监测对象类型", "监测类型", "监测对象类别", "监测对象"]),
    household("main_cause", "主要致贫原因", "Main poverty cause", &["主要致贫原因", "致贫原因", "主要致贫(返贫)原因"]),
    household("secondary_causes", "次要致贫原因", "Secondary causes", &["次要致贫原因", "其他致贫原因"]),
    household("identified_year", "识别年度", "Year identified", &["识别年度", "识别年份", "纳入年度", "识别时间"]),
    household("exit_year", "脱贫年度", "Year exited", &["脱贫年度", "脱贫年份", "脱贫时间"]),
    household("cultivated_land_mu", "耕地面积（亩）", "Cultivated land (mu)", &["耕地面积", "耕地"]),
    household("forest_land_mu", "林地面积（亩）", "Forest land (mu)", &["林地面积", "山林面积", "林地"]),
    household("house_area_m2", "住房面积（平方米）", "House area (m²)", &["住房面积", "住房面积(平方米)"]),
    household("housing_safety", "住房安全", "Housing safety", &["住房安全", "有无安全住房", "住房安全情况", "住房安全保障"]),
    household("water_safe", "饮水安全", "Safe drinking water", &["饮水安全", "是否饮水安全", "饮水是否安全", "饮水安全保障"]),
    household("fuel_type", "主要燃料类型", "Main fuel", &["主要燃料类型", "主要燃料", "燃料类型"]),
    household("in_cooperative", "加入合作社", "In a cooperative", &["加入合作社", "是否加入合作社", "是否加入农民专业合作社"]),
    household("cooperative_name", "合作社名称", "Cooperative", &["合作社名称", "合作社"]),
    household("notes", "备注", "Notes", &["备注", "说明"]),
    needed(member("name", "姓名", "Name", &["姓名", "成员姓名", "人员姓名", "家庭成员姓名"])),
    member("relation", "与户主关系", "Relation to head", &["与户主关系", "与户主的关系", "家庭关系", "关系"]),
    member("sex", "性别", "Sex", &["性别"]),
    member("id_card_no", "身份证号", "ID card number", &["身份证号", "身份证号码", "证件号码", "公民身份号码", "身份证", "证件号"]),
    member("birth_date", "出生日期", "Birth date", &["出生日期", "出生年月", "出生年月日", "生日"]),
    member("education", "文化程度", "Education", &["文化程度", "学历"]),
    member("health", "健康状况", "Health", &["健康状况", "健康状态"]),
    member("labour_capacity", "劳动能力", "Labour capacity", &["劳动能力", "劳动技能", "劳动力状况", "劳动力类型"]),
    member("migrant_work", "务工情况", "Migrant work", &["务工情况", "务工状况", "外出务工情况", "务工地点"]),
    member("member_phone", "手机号", "Mobile phone", &["手机号", "手机号码", "本人电话", "个人电话", "本人手机号"]),
    member("has_smartphone", "有智能手机", "Has a smartphone", &["有智能手机", "是否有智能手机", "智能手机"]),
];

/// The field with this key.
pub fn field(key: &str) -> Option<&'static FieldChoice> {
    FIELDS.iter().find(|field| field.key == key)
}

/// One column of the sheet and the field it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ColumnMapping {
    /// The column, from 0.
    pub column: u32,
    /// Its letter as Excel shows it.
    pub letter: String,
    /// Its header as written in the file.
    pub header: String,
    /// The key of the field it holds, or `None` when it is not imported.
    pub field: Option<String>,
}

/// A header as compared: no spaces, ASCII brackets, no marks of a required column, no unit in
/// brackets at the end.
fn tidy(header: &str) -> String {
    let mut text: String = header
        .chars()
        .filter(|character| !character.is_whitespace() && !matches!(character, '*' | '★' | '※'))
        .map(|character| match character {
            '（' => '(',
            '）' => ')',
            other => other,
        })
        .collect();
    for suffix in ["(亩)", "(平方米)", "(㎡)", "(m²)", "(必填)", "(选填)", "(元)"] {
        if let Some(stripped) = text.strip_suffix(suffix) {
            text = stripped.to_owned();
        }
    }
    text.to_lowercase()
}

/// The field a header names: one of its known headers exactly, else the field whose known
/// header is the longest part of it (户主身份证号 holds 身份证号).
pub(crate) fn guess(header: &str) -> Option<&'static FieldChoice> {
    let header = tidy(header);
    if header.is_empty() {
        return None;
    }
    if let Some(field) = FIELDS.iter().find(|field| field.headers.iter().any(|known| tidy(known) == header)) {
        return Some(field);
    }
    FIELDS
        .iter()
        .flat_map(|field| field.headers.iter().map(move |known| (field, tidy(known))))
        .filter(|(_, known)| known.chars().count() >= 2 && header.contains(known.as_str()))
        .max_by_key(|(_, known)| known.chars().count())
        .map(|(field, _)| field)
}

/// The header row found and its columns.
pub(crate) struct Header {
    /// The header row, from 0.
    pub row: usize,
    pub columns: Vec<ColumnMapping>,
}

/// The header text of a cell of the header row: its own text, or for a cell merged with the
/// ones above it, the text of the merged region (a header two rows high).
fn header_text(grid: &Grid, row: usize, column: usize) -> String {
    let own = grid.cell(row, column).text();
    if !own.is_empty() {
        return own;
    }
    grid.merged
        .iter()
        .find(|region| {
            region.first_row < row as u32
                && region.last_row >= row as u32
                && region.first_column <= column as u32
                && region.last_column >= column as u32
        })
        .map(|region| grid.cell(region.first_row as usize, region.first_column as usize).text())
        .unwrap_or_default()
}

/// Finds the header row and guesses every column's field; `chosen` (a field key or `None` for
/// each column) replaces the guess when the user changed the mapping.
pub(crate) fn find_header(grid: &Grid, chosen: Option<&[Option<String>]>) -> Result<Header> {
    let scored = (0..grid.rows.len().min(20)).map(|row| {
        let width = grid.rows[row].len();
        let score = (0..width).filter(|column| guess(&header_text(grid, row, *column)).is_some()).count();
        (row, score)
    });
    let (row, score) = scored.fold((0, 0), |best, candidate| if candidate.1 > best.1 { candidate } else { best });
    if score < 2 {
        return Err(Error::File {
            code: "no_header",
            message_zh: "找不到表头：前 20 行中没有一行写着「姓名」「身份证号」「与户主关系」「户编号」这样的列名。请确认选的是花名册。".into(),
            message_en: "No header row found: none of the first 20 rows names columns such as 姓名 (name), 身份证号 (ID card number), 与户主关系 (relation) or 户编号 (register no.). Please check that this is the roster.".into(),
        });
    }
    // A header cell merged across several columns leaves the columns after the first without a
    // name of their own, so no one can tell which holds what.
    if let Some(region) = grid.merged.iter().find(|region| {
        region.first_row <= row as u32 && region.last_row >= row as u32 && region.last_column > region.first_column
    }) {
        let (from, to) = (column_letter(region.first_column), column_letter(region.last_column));
        let header = grid.cell(region.first_row as usize, region.first_column as usize).text();
        return Err(Error::File {
            code: "merged_header",
            message_zh: format!(
                "表头第 {} 行 {from} 列到 {to} 列是合并单元格（「{header}」），无法分清每一列的内容。请在 Excel 中取消合并，给每一列写上自己的列名后再导入。",
                row + 1
            ),
            message_en: format!(
                "The header in row {} is one merged cell across columns {from} to {to} (\"{header}\"), so the columns cannot be told apart. Please unmerge it in Excel, give each column its own header and import again.",
                row + 1
            ),
        });
    }
    let width = grid.rows.iter().skip(row).map(Vec::len).max().unwrap_or(0);
    let mut taken = std::collections::HashSet::new();
    let columns = (0..width)
        .map(|column| {
            let header = header_text(grid, row, column);
            let field = match chosen {
                Some(chosen) => chosen.get(column).cloned().flatten().filter(|key| self::field(key).is_some()),
                None => guess(&header).map(|field| field.key.to_owned()).filter(|key| taken.insert(key.clone())),
            };
            ColumnMapping { column: column as u32, letter: column_letter(column as u32), header, field }
        })
        .collect();
    Ok(Header { row, columns })
}

/// Whether a row holds nothing in the mapped columns (a blank line, a footer note).
pub(crate) fn is_blank(cells: &[Cell], columns: &[ColumnMapping]) -> bool {
    columns.iter().filter(|mapping| mapping.field.is_some()).all(|mapping| cells.get(mapping.column as usize).is_none_or(Cell::is_empty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_the_national_system_and_county_offices_are_recognised() {
        let key = |header: &str| guess(header).map(|field| field.key);
        assert_eq!(key("户编号"), Some("register_no"));
        assert_eq!(key(" 证件号码 "), Some("id_card_no"));
        assert_eq!(key("耕地面积（亩）"), Some("cultivated_land_mu"));
        assert_eq!(key("*姓名"), Some("name"));
        assert_eq!(key("户主姓名"), Some("head_name"));
        assert_eq!(key("与户主的关系"), Some("relation"));
        assert_eq!(key("成员身份证号码"), Some("id_card_no"));
        assert_eq!(key("序号"), None);
    }
}
