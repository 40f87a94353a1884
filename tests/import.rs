//! Importing a 建档立卡 roster from real files made here (.xlsx with rust_xlsxwriter, CSV in GBK)
//! or checked in (.xls, an encrypted .xlsx; tests/fixtures/make_fixtures.py writes them): the
//! preview writes nothing and names each bad cell as Excel does; the import writes every valid
//! row; a bad file is refused with a clear message and writes nothing; importing the same file
//! again changes nothing; an import is undone as a whole while unsent.

mod common;

use common::Fixture;
use furrow::domain::household;
use furrow::import::{self, DuplicateChoice, ImportOptions, MatchReason, RowStatus};
use furrow::Error;
use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook};

/// A valid identity card number of Ninglang county for a birth date and a sequence.
fn id_card(birth: &str, sequence: &str) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let body = format!("530724{birth}{sequence}");
    let sum: u32 = body.bytes().zip(WEIGHTS).map(|(digit, weight)| u32::from(digit - b'0') * weight).sum();
    format!("{body}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

const HEADERS: &[&str] = &["序号", "姓名", "与户主关系", "身份证号", "户编号", "户主姓名", "贫困户属性", "脱贫状态", "联系电话", "主要致贫原因", "出生日期"];

/// The roster as a county office hands it out: a merged title row above the header, columns in
/// their own order, three households; row 6 has a wrong card number (its check digit) and row 8
/// a relation no one uses.
fn roster_rows() -> Vec<Vec<String>> {
    let rows = [
        ["1", "赵大海", "户主", &id_card("19800101", "001"), "X001", "赵大海", "一般贫困户", "未脱贫", "138 1234 5678", "因病", ""],
        ["2", "钱小红", "配偶", &id_card("19820305", "002"), "X001", "赵大海", "一般贫困户", "未脱贫", "", "", ""],
        ["3", "赵小明", "之子", "", "X001", "赵大海", "一般贫困户", "未脱贫", "", "", "2010/6/1"],
        ["4", "孙二", "户主", "530724198001010019", "X002", "孙二", "低保贫困户", "已脱贫", "13900001111", "缺技术", ""],
        ["5", "孙小妹", "之女", "", "X002", "孙二", "低保贫困户", "已脱贫", "", "", "2012-09-09"],
        ["6", "李四", "表亲", "", "X003", "李四", "一般贫困户", "未脱贫", "", "", ""],
    ];
    rows.iter().map(|row| row.iter().map(|cell| cell.to_string()).collect()).collect()
}

fn roster_xlsx(rows: &[Vec<String>]) -> Vec<u8> {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("花名册").unwrap();
    sheet.merge_range(0, 0, 0, HEADERS.len() as u16 - 1, "青山村建档立卡户花名册", &Format::new()).unwrap();
    for (column, header) in HEADERS.iter().enumerate() {
        sheet.write_string(1, column as u16, *header).unwrap();
    }
    for (index, row) in rows.iter().enumerate() {
        for (column, value) in row.iter().enumerate() {
            if !value.is_empty() {
                sheet.write_string(2 + index as u32, column as u16, value).unwrap();
            }
        }
    }
    book.save_to_buffer().unwrap()
}

fn fixture() -> (Fixture, String) {
    let mut fixture = Fixture::new();
    let village = fixture.village("530724100201", "青山村");
    (fixture, village)
}

fn live(fixture: &Fixture, table: &str) -> i64 {
    fixture.count(&format!("SELECT count(*) FROM {table} WHERE deleted = 0"))
}

fn file_error(result: furrow::Result<impl std::fmt::Debug>) -> (String, String, String) {
    match result {
        Err(Error::File { code, message_zh, message_en }) => (code.to_owned(), message_zh, message_en),
        other => panic!("expected the file to be refused, got {other:?}"),
    }
}

#[test]
fn an_xlsx_roster_is_previewed_without_writing_then_every_valid_row_is_imported() {
    let (mut fixture, _) = fixture();
    let bytes = roster_xlsx(&roster_rows());
    let before = fixture.fingerprint();
    let preview = import::preview(&fixture.store, "花名册.xlsx", &bytes, &ImportOptions::default()).unwrap();
    assert_eq!(fixture.fingerprint(), before, "a preview writes nothing");

    assert_eq!(preview.format, "xlsx");
    assert_eq!(preview.header_row, 2, "the merged title row above the header is passed over");
    let field_of = |letter: &str| preview.columns.iter().find(|column| column.letter == letter).and_then(|column| column.field.clone());
    assert_eq!(field_of("A"), None, "序号 is not imported");
    assert_eq!(field_of("B").as_deref(), Some("name"));
    assert_eq!(field_of("D").as_deref(), Some("id_card_no"));
    assert_eq!(field_of("E").as_deref(), Some("register_no"));
    assert_eq!(field_of("I").as_deref(), Some("household_phone"));
    assert!(preview.missing.is_empty(), "{:?}", preview.missing);

    let counts = &preview.counts;
    assert_eq!((counts.rows, counts.rows_to_import, counts.rows_with_errors), (6, 4, 2));
    assert_eq!((counts.households, counts.households_new, counts.households_with_errors), (3, 2, 1));
    let card = preview.rows.iter().find(|row| row.row == 6).unwrap();
    assert_eq!(card.status, RowStatus::Error);
    assert_eq!(card.issues[0].column.as_deref(), Some("D"));
    assert!(card.issues[0].message_zh.starts_with("「花名册」第 6 行 D 列（身份证号）："), "{}", card.issues[0].message_zh);
    assert!(card.issues[0].message_en.starts_with("Sheet \"花名册\", row 6, column D (ID card number): "), "{}", card.issues[0].message_en);
    let relation = preview.rows.iter().find(|row| row.row == 8).unwrap();
    assert_eq!(relation.issues[0].code, "unknown_value");
    assert!(relation.issues[0].message_zh.contains("第 8 行 C 列") && relation.issues[0].message_zh.contains("表亲"));

    let mut seen = Vec::new();
    let summary = import::run(&mut fixture.store, "花名册.xlsx", &bytes, &preview.options, &mut |progress| seen.push(progress)).unwrap();
    assert_eq!((summary.households_created, summary.members_created, summary.rows_not_imported), (2, 4, 2));
    assert!(summary.import_id.is_some());
    let last = seen.last().unwrap();
    assert_eq!(last.rows_done, last.rows_total);
    assert_eq!(live(&fixture, "households"), 2);
    assert_eq!(live(&fixture, "members"), 4);

    let found = household::search(&fixture.store, &household::RosterQuery { text: Some("赵大海".into()), ..Default::default() }).unwrap();
    let zhao = household::get(&fixture.store, &found[0].id).unwrap();
    assert_eq!(zhao.register_no.as_deref(), Some("X001"));
    assert_eq!(zhao.phone.as_deref(), Some("13812345678"), "the phone is stored tidied, as the form stores it");
    let members = household::members(&fixture.store, &found[0].id).unwrap();
    assert_eq!(members[0].name.as_deref(), Some("赵大海"));
    assert_eq!(members[0].birth_date.as_deref(), Some("1980-01-01"), "the birth date comes from the card");
    assert!(members.iter().any(|member| member.birth_date.as_deref() == Some("2010-06-01")));
    // Every written field is queued for sync, as through the forms.
    assert!(fixture.count("SELECT count(*) FROM sync_outbox WHERE tbl = 'members'") >= 4 * 3);
}

#[test]
fn importing_the_same_file_again_changes_nothing() {
    let (mut fixture, _) = fixture();
    let bytes = roster_xlsx(&roster_rows());
    import::run(&mut fixture.store, "花名册.xlsx", &bytes, &ImportOptions::default(), &mut |_| {}).unwrap();
    let before = fixture.fingerprint();
    let preview = import::preview(&fixture.store, "花名册.xlsx", &bytes, &ImportOptions::default()).unwrap();
    assert_eq!(preview.counts.households_existing, 3 - 1, "both imported households are found on the device");
    assert!(preview.existing.iter().all(|existing| existing.reason == MatchReason::SameRegisterNo));
    let again = import::run(&mut fixture.store, "花名册.xlsx", &bytes, &ImportOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(again.import_id, None, "nothing changed, so there is no import to undo");
    assert_eq!((again.households_updated, again.members_updated, again.members_created), (0, 0, 0));
    assert_eq!(fixture.fingerprint(), before);
    assert_eq!(import::imports(&fixture.store).unwrap().len(), 1);
}

#[test]
fn a_household_on_the_device_is_updated_skipped_or_kept_as_chosen_once() {
    let (mut fixture, village) = fixture();
    let mut existing = common::household_draft(&village, "赵老大");
    existing.register_no = Some("X001".into());
    let existing = household::save(&mut fixture.store, &existing).unwrap().id.unwrap();
    let bytes = roster_xlsx(&roster_rows()[..3]);

    let skip = ImportOptions { duplicates: DuplicateChoice::Skip, ..ImportOptions::default() };
    let preview = import::preview(&fixture.store, "花名册.xlsx", &bytes, &skip).unwrap();
    assert_eq!(preview.existing[0].existing_head_name, "赵老大");
    assert!(preview.rows.iter().all(|row| row.status == RowStatus::Skip));
    let before = fixture.fingerprint();
    import::run(&mut fixture.store, "花名册.xlsx", &bytes, &skip, &mut |_| {}).unwrap();
    assert_eq!(fixture.fingerprint(), before, "skipping leaves the household as it was");

    import::run(&mut fixture.store, "花名册.xlsx", &bytes, &ImportOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(household::get(&fixture.store, &existing).unwrap().head_name.as_deref(), Some("赵大海"));
    assert_eq!(household::members(&fixture.store, &existing).unwrap().len(), 3);
    assert_eq!(live(&fixture, "households"), 1);

    let keep = ImportOptions { duplicates: DuplicateChoice::KeepBoth, ..ImportOptions::default() };
    import::run(&mut fixture.store, "花名册.xlsx", &bytes, &keep, &mut |_| {}).unwrap();
    assert_eq!(fixture.count("SELECT count(*) FROM households WHERE deleted = 0 AND register_no = 'X001'"), 2);
}

#[test]
fn an_import_is_undone_as_a_whole_but_what_was_sent_stays() {
    let (mut fixture, _) = fixture();
    let bytes = roster_xlsx(&roster_rows());
    let summary = import::run(&mut fixture.store, "花名册.xlsx", &bytes, &ImportOptions::default(), &mut |_| {}).unwrap();
    let report = import::undo(&mut fixture.store, summary.import_id.as_deref().unwrap()).unwrap();
    assert_eq!((report.households_removed, report.members_removed, report.records_kept), (2, 4, 0));
    assert_eq!(live(&fixture, "households"), 0);
    assert_eq!(live(&fixture, "members"), 0);
    let (code, zh, _) = file_error(import::undo(&mut fixture.store, summary.import_id.as_deref().unwrap()));
    assert_eq!(code, "already_undone");
    assert!(zh.contains("已经撤销"));

    // Imported again, and one household's changes are on their way to the server: undoing
    // leaves that household and takes the rest.
    let summary = import::run(&mut fixture.store, "花名册.xlsx", &bytes, &ImportOptions::default(), &mut |_| {}).unwrap();
    let sent: String = rusqlite::Connection::open(fixture.path())
        .unwrap()
        .query_row("SELECT id FROM households WHERE deleted = 0 AND register_no = 'X001'", [], |row| row.get(0))
        .unwrap();
    rusqlite::Connection::open(fixture.path()).unwrap().execute("UPDATE sync_outbox SET batch_id = x'01' WHERE row_id = ?1", [&sent]).unwrap();
    let records = import::imports(&fixture.store).unwrap();
    assert_eq!(records[0].records_sent, 1);
    let report = import::undo(&mut fixture.store, summary.import_id.as_deref().unwrap()).unwrap();
    assert_eq!(report.households_removed, 1);
    assert_eq!(report.records_kept, 1);
    assert_eq!(fixture.count("SELECT count(*) FROM households WHERE deleted = 0"), 1);
    assert_eq!(household::get(&fixture.store, &sent).unwrap().register_no.as_deref(), Some("X001"));
}

#[test]
fn a_csv_saved_by_excel_in_gbk_is_read() {
    let (mut fixture, _) = fixture();
    let mut text = String::from("户编号,户主姓名,姓名,与户主关系,身份证号,贫困户属性,脱贫状态\r\n");
    text.push_str(&format!("C01,周大山,周大山,户主,{},一般贫困户,未脱贫\r\n", id_card("19700707", "011")));
    text.push_str("C01,周大山,吴桂兰,妻,,一般贫困户,未脱贫\r\n");
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(&text);
    assert!(!unmappable);
    assert!(std::str::from_utf8(&bytes).is_err(), "the file is really GBK");
    let preview = import::preview(&fixture.store, "周家.csv", &bytes, &ImportOptions::default()).unwrap();
    assert_eq!((preview.format.as_str(), preview.encoding.as_deref(), preview.sheet.as_str()), ("csv", Some("GBK"), "周家"));
    assert_eq!(preview.counts.rows_to_import, 2);
    import::run(&mut fixture.store, "周家.csv", &bytes, &preview.options, &mut |_| {}).unwrap();
    assert_eq!(fixture.count("SELECT count(*) FROM members WHERE name IN ('周大山', '吴桂兰') AND deleted = 0"), 2);

    // The same roster in UTF-8 with a byte-order mark is the same roster.
    let utf8 = [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat();
    let preview = import::preview(&fixture.store, "周家.csv", &utf8, &ImportOptions::default()).unwrap();
    assert_eq!(preview.encoding.as_deref(), Some("UTF-8"));
    assert_eq!(preview.counts.households_existing, 1);
}

#[test]
fn an_xls_file_of_excel_97_is_read_with_its_serial_dates() {
    let (mut fixture, _) = fixture();
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/roster.xls")).unwrap();
    let preview = import::preview(&fixture.store, "roster.xls", &bytes, &ImportOptions::default()).unwrap();
    assert_eq!(preview.format, "xls");
    assert_eq!(preview.header_row, 2);
    let future = preview.rows.iter().find(|row| row.row == 6).unwrap();
    assert_eq!(future.issues[0].code, "in_future", "a birth date in 2099 is refused: {:?}", future.issues);
    assert!(future.issues[0].message_zh.contains("第 6 行 K 列"));
    import::run(&mut fixture.store, "roster.xls", &bytes, &preview.options, &mut |_| {}).unwrap();
    let born: String = rusqlite::Connection::open(fixture.path())
        .unwrap()
        .query_row("SELECT birth_date FROM members WHERE name = '钱小红'", [], |row| row.get(0))
        .unwrap();
    assert_eq!(born, "1981-01-01", "the serial number 29587 is a date");
    assert_eq!(live(&fixture, "members"), 3);
}

#[test]
fn dates_stored_as_serial_numbers_and_formulas_with_results_are_understood() {
    let (mut fixture, _) = fixture();
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    for (column, header) in ["户编号", "姓名", "与户主关系", "出生日期", "贫困户属性", "脱贫状态"].iter().enumerate() {
        sheet.write_string(0, column as u16, *header).unwrap();
    }
    let rows = [("D1", "马一", "户主"), ("D1", "马二", "之子"), ("D1", "马三", "之女"), ("D1", "马四", "之女")];
    for (index, (register, name, relation)) in rows.iter().enumerate() {
        let row = index as u32 + 1;
        sheet.write_string(row, 0, *register).unwrap();
        sheet.write_string(row, 1, *name).unwrap();
        sheet.write_string(row, 2, *relation).unwrap();
        sheet.write_string(row, 4, "一般贫困户").unwrap();
        sheet.write_string(row, 5, "未脱贫").unwrap();
    }
    sheet.write_number(1, 3, 29221.0).unwrap(); // a serial number without a date format
    let date = Format::new().set_num_format("yyyy-mm-dd");
    sheet.write_datetime_with_format(2, 3, ExcelDateTime::from_ymd(2005, 5, 4).unwrap(), &date).unwrap();
    sheet.write_formula(3, 3, Formula::new("=DATE(2008,8,8)").set_result("2008-08-08")).unwrap();
    sheet.write_formula(4, 3, Formula::new("=1/0").set_result("#DIV/0!")).unwrap();
    let bytes = book.save_to_buffer().unwrap();

    let preview = import::preview(&fixture.store, "马家.xlsx", &bytes, &ImportOptions::default()).unwrap();
    let broken = preview.rows.iter().find(|row| row.row == 5).unwrap();
    assert_eq!(broken.issues[0].code, "formula_without_value");
    assert!(broken.issues[0].message_zh.contains("第 5 行 D 列") && broken.issues[0].message_zh.contains("公式"));
    import::run(&mut fixture.store, "马家.xlsx", &bytes, &preview.options, &mut |_| {}).unwrap();
    let conn = rusqlite::Connection::open(fixture.path()).unwrap();
    let born = |name: &str| -> String { conn.query_row("SELECT birth_date FROM members WHERE name = ?1", [name], |row| row.get(0)).unwrap() };
    assert_eq!(born("马一"), "1980-01-01");
    assert_eq!(born("马二"), "2005-05-04");
    assert_eq!(born("马三"), "2008-08-08");
    assert_eq!(live(&fixture, "members"), 3, "the row whose formula has no result is not imported");
}

#[test]
fn a_changed_mapping_is_used_and_a_village_column_is_looked_up() {
    let (mut fixture, _) = fixture();
    fixture.village("530724100202", "石门村");
    let text = "户编号,村,户主,人员,贫困户属性,脱贫状态\nV1,石门村,王五,王五,一般贫困户,未脱贫\nV2,白云村,陈六,陈六,一般贫困户,未脱贫\n";
    let preview = import::preview(&fixture.store, "村.csv", text.as_bytes(), &ImportOptions::default()).unwrap();
    assert_eq!(preview.columns[3].field, None, "人员 is not a header the guess knows");
    let mut mapping = preview.options.mapping.clone().unwrap();
    mapping[3] = Some("name".into());
    let options = ImportOptions { mapping: Some(mapping), ..preview.options.clone() };
    let preview = import::preview(&fixture.store, "村.csv", text.as_bytes(), &options).unwrap();
    assert!(preview.missing.is_empty());
    assert_eq!(preview.columns[3].field.as_deref(), Some("name"));
    let unknown = preview.rows.iter().find(|row| row.row == 3).unwrap();
    assert_eq!(unknown.issues[0].code, "unknown_village");
    assert!(unknown.issues[0].message_zh.contains("白云村") && unknown.issues[0].message_zh.contains("石门村"));
    import::run(&mut fixture.store, "村.csv", text.as_bytes(), &options, &mut |_| {}).unwrap();
    let village: String = rusqlite::Connection::open(fixture.path())
        .unwrap()
        .query_row("SELECT v.name FROM households h JOIN villages v ON v.id = h.village_id WHERE h.register_no = 'V1'", [], |row| row.get(0))
        .unwrap();
    assert_eq!(village, "石门村");
}

#[test]
fn a_bad_file_is_refused_with_a_clear_message_and_writes_nothing() {
    let (mut fixture, _) = fixture();
    let before = fixture.fingerprint();
    let store = &mut fixture.store;
    let mut refuse = |name: &str, bytes: &[u8]| -> (String, String, String) {
        let preview = file_error(import::preview(store, name, bytes, &ImportOptions::default()));
        let run = file_error(import::run(store, name, bytes, &ImportOptions::default(), &mut |_| {}));
        assert_eq!(preview, run);
        preview
    };

    let (code, zh, en) = refuse("照片.xlsx", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10");
    assert_eq!(code, "not_a_spreadsheet");
    assert!(zh.contains("不是 Excel 或 CSV 文件") && en.contains("not an Excel or CSV file"));

    let locked = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/roster-password.xlsx")).unwrap();
    let (code, zh, _) = refuse("花名册.xlsx", &locked);
    assert_eq!(code, "password_protected");
    assert!(zh.contains("密码"));

    assert_eq!(refuse("空.xlsx", b"").0, "empty");
    let mut book = Workbook::new();
    book.add_worksheet();
    assert_eq!(refuse("空.xlsx", &book.save_to_buffer().unwrap()).0, "empty");
    assert_eq!(refuse("表头.csv", "户编号,姓名,身份证号\n".as_bytes()).0, "empty");

    let mut huge = String::from("户编号,姓名,与户主关系\n");
    for index in 0..100_000 {
        huge.push_str(&format!("H{index},人{index},户主\n"));
    }
    let (code, zh, _) = refuse("全县.csv", huge.as_bytes());
    assert_eq!(code, "too_many_rows");
    assert!(zh.contains("50000") || zh.contains("50,000"), "{zh}");
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    for (column, header) in ["户编号", "姓名", "与户主关系"].iter().enumerate() {
        sheet.write_string(0, column as u16, *header).unwrap();
    }
    for row in 1..=100_000u32 {
        sheet.write_string(row, 0, "H1").unwrap();
        sheet.write_string(row, 1, "某人").unwrap();
        sheet.write_string(row, 2, "之子").unwrap();
    }
    let (code, _, en) = refuse("全县.xlsx", &book.save_to_buffer().unwrap());
    assert_eq!(code, "too_many_rows");
    assert!(en.contains("100001 rows") && en.contains("split the roster"), "{en}");

    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("花名册").unwrap();
    sheet.merge_range(0, 0, 0, 1, "户编号", &Format::new()).unwrap();
    sheet.write_string(0, 2, "姓名").unwrap();
    sheet.write_string(0, 3, "身份证号").unwrap();
    sheet.write_string(1, 0, "M1").unwrap();
    sheet.write_string(1, 1, "M1-2").unwrap();
    sheet.write_string(1, 2, "某人").unwrap();
    let (code, zh, en) = refuse("合并.xlsx", &book.save_to_buffer().unwrap());
    assert_eq!(code, "merged_header");
    assert!(zh.contains("A 列到 B 列") && zh.contains("取消合并"), "{zh}");
    assert!(en.contains("columns A to B"), "{en}");

    assert_eq!(refuse("说明.csv", "这是一份说明\n没有表格\n".as_bytes()).0, "no_header");
    assert_eq!(fixture.fingerprint(), before, "nothing was written");
}
