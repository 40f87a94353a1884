//! Outcomes benchmark: the four outcomes (`report::compute`, and `report::summary` as the screen
//! asks for it) over 10k households with 35k members, two years of income records, a year of
//! training with attendance and pre/post scores, listings and platform sales, built through the
//! write path (the platform's rows as a sync brings them). Prints figures; run with
//! `cargo bench --bench outcomes` (add `-- 100000` for another size). The target is under 300 ms
//! at 10k households.

use std::time::{Duration, Instant};

use furrow::codes::{AttendanceStatus, HouseholdAttribute, IncomeCategory, MonitoringType, PovertyStatus, RelationToHead, TrainingTopic};
use furrow::hlc::{pack, NodeId, Stamp};
use furrow::record::RemoteField;
use furrow::report::{self, Filter};
use furrow::schema;
use furrow::{OpenOptions, Store};
use serde_json::{json, Map, Value};

/// A small deterministic generator, so every run builds the same data.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> i64 {
        (self.next() % bound) as i64
    }
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The CPU time this thread has run for (`/proc/thread-self/schedstat`, in nanoseconds): on a
/// machine busy with other work, it tells the computation's own cost apart from the wait.
fn cpu_time() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(text.split_whitespace().next().and_then(|field| field.parse().ok()).unwrap_or(0))
}

/// Builds the caseload; returns the store's directory with the store.
fn build(households: usize) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut store = Store::open(&OpenOptions::file(dir.path().join("bench.db"))).expect("store");
    let mut random = Random(0x2545_F491_4F6C_DD1D);
    let codes: Vec<String> = (0..20).map(|index| format!("5226331010{index:02}")).collect();
    let villages: Vec<String> = codes
        .iter()
        .map(|code| store.write(|writer| writer.save(&schema::VILLAGES, None, object(json!({"code": code, "name": format!("{code}村")})))).expect("village").id)
        .collect();
    let mut members: Vec<(String, String, usize)> = Vec::new();
    let mut household_ids = Vec::with_capacity(households);
    for chunk in 0..households.div_ceil(1000) {
        let count = 1000.min(households - chunk * 1000);
        store
            .write(|writer| {
                for index in 0..count {
                    let number = chunk * 1000 + index;
                    let village = number % villages.len();
                    let household = writer
                        .save(
                            &schema::HOUSEHOLDS,
                            None,
                            object(json!({
                                "register_no": format!("522633{number:07}"), "village_id": villages[village], "head_name": format!("户主{number}"),
                                "attribute": HouseholdAttribute::General.code(),
                                "poverty_status": if number % 3 == 0 { PovertyStatus::NewlyExited.code() } else { PovertyStatus::NotExited.code() },
                                "exit_year": if number % 3 == 0 { Some(2025) } else { None },
                                "monitoring_type": if number % 10 == 0 { MonitoringType::Marginal.code() } else { MonitoringType::None.code() },
                            })),
                        )?
                        .id;
                    // 3 or 4 members: 35,000 for 10,000 households.
                    for member in 0..3 + number % 2 {
                        let relation = if member == 0 { RelationToHead::Head } else { RelationToHead::Other };
                        let id = writer
                            .save(&schema::MEMBERS, None, object(json!({"household_id": household, "name": format!("成员{number}-{member}"), "relation": relation.code()})))?
                            .id;
                        members.push((id, household.clone(), village));
                    }
                    for year in [2024, 2025] {
                        for (category, amount) in [
                            (IncomeCategory::Wage, 600_000 + random.below(400_000)),
                            (IncomeCategory::Operating, 200_000 + random.below(300_000)),
                            (IncomeCategory::OperatingCost, 80_000),
                            (IncomeCategory::Transfer, 120_000),
                        ] {
                            writer.save(
                                &schema::INCOME_RECORDS,
                                None,
                                object(json!({"household_id": household, "year": year, "category": category.code(), "amount_fen": amount, "recorded_on": format!("{year}-12-01")})),
                            )?;
                        }
                    }
                    household_ids.push(household);
                }
                Ok(())
            })
            .expect("households");
    }
    // A year of training: 10 sessions per village, each with about 50 of the village's
    // members checked in, scored before and after; some given by trained farmers.
    let topics = [TrainingTopic::Photography, TrainingTopic::Pricing, TrainingTopic::Packaging, TrainingTopic::Logistics];
    let mut sessions = 0;
    store
        .write(|writer| {
            for (village, village_id) in villages.iter().enumerate() {
                let local: Vec<&(String, String, usize)> = members.iter().filter(|(_, _, home)| *home == village).collect();
                for number in 0..10 {
                    let topic = topics[number % topics.len()];
                    let date = format!("2025-{:02}-{:02}", 1 + number, 5 + village % 20);
                    let trainer = (number >= 5).then(|| local[number].0.clone());
                    let session = writer
                        .save(
                            &schema::TRAINING_SESSIONS,
                            None,
                            object(json!({"title": format!("培训{number}"), "topics": [topic.code()], "format": "classroom", "date": date,
                                "duration_min": 120, "village_id": village_id, "trainer_member_id": trainer})),
                        )?
                        .id;
                    sessions += 1;
                    for offset in 0..50 {
                        let (member, _, _) = local[(number * 37 + offset * 7) % local.len()];
                        if trainer.as_deref() == Some(member.as_str()) {
                            continue;
                        }
                        let status = if offset % 9 == 0 { AttendanceStatus::Absent } else { AttendanceStatus::Present };
                        writer.save(
                            &schema::ATTENDANCE,
                            Some(&schema::attendance_id(&session, member)),
                            object(json!({"session_id": session, "member_id": member, "status": status.code()})),
                        )?;
                        for (phase, score) in [("pre", 30 + (offset as i64 * 7) % 40), ("post", 50 + (offset as i64 * 11) % 50)] {
                            writer.save(
                                &schema::SKILL_ASSESSMENTS,
                                None,
                                object(json!({"member_id": member, "session_id": session, "topic": topic.code(), "phase": phase, "score": score, "assessed_on": date})),
                            )?;
                        }
                    }
                }
            }
            Ok(())
        })
        .expect("training");
    // Listings and sales: every third household has a product, a live listing and up to eight
    // sales through the year, as the platform records them.
    let stamp = Stamp { hlc: pack(1_700_000_000_000, 0), node: NodeId([9; 16]) };
    let field = |name: &str, value: Value| RemoteField { field: name.into(), value, stamp };
    let mut sales = 0;
    for chunk in household_ids.chunks(1000) {
        store
            .write(|writer| {
                for (index, household) in chunk.iter().enumerate() {
                    if index % 3 != 0 {
                        continue;
                    }
                    let village = &villages[index % villages.len()];
                    let scope = &codes[index % codes.len()];
                    let product = writer
                        .save(&schema::PRODUCTS, None, object(json!({"village_id": village, "name": "土鸡蛋", "category": "meat_egg", "producer_household_id": household})))?
                        .id;
                    let listing = uuid::Uuid::now_v7().to_string();
                    writer.apply_remote(
                        &schema::LISTINGS,
                        &listing,
                        &[field("scope_id", json!(scope)), field("product_id", json!(product)), field("platform", json!("taobao")), field("title", json!("土鸡蛋 30枚")),
                          field("category", json!("meat_egg")), field("price_fen", json!(4_500)), field("unit", json!("box")), field("status", json!("submitted")),
                          field("moderation_status", json!("approved"))],
                    )?;
                    for sale in 0..random.below(9) {
                        let sale_id = uuid::Uuid::now_v7().to_string();
                        let date = format!("2025-{:02}-{:02}", 1 + random.below(12), 1 + random.below(28));
                        let amount = 2_000 + random.below(20_000);
                        writer.apply_remote(
                            &schema::SALES,
                            &sale_id,
                            &[field("scope_id", json!(scope)), field("listing_id", json!(listing)), field("order_date", json!(date)),
                              field("status", json!(if sale % 10 == 9 { "refunded" } else { "completed" })), field("gross_fen", json!(amount))],
                        )?;
                        writer.apply_remote(
                            &schema::SALE_ALLOCATIONS,
                            &uuid::Uuid::now_v7().to_string(),
                            &[field("scope_id", json!(scope)), field("sale_id", json!(sale_id)), field("household_id", json!(household)), field("amount_fen", json!(amount))],
                        )?;
                        sales += 1;
                    }
                }
                Ok(())
            })
            .expect("sales");
    }
    println!("  built: {households} households, {} members, {sessions} sessions, {sales} sales", members.len());
    (dir, store)
}

