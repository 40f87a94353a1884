//! Roster search by pinyin (initials and full) and by identity card number, and the roster's
//! order by column, on real SQLite files.

mod common;

use common::Fixture;
use furrow::codes::{RelationToHead, Sex};
use furrow::domain::household::{self, Household, Member, RosterQuery};
use furrow::search::RosterSort;
use furrow::{OpenOptions, Store};

/// A valid identity card number (its check character is right): a woman born 1949-12-31.
const ID_CARD: &str = "11010519491231002X";

fn heads(store: &Store, query: RosterQuery) -> Vec<String> {
    household::search(store, &query).unwrap().into_iter().map(|entry| entry.head_name).collect()
}

fn text(value: &str) -> RosterQuery {
    RosterQuery { text: Some(value.into()), ..RosterQuery::default() }
}

fn sorted(sort: RosterSort, descending: bool) -> RosterQuery {
    RosterQuery { sort: Some(sort), descending: Some(descending), ..RosterQuery::default() }
}

fn member_with_card(fixture: &mut Fixture, household_id: &str, name: &str, card: &str) -> String {
    let member = Member {
        household_id: Some(household_id.into()),
        name: Some(name.into()),
        sex: Some(Sex::Female),
        relation: Some(RelationToHead::Spouse),
        id_card_no: Some(card.into()),
        ..Member::default()
    };
    household::save_member(&mut fixture.store, &member).expect("member saved").id.unwrap()
}

#[test]
fn pinyin_initials_and_full_pinyin_find_heads_and_members() {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    let wang = fixture.household(&village, "王建华");
    fixture.household(&village, "李小梅");
    let zhao = fixture.household(&village, "赵大山");
    fixture.member(&zhao, "孙丽娟");

    assert_eq!(heads(&fixture.store, text("wjh")), vec!["王建华"], "initials");
    assert_eq!(heads(&fixture.store, text("WJH")), vec!["王建华"], "initials in capitals");
    assert_eq!(heads(&fixture.store, text("wj")), vec!["王建华"], "two initials");
    assert_eq!(heads(&fixture.store, text("wangjianhua")), vec!["王建华"], "full pinyin");
    assert_eq!(heads(&fixture.store, text("wang jian hua")), vec!["王建华"], "full pinyin with spaces");
    assert_eq!(heads(&fixture.store, text("jianhua")), vec!["王建华"], "the given name's pinyin");
    assert_eq!(heads(&fixture.store, text("slj")), vec!["赵大山"], "a member's initials find their household");
    assert_eq!(heads(&fixture.store, text("sunlijuan")), vec!["赵大山"], "a member's full pinyin");
    assert!(heads(&fixture.store, text("wjq")).is_empty(), "initials nobody has find nobody");

    // A renamed head is found by the new name's pinyin only.
    let mut renamed = household::get(&fixture.store, &wang).unwrap();
    renamed.head_name = Some("周明".into());
    household::save(&mut fixture.store, &renamed).unwrap();
    assert!(heads(&fixture.store, text("wjh")).is_empty());
    assert_eq!(heads(&fixture.store, text("zm")), vec!["周明"]);
}

#[test]
fn polyphonic_surnames_are_found_by_every_reading_and_ordered_as_surnames() {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    for head in ["单田芳", "曾国强", "沈阳", "杨柳", "张三"] {
        fixture.household(&village, head);
    }
    // The pinyin crate reads 单 as dan and 曾 as ceng first; as surnames they are shan and zeng.
    // Both readings find them.
    assert_eq!(heads(&fixture.store, text("shantianfang")), vec!["单田芳"]);
    assert_eq!(heads(&fixture.store, text("dantianfang")), vec!["单田芳"]);
    assert_eq!(heads(&fixture.store, text("stf")), vec!["单田芳"]);
    assert_eq!(heads(&fixture.store, text("zengguoqiang")), vec!["曾国强"]);
    assert_eq!(heads(&fixture.store, text("zgq")), vec!["曾国强"]);
    assert_eq!(heads(&fixture.store, text("cgq")), vec!["曾国强"]);
    // In pinyin order 单 (shan) comes before 沈 (shen), and 曾 (zeng) after 杨 and before 张.
    assert_eq!(heads(&fixture.store, sorted(RosterSort::HeadName, false)), vec!["单田芳", "沈阳", "杨柳", "曾国强", "张三"]);
}

