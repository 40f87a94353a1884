//! The sheets of one session or one kind of record: a session's sign-in sheet to print, scores,
//! visits (帮扶记录) and income.

use rust_xlsxwriter::{Format, FormatAlign};

use super::{label, labels, workbook, write_table, xlsx, ExportOptions, Out};
use crate::codes;
use crate::domain::training;
use crate::error::Result;
use crate::store::Store;

/// Blank numbered rows at the end of a sign-in sheet, for people who come without being listed.
const BLANK_ROWS: usize = 5;

/// A session's sign-in sheet (签到表) to print and sign: the session's title and facts above, one
/// row per person checked in (or listed) with room to sign, and blank rows for walk-ins. A4
/// upright, one page wide, the header rows on every printed page.
pub fn sign_in_sheet(store: &Store, session_id: &str, options: &ExportOptions) -> Result<Vec<u8>> {
    let session = training::get_session(store, session_id)?;
    let attendees = training::attendees(store, session_id)?;
    let mut card = store.conn().prepare_cached("SELECT id_card_no, phone FROM members WHERE id = ?1")?;
    let mut rows = Vec::new();
    for (index, attendee) in attendees.iter().enumerate() {
        let (id_card, phone): (Option<String>, Option<String>) =
            card.query_row([&attendee.member_id], |row| Ok((row.get(0)?, row.get(1)?))).unwrap_or((None, None));
        rows.push(vec![
            Out::Whole(Some(index as i64 + 1)),
            attendee.member_name.clone().into(),
            attendee.head_name.clone().into(),
            attendee.village_name.clone().into(),
            options.id_card(id_card).into(),
            options.phone(phone).into(),
            label(&codes::AttendanceStatus::DEF, Some(attendee.status.code())).into(),
            Out::Text(None),
        ]);
    }
    for index in 0..BLANK_ROWS {
        let mut blank = vec![Out::Whole(Some((attendees.len() + index) as i64 + 1))];
        blank.extend((0..7).map(|_| Out::Text(None)));
        rows.push(blank);
    }
    let title = format!("培训签到表：{}", session.title.clone().unwrap_or_default());
    let village = match &session.village_id {
        Some(id) => crate::domain::village::get(store, id).ok().and_then(|village| village.name),
        None => None,
    };
    let facts = format!(
        "日期：{}　{}　地点：{}　讲师：{}　主题：{}",
        session.date.clone().unwrap_or_default(),
        session.start_time.clone().unwrap_or_default(),
        [village, session.location.clone()].into_iter().flatten().collect::<Vec<_>>().join(" "),
        session.trainer.clone().unwrap_or_default(),
        session.topics.clone().unwrap_or_default().iter().map(|topic| label(&codes::TrainingTopic::DEF, Some(topic.code())).unwrap_or_default()).collect::<Vec<_>>().join("、"),
    );
    let headers = ["序号", "姓名", "户主", "村", "身份证号", "手机号", "出勤", "签名"];
    workbook("签到表", |sheet| {
        let title_format = Format::new().set_bold().set_font_size(16).set_align(FormatAlign::Center);
        let facts_format = Format::new().set_align(FormatAlign::Left);
        sheet.merge_range(0, 0, 0, 7, &title, &title_format).map_err(xlsx)?;
        sheet.merge_range(1, 0, 1, 7, &facts, &facts_format).map_err(xlsx)?;
        sheet.set_row_height(0, 28).map_err(xlsx)?;
        write_table(sheet, 2, &headers, &rows, true)?;
        for row in 0..rows.len() {
            sheet.set_row_height(3 + row as u32, 26).map_err(xlsx)?;
        }
        // Room to sign by hand.
        sheet.set_column_width(7, 22).map_err(xlsx)?;
        sheet.set_paper_size(9);
        sheet.set_portrait();
        sheet.set_print_fit_to_pages(1, 0);
        sheet.set_repeat_rows(0, 2).map_err(xlsx)?;
        sheet.set_print_center_horizontally(true);
        sheet.set_footer("&C第 &P 页，共 &N 页");
        Ok(())
    })
}

/// Skill scores: every score recorded (or a session's), by session date, village, household and
/// member.
pub fn scores(store: &Store, session_id: Option<&str>, _options: &ExportOptions) -> Result<Vec<u8>> {
    let mut statement = store.conn().prepare(
        "SELECT s.title, s.date, m.name, h.head_name, v.name, a.topic, a.phase, a.score, a.assessed_on
           FROM skill_assessments a
           LEFT JOIN training_sessions s ON s.id = a.session_id
           LEFT JOIN members m ON m.id = a.member_id
           LEFT JOIN households h ON h.id = m.household_id
           LEFT JOIN villages v ON v.id = h.village_id
          WHERE a.deleted = 0 AND (?1 IS NULL OR a.session_id = ?1)
          ORDER BY s.date, s.title, v.name, h.register_no, m.name, a.topic, a.phase",
    )?;
    let mut found = statement.query([session_id])?;
    let mut rows = Vec::new();
    while let Some(row) = found.next()? {
        let text = |index: usize| row.get::<_, Option<String>>(index);
        rows.push(vec![
            text(0)?.into(),
            text(1)?.into(),
            text(2)?.into(),
            text(3)?.into(),
            text(4)?.into(),
            label(&codes::TrainingTopic::DEF, text(5)?.as_deref()).into(),
            label(&codes::AssessmentPhase::DEF, text(6)?.as_deref()).into(),
            Out::Whole(row.get(7)?),
            text(8)?.into(),
        ]);
    }
    let headers = ["培训", "培训日期", "姓名", "户主", "村", "技能", "阶段", "分数", "测评日期"];
    workbook("成绩", |sheet| write_table(sheet, 0, &headers, &rows, false))
}

