//! Excel exports read back with calamine as anyone opening them would see them: Chinese headers,
//! the rows, the header frozen, and identity card and phone numbers masked unless full numbers
//! were asked for; an exported roster (with full numbers) imports again unchanged.

mod common;

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};
use common::Fixture;
use furrow::codes::{AssessmentPhase, AttendanceStatus, IncomeCategory, RelationToHead, TrainingFormat, TrainingTopic, VisitType};
use furrow::domain::household::{self, Member};
use furrow::domain::income::{self, IncomeRecord};
use furrow::domain::training::{self, ScoreEntry, TrainingSession};
use furrow::domain::visit::{self, Visit};
use furrow::export::{self, ExportOptions};
use furrow::import::{self, ImportOptions};

const CARD: &str = "530724198001010016";

/// The cells of the only sheet of a workbook as text, row by row, and the sheet's name.
fn read(bytes: &[u8]) -> (String, Vec<Vec<String>>) {
    let mut book = Xlsx::new(Cursor::new(bytes.to_vec())).expect("an xlsx workbook");
    let name = book.sheet_names()[0].clone();
    let range = book.worksheet_range(&name).unwrap();
    let rows = range
        .rows()
        .map(|row| {
            row.iter()
                .map(|cell| match cell {
                    Data::Empty => String::new(),
                    Data::Float(number) if number.fract() == 0.0 => format!("{}", *number as i64),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    (name, rows)
}

/// The XML parts of a workbook (a zip archive), to see what a reader of cells cannot: frozen
/// panes, column widths, print settings.
fn zip_entries(bytes: &[u8]) -> std::collections::HashMap<String, String> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes.to_vec())).unwrap();
    let mut entries = std::collections::HashMap::new();
    for index in 0..archive.len() {
        let mut file = archive.by_index(index).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut file, &mut text).unwrap();
        entries.insert(file.name().unwrap().into_owned(), text);
    }
    entries
}

fn sheet_xml(bytes: &[u8]) -> String {
    zip_entries(bytes).remove("xl/worksheets/sheet1.xml").expect("the first sheet")
}

struct World {
    fixture: Fixture,
    household: String,
    head: String,
    session: String,
}

fn world() -> World {
    let mut fixture = Fixture::new();
    let village = fixture.village("530724100201", "青山村");
    let household = fixture.household(&village, "赵大海");
    let head = household::save_member(
        &mut fixture.store,
        &Member {
            household_id: Some(household.clone()),
            name: Some("赵大海".into()),
            relation: Some(RelationToHead::Head),
            id_card_no: Some(CARD.into()),
            phone: Some("13812345678".into()),
            ..Member::default()
        },
    )
    .unwrap()
    .id
    .unwrap();
    fixture.member(&household, "钱小红");
    let session = training::save_session(
        &mut fixture.store,
        &TrainingSession {
            title: Some("商品拍照".into()),
            topics: Some(vec![TrainingTopic::Photography]),
            format: Some(TrainingFormat::Classroom),
            date: Some("2024-06-05".into()),
            location: Some("村委会".into()),
            village_id: Some(village),
            ..TrainingSession::default()
        },
    )
    .unwrap()
    .id
    .unwrap();
    training::check_in(&mut fixture.store, &session, &[head.clone()], AttendanceStatus::Present).unwrap();
    training::save_scores(&mut fixture.store, &session, AssessmentPhase::Pre, "2024-06-05", &[ScoreEntry { member_id: head.clone(), topic: TrainingTopic::Photography, score: Some(62) }]).unwrap();
    World { fixture, household, head, session }
}

