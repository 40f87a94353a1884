//! 户 Households and their members: the register, roster search, and a household's full picture.

use rusqlite::{params, Connection, OptionalExtension, ToSql};
use serde::{Deserialize, Serialize};

use crate::codes::{
    EcommerceRole, Education, FuelType, Health, HouseholdAttribute, HouseholdClosure, HousingSafety, LabourCapacity,
    MigrantWork, MonitoringType, PovertyCause, PovertyStatus, RelationToHead, Sex,
};
use crate::domain::{income, listing, sale, training, visit, DeletionImpact};
use crate::error::Result;
use crate::record::Writer;
use crate::schema::{HOUSEHOLDS, MEMBERS, VISITS};
use crate::store::Store;

/// A household in the register (建档立卡户).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields = nullable))]
#[serde(default)]
pub struct Household {
    /// Row id; `None` for a new household.
    pub id: Option<String>,
    /// The scope (village code); set by the core.
    pub scope_id: Option<String>,
    /// 户编号 Register number.
    pub register_no: Option<String>,
    /// 所在村 Village.
    pub village_id: Option<String>,
    /// 村民小组 Village group.
    pub group_name: Option<String>,
    /// 户主姓名 Head of household.
    pub head_name: Option<String>,
    /// 联系电话 Phone (11-digit mobile).
    pub phone: Option<String>,
    /// 贫困户属性 Attribute.
    pub attribute: Option<HouseholdAttribute>,
    /// 脱贫状态 Poverty status.
    pub poverty_status: Option<PovertyStatus>,
    /// 监测对象类型 Monitoring type.
    pub monitoring_type: Option<MonitoringType>,
    /// 主要致贫原因 Main poverty cause.
    pub main_cause: Option<PovertyCause>,
    /// 次要致贫原因 Secondary causes.
    pub secondary_causes: Option<Vec<PovertyCause>>,
    /// 识别年度 Year identified.
    pub identified_year: Option<i64>,
    /// 脱贫年度 Year exited.
    pub exit_year: Option<i64>,
    /// 耕地面积（亩） Cultivated land in mu.
    pub cultivated_land_mu: Option<f64>,
    /// 林地面积（亩） Forest land in mu.
    pub forest_land_mu: Option<f64>,
    /// 住房安全 Housing safety.
    pub housing_safety: Option<HousingSafety>,
    /// 住房面积（平方米） House area in m².
    pub house_area_m2: Option<f64>,
    /// 饮水安全 Safe drinking water.
    pub water_safe: Option<bool>,
    /// 主要燃料 Main fuel.
    pub fuel_type: Option<FuelType>,
    /// 加入合作社 In a cooperative.
    pub in_cooperative: Option<bool>,
    /// 合作社名称 Cooperative name.
    pub cooperative_name: Option<String>,
    /// 纬度 Latitude (WGS-84).
    pub latitude: Option<f64>,
    /// 经度 Longitude (WGS-84).
    pub longitude: Option<f64>,
    /// 同意书日期 Date the household consented to its data being kept.
    pub consent_date: Option<String>,
    /// 备注 Notes.
    pub notes: Option<String>,
    /// 销户原因 Why the household left the register; `None` while it is in the register.
    pub closed_reason: Option<HouseholdClosure>,
    /// 销户日期 When it left the register.
    pub closed_on: Option<String>,
    /// 销户说明 A note on the closing (where they moved, what happened).
    pub closed_note: Option<String>,
}

/// A member of a household.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields = nullable))]
#[serde(default)]
pub struct Member {
    /// Row id; `None` for a new member.
    pub id: Option<String>,
    /// The scope; set by the core.
    pub scope_id: Option<String>,
    /// 所属户 Household.
    pub household_id: Option<String>,
    /// 姓名 Name.
    pub name: Option<String>,
    /// 性别 Sex.
    pub sex: Option<Sex>,
    /// 出生日期 Birth date.
    pub birth_date: Option<String>,
    /// 与户主关系 Relation to head.
    pub relation: Option<RelationToHead>,
    /// 文化程度 Education.
    pub education: Option<Education>,
    /// 健康状况 Health.
    pub health: Option<Health>,
    /// 劳动能力 Labour capacity.
    pub labour_capacity: Option<LabourCapacity>,
    /// 务工情况 Migrant work.
    pub migrant_work: Option<MigrantWork>,
    /// 手机号 Phone.
    pub phone: Option<String>,
    /// 有智能手机 Has a smartphone.
    pub has_smartphone: Option<bool>,
    /// 电商角色 E-commerce role.
    pub ecommerce_role: Option<EcommerceRole>,
    /// Resident identity card number (居民身份证号码), 18 characters.
    pub id_card_no: Option<String>,
}

