//! 技能提升 Skills: what training was given, whom it reached, what the scores say it changed, and
//! whether trained households went on to list produce (activation).

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::{add_days, Data, Indicator, Scope, Share};
use crate::codes::TrainingTopic;
use crate::error::Result;

/// The score at or above which a member has passed a topic.
pub const PASS_MARK: i64 = 60;

/// The days after a household's first session within which a listing counts as activation.
pub const ACTIVATION_DAYS: [i64; 2] = [30, 90];

/// Training given on one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TopicTraining {
    /// 主题 The topic.
    pub topic: TrainingTopic,
    /// 场次 Sessions held on it.
    pub sessions: i64,
    /// 培训时长（分钟） Their minutes.
    pub minutes: i64,
}

/// Households and members reached in one village.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct VillageCoverage {
    /// The village.
    pub village_id: String,
    /// 在册户 The households in its register.
    pub households: Indicator,
    /// 已培训户 Those reached by training.
    pub reached: Indicator,
    /// 覆盖率 Reached out of the register.
    pub coverage: Share,
}

/// Scores before and after training on one topic (or on all, when `topic` is `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ScoreGain {
    /// 主题 The topic; `None` for every topic together.
    pub topic: Option<TrainingTopic>,
    /// 配对人次 Member and topic pairs with a score before and after.
    pub pairs: i64,
    /// households of the paired members.
    pub households: Indicator,
    /// 平均培训前分数 Mean score before (sum over pairs).
    pub mean_pre: Share,
    /// 平均培训后分数 Mean score after.
    pub mean_post: Share,
    /// 平均提高 Mean gain in points (post minus pre).
    pub mean_gain: Share,
    /// 达标人次 Pairs whose score after reached the pass mark.
    pub passed: i64,
    /// Households with a member who passed.
    pub passed_households: Indicator,
    /// 达标率 Passed out of pairs.
    pub pass_share: Share,
}

/// Trained households that listed produce soon after their first session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Activation {
    /// 天数 Within how many days of the first session.
    pub days: i64,
    /// 可观察户 Trained households whose first session was at least `days` days before the day
    /// the figures are taken on.
    pub eligible: Indicator,
    /// 已上架户 Of those, the ones with a listing created within `days` days.
    pub activated: Indicator,
    /// 激活率 Activated out of eligible.
    pub share: Share,
}

/// 技能提升 The skills outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Skills {
    /// 培训场次 Sessions held (in the village, when one is chosen).
    pub sessions: i64,
    /// 培训时长（分钟） Their minutes.
    pub minutes: i64,
    /// 人·分钟 Minutes attended, summed over the people who came.
    pub person_minutes: i64,
    /// Per topic; a session on two topics counts in both.
    pub by_topic: Vec<TopicTraining>,
    /// 在册户 The households in the register.
    pub households: Indicator,
    /// 已培训户 Households with a member who came to a session.
    pub reached: Indicator,
    /// 户覆盖率 Reached out of the register.
    pub coverage: Share,
    /// 已培训人数 Members who came.
    pub members_reached: i64,
    /// 在册人口 Living members of the register's households.
    pub members: i64,
    /// 人员覆盖率 Members who came out of all.
    pub member_coverage: Share,
    /// Coverage in each village.
    pub by_village: Vec<VillageCoverage>,
    /// 出勤率 Check-ins that came (present, late, left early) out of all check-ins.
    pub attendance: Share,
    /// Scores before and after, every topic together.
    pub scores: ScoreGain,
    /// Per topic.
    pub scores_by_topic: Vec<ScoreGain>,
    /// Activation within 30 and 90 days.
    pub activation: Vec<Activation>,
}

impl Skills {
    pub(crate) fn indicators_mut(&mut self) -> Vec<&mut Indicator> {
        let mut all = vec![&mut self.households, &mut self.reached, &mut self.scores.households, &mut self.scores.passed_households];
        for village in &mut self.by_village {
            all.push(&mut village.households);
            all.push(&mut village.reached);
        }
        for gain in &mut self.scores_by_topic {
            all.push(&mut gain.households);
            all.push(&mut gain.passed_households);
        }
        for activation in &mut self.activation {
            all.push(&mut activation.eligible);
            all.push(&mut activation.activated);
        }
        all
    }
}

/// One member's scores on one topic.
struct Pair {
    household: String,
    pre: Option<(String, i64)>,
    post: Option<(String, i64)>,
}

