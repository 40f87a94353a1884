//! Checks of raw field values against the schema, and the per-table domain rules.
//!
//! The same checks run on the device before a write and on the server before it accepts a pushed
//! change, so neither trusts the other. Everything a check needs from storage (does a referenced
//! row exist, what is a platform's title limit) comes through [`Context`], which the device store
//! and the server's storage each implement.

use chrono::{DateTime, NaiveDate, NaiveTime};
use serde_json::{Map, Value};

use crate::codes::{self, IncomeCategory};
use crate::error::FieldError;
use crate::schema::{FieldSpec, FieldType, TableSpec};

/// What the checks need to know from storage.
pub trait Context {
    /// Whether a live (not deleted) row with this id exists in the synced table.
    fn exists(&self, table: &str, id: &str) -> bool;
    /// The limit of a platform rule (e.g. `title_units` for `taobao`), if one is set.
    fn platform_limit(&self, platform: &str, rule: &str) -> Option<i64>;
    /// The latest calendar date a date of something already done may have. The default is the
    /// latest date anywhere on Earth now (UTC+14), so a check without a time zone (the server's)
    /// never refuses what a device in any zone accepted; the device answers with its own date.
    fn today(&self) -> NaiveDate {
        latest_date_on_earth()
    }
}

/// The latest calendar date anywhere on Earth at this moment: today in UTC+14.
pub fn latest_date_on_earth() -> NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(14)).date_naive()
}

/// Refuses a date of something already done (a birth, a visit, an income recorded, a sale) that
/// lies after `today`, with a message in both languages naming today's date.
pub fn check_not_future(field: &str, date: NaiveDate, today: NaiveDate) -> Result<(), FieldError> {
    if date <= today {
        return Ok(());
    }
    Err(error(
        field,
        "in_future",
        format!("日期不能晚于今天（{today}）"),
        format!("must not be later than today ({today})"),
    ))
}

/// The sex an identity card number records: its 17th digit is odd for a man, even for a woman.
pub fn id_card_sex(text: &str) -> Option<codes::Sex> {
    let digit = text.as_bytes().get(16).filter(|byte| byte.is_ascii_digit())?;
    Some(if (digit - b'0') % 2 == 1 { codes::Sex::Male } else { codes::Sex::Female })
}

/// Default limit of a listing title in display units (a CJK character counts two, ASCII one),
/// the strictest of the platforms' documented rules: 30 CJK characters, 60 bytes.
pub const DEFAULT_TITLE_UNITS: i64 = 60;

/// The display width of a title as platforms count it: two units for a non-ASCII character.
pub fn title_units(title: &str) -> i64 {
    title.chars().map(|character| if character.is_ascii() { 1 } else { 2 }).sum()
}

/// Whether `phone` is a mainland mobile number: 11 digits, starting with 1 then 3 to 9.
pub fn is_mobile_number(phone: &str) -> bool {
    let bytes = phone.as_bytes();
    bytes.len() == 11 && bytes[0] == b'1' && (b'3'..=b'9').contains(&bytes[1]) && bytes.iter().all(u8::is_ascii_digit)
}

/// Whether `phone` is a mainland landline number with its area code: 0, two or three more
/// digits, an optional dash, and a 7- or 8-digit local number (010-12345678, 0871-6512345).
pub fn is_landline_number(phone: &str) -> bool {
    let (area, local) = match phone.split_once('-') {
        Some((area, local)) => (area, local),
        None if phone.len() >= 10 => phone.split_at(if phone.starts_with("01") || phone.starts_with("02") { 3 } else { 4 }),
        None => return false,
    };
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    area.starts_with('0') && (3..=4).contains(&area.len()) && digits(area) && (7..=8).contains(&local.len()) && digits(local)
}

