//! 产品与商品 Products, their listings on platforms, and photo metadata.
//!
//! A listing's platform verdict (moderation status and reason, platform item id, sold out) is
//! written by the platform only and arrives by sync; the device shows it and never edits it.

use serde::{Deserialize, Serialize};

use crate::codes::{Certification, ListingStatus, ModerationStatus, Platform, PhotoKind, PhotoOwner, ProductCategory, SaleUnit, SellerEntityType, Storage};
use crate::error::Result;
use crate::schema::{LISTINGS, PHOTOS, PRODUCTS};
use crate::store::Store;

/// A product: something a household grows or makes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields = nullable))]
#[serde(default)]
pub struct Product {
    /// Row id; `None` for a new product.
    pub id: Option<String>,
    /// The scope; set by the core.
    pub scope_id: Option<String>,
    /// 村 Village.
    pub village_id: Option<String>,
    /// 品名 Name, e.g. 薄皮核桃.
    pub name: Option<String>,
    /// 品种 Variety.
    pub variety: Option<String>,
    /// 类别 Category.
    pub category: Option<ProductCategory>,
    /// 生产户 Producing household.
    pub producer_household_id: Option<String>,
    /// 产地 Origin.
    pub origin: Option<String>,
    /// 销售主体 Seller, when the household cannot list itself.
    pub seller_entity: Option<String>,
    /// 主体类型 Seller type.
    pub seller_entity_type: Option<SellerEntityType>,
    /// 单位 Unit.
    pub unit: Option<SaleUnit>,
    /// 净含量（克） Net weight per unit in grams.
    pub net_weight_g: Option<i64>,
    /// 储存方式 Storage.
    pub storage: Option<Storage>,
    /// 保质期（天） Shelf life in days.
    pub shelf_life_days: Option<i64>,
    /// 生产许可证号 Production licence (SC) number.
    pub production_license_no: Option<String>,
    /// 产品标准号 Product standard number.
    pub standard_no: Option<String>,
    /// 认证 Certifications.
    pub certifications: Option<Vec<Certification>>,
    /// 单位成本（分） Cost per unit in fen.
    pub cost_per_unit_fen: Option<i64>,
    /// 备注 Notes.
    pub notes: Option<String>,
}

/// A listing of a product on a platform.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields = nullable))]
#[serde(default)]
pub struct Listing {
    /// Row id; `None` for a new listing.
    pub id: Option<String>,
    /// The scope; set by the core.
    pub scope_id: Option<String>,
    /// 产品 Product.
    pub product_id: Option<String>,
    /// 平台 Platform.
    pub platform: Option<Platform>,
    /// 标题 Title.
    pub title: Option<String>,
    /// 卖点 Selling point.
    pub selling_point: Option<String>,
    /// 详情 Description.
    pub description: Option<String>,
    /// 类目 Category.
    pub category: Option<ProductCategory>,
    /// 售价（分） Price in fen.
    pub price_fen: Option<i64>,
    /// 市场价（分） Market price in fen.
    pub market_price_fen: Option<i64>,
    /// 单位 Unit.
    pub unit: Option<SaleUnit>,
    /// 净含量（克） Net weight in grams.
    pub net_weight_g: Option<i64>,
    /// 库存 Stock.
    pub stock_qty: Option<i64>,
    /// 产地 Origin.
    pub origin: Option<String>,
    /// 保质期（天） Shelf life in days.
    pub shelf_life_days: Option<i64>,
    /// 储存方式 Storage.
    pub storage: Option<Storage>,
    /// 生产日期 Production date.
    pub production_date: Option<String>,
    /// 生产许可证号 Production licence number.
    pub production_license_no: Option<String>,
    /// 认证 Certifications.
    pub certifications: Option<Vec<Certification>>,
    /// 状态 Status as the assistant sets it.
    pub status: Option<ListingStatus>,
    /// 审核状态 The platform's moderation (platform only).
    pub moderation_status: Option<ModerationStatus>,
    /// 审核意见 The platform's reason for a rejection (platform only).
    pub moderation_reason: Option<String>,
    /// 平台商品编号 The platform's item id (platform only).
    pub platform_item_id: Option<String>,
    /// 售罄 Sold out (platform only).
    pub sold_out: Option<bool>,
    /// 提交编号 Set once when the listing is submitted, so the platform creates it once.
    pub submission_key: Option<String>,
}

