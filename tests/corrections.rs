//! Every record can be corrected: deletes are tombstones through the one write path and take
//! what depends on them along (named first, for the confirmation); a household leaves the
//! register by being closed, keeps its history and is counted as closed; a follow-up can be
//! marked done; possible duplicates are found whether typed here or brought by a sync; a
//! session's attendees keep their names across a restart; a listing keeps its verdicts.

mod common;

use common::{household_draft, remote_stamp, Fixture};
use furrow::codes::{
    AssessmentPhase, AttendanceStatus, HouseholdClosure, IncomeCategory, ModerationStatus, PhotoKind, PhotoOwner, TrainingFormat, TrainingTopic,
    VisitType,
};
use furrow::domain::household::{self, DuplicateReason, Household, Member, RosterQuery};
use furrow::domain::income::{self, IncomeRecord};
use furrow::domain::listing::{self, Photo};
use furrow::domain::listing_rules;
use furrow::domain::training::{self, Assessment, TrainingSession};
use furrow::domain::visit::{self, Visit};
use furrow::{OpenOptions, Store};
use serde_json::json;

struct Village {
    fixture: Fixture,
    village: String,
    household: String,
    members: Vec<String>,
    session: String,
}

/// A village with one household of three, a visit, income, and a training session that all
/// three attended and were scored at.
fn village() -> Village {
    let mut fixture = Fixture::new();
    let village = fixture.village("530724100201", "青山村");
    let household = fixture.household(&village, "赵小村");
    let members: Vec<String> = ["赵小村", "钱桂花", "赵小宝"].iter().map(|name| fixture.member(&household, name)).collect();
    let store = &mut fixture.store;
    visit::save(
        store,
        &Visit {
            household_id: Some(household.clone()),
            visit_type: Some(VisitType::Home),
            visited_at: Some("2024-06-01T09:00:00+08:00".into()),
            next_visit_date: Some("2024-06-10".into()),
            ..Visit::default()
        },
    )
    .unwrap();
    income::record(
        store,
        &IncomeRecord {
            household_id: Some(household.clone()),
            year: Some(2024),
            category: Some(IncomeCategory::Wage),
            amount_fen: Some(1_200_000),
            recorded_on: Some("2024-12-01".into()),
            ..IncomeRecord::default()
        },
    )
    .unwrap();
    let session = training::save_session(
        store,
        &TrainingSession {
            title: Some("商品拍照培训".into()),
            topics: Some(vec![TrainingTopic::Photography]),
            format: Some(TrainingFormat::Classroom),
            date: Some("2024-06-05".into()),
            village_id: Some(village.clone()),
            ..TrainingSession::default()
        },
    )
    .unwrap()
    .id
    .unwrap();
    training::check_in(store, &session, &members, AttendanceStatus::Present).unwrap();
    for member in &members {
        training::save_assessment(
            store,
            &Assessment {
                member_id: Some(member.clone()),
                session_id: Some(session.clone()),
                topic: Some(TrainingTopic::Photography),
                phase: Some(AssessmentPhase::Post),
                score: Some(80),
                assessed_on: Some("2024-06-05".into()),
                ..Assessment::default()
            },
        )
        .unwrap();
    }
    Village { fixture, village, household, members, session }
}