/// A phone number as typed, tidied the way it is stored: spaces and the separators people type
/// inside a mobile number (138 0013 8000, 138-0013-8000, +86 138…) go; a landline keeps one dash
/// between its area code and its number (0871 6512345 becomes 0871-6512345). Text that is no
/// phone number is returned trimmed, for the checks to refuse.
pub fn normalise_phone(text: &str) -> String {
    let trimmed = text.trim();
    let compact: String = trimmed.chars().filter(|character| !character.is_whitespace() && *character != '-').collect();
    let compact = compact.strip_prefix("+86").or_else(|| compact.strip_prefix("0086")).map(str::to_owned).unwrap_or(compact);
    if is_mobile_number(&compact) {
        return compact;
    }
    let parts: Vec<&str> = trimmed.split(|character: char| character.is_whitespace() || character == '-').filter(|part| !part.is_empty()).collect();
    if parts.len() == 2 && is_landline_number(&format!("{}-{}", parts[0], parts[1])) {
        return format!("{}-{}", parts[0], parts[1]);
    }
    if is_landline_number(&compact) {
        return compact;
    }
    trimmed.to_owned()
}

/// Whether `text` is a resident identity card number (GB 11643-1999): 17 digits, of which the
/// 7th to 14th are a real birth date, and the ISO 7064 MOD 11-2 check character (a digit or X).
pub fn is_id_card_number(text: &str) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let bytes = text.as_bytes();
    if bytes.len() != 18 || !bytes[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    if id_card_birth_date(text).is_none() {
        return false;
    }
    let sum: u32 = bytes[..17].iter().zip(WEIGHTS).map(|(digit, weight)| u32::from(digit - b'0') * weight).sum();
    bytes[17].to_ascii_uppercase() == CHECK[(sum % 11) as usize]
}

/// The birth date inside an identity card number, as `YYYY-MM-DD`, if it is a real date.
pub fn id_card_birth_date(text: &str) -> Option<String> {
    let digits = text.get(6..14)?;
    let date = chrono::NaiveDate::parse_from_str(digits, "%Y%m%d").ok()?;
    (1900..=2100).contains(&chrono::Datelike::year(&date)).then(|| date.format("%Y-%m-%d").to_string())
}

fn error(field: &str, code: &str, zh: impl Into<String>, en: impl Into<String>) -> FieldError {
    FieldError::new(field, code, zh, en)
}

fn wrong_type(field: &str, zh: &str, en: &str) -> FieldError {
    error(field, "invalid_type", format!("应为{zh}"), format!("must be {en}"))
}

/// Parses an ISO 8601 date `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    if text.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// Text fields of at least this many characters hold prose (notes, descriptions, reasons), which
/// may run over several lines and hold tabs; shorter text (names, titles, codes) is one line.
pub const PROSE_CHARS: usize = 500;

/// Refuses control characters in text: a NUL cannot even be stored by every database, and no
/// name or title holds one. Prose may hold newlines and tabs.
pub fn check_control_characters(field: &str, text: &str, prose: bool) -> Result<(), FieldError> {
    let allowed = |character: char| prose && (character == '\n' || character == '\t');
    match text.chars().find(|character| character.is_control() && !allowed(*character)) {
        None => Ok(()),
        Some(character) => Err(error(
            field,
            "control_character",
            format!("含有不可见的控制字符（U+{:04X}）", u32::from(character)),
            format!("contains the control character U+{:04X}", u32::from(character)),
        )),
    }
}

/// The years a date of this domain may fall in: no one alive was born before the first, and
/// nothing is planned after the second; a year outside them (`9999-12-31`) is a typing slip or
/// a forged value.
pub const PLAUSIBLE_YEARS: std::ops::RangeInclusive<i32> = 1900..=2100;

fn check_plausible_year(field: &str, year: i32) -> Result<(), FieldError> {
    if PLAUSIBLE_YEARS.contains(&year) {
        return Ok(());
    }
    Err(error(field, "implausible_date", "日期的年份应在1900到2100之间", "must fall between the years 1900 and 2100"))
}

