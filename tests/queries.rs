//! The queries an assistant needs from the first day: roster search, a household's full picture,
//! per-capita net income against the poverty line, and follow-ups due.

mod common;

use common::Fixture;
use furrow::codes::{AttendanceStatus, HouseholdAttribute, IncomeCategory, MonitoringType, PovertyCause, PovertyStatus, TrainingFormat, TrainingTopic, VisitType};
use furrow::domain::household::{self, Household, RosterQuery};
use furrow::domain::income::{self, IncomeRecord};
use furrow::domain::training::{self, TrainingSession};
use furrow::domain::visit::{self, Visit};
use furrow::hlc::{pack, NodeId, Stamp};
use furrow::record::RemoteField;
use furrow::schema;
use serde_json::json;

fn search(fixture: &Fixture, query: RosterQuery) -> Vec<String> {
    household::search(&fixture.store, &query).unwrap().into_iter().map(|entry| entry.head_name).collect()
}

fn text(value: &str) -> RosterQuery {
    RosterQuery { text: Some(value.into()), ..RosterQuery::default() }
}

#[test]
fn the_roster_finds_households_by_any_part_of_a_name_number_phone_or_village() {
    let mut fixture = Fixture::new();
    let gaopo = fixture.village("522633101001", "高坡村");
    let shuikou = fixture.village("522633101002", "水口村");
    let wang = household::save(
        &mut fixture.store,
        &Household { register_no: Some("GP-0007".into()), phone: Some("13912345678".into()), ..common::household_draft(&gaopo, "王小梅") },
    )
    .unwrap();
    household::save(
        &mut fixture.store,
        &Household {
            register_no: Some("SK-0101".into()),
            phone: Some("18700001111".into()),
            monitoring_type: Some(MonitoringType::Marginal),
            main_cause: Some(PovertyCause::Illness),
            ..common::household_draft(&shuikou, "李大山")
        },
    )
    .unwrap();
    household::save(
        &mut fixture.store,
        &Household {
            register_no: Some("SK-0102".into()),
            poverty_status: Some(PovertyStatus::NewlyExited),
            secondary_causes: Some(vec![PovertyCause::Illness]),
            main_cause: Some(PovertyCause::LackSkills),
            ..common::household_draft(&shuikou, "张桂英")
        },
    )
    .unwrap();
    fixture.member(wang.id.as_deref().unwrap(), "王建国");

    assert_eq!(search(&fixture, text("小梅")), vec!["王小梅"], "two Chinese characters");
    assert_eq!(search(&fixture, text("王小梅")), vec!["王小梅"], "three Chinese characters");
    assert_eq!(search(&fixture, text("建国")), vec!["王小梅"], "a member's name finds the household");
    assert_eq!(search(&fixture, text("0101")), vec!["李大山"], "register number");
    assert_eq!(search(&fixture, text("1234567")), vec!["王小梅"], "part of a phone number");
    assert_eq!(search(&fixture, text("水口")), vec!["李大山", "张桂英"], "village name");
    assert!(search(&fixture, text("不存在的人")).is_empty());
    assert_eq!(search(&fixture, RosterQuery { village_id: Some(shuikou.clone()), ..RosterQuery::default() }).len(), 2);
    assert_eq!(
        search(&fixture, RosterQuery { poverty_status: Some(PovertyStatus::NewlyExited), ..RosterQuery::default() }),
        vec!["张桂英"]
    );
    assert_eq!(
        search(&fixture, RosterQuery { monitoring_type: Some(MonitoringType::Marginal), ..RosterQuery::default() }),
        vec!["李大山"]
    );
    assert_eq!(
        search(&fixture, RosterQuery { cause: Some(PovertyCause::Illness), ..RosterQuery::default() }),
        vec!["李大山", "张桂英"],
        "main or secondary cause"
    );
    assert_eq!(search(&fixture, RosterQuery { text: Some("水口".into()), cause: Some(PovertyCause::LackSkills), ..RosterQuery::default() }), vec!["张桂英"]);

    // Renaming and deleting keep the index true.
    let mut renamed = household::get(&fixture.store, wang.id.as_deref().unwrap()).unwrap();
    renamed.head_name = Some("王晓梅".into());
    household::save(&mut fixture.store, &renamed).unwrap();
    assert!(search(&fixture, text("小梅")).is_empty());
    assert_eq!(search(&fixture, text("晓梅")), vec!["王晓梅"]);
    household::delete(&mut fixture.store, wang.id.as_deref().unwrap()).unwrap();
    assert!(search(&fixture, text("晓梅")).is_empty());
    assert!(search(&fixture, text("建国")).is_empty());
}

