//! Rows to records: each cell read as its field's value (a label, a national code, a date typed
//! any of the ways people type one or stored as an Excel serial number), and the rows grouped
//! into households: by 户编号 when the roster has it, else by 户主, else a row whose relation is
//! 户主 starts the next household.

use chrono::{Datelike, NaiveDate};
use serde_json::{Map, Value};

use super::columns::{self, ColumnMapping, Level};
use super::sheet::{serial_to_date, Cell, Grid};
use crate::codes::{self, EnumDef};
use crate::validate;

/// A value that could not be read, in both languages (the field and place are added later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub code: &'static str,
    pub zh: String,
    pub en: String,
}

fn problem(code: &'static str, zh: impl Into<String>, en: impl Into<String>) -> Problem {
    Problem { code, zh: zh.into(), en: en.into() }
}

/// The largest whole number a spreadsheet keeps exactly; longer numbers lose their last digits.
const EXACT: f64 = 9_007_199_254_740_992.0;

fn digits_lost() -> Problem {
    problem(
        "digits_lost",
        "这串数字被 Excel 存成了数值，末尾几位已经丢失。请把这一列设为「文本」格式，重新填写后再导入。",
        "Excel stored this number as a value and lost its last digits. Set the column's format to Text, type the numbers again and import again.",
    )
}

/// A cell as text: a whole number without its `.0`, refused when it is too long to be exact.
fn text_of(cell: &Cell) -> Result<String, Problem> {
    match cell {
        Cell::Number(number) if number.fract() == 0.0 && number.abs() >= EXACT => Err(digits_lost()),
        Cell::Number(number) if number.fract() == 0.0 => Ok(format!("{}", *number as i64)),
        other => Ok(other.text().trim_start_matches('\'').trim().to_owned()),
    }
}

/// Text compared with labels: no spaces, ASCII brackets and dashes, lower case.
fn tidy(text: &str) -> String {
    text.chars()
        .filter(|character| !character.is_whitespace())
        .map(|character| match character {
            '（' => '(',
            '）' => ')',
            '－' | '—' => '-',
            other => other,
        })
        .collect::<String>()
        .to_lowercase()
}

/// Words people write for a coded value that are not its label.
fn aliases(def: &EnumDef) -> &'static [(&'static str, &'static str)] {
    match def.name {
        "sex" => &[("男性", "male"), ("女性", "female"), ("1", "male"), ("2", "female"), ("m", "male"), ("f", "female")],
        "relation_to_head" => &[
            ("户主", "head"), ("本人", "head"), ("妻", "spouse"), ("妻子", "spouse"), ("夫", "spouse"), ("丈夫", "spouse"),
            ("儿子", "son"), ("长子", "son"), ("次子", "son"), ("女儿", "daughter"), ("长女", "daughter"), ("次女", "daughter"),
            ("儿媳", "daughter_in_law"), ("女婿", "son_in_law"), ("父亲", "father"), ("母亲", "mother"), ("外孙", "daughters_son"),
        ],
        "household_attribute" => &[
            ("一般户", "general"), ("一般", "general"), ("低保户", "dibao"), ("低保", "dibao"),
            ("五保-分散供养", "tekun_dispersed"), ("分散供养", "tekun_dispersed"), ("特困供养-分散供养", "tekun_dispersed"),
            ("五保-集中供养", "tekun_centralised"), ("集中供养", "tekun_centralised"), ("特困供养-集中供养", "tekun_centralised"),
        ],
        "poverty_status" => &[
            ("已脱贫", "exited_earlier"), ("脱贫", "exited_earlier"), ("脱贫户", "exited_earlier"), ("贫困", "not_exited"),
            ("贫困户", "not_exited"), ("非贫困", "non_poor"), ("一般农户", "non_poor"),
        ],
        "monitoring_type" => &[("否", "none"), ("无", "none"), ("非监测户", "none"), ("不是", "none")],
        "education" => &[("文盲", "illiterate"), ("半文盲", "illiterate"), ("本科", "college"), ("大学", "college"), ("研究生", "college"), ("中专", "senior_secondary")],
        "housing_safety" => &[("有", "safe"), ("是", "safe"), ("安全", "safe"), ("c级危房", "dilapidated_c"), ("d级危房", "dilapidated_d")],
        _ => &[],
    }
}