fn run(households: usize) {
    println!("outcomes at {households} households");
    let started = Instant::now();
    let (_dir, store) = build(households);
    println!("  building took {:.1} s", started.elapsed().as_secs_f64());
    let filters = [
        ("all years", Filter { as_of: Some("2025-12-31".into()), ..Filter::default() }),
        ("year 2025", Filter { year: Some(2025), as_of: Some("2025-12-31".into()), ..Filter::default() }),
    ];
    for (name, filter) in &filters {
        // One run to warm the page cache, then ten timed.
        let first = Instant::now();
        let report = report::compute(&store, filter).expect("report");
        let cold = first.elapsed();
        let mut cpu: Vec<Duration> = Vec::new();
        let mut samples: Vec<Duration> = (0..10)
            .map(|_| {
                let (started, used) = (Instant::now(), cpu_time());
                report::summary(&store, filter).expect("summary");
                cpu.push(cpu_time().saturating_sub(used));
                started.elapsed()
            })
            .collect();
        samples.sort();
        cpu.sort();
        let last = report.poverty.years.last().expect("a year");
        println!(
            "  {name}: first {:.1} ms, median {:.1} ms, slowest {:.1} ms (of 10); CPU time median {:.1} ms; {} above the line in {}, {} households reached",
            ms(cold),
            ms(samples[5]),
            ms(samples[9]),
            ms(cpu[5]),
            last.above.count,
            last.year,
            report.skills.reached.count,
        );
    }
    let started = Instant::now();
    let rows = report::drill_down(&store, &filters[1].1, "poverty.2025.above_line").expect("drill-down");
    println!("  drill-down of the households above the line: {} rows in {:.1} ms", rows.len(), ms(started.elapsed()));
}

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|argument| argument.parse().ok()).collect();
    for households in if sizes.is_empty() { vec![10_000] } else { sizes } {
        run(households);
    }
}
