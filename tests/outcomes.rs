//! The outcomes engine over a small known world built through the real write path (and, for
//! what the platform writes, the path a sync brings it by), on a real SQLite file: every
//! indicator is asserted exactly, to the fen, with the households behind it.

mod common;

use common::{household_draft, Fixture};
use furrow::codes::{
    AssessmentPhase, AttendanceStatus, CheckAnswer, Health, HouseholdClosure, IncomeCategory, ListingStatus, MonitoringType, Platform,
    PovertyStatus, ProductCategory, RelationToHead, SaleUnit, TrainingFormat, TrainingTopic, VisitType,
};
use furrow::domain::household::{self, Member};
use furrow::domain::income::{self, IncomeRecord};
use furrow::domain::listing::{self, Listing, Product};
use furrow::domain::training::{self, ScoreEntry, TrainingSession};
use furrow::domain::visit::{self, Visit};
use furrow::hlc::{pack, NodeId, Stamp};
use furrow::record::RemoteField;
use furrow::report::{self, Filter, Share};
use furrow::schema;
use furrow::{OpenOptions, Store};
use serde_json::json;

/// The households, members and records of the world, by the names the assertions use.
struct World {
    fixture: Fixture,
    village_a: String,
    h1: String,
    h2: String,
    h3: String,
    h4: String,
    h5: String,
    h6: String,
    h1_head: String,
    h1_son: String,
    h3_member: String,
}

fn member(store: &mut Store, household_id: &str, name: &str, relation: RelationToHead, health: Option<Health>) -> String {
    let member = Member {
        household_id: Some(household_id.into()),
        name: Some(name.into()),
        relation: Some(relation),
        health,
        ..Member::default()
    };
    household::save_member(store, &member).unwrap().id.unwrap()
}

fn income_record(store: &mut Store, household_id: &str, year: i64, category: IncomeCategory, amount_fen: i64, ecommerce: bool) -> String {
    let record = IncomeRecord {
        household_id: Some(household_id.into()),
        year: Some(year),
        category: Some(category),
        amount_fen: Some(amount_fen),
        is_ecommerce: Some(ecommerce),
        recorded_on: Some("2025-12-01".into()),
        ..IncomeRecord::default()
    };
    income::record(store, &record).unwrap().id.unwrap()
}

fn session(store: &mut Store, title: &str, date: &str, village: &str, topics: Vec<TrainingTopic>, minutes: i64, trainer: Option<&str>) -> String {
    let session = TrainingSession {
        title: Some(title.into()),
        topics: Some(topics),
        format: Some(TrainingFormat::Classroom),
        date: Some(date.into()),
        duration_min: Some(minutes),
        village_id: Some(village.into()),
        trainer_member_id: trainer.map(str::to_owned),
        ..TrainingSession::default()
    };
    training::save_session(store, &session).unwrap().id.unwrap()
}

/// A UUIDv7 made at noon (China time) of a day, as another device would have made it then.
fn id_made_on(date: &str) -> String {
    let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    let seconds = day.and_hms_opt(4, 0, 0).unwrap().and_utc().timestamp() as u64;
    uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, seconds, 0)).to_string()
}

fn platform_stamp() -> Stamp {
    Stamp { hlc: pack(1_700_000_000_000, 0), node: NodeId([9; 16]) }
}

/// A listing created on another device on `created_on`, live on the platform, arriving by sync.
fn live_listing(fixture: &mut Fixture, product_id: &str, created_on: &str) -> String {
    let id = id_made_on(created_on);
    let stamp = platform_stamp();
    let fields: Vec<RemoteField> = [
        ("scope_id", json!("522633101001")),
        ("product_id", json!(product_id)),
        ("platform", json!("taobao")),
        ("title", json!("青山村土鸡蛋 30枚")),
        ("category", json!("meat_egg")),
        ("price_fen", json!(4_500)),
        ("unit", json!("box")),
        ("status", json!("submitted")),
        ("moderation_status", json!("approved")),
    ]
    .into_iter()
    .map(|(field, value)| RemoteField { field: field.into(), value, stamp })
    .collect();
    fixture.store.write(|writer| writer.apply_remote(&schema::LISTINGS, &id, &fields)).unwrap();
    id
}