fn income(household: &str, year: i64, category: IncomeCategory, amount_fen: i64) -> IncomeRecord {
    IncomeRecord {
        household_id: Some(household.into()),
        year: Some(year),
        category: Some(category),
        amount_fen: Some(amount_fen),
        recorded_on: Some(format!("{year}-12-01")),
        ..IncomeRecord::default()
    }
}

#[test]
fn per_capita_income_counts_corrections_sales_and_members_against_the_line() {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    let id = fixture.household(&village, "王小梅");
    for name in ["王小梅", "王建国", "王小花"] {
        fixture.member(&id, name);
    }
    let store = &mut fixture.store;
    income::record(store, &income(&id, 2020, IncomeCategory::Wage, 600_000)).unwrap();
    income::record(store, &income(&id, 2020, IncomeCategory::Operating, 500_000)).unwrap();
    income::record(store, &income(&id, 2020, IncomeCategory::OperatingCost, 200_000)).unwrap();
    income::record(store, &income(&id, 2020, IncomeCategory::Transfer, 150_000)).unwrap();
    income::record(store, &income(&id, 2020, IncomeCategory::Excluded, 900_000)).unwrap();
    let wrong = income::record(store, &income(&id, 2020, IncomeCategory::Property, 800_000)).unwrap();
    // The 8,000-yuan property income was a typing error for 80 yuan.
    income::correct(store, wrong.id.as_deref().unwrap(), &income(&id, 2020, IncomeCategory::Property, 8_000)).unwrap();
    // Editing a record in place is refused: income is append-only.
    assert!(matches!(
        store.write(|writer| writer.save(&schema::INCOME_RECORDS, wrong.id.as_deref(), json!({"amount_fen": 1}).as_object().unwrap().clone())),
        Err(furrow::Error::NotAllowed { .. })
    ));

    // A sale credited by the platform adds 300 yuan of e-commerce income.
    let stamp = Stamp { hlc: pack(1_600_000_000_000, 0), node: NodeId([7; 16]) };
    let field = |name: &str, value: serde_json::Value| RemoteField { field: name.into(), value, stamp };
    let sale_id = uuid::Uuid::now_v7().to_string();
    store
        .write(|writer| {
            writer.apply_remote(
                &schema::SALES,
                &sale_id,
                &[field("scope_id", json!("522633101001")), field("order_date", json!("2020-10-01")), field("status", json!("completed")), field("gross_fen", json!(30_000))],
            )?;
            writer.apply_remote(
                &schema::SALE_ALLOCATIONS,
                &uuid::Uuid::now_v7().to_string(),
                &[
                    field("scope_id", json!("522633101001")),
                    field("sale_id", json!(sale_id)),
                    field("household_id", json!(id)),
                    field("amount_fen", json!(30_000)),
                ],
            )
        })
        .unwrap();

    let years = income::by_year(store, &id).unwrap();
    assert_eq!(years.len(), 1);
    let year = &years[0];
    // 6000 + 5000 − 2000 + 80 + 1500 + 300 = 10,880 yuan; the excluded 9000 is not counted.
    assert_eq!(year.net_fen, 1_088_000);
    assert_eq!(year.household_size, 3);
    assert_eq!(year.per_capita_fen, Some(362_666));
    assert_eq!(year.ecommerce_sales_fen, 30_000);
    assert_eq!(year.poverty_line_fen, Some(400_000), "the 2020 line of 4,000 yuan");
    assert_eq!(year.above_line, Some(false));

    // A province line, where one is set, takes precedence over the national one.
    furrow::domain::reference::save_poverty_line(
        store,
        &furrow::domain::reference::PovertyLine {
            id: None,
            year: 2020,
            scope_level: "province".into(),
            region_code: "52".into(),
            amount_fen: 350_000,
            price_basis: "当年价".into(),
            source: "省定标准".into(),
            source_quality: "user".into(),
        },
    )
    .unwrap();
    let year = &income::by_year(store, &id).unwrap()[0];
    assert_eq!(year.poverty_line_fen, Some(350_000));
    assert_eq!(year.above_line, Some(true));
}