/// Creates or edits a household. The phone is stored tidied (spaces gone, a landline's dash
/// after its area code), so the same number typed two ways is one number.
pub fn save(store: &mut Store, household: &Household) -> Result<Household> {
    let mut household = household.clone();
    household.phone = household.phone.as_deref().map(crate::validate::normalise_phone);
    super::save(store, &HOUSEHOLDS, household.id.as_deref(), &household)
}

/// Closes a household (迁出, 死亡, 自然消亡) on a date with a note. It stays in the store with
/// its history, leaves the roster, the follow-ups and the check-in lists, and is counted as
/// closed; [`reopen`] undoes it.
pub fn close(store: &mut Store, id: &str, reason: HouseholdClosure, on: &str, note: Option<&str>) -> Result<Household> {
    let mut household = get(store, id)?;
    household.closed_reason = Some(reason);
    household.closed_on = Some(on.to_owned());
    household.closed_note = note.map(str::to_owned);
    save(store, &household)
}

/// Puts a closed household back in the register (a closing recorded by mistake).
pub fn reopen(store: &mut Store, id: &str) -> Result<Household> {
    let mut household = get(store, id)?;
    household.closed_reason = None;
    household.closed_on = None;
    household.closed_note = None;
    save(store, &household)
}

/// A household by id.
pub fn get(store: &Store, id: &str) -> Result<Household> {
    super::get(store, &HOUSEHOLDS, id)
}

/// Deletes a household with its members (and their attendance and scores) and its visits, in
/// one transaction, as tombstones that sync. Income records are append-only and stay, unseen,
/// with the deleted household; a household that left the register is [`close`]d instead.
pub fn delete(store: &mut Store, id: &str) -> Result<()> {
    store.write(|writer| {
        for member in live_ids(writer.conn(), "SELECT id FROM members WHERE household_id = ?1 AND deleted = 0", id)? {
            delete_member_in(writer, &member)?;
        }
        for visit in live_ids(writer.conn(), "SELECT id FROM visits WHERE household_id = ?1 AND deleted = 0", id)? {
            writer.delete(&VISITS, &visit)?;
        }
        writer.delete(&HOUSEHOLDS, id)
    })
}

/// The ids a query of one parameter returns.
pub(crate) fn live_ids(conn: &Connection, sql: &str, parameter: &str) -> Result<Vec<String>> {
    let mut statement = conn.prepare_cached(sql)?;
    let ids = statement.query_map([parameter], |row| row.get(0))?;
    Ok(ids.collect::<rusqlite::Result<_>>()?)
}

/// Counts what one query of one parameter finds.
fn count(conn: &Connection, sql: &str, parameter: &str) -> Result<i64> {
    Ok(conn.query_row(sql, [parameter], |row| row.get(0))?)
}

/// What deleting a household takes with it, for the confirmation.
pub fn deletion_impact(store: &Store, id: &str) -> Result<DeletionImpact> {
    let household = get(store, id)?;
    let conn = store.conn();
    let members = "SELECT id FROM members WHERE household_id = ?1 AND deleted = 0";
    Ok(DeletionImpact {
        name: household.head_name.unwrap_or_default(),
        members: count(conn, "SELECT count(*) FROM members WHERE household_id = ?1 AND deleted = 0", id)?,
        visits: count(conn, "SELECT count(*) FROM visits WHERE household_id = ?1 AND deleted = 0", id)?,
        attendance: count(conn, &format!("SELECT count(*) FROM attendance WHERE deleted = 0 AND member_id IN ({members})"), id)?,
        assessments: count(conn, &format!("SELECT count(*) FROM skill_assessments WHERE deleted = 0 AND member_id IN ({members})"), id)?,
        income_records_kept: count(conn, "SELECT count(*) FROM income_records WHERE household_id = ?1 AND deleted = 0", id)?,
    })
}

