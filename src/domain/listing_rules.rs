//! 平台规则 A listing checked against its platform's rules, rule by rule, as the assistant types.
//!
//! The limits are data (the `platform_rules` table, seeded from the platforms' documented rules
//! and editable), so a changed platform rule needs no new version. A draft may be saved while it
//! fails rules; [`submit`] accepts it only when every rule passes.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::codes::{ListingStatus, ModerationStatus, PhotoKind, PhotoOwner, ProductCategory};
use crate::domain::listing::{self, Listing, Photo};
use crate::error::{Error, FieldError, Result};
use crate::store::Store;
use crate::validate::{title_units, Context, DEFAULT_TITLE_UNITS};

/// The state of one rule for one listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RuleCheck {
    /// The rule, e.g. `title_units`.
    pub rule: String,
    /// The listing field the rule is about (`photos` for image rules).
    pub field: String,
    /// Whether the listing passes it.
    pub passed: bool,
    /// What the rule asks, and where the listing stands, in Chinese.
    pub message_zh: String,
    /// The same in English.
    pub message_en: String,
}

fn check(rule: &str, field: &str, passed: bool, message_zh: String, message_en: String) -> RuleCheck {
    RuleCheck { rule: rule.into(), field: field.into(), passed, message_zh, message_en }
}

/// Categories sold as food, which need shelf life, storage and a production date.
fn is_food(category: Option<ProductCategory>) -> bool {
    !matches!(category, Some(ProductCategory::Handicraft) | Some(ProductCategory::Other) | None)
}

/// Checks a listing (saved or being typed) and its photos against its platform's rules.
pub fn check_rules(store: &Store, listing: &Listing, photos: &[Photo]) -> Vec<RuleCheck> {
    let platform = listing.platform.map(|platform| platform.code()).unwrap_or("other");
    let limit = |rule: &str| store.platform_limit(platform, rule);
    let minimum = |rule: &str| store.platform_minimum(platform, rule);
    let mut checks = Vec::new();

    let title = listing.title.as_deref().unwrap_or_default().trim();
    let title_limit = limit("title_units").unwrap_or(DEFAULT_TITLE_UNITS);
    let units = title_units(title);
    checks.push(check(
        "title_units",
        "title",
        !title.is_empty() && units <= title_limit,
        format!("标题 1–{} 个汉字（{} 字节），当前 {} 字节", title_limit / 2, title_limit, units),
        format!("Title of 1 to {} CJK characters ({} bytes); now {} bytes", title_limit / 2, title_limit, units),
    ));

    let description = listing.description.as_deref().unwrap_or_default().trim().chars().count() as i64;
    if let Some(max) = limit("description_chars") {
        let min = minimum("description_chars").unwrap_or(0);
        checks.push(check(
            "description_chars",
            "description",
            (min..=max).contains(&description),
            format!("详情 {min}–{max} 字，当前 {description} 字"),
            format!("Description of {min} to {max} characters; now {description}"),
        ));
    }
    if let Some(max) = limit("selling_point_chars") {
        let count = listing.selling_point.as_deref().unwrap_or_default().chars().count() as i64;
        checks.push(check(
            "selling_point_chars",
            "selling_point",
            count <= max,
            format!("卖点最多 {max} 字，当前 {count} 字"),
            format!("Selling point of at most {max} characters; now {count}"),
        ));
    }

    let price = listing.price_fen.unwrap_or(0);
    checks.push(check(
        "price_fen",
        "price_fen",
        price > 0 && price <= limit("price_fen").unwrap_or(10_000_000_000),
        "售价须大于 0".into(),
        "Price above zero".into(),
    ));
    let stock = listing.stock_qty.unwrap_or(0);
    let stock_max = limit("stock_qty").unwrap_or(900_000_000);
    checks.push(check(
        "stock_qty",
        "stock_qty",
        (1..=stock_max).contains(&stock),
        format!("库存 1–{stock_max}，当前 {stock}"),
        format!("Stock of 1 to {stock_max}; now {stock}"),
    ));

    let images: Vec<&Photo> = photos.iter().filter(|photo| photo.kind != Some(PhotoKind::Detail)).collect();
    let most = limit("image_count").unwrap_or(5);
    checks.push(check(
        "image_count",
        "photos",
        (1..=most).contains(&(images.len() as i64)),
        format!("主图和轮播图 1–{most} 张，当前 {} 张", images.len()),
        format!("1 to {most} main and carousel images; now {}", images.len()),
    ));
    let main = photos.iter().find(|photo| photo.kind == Some(PhotoKind::Main));
    let square = main.map(|photo| photo.width_px.is_some() && photo.width_px == photo.height_px).unwrap_or(false);
    checks.push(check(
        "main_square",
        "photos",
        square,
        "须有一张正方形（1:1）主图".into(),
        "A square (1:1) main image".into(),
    ));
    if let Some(max_bytes) = limit("image_bytes") {
        let too_big = photos.iter().filter(|photo| photo.bytes.unwrap_or(0) > max_bytes).count();
        checks.push(check(
            "image_bytes",
            "photos",
            too_big == 0,
            format!("每张图片不超过 {} KB，超出 {too_big} 张", max_bytes / 1024),
            format!("Each image at most {} KB; {too_big} too large", max_bytes / 1024),
        ));
    }
    if let Some(min_px) = minimum("image_min_px") {
        let small = images.iter().filter(|photo| photo.width_px.unwrap_or(0).min(photo.height_px.unwrap_or(0)) < min_px).count();
        checks.push(check(
            "image_min_px",
            "photos",
            small == 0,
            format!("图片边长至少 {min_px} 像素，不足 {small} 张"),
            format!("Images at least {min_px} px on each side; {small} too small"),
        ));
    }

    if is_food(listing.category) {
        for (rule, field, present, zh, en) in [
            ("shelf_life", "shelf_life_days", listing.shelf_life_days.is_some(), "食品须填写保质期", "Food needs a shelf life"),
            ("storage", "storage", listing.storage.is_some(), "食品须填写储存方式", "Food needs a storage method"),
            ("production_date", "production_date", listing.production_date.is_some(), "食品须填写生产日期", "Food needs a production date"),
        ] {
            checks.push(check(rule, field, present, zh.into(), en.into()));
        }
    }
    if listing.category == Some(ProductCategory::Processed) {
        checks.push(check(
            "production_license",
            "production_license_no",
            listing.production_license_no.as_deref().is_some_and(|number| !number.trim().is_empty()),
            "加工食品须填写生产许可证（SC）编号".into(),
            "Processed food needs its production licence (SC) number".into(),
        ));
    }
    checks
}