#[test]
fn an_identity_card_number_finds_its_household_whole_or_by_its_last_six() {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    let wang = fixture.household(&village, "王建华");
    fixture.household(&village, "李小梅");
    member_with_card(&mut fixture, &wang, "刘芳", ID_CARD);

    assert_eq!(heads(&fixture.store, text(ID_CARD)), vec!["王建华"], "the whole number");
    assert_eq!(heads(&fixture.store, text("11010519491231002x")), vec!["王建华"], "a lowercase check character");
    assert_eq!(heads(&fixture.store, text("31002X")), vec!["王建华"], "the last six");
    assert!(heads(&fixture.store, text("110105194912310030")).is_empty(), "another number finds nobody");
}

#[test]
fn the_roster_orders_by_pinyin_and_by_each_column_both_ways() {
    let mut fixture = Fixture::new();
    let gaopo = fixture.village("522633101001", "高坡村");
    let anping = fixture.village("522633101002", "安平村");
    let register = |no: &str, village: &str, head: &str, phone: &str| Household {
        register_no: Some(no.into()),
        phone: Some(phone.into()),
        ..common::household_draft(village, head)
    };
    household::save(&mut fixture.store, &register("003", &gaopo, "张伟", "13900000003")).unwrap();
    let an = household::save(&mut fixture.store, &register("001", &gaopo, "安娜", "13900000002")).unwrap().id.unwrap();
    household::save(&mut fixture.store, &register("002", &anping, "王建华", "13900000001")).unwrap();
    fixture.member(&an, "安宁");
    fixture.member(&an, "安静");

    assert_eq!(heads(&fixture.store, sorted(RosterSort::HeadName, false)), vec!["安娜", "王建华", "张伟"], "安 before 王 before 张");
    assert_eq!(heads(&fixture.store, sorted(RosterSort::HeadName, true)), vec!["张伟", "王建华", "安娜"]);
    assert_eq!(heads(&fixture.store, sorted(RosterSort::RegisterNo, false)), vec!["安娜", "王建华", "张伟"]);
    assert_eq!(heads(&fixture.store, sorted(RosterSort::RegisterNo, true)), vec!["张伟", "王建华", "安娜"]);
    assert_eq!(heads(&fixture.store, sorted(RosterSort::Phone, false)), vec!["王建华", "安娜", "张伟"]);
    assert_eq!(heads(&fixture.store, sorted(RosterSort::MemberCount, true)), vec!["安娜", "王建华", "张伟"], "the most members first");
    // Village names in code point order (安平村 before 高坡村), ties in register order.
    assert_eq!(heads(&fixture.store, sorted(RosterSort::Village, false)), vec!["王建华", "安娜", "张伟"]);

    // A text search in a chosen order: the matches of 村 (every village) by name.
    let by_name = RosterQuery { text: Some("村".into()), ..sorted(RosterSort::HeadName, false) };
    assert_eq!(heads(&fixture.store, by_name), vec!["安娜", "王建华", "张伟"]);

    // Pages of an ordered roster follow one another without a gap or a repeat.
    let page = |offset: i64| RosterQuery { limit: Some(1), offset: Some(offset), ..sorted(RosterSort::HeadName, false) };
    let paged: Vec<String> = (0..3).flat_map(|offset| heads(&fixture.store, page(offset))).collect();
    assert_eq!(paged, vec!["安娜", "王建华", "张伟"]);

    // A renamed head moves at once, without waiting for the search index to be rewritten.
    let mut zhang = household::search(&fixture.store, &text("张伟")).unwrap().remove(0);
    let mut renamed = household::get(&fixture.store, &zhang.id).unwrap();
    renamed.head_name = Some("艾伟".into());
    household::save(&mut fixture.store, &renamed).unwrap();
    assert!(fixture.store.search_pending().unwrap() > 0, "the document waits; the order does not");
    assert_eq!(heads(&fixture.store, sorted(RosterSort::HeadName, false)), vec!["艾伟", "安娜", "王建华"]);

    // A deleted household leaves the order too.
    zhang = household::search(&fixture.store, &text("艾伟")).unwrap().remove(0);
    household::delete(&mut fixture.store, &zhang.id).unwrap();
    assert_eq!(heads(&fixture.store, sorted(RosterSort::HeadName, false)), vec!["安娜", "王建华"]);
    assert_eq!(fixture.count("SELECT count(*) FROM household_name_order"), 2);

    // The order survives closing and reopening the file.
    let path = fixture.path();
    drop(fixture.store);
    let reopened = Store::open(&OpenOptions::file(&path)).unwrap();
    assert_eq!(heads(&reopened, sorted(RosterSort::HeadName, true)), vec!["王建华", "安娜"]);
}

