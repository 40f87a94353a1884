//! 户 Households and their members: the register, roster search, and a household's full picture.

use rusqlite::{params, Connection, OptionalExtension, ToSql};
use serde::{Deserialize, Serialize};

use crate::codes::{
    EcommerceRole, Education, FuelType, Health, HouseholdAttribute, HousingSafety, LabourCapacity, MigrantWork,
    MonitoringType, PovertyCause, PovertyStatus, RelationToHead, Sex,
};
use crate::domain::{income, listing, sale, training, visit};
use crate::error::Result;
use crate::schema::{HOUSEHOLDS, MEMBERS};
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

/// Creates or edits a household.
pub fn save(store: &mut Store, household: &Household) -> Result<Household> {
    super::save(store, &HOUSEHOLDS, household.id.as_deref(), household)
}

/// A household by id.
pub fn get(store: &Store, id: &str) -> Result<Household> {
    super::get(store, &HOUSEHOLDS, id)
}

/// Deletes a household and its members (tombstones that sync).
pub fn delete(store: &mut Store, id: &str) -> Result<()> {
    let members = members(store, id)?;
    store.write(|writer| {
        for member in &members {
            writer.delete(&MEMBERS, member.id.as_deref().unwrap_or_default())?;
        }
        writer.delete(&HOUSEHOLDS, id)
    })
}

/// Creates or edits a member.
pub fn save_member(store: &mut Store, member: &Member) -> Result<Member> {
    super::save(store, &MEMBERS, member.id.as_deref(), member)
}

/// A member by id.
pub fn get_member(store: &Store, id: &str) -> Result<Member> {
    super::get(store, &MEMBERS, id)
}

/// Deletes a member.
pub fn delete_member(store: &mut Store, id: &str) -> Result<()> {
    super::delete(store, &MEMBERS, id)
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
    let mut clauses = vec!["h.deleted = 0".to_owned()];
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
                (SELECT count(*) FROM members m WHERE m.household_id = p.id AND m.deleted = 0)
           FROM (SELECT h.id, h.register_no, h.head_name, h.phone, h.village_id, h.poverty_status, h.monitoring_type,
                        h.main_cause, {sort_key} AS sort_key
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
