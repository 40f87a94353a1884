//! 可复制 Reproducibility: who trained whom. A session is given by the assistant or by a trained
//! farmer (`trainer_member_id`); a member's trainer is the trainer of the first session they came
//! to (in the period, on the topic). From that follows the lineage (assistant → farmers trained →
//! farmers they trained), how many farmers went on to train others, and what the assistant's
//! caseload amounts to.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{Data, Indicator, Scope};

/// The id of the assistant's node in the lineage.
pub const ASSISTANT: &str = "assistant";

/// One trainer in the lineage: the assistant, or a farmer who gave a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct LineageNode {
    /// [`ASSISTANT`] or the farmer's member id.
    pub id: String,
    /// Who trained this farmer (the node above); `None` for the assistant.
    pub parent: Option<String>,
    /// 姓名 The farmer's name; empty for the assistant.
    pub name: String,
    /// The farmer's household.
    pub household_id: Option<String>,
    /// 授课场次 Sessions given in the period.
    pub sessions: i64,
    /// 培训学员 Members whose first session was one of this trainer's.
    pub trainees: i64,
    /// Their households.
    pub trained: Indicator,
}

/// The assistant's caseload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Caseload {
    /// 服务户数 Households in the register.
    pub households: Indicator,
    /// 覆盖村数 Villages they live in.
    pub villages: i64,
    /// 销售笔数 Sales credited to them in the period.
    pub sales: i64,
    /// 销售额（分） Fen credited to them in the period.
    pub sales_fen: i64,
    /// 有销售户 Households with a sale in the period.
    pub selling: Indicator,
}

/// 可复制 The reproducibility outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Reproducibility {
    /// 助理授课场次 Sessions the assistant gave.
    pub assistant_sessions: i64,
    /// 农户授课场次 Sessions farmers gave.
    pub farmer_sessions: i64,
    /// 农户讲师人数 Farmers who gave a session.
    pub farmer_trainers: i64,
    /// Their households.
    pub farmer_trainer_households: Indicator,
    /// 培训后带徒人数 Farmers who came to a session and later gave one themselves.
    pub went_on_to_train: i64,
    /// Their households.
    pub went_on_households: Indicator,
    /// 农户带教覆盖 Households of the members whose first trainer was a farmer.
    pub reached_by_farmers: Indicator,
    /// The lineage, the assistant first, each node naming its parent.
    pub lineage: Vec<LineageNode>,
    /// The assistant's caseload.
    pub caseload: Caseload,
}

impl Reproducibility {
    pub(crate) fn indicators_mut(&mut self) -> Vec<&mut Indicator> {
        let mut all = vec![
            &mut self.farmer_trainer_households,
            &mut self.went_on_households,
            &mut self.reached_by_farmers,
            &mut self.caseload.households,
            &mut self.caseload.selling,
        ];
        all.extend(self.lineage.iter_mut().map(|node| &mut node.trained));
        all
    }
}

