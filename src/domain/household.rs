//! 户 Households and their members: the register, its duplicates, and the roster (searched through
//! [`crate::search`]); a household's full picture is [`crate::domain::household_view`].

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use crate::codes::{
    EcommerceRole, Education, FuelType, Health, HouseholdAttribute, HouseholdClosure, HousingSafety, LabourCapacity,
    MigrantWork, MonitoringType, PovertyCause, PovertyStatus, RelationToHead, Sex,
};
use crate::domain::{live_ids, DeletionImpact};
use crate::error::Result;
use crate::record::Writer;
use crate::schema::{ATTENDANCE, HOUSEHOLDS, MEMBERS, SKILL_ASSESSMENTS, TRAINING_SESSIONS, VISITS};
use crate::store::Store;

pub use crate::search::{RosterEntry, RosterQuery, SEARCH_FLUSH_AT_MOST};

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

/// Deletes a member with their attendance and skill scores, inside a write.
fn delete_member_in(writer: &mut Writer<'_>, id: &str) -> Result<()> {
    for attendance in live_ids(writer.conn(), "SELECT id FROM attendance WHERE member_id = ?1 AND deleted = 0", id)? {
        writer.delete(&ATTENDANCE, &attendance)?;
    }
    for assessment in live_ids(writer.conn(), "SELECT id FROM skill_assessments WHERE member_id = ?1 AND deleted = 0", id)? {
        writer.delete(&SKILL_ASSESSMENTS, &assessment)?;
    }
    // A session the member gave keeps its history but no longer names a trainer who is gone:
    // a reference to a deleted member would make the session's next edit fail its checks.
    for session in live_ids(writer.conn(), "SELECT id FROM training_sessions WHERE trainer_member_id = ?1 AND deleted = 0", id)? {
        let mut cleared = serde_json::Map::new();
        cleared.insert("trainer_member_id".to_owned(), serde_json::Value::Null);
        writer.save(&TRAINING_SESSIONS, Some(&session), cleared)?;
    }
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

/// Searches the roster of households: free text (a name, register number, phone or village) and
/// filters; see [`crate::search`] for how.
pub fn search(store: &Store, query: &RosterQuery) -> Result<Vec<RosterEntry>> {
    crate::search::roster(store.conn(), query)
}
