//! Smaller things users noticed: phone numbers typed with spaces are accepted and stored tidied,
//! a landline is a valid household phone (a member's phone stays a mobile), and the pending
//! count counts records, not fields.

mod common;

use common::{household_draft, Fixture};
use furrow::domain::household::{self, Household, Member};

#[test]
fn phones_typed_with_spaces_are_tidied_and_a_landline_is_a_household_phone() {
    let mut fixture = Fixture::new();
    let village = fixture.village("530724100201", "青山村");
    for (typed, stored) in [
        ("138 0013 8000", "13800138000"),
        ("138-0013-8000", "13800138000"),
        ("+86 138 0013 8000", "13800138000"),
        ("0871-6512345", "0871-6512345"),
        ("0871 6512345", "0871-6512345"),
        ("010-12345678", "010-12345678"),
    ] {
        let saved = household::save(&mut fixture.store, &Household { phone: Some(typed.into()), ..household_draft(&village, "赵小村") }).unwrap();
        assert_eq!(saved.phone.as_deref(), Some(stored), "{typed}");
    }
    let household = fixture.household(&village, "李大山");
    let member = household::save_member(
        &mut fixture.store,
        &Member { household_id: Some(household.clone()), name: Some("李小梅".into()), phone: Some(" 139 1234 5678 ".into()), ..Member::default() },
    )
    .unwrap();
    assert_eq!(member.phone.as_deref(), Some("13912345678"));
    // A member's phone is a mobile: a landline is refused there, with its reason.
    let error = household::save_member(
        &mut fixture.store,
        &Member { household_id: Some(household), name: Some("李大山".into()), phone: Some("0871-6512345".into()), ..Member::default() },
    )
    .unwrap_err();
    assert!(error.field_errors().iter().any(|failure| failure.field == "phone" && failure.code == "invalid_phone"), "{error:?}");
}

#[test]
fn the_pending_count_counts_records_not_fields() {
    let mut fixture = Fixture::new();
    let village = fixture.village("530724100201", "青山村");
    fixture.household(&village, "赵小村");
    assert!(fixture.store.pending_changes().unwrap() > 5, "a household queues each of its fields");
    assert_eq!(fixture.store.pending_records().unwrap(), 2, "a village and a household");
}