/// Computes the skills outcome.
pub fn compute(conn: &Connection, data: &Data, scope: &Scope) -> Result<Skills> {
    // Sessions held: in the period, on the topic, in the village.
    let mut by_topic: BTreeMap<usize, TopicTraining> = BTreeMap::new();
    let (mut sessions, mut minutes) = (0, 0);
    for session in data.sessions.values() {
        if !data.session_in(session, scope) || scope.village_id.as_ref().is_some_and(|village| *village != session.village_id) {
            continue;
        }
        sessions += 1;
        minutes += session.minutes;
        for topic in &session.topics {
            let index = TrainingTopic::DEF.values.iter().position(|value| value.code == topic.code()).unwrap_or(usize::MAX);
            let entry = by_topic.entry(index).or_insert(TopicTraining { topic: *topic, sessions: 0, minutes: 0 });
            entry.sessions += 1;
            entry.minutes += session.minutes;
        }
    }
    // Reach and attendance: the register's households at any session of the period and topic.
    let (mut came, mut checked_in, mut person_minutes) = (0, 0, 0);
    let mut members_reached: HashSet<&String> = HashSet::new();
    let mut reached: HashSet<&String> = HashSet::new();
    for row in &data.attendance {
        let (Some(session), Some(household)) = (data.sessions.get(&row.session_id), data.household_of(&row.member_id)) else { continue };
        if !data.session_in(session, scope) {
            continue;
        }
        checked_in += 1;
        if row.attended {
            came += 1;
            person_minutes += row.minutes.unwrap_or(session.minutes);
            members_reached.insert(&row.member_id);
            reached.insert(household);
        }
    }
    let households = Indicator::of("skills.households", data.households.keys());
    let reached_indicator = Indicator::of("skills.reached", reached.iter().copied());
    let living: i64 = data.households.values().map(|household| household.size).sum();
    let mut villages: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
    for (id, household) in &data.households {
        villages.entry(&household.village_id).or_default().push(id);
    }
    let by_village = villages
        .into_iter()
        .map(|(village, ids)| {
            let households = Indicator::of(format!("skills.village.{village}.households"), ids.iter().copied());
            let reached = Indicator::of(format!("skills.village.{village}.reached"), ids.iter().copied().filter(|id| reached.contains(id)));
            VillageCoverage { village_id: village.clone(), coverage: reached.share_of(&households), households, reached }
        })
        .collect();
    let (scores, scores_by_topic) = score_gains(conn, data, scope)?;
    Ok(Skills {
        sessions,
        minutes,
        person_minutes,
        by_topic: by_topic.into_values().collect(),
        coverage: reached_indicator.share_of(&households),
        households,
        reached: reached_indicator,
        members_reached: members_reached.len() as i64,
        members: living,
        member_coverage: Share::of(members_reached.len() as i64, living),
        by_village,
        attendance: Share::of(came, checked_in),
        scores,
        scores_by_topic,
        activation: activation(conn, data, scope)?,
    })
}

/// Pairs each member's first score before training on a topic with their last score after it
/// (taken on or after the first), within the period, and sums them up per topic and overall.
fn score_gains(conn: &Connection, data: &Data, scope: &Scope) -> Result<(ScoreGain, Vec<ScoreGain>)> {
    let mut statement = conn.prepare_cached(
        "SELECT member_id, topic, phase, score, assessed_on FROM skill_assessments
          WHERE deleted = 0 AND phase IN ('pre', 'post') AND score IS NOT NULL AND assessed_on IS NOT NULL
          ORDER BY assessed_on, id",
    )?;
    let mut pairs: BTreeMap<(String, String), Pair> = BTreeMap::new();
    let mut rows = statement.query([])?;
    let mut posts: Vec<(String, String, String, i64)> = Vec::new();
    while let Some(row) = rows.next()? {
        let (member, topic, phase, score, on): (String, String, String, i64, String) =
            (row.get::<_, Option<String>>(0)?.unwrap_or_default(), row.get::<_, Option<String>>(1)?.unwrap_or_default(), row.get(2)?, row.get(3)?, row.get(4)?);
        let Some(household) = data.household_of(&member) else { continue };
        if !scope.contains(&on) || scope.topic.is_some_and(|wanted| wanted.code() != topic) {
            continue;
        }
        let pair = pairs.entry((topic.clone(), member.clone())).or_insert(Pair { household: household.clone(), pre: None, post: None });
        if phase == "pre" {
            pair.pre.get_or_insert((on, score));
        } else {
            posts.push((topic, member, on, score));
        }
    }
    // A score after counts when it was taken on or after the first score before; the last wins.
    for (topic, member, on, score) in posts {
        if let Some(pair) = pairs.get_mut(&(topic, member)) {
            if pair.pre.as_ref().is_some_and(|(pre_on, _)| *pre_on <= on) {
                pair.post = Some((on, score));
            }
        }
    }
    let mut per_topic: BTreeMap<String, Vec<&Pair>> = BTreeMap::new();
    for ((topic, _), pair) in &pairs {
        if pair.pre.is_some() && pair.post.is_some() {
            per_topic.entry(topic.clone()).or_default().push(pair);
        }
    }
    let sum = |topic: Option<TrainingTopic>, key: &str, pairs: &[&Pair]| -> ScoreGain {
        let pre: i64 = pairs.iter().filter_map(|pair| pair.pre.as_ref()).map(|(_, score)| score).sum();
        let post: i64 = pairs.iter().filter_map(|pair| pair.post.as_ref()).map(|(_, score)| score).sum();
        let passed: Vec<&&Pair> = pairs.iter().filter(|pair| pair.post.as_ref().is_some_and(|(_, score)| *score >= PASS_MARK)).collect();
        let count = pairs.len() as i64;
        ScoreGain {
            topic,
            pairs: count,
            households: Indicator::of(format!("{key}.households"), pairs.iter().map(|pair| &pair.household)),
            mean_pre: Share::of(pre, count),
            mean_post: Share::of(post, count),
            mean_gain: Share::of(post - pre, count),
            passed: passed.len() as i64,
            passed_households: Indicator::of(format!("{key}.passed"), passed.iter().map(|pair| &pair.household)),
            pass_share: Share::of(passed.len() as i64, count),
        }
    };
    let mut by_topic: Vec<(usize, ScoreGain)> = per_topic
        .iter()
        .filter_map(|(code, pairs)| {
            let topic = TrainingTopic::from_code(code)?;
            let index = TrainingTopic::DEF.values.iter().position(|value| value.code == code).unwrap_or(usize::MAX);
            Some((index, sum(Some(topic), &format!("skills.scores.{code}"), pairs)))
        })
        .collect();
    by_topic.sort_by_key(|(index, _)| *index);
    let all: Vec<&Pair> = per_topic.into_values().flatten().collect();
    Ok((sum(None, "skills.scores", &all), by_topic.into_iter().map(|(_, gain)| gain).collect()))
}