/// The code of a coded value written as its label, its national code, its English code or
/// label, a common other word for it, or a unique part of its label (因病致贫 for 因病).
fn code_of(def: &EnumDef, text: &str) -> Result<&'static str, Problem> {
    let wanted = tidy(text);
    let number = wanted.parse::<u32>().ok().map(|number| format!("{number:02}"));
    for value in def.values {
        let label = tidy(value.zh);
        if label == wanted
            || label.strip_prefix('之') == Some(wanted.as_str())
            || value.code == wanted
            || value.en.to_lowercase() == wanted
            || (value.national.is_some() && (value.national == Some(wanted.as_str()) || value.national.map(str::to_owned) == number))
        {
            return Ok(value.code);
        }
    }
    if let Some((_, code)) = aliases(def).iter().find(|(alias, _)| tidy(alias) == wanted) {
        return Ok(code);
    }
    let partial: Vec<&'static str> = def
        .values
        .iter()
        .filter(|value| {
            let label = tidy(value.zh);
            (wanted.chars().count() >= 2 && label.contains(&wanted)) || (label.chars().count() >= 2 && wanted.contains(&label))
        })
        .map(|value| value.code)
        .collect();
    if let [code] = partial.as_slice() {
        return Ok(code);
    }
    let choices_zh: Vec<&str> = def.values.iter().map(|value| value.zh).collect();
    let choices_en: Vec<&str> = def.values.iter().map(|value| value.en).collect();
    Err(problem(
        "unknown_value",
        format!("「{text}」不是可选的值，可填：{}", choices_zh.join("、")),
        format!("\"{text}\" is not one of the values; it may be: {}", choices_en.join(", ")),
    ))
}

fn date_of_text(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    let day = text.split(|character: char| character.is_whitespace() || character == 'T').next().unwrap_or(text);
    for format in ["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y%m%d"] {
        if let Ok(date) = NaiveDate::parse_from_str(day, format) {
            return Some(date);
        }
    }
    None
}

/// A date: a date cell, a serial number Excel kept without a date format, 19800101, or text in
/// the usual ways (1980-01-01, 1980/1/1, 1980.1.1, 1980年1月1日).
fn date_of(cell: &Cell) -> Result<String, Problem> {
    let date = match cell {
        Cell::Date(serial) => serial_to_date(*serial),
        Cell::Number(number) if (19_000_101.0..=21_001_231.0).contains(number) => date_of_text(&format!("{}", *number as i64)),
        Cell::Number(number) => serial_to_date(*number),
        Cell::Text(text) => match text.trim().parse::<f64>() {
            Ok(number) if (1.0..73_051.0).contains(&number) => serial_to_date(number),
            _ => date_of_text(text),
        },
        _ => None,
    };
    date.map(|date| date.format("%Y-%m-%d").to_string()).ok_or_else(|| {
        problem(
            "invalid_date",
            format!("「{}」不是日期，请写成 1980-01-01 这样的年月日", cell.text()),
            format!("\"{}\" is not a date; write it as year-month-day, e.g. 1980-01-01", cell.text()),
        )
    })
}

fn year_of(cell: &Cell) -> Result<i64, Problem> {
    let year = match cell {
        Cell::Date(serial) => serial_to_date(*serial).map(|date| i64::from(date.year())),
        Cell::Number(number) if number.fract() == 0.0 => Some(*number as i64),
        other => other.text().trim().trim_end_matches('年').parse::<i64>().ok(),
    };
    year.filter(|year| (1949..=2100).contains(year)).ok_or_else(|| {
        problem("invalid_year", format!("「{}」不是年份，请写四位数，如 2016", cell.text()), format!("\"{}\" is not a year; write four digits, e.g. 2016", cell.text()))
    })
}

fn real_of(cell: &Cell) -> Result<f64, Problem> {
    let number = match cell {
        Cell::Number(number) => Some(*number),
        other => {
            let text = other.text();
            let trimmed = text.trim().trim_end_matches("平方米").trim_end_matches('亩').trim_end_matches('㎡').replace(',', "");
            trimmed.trim().parse::<f64>().ok()
        }
    };
    number.filter(|number| number.is_finite()).ok_or_else(|| {
        problem("invalid_number", format!("「{}」不是数字", cell.text()), format!("\"{}\" is not a number", cell.text()))
    })
}

fn bool_of(cell: &Cell) -> Result<bool, Problem> {
    if let Cell::Bool(flag) = cell {
        return Ok(*flag);
    }
    match tidy(&cell.text()).as_str() {
        "是" | "有" | "y" | "yes" | "√" | "1" | "true" | "是的" => Ok(true),
        "否" | "无" | "没有" | "n" | "no" | "×" | "0" | "false" => Ok(false),
        _ => Err(problem("invalid_flag", format!("「{}」请填「是」或「否」", cell.text()), format!("\"{}\": write 是 (yes) or 否 (no)", cell.text()))),
    }
}

