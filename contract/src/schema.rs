//! The synced tables described as data: each table's fields, their types, their merge policy,
//! and how a row finds its scope.
//!
//! One description serves the device's write path, the validation of raw values (from a form or
//! from a sync request, on the device and on the server alike), the conversion between SQLite
//! rows and JSON, and the sync engine. Adding a field means adding it here and in a new
//! migration; nothing else has a second list of fields to keep in step.

use crate::codes::{self, EnumDef};

/// The type of a synced field, which fixes its SQLite storage, its JSON form and its checks.
#[derive(Debug, Clone, Copy)]
pub enum FieldType {
    /// Free text of at most `max_chars` characters, stored as TEXT.
    Text {
        /// The most characters allowed.
        max_chars: usize,
    },
    /// An integer within `min..=max`.
    Int {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// A calendar year (1949 to 2100).
    Year,
    /// Money in integer fen (分); never a float.
    Fen,
    /// A weight in integer grams.
    Grams,
    /// A real number within `min..=max` (areas in 亩, coordinates); never used for money.
    Real {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
    /// A yes/no flag, stored as 0 or 1.
    Bool,
    /// A calendar date, ISO 8601 `YYYY-MM-DD`.
    Date,
    /// A moment, RFC 3339 (ISO 8601 with an offset), e.g. `2026-03-01T09:30:00+08:00`.
    DateTime,
    /// A time of day `HH:MM`.
    TimeOfDay,
    /// A mainland mobile number: 11 digits starting with 1.
    Phone,
    /// A household's telephone: a mobile number, or a landline with its area code
    /// (0871-6512345).
    Telephone,
    /// A resident identity card number (GB 11643): 6-digit region, 8-digit birth date, 3-digit
    /// sequence and a check character (a digit or X).
    IdCard,
    /// A 12-digit administrative division code (统计用区划代码).
    AdminCode,
    /// A lowercase hexadecimal SHA-256 digest.
    Sha256,
    /// One code of an enumeration.
    Enum(EnumDef),
    /// A set of codes of an enumeration, stored as a JSON array.
    EnumList(EnumDef),
    /// The id of a live (not deleted) row of the named synced table.
    Ref(&'static str),
}

/// How concurrent edits of a field are merged (docs/sync.md section 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Last writer wins by (HLC, node).
    Lww,
    /// Last writer wins, and the loser is shown to the user.
    LwwNotify,
    /// Rejected if the value changed on the server since the device's copy.
    RejectIfStale,
    /// Written by the platform only; a device's change is rejected.
    ServerOnly,
}

/// One field of a synced table.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// Column name, also the field name on the wire.
    pub name: &'static str,
    /// Type and checks.
    pub ty: FieldType,
    /// Whether a live row must have a value.
    pub required: bool,
    /// Merge policy.
    pub policy: Policy,
}

/// How a row's scope is found when it is created.
#[derive(Debug, Clone, Copy)]
pub enum ScopeRule {
    /// The row is a village: its scope is its own admin code (field `code`).
    OwnCode,
    /// The row takes the scope of the row named by this reference field.
    From(&'static str),
    /// The row takes the scope of the row named by the owner id field, whose table is given by
    /// the owner type field (photos).
    FromOwner {
        /// The field holding the owner's kind.
        kind_field: &'static str,
        /// The field holding the owner's id.
        id_field: &'static str,
    },
}

/// A synced table.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    /// Table name, also the table name on the wire.
    pub name: &'static str,
    /// Domain fields (not `id`, `scope_id`, `deleted`, which every synced table has).
    pub fields: &'static [FieldSpec],
    /// Rows can be created but never edited (income records).
    pub append_only: bool,
    /// Rows are written by the platform only (sales); the device only receives them.
    pub platform_only: bool,
    /// How a new row's scope is found.
    pub scope: ScopeRule,
}

impl TableSpec {
    /// The field with the given name.
    pub fn field(&self, name: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|field| field.name == name)
    }
}

const fn field(name: &'static str, ty: FieldType) -> FieldSpec {
    FieldSpec { name, ty, required: false, policy: Policy::Lww }
}

const fn required(name: &'static str, ty: FieldType) -> FieldSpec {
    FieldSpec { name, ty, required: true, policy: Policy::Lww }
}

const fn server(name: &'static str, ty: FieldType) -> FieldSpec {
    FieldSpec { name, ty, required: false, policy: Policy::ServerOnly }
}

const fn text(max_chars: usize) -> FieldType {
    FieldType::Text { max_chars }
}

const fn int(min: i64, max: i64) -> FieldType {
    FieldType::Int { min, max }
}

const SHORT: FieldType = text(50);
const NAME: FieldType = text(100);
const NOTE: FieldType = text(2000);
const MU: FieldType = FieldType::Real { min: 0.0, max: 100_000.0 };
const LATITUDE: FieldType = FieldType::Real { min: -90.0, max: 90.0 };
const LONGITUDE: FieldType = FieldType::Real { min: -180.0, max: 180.0 };