#[test]
fn a_sessions_attendees_keep_their_names_after_a_restart() {
    let world = village();
    let path = world.fixture.path();
    drop(world.fixture.store);
    let store = Store::open(&OpenOptions::file(&path)).unwrap();
    let attendees = training::attendees(&store, &world.session).unwrap();
    let names: Vec<&str> = attendees.iter().map(|attendee| attendee.member_name.as_str()).collect();
    assert_eq!(names.len(), 3);
    for name in ["赵小村", "钱桂花", "赵小宝"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert!(attendees.iter().all(|attendee| attendee.head_name == "赵小村" && attendee.village_name.as_deref() == Some("青山村")));
    assert_eq!(training::assessments_of_session(&store, &world.session).unwrap().len(), 3);
}

#[test]
fn deleting_a_member_takes_their_attendance_and_scores_and_says_so_first() {
    let mut world = village();
    let member = world.members[2].clone();
    let impact = household::member_deletion_impact(&world.fixture.store, &member).unwrap();
    assert_eq!((impact.name.as_str(), impact.attendance, impact.assessments), ("赵小宝", 1, 1));
    household::delete_member(&mut world.fixture.store, &member).unwrap();
    let store = &world.fixture.store;
    assert_eq!(household::members(store, &world.household).unwrap().len(), 2);
    assert_eq!(training::attendees(store, &world.session).unwrap().len(), 2);
    assert_eq!(training::assessments_of_session(store, &world.session).unwrap().len(), 2);
    // Tombstones, each queued for sync with its clock.
    for table in ["members", "attendance", "skill_assessments"] {
        assert_eq!(
            world.fixture.count(&format!("SELECT count(*) FROM {table} WHERE deleted = 1")),
            world.fixture.count(&format!("SELECT count(*) FROM sync_outbox WHERE tbl = '{table}' AND field = 'deleted' AND value = '1'")),
            "{table}"
        );
    }
    assert_eq!(world.fixture.count("SELECT count(*) FROM members WHERE deleted = 1"), 1);
}

#[test]
fn deleting_a_household_takes_its_members_visits_and_check_ins_and_keeps_income() {
    let mut world = village();
    let impact = household::deletion_impact(&world.fixture.store, &world.household).unwrap();
    assert_eq!(
        (impact.name.as_str(), impact.members, impact.visits, impact.attendance, impact.assessments, impact.income_records_kept),
        ("赵小村", 3, 1, 3, 3, 1)
    );
    household::delete(&mut world.fixture.store, &world.household).unwrap();
    let store = &world.fixture.store;
    assert!(household::get(store, &world.household).is_err());
    assert!(household::search(store, &RosterQuery::default()).unwrap().is_empty());
    assert!(training::attendees(store, &world.session).unwrap().is_empty());
    assert_eq!(world.fixture.count("SELECT count(*) FROM visits WHERE deleted = 1"), 1);
    assert_eq!(world.fixture.count("SELECT count(*) FROM income_records WHERE deleted = 0"), 1, "income is never deleted");
}

#[test]
fn deleting_a_session_takes_its_attendance_and_scores() {
    let mut world = village();
    let impact = training::session_deletion_impact(&world.fixture.store, &world.session).unwrap();
    assert_eq!((impact.name.as_str(), impact.attendance, impact.assessments), ("商品拍照培训", 3, 3));
    training::delete_session(&mut world.fixture.store, &world.session).unwrap();
    assert!(training::sessions(&world.fixture.store).unwrap().is_empty());
    assert_eq!(world.fixture.count("SELECT count(*) FROM attendance WHERE deleted = 0"), 0);
    assert_eq!(world.fixture.count("SELECT count(*) FROM skill_assessments WHERE deleted = 0"), 0);
}

#[test]
fn an_attendees_status_is_corrected_and_an_attendee_removed() {
    let mut world = village();
    let (session, member) = (world.session.clone(), world.members[1].clone());
    training::set_attendance_status(&mut world.fixture.store, &session, &member, AttendanceStatus::Late).unwrap();
    let attendees = training::attendees(&world.fixture.store, &session).unwrap();
    assert_eq!(attendees.iter().find(|attendee| attendee.member_id == member).unwrap().status, AttendanceStatus::Late);
    training::remove_attendee(&mut world.fixture.store, &session, &member).unwrap();
    assert_eq!(training::attendees(&world.fixture.store, &session).unwrap().len(), 2);
}

#[test]
fn a_closed_household_keeps_its_history_and_leaves_the_roster_and_the_follow_ups() {
    let mut world = village();
    let other = world.fixture.household(&world.village, "李大山");
    let store = &mut world.fixture.store;
    assert_eq!(household::search(store, &RosterQuery::default()).unwrap().len(), 2);
    assert_eq!(visit::follow_ups_due(store, "2024-06-15", "2024-06-30").unwrap().len(), 1);

    // A reason needs its date, and the date cannot lie ahead.
    let half = Household { closed_reason: Some(HouseholdClosure::MovedOut), ..household::get(store, &world.household).unwrap() };
    let error = household::save(store, &half).expect_err("a reason without a date");
    assert!(error.field_errors().iter().any(|error| error.field == "closed_on" && error.code == "required"), "{error:?}");
    let ahead = (chrono::Local::now().date_naive() + chrono::Duration::days(3)).to_string();
    let error = household::close(store, &world.household, HouseholdClosure::MovedOut, &ahead, None).expect_err("a date ahead");
    assert!(error.field_errors().iter().any(|error| error.field == "closed_on" && error.code == "in_future"), "{error:?}");

    let closed = household::close(store, &world.household, HouseholdClosure::MovedOut, "2024-07-01", Some("全家迁往昆明务工")).unwrap();
    assert_eq!(closed.closed_reason, Some(HouseholdClosure::MovedOut));
    let open = household::search(store, &RosterQuery::default()).unwrap();
    assert_eq!(open.iter().map(|entry| entry.id.as_str()).collect::<Vec<_>>(), [other.as_str()], "no longer counted in the register");
    let gone = household::search(store, &RosterQuery { closed: Some(true), ..RosterQuery::default() }).unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!((gone[0].closed_reason, gone[0].closed_on.as_deref()), (Some(HouseholdClosure::MovedOut), Some("2024-07-01")));
    assert!(visit::follow_ups_due(store, "2024-06-15", "2024-06-30").unwrap().is_empty(), "no follow-up is due for it");
    // Its history stays.
    let view = furrow::domain::household_view::view(store, &world.household).unwrap();
    assert_eq!((view.members.len(), view.visits.len(), view.income_records.len()), (3, 1, 1));
    assert_eq!(view.household.closed_note.as_deref(), Some("全家迁往昆明务工"));

    let reopened = household::reopen(store, &world.household).unwrap();
    assert_eq!(reopened.closed_reason, None);
    assert_eq!(household::search(store, &RosterQuery::default()).unwrap().len(), 2);
}

#[test]
fn a_follow_up_marked_done_is_no_longer_due() {
    let mut world = village();
    let store = &mut world.fixture.store;
    let due = visit::follow_ups_due(store, "2024-06-15", "2024-06-30").unwrap();
    assert_eq!(due.len(), 1);
    let done = visit::mark_follow_up_done(store, &due[0].visit_id, "2024-06-12").unwrap();
    assert_eq!(done.follow_up_done_on.as_deref(), Some("2024-06-12"));
    assert!(visit::follow_ups_due(store, "2024-06-15", "2024-06-30").unwrap().is_empty());
}

#[test]
fn a_visit_is_edited_and_another_deleted() {
    let mut world = village();
    let store = &mut world.fixture.store;
    let mut first = visit::of_household(store, &world.household).unwrap().remove(0);
    first.summary = Some("查看核桃晾晒".into());
    first.visited_at = Some("2024-06-02T15:30:00+08:00".into());
    visit::save(store, &first).unwrap();
    let second = visit::save(
        store,
        &Visit { id: None, visited_at: Some("2024-06-04T10:00:00+08:00".into()), summary: Some("记错了".into()), ..first.clone() },
    )
    .unwrap();
    visit::delete(store, second.id.as_deref().unwrap()).unwrap();
    let visits = visit::of_household(store, &world.household).unwrap();
    assert_eq!(visits.len(), 1);
    assert_eq!(visits[0].summary.as_deref(), Some("查看核桃晾晒"));
    assert_eq!(visits[0].visited_at.as_deref(), Some("2024-06-02T15:30:00+08:00"));
}

#[test]
fn possible_duplicates_are_found_before_a_save_and_after_a_sync() {
    let mut world = village();
    let card = "530724198503120012";
    let head = world.members[0].clone();
    let mut member = household::get_member(&world.fixture.store, &head).unwrap();
    member.id_card_no = Some(card.into());
    member.sex = None;
    member.birth_date = None;
    household::save_member(&mut world.fixture.store, &member).unwrap();

    // The same head, phone and village: warned about before saving.
    let second = household_draft(&world.village, " 赵小村 ");
    let found = household::household_duplicates(&world.fixture.store, &second).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].reason, found[0].household_id.as_str()), (DuplicateReason::SameHeadPhoneVillage, world.household.as_str()));
    // Another phone is another household; the household itself is no duplicate of itself.
    let elsewhere = Household { phone: Some("13900139000".into()), ..second.clone() };
    assert!(household::household_duplicates(&world.fixture.store, &elsewhere).unwrap().is_empty());
    let itself = household::get(&world.fixture.store, &world.household).unwrap();
    assert!(household::household_duplicates(&world.fixture.store, &itself).unwrap().is_empty());

    // The same identity card number in another household, typed with a lower-case x or not.
    let other = world.fixture.household(&world.village, "孙二");
    let twin = Member { household_id: Some(other.clone()), name: Some("赵小村".into()), id_card_no: Some(card.into()), ..Member::default() };
    let found = household::member_duplicates(&world.fixture.store, &twin).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].reason, DuplicateReason::SameIdCard);
    assert_eq!((found[0].member_id.as_deref(), found[0].head_name.as_str()), (Some(head.as_str()), "赵小村"));

    // A member with the same number arrives by sync (no check ran): both pages show it.
    let scope = household::get(&world.fixture.store, &other).unwrap().scope_id.unwrap();
    let stamp = remote_stamp(0, 3);
    let fields = [("scope_id", json!(scope)), ("household_id", json!(other)), ("name", json!("赵小村")), ("id_card_no", json!(card))];
    let synced = uuid::Uuid::now_v7().to_string();
    world.fixture.apply_remote(&furrow::schema::MEMBERS, &synced, stamp, &fields);
    let on_first = household::duplicates_of(&world.fixture.store, &world.household).unwrap();
    assert!(on_first.iter().any(|duplicate| duplicate.member_id.as_deref() == Some(synced.as_str())), "{on_first:?}");
    let on_second = household::duplicates_of(&world.fixture.store, &other).unwrap();
    assert!(on_second.iter().any(|duplicate| duplicate.member_id.as_deref() == Some(head.as_str())), "{on_second:?}");
}

