//! Device store benchmark: bulk insert through the write path, committed local edit latency,
//! roster search latency and a household's full picture, on 10k and 100k households each with
//! members and a year of income records and visits, each on a plain store and on an encrypted
//! one (SQLCipher with the device's data key), printed side by side with the time to open and
//! unlock the encrypted store (Argon2id included). Run with `cargo bench --bench store` (add
//! `-- 10000` to run only the smaller size).

use std::time::{Duration, Instant};

use furrow::codes::{HouseholdAttribute, IncomeCategory, PovertyCause, PovertyStatus, RelationToHead, Sex, VisitType};
use furrow::domain::household::{self, RosterQuery};
use furrow::schema;
use furrow::{OpenOptions, Store};
use serde_json::{json, Map, Value};

const SURNAMES: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "罗", "高", "林"];
const GIVEN: &[&str] = &["小", "梅", "建", "国", "桂", "英", "大", "山", "秀", "兰", "明", "华", "春", "生", "玉", "芳", "德", "福", "海", "云", "金", "平", "红", "军"];

/// A small deterministic generator, so every run builds the same data.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    fn name(&mut self) -> String {
        let mut name = self.pick(SURNAMES).to_owned();
        for _ in 0..1 + self.next() % 2 {
            name.push_str(self.pick(GIVEN));
        }
        name
    }
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * fraction).round() as usize]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// The figures compared between the plain and the encrypted store.
struct Figures {
    bulk_records_per_second: f64,
    edit_p99_ms: Vec<(String, f64)>,
    search_p95_ms: f64,
    open_unlock_ms: Option<(f64, f64)>,
}

/// The device passphrase of the encrypted runs.
const PASSPHRASE: &str = "bench-passphrase-2024";