/// A sale of a listing, credited to one household, as the platform records it and a sync brings it.
fn sale(fixture: &mut Fixture, listing_id: &str, household_id: &str, date: &str, status: &str, amount_fen: i64) {
    let stamp = platform_stamp();
    let field = |name: &str, value: serde_json::Value| RemoteField { field: name.into(), value, stamp };
    let sale_id = uuid::Uuid::now_v7().to_string();
    fixture
        .store
        .write(|writer| {
            writer.apply_remote(
                &schema::SALES,
                &sale_id,
                &[
                    field("scope_id", json!("522633101001")),
                    field("listing_id", json!(listing_id)),
                    field("order_date", json!(date)),
                    field("status", json!(status)),
                    field("gross_fen", json!(amount_fen)),
                ],
            )?;
            writer.apply_remote(
                &schema::SALE_ALLOCATIONS,
                &uuid::Uuid::now_v7().to_string(),
                &[
                    field("scope_id", json!("522633101001")),
                    field("sale_id", json!(sale_id)),
                    field("household_id", json!(household_id)),
                    field("amount_fen", json!(amount_fen)),
                ],
            )
        })
        .unwrap();
}

fn product_of(store: &mut Store, village: &str, household_id: &str) -> String {
    let product = Product {
        village_id: Some(village.into()),
        name: Some("土鸡蛋".into()),
        category: Some(ProductCategory::MeatEgg),
        producer_household_id: Some(household_id.into()),
        ..Product::default()
    };
    listing::save_product(store, &product).unwrap().id.unwrap()
}