/// The stored value of one cell for the field `key`, or why it cannot be read.
fn value_of(key: &str, cell: &Cell) -> Result<Value, Problem> {
    let coded = |def: EnumDef| -> Result<Value, Problem> { Ok(Value::from(code_of(&def, &text_of(cell)?)?)) };
    match key {
        "attribute" => coded(codes::HouseholdAttribute::DEF),
        "poverty_status" => coded(codes::PovertyStatus::DEF),
        "monitoring_type" => coded(codes::MonitoringType::DEF),
        "main_cause" => coded(codes::PovertyCause::DEF),
        "housing_safety" => coded(codes::HousingSafety::DEF),
        "fuel_type" => coded(codes::FuelType::DEF),
        "relation" => coded(codes::RelationToHead::DEF),
        "sex" => coded(codes::Sex::DEF),
        "education" => coded(codes::Education::DEF),
        "health" => coded(codes::Health::DEF),
        "labour_capacity" => coded(codes::LabourCapacity::DEF),
        "migrant_work" => coded(codes::MigrantWork::DEF),
        "secondary_causes" => {
            let text = text_of(cell)?;
            let parts = text.split(['、', ',', '，', ';', '；', '/', ' ']).filter(|part| !part.trim().is_empty());
            let codes = parts.map(|part| code_of(&codes::PovertyCause::DEF, part).map(Value::from)).collect::<Result<Vec<_>, _>>()?;
            Ok(Value::Array(codes))
        }
        "identified_year" | "exit_year" => year_of(cell).map(Value::from),
        "cultivated_land_mu" | "forest_land_mu" | "house_area_m2" => real_of(cell).map(Value::from),
        "water_safe" | "in_cooperative" | "has_smartphone" => bool_of(cell).map(Value::from),
        "birth_date" => date_of(cell).map(Value::from),
        "household_phone" | "member_phone" => text_of(cell).map(|text| Value::from(validate::normalise_phone(&text))),
        "id_card_no" => text_of(cell).map(|text| Value::from(text.replace(' ', "").to_ascii_uppercase())),
        _ => text_of(cell).map(Value::from),
    }
}

/// The schema field a key writes (`None` for the village, which is looked up).
pub(crate) fn schema_field(key: &str) -> Option<&str> {
    match key {
        "village" => None,
        "household_phone" | "member_phone" => Some("phone"),
        other => Some(other),
    }
}

/// One data row, read.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceRow {
    /// Excel's row number (from 1).
    pub row: u32,
    pub household: Map<String, Value>,
    pub member: Map<String, Value>,
    /// The village as written.
    pub village: Option<String>,
    /// Cells that could not be read: (column, field key, problem).
    pub problems: Vec<(u32, &'static str, Problem)>,
}

/// Reads every data row below the header; blank rows are passed over.
pub(crate) fn read_rows(grid: &Grid, header_row: usize, mapping: &[ColumnMapping]) -> Vec<SourceRow> {
    let mut rows = Vec::new();
    for (index, cells) in grid.rows.iter().enumerate().skip(header_row + 1) {
        if columns::is_blank(cells, mapping) {
            continue;
        }
        let mut source = SourceRow { row: index as u32 + 1, ..SourceRow::default() };
        for column in mapping {
            let Some(field) = column.field.as_deref().and_then(columns::field) else { continue };
            let cell = grid.cell(index, column.column as usize);
            if grid.formulas.contains(&(index as u32, column.column)) {
                // A formula is read as the result Excel saved with it; without one (a file
                // written by a program and never opened in Excel), or with an error, the row
                // cannot be read.
                let text = cell.text();
                let failed = matches!(cell, Cell::Error(_)) || (text.starts_with('#') && (text.ends_with('!') || text.ends_with('?') || text == "#N/A"));
                if cell.is_empty() || failed {
                    let shown = if cell.is_empty() { "（空）".to_owned() } else { text.clone() };
                    source.problems.push((
                        column.column,
                        field.key,
                        problem(
                            "formula_without_value",
                            format!("这是公式，文件里没有可用的计算结果（{shown}）；请在 Excel 中打开并保存，或复制后「选择性粘贴 → 数值」再导入"),
                            format!("this is a formula and the file holds no usable result for it ({}); open and save the file in Excel, or copy it and paste it as values, then import again", if cell.is_empty() { "empty".to_owned() } else { text }),
                        ),
                    ));
                    continue;
                }
            }
            if cell.is_empty() {
                continue;
            }
            if let Cell::Error(text) = cell {
                source.problems.push((column.column, field.key, problem("cell_error", format!("单元格是错误值 {text}"), format!("the cell holds the error {text}"))));
                continue;
            }
            if field.key == "village" {
                source.village = Some(cell.text());
                continue;
            }
            match value_of(field.key, cell) {
                Ok(value) => {
                    let name = schema_field(field.key).expect("only the village has no schema field").to_owned();
                    match field.level {
                        Level::Household => source.household.insert(name, value),
                        Level::Member => source.member.insert(name, value),
                    };
                }
                Err(failure) => source.problems.push((column.column, field.key, failure)),
            }
        }
        // Birth date and sex are filled from the identity card number when left empty, as the
        // member form does.
        if let Some(facts) = source.member.get("id_card_no").and_then(Value::as_str).and_then(crate::domain::household::id_card_facts) {
            source.member.entry("birth_date").or_insert_with(|| Value::from(facts.birth_date));
            source.member.entry("sex").or_insert_with(|| Value::from(facts.sex.code()));
        }
        rows.push(source);
    }
    rows
}