/// 村 Villages: the scopes an assistant works in.
pub const VILLAGES: TableSpec = TableSpec {
    name: "villages",
    fields: &[
        required("code", FieldType::AdminCode),
        required("name", NAME),
        field("township", NAME),
        field("county", NAME),
        field("province", NAME),
        field("is_poverty_village", FieldType::Bool),
        field("has_ecommerce_station", FieldType::Bool),
        field("has_courier_point", FieldType::Bool),
        field("road_type", FieldType::Enum(codes::RoadType::DEF)),
    ],
    append_only: false,
    platform_only: false,
    scope: ScopeRule::OwnCode,
};

/// 户 Households in the register.
pub const HOUSEHOLDS: TableSpec = TableSpec {
    name: "households",
    fields: &[
        field("register_no", text(32)),
        required("village_id", FieldType::Ref("villages")),
        field("group_name", SHORT),
        required("head_name", SHORT),
        field("phone", FieldType::Telephone),
        required("attribute", FieldType::Enum(codes::HouseholdAttribute::DEF)),
        required("poverty_status", FieldType::Enum(codes::PovertyStatus::DEF)),
        field("monitoring_type", FieldType::Enum(codes::MonitoringType::DEF)),
        field("main_cause", FieldType::Enum(codes::PovertyCause::DEF)),
        field("secondary_causes", FieldType::EnumList(codes::PovertyCause::DEF)),
        field("identified_year", FieldType::Year),
        field("exit_year", FieldType::Year),
        field("cultivated_land_mu", MU),
        field("forest_land_mu", MU),
        field("housing_safety", FieldType::Enum(codes::HousingSafety::DEF)),
        field("house_area_m2", FieldType::Real { min: 0.0, max: 10_000.0 }),
        field("water_safe", FieldType::Bool),
        field("fuel_type", FieldType::Enum(codes::FuelType::DEF)),
        field("in_cooperative", FieldType::Bool),
        field("cooperative_name", NAME),
        field("latitude", LATITUDE),
        field("longitude", LONGITUDE),
        field("consent_date", FieldType::Date),
        field("notes", NOTE),
        field("closed_reason", FieldType::Enum(codes::HouseholdClosure::DEF)),
        field("closed_on", FieldType::Date),
        field("closed_note", text(500)),
    ],
    append_only: false,
    platform_only: false,
    scope: ScopeRule::From("village_id"),
};

/// 家庭成员 Household members.
pub const MEMBERS: TableSpec = TableSpec {
    name: "members",
    fields: &[
        required("household_id", FieldType::Ref("households")),
        required("name", SHORT),
        field("sex", FieldType::Enum(codes::Sex::DEF)),
        field("birth_date", FieldType::Date),
        field("relation", FieldType::Enum(codes::RelationToHead::DEF)),
        field("education", FieldType::Enum(codes::Education::DEF)),
        field("health", FieldType::Enum(codes::Health::DEF)),
        field("labour_capacity", FieldType::Enum(codes::LabourCapacity::DEF)),
        field("migrant_work", FieldType::Enum(codes::MigrantWork::DEF)),
        field("phone", FieldType::Phone),
        field("has_smartphone", FieldType::Bool),
        field("ecommerce_role", FieldType::Enum(codes::EcommerceRole::DEF)),
        field("id_card_no", FieldType::IdCard),
    ],
    append_only: false,
    platform_only: false,
    scope: ScopeRule::From("household_id"),
};

/// 收入记录 Income records: append-only; a correction is a new record naming the old one.
pub const INCOME_RECORDS: TableSpec = TableSpec {
    name: "income_records",
    fields: &[
        required("household_id", FieldType::Ref("households")),
        field("member_id", FieldType::Ref("members")),
        required("year", FieldType::Year),
        field("period", text(3)),
        required("category", FieldType::Enum(codes::IncomeCategory::DEF)),
        field("subcategory", FieldType::Enum(codes::IncomeSubcategory::DEF)),
        field("item", SHORT),
        field("quantity_g", FieldType::Grams),
        required("amount_fen", FieldType::Fen),
        field("is_ecommerce", FieldType::Bool),
        field("source", FieldType::Enum(codes::IncomeSource::DEF)),
        field("corrects_id", FieldType::Ref("income_records")),
        required("recorded_on", FieldType::Date),
        field("note", text(500)),
    ],
    append_only: true,
    platform_only: false,
    scope: ScopeRule::From("household_id"),
};