fn build() -> World {
    let mut fixture = Fixture::new();
    let village_a = fixture.village("522633101001", "青山村");
    let village_b = fixture.village("522633101002", "高坡村");
    let store = &mut fixture.store;

    // H1 王大山 (青山村): three people.
    let h1 = household::save(store, &household_draft(&village_a, "王大山")).unwrap().id.unwrap();
    let h1_head = member(store, &h1, "王大山", RelationToHead::Head, None);
    member(store, &h1, "刘秀英", RelationToHead::Spouse, None);
    let h1_son = member(store, &h1, "王小山", RelationToHead::Son, None);
    // H2 李二妹 (青山村): two people, exited in 2019.
    let h2 = household::save(
        store,
        &household::Household {
            poverty_status: Some(PovertyStatus::ExitedEarlier),
            exit_year: Some(2019),
            ..household_draft(&village_a, "李二妹")
        },
    )
    .unwrap()
    .id
    .unwrap();
    let h2_head = member(store, &h2, "李二妹", RelationToHead::Head, None);
    let h2_spouse = member(store, &h2, "陈有福", RelationToHead::Spouse, None);
    // H3 张三 (高坡村): one person, a marginal household under monitoring.
    let h3 = household::save(
        store,
        &household::Household { monitoring_type: Some(MonitoringType::Marginal), ..household_draft(&village_b, "张三") },
    )
    .unwrap()
    .id
    .unwrap();
    let h3_member = member(store, &h3, "张三", RelationToHead::Head, None);
    // H4 赵四 (青山村): exited in 2025, unstable; one of its two members has died.
    let h4 = household::save(
        store,
        &household::Household {
            poverty_status: Some(PovertyStatus::NewlyExited),
            exit_year: Some(2025),
            monitoring_type: Some(MonitoringType::UnstableExited),
            ..household_draft(&village_a, "赵四")
        },
    )
    .unwrap()
    .id
    .unwrap();
    let h4_member = member(store, &h4, "赵四", RelationToHead::Head, None);
    member(store, &h4, "赵老汉", RelationToHead::Father, Some(Health::Deceased));
    // H5 钱五 (青山村): moved away; its records stay but it counts nowhere.
    let h5 = household::save(store, &household_draft(&village_a, "钱五")).unwrap().id.unwrap();
    let h5_member = member(store, &h5, "钱五", RelationToHead::Head, None);
    // H6 孙六 (高坡村): one person, never trained, no income recorded.
    let h6 = household::save(store, &household_draft(&village_b, "孙六")).unwrap().id.unwrap();
    member(store, &h6, "孙六", RelationToHead::Head, None);

    // Income. H1 2024: 9,000 wage + 3,000 operating − 1,000 cost = 11,000 yuan for 3 people.
    income_record(store, &h1, 2024, IncomeCategory::Wage, 900_000, false);
    income_record(store, &h1, 2024, IncomeCategory::Operating, 300_000, false);
    income_record(store, &h1, 2024, IncomeCategory::OperatingCost, 100_000, false);
    // H1 2025: a wage of 8,000 corrected to 10,000; 2,000 operating earned online; 5,000 of
    // education support that is not counted for exit.
    let wrong = income_record(store, &h1, 2025, IncomeCategory::Wage, 800_000, false);
    income::correct(
        store,
        &wrong,
        &IncomeRecord {
            household_id: Some(h1.clone()),
            year: Some(2025),
            category: Some(IncomeCategory::Wage),
            amount_fen: Some(1_000_000),
            recorded_on: Some("2025-12-02".into()),
            ..IncomeRecord::default()
        },
    )
    .unwrap();
    income_record(store, &h1, 2025, IncomeCategory::Operating, 200_000, true);
    income_record(store, &h1, 2025, IncomeCategory::Excluded, 500_000, false);
    // H2: 9,000 wage in 2024; 7,000 wage and 1,000 transfer in 2025.
    income_record(store, &h2, 2024, IncomeCategory::Wage, 900_000, false);
    income_record(store, &h2, 2025, IncomeCategory::Wage, 700_000, false);
    income_record(store, &h2, 2025, IncomeCategory::Transfer, 100_000, false);
    // H3: 5,000 of land rent in 2025.
    income_record(store, &h3, 2025, IncomeCategory::Property, 500_000, false);
    // H5, closed: a large wage that must count nowhere.
    income_record(store, &h5, 2025, IncomeCategory::Wage, 10_000_000, false);
    household::close(store, &h5, HouseholdClosure::MovedOut, "2025-11-01", Some("迁往县城")).unwrap();

    // Training. S1 by the assistant; S2 by 王大山, trained at S1; S3 by 张三, trained at S2.
    let s1 = session(store, "商品拍照与定价", "2025-03-01", &village_a, vec![TrainingTopic::Photography, TrainingTopic::Pricing], 120, None);
    training::check_in(store, &s1, &[h1_head.clone(), h4_member.clone(), h5_member.clone()], AttendanceStatus::Present).unwrap();
    training::check_in(store, &s1, &[h2_head.clone()], AttendanceStatus::Late).unwrap();
    training::check_in(store, &s1, &[h3_member.clone()], AttendanceStatus::Absent).unwrap();
    let late = training::attendance(store, &s1).unwrap().into_iter().find(|row| row.member_id.as_deref() == Some(h2_head.as_str())).unwrap();
    store.write(|writer| writer.save(&schema::ATTENDANCE, late.id.as_deref(), json!({"minutes_attended": 90}).as_object().unwrap().clone())).unwrap();
    let s2 = session(store, "农户互教：拍照", "2025-04-10", &village_b, vec![TrainingTopic::Photography], 60, Some(&h1_head));
    training::check_in(store, &s2, &[h3_member.clone(), h2_spouse.clone()], AttendanceStatus::Present).unwrap();
    let s3 = session(store, "农户互教：定价", "2025-05-20", &village_a, vec![TrainingTopic::Pricing], 90, Some(&h3_member));
    training::check_in(store, &s3, &[h1_son.clone()], AttendanceStatus::Present).unwrap();
    // Scores at S1: photography 40 → 70 and 50 → 55, pricing 60 → 80; 赵四 only before.
    let cell = |member: &str, topic: TrainingTopic, score: i64| ScoreEntry { member_id: member.into(), topic, score: Some(score) };
    training::save_scores(
        store,
        &s1,
        AssessmentPhase::Pre,
        "2025-03-01",
        &[cell(&h1_head, TrainingTopic::Photography, 40), cell(&h2_head, TrainingTopic::Photography, 50), cell(&h1_head, TrainingTopic::Pricing, 60), cell(&h4_member, TrainingTopic::Photography, 30)],
    )
    .unwrap();
    training::save_scores(
        store,
        &s1,
        AssessmentPhase::Post,
        "2025-03-01",
        &[cell(&h1_head, TrainingTopic::Photography, 70), cell(&h2_head, TrainingTopic::Photography, 55), cell(&h1_head, TrainingTopic::Pricing, 80)],
    )
    .unwrap();

    // Basic-needs checks: 张三 all yes; 赵四 one no.
    let check = |household: &str, water: CheckAnswer| Visit {
        household_id: Some(household.into()),
        visit_type: Some(VisitType::Home),
        visited_at: Some("2025-10-08T10:00:00+08:00".into()),
        food_clothing_ok: Some(CheckAnswer::Yes),
        education_ok: Some(CheckAnswer::Yes),
        medical_ok: Some(CheckAnswer::Yes),
        housing_ok: Some(CheckAnswer::Yes),
        water_ok: Some(water),
        ..Visit::default()
    };
    visit::save(store, &check(&h3, CheckAnswer::Yes)).unwrap();
    visit::save(store, &check(&h4, CheckAnswer::No)).unwrap();

    // Products and listings: 王大山's listed 19 days after his first session, 李二妹's 75 days
    // after, 张三's only now (a local draft).
    let p1 = product_of(store, &village_a, &h1);
    let p2 = product_of(store, &village_a, &h2);
    let p3 = product_of(store, &village_b, &h3);
    listing::save_listing(
        store,
        &Listing {
            product_id: Some(p3),
            platform: Some(Platform::Taobao),
            title: Some("高坡村土鸡蛋".into()),
            category: Some(ProductCategory::MeatEgg),
            price_fen: Some(4_000),
            unit: Some(SaleUnit::Box),
            status: Some(ListingStatus::Draft),
            ..Listing::default()
        },
    )
    .unwrap();
    let l1 = live_listing(&mut fixture, &p1, "2025-03-20");
    let l2 = live_listing(&mut fixture, &p2, "2025-05-15");
    // Sales: 王大山 300 + 200.01 yuan in 2025; 李二妹 100 yuan in 2024 and a cancelled order;
    // 张三 50 yuan in January 2025.
    sale(&mut fixture, &l1, &h1, "2025-02-10", "completed", 30_000);
    sale(&mut fixture, &l1, &h1, "2025-09-15", "completed", 20_001);
    sale(&mut fixture, &l2, &h2, "2024-11-20", "completed", 10_000);
    sale(&mut fixture, &l2, &h2, "2025-06-01", "cancelled", 999);
    sale(&mut fixture, &l2, &h3, "2025-01-15", "completed", 5_000);

    World { fixture, village_a, h1, h2, h3, h4, h5, h6, h1_head, h1_son, h3_member }
}