/// Whether the platform's verdict the device holds answers the listing's current submission:
/// false right after a rejected listing was submitted again, until the platform's new verdict
/// (first `pending`) arrives by sync.
fn verdict_is_current(store: &Store, listing_id: &str, key: Option<&str>) -> Result<bool> {
    let Some(key) = key else { return Ok(true) };
    let noted: Option<Option<i64>> = store
        .conn()
        .query_row("SELECT verdict_hlc FROM listing_submission_history WHERE submission_key = ?1", [key], |row| row.get(0))
        .optional()?;
    let Some(Some(noted)) = noted else { return Ok(true) };
    let stamp = crate::record::field_stamp(store.conn(), "listings", listing_id, "moderation_status")?;
    Ok(stamp.is_some_and(|stamp| stamp.hlc > noted))
}

/// Whether a listing may be submitted now: never submitted, or submitted and rejected by the
/// platform (the assistant fixed it and sends it again).
pub fn can_submit(store: &Store, listing: &Listing) -> Result<bool> {
    if listing.status != Some(ListingStatus::Submitted) || listing.submission_key.is_none() {
        return Ok(true);
    }
    let id = listing.id.as_deref().unwrap_or_default();
    Ok(listing.moderation_status == Some(ModerationStatus::Rejected) && verdict_is_current(store, id, listing.submission_key.as_deref())?)
}

