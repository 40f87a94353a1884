//! Every bad input is refused with its field, a stable code and a message in both languages, and
//! leaves the database byte-for-byte as it was: no row, no clock, no outbox entry.

mod common;

use common::{household_draft, Fixture};
use furrow::codes::{
    AttendanceStatus, IncomeCategory, IncomeSubcategory, ListingStatus, Platform, ProductCategory, SaleUnit, TrainingFormat,
    TrainingTopic, VisitType,
};
use furrow::domain::household::{self, Household, Member};
use furrow::domain::income::{self, IncomeRecord};
use furrow::domain::listing::{self, Listing, Product};
use furrow::domain::training::{self, TrainingSession};
use furrow::domain::visit::{self, Visit};
use furrow::domain::village::{self, Village};
use furrow::{Error, Store};

/// Runs `attempt` and checks that it is refused with exactly the expected (field, code) pairs
/// among its errors and that nothing in the database changed.
fn check_refused(fixture: &mut Fixture, label: &str, expected: &[(&str, &str)], attempt: impl FnOnce(&mut Store) -> furrow::Result<()>) {
    let before = fixture.fingerprint();
    let error = attempt(&mut fixture.store).expect_err(label);
    let Error::Validation(errors) = &error else { panic!("{label}: expected a validation error, got {error:?}") };
    for (field, code) in expected {
        assert!(
            errors.iter().any(|error| error.field == *field && error.code == *code),
            "{label}: expected {field}/{code} among {errors:?}"
        );
    }
    for error in errors {
        assert!(!error.message_zh.is_empty() && !error.message_en.is_empty(), "{label}: {error:?} lacks a message");
        assert!(error.message_zh.chars().any(|character| !character.is_ascii()), "{label}: the Chinese message is not Chinese: {error:?}");
    }
    assert!(error.message_zh().starts_with("填写有误"), "{label}");
    assert_eq!(fixture.fingerprint(), before, "{label}: a refused write changed the database");
}

struct World {
    fixture: Fixture,
    village: String,
    household: String,
    member: String,
    product: String,
}

fn world() -> World {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    let household = fixture.household(&village, "王小梅");
    let member = fixture.member(&household, "王小梅");
    let product = listing::save_product(
        &mut fixture.store,
        &Product {
            village_id: Some(village.clone()),
            name: Some("薄皮核桃".into()),
            category: Some(ProductCategory::Nuts),
            producer_household_id: Some(household.clone()),
            ..Product::default()
        },
    )
    .unwrap()
    .id
    .unwrap();
    World { fixture, village, household, member, product }
}

#[test]
fn households_refuse_each_bad_field() {
    let mut world = world();
    let village = world.village.clone();
    let cases: Vec<(&str, Vec<(&str, &str)>, Household)> = vec![
        ("short phone", vec![("phone", "invalid_phone")], Household { phone: Some("1380013800".into()), ..household_draft(&village, "李四") }),
        ("landline too short", vec![("phone", "invalid_phone")], Household { phone: Some("0851-12345".into()), ..household_draft(&village, "李四") }),
        ("no head", vec![("head_name", "required")], Household { head_name: Some("   ".into()), ..household_draft(&village, "x") }),
        ("no village", vec![("village_id", "required")], Household { village_id: None, ..household_draft(&village, "李四") }),
        (
            "unknown village",
            vec![("village_id", "not_found")],
            Household { village_id: Some(uuid::Uuid::now_v7().to_string()), ..household_draft(&village, "李四") },
        ),
        ("bad consent date", vec![("consent_date", "invalid_date")], Household { consent_date: Some("2025-02-30".into()), ..household_draft(&village, "李四") }),
        ("negative land", vec![("cultivated_land_mu", "out_of_range")], Household { cultivated_land_mu: Some(-1.0), ..household_draft(&village, "李四") }),
        (
            "exit before identified",
            vec![("exit_year", "before_identified")],
            Household { identified_year: Some(2016), exit_year: Some(2014), ..household_draft(&village, "李四") },
        ),
        (
            "head name too long",
            vec![("head_name", "too_long")],
            Household { head_name: Some("名".repeat(51)), ..household_draft(&village, "李四") },
        ),
        (
            "several at once",
            vec![("phone", "invalid_phone"), ("poverty_status", "required"), ("head_name", "required")],
            Household { phone: Some("abc".into()), poverty_status: None, head_name: None, ..household_draft(&village, "x") },
        ),
    ];
    for (label, expected, draft) in cases {
        check_refused(&mut world.fixture, label, &expected, |store| household::save(store, &draft).map(drop));
    }
    // Editing an existing household with a bad value keeps the saved one intact.
    let household_id = world.household.clone();
    check_refused(&mut world.fixture, "edit with bad phone", &[("phone", "invalid_phone")], |store| {
        let mut saved = household::get(store, &household_id)?;
        saved.phone = Some("12345".into());
        household::save(store, &saved).map(drop)
    });
    assert_eq!(household::get(&world.fixture.store, &household_id).unwrap().phone.as_deref(), Some("13800138000"));
}