/// Creates or edits a member. The birth date and sex are filled from the identity card number
/// when they are left empty, so nothing the card already says is typed twice; when they are
/// given, the checks compare them with the card.
pub fn save_member(store: &mut Store, member: &Member) -> Result<Member> {
    let mut member = member.clone();
    member.phone = member.phone.as_deref().map(crate::validate::normalise_phone);
    if let Some(facts) = member.id_card_no.as_deref().and_then(id_card_facts) {
        if member.birth_date.as_deref().is_none_or(|date| date.trim().is_empty()) {
            member.birth_date = Some(facts.birth_date);
        }
        if member.sex.is_none() {
            member.sex = Some(facts.sex);
        }
    }
    super::save(store, &MEMBERS, member.id.as_deref(), &member)
}

/// What a resident identity card number says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct IdCardFacts {
    /// 出生日期 The birth date in the number, `YYYY-MM-DD`.
    pub birth_date: String,
    /// 性别 The sex its 17th digit records.
    pub sex: Sex,
}

/// The birth date and sex in an identity card number, if it is a valid one (typed with a
/// lower-case x or surrounding spaces too).
pub fn id_card_facts(text: &str) -> Option<IdCardFacts> {
    let number = text.trim().to_ascii_uppercase();
    if !crate::validate::is_id_card_number(&number) {
        return None;
    }
    Some(IdCardFacts { birth_date: crate::validate::id_card_birth_date(&number)?, sex: crate::validate::id_card_sex(&number)? })
}

/// A member by id.
pub fn get_member(store: &Store, id: &str) -> Result<Member> {
    super::get(store, &MEMBERS, id)
}

/// Deletes a member with their attendance and skill scores, in one transaction. Income records
/// naming them are append-only and stay, counted for the household.
pub fn delete_member(store: &mut Store, id: &str) -> Result<()> {
    store.write(|writer| delete_member_in(writer, id))
}

fn delete_member_in(writer: &mut Writer<'_>, id: &str) -> Result<()> {
    training::delete_member_records(writer, id)?;
    writer.delete(&MEMBERS, id)
}

/// What deleting a member takes with it, for the confirmation.
pub fn member_deletion_impact(store: &Store, id: &str) -> Result<DeletionImpact> {
    let member = get_member(store, id)?;
    let conn = store.conn();
    Ok(DeletionImpact {
        name: member.name.unwrap_or_default(),
        members: 1,
        visits: 0,
        attendance: count(conn, "SELECT count(*) FROM attendance WHERE member_id = ?1 AND deleted = 0", id)?,
        assessments: count(conn, "SELECT count(*) FROM skill_assessments WHERE member_id = ?1 AND deleted = 0", id)?,
        income_records_kept: count(conn, "SELECT count(*) FROM income_records WHERE member_id = ?1 AND deleted = 0", id)?,
    })
}

/// Why a record may be another one entered twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum DuplicateReason {
    /// Another member has the same identity card number.
    SameIdCard,
    /// Another household in the same village has the same head and phone.
    SameHeadPhoneVillage,
}

/// A record that may be the same person or household as the one being saved or shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PossibleDuplicate {
    /// Why it may be the same.
    pub reason: DuplicateReason,
    /// The other household (the member's household for a member).
    pub household_id: String,
    /// Its head.
    pub head_name: String,
    /// Its village.
    pub village_name: Option<String>,
    /// The other member, for a duplicate identity card number.
    pub member_id: Option<String>,
    /// The other member's name.
    pub member_name: Option<String>,
}

fn duplicate_from_row(reason: DuplicateReason) -> impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<PossibleDuplicate> {
    move |row| {
        Ok(PossibleDuplicate {
            reason,
            household_id: row.get(0)?,
            head_name: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
            village_name: row.get(2)?,
            member_id: row.get(3)?,
            member_name: row.get(4)?,
        })
    }
}

