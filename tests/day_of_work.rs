//! What a whole day of an assistant's work showed to be wrong, each checked through the same
//! core calls the window makes: a rejected listing submitted again, dates of things already done
//! that lie in the future, a visit dated ahead hiding a real follow-up, and the identity card
//! number used for the sex and birth date it records.

mod common;

use common::{remote_stamp, Fixture};
use furrow::codes::{IncomeCategory, ListingStatus, ModerationStatus, PhotoKind, PhotoOwner, RelationToHead, Sex, VisitType};
use furrow::domain::household::{self, Member};
use furrow::domain::income::{self, IncomeRecord};
use furrow::domain::listing::{self, Photo};
use furrow::domain::listing_rules;
use furrow::domain::visit::{self, Visit};
use furrow::Error;
use serde_json::json;

/// Today and a day three months from now on this machine, as `YYYY-MM-DD`.
fn today_and_later() -> (String, String) {
    let today = chrono::Local::now().date_naive();
    (today.to_string(), (today + chrono::Duration::days(92)).to_string())
}

/// Checks that `attempt` is refused with `field`/`code` and a message in both languages, and
/// that the store is unchanged.
fn refused(fixture: &mut Fixture, field: &str, code: &str, attempt: impl FnOnce(&mut furrow::Store) -> furrow::Result<()>) {
    let before = fixture.fingerprint();
    let error = attempt(&mut fixture.store).expect_err("the write is refused");
    let Error::Validation(errors) = &error else { panic!("expected a validation error, got {error:?}") };
    let found = errors.iter().find(|error| error.field == field && error.code == code);
    let found = found.unwrap_or_else(|| panic!("expected {field}/{code} among {errors:?}"));
    assert!(found.message_zh.chars().any(|character| !character.is_ascii()), "{found:?}");
    assert!(!found.message_en.is_empty(), "{found:?}");
    assert_eq!(fixture.fingerprint(), before, "a refused write changed nothing");
}

#[test]
fn a_listing_the_platform_rejected_is_fixed_and_submitted_again_under_a_new_key() {
    let mut fixture = Fixture::new();
    let id = fixture.draft_listing();
    for (kind, width, height) in [(PhotoKind::Main, 800, 800), (PhotoKind::Carousel, 1200, 800)] {
        listing::save_photo(
            &mut fixture.store,
            &Photo {
                owner_type: Some(PhotoOwner::Listing),
                owner_id: Some(id.clone()),
                sha256: Some(format!("{:064x}", width * 100_000 + height)),
                bytes: Some(300_000),
                width_px: Some(width),
                height_px: Some(height),
                mime: Some("image/jpeg".into()),
                kind: Some(kind),
                ..Photo::default()
            },
        )
        .unwrap();
    }
    let first = listing_rules::submit(&mut fixture.store, &id).expect("the listing is submitted");
    let first_key = first.submission_key.clone().expect("a submission key");

    // The platform rejects it; the verdict arrives by sync, stamped by the server.
    let verdict = [("moderation_status", json!("rejected")), ("moderation_reason", json!("标题含有夸大用语"))];
    fixture.apply_remote(&furrow::schema::LISTINGS, &id, remote_stamp(1_000, 0x5E), &verdict);

    // The assistant fixes the title and submits again: a new submission, under a new key.
    let mut fixed = listing::get_listing(&fixture.store, &id).unwrap();
    assert_eq!(fixed.moderation_status, Some(ModerationStatus::Rejected));
    fixed.title = Some("高坡村薄皮核桃 当年新货 500g".into());
    listing::save_listing(&mut fixture.store, &fixed).unwrap();
    let again = listing_rules::submit(&mut fixture.store, &id).expect("the fixed listing is submitted again");
    assert_eq!(again.status, Some(ListingStatus::Submitted));
    let second_key = again.submission_key.clone().expect("a submission key");
    assert_ne!(second_key, first_key, "a new submission has a new key, so the platform records it");
    assert_eq!(
        fixture.count(&format!("SELECT count(*) FROM sync_outbox WHERE field = 'submission_key' AND value = '\"{second_key}\"'")),
        1,
        "the new key is queued for the platform"
    );
    // Submitting once more before the platform answered is the same submission.
    let same = listing_rules::submit(&mut fixture.store, &id).unwrap();
    assert_eq!(same.submission_key.as_deref(), Some(second_key.as_str()));
}

#[test]
fn a_visit_dated_three_months_ahead_is_refused_in_both_languages() {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    let household = fixture.household(&village, "王小梅");
    let (today, later) = today_and_later();
    let visit = Visit {
        household_id: Some(household),
        visit_type: Some(VisitType::Home),
        visited_at: Some(format!("{later}T10:00:00+08:00")),
        next_visit_date: Some(later.clone()),
        ..Visit::default()
    };
    refused(&mut fixture, "visited_at", "in_future", |store| visit::save(store, &visit).map(drop));
    // Today is fine, and the next visit may of course lie ahead.
    let visit = Visit { visited_at: Some(format!("{today}T08:00:00+08:00")), ..visit };
    visit::save(&mut fixture.store, &visit).expect("a visit today is recorded");
}