#[test]
fn raw_values_of_the_wrong_kind_are_refused_by_field() {
    let mut world = world();
    let village = world.village.clone();
    let cases: Vec<(&str, serde_json::Value, (&str, &str))> = vec![
        ("enum code", serde_json::json!({"attribute": "rich"}), ("attribute", "invalid_choice")),
        ("national code instead of code", serde_json::json!({"main_cause": "07"}), ("main_cause", "invalid_choice")),
        ("number as text", serde_json::json!({"identified_year": "2016"}), ("identified_year", "invalid_type")),
        ("list with unknown", serde_json::json!({"secondary_causes": ["illness", "bad"]}), ("secondary_causes", "invalid_choice")),
        ("list repeats", serde_json::json!({"secondary_causes": ["illness", "illness"]}), ("secondary_causes", "duplicate_choice")),
        ("unknown field", serde_json::json!({"income": 5}), ("income", "unknown_field")),
        ("flag as text", serde_json::json!({"water_safe": "yes"}), ("water_safe", "invalid_type")),
    ];
    for (label, extra, expected) in cases {
        let mut changes = serde_json::to_value(household_draft(&village, "赵六")).unwrap();
        let object = changes.as_object_mut().unwrap();
        object.retain(|name, value| furrow::schema::HOUSEHOLDS.field(name).is_some() && !value.is_null());
        object.extend(extra.as_object().unwrap().clone());
        let changes = object.clone();
        check_refused(&mut world.fixture, label, &[expected], |store| {
            store.write(|writer| writer.save(&furrow::schema::HOUSEHOLDS, None, changes)).map(drop)
        });
    }
}