/// The other live households that may be this one entered twice: the same head (ignoring
/// spaces around it) and the same phone in the same village. The user is warned and may go on.
pub fn household_duplicates(store: &Store, household: &Household) -> Result<Vec<PossibleDuplicate>> {
    let (Some(village), Some(head)) = (household.village_id.as_deref(), household.head_name.as_deref().map(str::trim)) else {
        return Ok(Vec::new());
    };
    let phone = household.phone.as_deref().map(crate::validate::normalise_phone).filter(|phone| !phone.is_empty());
    let mut statement = store.conn().prepare_cached(
        "SELECT h.id, h.head_name, v.name, NULL, NULL FROM households h LEFT JOIN villages v ON v.id = h.village_id
          WHERE h.deleted = 0 AND h.village_id = ?1 AND h.head_name = ?2 AND h.phone IS ?3 AND h.id IS NOT ?4
          ORDER BY h.register_no, h.id",
    )?;
    let rows = statement.query_map(params![village, head, phone, household.id], duplicate_from_row(DuplicateReason::SameHeadPhoneVillage))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The other live members with this member's identity card number, in any household.
pub fn member_duplicates(store: &Store, member: &Member) -> Result<Vec<PossibleDuplicate>> {
    let Some(card) = member.id_card_no.as_deref().map(|card| card.trim().to_ascii_uppercase()).filter(|card| !card.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut statement = store.conn().prepare_cached(
        "SELECT h.id, h.head_name, v.name, m.id, m.name FROM members m
           JOIN households h ON h.id = m.household_id AND h.deleted = 0
           LEFT JOIN villages v ON v.id = h.village_id
          WHERE m.deleted = 0 AND m.id_card_no = ?1 AND m.id IS NOT ?2
          ORDER BY h.register_no, m.id",
    )?;
    let rows = statement.query_map(params![card, member.id], duplicate_from_row(DuplicateReason::SameIdCard))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every possible duplicate of a stored household and of its members, however they arrived
/// (typed here, or brought by a sync from another device), for the household's page.
pub fn duplicates_of(store: &Store, id: &str) -> Result<Vec<PossibleDuplicate>> {
    let household = get(store, id)?;
    let mut found = household_duplicates(store, &household)?;
    for member in members(store, id)? {
        for duplicate in member_duplicates(store, &member)? {
            // Two members of this household with one number would each name the other.
            if !found.iter().any(|known| known.member_id.is_some() && known.member_id == duplicate.member_id) {
                found.push(duplicate);
            }
        }
    }
    Ok(found)
}

/// The live members of a household, the head first.
pub fn members(store: &Store, household_id: &str) -> Result<Vec<Member>> {
    let mut members: Vec<Member> = super::list(store, &MEMBERS, "household_id = ?1", &[&household_id])?;
    members.sort_by_key(|member| (member.relation != Some(RelationToHead::Head), member.birth_date.clone()));
    Ok(members)
}

/// The number of people a household's income is divided among: its live members who are not
/// deceased.
pub fn household_size(conn: &Connection, household_id: &str) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT count(*) FROM members WHERE household_id = ?1 AND deleted = 0 AND coalesce(health, '') <> 'deceased'",
        [household_id],
        |row| row.get(0),
    )?)
}

