//! Identity card numbers are shown masked, and each full reveal is recorded on the device.

mod common;

use common::Fixture;
use furrow::audit;
use furrow::codes::RelationToHead;
use furrow::domain::household::{self, Member};

#[test]
fn a_reveal_shows_the_whole_number_and_is_recorded_newest_first() {
    let mut fixture = Fixture::new();
    let village = fixture.village("530724100201", "青山村");
    let home = fixture.household(&village, "龚秀芝");
    let card = "530724198506120018";
    let member = household::save_member(
        &mut fixture.store,
        &Member { household_id: Some(home.clone()), name: Some("龚秀芝".into()), relation: Some(RelationToHead::Head), id_card_no: Some(card.into()), ..Member::default() },
    )
    .unwrap();
    let without = fixture.member(&home, "鲁德旺");
    let pending = fixture.store.pending_changes().unwrap();

    assert_eq!(audit::mask_id_card(card), "5307**********0018");
    assert!(audit::reveals(&fixture.store, 10).unwrap().is_empty());
    let id = member.id.unwrap();
    assert_eq!(audit::reveal_id_card(&fixture.store, &id).unwrap().as_deref(), Some(card));
    assert_eq!(audit::reveal_id_card(&fixture.store, &without).unwrap(), None, "no number, nothing to record");
    assert_eq!(audit::reveal_id_card(&fixture.store, &id).unwrap().as_deref(), Some(card));
    let missing = audit::reveal_id_card(&fixture.store, "no-such-member").unwrap_err();
    assert_eq!(missing.code(), "not_found");

    let log = audit::reveals(&fixture.store, 10).unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log.iter().all(|reveal| reveal.member_id == id && reveal.member_name.as_deref() == Some("龚秀芝")));
    assert!(log[0].revealed_at >= log[1].revealed_at);
    assert_eq!(fixture.store.pending_changes().unwrap(), pending, "the record is the device's own, never synced");
}