fn ids(list: &[&String]) -> Vec<String> {
    let mut ids: Vec<String> = list.iter().map(|id| (*id).clone()).collect();
    ids.sort();
    ids
}

fn year_2025() -> Filter {
    Filter { year: Some(2025), as_of: Some("2025-12-31".into()), ..Filter::default() }
}

#[test]
fn skills_are_counted_exactly() {
    let world = build();
    let report = report::compute(&world.fixture.store, &year_2025()).unwrap();
    let skills = &report.skills;
    assert_eq!((skills.sessions, skills.minutes), (3, 270));
    // 王大山 120 + 李二妹 90 (late) + 赵四 120 + 钱五's 120 do not count (closed); S2 60 × 2; S3 90.
    assert_eq!(skills.person_minutes, 540);
    let topics: Vec<(TrainingTopic, i64, i64)> = skills.by_topic.iter().map(|topic| (topic.topic, topic.sessions, topic.minutes)).collect();
    assert_eq!(topics, vec![(TrainingTopic::Photography, 2, 180), (TrainingTopic::Pricing, 2, 210)]);
    assert_eq!(skills.households.households, ids(&[&world.h1, &world.h2, &world.h3, &world.h4, &world.h6]));
    assert_eq!(skills.reached.households, ids(&[&world.h1, &world.h2, &world.h3, &world.h4]));
    assert_eq!(skills.coverage, Share::of(4, 5));
    assert_eq!(skills.coverage.per_mille, Some(800));
    assert_eq!((skills.members_reached, skills.members), (6, 8));
    assert_eq!(skills.member_coverage.per_mille, Some(750));
    let village_a = skills.by_village.iter().find(|village| village.village_id == world.village_a).unwrap();
    assert_eq!((village_a.reached.count, village_a.households.count), (3, 3));
    let village_b = skills.by_village.iter().find(|village| village.village_id != world.village_a).unwrap();
    assert_eq!(village_b.coverage, Share { numerator: 1, denominator: 2, per_mille: Some(500) });
    // Seven check-ins of the register's members, one absent.
    assert_eq!(skills.attendance, Share { numerator: 6, denominator: 7, per_mille: Some(857) });

    // Scores: three pairs, gains 30, 5 and 20; two reached 60.
    let all = &skills.scores;
    assert_eq!(all.pairs, 3);
    assert_eq!(all.mean_pre, Share::of(150, 3));
    assert_eq!(all.mean_post, Share::of(205, 3));
    assert_eq!(all.mean_gain, Share { numerator: 55, denominator: 3, per_mille: Some(18_333) });
    assert_eq!(all.pass_share, Share { numerator: 2, denominator: 3, per_mille: Some(667) });
    assert_eq!(all.households.households, ids(&[&world.h1, &world.h2]));
    assert_eq!(all.passed_households.households, ids(&[&world.h1]));
    let photography = skills.scores_by_topic.iter().find(|gain| gain.topic == Some(TrainingTopic::Photography)).unwrap();
    assert_eq!((photography.pairs, photography.mean_gain, photography.passed), (2, Share::of(35, 2), 1));
    assert_eq!(photography.mean_gain.per_mille, Some(17_500));
    let pricing = skills.scores_by_topic.iter().find(|gain| gain.topic == Some(TrainingTopic::Pricing)).unwrap();
    assert_eq!((pricing.pairs, pricing.mean_gain, pricing.pass_share.per_mille), (1, Share::of(20, 1), Some(1000)));

    // Activation: all four trained households are observed 90 days; 王大山 listed within 30
    // days, 李二妹 within 90.
    let within = |days: i64| skills.activation.iter().find(|activation| activation.days == days).unwrap();
    assert_eq!(within(30).eligible.count, 4);
    assert_eq!(within(30).activated.households, ids(&[&world.h1]));
    assert_eq!(within(30).share.per_mille, Some(250));
    assert_eq!(within(90).activated.households, ids(&[&world.h1, &world.h2]));
    assert_eq!(within(90).share.per_mille, Some(500));

    // One topic: pricing only.
    let pricing_only = report::compute(&world.fixture.store, &Filter { topic: Some(TrainingTopic::Pricing), ..year_2025() }).unwrap();
    assert_eq!((pricing_only.skills.sessions, pricing_only.skills.minutes), (2, 210));
    assert_eq!(pricing_only.skills.reached.households, ids(&[&world.h1, &world.h2, &world.h4]));
    assert_eq!(pricing_only.skills.scores.pairs, 1);
}