/// 培训 Training sessions.
pub const TRAINING_SESSIONS: TableSpec = TableSpec {
    name: "training_sessions",
    fields: &[
        required("title", NAME),
        required("topics", FieldType::EnumList(codes::TrainingTopic::DEF)),
        required("format", FieldType::Enum(codes::TrainingFormat::DEF)),
        required("date", FieldType::Date),
        field("start_time", FieldType::TimeOfDay),
        field("duration_min", int(1, 24 * 60)),
        required("village_id", FieldType::Ref("villages")),
        field("location", NAME),
        field("trainer", SHORT),
        field("notes", NOTE),
        // 讲师（农户） The trained farmer who gave the session; none when the assistant did.
        field("trainer_member_id", FieldType::Ref("members")),
    ],
    append_only: false,
    platform_only: false,
    scope: ScopeRule::From("village_id"),
};

/// 签到 Attendance: one row per (session, member), with a deterministic id.
pub const ATTENDANCE: TableSpec = TableSpec {
    name: "attendance",
    fields: &[
        required("session_id", FieldType::Ref("training_sessions")),
        required("member_id", FieldType::Ref("members")),
        required("status", FieldType::Enum(codes::AttendanceStatus::DEF)),
        field("minutes_attended", int(0, 24 * 60)),
        // 备注 A note on this attendance (why a member of another village came, say).
        field("note", text(500)),
    ],
    append_only: false,
    platform_only: false,
    scope: ScopeRule::From("session_id"),
};

/// 技能测评 Skill assessments before, after and following training.
pub const SKILL_ASSESSMENTS: TableSpec = TableSpec {
    name: "skill_assessments",
    fields: &[
        required("member_id", FieldType::Ref("members")),
        field("session_id", FieldType::Ref("training_sessions")),
        required("topic", FieldType::Enum(codes::TrainingTopic::DEF)),
        required("phase", FieldType::Enum(codes::AssessmentPhase::DEF)),
        required("score", int(0, 100)),
        required("assessed_on", FieldType::Date),
    ],
    append_only: false,
    platform_only: false,
    scope: ScopeRule::From("member_id"),
};

/// 走访 Visits, with the basic-needs checklist (两不愁三保障).
pub const VISITS: TableSpec = TableSpec {
    name: "visits",
    fields: &[
        required("household_id", FieldType::Ref("households")),
        required("visit_type", FieldType::Enum(codes::VisitType::DEF)),
        field("purposes", FieldType::EnumList(codes::VisitPurpose::DEF)),
        required("visited_at", FieldType::DateTime),
        field("place", NAME),
        field("latitude", LATITUDE),
        field("longitude", LONGITUDE),
        field("summary", NOTE),
        field("problems", NOTE),
        field("actions_agreed", NOTE),
        field("next_visit_date", FieldType::Date),
        field("food_clothing_ok", FieldType::Enum(codes::CheckAnswer::DEF)),
        field("education_ok", FieldType::Enum(codes::CheckAnswer::DEF)),
        field("medical_ok", FieldType::Enum(codes::CheckAnswer::DEF)),
        field("housing_ok", FieldType::Enum(codes::CheckAnswer::DEF)),
        field("water_ok", FieldType::Enum(codes::CheckAnswer::DEF)),
        field("follow_up_done_on", FieldType::Date),
    ],
    append_only: false,
    platform_only: false,
    scope: ScopeRule::From("household_id"),
};

/// 产品 Products: what a household grows or makes, before it is listed anywhere.
pub const PRODUCTS: TableSpec = TableSpec {
    name: "products",
    fields: &[
        required("village_id", FieldType::Ref("villages")),
        required("name", SHORT),
        field("variety", SHORT),
        required("category", FieldType::Enum(codes::ProductCategory::DEF)),
        field("producer_household_id", FieldType::Ref("households")),
        field("origin", NAME),
        field("seller_entity", NAME),
        field("seller_entity_type", FieldType::Enum(codes::SellerEntityType::DEF)),
        field("unit", FieldType::Enum(codes::SaleUnit::DEF)),
        field("net_weight_g", FieldType::Grams),
        field("storage", FieldType::Enum(codes::Storage::DEF)),
        field("shelf_life_days", int(1, 3650)),
        field("production_license_no", text(32)),
        field("standard_no", text(32)),
        field("certifications", FieldType::EnumList(codes::Certification::DEF)),
        field("cost_per_unit_fen", FieldType::Fen),
        field("notes", NOTE),
    ],
    append_only: false,
    platform_only: false,
    scope: ScopeRule::From("village_id"),
};