#[test]
fn follow_ups_due_come_from_each_households_latest_visit() {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    let overdue = fixture.household(&village, "王小梅");
    let later = fixture.household(&village, "李大山");
    let revisited = fixture.household(&village, "张桂英");
    let visit_on = |household: &str, at: &str, next: Option<&str>| Visit {
        household_id: Some(household.into()),
        visit_type: Some(VisitType::Home),
        visited_at: Some(at.into()),
        next_visit_date: next.map(str::to_owned),
        actions_agreed: Some("帮助拍摄主图".into()),
        ..Visit::default()
    };
    let store = &mut fixture.store;
    visit::save(store, &visit_on(&overdue, "2024-06-01T09:00:00+08:00", Some("2024-06-10"))).unwrap();
    visit::save(store, &visit_on(&later, "2024-06-05T09:00:00+08:00", Some("2024-07-30"))).unwrap();
    visit::save(store, &visit_on(&revisited, "2024-06-01T09:00:00+08:00", Some("2024-06-08"))).unwrap();
    visit::save(store, &visit_on(&revisited, "2024-06-09T09:00:00+08:00", None)).unwrap();

    let due = visit::follow_ups_due(store, "2024-06-15", "2024-06-22").unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].head_name, "王小梅");
    assert_eq!(due[0].days_overdue, 5);
    let due = visit::follow_ups_due(store, "2024-06-15", "2024-08-01").unwrap();
    assert_eq!(due.iter().map(|follow_up| follow_up.head_name.as_str()).collect::<Vec<_>>(), vec!["王小梅", "李大山"]);
}