#[test]
fn poverty_reduction_is_counted_to_the_fen() {
    let world = build();
    let store = &world.fixture.store;
    let report = report::compute(store, &year_2025()).unwrap();
    let poverty = &report.poverty;
    assert_eq!(poverty.years.len(), 1);
    let year = &poverty.years[0];
    assert_eq!((year.year, year.line_fen), (2025, Some(400_000)));
    // 王大山: 10,000 + 2,000 + 500.01 of sales = 12,500.01 yuan for 3 → 4,166.67 per person.
    // 李二妹: 8,000 for 2 → 4,000.00, not above the 4,000 line. 张三: 5,000 + 50 for 1.
    assert_eq!(year.assessed.households, ids(&[&world.h1, &world.h2, &world.h3]));
    assert_eq!(year.above.households, ids(&[&world.h1, &world.h3]));
    assert_eq!(year.below.households, ids(&[&world.h2]));
    assert_eq!(year.above_share, Share { numerator: 2, denominator: 3, per_mille: Some(667) });
    assert_eq!(year.mean_per_capita_fen, Share::of(416_667 + 400_000 + 505_000, 3));
    assert_eq!(year.net_fen, 1_250_001 + 800_000 + 505_000);
    assert_eq!(year.ecommerce_fen, 250_001 + 5_000);
    assert_eq!(year.ecommerce_share, Share { numerator: 255_001, denominator: 2_555_001, per_mille: Some(100) });
    assert_eq!(year.ecommerce_households.households, ids(&[&world.h1, &world.h3]));
    // 王大山 was below in 2024 (3,666.66 per person); 李二妹 was above and fell back; 张三 has
    // no 2024 figure.
    assert_eq!(year.crossed.households, ids(&[&world.h1]));
    // The household page's arithmetic agrees, household by household.
    for (household, per_capita) in [(&world.h1, 416_667), (&world.h2, 400_000), (&world.h3, 505_000)] {
        let page = income::by_year(store, household).unwrap();
        assert_eq!(page.iter().find(|year| year.year == 2025).unwrap().per_capita_fen, Some(per_capita));
    }
    assert_eq!(poverty.exited.households, ids(&[&world.h4]));
    assert_eq!(poverty.monitored.households, ids(&[&world.h3, &world.h4]));
    assert_eq!(poverty.risk_removed.households, ids(&[&world.h3]));

    // Without a period: both years, and every exited household.
    let all = report::compute(store, &Filter { as_of: Some("2025-12-31".into()), ..Filter::default() }).unwrap();
    let years: Vec<(i64, i64, i64)> = all.poverty.years.iter().map(|year| (year.year, year.assessed.count, year.above.count)).collect();
    assert_eq!(years, vec![(2024, 2, 1), (2025, 3, 2)]);
    assert_eq!(all.poverty.years[0].net_fen, 1_100_000 + 910_000);
    assert_eq!(all.poverty.exited.households, ids(&[&world.h2, &world.h4]));
    // One village: 青山村 only.
    let village = report::compute(store, &Filter { village_id: Some(world.village_a.clone()), ..year_2025() }).unwrap();
    assert_eq!(village.poverty.years[0].above.households, ids(&[&world.h1]));
    assert_eq!(village.poverty.monitored.households, ids(&[&world.h4]));
    assert!(!village.poverty.years[0].assessed.households.contains(&world.h5), "a closed household counts nowhere");
}

