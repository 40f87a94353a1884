//! Reference data: the labels of every coded value, poverty lines by year and scope (editable,
//! seeded with the national figures and their sources), and platform listing rules.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::codes::{self, EnumDef};
use crate::error::{Error, FieldError, Result};
use crate::store::Store;

/// Every enumeration with its codes and labels, for the UI's pickers.
pub fn enum_labels() -> &'static [EnumDef] {
    codes::ALL
}

/// A poverty line: the per-capita annual net income below which a household is poor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PovertyLine {
    /// Row id; `None` for a new line.
    pub id: Option<i64>,
    /// The first year the line applies to; it stays in force until a later line.
    pub year: i64,
    /// `national`, `province` or `county`.
    pub scope_level: String,
    /// The province (2-digit) or county (6-digit) code prefix; empty for national lines.
    pub region_code: String,
    /// The line in fen per person per year.
    pub amount_fen: i64,
    /// The price basis (e.g. 2010 constant prices).
    pub price_basis: String,
    /// Where the figure comes from.
    pub source: String,
    /// `verified`, `secondary` or `user`.
    pub source_quality: String,
}

fn line_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<PovertyLine> {
    Ok(PovertyLine {
        id: row.get(0)?,
        year: row.get(1)?,
        scope_level: row.get(2)?,
        region_code: row.get(3)?,
        amount_fen: row.get(4)?,
        price_basis: row.get(5)?,
        source: row.get(6)?,
        source_quality: row.get(7)?,
    })
}

const LINE_COLUMNS: &str = "id, year, scope_level, region_code, amount_fen, price_basis, source, source_quality";

/// Every poverty line, by year.
pub fn poverty_lines(store: &Store) -> Result<Vec<PovertyLine>> {
    let mut statement =
        store.conn().prepare(&format!("SELECT {LINE_COLUMNS} FROM poverty_lines ORDER BY year, scope_level, region_code"))?;
    let lines = statement.query_map([], line_from_row)?;
    Ok(lines.collect::<rusqlite::Result<_>>()?)
}

/// Adds or edits a poverty line after checking it.
pub fn save_poverty_line(store: &mut Store, line: &PovertyLine) -> Result<PovertyLine> {
    let mut errors = Vec::new();
    if !(1949..=2100).contains(&line.year) {
        errors.push(FieldError::new("year", "invalid_year", "年份应在1949到2100之间", "must be a year between 1949 and 2100"));
    }
    let region_ok = match line.scope_level.as_str() {
        "national" => line.region_code.is_empty(),
        "province" => line.region_code.len() == 2 && line.region_code.bytes().all(|byte| byte.is_ascii_digit()),
        "county" => line.region_code.len() == 6 && line.region_code.bytes().all(|byte| byte.is_ascii_digit()),
        _ => {
            errors.push(FieldError::new("scope_level", "invalid_choice", "请选择全国、省或县", "must be national, province or county"));
            true
        }
    };
    if !region_ok {
        errors.push(FieldError::new(
            "region_code",
            "invalid_region",
            "省级填2位代码，县级填6位代码，全国不填",
            "must be a 2-digit province code, a 6-digit county code, or empty for national",
        ));
    }
    if line.amount_fen <= 0 {
        errors.push(FieldError::new("amount_fen", "must_be_positive", "金额必须大于0", "must be greater than zero"));
    }
    if line.source.trim().is_empty() {
        errors.push(FieldError::new("source", "required", "必填", "is required"));
    }
    if !errors.is_empty() {
        return Err(Error::Validation(errors));
    }
    let conn = store.conn();
    match line.id {
        Some(id) => {
            let updated = conn.execute(
                "UPDATE poverty_lines SET year = ?1, scope_level = ?2, region_code = ?3, amount_fen = ?4, price_basis = ?5,
                        source = ?6, source_quality = ?7 WHERE id = ?8",
                params![line.year, line.scope_level, line.region_code, line.amount_fen, line.price_basis, line.source, line.source_quality, id],
            );
            match updated {
                Ok(0) => return Err(Error::NotFound { table: "poverty_lines".into(), id: id.to_string() }),
                Ok(_) => {}
                Err(error) => return Err(duplicate_line(error)),
            }
            Ok(line.clone())
        }
        None => {
            conn.execute(
                "INSERT INTO poverty_lines (year, scope_level, region_code, amount_fen, price_basis, source, source_quality)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![line.year, line.scope_level, line.region_code, line.amount_fen, line.price_basis, line.source, line.source_quality],
            )
            .map_err(duplicate_line)?;
            Ok(PovertyLine { id: Some(conn.last_insert_rowid()), ..line.clone() })
        }
    }
}