/// Checks one value against its field's type. `Null` passes here; whether it may be null is
/// [`check_record`]'s business.
pub fn check_value(field: &FieldSpec, value: &Value) -> Result<(), FieldError> {
    let name = field.name;
    if value.is_null() {
        return Ok(());
    }
    match field.ty {
        FieldType::Text { max_chars } => {
            let text = value.as_str().ok_or_else(|| wrong_type(name, "文本", "text"))?;
            check_control_characters(name, text, max_chars >= PROSE_CHARS)?;
            let count = text.chars().count();
            if count > max_chars {
                return Err(error(
                    name,
                    "too_long",
                    format!("不能超过{max_chars}个字（现有{count}个）"),
                    format!("must be at most {max_chars} characters (has {count})"),
                ));
            }
        }
        FieldType::Int { min, max } => {
            let number = value.as_i64().ok_or_else(|| wrong_type(name, "整数", "a whole number"))?;
            if number < min || number > max {
                return Err(error(
                    name,
                    "out_of_range",
                    format!("应在{min}到{max}之间"),
                    format!("must be between {min} and {max}"),
                ));
            }
        }
        FieldType::Year => {
            let year = value.as_i64().ok_or_else(|| wrong_type(name, "年份", "a year"))?;
            if !(1949..=2100).contains(&year) {
                return Err(error(name, "invalid_year", "年份应在1949到2100之间", "must be a year between 1949 and 2100"));
            }
        }
        FieldType::Fen => {
            let fen = value.as_i64().ok_or_else(|| {
                error(name, "invalid_amount", "金额应为以分计的整数", "must be an amount in whole fen")
            })?;
            if fen < 0 {
                return Err(error(name, "negative_amount", "金额不能为负数", "must not be negative"));
            }
            if fen > 100_000_000_000 {
                return Err(error(name, "out_of_range", "金额过大", "is too large"));
            }
        }
        FieldType::Grams => {
            let grams = value.as_i64().ok_or_else(|| {
                error(name, "invalid_weight", "重量应为以克计的整数", "must be a weight in whole grams")
            })?;
            if !(0..=1_000_000_000).contains(&grams) {
                return Err(error(name, "out_of_range", "重量超出范围", "weight is out of range"));
            }
        }
        FieldType::Real { min, max } => {
            let number = value.as_f64().ok_or_else(|| wrong_type(name, "数字", "a number"))?;
            if !number.is_finite() || number < min || number > max {
                return Err(error(
                    name,
                    "out_of_range",
                    format!("应在{min}到{max}之间"),
                    format!("must be between {min} and {max}"),
                ));
            }
        }
        FieldType::Bool => {
            if !value.is_boolean() {
                return Err(wrong_type(name, "是或否", "yes or no"));
            }
        }
        FieldType::Date => {
            let ok = value.as_str().and_then(parse_date).is_some();
            if !ok {
                return Err(error(
                    name,
                    "invalid_date",
                    "日期格式应为 年-月-日，如 2026-03-01",
                    "must be a date like 2026-03-01",
                ));
            }
            if let Some(date) = value.as_str().and_then(parse_date) {
                check_plausible_year(name, chrono::Datelike::year(&date))?;
            }
        }
        FieldType::DateTime => {
            let ok = value.as_str().map(|text| DateTime::parse_from_rfc3339(text).is_ok()).unwrap_or(false);
            if !ok {
                return Err(error(
                    name,
                    "invalid_datetime",
                    "时间格式应为 2026-03-01T09:30:00+08:00",
                    "must be a time like 2026-03-01T09:30:00+08:00",
                ));
            }
            if let Some(moment) = value.as_str().and_then(|text| DateTime::parse_from_rfc3339(text).ok()) {
                check_plausible_year(name, chrono::Datelike::year(&moment))?;
            }
        }
        FieldType::TimeOfDay => {
            let ok = value.as_str().map(|text| text.len() == 5 && NaiveTime::parse_from_str(text, "%H:%M").is_ok());
            if ok != Some(true) {
                return Err(error(name, "invalid_time", "时间格式应为 时:分，如 09:30", "must be a time like 09:30"));
            }
        }
        FieldType::Phone => {
            let ok = value.as_str().map(is_mobile_number).unwrap_or(false);
            if !ok {
                return Err(error(
                    name,
                    "invalid_phone",
                    "手机号应为11位数字，以1开头",
                    "must be an 11-digit mobile number starting with 1",
                ));
            }
        }
        FieldType::Telephone => {
            let ok = value.as_str().is_some_and(|phone| is_mobile_number(phone) || is_landline_number(phone));
            if !ok {
                return Err(error(
                    name,
                    "invalid_phone",
                    "电话应为11位手机号，或带区号的固定电话（如 0871-6512345）",
                    "must be an 11-digit mobile number, or a landline with its area code (like 0871-6512345)",
                ));
            }
        }
        FieldType::IdCard => {
            if !value.as_str().is_some_and(is_id_card_number) {
                return Err(error(
                    name,
                    "invalid_id_card",
                    "身份证号应为18位：17位数字加1位校验码（数字或X），请核对",
                    "must be an 18-character ID number: 17 digits and a check character (a digit or X) that matches them",
                ));
            }
        }
        FieldType::AdminCode => {
            let ok = value.as_str().map(|text| text.len() == 12 && text.bytes().all(|byte| byte.is_ascii_digit()));
            if ok != Some(true) {
                return Err(error(
                    name,
                    "invalid_admin_code",
                    "村代码应为12位统计用区划代码",
                    "must be a 12-digit administrative division code",
                ));
            }
        }
        FieldType::Sha256 => {
            let ok = value.as_str().map(is_sha256);
            if ok != Some(true) {
                return Err(error(name, "invalid_hash", "照片摘要无效", "must be a SHA-256 digest in lowercase hex"));
            }
        }
        FieldType::Enum(def) => {
            let ok = value.as_str().map(|code| def.contains(code)).unwrap_or(false);
            if !ok {
                return Err(error(name, "invalid_choice", "请从列表中选择", format!("must be one of the {} choices", def.name)));
            }
        }
        FieldType::EnumList(def) => {
            let items = value.as_array().ok_or_else(|| wrong_type(name, "选项列表", "a list of choices"))?;
            let mut seen = std::collections::HashSet::new();
            for item in items {
                let ok = item.as_str().map(|code| def.contains(code)).unwrap_or(false);
                if !ok {
                    return Err(error(
                        name,
                        "invalid_choice",
                        "包含无效的选项",
                        format!("contains a value that is not one of the {} choices", def.name),
                    ));
                }
                if !seen.insert(item.as_str()) {
                    return Err(error(name, "duplicate_choice", "选项重复", "lists a choice twice"));
                }
            }
        }
        FieldType::Ref(_) => {
            let ok = value.as_str().map(|id| uuid::Uuid::parse_str(id).is_ok()).unwrap_or(false);
            if !ok {
                return Err(error(name, "invalid_reference", "关联记录无效", "must name an existing record"));
            }
        }
    }
    Ok(())
}