#[test]
fn households_stored_by_an_older_version_are_ordered_and_found_by_pinyin_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    drop(Store::open(&OpenOptions { migrate_to: Some(14), ..OpenOptions::file(&path) }).unwrap());
    // What a build before pinyin search wrote: rows and their search documents, no name order.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "INSERT INTO villages (id, scope_id, code, name) VALUES ('v1', '522633101001', '522633101001', '高坡村');
         INSERT INTO households (id, scope_id, village_id, head_name, attribute, poverty_status)
              VALUES ('h1', '522633101001', 'v1', '张伟', 'general', 'not_exited'),
                     ('h2', '522633101001', 'v1', '安娜', 'general', 'not_exited');
         INSERT INTO members (id, scope_id, household_id, name, id_card_no)
              VALUES ('m1', '522633101001', 'h1', '王建华', '11010519491231002X');
         INSERT INTO household_search_doc (household_id, body) VALUES ('h1', '张伟 王建华 高坡村'), ('h2', '安娜 高坡村');
         INSERT INTO sync_state (k, v) VALUES ('search_index_version', 2);",
    )
    .unwrap();
    drop(conn);

    let upgraded = Store::open(&OpenOptions::file(&path)).unwrap();
    assert_eq!(heads(&upgraded, sorted(RosterSort::HeadName, false)), vec!["安娜", "张伟"]);
    assert_eq!(heads(&upgraded, text("wjh")), vec!["张伟"], "a member's initials, indexed by the rebuild");
    assert_eq!(heads(&upgraded, text("31002X")), vec!["张伟"], "an identity card number, indexed by the rebuild");
}

#[test]
fn pinyin_and_card_numbers_are_found_while_the_index_is_still_being_rebuilt() {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    // More households waiting than a search rewrites first: the search reads the households.
    fixture
        .store
        .write(|writer| {
            for index in 0..=furrow::domain::household::SEARCH_FLUSH_AT_MOST {
                let head = if index == 7 { "王建华".to_owned() } else { format!("李{index}") };
                let changes = serde_json::json!({"village_id": village, "head_name": head, "attribute": "general", "poverty_status": "not_exited"});
                let saved = writer.save(&furrow::schema::HOUSEHOLDS, None, changes.as_object().unwrap().clone())?;
                if index == 7 {
                    let member = serde_json::json!({"household_id": saved.id, "name": "刘芳", "sex": "female", "relation": "spouse", "id_card_no": ID_CARD});
                    writer.save(&furrow::schema::MEMBERS, None, member.as_object().unwrap().clone())?;
                }
            }
            Ok(())
        })
        .unwrap();
    assert!(fixture.store.search_pending().unwrap() > furrow::domain::household::SEARCH_FLUSH_AT_MOST);
    assert_eq!(heads(&fixture.store, text("wjh")), vec!["王建华"]);
    assert_eq!(heads(&fixture.store, text("wang jian hua")), vec!["王建华"]);
    assert_eq!(heads(&fixture.store, text("lf")), vec!["王建华"], "a member's initials");
    assert_eq!(heads(&fixture.store, text("31002x")), vec!["王建华"], "a member's card number");
    assert!(fixture.store.search_pending().unwrap() > 0, "the search did not wait for the rebuild");
}