/// The day a listing was created: the moment in its id (a UUIDv7, made when the listing was
/// first saved on any device) as a date in China Standard Time (UTC+8). `None` for an id that
/// is not a UUIDv7.
pub fn listing_created_on(listing_id: &str) -> Option<String> {
    let id = uuid::Uuid::parse_str(listing_id).ok()?;
    if id.get_version_num() != 7 {
        return None;
    }
    let (seconds, _) = id.get_timestamp()?.to_unix();
    let moment = chrono::DateTime::from_timestamp(i64::try_from(seconds).ok()? + 8 * 3600, 0)?;
    Some(moment.date_naive().to_string())
}

/// Trained households (their first session in the period) with a live listing of their produce
/// created from the day of that session to `days` days after it.
fn activation(conn: &Connection, data: &Data, scope: &Scope) -> Result<Vec<Activation>> {
    // Each household's first session attended (on the filter's topic), at any time.
    let mut first: HashMap<&String, &String> = HashMap::new();
    for row in data.attendance.iter().filter(|row| row.attended) {
        let (Some(session), Some(household)) = (data.sessions.get(&row.session_id), data.household_of(&row.member_id)) else { continue };
        if scope.topic.is_some_and(|topic| !session.topics.contains(&topic)) || session.date.is_empty() {
            continue;
        }
        let entry = first.entry(household).or_insert(&session.date);
        if session.date < **entry {
            *entry = &session.date;
        }
    }
    let mut statement = conn.prepare_cached(
        "SELECT l.id, p.producer_household_id FROM listings l JOIN products p ON p.id = l.product_id AND p.deleted = 0
          WHERE l.deleted = 0 AND p.producer_household_id IS NOT NULL",
    )?;
    let mut listed: HashMap<String, Vec<String>> = HashMap::new();
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let (listing, household): (String, String) = (row.get(0)?, row.get(1)?);
        if let Some(day) = listing_created_on(&listing) {
            listed.entry(household).or_default().push(day);
        }
    }
    let as_of = scope.as_of.to_string();
    Ok(ACTIVATION_DAYS
        .iter()
        .map(|&days| {
            let mut eligible = Vec::new();
            let mut activated = Vec::new();
            for (&household, &start) in &first {
                let Some(end) = add_days(start, days) else { continue };
                if !scope.contains(start) || end > as_of {
                    continue;
                }
                eligible.push(household);
                if listed.get(household).is_some_and(|days| days.iter().any(|day| start <= day && *day <= end)) {
                    activated.push(household);
                }
            }
            let eligible = Indicator::of(format!("skills.activation.{days}.eligible"), eligible);
            let activated = Indicator::of(format!("skills.activation.{days}.activated"), activated);
            Activation { days, share: activated.share_of(&eligible), eligible, activated }
        })
        .collect())
}