fn is_empty(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(text)) => text.trim().is_empty(),
        Some(Value::Array(items)) => items.is_empty(),
        _ => false,
    }
}

/// Checks a whole live record (all its fields, as they will be after the write) against its
/// table: required fields, each value's type, references to live rows, and the table's domain
/// rules. Returns every failing field; an empty list means the record may be written.
pub fn check_record(table: &TableSpec, record: &Map<String, Value>, context: &dyn Context) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (name, _) in record {
        if table.field(name).is_none() {
            errors.push(error(name, "unknown_field", "未知字段", "is not a field of this record"));
        }
    }
    for field in table.fields {
        let value = record.get(field.name);
        if is_empty(value) {
            if field.required {
                errors.push(error(field.name, "required", "必填", "is required"));
            }
            continue;
        }
        let value = value.expect("checked above");
        if let Err(failure) = check_value(field, value) {
            errors.push(failure);
            continue;
        }
        if let FieldType::Ref(target) = field.ty {
            let id = value.as_str().unwrap_or_default();
            if !context.exists(target, id) {
                errors.push(error(field.name, "not_found", "关联的记录不存在或已删除", "refers to a record that does not exist"));
            }
        }
    }
    if errors.is_empty() {
        domain_rules(table, record, context, &mut errors);
    }
    errors
}

fn text<'a>(record: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    record.get(name).and_then(Value::as_str)
}

/// The dates of each table that record something already done, and so cannot lie in the future.
fn past_dates(table: &str) -> &'static [&'static str] {
    match table {
        "members" => &["birth_date"],
        "households" => &["consent_date", "closed_on"],
        "income_records" => &["recorded_on"],
        "visits" => &["visited_at", "follow_up_done_on"],
        "sales" => &["order_date"],
        _ => &[],
    }
}

/// The calendar date of a date field or of a moment (a moment's date where it happened).
fn date_of(value: &str) -> Option<NaiveDate> {
    parse_date(value).or_else(|| DateTime::parse_from_rfc3339(value).ok().map(|moment| moment.date_naive()))
}