/// Rewrites a household's search document and its name pieces (or removes both once the
/// household is deleted).
pub(crate) fn refresh_search(conn: &Connection, household_id: &str) -> Result<()> {
    let found: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT concat_ws(' ', h.register_no, h.head_name, h.phone, h.group_name, v.name, v.code,
                    (SELECT group_concat(concat_ws(' ', m.name, m.phone), ' ') FROM members m
                      WHERE m.household_id = h.id AND m.deleted = 0)),
                    concat_ws(' ', h.head_name,
                    (SELECT group_concat(m.name, ' ') FROM members m WHERE m.household_id = h.id AND m.deleted = 0))
               FROM households h LEFT JOIN villages v ON v.id = h.village_id
              WHERE h.id = ?1 AND h.deleted = 0",
        )?
        .query_row([household_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let existing: Option<(i64, String)> = conn
        .prepare_cached("SELECT doc, body FROM household_search_doc WHERE household_id = ?1")?
        .query_row([household_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    if let (Some((_, indexed)), Some((body, _))) = (&existing, &found) {
        if indexed == body {
            // Most edits (income, visits, a note) leave the indexed text alone; rewriting it would
            // churn the full-text index for nothing.
            return Ok(());
        }
    }
    if let Some((doc, _)) = existing {
        conn.prepare_cached("DELETE FROM household_name_grams WHERE doc = ?1")?.execute([doc])?;
    }
    let Some((body, names)) = found else {
        conn.prepare_cached("DELETE FROM household_search_doc WHERE household_id = ?1")?.execute([household_id])?;
        return Ok(());
    };
    let doc: i64 = conn
        .prepare_cached(
            "INSERT INTO household_search_doc (household_id, body) VALUES (?1, ?2)
             ON CONFLICT (household_id) DO UPDATE SET body = excluded.body RETURNING doc",
        )?
        .query_row(params![household_id, body], |row| row.get(0))?;
    let mut insert = conn.prepare_cached("INSERT OR IGNORE INTO household_name_grams (gram, doc) VALUES (?1, ?2)")?;
    for gram in short_grams(&names) {
        insert.execute(params![gram, doc])?;
    }
    Ok(())
}

/// Rewrites the search documents of the households edited since the last search, in one
/// transaction. Returns how many were rewritten.
pub fn flush_search_index(conn: &Connection) -> Result<usize> {
    flush_search_batch(conn, i64::MAX)
}

/// Rewrites at most `limit` of the pending search documents in one short transaction, so that
/// after a large import or a first sync the index can be brought up to date in the background
/// a batch at a time, never holding the store for long. Returns how many were rewritten; zero
/// means the index is up to date.
pub fn flush_search_batch(conn: &Connection, limit: i64) -> Result<usize> {
    let pending: Vec<String> = {
        let mut statement = conn.prepare_cached("SELECT household_id FROM household_search_pending LIMIT ?1")?;
        let ids = statement.query_map([limit], |row| row.get(0))?;
        ids.collect::<rusqlite::Result<_>>()?
    };
    if pending.is_empty() {
        return Ok(0);
    }
    let transaction = conn.unchecked_transaction()?;
    for id in &pending {
        refresh_search(&transaction, id)?;
        transaction.prepare_cached("DELETE FROM household_search_pending WHERE household_id = ?1")?.execute([id])?;
    }
    transaction.commit()?;
    Ok(pending.len())
}

/// How many households wait for their search document to be rewritten.
pub fn search_pending(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM household_search_pending", [], |row| row.get(0))?)
}

/// The most waiting search documents a text search rewrites before it runs; with more waiting,
/// it reads the households themselves (see [`search`]).
pub const SEARCH_FLUSH_AT_MOST: i64 = 1000;

/// Every distinct one- and two-character piece of the words in `text` (lowercased).
fn short_grams(text: &str) -> std::collections::BTreeSet<String> {
    let mut grams = std::collections::BTreeSet::new();
    for word in text.split_whitespace() {
        let characters: Vec<char> = word.to_lowercase().chars().collect();
        for (index, character) in characters.iter().enumerate() {
            grams.insert(character.to_string());
            if let Some(next) = characters.get(index + 1) {
                grams.insert([*character, *next].iter().collect());
            }
        }
    }
    grams
}

/// A roster search: free text plus filters, all optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields = nullable))]
#[serde(default)]
pub struct RosterQuery {
    /// Substring of a name (head or member), register number, phone or village.
    pub text: Option<String>,
    /// Only this village.
    pub village_id: Option<String>,
    /// Only this poverty status.
    pub poverty_status: Option<PovertyStatus>,
    /// Only this monitoring type.
    pub monitoring_type: Option<MonitoringType>,
    /// Only households with this main or secondary cause.
    pub cause: Option<PovertyCause>,
    /// `true` lists the households that left the register (closed) instead of those in it.
    pub closed: Option<bool>,
    /// At most this many (default 200).
    pub limit: Option<i64>,
    /// Skip this many (paging).
    pub offset: Option<i64>,
}

/// One line of the roster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RosterEntry {
    /// Household id.
    pub id: String,
    /// Register number.
    pub register_no: Option<String>,
    /// Head of household.
    pub head_name: String,
    /// Phone.
    pub phone: Option<String>,
    /// Village id.
    pub village_id: String,
    /// Village name.
    pub village_name: Option<String>,
    /// Poverty status.
    pub poverty_status: Option<PovertyStatus>,
    /// Monitoring type.
    pub monitoring_type: Option<MonitoringType>,
    /// Main cause.
    pub main_cause: Option<PovertyCause>,
    /// Number of live members.
    pub member_count: i64,
    /// Why the household left the register, when it is closed.
    pub closed_reason: Option<HouseholdClosure>,
    /// When it left the register.
    pub closed_on: Option<String>,
}

/// Searches the roster. Text of three or more characters uses the trigram index; shorter text
/// (a two-character Chinese name is common) scans the compact search documents.
pub fn search(store: &Store, query: &RosterQuery) -> Result<Vec<RosterEntry>> {
    // Only a text search reads the search documents; the plain or filtered roster reads the
    // households themselves, so opening the roster after a large import does not wait for the
    // whole index to be rebuilt. A text search brings a few waiting documents up to date first;
    // while many wait (the index is being rebuilt in the background after an import or a first
    // sync), it reads the households and members themselves instead: slower, never stale, and
    // never waiting for the whole rebuild.
    let mut scan = false;
    if query.text.as_deref().is_some_and(|text| !text.trim().is_empty()) {
        if search_pending(store.conn())? <= SEARCH_FLUSH_AT_MOST {
            flush_search_index(store.conn())?;
        } else {
            scan = true;
        }
    }
    // A closed household has left the register: the roster, its count and every list drawn
    // from it show the households in the register, and the closed ones only when asked for.
    let closed = if query.closed == Some(true) { "h.closed_reason IS NOT NULL" } else { "h.closed_reason IS NULL" };
    let mut clauses = vec!["h.deleted = 0".to_owned(), closed.to_owned()];
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    let mut from = "households h".to_owned();
    // A text search lists its matches in the order households were registered on the device
    // (the search document's number), which both indexes yield already sorted, so a page of a
    // query matching thousands is read without sorting them all. The plain roster is in register
    // order, which an index also yields.
    let mut sort_key = "NULL";
    if let Some(text) = query.text.as_deref().map(str::trim).filter(|text| !text.is_empty()) {
        if scan {
            from = "households h LEFT JOIN villages sv ON sv.id = h.village_id".to_owned();
            clauses.push(format!(
                "instr(lower(concat_ws(' ', h.register_no, h.head_name, h.phone, h.group_name, sv.name, sv.code,
                    (SELECT group_concat(concat_ws(' ', m.name, m.phone), ' ') FROM members m
                      WHERE m.household_id = h.id AND m.deleted = 0))), lower(?{})) > 0",
                args.len() + 1
            ));
            args.push(Box::new(text.to_owned()));
        } else if text.chars().count() >= 3 {
            // Long numbers (register numbers, phones) share their leading digits with every other
            // household, so matching all their trigrams walks long lists; their last six
            // characters are distinctive, and the whole text is then checked on the few matches.
            let key: String = if text.len() > 6 && text.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-') {
                text[text.len() - 6..].to_owned()
            } else {
                text.to_owned()
            };
            let phrase = format!("\"{}\"", key.replace('"', "\"\""));
            from = "household_search s JOIN household_search_doc d ON d.doc = s.rowid JOIN households h ON h.id = d.household_id"
                .to_owned();
            sort_key = "s.rowid";
            clauses.push(format!("household_search MATCH ?{}", args.len() + 1));
            args.push(Box::new(phrase));
            clauses.push(format!("instr(lower(d.body), lower(?{})) > 0", args.len() + 1));
            args.push(Box::new(text.to_owned()));
        } else {
            // One or two characters: a name piece from the gram index or, when a village's name
            // contains them, every household of that village too (villages are few).
            let gram = text.to_lowercase();
            let village_named: bool = store.conn().query_row(
                "SELECT EXISTS (SELECT 1 FROM villages WHERE deleted = 0 AND instr(name, ?1) > 0)",
                [&gram],
                |row| row.get(0),
            )?;
            let index = args.len() + 1;
            if village_named {
                from = "household_search_doc d JOIN households h ON h.id = d.household_id".to_owned();
                sort_key = "d.doc";
                clauses.push(format!(
                    "(d.doc IN (SELECT doc FROM household_name_grams WHERE gram = ?{index})
                      OR h.village_id IN (SELECT id FROM villages WHERE deleted = 0 AND instr(name, ?{index}) > 0))"
                ));
            } else {
                from = "household_name_grams g JOIN household_search_doc d ON d.doc = g.doc JOIN households h ON h.id = d.household_id"
                    .to_owned();
                sort_key = "g.doc";
                clauses.push(format!("g.gram = ?{index}"));
            }
            args.push(Box::new(gram));
        }
    }
    if let Some(village) = &query.village_id {
        clauses.push(format!("h.village_id = ?{}", args.len() + 1));
        args.push(Box::new(village.clone()));
    }
    if let Some(status) = query.poverty_status {
        clauses.push(format!("h.poverty_status = ?{}", args.len() + 1));
        args.push(Box::new(status.code()));
    }
    if let Some(monitoring) = query.monitoring_type {
        clauses.push(format!("h.monitoring_type = ?{}", args.len() + 1));
        args.push(Box::new(monitoring.code()));
    }
    if let Some(cause) = query.cause {
        let index = args.len() + 1;
        clauses.push(format!(
            "(h.main_cause = ?{index} OR EXISTS (SELECT 1 FROM json_each(h.secondary_causes) WHERE value = ?{index}))"
        ));
        args.push(Box::new(cause.code()));
    }
    let order = if sort_key == "NULL" { "h.register_no, h.head_name, h.id" } else { sort_key };
    let limit = query.limit.unwrap_or(200).clamp(1, 10_000);
    let offset = query.offset.unwrap_or(0).max(0);
    // The page is chosen first; the village name and member count are looked up for the rows
    // shown only, not for every match of a common character.
    let sql = format!(
        "SELECT p.id, p.register_no, p.head_name, p.phone, p.village_id, v.name, p.poverty_status, p.monitoring_type,
                p.main_cause,
                (SELECT count(*) FROM members m WHERE m.household_id = p.id AND m.deleted = 0),
                p.closed_reason, p.closed_on
           FROM (SELECT h.id, h.register_no, h.head_name, h.phone, h.village_id, h.poverty_status, h.monitoring_type,
                        h.main_cause, h.closed_reason, h.closed_on, {sort_key} AS sort_key
                   FROM {from}
                  WHERE {}
                  ORDER BY {order}
                  LIMIT {limit} OFFSET {offset}) p
           LEFT JOIN villages v ON v.id = p.village_id
          ORDER BY p.sort_key, p.register_no, p.head_name, p.id",
        clauses.join(" AND ")
    );
    let mut statement = store.conn().prepare_cached(&sql)?;
    let params: Vec<&dyn ToSql> = args.iter().map(|arg| arg.as_ref()).collect();
    let rows = statement.query_map(params.as_slice(), |row| {
        let code = |index: usize| -> rusqlite::Result<Option<String>> { row.get(index) };
        Ok(RosterEntry {
            id: row.get(0)?,
            register_no: row.get(1)?,
            head_name: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
            phone: row.get(3)?,
            village_id: row.get::<_, Option<String>>(4)?.unwrap_or_default(),
            village_name: row.get(5)?,
            poverty_status: code(6)?.as_deref().and_then(PovertyStatus::from_code),
            monitoring_type: code(7)?.as_deref().and_then(MonitoringType::from_code),
            main_cause: code(8)?.as_deref().and_then(PovertyCause::from_code),
            member_count: row.get(9)?,
            closed_reason: code(10)?.as_deref().and_then(HouseholdClosure::from_code),
            closed_on: row.get(11)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Everything about one household on one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct HouseholdView {
    /// The household.
    pub household: Household,
    /// Its members, head first.
    pub members: Vec<Member>,
    /// Income per year against the poverty line, oldest first.
    pub income_by_year: Vec<income::YearIncome>,
    /// The income records in force (not replaced by a correction), newest first.
    pub income_records: Vec<income::IncomeRecord>,
    /// Its visits, newest first.
    pub visits: Vec<visit::Visit>,
    /// The training sessions its members attended.
    pub trainings: Vec<training::Attended>,
    /// Its members' skill assessments.
    pub assessments: Vec<training::Assessment>,
    /// Products it produces.
    pub products: Vec<listing::Product>,
    /// Listings of those products.
    pub listings: Vec<listing::Listing>,
    /// Sales credited to it.
    pub sales: Vec<sale::HouseholdSale>,
}

/// A household's full picture.
pub fn view(store: &Store, id: &str) -> Result<HouseholdView> {
    let household = get(store, id)?;
    let products = listing::products_of_household(store, id)?;
    let mut listings = Vec::new();
    for product in &products {
        listings.extend(listing::listings_of_product(store, product.id.as_deref().unwrap_or_default())?);
    }
    Ok(HouseholdView {
        members: members(store, id)?,
        income_by_year: income::by_year(store, id)?,
        income_records: income::in_force(store, id)?,
        visits: visit::of_household(store, id)?,
        trainings: training::attended_by_household(store, id)?,
        assessments: training::assessments_of_household(store, id)?,
        products,
        listings,
        sales: sale::of_household(store, id)?,
        household,
    })
}