/// Photo metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields = nullable))]
#[serde(default)]
pub struct Photo {
    /// Row id; `None` for a new photo.
    pub id: Option<String>,
    /// The scope; set by the core.
    pub scope_id: Option<String>,
    /// What the photo belongs to.
    pub owner_type: Option<PhotoOwner>,
    /// The owner's id.
    pub owner_id: Option<String>,
    /// SHA-256 of the image bytes, lowercase hex.
    pub sha256: Option<String>,
    /// Size in bytes.
    pub bytes: Option<i64>,
    /// Width in pixels.
    pub width_px: Option<i64>,
    /// Height in pixels.
    pub height_px: Option<i64>,
    /// MIME type.
    pub mime: Option<String>,
    /// Kind.
    pub kind: Option<PhotoKind>,
    /// Position among the owner's photos.
    pub order_index: Option<i64>,
    /// Caption.
    pub caption: Option<String>,
    /// When it was taken.
    pub taken_at: Option<String>,
    /// Where it was taken (latitude), kept only when the user chose to.
    pub latitude: Option<f64>,
    /// Where it was taken (longitude), kept only when the user chose to.
    pub longitude: Option<f64>,
    /// Its thumbnail's SHA-256, so another device can show it small before fetching the image.
    pub thumb_sha256: Option<String>,
}

/// Creates or edits a product.
pub fn save_product(store: &mut Store, product: &Product) -> Result<Product> {
    super::save(store, &PRODUCTS, product.id.as_deref(), product)
}

/// A product by id.
pub fn get_product(store: &Store, id: &str) -> Result<Product> {
    super::get(store, &PRODUCTS, id)
}

/// Deletes a product.
pub fn delete_product(store: &mut Store, id: &str) -> Result<()> {
    super::delete(store, &PRODUCTS, id)
}

/// Every live product, by name.
pub fn products(store: &Store) -> Result<Vec<Product>> {
    let mut products: Vec<Product> = super::list(store, &PRODUCTS, "1", &[])?;
    products.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(products)
}

/// The products a household produces.
pub fn products_of_household(store: &Store, household_id: &str) -> Result<Vec<Product>> {
    super::list(store, &PRODUCTS, "producer_household_id = ?1", &[&household_id])
}

/// Creates or edits a listing. The platform's fields are never written from a form (see
/// [`super::changes_of`]); the submission key is set by [`super::listing_rules::submit`] only, so a
/// form neither sets nor clears it.
pub fn save_listing(store: &mut Store, listing: &Listing) -> Result<Listing> {
    let mut draft = listing.clone();
    draft.submission_key = match &listing.id {
        Some(id) => get_listing(store, id).ok().and_then(|current| current.submission_key),
        None => None,
    };
    super::save(store, &LISTINGS, draft.id.as_deref(), &draft)
}

/// A listing by id.
pub fn get_listing(store: &Store, id: &str) -> Result<Listing> {
    super::get(store, &LISTINGS, id)
}

/// Deletes a listing.
pub fn delete_listing(store: &mut Store, id: &str) -> Result<()> {
    super::delete(store, &LISTINGS, id)
}

/// Every live listing.
pub fn listings(store: &Store) -> Result<Vec<Listing>> {
    super::list(store, &LISTINGS, "1", &[])
}

/// The listings of a product.
pub fn listings_of_product(store: &Store, product_id: &str) -> Result<Vec<Listing>> {
    super::list(store, &LISTINGS, "product_id = ?1", &[&product_id])
}

/// Records or edits photo metadata.
pub fn save_photo(store: &mut Store, photo: &Photo) -> Result<Photo> {
    super::save(store, &PHOTOS, photo.id.as_deref(), photo)
}

/// The photos of an owner, in order.
pub fn photos_of(store: &Store, owner_type: PhotoOwner, owner_id: &str) -> Result<Vec<Photo>> {
    let mut photos: Vec<Photo> =
        super::list(store, &PHOTOS, "owner_type = ?1 AND owner_id = ?2", &[&owner_type.code(), &owner_id])?;
    photos.sort_by_key(|photo| photo.order_index);
    Ok(photos)
}