fn domain_rules(table: &TableSpec, record: &Map<String, Value>, context: &dyn Context, errors: &mut Vec<FieldError>) {
    let dates = past_dates(table.name);
    if !dates.is_empty() {
        let today = context.today();
        for field in dates {
            if let Some(date) = text(record, field).and_then(date_of) {
                if let Err(failure) = check_not_future(field, date, today) {
                    errors.push(failure);
                }
            }
        }
    }
    match table.name {
        "income_records" => income_rules(record, errors),
        "members" => {
            let card = text(record, "id_card_no");
            if let (Some(sex), Some(in_card)) = (text(record, "sex"), card.and_then(id_card_sex)) {
                if sex != in_card.code() {
                    let value = in_card.code();
                    let zh = codes::Sex::DEF.get(value).map(|label| label.zh).unwrap_or(value);
                    let en = codes::Sex::DEF.get(value).map(|label| label.en).unwrap_or(value);
                    errors.push(error(
                        "sex",
                        "id_card_sex_mismatch",
                        format!("与身份证号不符：身份证号第17位表示性别为{zh}"),
                        format!("does not match the ID card number, whose 17th digit says {}", en.to_lowercase()),
                    ));
                }
            }
            let born = text(record, "birth_date");
            let in_card = text(record, "id_card_no").and_then(id_card_birth_date);
            if let (Some(born), Some(in_card)) = (born, in_card) {
                if born != in_card {
                    errors.push(error(
                        "id_card_no",
                        "id_card_birth_mismatch",
                        format!("身份证号中的出生日期（{in_card}）与填写的出生日期不一致"),
                        format!("holds the birth date {in_card}, not the birth date given"),
                    ));
                }
            }
        }
        "visits" => {
            let visited = text(record, "visited_at").and_then(|moment| moment.get(..10)).and_then(parse_date);
            let next = text(record, "next_visit_date").and_then(parse_date);
            if let (Some(visited), Some(next)) = (visited, next) {
                if next < visited {
                    errors.push(error(
                        "next_visit_date",
                        "before_visit",
                        "下次走访日期不能早于本次走访",
                        "must not be before the visit itself",
                    ));
                }
            }
        }
        "households" => {
            match (text(record, "closed_reason"), text(record, "closed_on")) {
                (Some(_), None) => errors.push(error("closed_on", "required", "销户须填写日期", "is required when the household is closed")),
                (None, Some(_)) => errors.push(error("closed_reason", "required", "请选择销户原因", "is required with a closing date")),
                _ => {}
            }
            if text(record, "closed_note").is_some() && text(record, "closed_reason").is_none() && text(record, "closed_on").is_none() {
                errors.push(error("closed_reason", "required", "请选择销户原因", "is required with a closing note"));
            }
            if let (Some(identified), Some(exited)) = (
                record.get("identified_year").and_then(Value::as_i64),
                record.get("exit_year").and_then(Value::as_i64),
            ) {
                if exited < identified {
                    errors.push(error("exit_year", "before_identified", "脱贫年度不能早于识别年度", "must not be before the year identified"));
                }
            }
            let main = text(record, "main_cause");
            let secondary = record.get("secondary_causes").and_then(Value::as_array);
            if let (Some(main), Some(secondary)) = (main, secondary) {
                if secondary.iter().any(|cause| cause.as_str() == Some(main)) {
                    errors.push(error(
                        "secondary_causes",
                        "repeats_main_cause",
                        "次要致贫原因不应重复主要原因",
                        "must not repeat the main cause",
                    ));
                }
            }
        }
        "listings" => listing_rules(record, context, errors),
        _ => {}
    }
}

fn income_rules(record: &Map<String, Value>, errors: &mut Vec<FieldError>) {
    let amount = record.get("amount_fen").and_then(Value::as_i64).unwrap_or(0);
    let is_correction = !is_empty(record.get("corrects_id"));
    if amount == 0 && !is_correction {
        errors.push(error("amount_fen", "must_be_positive", "金额必须大于0", "must be greater than zero"));
    }
    if let Some(period) = text(record, "period") {
        let ok = period == "Y"
            || matches!(period, "Q1" | "Q2" | "Q3" | "Q4")
            || (period.len() == 3
                && period.starts_with('M')
                && period[1..].parse::<u32>().map(|month| (1..=12).contains(&month)).unwrap_or(false));
        if !ok {
            errors.push(error(
                "period",
                "invalid_period",
                "期间应为 Y（全年）、Q1–Q4 或 M01–M12",
                "must be Y (year), Q1 to Q4, or M01 to M12",
            ));
        }
    }
    let category = text(record, "category").and_then(IncomeCategory::from_code);
    let subcategory = text(record, "subcategory").and_then(codes::IncomeSubcategory::from_code);
    if let (Some(category), Some(subcategory)) = (category, subcategory) {
        if !codes::income_subcategories(category).contains(&subcategory) {
            errors.push(error("subcategory", "wrong_subcategory", "小类与收入类别不符", "does not belong to the income category"));
        }
    }
}