/// 商品 Listings: a product offered on a platform.
pub const LISTINGS: TableSpec = TableSpec {
    name: "listings",
    fields: &[
        required("product_id", FieldType::Ref("products")),
        required("platform", FieldType::Enum(codes::Platform::DEF)),
        required("title", NAME),
        field("selling_point", text(150)),
        field("description", text(25_000)),
        required("category", FieldType::Enum(codes::ProductCategory::DEF)),
        FieldSpec { name: "price_fen", ty: FieldType::Fen, required: true, policy: Policy::RejectIfStale },
        field("market_price_fen", FieldType::Fen),
        required("unit", FieldType::Enum(codes::SaleUnit::DEF)),
        field("net_weight_g", FieldType::Grams),
        field("stock_qty", int(0, 900_000_000)),
        field("origin", NAME),
        field("shelf_life_days", int(1, 3650)),
        field("storage", FieldType::Enum(codes::Storage::DEF)),
        field("production_date", FieldType::Date),
        field("production_license_no", text(32)),
        field("certifications", FieldType::EnumList(codes::Certification::DEF)),
        required("status", FieldType::Enum(codes::ListingStatus::DEF)),
        server("moderation_status", FieldType::Enum(codes::ModerationStatus::DEF)),
        server("moderation_reason", text(500)),
        server("platform_item_id", SHORT),
        server("sold_out", FieldType::Bool),
        field("submission_key", text(36)),
    ],
    append_only: false,
    platform_only: false,
    scope: ScopeRule::From("product_id"),
};

/// 照片 Photo metadata; the image itself is a content-addressed blob.
pub const PHOTOS: TableSpec = TableSpec {
    name: "photos",
    fields: &[
        required("owner_type", FieldType::Enum(codes::PhotoOwner::DEF)),
        required("owner_id", text(36)),
        required("sha256", FieldType::Sha256),
        required("bytes", int(1, 50 * 1024 * 1024)),
        field("width_px", int(1, 20_000)),
        field("height_px", int(1, 20_000)),
        field("mime", SHORT),
        required("kind", FieldType::Enum(codes::PhotoKind::DEF)),
        field("order_index", int(0, 1000)),
        field("caption", text(200)),
        field("taken_at", FieldType::DateTime),
        field("latitude", LATITUDE),
        field("longitude", LONGITUDE),
        field("thumb_sha256", FieldType::Sha256),
    ],
    append_only: false,
    platform_only: false,
    scope: ScopeRule::FromOwner { kind_field: "owner_type", id_field: "owner_id" },
};

/// 销售 Sales recorded by the platform (read-only on the device).
pub const SALES: TableSpec = TableSpec {
    name: "sales",
    fields: &[
        server("listing_id", FieldType::Ref("listings")),
        server("platform", FieldType::Enum(codes::Platform::DEF)),
        server("order_no", SHORT),
        server("order_date", FieldType::Date),
        server("qty", int(1, 1_000_000)),
        server("unit_price_fen", FieldType::Fen),
        server("gross_fen", FieldType::Fen),
        server("net_to_seller_fen", FieldType::Fen),
        server("status", FieldType::Enum(codes::OrderStatus::DEF)),
        server("buyer_region", SHORT),
    ],
    append_only: false,
    platform_only: true,
    scope: ScopeRule::From("listing_id"),
};

/// 销售分配 A sale credited to a household (read-only on the device).
pub const SALE_ALLOCATIONS: TableSpec = TableSpec {
    name: "sale_allocations",
    fields: &[
        server("sale_id", FieldType::Ref("sales")),
        server("household_id", FieldType::Ref("households")),
        server("qty_g", FieldType::Grams),
        server("amount_fen", FieldType::Fen),
    ],
    append_only: false,
    platform_only: true,
    scope: ScopeRule::From("household_id"),
};

/// Every synced table, parents before children (the order a snapshot is applied in).
pub const TABLES: &[&TableSpec] = &[
    &VILLAGES,
    &HOUSEHOLDS,
    &MEMBERS,
    &INCOME_RECORDS,
    &TRAINING_SESSIONS,
    &ATTENDANCE,
    &SKILL_ASSESSMENTS,
    &VISITS,
    &PRODUCTS,
    &LISTINGS,
    &PHOTOS,
    &SALES,
    &SALE_ALLOCATIONS,
];

/// The synced table with the given name.
pub fn table(name: &str) -> Option<&'static TableSpec> {
    TABLES.iter().copied().find(|table| table.name == name)
}

/// The table a photo owner kind lives in.
pub fn photo_owner_table(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "product" => "products",
        "listing" => "listings",
        "visit" => "visits",
        "household" => "households",
        "training_session" => "training_sessions",
        _ => return None,
    })
}

/// The namespace of deterministic attendance ids: `uuidv5(NAMESPACE, session_id + member_id)`.
pub const ATTENDANCE_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6675_7272_6f77_4174_7465_6e64_616e_6365);

/// The deterministic id of the attendance row of `member_id` at `session_id`, so that two devices
/// checking in the same person create the same row.
pub fn attendance_id(session_id: &str, member_id: &str) -> String {
    uuid::Uuid::new_v5(&ATTENDANCE_NAMESPACE, format!("{session_id}/{member_id}").as_bytes()).to_string()
}
