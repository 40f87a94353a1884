//! Excel benchmark: a roster of 10,000 households with 35,000 members, written as an .xlsx file
//! the way a county office hands one out (one row per person), previewed and imported into a
//! fresh store through the write path (rows per second), then the roster exported again
//! (seconds). Prints figures; run with `cargo bench --bench excel`.

use std::time::Instant;

use furrow::export::{self, ExportOptions};
use furrow::import::{self, ImportOptions};
use furrow::{OpenOptions, Store};
use rust_xlsxwriter::Workbook;

const HOUSEHOLDS: usize = 10_000;
const MEMBERS: usize = 35_000;
const SURNAMES: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭"];
const GIVEN: &[&str] = &["小", "梅", "建", "国", "桂", "英", "大", "山", "秀", "兰", "明", "华", "春", "生", "玉", "芳"];
const RELATIONS: &[&str] = &["配偶", "之子", "之女", "之母"];

/// A valid identity card number for a region, a birth date and a sequence; the generated ones
/// are all different.
fn id_card(region: &str, birth: &str, sequence: usize) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let body = format!("{region}{birth}{:03}", sequence % 1000);
    let sum: u32 = body.bytes().zip(WEIGHTS).map(|(digit, weight)| u32::from(digit - b'0') * weight).sum();
    format!("{body}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

fn roster() -> Vec<u8> {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name("花名册").unwrap();
    let headers = ["序号", "户编号", "户主姓名", "姓名", "与户主关系", "身份证号", "贫困户属性", "脱贫状态", "联系电话", "主要致贫原因"];
    for (column, header) in headers.iter().enumerate() {
        sheet.write_string(0, column as u16, *header).unwrap();
    }
    let mut row = 1u32;
    for household in 0..HOUSEHOLDS {
        // 3.5 members on average: households of 3 and 4 alternate.
        let size = if household % 2 == 0 { 3 } else { 4 };
        let surname = SURNAMES[household % SURNAMES.len()];
        let head = format!("{surname}{}{}", GIVEN[household % GIVEN.len()], GIVEN[(household / 16) % GIVEN.len()]);
        for index in 0..size {
            let name = if index == 0 { head.clone() } else { format!("{surname}{}", GIVEN[(household + index * 7) % GIVEN.len()]) };
            let year = 1950 + (household + index * 13) % 60;
            let birth = format!("{year}{:02}{:02}", 1 + household % 12, 1 + index * 5 + household % 5);
            let values = [
                row.to_string(),
                format!("H{household:06}"),
                head.clone(),
                name,
                if index == 0 { "户主".to_owned() } else { RELATIONS[(index - 1) % RELATIONS.len()].to_owned() },
                id_card(&format!("5307{:02}", (household / 1000) % 100), &birth, household * 4 + index),
                ["一般贫困户", "低保贫困户"][household % 2].to_owned(),
                ["未脱贫", "已脱贫"][household % 2].to_owned(),
                if index == 0 { format!("138{household:08}") } else { String::new() },
                ["因病", "缺技术", "缺资金"][household % 3].to_owned(),
            ];
            for (column, value) in values.iter().enumerate() {
                if !value.is_empty() {
                    sheet.write_string(row, column as u16, value).unwrap();
                }
            }
            row += 1;
        }
    }
    book.save_to_buffer().unwrap()
}

fn main() {
    let bytes = roster();
    let directory = tempfile::tempdir().unwrap();
    let mut store = Store::open(&OpenOptions::file(directory.path().join("furrow.db"))).unwrap();
    let village = furrow::domain::village::Village { code: Some("530724100201".into()), name: Some("青山村".into()), ..Default::default() };
    furrow::domain::village::save(&mut store, &village).unwrap();

    let started = Instant::now();
    let preview = import::preview(&store, "花名册.xlsx", &bytes, &ImportOptions::default()).unwrap();
    let previewed = started.elapsed();
    assert_eq!(preview.counts.rows as usize, (HOUSEHOLDS / 2) * 7, "every generated row is read");
    assert_eq!(preview.counts.rows_with_errors, 0, "{:?}", preview.rows.iter().find(|row| !row.issues.is_empty()));
    let started = Instant::now();
    let summary = import::run(&mut store, "花名册.xlsx", &bytes, &preview.options, &mut |_| {}).unwrap();
    let imported = started.elapsed();
    assert_eq!(summary.households_created as usize, HOUSEHOLDS);
    assert_eq!(summary.members_created as usize, MEMBERS);
    let rows = preview.counts.rows as f64;
    println!("excel import: {HOUSEHOLDS} households, {MEMBERS} members ({rows} rows, {:.1} MB xlsx)", bytes.len() as f64 / 1e6);
    println!("  preview (read, check, match)   {:>8.2} s  {:>8.0} rows/s", previewed.as_secs_f64(), rows / previewed.as_secs_f64());
    println!("  import (preview + write path)  {:>8.2} s  {:>8.0} rows/s", imported.as_secs_f64(), rows / imported.as_secs_f64());

    let started = Instant::now();
    let written = export::roster(&store, &ExportOptions::default()).unwrap();
    let exported = started.elapsed();
    println!("excel export of the roster: {:.2} s ({:.1} MB xlsx)", exported.as_secs_f64(), written.len() as f64 / 1e6);
}