#[test]
fn sustainability_follows_sales_over_time() {
    let world = build();
    let report = report::compute(&world.fixture.store, &year_2025()).unwrap();
    let sustainability = &report.sustainability;
    // First sales in 2025: 王大山 (10 February) and 张三 (15 January); 李二妹 first sold in 2024.
    assert_eq!(sustainability.first_sales.households, ids(&[&world.h1, &world.h3]));
    let at = |months: u32| sustainability.still_selling.iter().find(|point| point.months == months).unwrap();
    assert_eq!(at(6).eligible.households, ids(&[&world.h1, &world.h3]));
    assert_eq!(at(6).still.households, ids(&[&world.h1]));
    assert_eq!(at(6).share.per_mille, Some(500));
    // Twelve months after January 2025 lies beyond the last day of 2025: nobody is observed yet.
    assert_eq!(at(12).share, Share { numerator: 0, denominator: 0, per_mille: None });
    assert_eq!(at(8).still.count, 0, "王大山's last sale was seven months after his first");
    assert_eq!(sustainability.months_by_year.len(), 1);
    let months = &sustainability.months_by_year[0];
    assert_eq!((months.year, months.selling.count, months.months), (2025, 2, 3));
    assert_eq!(months.mean_months.per_mille, Some(1500));
    assert_eq!(sustainability.selling.households, ids(&[&world.h1, &world.h3]));
    assert_eq!(sustainability.repeat.households, ids(&[&world.h1]));
    assert_eq!(sustainability.repeat_share.per_mille, Some(500));
    assert_eq!((sustainability.sales, sustainability.sales_fen), (3, 55_001));
    assert_eq!(sustainability.listings_live, 2);
    assert_eq!(sustainability.listing_households.households, ids(&[&world.h1, &world.h2]));

    // Taken a year later, twelve months can be observed for both.
    let later = report::compute(&world.fixture.store, &Filter { as_of: Some("2026-06-30".into()), ..year_2025() }).unwrap();
    let twelve = later.sustainability.still_selling.iter().find(|point| point.months == 12).unwrap();
    assert_eq!((twelve.eligible.count, twelve.still.count), (2, 0));
}