/// Groups the rows into households: the indexes of each household's rows, in file order.
pub(crate) fn group(rows: &[SourceRow]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut by_key: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    // Whether the last household was started by a row without a register number or head, so
    // that the rows after it (until the next 户主) are its members.
    let mut keyless_open = false;
    for (index, row) in rows.iter().enumerate() {
        let register = row.household.get("register_no").and_then(Value::as_str);
        let head = row.household.get("head_name").and_then(Value::as_str);
        let key = match (register, head) {
            (Some(register), _) => Some(format!("no:{register}")),
            (None, Some(head)) => {
                let group = row.household.get("group_name").and_then(Value::as_str).unwrap_or_default();
                Some(format!("head:{}|{head}|{group}", row.village.as_deref().unwrap_or_default()))
            }
            (None, None) => None,
        };
        match key {
            Some(key) => {
                keyless_open = false;
                match by_key.get(&key) {
                    Some(&group) => groups[group].push(index),
                    None => {
                        by_key.insert(key, groups.len());
                        groups.push(vec![index]);
                    }
                }
            }
            None => {
                let is_head = row.member.get("relation").and_then(Value::as_str) == Some("head");
                match groups.last_mut() {
                    Some(last) if keyless_open && !is_head => last.push(index),
                    _ => {
                        groups.push(vec![index]);
                        keyless_open = true;
                    }
                }
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_read_however_they_were_written() {
        assert_eq!(date_of(&Cell::Date(29_221.0)).unwrap(), "1980-01-01");
        assert_eq!(date_of(&Cell::Number(29_221.0)).unwrap(), "1980-01-01");
        assert_eq!(date_of(&Cell::Number(19_800_101.0)).unwrap(), "1980-01-01");
        assert_eq!(date_of(&Cell::Text("1980/1/1".into())).unwrap(), "1980-01-01");
        assert_eq!(date_of(&Cell::Text("1980年1月1日".into())).unwrap(), "1980-01-01");
        assert!(date_of(&Cell::Text("去年".into())).is_err());
    }

    #[test]
    fn coded_values_are_read_from_labels_codes_and_common_words() {
        assert_eq!(code_of(&codes::RelationToHead::DEF, "户主").unwrap(), "head");
        assert_eq!(code_of(&codes::RelationToHead::DEF, "之子").unwrap(), "son");
        assert_eq!(code_of(&codes::RelationToHead::DEF, "子").unwrap(), "son");
        assert_eq!(code_of(&codes::PovertyCause::DEF, "因病致贫").unwrap(), "illness");
        assert_eq!(code_of(&codes::PovertyCause::DEF, "7").unwrap(), "lack_skills");
        assert_eq!(code_of(&codes::Health::DEF, "慢性病").unwrap(), "chronic");
        assert!(code_of(&codes::Health::DEF, "很好").unwrap_err().zh.contains("健康"));
    }

    #[test]
    fn long_numbers_stored_as_values_are_refused() {
        assert_eq!(text_of(&Cell::Number(530_724_198_001_010_000.0)).unwrap_err().code, "digits_lost");
        assert_eq!(text_of(&Cell::Number(13_812_345_678.0)).unwrap(), "13812345678");
    }
}
