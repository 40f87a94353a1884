//! Demo data for a first look, the benchmarks and the end-to-end tests: villages and households
//! that are clearly marked as demo data (village names start with 演示, notes say so).
//!
//! Everything goes through the core's one write path, so demo records sync like real ones.

use furrow::schema::{HOUSEHOLDS, INCOME_RECORDS, MEMBERS, VILLAGES, VISITS};
use furrow::{Result, Store};
use serde_json::{json, Map, Value};

/// The environment variable naming the demo account the sign-in screen offers (and signs in
/// with at once): `SERVER_URL USERNAME PASSWORD`, separated by spaces. `scripts/run.sh` sets it
/// for its local demo server; nothing else does. A fourth value asks for that many demo
/// households once the first sync has shown the server has none.
pub const DEMO_SIGN_IN_VARIABLE: &str = "FURROW_DEMO_SIGN_IN";

/// A demo account on a local demo server, offered on the sign-in screen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
pub struct DemoAccount {
    /// The demo server's address.
    pub server_url: String,
    /// The demo user name.
    pub username: String,
    /// The demo password (a demo account's, printed by the script that made it).
    pub password: String,
    /// How many demo households to add when neither the device nor the server has any.
    pub households: u32,
}

/// The demo account named by [`DEMO_SIGN_IN_VARIABLE`], if it is set and well formed.
pub fn demo_account() -> Option<DemoAccount> {
    let value = std::env::var(DEMO_SIGN_IN_VARIABLE).ok()?;
    let mut parts = value.split_whitespace();
    let (server_url, username, password) = (parts.next()?, parts.next()?, parts.next()?);
    let households = parts.next().and_then(|count| count.parse().ok()).unwrap_or(0);
    Some(DemoAccount { server_url: server_url.to_owned(), username: username.to_owned(), password: password.to_owned(), households })
}

/// Seeds `households` demo households when the store holds no household at all (after a first
/// sync, that means the server has none either), so a second demo device, or a second start
/// on a new data directory, does not add the demo households twice. Returns how many it made.
pub fn seed_if_no_households(store: &mut Store, households: usize) -> Result<usize> {
    let query = furrow::domain::household::RosterQuery { limit: Some(1), ..Default::default() };
    if !furrow::domain::household::search(store, &query)?.is_empty() {
        return Ok(0);
    }
    seed(store, households)
}

/// The mark put in every demo household's notes.
pub const DEMO_NOTE: &str = "演示数据 Demo data";

const SURNAMES: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭", "何", "罗", "高", "林"];
const GIVEN: &[&str] = &["建国", "秀英", "桂兰", "德明", "玉梅", "海燕", "志强", "春花", "永福", "丽华", "金山", "小红", "文军", "凤英", "国富", "晓东"];
const VILLAGES_DEMO: &[(&str, &str, &str)] = &[
    ("530724100201", "演示·青山村", "龙洞镇"),
    ("530724100202", "演示·石门村", "龙洞镇"),
    ("530724100203", "演示·核桃坪村", "大坪乡"),
];
const STATUSES: &[&str] = &["not_exited", "newly_exited", "exited_earlier", "returned", "non_poor"];
const MONITORING: &[&str] = &["none", "unstable_exited", "marginal", "sudden_hardship"];
const CAUSES: &[&str] = &["illness", "disability", "education", "disaster", "lack_skills", "lack_labour", "lack_capital", "poor_transport"];

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("demo records are objects"),
    }
}

/// Seeds `households` demo households (with members, three years of income and a visit each)
/// when the store has no village yet; does nothing otherwise, so it is safe on every start.
pub fn seed_if_empty(store: &mut Store, households: usize) -> Result<usize> {
    if !furrow::domain::village::list(store)?.is_empty() {
        return Ok(0);
    }
    seed(store, households)
}