#[test]
fn the_roster_is_exported_with_chinese_headers_masked_numbers_and_a_frozen_header() {
    let world = world();
    let bytes = export::roster(&world.fixture.store, &ExportOptions::default()).unwrap();
    let (name, rows) = read(&bytes);
    assert_eq!(name, "花名册");
    assert_eq!(rows[0], export::ROSTER_HEADERS.iter().map(|text| text.to_string()).collect::<Vec<_>>());
    assert_eq!(rows.len(), 3, "one row per member");
    let column = |header: &str| export::ROSTER_HEADERS.iter().position(|known| *known == header).unwrap();
    let head = rows.iter().find(|row| row[column("姓名")] == "赵大海").unwrap();
    assert_eq!(head[column("身份证号")], "5307**********0016");
    assert_eq!(head[column("手机号")], "138****5678");
    assert_eq!(head[column("联系电话")], "138****8000");
    assert_eq!(head[column("与户主关系")], "本人或户主");
    assert_eq!(head[column("行政村")], "青山村");
    assert_eq!(rows[1][column("姓名")], "赵大海", "the head comes first");
    let xml = sheet_xml(&bytes);
    assert!(xml.contains(r#"state="frozen""#) && xml.contains(r#"topLeftCell="A2""#), "the header row is frozen");
    assert!(xml.contains("customWidth=\"1\""), "the columns are sized to their contents");

    let full = export::roster(&world.fixture.store, &ExportOptions { full_numbers: true }).unwrap();
    let (_, rows) = read(&full);
    let head = rows.iter().find(|row| row[column("姓名")] == "赵大海").unwrap();
    assert_eq!(head[column("身份证号")], CARD);
    assert_eq!(head[column("手机号")], "13812345678");
}

#[test]
fn an_exported_roster_with_full_numbers_imports_again_unchanged() {
    let mut world = world();
    let bytes = export::roster(&world.fixture.store, &ExportOptions { full_numbers: true }).unwrap();
    let before = world.fixture.fingerprint();
    let preview = import::preview(&world.fixture.store, "花名册.xlsx", &bytes, &ImportOptions::default()).unwrap();
    assert_eq!(preview.counts.rows_with_errors, 0, "{:?}", preview.rows);
    assert_eq!(preview.counts.households_existing, 1);
    let summary = import::run(&mut world.fixture.store, "花名册.xlsx", &bytes, &preview.options, &mut |_| {}).unwrap();
    assert_eq!(summary.import_id, None);
    assert_eq!(world.fixture.fingerprint(), before);
    let _ = &world.household;
}

#[test]
fn a_sessions_sign_in_sheet_is_printable_with_room_to_sign() {
    let world = world();
    let bytes = export::sign_in_sheet(&world.fixture.store, &world.session, &ExportOptions::default()).unwrap();
    let (name, rows) = read(&bytes);
    assert_eq!(name, "签到表");
    assert!(rows[0][0].contains("培训签到表") && rows[0][0].contains("商品拍照"));
    assert!(rows[1][0].contains("2024-06-05") && rows[1][0].contains("村委会"));
    assert_eq!(rows[2], ["序号", "姓名", "户主", "村", "身份证号", "手机号", "出勤", "签名"]);
    assert_eq!(rows[3][1], "赵大海");
    assert_eq!(rows[3][4], "5307**********0016");
    assert_eq!(rows[3][6], "出席");
    assert_eq!(rows.len(), 3 + 1 + 5, "blank numbered rows follow for walk-ins");
    let entries = zip_entries(&bytes);
    let sheet = &entries["xl/worksheets/sheet1.xml"];
    assert!(sheet.contains("paperSize=\"9\"") && sheet.contains("fitToPage=\"1\""), "A4, one page wide: {sheet}");
    assert!(entries["xl/workbook.xml"].contains("_xlnm.Print_Titles"), "the header rows repeat on every page");
    let _ = &world.head;
}

#[test]
fn scores_visits_and_income_are_exported() {
    let mut world = world();
    let (name, rows) = read(&export::scores(&world.fixture.store, Some(&world.session), &ExportOptions::default()).unwrap());
    assert_eq!(name, "成绩");
    assert_eq!(rows[0], ["培训", "培训日期", "姓名", "户主", "村", "技能", "阶段", "分数", "测评日期"]);
    assert_eq!(rows[1][2..8], ["赵大海", "赵大海", "青山村", "商品拍照与主图", "培训前", "62"]);

    visit::save(
        &mut world.fixture.store,
        &Visit {
            household_id: Some(world.household.clone()),
            visit_type: Some(VisitType::Home),
            visited_at: Some("2024-06-06T10:00:00+08:00".into()),
            summary: Some("核桃长势好".into()),
            ..Visit::default()
        },
    )
    .unwrap();
    let (name, rows) = read(&export::visits(&world.fixture.store, &ExportOptions::default()).unwrap());
    assert_eq!(name, "帮扶记录");
    assert_eq!(rows[0][0], "走访时间");
    assert_eq!(rows[1][0], "2024-06-06 10:00");
    assert_eq!(rows[1][4], "138****8000");
    assert_eq!(rows[1][8], "核桃长势好");

    let first = income::record(
        &mut world.fixture.store,
        &IncomeRecord {
            household_id: Some(world.household.clone()),
            year: Some(2024),
            category: Some(IncomeCategory::Wage),
            amount_fen: Some(1_234_567),
            recorded_on: Some("2024-06-06".into()),
            ..IncomeRecord::default()
        },
    )
    .unwrap();
    income::correct(
        &mut world.fixture.store,
        first.id.as_deref().unwrap(),
        &IncomeRecord { amount_fen: Some(1_200_005), ..first.clone() },
    )
    .unwrap();
    let (name, rows) = read(&export::income(&world.fixture.store, &ExportOptions::default()).unwrap());
    assert_eq!(name, "收入");
    assert_eq!(rows[0][10], "金额（元）");
    assert_eq!(rows.len(), 3);
    let amounts: Vec<(&str, &str)> = rows[1..].iter().map(|row| (row[10].as_str(), row[15].as_str())).collect();
    assert!(amounts.contains(&("12345.67", "已被更正")), "{amounts:?}");
    assert!(amounts.contains(&("12000.05", "有效")), "{amounts:?}");
}