#[test]
fn a_visit_dated_ahead_hides_no_real_follow_up_at_any_range() {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    let waiting = fixture.household(&village, "王小梅");
    let other = fixture.household(&village, "李大山");
    let visit_on = |household: &str, at: &str, next: Option<&str>| Visit {
        household_id: Some(household.into()),
        visit_type: Some(VisitType::Home),
        visited_at: Some(at.into()),
        next_visit_date: next.map(str::to_owned),
        actions_agreed: Some("帮助拍摄主图".into()),
        ..Visit::default()
    };
    visit::save(&mut fixture.store, &visit_on(&waiting, "2024-06-01T09:00:00+08:00", Some("2024-06-10"))).unwrap();
    visit::save(&mut fixture.store, &visit_on(&other, "2024-06-03T09:00:00+08:00", Some("2024-06-20"))).unwrap();
    // A visit of the waiting household dated three months ahead, as a device with a wrong date
    // (or an older version, which did not refuse it) sends it.
    let scope = household::get(&fixture.store, &waiting).unwrap().scope_id.unwrap();
    let fields = [
        ("scope_id", json!(scope)),
        ("household_id", json!(waiting)),
        ("visit_type", json!("home")),
        ("visited_at", json!("2024-09-15T10:00:00+08:00")),
        ("summary", json!("日期填错的走访")),
    ];
    let future = uuid::Uuid::now_v7().to_string();
    fixture.apply_remote(&furrow::schema::VISITS, &future, remote_stamp(0, 7), &fields);

    for days in [7, 14, 30, 90] {
        let until = (chrono::NaiveDate::from_ymd_opt(2024, 6, 15).unwrap() + chrono::Duration::days(days)).to_string();
        let due = visit::follow_ups_due(&fixture.store, "2024-06-15", &until).unwrap();
        let heads: Vec<&str> = due.iter().map(|follow_up| follow_up.head_name.as_str()).collect();
        assert_eq!(heads, ["王小梅", "李大山"], "within {days} days");
        assert_eq!(due[0].days_overdue, 5);
    }
}

#[test]
fn dates_of_things_already_done_cannot_lie_in_the_future() {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    let household = fixture.household(&village, "王小梅");
    let (today, later) = today_and_later();
    let born = Member {
        household_id: Some(household.clone()),
        name: Some("王小宝".into()),
        relation: Some(RelationToHead::Son),
        birth_date: Some(later.clone()),
        ..Member::default()
    };
    refused(&mut fixture, "birth_date", "in_future", |store| household::save_member(store, &born).map(drop));
    let income = IncomeRecord {
        household_id: Some(household),
        year: Some(2024),
        category: Some(IncomeCategory::Wage),
        amount_fen: Some(120_000),
        recorded_on: Some(later),
        ..IncomeRecord::default()
    };
    refused(&mut fixture, "recorded_on", "in_future", |store| income::record(store, &income).map(drop));
    // Today is allowed for both.
    household::save_member(&mut fixture.store, &Member { birth_date: Some(today.clone()), ..born }).unwrap();
    income::record(&mut fixture.store, &IncomeRecord { recorded_on: Some(today), ..income }).unwrap();
}

#[test]
fn the_identity_card_number_gives_the_birth_date_and_the_sex_and_checks_them() {
    let mut fixture = Fixture::new();
    let village = fixture.village("530724100201", "青山村");
    let household = fixture.household(&village, "赵小村");
    // 530724198503120012: born 1985-03-12, 17th digit 1 (a man).
    let typed_once = Member {
        household_id: Some(household.clone()),
        name: Some("赵小村".into()),
        relation: Some(RelationToHead::Head),
        id_card_no: Some("530724198503120012".into()),
        ..Member::default()
    };
    let saved = household::save_member(&mut fixture.store, &typed_once).expect("saved with the card alone");
    assert_eq!(saved.birth_date.as_deref(), Some("1985-03-12"), "the birth date comes from the card");
    assert_eq!(saved.sex, Some(Sex::Male), "the sex comes from the card");

    // 530724199008020027: a woman's number; typed for a man, it is refused beside the sex.
    let wrong = Member {
        household_id: Some(household),
        name: Some("钱桂花".into()),
        relation: Some(RelationToHead::Spouse),
        sex: Some(Sex::Male),
        id_card_no: Some("530724199008020027".into()),
        ..Member::default()
    };
    refused(&mut fixture, "sex", "id_card_sex_mismatch", |store| household::save_member(store, &wrong).map(drop));
    let right = household::save_member(&mut fixture.store, &Member { sex: Some(Sex::Female), ..wrong }).unwrap();
    assert_eq!(right.birth_date.as_deref(), Some("1990-08-02"));
}