#[test]
fn reproducibility_follows_who_trained_whom() {
    let world = build();
    let report = report::compute(&world.fixture.store, &year_2025()).unwrap();
    let reproducibility = &report.reproducibility;
    assert_eq!((reproducibility.assistant_sessions, reproducibility.farmer_sessions), (1, 2));
    assert_eq!((reproducibility.farmer_trainers, reproducibility.went_on_to_train), (2, 2));
    assert_eq!(reproducibility.farmer_trainer_households.households, ids(&[&world.h1, &world.h3]));
    // 张三 and 陈有福 were first trained by 王大山, 王小山 by 张三.
    assert_eq!(reproducibility.reached_by_farmers.households, ids(&[&world.h1, &world.h2, &world.h3]));
    let lineage: Vec<(&str, Option<&str>, &str, i64, i64)> = reproducibility
        .lineage
        .iter()
        .map(|node| (node.id.as_str(), node.parent.as_deref(), node.name.as_str(), node.sessions, node.trainees))
        .collect();
    let mut expected = vec![
        (report::reproducibility::ASSISTANT, None, "", 1, 3),
        (world.h1_head.as_str(), Some(report::reproducibility::ASSISTANT), "王大山", 1, 2),
        (world.h3_member.as_str(), Some(world.h1_head.as_str()), "张三", 1, 1),
    ];
    expected[1..].sort_by_key(|node| node.0);
    assert_eq!(lineage, expected);
    let taught_by_zhang = reproducibility.lineage.iter().find(|node| node.id == world.h3_member).unwrap();
    assert_eq!(taught_by_zhang.trained.households, ids(&[&world.h1]), "张三 trained 王小山 of 王大山's household");
    let caseload = &reproducibility.caseload;
    assert_eq!(caseload.households.count, 5);
    assert_eq!((caseload.villages, caseload.sales, caseload.sales_fen), (2, 3, 55_001));
    assert_eq!(caseload.selling.households, ids(&[&world.h1, &world.h3]));
    let _ = (&world.h1_son, &world.h6, &world.h5);
}

#[test]
fn a_figure_opens_the_households_behind_it() {
    let world = build();
    let store = &world.fixture.store;
    let rows = report::drill_down(store, &year_2025(), "poverty.2025.above_line").unwrap();
    let heads: Vec<&str> = rows.iter().map(|row| row.head_name.as_str()).collect();
    assert_eq!(heads, vec!["王大山", "张三"], "by village (青山村 first), then register number and head");
    assert_eq!(rows.len(), 2);
    let mut found: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
    found.sort();
    assert_eq!(found, ids(&[&world.h1, &world.h3]));
    // The summary keeps the figures and leaves the lists to the drill-down.
    let summary = report::summary(store, &year_2025()).unwrap();
    assert_eq!(summary.poverty.years[0].above.count, 2);
    assert!(summary.poverty.years[0].above.households.is_empty());
    // An unknown figure and a bad filter are refused with a message in both languages.
    assert!(matches!(report::drill_down(store, &year_2025(), "poverty.1999.nothing"), Err(furrow::Error::NotFound { .. })));
    let Err(furrow::Error::Validation(errors)) = report::compute(store, &Filter { from: Some("2025-13-01".into()), ..Filter::default() }) else {
        panic!("a bad date is refused")
    };
    assert_eq!(errors[0].field, "from");
    assert!(errors[0].message_zh.contains("日期"));
}