/// Seeds demo villages and `households` demo households, a few hundred per transaction.
pub fn seed(store: &mut Store, households: usize) -> Result<usize> {
    let mut random = fastrand::Rng::with_seed(2024);
    let village_ids: Vec<String> = store.write(|writer| {
        VILLAGES_DEMO
            .iter()
            .map(|(code, name, township)| {
                let changes = object(json!({"code": code, "name": name, "township": township, "county": "演示县",
                    "province": "云南省", "is_poverty_village": true, "has_courier_point": true}));
                // The server's id for the village: syncing merges it into the server's row
                // instead of adding a second village with the same code.
                let id = furrow::domain::village::row_id(code);
                writer.save(&VILLAGES, Some(&id), changes).map(|saved| saved.id)
            })
            .collect()
    })?;
    let today = chrono::Local::now().date_naive();
    let mut made = 0;
    while made < households {
        let batch = (households - made).min(250);
        store.write(|writer| {
            for index in made..made + batch {
                let surname = SURNAMES[random.usize(..SURNAMES.len())];
                let head = format!("{surname}{}", GIVEN[random.usize(..GIVEN.len())]);
                let village = &village_ids[index % village_ids.len()];
                let phone = format!("1{}{:09}", [3, 5, 8, 9][random.usize(..4)], random.u32(..1_000_000_000));
                let household = writer.save(
                    &HOUSEHOLDS,
                    None,
                    object(json!({
                        "register_no": format!("YS{:05}", index + 1),
                        "village_id": village,
                        "group_name": format!("{}组", index % 8 + 1),
                        "head_name": head,
                        "phone": phone,
                        "attribute": (["general", "dibao"][random.usize(..2)]),
                        "poverty_status": STATUSES[random.usize(..STATUSES.len())],
                        "monitoring_type": MONITORING[random.usize(..MONITORING.len())],
                        "main_cause": CAUSES[random.usize(..CAUSES.len())],
                        "identified_year": 2014 + random.i64(0..4),
                        "cultivated_land_mu": f64::from(random.u8(1..30)) / 2.0,
                        "notes": DEMO_NOTE,
                    })),
                )?;
                let household_id = household.id;
                writer.save(
                    &MEMBERS,
                    None,
                    object(json!({"household_id": household_id, "name": head, "relation": "head",
                        "sex": "male", "birth_date": format!("{}-03-12", 1955 + random.i64(0..30)),
                        "health": "healthy", "labour_capacity": "ordinary", "phone": phone, "has_smartphone": true})),
                )?;
                let spouse = format!("{}{}", SURNAMES[random.usize(..SURNAMES.len())], GIVEN[random.usize(..GIVEN.len())]);
                writer.save(
                    &MEMBERS,
                    None,
                    object(json!({"household_id": household_id, "name": spouse, "relation": "spouse",
                        "sex": "female", "birth_date": format!("{}-08-02", 1958 + random.i64(0..30)), "health": "healthy"})),
                )?;
                let child = format!("{surname}{}", GIVEN[random.usize(..GIVEN.len())]);
                writer.save(
                    &MEMBERS,
                    None,
                    object(json!({"household_id": household_id, "name": child, "relation": (["son", "daughter"][random.usize(..2)]),
                        "birth_date": format!("{}-11-20", 1985 + random.i64(0..20)), "education": "junior_secondary",
                        "migrant_work": "out_of_province"})),
                )?;
                // Income for a few households only when seeding thousands: the roster is what the
                // benchmark measures, and three years for every one would triple the seed time.
                if households <= 200 || index % 50 == 0 {
                    for (offset, year) in (2022..=2024).enumerate() {
                        let base = 900_000 + random.i64(0..600_000) + offset as i64 * 150_000;
                        for (category, amount) in [("wage", base), ("operating", base / 2), ("transfer", 120_000)] {
                            writer.save(
                                &INCOME_RECORDS,
                                None,
                                object(json!({"household_id": household_id, "year": year, "category": category,
                                    "amount_fen": amount, "recorded_on": format!("{year}-12-20"), "source": "self_report"})),
                            )?;
                        }
                    }
                    let next = today + chrono::Duration::days(random.i64(-10..20));
                    writer.save(
                        &VISITS,
                        None,
                        object(json!({"household_id": household_id, "visit_type": "home",
                            "visited_at": format!("{}T10:00:00+08:00", today - chrono::Duration::days(30)),
                            "summary": "了解核桃销售情况（演示）", "actions_agreed": "帮助拍摄商品主图",
                            "next_visit_date": next.to_string(), "food_clothing_ok": "yes", "education_ok": "yes",
                            "medical_ok": "yes", "housing_ok": "yes", "water_ok": "yes"})),
                    )?;
                }
            }
            Ok(())
        })?;
        made += batch;
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;
    use furrow::domain::household::{self, RosterQuery};

    #[test]
    fn demo_households_are_searchable_and_marked() {
        let mut store = Store::open_in_memory().unwrap();
        assert_eq!(seed_if_empty(&mut store, 30).unwrap(), 30);
        assert_eq!(seed_if_empty(&mut store, 30).unwrap(), 0, "a second start adds nothing");
        let all = household::search(&store, &RosterQuery::default()).unwrap();
        assert_eq!(all.len(), 30);
        let first = household::get(&store, &all[0].id).unwrap();
        assert_eq!(first.notes.as_deref(), Some(DEMO_NOTE));
        let surname: String = all[0].head_name.chars().take(1).collect();
        let found = household::search(&store, &RosterQuery { text: Some(surname), ..RosterQuery::default() }).unwrap();
        assert!(!found.is_empty());
        assert!(furrow::domain::household_view::view(&store, &all[0].id).unwrap().income_by_year.len() == 3);
    }

    #[test]
    fn demo_households_are_added_only_to_a_store_without_households() {
        let mut store = Store::open_in_memory().unwrap();
        // Villages alone (as a first sync brings them) still get the demo households, once.
        store
            .write(|writer| {
                let village = object(json!({"code": "530724100201", "name": "演示·青山村"}));
                writer.save(&VILLAGES, Some(&furrow::domain::village::row_id("530724100201")), village)
            })
            .unwrap();
        assert_eq!(seed_if_no_households(&mut store, 12).unwrap(), 12);
        assert_eq!(seed_if_no_households(&mut store, 12).unwrap(), 0, "a second time adds nothing");
        let villages = furrow::domain::village::list(&store).unwrap();
        assert_eq!(villages.len(), 3, "the demo villages are the existing rows, not second copies");
        assert!(villages.iter().all(|village| village.id.as_deref() == Some(&furrow::domain::village::row_id(village.code.as_deref().unwrap()))));
    }
}
