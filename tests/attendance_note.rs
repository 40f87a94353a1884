//! A member of another village attends a training with a note on their attendance: asked for at
//! check-in and kept on their row only, shown with the attendees, corrected and cleared later,
//! synced like any other field, and refused whole when too long. On real SQLite files.

mod common;

use common::Fixture;
use furrow::codes::{AttendanceStatus, TrainingFormat, TrainingTopic};
use furrow::domain::training::{self, TrainingSession};
use furrow::{Error, OpenOptions, Store};

struct Session {
    fixture: Fixture,
    session: String,
    home: String,
    away: String,
}

/// A session in 青山村 with one of its villagers and one member of 石门村.
fn session() -> Session {
    let mut fixture = Fixture::new();
    let home_village = fixture.village("530724100201", "青山村");
    let other_village = fixture.village("530724100202", "石门村");
    let home_household = fixture.household(&home_village, "赵小村");
    let away_household = fixture.household(&other_village, "孙二");
    let home = fixture.member(&home_household, "赵小村");
    let away = fixture.member(&away_household, "孙二");
    let session = training::save_session(
        &mut fixture.store,
        &TrainingSession {
            title: Some("定价与成本核算".into()),
            topics: Some(vec![TrainingTopic::Pricing]),
            format: Some(TrainingFormat::Classroom),
            date: Some("2024-06-05".into()),
            village_id: Some(home_village),
            ..TrainingSession::default()
        },
    )
    .unwrap()
    .id
    .unwrap();
    Session { fixture, session, home, away }
}

fn notes(store: &Store, session: &str) -> Vec<(String, Option<String>, bool)> {
    training::attendees(store, session).unwrap().into_iter().map(|attendee| (attendee.member_name, attendee.note, attendee.other_village)).collect()
}

#[test]
fn the_note_asked_at_check_in_goes_on_the_other_villages_row_and_is_kept() {
    let mut world = session();
    let report = training::check_in_new_noted(
        &mut world.fixture.store,
        &world.session,
        &[world.home.clone(), world.away.clone()],
        AttendanceStatus::Present,
        Some("  石门村合作社派来学习定价  "),
    )
    .unwrap();
    assert_eq!(report.checked_in, vec!["赵小村", "孙二"]);
    let mut shown = notes(&world.fixture.store, &world.session);
    shown.sort();
    assert_eq!(
        shown,
        vec![("孙二".to_owned(), Some("石门村合作社派来学习定价".to_owned()), true), ("赵小村".to_owned(), None, false)],
        "the note, tidied, is on the visitor's row only"
    );

    // The note is a synced field: it waits in the outbox with the row.
    let attendance = furrow::schema::attendance_id(&world.session, &world.away);
    assert_eq!(
        world.fixture.count(&format!("SELECT count(*) FROM sync_outbox WHERE tbl = 'attendance' AND row_id = '{attendance}' AND field = 'note'")),
        1
    );

    // It is there after the app restarts.
    let path = world.fixture.path();
    let Fixture { dir, store } = world.fixture;
    drop(store);
    let store = Store::open(&OpenOptions::file(&path)).unwrap();
    assert!(notes(&store, &world.session).contains(&("孙二".to_owned(), Some("石门村合作社派来学习定价".to_owned()), true)));
    drop(dir);
}

#[test]
fn a_note_is_not_required_and_can_be_written_corrected_and_cleared_later() {
    let mut world = session();
    training::check_in_new_noted(&mut world.fixture.store, &world.session, &[world.away.clone()], AttendanceStatus::Present, None).unwrap();
    assert_eq!(notes(&world.fixture.store, &world.session), vec![("孙二".to_owned(), None, true)], "checked in without a note");

    let saved = training::set_attendance_note(&mut world.fixture.store, &world.session, &world.away, Some("代表合作社参加")).unwrap();
    assert_eq!(saved.note.as_deref(), Some("代表合作社参加"));
    assert_eq!(saved.status, Some(AttendanceStatus::Present), "the status is left as it was");
    training::set_attendance_note(&mut world.fixture.store, &world.session, &world.away, Some("代表石门村合作社参加")).unwrap();
    assert_eq!(notes(&world.fixture.store, &world.session)[0].1.as_deref(), Some("代表石门村合作社参加"));
    training::set_attendance_note(&mut world.fixture.store, &world.session, &world.away, Some("   ")).unwrap();
    assert_eq!(notes(&world.fixture.store, &world.session)[0].1, None, "an empty note clears it");

    // Checking the same person in again changes nothing, the note included.
    training::set_attendance_note(&mut world.fixture.store, &world.session, &world.away, Some("代表合作社参加")).unwrap();
    let again =
        training::check_in_new_noted(&mut world.fixture.store, &world.session, &[world.away.clone()], AttendanceStatus::Late, Some("另一条")).unwrap();
    assert_eq!(again.already, vec!["孙二"]);
    assert_eq!(notes(&world.fixture.store, &world.session)[0].1.as_deref(), Some("代表合作社参加"));
}

#[test]
fn a_note_too_long_is_refused_in_both_languages_and_nothing_is_written() {
    let mut world = session();
    training::check_in_new(&mut world.fixture.store, &world.session, &[world.away.clone()], AttendanceStatus::Present).unwrap();
    let before = world.fixture.fingerprint();
    let long = "长".repeat(501);
    let Err(Error::Validation(failures)) = training::set_attendance_note(&mut world.fixture.store, &world.session, &world.away, Some(&long)) else {
        panic!("a 501-character note is refused");
    };
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].field, "note");
    assert!(!failures[0].message_zh.is_empty() && !failures[0].message_en.is_empty());
    assert_eq!(world.fixture.fingerprint(), before, "the refused note wrote nothing");

    // At check-in too: the whole check-in is refused, nobody is checked in.
    let home = world.home.clone();
    let refused = training::check_in_new_noted(&mut world.fixture.store, &world.session, &[home], AttendanceStatus::Present, Some(&long));
    assert!(refused.is_ok(), "the session's own villager gets no note, so the long one is not theirs: {refused:?}");
    let mut fresh = session();
    let before = fresh.fixture.fingerprint();
    let refused = training::check_in_new_noted(
        &mut fresh.fixture.store,
        &fresh.session,
        &[fresh.home.clone(), fresh.away.clone()],
        AttendanceStatus::Present,
        Some(&long),
    );
    assert!(matches!(refused, Err(Error::Validation(ref failures)) if failures[0].field == "note"), "{refused:?}");
    assert_eq!(fresh.fixture.fingerprint(), before, "nobody was checked in");
}