#[test]
fn checking_in_the_same_person_twice_or_on_two_devices_makes_one_row() {
    let mut first = Fixture::new();
    let mut second = Fixture::new();
    let session_on = |village: &str| TrainingSession {
        id: Some("0190a000-0000-7000-8000-00000000aaaa".into()),
        title: Some("直播带货入门".into()),
        topics: Some(vec![TrainingTopic::LiveStreaming, TrainingTopic::Photography]),
        format: Some(TrainingFormat::Classroom),
        date: Some("2024-05-10".into()),
        village_id: Some(village.into()),
        ..TrainingSession::default()
    };
    let mut attendance_ids = Vec::new();
    for fixture in [&mut first, &mut second] {
        // The same village, household and member arrive on both devices with the same ids, as
        // they would after a sync.
        let village = furrow::domain::village::save(
            &mut fixture.store,
            &furrow::domain::village::Village {
                id: Some("0190a000-0000-7000-8000-000000000001".into()),
                code: Some("522633101001".into()),
                name: Some("高坡村".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let household = household::save(
            &mut fixture.store,
            &Household { id: Some("0190a000-0000-7000-8000-000000000002".into()), attribute: Some(HouseholdAttribute::Dibao), ..common::household_draft(village.id.as_deref().unwrap(), "王小梅") },
        )
        .unwrap();
        let member = household::save_member(
            &mut fixture.store,
            &household::Member {
                id: Some("0190a000-0000-7000-8000-000000000003".into()),
                household_id: household.id.clone(),
                name: Some("王小梅".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let session = training::save_session(&mut fixture.store, &session_on(village.id.as_deref().unwrap())).unwrap();
        let member_id = member.id.unwrap();
        let session_id = session.id.unwrap();
        training::check_in(&mut fixture.store, &session_id, &[member_id.clone()], AttendanceStatus::Present).unwrap();
        training::check_in(&mut fixture.store, &session_id, &[member_id.clone()], AttendanceStatus::Late).unwrap();
        let rows = training::attendance(&fixture.store, &session_id).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status, Some(AttendanceStatus::Late));
        attendance_ids.push(rows[0].id.clone().unwrap());

        // Removing and re-adding revives the same row.
        training::remove_attendee(&mut fixture.store, &session_id, &member_id).unwrap();
        assert!(training::attendance(&fixture.store, &session_id).unwrap().is_empty());
        training::check_in(&mut fixture.store, &session_id, &[member_id.clone()], AttendanceStatus::Present).unwrap();
        assert_eq!(training::attendance(&fixture.store, &session_id).unwrap().len(), 1);

        let view = furrow::domain::household_view::view(&fixture.store, household.id.as_deref().unwrap()).unwrap();
        assert_eq!(view.trainings.len(), 1);
        assert_eq!(view.trainings[0].session.title.as_deref(), Some("直播带货入门"));
        assert_eq!(view.members.len(), 1);
    }
    assert_eq!(attendance_ids[0], attendance_ids[1], "both devices made the same attendance row");
}

#[test]
fn the_plain_roster_lists_new_households_before_the_search_index_catches_up() {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    for name in ["王小梅", "李大山", "张桂英"] {
        household::save(&mut fixture.store, &common::household_draft(&village, name)).unwrap();
    }
    let waiting = fixture.store.search_pending().unwrap();
    assert!(waiting >= 3, "the new households wait for their search documents ({waiting})");
    let mut all = search(&fixture, RosterQuery::default());
    all.sort();
    assert_eq!(all, vec!["张桂英", "李大山", "王小梅"]);
    let filtered = search(&fixture, RosterQuery { poverty_status: Some(PovertyStatus::NotExited), ..RosterQuery::default() });
    assert_eq!(filtered.len(), 3);
    assert_eq!(fixture.store.search_pending().unwrap(), waiting, "the plain roster leaves the index alone");
    // A text search brings the index up to date first, so it finds what was just added.
    assert_eq!(search(&fixture, text("桂英")), vec!["张桂英"]);
    assert_eq!(fixture.store.search_pending().unwrap(), 0);
}

#[test]
fn a_text_search_while_the_index_is_rebuilt_reads_the_households_and_finds_the_same() {
    use furrow::domain::household::SEARCH_FLUSH_AT_MOST;
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    let households = SEARCH_FLUSH_AT_MOST as usize + 200;
    fixture
        .store
        .write(|writer| {
            for index in 0..households {
                let mut fields = serde_json::Map::new();
                fields.insert("village_id".into(), json!(village));
                fields.insert("head_name".into(), json!(format!("{}{}", ["王", "李", "张"][index % 3], index)));
                fields.insert("phone".into(), json!(format!("139{:08}", index)));
                fields.insert("attribute".into(), json!("general"));
                fields.insert("poverty_status".into(), json!("not_exited"));
                let id = writer.save(&schema::HOUSEHOLDS, None, fields)?.id;
                if index == 777 {
                    let mut member = serde_json::Map::new();
                    member.insert("household_id".into(), json!(id));
                    member.insert("name".into(), json!("欧阳春花"));
                    member.insert("sex".into(), json!("female"));
                    member.insert("relation".into(), json!("daughter"));
                    writer.save(&schema::MEMBERS, None, member)?;
                }
            }
            Ok(())
        })
        .unwrap();
    let waiting = fixture.store.search_pending().unwrap();
    assert!(waiting > SEARCH_FLUSH_AT_MOST, "{waiting} households wait for their search documents");
    let queries = ["春花", "欧阳春花", "00000777", "李1", "高坡"];
    let mut while_waiting = Vec::new();
    for query in queries {
        let mut found = search(&fixture, RosterQuery { limit: Some(10_000), ..text(query) });
        found.sort();
        while_waiting.push(found);
    }
    assert_eq!(fixture.store.search_pending().unwrap(), waiting, "the searches did not wait for the rebuild");
    assert_eq!(while_waiting[0], vec!["王777"], "a member's given name");
    assert_eq!(while_waiting[1], vec!["王777"], "a member's full name");
    assert_eq!(while_waiting[2], vec!["王777"], "a phone fragment");
    assert_eq!(while_waiting[4].len(), households, "the village's name");

    fixture.store.flush_search_index().unwrap();
    for (query, before) in queries.iter().zip(&while_waiting) {
        let mut found = search(&fixture, RosterQuery { limit: Some(10_000), ..text(query) });
        found.sort();
        assert_eq!(&found, before, "{query}: the index finds what the scan found");
    }
}