#[test]
fn the_trainer_is_a_synced_reference_and_old_sessions_keep_their_rows() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("furrow.db");
    // A store of the version before trainers were recorded, with a session in it.
    {
        let mut options = OpenOptions::file(&path);
        options.migrate_to = Some(13);
        drop(Store::open(&options).unwrap());
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute(
                "INSERT INTO training_sessions (id, scope_id, title, topics, format, date, village_id, trainer)
                 VALUES ('0190a000-0000-7000-8000-000000000001', '522633101001', '旧培训', '[\"pricing\"]', 'classroom', '2024-05-01', NULL, '县商务局')",
                [],
            )
            .unwrap();
    }
    let mut store = Store::open(&OpenOptions::file(&path)).unwrap();
    let old = training::get_session(&store, "0190a000-0000-7000-8000-000000000001").unwrap();
    assert_eq!((old.title.as_deref(), old.trainer.as_deref(), old.trainer_member_id), (Some("旧培训"), Some("县商务局"), None));

    let village = furrow::domain::village::save(
        &mut store,
        &furrow::domain::village::Village { code: Some("522633101001".into()), name: Some("青山村".into()), ..Default::default() },
    )
    .unwrap()
    .id
    .unwrap();
    let household = household::save(&mut store, &household_draft(&village, "王大山")).unwrap().id.unwrap();
    let farmer = member(&mut store, &household, "王大山", RelationToHead::Head, None);
    let given = session(&mut store, "农户互教", "2025-04-10", &village, vec![TrainingTopic::Photography], 60, Some(&farmer));
    assert_eq!(training::get_session(&store, &given).unwrap().trainer_member_id.as_deref(), Some(farmer.as_str()));
    let queued: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT value FROM sync_outbox WHERE tbl = 'training_sessions' AND row_id = ?1 AND field = 'trainer_member_id'", [&given], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(queued, json!(farmer).to_string());
    // A trainer that is not a member is refused beside its field, and nothing is saved.
    let saved = training::get_session(&store, &given).unwrap();
    let Err(furrow::Error::Validation(errors)) =
        training::save_session(&mut store, &TrainingSession { trainer_member_id: Some(uuid::Uuid::now_v7().to_string()), ..saved })
    else {
        panic!("an unknown trainer is refused")
    };
    assert_eq!(errors[0].field, "trainer_member_id");
    assert_eq!(training::get_session(&store, &given).unwrap().trainer_member_id.as_deref(), Some(farmer.as_str()));
    // The picker offers the trained farmers of any village and the session village's members.
    let candidates = training::trainer_candidates(&store, Some(&village)).unwrap();
    assert_eq!(candidates.iter().map(|candidate| candidate.member_name.as_str()).collect::<Vec<_>>(), vec!["王大山"]);
    assert!(!candidates[0].trained);
    // A trainer who is deleted leaves the session naming no trainer, and it can be edited again.
    household::delete_member(&mut store, &farmer).unwrap();
    let after = training::get_session(&store, &given).unwrap();
    assert_eq!((after.title.as_deref(), after.trainer_member_id.as_deref()), (Some("农户互教"), None));
    training::save_session(&mut store, &TrainingSession { title: Some("农户互教（改）".into()), ..after }).unwrap();
    assert_eq!(training::get_session(&store, &given).unwrap().title.as_deref(), Some("农户互教（改）"));
}