/// Computes the reproducibility outcome.
pub fn compute(data: &Data, scope: &Scope) -> Reproducibility {
    // Sessions in the period and topic, oldest first, and who gave each.
    let mut sessions: Vec<(&String, &super::SessionFacts)> = data.sessions.iter().filter(|(_, session)| data.session_in(session, scope)).collect();
    sessions.sort_by(|a, b| (&a.1.date, a.0).cmp(&(&b.1.date, b.0)));
    let order: HashMap<&String, usize> = sessions.iter().enumerate().map(|(index, (id, _))| (*id, index)).collect();
    let mut given: BTreeMap<&str, i64> = BTreeMap::new();
    let mut first_given: HashMap<&String, usize> = HashMap::new();
    for (index, (_, session)) in sessions.iter().enumerate() {
        let trainer = session.trainer_member_id.as_deref().unwrap_or(ASSISTANT);
        *given.entry(trainer).or_insert(0) += 1;
        if let Some(member) = &session.trainer_member_id {
            first_given.entry(member).or_insert(index);
        }
    }
    // Each member's first session attended: its position and trainer.
    let mut first: HashMap<&String, (usize, Option<&String>)> = HashMap::new();
    for row in data.attendance.iter().filter(|row| row.attended) {
        let Some(&index) = order.get(&row.session_id) else { continue };
        let trainer = sessions[index].1.trainer_member_id.as_ref();
        if trainer == Some(&row.member_id) {
            continue;
        }
        let entry = first.entry(&row.member_id).or_insert((index, trainer));
        if index < entry.0 {
            *entry = (index, trainer);
        }
    }
    // The lineage: every trainer, under the one who first trained them.
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    for member in first_given.keys() {
        let above = first.get(member).and_then(|(_, trainer)| *trainer).map_or(ASSISTANT, String::as_str);
        parent.insert(member.as_str(), above);
    }
    // A loop (two farmers each first trained by the other) is cut at the assistant.
    let members: Vec<&str> = parent.keys().copied().collect();
    for member in members {
        let mut seen = HashSet::from([member]);
        let mut current = parent[member];
        while current != ASSISTANT {
            if !seen.insert(current) {
                parent.insert(member, ASSISTANT);
                break;
            }
            current = parent.get(current).copied().unwrap_or(ASSISTANT);
        }
    }
    let mut trainees: HashMap<&str, Vec<&String>> = HashMap::new();
    for (member, (_, trainer)) in &first {
        if data.household_of(member).is_some() {
            trainees.entry(trainer.map_or(ASSISTANT, String::as_str)).or_default().push(member);
        }
    }
    let node = |id: &str, parent: Option<&str>| -> LineageNode {
        let taught = trainees.get(id).cloned().unwrap_or_default();
        let household = data.members.get(id).cloned().unwrap_or_default();
        let name = data.trainer_names.get(id).cloned().unwrap_or_default();
        LineageNode {
            id: id.to_owned(),
            parent: parent.map(str::to_owned),
            name,
            household_id: (id != ASSISTANT && !household.is_empty()).then_some(household),
            sessions: given.get(id).copied().unwrap_or(0),
            trainees: taught.len() as i64,
            trained: Indicator::of(format!("reproducibility.trained_by.{id}"), taught.iter().filter_map(|member| data.household_of(member))),
        }
    };
    let mut lineage = vec![node(ASSISTANT, None)];
    lineage.extend(parent.iter().map(|(member, above)| node(member, Some(above))));
    let farmer_trainers: Vec<&String> = first_given.keys().copied().collect();
    let went_on: Vec<&String> =
        farmer_trainers.iter().copied().filter(|member| first.get(member).is_some_and(|(attended, _)| *attended < first_given[member])).collect();
    let reached: Vec<&String> =
        first.iter().filter(|(_, (_, trainer))| trainer.is_some()).filter_map(|(member, _)| data.household_of(member)).collect();
    let households_of = |members: &[&String]| -> Vec<&String> { members.iter().filter_map(|member| data.household_of(member)).collect() };
    let villages: BTreeSet<&String> = data.households.values().map(|household| &household.village_id).collect();
    let period_sales: Vec<&super::EarnedSale> = data.sales.iter().filter(|sale| scope.contains(&sale.date)).collect();
    let sales: BTreeSet<&String> = period_sales.iter().map(|sale| &sale.sale_id).collect();
    Reproducibility {
        assistant_sessions: given.get(ASSISTANT).copied().unwrap_or(0),
        farmer_sessions: given.iter().filter(|(trainer, _)| **trainer != ASSISTANT).map(|(_, count)| count).sum(),
        farmer_trainers: farmer_trainers.len() as i64,
        farmer_trainer_households: Indicator::of("reproducibility.farmer_trainers", households_of(&farmer_trainers)),
        went_on_to_train: went_on.len() as i64,
        went_on_households: Indicator::of("reproducibility.went_on", households_of(&went_on)),
        reached_by_farmers: Indicator::of("reproducibility.reached_by_farmers", reached),
        lineage,
        caseload: Caseload {
            households: Indicator::of("reproducibility.caseload", data.households.keys()),
            villages: villages.len() as i64,
            sales: sales.len() as i64,
            sales_fen: period_sales.iter().map(|sale| sale.amount_fen).sum(),
            selling: Indicator::of("reproducibility.selling", period_sales.iter().map(|sale| &sale.household_id)),
        },
    }
}