fn listing_rules(record: &Map<String, Value>, context: &dyn Context, errors: &mut Vec<FieldError>) {
    let platform = text(record, "platform").unwrap_or("other");
    // A draft may break the title rule while the assistant works on it (the listing form shows
    // the rule's state as they type); anything past a draft must keep it.
    let is_draft = matches!(text(record, "status"), Some("draft") | None);
    if let Some(title) = text(record, "title").filter(|_| !is_draft) {
        let limit = context.platform_limit(platform, "title_units").unwrap_or(DEFAULT_TITLE_UNITS);
        let units = title_units(title);
        if units > limit {
            errors.push(error(
                "title",
                "title_too_long",
                format!("标题过长：最多{}个汉字（{}字节），现为{}字节", limit / 2, limit, units),
                format!("is too long: at most {} CJK characters ({} bytes), has {}", limit / 2, limit, units),
            ));
        }
    }
    if let Some(price) = record.get("price_fen").and_then(Value::as_i64) {
        if price == 0 {
            errors.push(error("price_fen", "must_be_positive", "价格必须大于0", "must be greater than zero"));
        }
    }
    if let (Some(price), Some(market)) = (
        record.get("price_fen").and_then(Value::as_i64),
        record.get("market_price_fen").and_then(Value::as_i64),
    ) {
        if market < price {
            errors.push(error("market_price_fen", "below_price", "市场价不应低于售价", "must not be below the price"));
        }
    }
}

/// Whether `text` is a SHA-256 digest in lowercase hex.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Nothing;
    impl Context for Nothing {
        fn exists(&self, _: &str, _: &str) -> bool {
            false
        }
        fn platform_limit(&self, _: &str, _: &str) -> Option<i64> {
            None
        }
    }

    #[test]
    fn mobile_numbers_are_eleven_digits_starting_with_one() {
        for good in ["13800138000", "19912345678"] {
            assert!(is_mobile_number(good), "{good}");
        }
        for bad in ["1380013800", "138001380001", "23800138000", "12800138000", "1380013800a", "138 0013 800"] {
            assert!(!is_mobile_number(bad), "{bad}");
        }
    }

    #[test]
    fn title_units_count_cjk_double() {
        assert_eq!(title_units("abc"), 3);
        assert_eq!(title_units("核桃500g"), 8);
    }

    #[test]
    fn dates_must_be_real_calendar_dates() {
        let field = crate::schema::HOUSEHOLDS.field("consent_date").unwrap();
        assert!(check_value(field, &json!("2024-02-29")).is_ok());
        for bad in ["2023-02-29", "2024-13-01", "2024-1-1", "01/02/2024", ""] {
            assert_eq!(check_value(field, &json!(bad)).unwrap_err().code, "invalid_date", "{bad}");
        }
    }

    #[test]
    fn a_record_reports_every_bad_field_at_once() {
        let record = json!({"head_name": "", "phone": "123", "attribute": "rich", "village_id": "x"});
        let errors = check_record(&crate::schema::HOUSEHOLDS, record.as_object().unwrap(), &Nothing);
        let codes: Vec<_> = errors.iter().map(|error| (error.field.as_str(), error.code.as_str())).collect();
        assert!(codes.contains(&("head_name", "required")));
        assert!(codes.contains(&("phone", "invalid_phone")));
        assert!(codes.contains(&("attribute", "invalid_choice")));
        assert!(codes.contains(&("village_id", "invalid_reference")));
        assert!(codes.contains(&("poverty_status", "required")));
        assert!(errors.iter().all(|error| !error.message_zh.is_empty() && !error.message_en.is_empty()));
    }
}