/// Visits (帮扶记录), newest first, with the basic-needs checklist.
pub fn visits(store: &Store, options: &ExportOptions) -> Result<Vec<u8>> {
    let mut statement = store.conn().prepare(
        "SELECT x.visited_at, h.register_no, h.head_name, v.name, h.phone, x.visit_type, x.purposes, x.place, x.summary, x.problems,
                x.actions_agreed, x.next_visit_date, x.food_clothing_ok, x.education_ok, x.medical_ok, x.housing_ok, x.water_ok
           FROM visits x
           LEFT JOIN households h ON h.id = x.household_id
           LEFT JOIN villages v ON v.id = h.village_id
          WHERE x.deleted = 0 ORDER BY x.visited_at DESC, x.id",
    )?;
    let mut found = statement.query([])?;
    let mut rows = Vec::new();
    while let Some(row) = found.next()? {
        let text = |index: usize| row.get::<_, Option<String>>(index);
        let check = |index: usize| -> rusqlite::Result<Out> { Ok(label(&codes::CheckAnswer::DEF, text(index)?.as_deref()).into()) };
        rows.push(vec![
            text(0)?.map(|moment| moment.replace('T', " ").chars().take(16).collect::<String>()).into(),
            text(1)?.into(),
            text(2)?.into(),
            text(3)?.into(),
            options.phone(text(4)?).into(),
            label(&codes::VisitType::DEF, text(5)?.as_deref()).into(),
            labels(&codes::VisitPurpose::DEF, text(6)?.as_deref()).into(),
            text(7)?.into(),
            text(8)?.into(),
            text(9)?.into(),
            text(10)?.into(),
            text(11)?.into(),
            check(12)?,
            check(13)?,
            check(14)?,
            check(15)?,
            check(16)?,
        ]);
    }
    let headers = [
        "走访时间", "户编号", "户主", "村", "联系电话", "走访方式", "走访目的", "地点", "情况摘要", "存在问题", "商定措施", "下次走访日期",
        "吃穿不愁", "义务教育", "基本医疗", "住房安全", "饮水安全",
    ];
    workbook("帮扶记录", |sheet| write_table(sheet, 0, &headers, &rows, false))
}

/// Income records, by household and year; a record replaced by a correction is marked so, and
/// amounts are in yuan with two decimals (from integer fen).
pub fn income(store: &Store, _options: &ExportOptions) -> Result<Vec<u8>> {
    let mut statement = store.conn().prepare(
        "SELECT h.register_no, h.head_name, v.name, m.name, i.year, i.period, i.category, i.subcategory, i.item, i.quantity_g,
                i.amount_fen, i.is_ecommerce, i.source, i.recorded_on, i.note,
                EXISTS (SELECT 1 FROM income_records c WHERE c.corrects_id = i.id AND c.deleted = 0)
           FROM income_records i
           LEFT JOIN households h ON h.id = i.household_id
           LEFT JOIN villages v ON v.id = h.village_id
           LEFT JOIN members m ON m.id = i.member_id
          WHERE i.deleted = 0 ORDER BY v.name, h.register_no, h.head_name, i.year, i.recorded_on, i.id",
    )?;
    let mut found = statement.query([])?;
    let mut rows = Vec::new();
    while let Some(row) = found.next()? {
        let text = |index: usize| row.get::<_, Option<String>>(index);
        let ecommerce: Option<bool> = row.get(11)?;
        let replaced: bool = row.get(15)?;
        rows.push(vec![
            text(0)?.into(),
            text(1)?.into(),
            text(2)?.into(),
            text(3)?.into(),
            Out::Whole(row.get(4)?),
            text(5)?.into(),
            label(&codes::IncomeCategory::DEF, text(6)?.as_deref()).into(),
            label(&codes::IncomeSubcategory::DEF, text(7)?.as_deref()).into(),
            text(8)?.into(),
            Out::Whole(row.get(9)?),
            Out::Yuan(row.get(10)?),
            ecommerce.map(|flag| if flag { "是" } else { "否" }.to_owned()).into(),
            label(&codes::IncomeSource::DEF, text(12)?.as_deref()).into(),
            text(13)?.into(),
            text(14)?.into(),
            if replaced { "已被更正" } else { "有效" }.into(),
        ]);
    }
    let headers = [
        "户编号", "户主", "村", "成员", "年度", "期间", "类别", "小类", "项目", "数量（克）", "金额（元）", "电商收入", "来源", "记录日期", "备注", "状态",
    ];
    workbook("收入", |sheet| write_table(sheet, 0, &headers, &rows, false))
}
