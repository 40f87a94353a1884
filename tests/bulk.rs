//! Bulk work as assistants do it: a village's members listed for check-in and ticked many at
//! once, a second check-in of the same person said so, a member of another village allowed and
//! marked, and a session's scores saved as one sheet.

mod common;

use common::Fixture;
use furrow::codes::{AssessmentPhase, AttendanceStatus, HouseholdClosure, TrainingFormat, TrainingTopic};
use furrow::domain::household;
use furrow::domain::training::{self, ScoreEntry, TrainingSession};

struct Villages {
    fixture: Fixture,
    session: String,
    home: Vec<String>,
    away: String,
}

/// Two villages: the session's, with two households of two (one household closed, with one
/// member), and another with one member.
fn villages() -> Villages {
    let mut fixture = Fixture::new();
    let home_village = fixture.village("530724100201", "青山村");
    let other_village = fixture.village("530724100202", "石门村");
    let first = fixture.household(&home_village, "赵小村");
    let second = fixture.household(&home_village, "李大山");
    let closed = fixture.household(&home_village, "王迁出");
    let elsewhere = fixture.household(&other_village, "孙二");
    let home = vec![
        fixture.member(&first, "赵小村"),
        fixture.member(&first, "钱桂花"),
        fixture.member(&second, "李大山"),
        fixture.member(&second, "李小梅"),
    ];
    fixture.member(&closed, "王迁出");
    household::close(&mut fixture.store, &closed, HouseholdClosure::MovedOut, "2024-05-01", None).unwrap();
    let away = fixture.member(&elsewhere, "孙二");
    let session = training::save_session(
        &mut fixture.store,
        &TrainingSession {
            title: Some("定价与成本核算".into()),
            topics: Some(vec![TrainingTopic::Pricing, TrainingTopic::Packaging]),
            format: Some(TrainingFormat::Classroom),
            date: Some("2024-06-05".into()),
            village_id: Some(home_village),
            ..TrainingSession::default()
        },
    )
    .unwrap()
    .id
    .unwrap();
    Villages { fixture, session, home, away }
}

#[test]
fn an_empty_search_lists_the_villages_members_and_many_are_checked_in_at_once() {
    let mut world = villages();
    let listed = training::check_in_candidates(&world.fixture.store, &world.session, None, None).unwrap();
    let names: Vec<&str> = listed.iter().map(|candidate| candidate.member_name.as_str()).collect();
    assert_eq!(names.len(), 4, "the session village's members in the register: {names:?}");
    assert!(!names.contains(&"王迁出"), "a closed household's members are not listed");
    assert!(!names.contains(&"孙二"), "another village's are not listed without a search");
    assert!(listed.iter().all(|candidate| !candidate.checked_in && !candidate.other_village));

    let report = training::check_in_new(&mut world.fixture.store, &world.session, &world.home, AttendanceStatus::Present).unwrap();
    assert_eq!(report.checked_in.len(), 4);
    assert!(report.already.is_empty());
    assert_eq!(training::attendees(&world.fixture.store, &world.session).unwrap().len(), 4);

    // Checking the same people in again says so and changes nothing.
    let before = world.fixture.count("SELECT count(*) FROM sync_outbox");
    let again = training::check_in_new(&mut world.fixture.store, &world.session, &world.home[..2], AttendanceStatus::Late).unwrap();
    assert_eq!(again.already, ["赵小村", "钱桂花"]);
    assert!(again.checked_in.is_empty());
    assert_eq!(world.fixture.count("SELECT count(*) FROM sync_outbox"), before);
    let listed = training::check_in_candidates(&world.fixture.store, &world.session, None, None).unwrap();
    assert!(listed.iter().all(|candidate| candidate.checked_in));
}

#[test]
fn a_member_of_another_village_is_found_by_name_checked_in_and_marked() {
    let mut world = villages();
    let found = training::check_in_candidates(&world.fixture.store, &world.session, None, Some("孙二")).unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].other_village, "the list marks someone from another village");
    assert_eq!(found[0].village_name.as_deref(), Some("石门村"));
    let report = training::check_in_new(&mut world.fixture.store, &world.session, &[world.away.clone()], AttendanceStatus::Present).unwrap();
    assert_eq!(report.checked_in, ["孙二"]);
    // Another village's whole list, on request.
    let other = found[0].village_id.clone();
    let listed = training::check_in_candidates(&world.fixture.store, &world.session, Some(&other), None).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].checked_in);
}

#[test]
fn a_score_sheet_is_saved_at_once_and_a_bad_cell_saves_nothing() {
    let mut world = villages();
    training::check_in_new(&mut world.fixture.store, &world.session, &world.home, AttendanceStatus::Present).unwrap();
    let cell = |member: &str, topic: TrainingTopic, score: Option<i64>| ScoreEntry { member_id: member.to_owned(), topic, score };
    let sheet: Vec<ScoreEntry> = world
        .home
        .iter()
        .enumerate()
        .flat_map(|(index, member)| [cell(member, TrainingTopic::Pricing, Some(60 + index as i64)), cell(member, TrainingTopic::Packaging, Some(70))])
        .collect();
    let saved = training::save_scores(&mut world.fixture.store, &world.session, AssessmentPhase::Pre, "2024-06-05", &sheet).unwrap();
    assert_eq!(saved, 8);
    assert_eq!(training::assessments_of_session(&world.fixture.store, &world.session).unwrap().len(), 8);

    // The post-training sheet: one cell out of range refuses the whole sheet, naming the cell.
    let before = world.fixture.fingerprint();
    let bad = [cell(&world.home[0], TrainingTopic::Pricing, Some(90)), cell(&world.home[1], TrainingTopic::Pricing, Some(120))];
    let error = training::save_scores(&mut world.fixture.store, &world.session, AssessmentPhase::Post, "2024-06-05", &bad).unwrap_err();
    let field = format!("score.{}.pricing", world.home[1]);
    assert!(error.field_errors().iter().any(|failure| failure.field == field && failure.code == "out_of_range"), "{error:?}");
    assert_eq!(world.fixture.fingerprint(), before, "nothing of the refused sheet was saved");

    // Saving a sheet again edits the same scores, and an emptied cell clears its score.
    let corrected = [cell(&world.home[0], TrainingTopic::Pricing, Some(65)), cell(&world.home[1], TrainingTopic::Packaging, None)];
    training::save_scores(&mut world.fixture.store, &world.session, AssessmentPhase::Pre, "2024-06-05", &corrected).unwrap();
    let scores = training::assessments_of_session(&world.fixture.store, &world.session).unwrap();
    assert_eq!(scores.len(), 7);
    let first = scores
        .iter()
        .find(|score| score.member_id.as_deref() == Some(world.home[0].as_str()) && score.topic == Some(TrainingTopic::Pricing))
        .unwrap();
    assert_eq!(first.score, Some(65));
}