fn duplicate_line(error: rusqlite::Error) -> Error {
    if error.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) {
        Error::Validation(vec![FieldError::new(
            "year",
            "duplicate",
            "该年度和范围已有贫困线",
            "a line for this year and scope already exists",
        )])
    } else {
        Error::Sqlite(error)
    }
}

/// The poverty line in force in `year` for a village: the most specific scope (county, then
/// province, then national) with the latest start year not after `year`.
pub fn line_in_force(store: &Store, year: i64, village_code: Option<&str>) -> Result<Option<PovertyLine>> {
    let code = village_code.unwrap_or_default();
    let province = code.get(..2).unwrap_or("--");
    let county = code.get(..6).unwrap_or("------");
    let line = store
        .conn()
        .query_row(
            &format!(
                "SELECT {LINE_COLUMNS} FROM poverty_lines
                  WHERE year <= ?1 AND (scope_level = 'national'
                        OR (scope_level = 'province' AND region_code = ?2)
                        OR (scope_level = 'county' AND region_code = ?3))
                  ORDER BY CASE scope_level WHEN 'county' THEN 0 WHEN 'province' THEN 1 ELSE 2 END, year DESC
                  LIMIT 1"
            ),
            params![year, province, county],
            line_from_row,
        )
        .optional()?;
    Ok(line)
}

/// A platform listing rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PlatformRule {
    /// Platform code.
    pub platform: String,
    /// Rule name, e.g. `title_units`.
    pub rule: String,
    /// Smallest allowed value.
    pub min_value: Option<i64>,
    /// Largest allowed value.
    pub max_value: Option<i64>,
    /// Unit of the values.
    pub unit: String,
    /// Where the rule comes from.
    pub source: String,
}

/// Every platform rule.
pub fn platform_rules(store: &Store) -> Result<Vec<PlatformRule>> {
    let mut statement =
        store.conn().prepare("SELECT platform, rule, min_value, max_value, unit, source FROM platform_rules ORDER BY platform, rule")?;
    let rules = statement.query_map([], |row| {
        Ok(PlatformRule {
            platform: row.get(0)?,
            rule: row.get(1)?,
            min_value: row.get(2)?,
            max_value: row.get(3)?,
            unit: row.get(4)?,
            source: row.get(5)?,
        })
    })?;
    Ok(rules.collect::<rusqlite::Result<_>>()?)
}

/// Sets a platform rule (a user's edit, or reference data pulled from the platform).
pub fn set_platform_rule(store: &mut Store, rule: &PlatformRule) -> Result<()> {
    if !codes::Platform::DEF.contains(&rule.platform) {
        return Err(Error::Validation(vec![FieldError::new("platform", "invalid_choice", "请从列表中选择", "must be a known platform")]));
    }
    if let (Some(min), Some(max)) = (rule.min_value, rule.max_value) {
        if min > max {
            return Err(Error::Validation(vec![FieldError::new("max_value", "below_min", "上限不能小于下限", "must not be below the minimum")]));
        }
    }
    store.conn().execute(
        "INSERT INTO platform_rules (platform, rule, min_value, max_value, unit, source) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (platform, rule) DO UPDATE SET min_value = excluded.min_value, max_value = excluded.max_value,
                unit = excluded.unit, source = excluded.source",
        params![rule.platform, rule.rule, rule.min_value, rule.max_value, rule.unit, rule.source],
    )?;
    Ok(())
}