/// Submits a listing to its platform. Every rule must pass; the listing's status becomes
/// `submitted` and it gets a submission key, so submitting again, or a retried sync after a drop,
/// is the same submission and the platform creates one listing. A listing the platform rejected
/// is submitted again under a new key once fixed: the platform records a new submission, and the
/// rejection stays in the listing's history ([`submissions`]).
pub fn submit(store: &mut Store, listing_id: &str) -> Result<Listing> {
    let current = listing::get_listing(store, listing_id)?;
    if !can_submit(store, &current)? {
        return Ok(current);
    }
    let photos = listing::photos_of(store, PhotoOwner::Listing, listing_id)?;
    let failing: Vec<FieldError> = check_rules(store, &current, &photos)
        .into_iter()
        .filter(|check| !check.passed)
        .map(|check| FieldError::new(&check.field, &format!("rule_{}", check.rule), check.message_zh, check.message_en))
        .collect();
    if !failing.is_empty() {
        return Err(Error::Validation(failing));
    }
    let previous_key = current.submission_key.clone();
    let verdict = (current.moderation_status, current.moderation_reason.clone(), current.platform_item_id.clone());
    let mut submitted = current;
    submitted.status = Some(ListingStatus::Submitted);
    let key = uuid::Uuid::now_v7().to_string();
    submitted.submission_key = Some(key.clone());
    // Saved through the write path directly: the ordinary listing save keeps the submission key
    // as it is, so that only a submit sets it. The history is noted in the same transaction.
    let changes = super::changes_of(&crate::schema::LISTINGS, &submitted)?;
    store.write(|writer| {
        writer.save(&crate::schema::LISTINGS, Some(listing_id), changes)?;
        let conn = writer.conn();
        if let Some(previous) = &previous_key {
            let (status, reason, item) = &verdict;
            conn.execute(
                "INSERT INTO listing_submission_history (submission_key, listing_id, submitted_at) VALUES (?1, ?2, '')
                 ON CONFLICT (submission_key) DO NOTHING",
                params![previous, listing_id],
            )?;
            conn.execute(
                "UPDATE listing_submission_history SET moderation_status = ?1, moderation_reason = ?2, platform_item_id = ?3
                  WHERE submission_key = ?4",
                params![status.map(|status| status.code()), reason, item, previous],
            )?;
        }
        let stamp = crate::record::field_stamp(conn, "listings", listing_id, "moderation_status")?.map(|stamp| stamp.hlc).unwrap_or(0);
        conn.execute(
            "INSERT INTO listing_submission_history (submission_key, listing_id, submitted_at, verdict_hlc) VALUES (?1, ?2, ?3, ?4)",
            params![key, listing_id, chrono::Utc::now().to_rfc3339(), stamp],
        )?;
        Ok(())
    })?;
    listing::get_listing(store, listing_id)
}

/// One submission of a listing to its platform and the platform's verdict on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SubmissionRecord {
    /// The submission key.
    pub submission_key: String,
    /// When it was submitted on this device (RFC 3339); empty for a submission made elsewhere.
    pub submitted_at: String,
    /// 审核状态 The platform's verdict, `None` while none has arrived for this submission.
    pub moderation_status: Option<ModerationStatus>,
    /// 审核意见 The platform's reason for a rejection.
    pub moderation_reason: Option<String>,
    /// Whether it is the listing's current submission.
    pub current: bool,
}

/// A listing's submissions, newest first: the current one with the verdict the device holds for
/// it (none yet right after a resubmission), and each earlier one with the verdict it had when it
/// was replaced.
pub fn submissions(store: &Store, listing_id: &str) -> Result<Vec<SubmissionRecord>> {
    let listing = listing::get_listing(store, listing_id)?;
    let mut records = Vec::new();
    if let Some(key) = listing.submission_key.clone() {
        let current_verdict = verdict_is_current(store, listing_id, Some(&key))?;
        let submitted_at: Option<String> = store
            .conn()
            .query_row("SELECT submitted_at FROM listing_submission_history WHERE submission_key = ?1", [&key], |row| row.get(0))
            .optional()?;
        records.push(SubmissionRecord {
            submission_key: key,
            submitted_at: submitted_at.unwrap_or_default(),
            moderation_status: listing.moderation_status.filter(|_| current_verdict),
            moderation_reason: listing.moderation_reason.clone().filter(|_| current_verdict),
            current: true,
        });
    }
    let mut statement = store.conn().prepare_cached(
        "SELECT submission_key, submitted_at, moderation_status, moderation_reason FROM listing_submission_history
          WHERE listing_id = ?1 AND submission_key IS NOT ?2 ORDER BY submission_key DESC",
    )?;
    let rows = statement.query_map(params![listing_id, listing.submission_key], |row| {
        Ok(SubmissionRecord {
            submission_key: row.get(0)?,
            submitted_at: row.get(1)?,
            moderation_status: row.get::<_, Option<String>>(2)?.as_deref().and_then(ModerationStatus::from_code),
            moderation_reason: row.get(3)?,
            current: false,
        })
    })?;
    for row in rows {
        records.push(row?);
    }
    Ok(records)
}

/// Where a listing's submission stands, for the editor: whether it may be submitted now (never
/// submitted, or rejected and fixed) and its submissions with their verdicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SubmissionState {
    /// Whether the submit button is offered: the listing was never submitted, or the platform
    /// rejected its current submission.
    pub can_submit: bool,
    /// Its submissions, newest first.
    pub history: Vec<SubmissionRecord>,
}

/// Where a listing's submission stands.
pub fn submission_state(store: &Store, listing_id: &str) -> Result<SubmissionState> {
    let listing = listing::get_listing(store, listing_id)?;
    Ok(SubmissionState { can_submit: can_submit(store, &listing)?, history: submissions(store, listing_id)? })
}