#[test]
fn members_income_training_visits_and_listings_refuse_bad_input() {
    let mut world = world();
    let (village, household_id, member, product) =
        (world.village.clone(), world.household.clone(), world.member.clone(), world.product.clone());
    let fixture = &mut world.fixture;

    check_refused(fixture, "member phone", &[("phone", "invalid_phone")], |store| {
        let member = Member { household_id: Some(household_id.clone()), name: Some("王强".into()), phone: Some("138".into()), ..Member::default() };
        household::save_member(store, &member).map(drop)
    });
    check_refused(fixture, "member birth date", &[("birth_date", "invalid_date")], |store| {
        let member = Member { household_id: Some(household_id.clone()), name: Some("王强".into()), birth_date: Some("1990/01/01".into()), ..Member::default() };
        household::save_member(store, &member).map(drop)
    });
    // Identity card numbers: a wrong check character, a length, a date that does not exist, and a
    // number whose birth date differs from the one given are refused; a good one (with a lower-case
    // x as typed) is kept.
    for (label, number, code) in [
        ("id card check character", "110105194912310021", "invalid_id_card"),
        ("id card length", "11010519491231002", "invalid_id_card"),
        ("id card impossible date", "110105194902300025", "invalid_id_card"),
        ("id card letters", "11010519491231002A", "invalid_id_card"),
    ] {
        check_refused(fixture, label, &[("id_card_no", code)], |store| {
            let member = Member { household_id: Some(household_id.clone()), name: Some("王强".into()), id_card_no: Some(number.into()), ..Member::default() };
            household::save_member(store, &member).map(drop)
        });
    }
    check_refused(fixture, "id card against birth date", &[("id_card_no", "id_card_birth_mismatch")], |store| {
        let member = Member {
            household_id: Some(household_id.clone()),
            name: Some("王强".into()),
            birth_date: Some("1950-01-01".into()),
            id_card_no: Some("11010519491231002X".into()),
            ..Member::default()
        };
        household::save_member(store, &member).map(drop)
    });
    let kept = household::save_member(
        &mut fixture.store,
        &Member {
            household_id: Some(household_id.clone()),
            name: Some("王强".into()),
            birth_date: Some("1949-12-31".into()),
            id_card_no: Some("11010519491231002x".into()),
            ..Member::default()
        },
    );
    assert!(kept.is_ok(), "a valid number is kept: {kept:?}");

    let income = IncomeRecord {
        household_id: Some(household_id.clone()),
        year: Some(2024),
        category: Some(IncomeCategory::Operating),
        subcategory: Some(IncomeSubcategory::Crop),
        amount_fen: Some(120_000),
        recorded_on: Some("2024-12-01".into()),
        ..IncomeRecord::default()
    };
    check_refused(fixture, "zero income", &[("amount_fen", "must_be_positive")], |store| {
        income::record(store, &IncomeRecord { amount_fen: Some(0), ..income.clone() }).map(drop)
    });
    check_refused(fixture, "negative income", &[("amount_fen", "negative_amount")], |store| {
        income::record(store, &IncomeRecord { amount_fen: Some(-5), ..income.clone() }).map(drop)
    });
    check_refused(fixture, "subcategory of another category", &[("subcategory", "wrong_subcategory")], |store| {
        income::record(store, &IncomeRecord { subcategory: Some(IncomeSubcategory::Pension), ..income.clone() }).map(drop)
    });
    check_refused(fixture, "bad period", &[("period", "invalid_period")], |store| {
        income::record(store, &IncomeRecord { period: Some("M13".into()), ..income.clone() }).map(drop)
    });
    check_refused(fixture, "year out of range", &[("year", "invalid_year")], |store| {
        income::record(store, &IncomeRecord { year: Some(1800), ..income.clone() }).map(drop)
    });

    let session = TrainingSession {
        title: Some("商品拍照培训".into()),
        topics: Some(vec![TrainingTopic::Photography]),
        format: Some(TrainingFormat::Classroom),
        date: Some("2024-05-10".into()),
        village_id: Some(village.clone()),
        ..TrainingSession::default()
    };
    check_refused(fixture, "session without topics", &[("topics", "required")], |store| {
        training::save_session(store, &TrainingSession { topics: Some(vec![]), ..session.clone() }).map(drop)
    });
    check_refused(fixture, "session start time", &[("start_time", "invalid_time")], |store| {
        training::save_session(store, &TrainingSession { start_time: Some("25:00".into()), ..session.clone() }).map(drop)
    });
    check_refused(fixture, "session duration", &[("duration_min", "out_of_range")], |store| {
        training::save_session(store, &TrainingSession { duration_min: Some(0), ..session.clone() }).map(drop)
    });
    let saved_session = training::save_session(&mut fixture.store, &session).unwrap().id.unwrap();
    check_refused(fixture, "check-in of an unknown member", &[("member_id", "not_found")], |store| {
        let ghost = uuid::Uuid::now_v7().to_string();
        training::check_in(store, &saved_session, &[member.clone(), ghost], AttendanceStatus::Present).map(drop)
    });

    let visit = Visit {
        household_id: Some(household_id.clone()),
        visit_type: Some(VisitType::Home),
        visited_at: Some("2024-06-01T09:30:00+08:00".into()),
        ..Visit::default()
    };
    check_refused(fixture, "visit time", &[("visited_at", "invalid_datetime")], |store| {
        visit::save(store, &Visit { visited_at: Some("2024-06-01 09:30".into()), ..visit.clone() }).map(drop)
    });
    check_refused(fixture, "next visit before visit", &[("next_visit_date", "before_visit")], |store| {
        visit::save(store, &Visit { next_visit_date: Some("2024-05-01".into()), ..visit.clone() }).map(drop)
    });

    let listing = Listing {
        product_id: Some(product.clone()),
        platform: Some(Platform::Taobao),
        title: Some("高坡村薄皮核桃".into()),
        category: Some(ProductCategory::Nuts),
        price_fen: Some(3_990),
        unit: Some(SaleUnit::Jin),
        status: Some(ListingStatus::Draft),
        ..Listing::default()
    };
    check_refused(fixture, "title over 30 CJK characters", &[("title", "title_too_long")], |store| {
        listing::save_listing(store, &Listing { title: Some("核".repeat(31)), status: Some(ListingStatus::Ready), ..listing.clone() }).map(drop)
    });
    check_refused(fixture, "zero price", &[("price_fen", "must_be_positive")], |store| {
        listing::save_listing(store, &Listing { price_fen: Some(0), ..listing.clone() }).map(drop)
    });
    check_refused(fixture, "stock out of range", &[("stock_qty", "out_of_range")], |store| {
        listing::save_listing(store, &Listing { stock_qty: Some(900_000_001), ..listing.clone() }).map(drop)
    });
    check_refused(fixture, "village code", &[("code", "invalid_admin_code")], |store| {
        village::save(store, &Village { code: Some("5226".into()), name: Some("x".into()), ..Village::default() }).map(drop)
    });

    // Thirty CJK characters is exactly the limit and is accepted; a draft may be longer while the
    // assistant works on it.
    listing::save_listing(&mut fixture.store, &Listing { title: Some("核".repeat(30)), status: Some(ListingStatus::Ready), ..listing.clone() })
        .expect("30 CJK characters fit");
    listing::save_listing(&mut fixture.store, &Listing { title: Some("核".repeat(31)), ..listing }).expect("a draft may break the title rule");
}

#[test]
fn a_platform_field_cannot_be_set_by_the_device() {
    let mut world = world();
    let product = world.product.clone();
    let listing = Listing {
        product_id: Some(product),
        platform: Some(Platform::Pinduoduo),
        title: Some("核桃".into()),
        category: Some(ProductCategory::Nuts),
        price_fen: Some(2_000),
        unit: Some(SaleUnit::Jin),
        status: Some(ListingStatus::Draft),
        ..Listing::default()
    };
    let saved = listing::save_listing(&mut world.fixture.store, &listing).unwrap();
    let id = saved.id.clone().unwrap();
    check_refused(&mut world.fixture, "moderation set on the device", &[("moderation_status", "server_only")], |store| {
        let changes = serde_json::json!({"moderation_status": "approved"}).as_object().unwrap().clone();
        store.write(|writer| writer.save(&furrow::schema::LISTINGS, Some(&id), changes)).map(drop)
    });
}