#[test]
fn the_identity_card_facts_are_read_for_the_form() {
    let facts = household::id_card_facts(" 530724199008020027 ").expect("a valid number");
    assert_eq!((facts.birth_date.as_str(), facts.sex), ("1990-08-02", furrow::codes::Sex::Female));
    assert!(household::id_card_facts("530724199008020028").is_none(), "a wrong check character");
    assert!(household::id_card_facts("5307241990").is_none());
}

#[test]
fn a_rejected_listing_keeps_its_verdict_in_its_history_after_it_is_submitted_again() {
    let mut fixture = Fixture::new();
    let id = fixture.draft_listing();
    listing::save_photo(
        &mut fixture.store,
        &Photo {
            owner_type: Some(PhotoOwner::Listing),
            owner_id: Some(id.clone()),
            sha256: Some(format!("{:064x}", 1)),
            bytes: Some(300_000),
            width_px: Some(800),
            height_px: Some(800),
            kind: Some(PhotoKind::Main),
            ..Photo::default()
        },
    )
    .unwrap();
    let verdict = |fixture: &mut Fixture, offset: i64, fields: &[(&str, serde_json::Value)]| {
        fixture.apply_remote(&furrow::schema::LISTINGS, &id, remote_stamp(offset, 0x5E), fields);
    };
    let first = listing_rules::submit(&mut fixture.store, &id).unwrap();
    assert!(!listing_rules::can_submit(&fixture.store, &first).unwrap(), "a submitted listing waits for its verdict");
    verdict(&mut fixture, 1_000, &[("moderation_status", json!("pending"))]);
    verdict(&mut fixture, 2_000, &[("moderation_status", json!("rejected")), ("moderation_reason", json!("主图含有文字"))]);
    let rejected = listing::get_listing(&fixture.store, &id).unwrap();
    assert!(listing_rules::can_submit(&fixture.store, &rejected).unwrap(), "a rejected listing can be sent again");
    let history = listing_rules::submissions(&fixture.store, &id).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].moderation_status, Some(ModerationStatus::Rejected));

    let second = listing_rules::submit(&mut fixture.store, &id).unwrap();
    assert!(!listing_rules::can_submit(&fixture.store, &second).unwrap(), "once sent again it waits for the new verdict");
    let history = listing_rules::submissions(&fixture.store, &id).unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[0].current && history[0].moderation_status.is_none(), "no verdict yet on the new submission: {history:?}");
    assert_eq!(history[1].submission_key, first.submission_key.clone().unwrap());
    assert_eq!(
        (history[1].moderation_status, history[1].moderation_reason.as_deref()),
        (Some(ModerationStatus::Rejected), Some("主图含有文字")),
        "the old verdict stays in the history"
    );
    // The platform records the new submission (pending) and approves it.
    verdict(&mut fixture, 3_000, &[("moderation_status", json!("pending")), ("moderation_reason", json!(null))]);
    verdict(&mut fixture, 4_000, &[("moderation_status", json!("approved")), ("platform_item_id", json!("TB-42"))]);
    let history = listing_rules::submissions(&fixture.store, &id).unwrap();
    assert_eq!(history[0].moderation_status, Some(ModerationStatus::Approved));
    assert_eq!(history[1].moderation_status, Some(ModerationStatus::Rejected));
}