fn run(households: usize, encrypted: bool) -> Figures {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("bench.db");
    let tag = if encrypted { "encrypted" } else { "plain" };
    let mut store = if encrypted {
        furrow::encryption::set_up(&path, PASSPHRASE).expect("encrypted store").0
    } else {
        Store::open(&OpenOptions::file(&path)).expect("store")
    };
    let mut figures = Figures { bulk_records_per_second: 0.0, edit_p99_ms: Vec::new(), search_p95_ms: 0.0, open_unlock_ms: None };
    let mut random = Random(0x9E37_79B9_7F4A_7C15);
    let villages: Vec<String> = (0..20)
        .map(|index| {
            store
                .write(|writer| {
                    writer.save(&schema::VILLAGES, None, object(json!({"code": format!("5226331010{index:02}"), "name": format!("{}村", ["高坡", "水口", "龙塘", "石门", "新寨"][index % 5]) })))
                })
                .expect("village")
                .id
        })
        .collect();

    // Bulk insert: each household with three members, four income records and a visit, through
    // the one write path, a thousand households per transaction.
    let started = Instant::now();
    let mut records = 0usize;
    let mut household_ids = Vec::with_capacity(households);
    for chunk in 0..households.div_ceil(1000) {
        let count = 1000.min(households - chunk * 1000);
        store
            .write(|writer| {
                for index in 0..count {
                    let number = chunk * 1000 + index;
                    let head = random.name();
                    let village = &villages[number % villages.len()];
                    let phone = format!("13{:09}", random.next() % 1_000_000_000);
                    let household = writer.save(
                        &schema::HOUSEHOLDS,
                        None,
                        object(json!({
                            "register_no": format!("522633{number:07}"),
                            "village_id": village,
                            "head_name": head,
                            "phone": phone,
                            "attribute": HouseholdAttribute::General.code(),
                            "poverty_status": if number % 3 == 0 { PovertyStatus::NewlyExited.code() } else { PovertyStatus::NotExited.code() },
                            "main_cause": PovertyCause::DEF.values[number % 11].code,
                        })),
                    )?;
                    for (relation, name) in [(RelationToHead::Head, head.clone()), (RelationToHead::Spouse, random.name()), (RelationToHead::Son, random.name())] {
                        writer.save(
                            &schema::MEMBERS,
                            None,
                            object(json!({"household_id": household.id, "name": name, "relation": relation.code(), "sex": Sex::Female.code()})),
                        )?;
                    }
                    for (category, amount) in [
                        (IncomeCategory::Wage, 600_000),
                        (IncomeCategory::Operating, 300_000 + (random.next() % 200_000) as i64),
                        (IncomeCategory::OperatingCost, 80_000),
                        (IncomeCategory::Transfer, 120_000),
                    ] {
                        writer.save(
                            &schema::INCOME_RECORDS,
                            None,
                            object(json!({"household_id": household.id, "year": 2024, "category": category.code(), "amount_fen": amount, "recorded_on": "2024-12-01"})),
                        )?;
                    }
                    writer.save(
                        &schema::VISITS,
                        None,
                        object(json!({"household_id": household.id, "visit_type": VisitType::Home.code(), "visited_at": "2024-06-01T09:00:00+08:00", "next_visit_date": "2024-07-01"})),
                    )?;
                    records += 9;
                    household_ids.push(household.id);
                }
                Ok(())
            })
            .expect("bulk insert");
    }
    let elapsed = started.elapsed();
    let outbox = store.pending_changes().expect("count");
    // A text search before the index has caught up reads the households themselves.
    let mut samples = Vec::new();
    for query in ["小梅", "13900", "王建国", "SK-01"] {
        let started = Instant::now();
        household::search(&store, &RosterQuery { text: Some(query.into()), limit: Some(100), ..RosterQuery::default() }).expect("search");
        samples.push(started.elapsed());
    }
    println!(
        "[{households} households, {tag}] text search while the index is rebuilt (reads the households): p50 {:.1} ms, max {:.1} ms",
        ms(percentile(&mut samples, 0.50)),
        ms(*samples.last().expect("samples"))
    );
    // What the app does after an import or a first sync: build the search index, refresh the
    // planner's statistics and fold the write-ahead log back into the database.
    let started = Instant::now();
    let indexed = store.flush_search_index().expect("search index");
    println!(
        "[{households} households, {tag}] search index built after the import: {indexed} households in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    store.optimize().expect("optimize");
    store.checkpoint().expect("checkpoint");
    println!(
        "[{households} households, {tag}] bulk insert: {records} records ({outbox} field changes queued) in {:.1} s = {:.0} records/s, {:.0} field changes/s",
        elapsed.as_secs_f64(),
        records as f64 / elapsed.as_secs_f64(),
        outbox as f64 / elapsed.as_secs_f64()
    );
    figures.bulk_records_per_second = records as f64 / elapsed.as_secs_f64();

    // Local edit latency: one field of one household, committed, including the clock and the
    // outbox entry. A note is not in the search index; a phone number is, so its edit also
    // rewrites the household's search document.
    for (label, field) in [("a note", "notes"), ("a phone number (re-indexed for search)", "phone")] {
        let mut samples = Vec::new();
        for round in 0..2000 {
            let id = &household_ids[(random.next() % household_ids.len() as u64) as usize];
            let value = if field == "phone" { format!("15{:09}", round) } else { format!("第{round}次走访后更新") };
            let started = Instant::now();
            store.write(|writer| writer.save(&schema::HOUSEHOLDS, Some(id), object(json!({ field: value })))).expect("edit");
            samples.push(started.elapsed());
        }
        println!(
            "[{households} households, {tag}] local edit of {label} (row + clock + outbox, committed): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            ms(percentile(&mut samples, 0.50)),
            ms(percentile(&mut samples, 0.99)),
            ms(*samples.last().expect("samples"))
        );
        figures.edit_p99_ms.push((label.to_owned(), ms(percentile(&mut samples, 0.99))));
    }

    // The edits above left their households waiting for the search index; the app's housekeeping
    // thread rewrites them in batches of 200 within a second or two of idling, as here.
    let started = Instant::now();
    let mut reindexed = 0;
    loop {
        let done = store.flush_search_batch(200).expect("re-index");
        reindexed += done;
        if done < 200 {
            break;
        }
    }
    println!(
        "[{households} households, {tag}] re-indexing the {reindexed} households edited above, in batches of 200: {:.0} ms in all",
        ms(started.elapsed())
    );

    // Roster search latency over several kinds of query, on an up-to-date index.
    let queries: Vec<(&str, RosterQuery)> = vec![
        ("two-character name", RosterQuery { text: Some("小梅".into()), limit: Some(100), ..RosterQuery::default() }),
        ("three-character name", RosterQuery { text: Some("王建国".into()), limit: Some(100), ..RosterQuery::default() }),
        ("phone fragment", RosterQuery { text: Some("1380".into()), limit: Some(100), ..RosterQuery::default() }),
        ("register number", RosterQuery { text: Some(format!("522633{:07}", households / 2)), limit: Some(100), ..RosterQuery::default() }),
        ("village filter", RosterQuery { village_id: Some(villages[3].clone()), limit: Some(100), ..RosterQuery::default() }),
        ("rare single character", RosterQuery { text: Some("军".into()), limit: Some(100), ..RosterQuery::default() }),
        ("no match", RosterQuery { text: Some("不存在".into()), limit: Some(100), ..RosterQuery::default() }),
    ];
    let mut all = Vec::new();
    for (label, query) in &queries {
        let mut samples = Vec::new();
        let mut found = 0;
        for _ in 0..50 {
            let started = Instant::now();
            found = household::search(&store, query).expect("search").len();
            samples.push(started.elapsed());
        }
        all.extend(samples.iter().copied());
        println!(
            "[{households} households, {tag}] roster search, {label}: {found} shown, p50 {:.2} ms, p95 {:.2} ms",
            ms(percentile(&mut samples, 0.50)),
            ms(percentile(&mut samples, 0.95))
        );
    }
    println!("[{households} households, {tag}] roster search, all queries: p95 {:.2} ms", ms(percentile(&mut all, 0.95)));
    figures.search_p95_ms = ms(percentile(&mut all, 0.95));

    let mut samples = Vec::new();
    for _ in 0..200 {
        let id = &household_ids[(random.next() % household_ids.len() as u64) as usize];
        let started = Instant::now();
        furrow::domain::household_view::view(&store, id).expect("view");
        samples.push(started.elapsed());
    }
    println!(
        "[{households} households, {tag}] household full picture: p50 {:.2} ms, p95 {:.2} ms; peak RSS so far {:.0} MB",
        ms(percentile(&mut samples, 0.50)),
        ms(percentile(&mut samples, 0.95)),
        rss_mb()
    );
    let size = std::fs::metadata(dir.path().join("bench.db")).map(|meta| meta.len()).unwrap_or(0)
        + std::fs::metadata(dir.path().join("bench.db-wal")).map(|meta| meta.len()).unwrap_or(0);
    println!("[{households} households, {tag}] database size {:.0} MB", size as f64 / 1e6);
    if encrypted {
        // What a start costs: the passphrase's Argon2id, then opening the store with the key
        // (migrations checked, search index version checked, planner statistics).
        drop(store);
        let started = Instant::now();
        furrow::vault::Vault::load(&path).expect("key file").unlock(PASSPHRASE).expect("unlock");
        let kdf = ms(started.elapsed());
        let started = Instant::now();
        let (store, _key) = furrow::encryption::unlock(&path, PASSPHRASE).expect("unlock");
        let whole = ms(started.elapsed());
        assert_eq!(store.search_pending().expect("pending"), 0);
        println!("[{households} households, {tag}] open and unlock: {whole:.0} ms in all; Argon2id alone, timed just before: {kdf:.0} ms");
        figures.open_unlock_ms = Some((whole, kdf));
    }
    figures
}

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|arg| arg.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![10_000, 100_000] } else { sizes };
    for households in sizes {
        let plain = run(households, false);
        let encrypted = run(households, true);
        println!("\n[{households} households] plain vs encrypted (SQLCipher, AES-256):");
        println!("  {:<58} {:>12} {:>12}", "", "plain", "encrypted");
        println!("  {:<58} {:>12.0} {:>12.0}", "bulk insert, records/s", plain.bulk_records_per_second, encrypted.bulk_records_per_second);
        for ((label, plain_p99), (_, encrypted_p99)) in plain.edit_p99_ms.iter().zip(&encrypted.edit_p99_ms) {
            println!("  {:<58} {:>12.3} {:>12.3}", format!("edit of {label}, p99 ms"), plain_p99, encrypted_p99);
        }
        println!("  {:<58} {:>12.2} {:>12.2}", "roster search, all queries, p95 ms", plain.search_p95_ms, encrypted.search_p95_ms);
        if let Some((whole, kdf)) = encrypted.open_unlock_ms {
            println!("  {:<58} {:>12} {:>12.0}", "open and unlock, ms (Argon2id included)", "-", whole);
            println!("  {:<58} {:>12} {:>12.0}", "  Argon2id alone (timed just before), ms", "-", kdf);
        }
    }
}
