//! 平台规则 A listing checked against its platform's rules, rule by rule, as the assistant types.
//!
//! The limits are data (the `platform_rules` table, seeded from the platforms' documented rules
//! and editable), so a changed platform rule needs no new version. A draft may be saved while it
//! fails rules; [`submit`] accepts it only when every rule passes.

use serde::{Deserialize, Serialize};

use crate::codes::{ListingStatus, PhotoKind, PhotoOwner, ProductCategory};
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

/// Submits a listing to its platform. Every rule must pass; the listing's status becomes
/// `submitted` and it gets a submission key once, so submitting again, or a retried sync after a
/// drop, is the same submission and the platform creates one listing.
pub fn submit(store: &mut Store, listing_id: &str) -> Result<Listing> {
    let current = listing::get_listing(store, listing_id)?;
    if current.status == Some(ListingStatus::Submitted) && current.submission_key.is_some() {
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
    let mut submitted = current;
    submitted.status = Some(ListingStatus::Submitted);
    submitted.submission_key = Some(uuid::Uuid::now_v7().to_string());
    // Saved through the write path directly: the ordinary listing save keeps the submission key
    // as it is, so that only a submit sets it.
    super::save(store, &crate::schema::LISTINGS, Some(listing_id), &submitted)
}
