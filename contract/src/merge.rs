//! Which stored change wins (docs/sync.md section 1): one pure rule over stamps, called by the
//! device when it merges a pulled row, by the server when it merges a pushed change, and by the
//! tests' fake server.
//!
//! A field's stored version and an incoming change of it are compared by `(hlc, node)`
//! ([`Stamp`]): the greater is the last writer and wins, the same stamp is the same change
//! delivered again. A field's [`Rule`] may refuse a change before that: the platform's fields
//! take no change from a device, an append-only record is never edited nor deleted, and a
//! `reject_if_stale` field takes a change only when it was made from the version stored.
//! Who may touch a row at all (its village, its parent's village) is the server's to check,
//! before it asks this rule.

use crate::hlc::Stamp;
use crate::schema::{Policy, TableSpec};

/// The pseudo-field carrying a row's scope.
const SCOPE_FIELD: &str = "scope_id";
/// The pseudo-field carrying a row's tombstone flag.
const DELETED_FIELD: &str = "deleted";

/// How a change to one field of one table merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Last writer wins by `(hlc, node)` (the `lww` and `lww_notify` policies, a row's scope,
    /// and every field a device takes from the server).
    LastWriterWins,
    /// Last writer wins, and the change must have been made from the stored version (a
    /// listing's price).
    RejectIfStale,
    /// Written by the platform only: a `server_only` field, or any field of a `platform_only`
    /// table.
    ServerOnly,
    /// A field of an append-only record (income): written once, never edited; a correction is
    /// a new record.
    WriteOnce,
    /// The tombstone of an append-only record: never set.
    NeverDeleted,
}

impl Rule {
    /// The rule of a pushed change to `field` (a domain field, `scope_id` or `deleted`) of
    /// `table`. A row's scope merges by last writer wins in every table, so an income record can
    /// still move to another village with its household.
    pub fn of(table: &TableSpec, field: &str) -> Rule {
        let policy = table.field(field).map(|spec| spec.policy);
        if table.platform_only || policy == Some(Policy::ServerOnly) {
            Rule::ServerOnly
        } else if table.append_only && field == DELETED_FIELD {
            Rule::NeverDeleted
        } else if table.append_only && field != SCOPE_FIELD {
            Rule::WriteOnce
        } else if policy == Some(Policy::RejectIfStale) {
            Rule::RejectIfStale
        } else {
            Rule::LastWriterWins
        }
    }
}

/// What becomes of an incoming change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The change wins: it is written with its stamp.
    Apply,
    /// The stored version is this very change, delivered again: nothing is written, and the
    /// change is answered `applied`.
    AlreadyApplied,
    /// A later write is stored: the change loses and is answered `superseded` with the stored
    /// (current) value.
    Superseded,
    /// The change was made from a version that is no longer stored (`reject_if_stale`): it is
    /// answered `rejected/stale_base` with the current value.
    RejectedStale,
    /// The field is the platform's: answered `rejected/server_only`.
    RejectedServerOnly,
    /// A stored field of an append-only record: answered `rejected/invalid` with the current
    /// value.
    RejectedEdit,
    /// The tombstone of an append-only record: answered `rejected/invalid`.
    RejectedDelete,
}

impl Verdict {
    /// The change's status on the wire: `applied`, `superseded` or `rejected`.
    pub fn status(self) -> &'static str {
        match self {
            Verdict::Apply | Verdict::AlreadyApplied => "applied",
            Verdict::Superseded => "superseded",
            _ => "rejected",
        }
    }

    /// The reason of a rejection on the wire; `None` unless the change is rejected.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Verdict::Apply | Verdict::AlreadyApplied | Verdict::Superseded => None,
            Verdict::RejectedStale => Some("stale_base"),
            Verdict::RejectedServerOnly => Some("server_only"),
            Verdict::RejectedEdit | Verdict::RejectedDelete => Some("invalid"),
        }
    }
}

/// Decides an incoming change of a field: `stored` is the stamp of the version held (`None`
/// when the field was never written), `incoming` the change's stamp, `rule` the field's
/// ([`Rule::of`]) and `base` the HLC of the version the change was made from (`base_hlc`; a
/// change to a field the device had never received has none).
///
/// In order: the platform's fields take no change; the same stamp is the same change again;
/// an append-only record's stored field is never changed, nor its tombstone ever set; a
/// `reject_if_stale` field takes a change only when `base` is the stored HLC; then the greater
/// stamp wins.
pub fn decide(stored: Option<Stamp>, incoming: Stamp, rule: Rule, base: Option<i64>) -> Verdict {
    if rule == Rule::ServerOnly {
        return Verdict::RejectedServerOnly;
    }
    let Some(stored) = stored else {
        return if rule == Rule::NeverDeleted { Verdict::RejectedDelete } else { Verdict::Apply };
    };
    if stored == incoming {
        Verdict::AlreadyApplied
    } else if matches!(rule, Rule::WriteOnce | Rule::NeverDeleted) {
        Verdict::RejectedEdit
    } else if rule == Rule::RejectIfStale && base != Some(stored.hlc) {
        Verdict::RejectedStale
    } else if stored > incoming {
        Verdict::Superseded
    } else {
        Verdict::Apply
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::hlc::NodeId;
    use crate::schema;

    fn stamp(hlc: i64, node: u8) -> Stamp {
        Stamp { hlc, node: NodeId([node; 16]) }
    }

    #[test]
    fn the_greater_stamp_wins_and_the_same_stamp_is_already_in_place() {
        let rule = Rule::LastWriterWins;
        assert_eq!(decide(None, stamp(5, 1), rule, None), Verdict::Apply);
        assert_eq!(decide(Some(stamp(4, 9)), stamp(5, 1), rule, None), Verdict::Apply);
        assert_eq!(decide(Some(stamp(5, 1)), stamp(5, 2), rule, None), Verdict::Apply, "the node breaks a tie of clocks");
        assert_eq!(decide(Some(stamp(5, 2)), stamp(5, 1), rule, None), Verdict::Superseded);
        assert_eq!(decide(Some(stamp(5, 1)), stamp(5, 1), rule, None), Verdict::AlreadyApplied);
    }

    #[test]
    fn a_stale_base_is_refused_whichever_stamp_is_greater() {
        let rule = Rule::RejectIfStale;
        assert_eq!(decide(Some(stamp(5, 1)), stamp(9, 2), rule, Some(4)), Verdict::RejectedStale);
        assert_eq!(decide(Some(stamp(9, 1)), stamp(5, 2), rule, Some(4)), Verdict::RejectedStale);
        assert_eq!(decide(Some(stamp(5, 1)), stamp(9, 2), rule, None), Verdict::RejectedStale);
        assert_eq!(decide(Some(stamp(5, 1)), stamp(9, 2), rule, Some(5)), Verdict::Apply);
        assert_eq!(decide(Some(stamp(9, 1)), stamp(5, 2), rule, Some(9)), Verdict::Superseded);
        assert_eq!(decide(None, stamp(5, 2), rule, Some(3)), Verdict::Apply, "nothing stored is never stale");
        assert_eq!(decide(Some(stamp(5, 2)), stamp(5, 2), rule, None), Verdict::AlreadyApplied);
    }

    #[test]
    fn platform_fields_and_append_only_records_refuse_changes() {
        assert_eq!(decide(None, stamp(5, 1), Rule::ServerOnly, None), Verdict::RejectedServerOnly);
        assert_eq!(decide(Some(stamp(5, 1)), stamp(5, 1), Rule::ServerOnly, None), Verdict::RejectedServerOnly);
        assert_eq!(decide(None, stamp(5, 1), Rule::WriteOnce, None), Verdict::Apply);
        assert_eq!(decide(Some(stamp(5, 1)), stamp(5, 1), Rule::WriteOnce, None), Verdict::AlreadyApplied);
        assert_eq!(decide(Some(stamp(5, 1)), stamp(9, 1), Rule::WriteOnce, None), Verdict::RejectedEdit);
        assert_eq!(decide(None, stamp(5, 1), Rule::NeverDeleted, None), Verdict::RejectedDelete);
        assert_eq!(decide(Some(stamp(5, 1)), stamp(9, 1), Rule::NeverDeleted, None), Verdict::RejectedEdit);
    }

    #[test]
    fn each_field_has_the_rule_of_its_table_and_policy() {
        assert_eq!(Rule::of(&schema::HOUSEHOLDS, "head_name"), Rule::LastWriterWins);
        assert_eq!(Rule::of(&schema::HOUSEHOLDS, "deleted"), Rule::LastWriterWins);
        assert_eq!(Rule::of(&schema::LISTINGS, "price_fen"), Rule::RejectIfStale);
        assert_eq!(Rule::of(&schema::LISTINGS, "moderation_status"), Rule::ServerOnly);
        assert_eq!(Rule::of(&schema::SALES, "scope_id"), Rule::ServerOnly);
        let income: &TableSpec = schema::TABLES.iter().copied().find(|table| table.append_only).expect("an append-only table");
        assert_eq!(Rule::of(income, "scope_id"), Rule::LastWriterWins);
        assert_eq!(Rule::of(income, "deleted"), Rule::NeverDeleted);
        assert_eq!(Rule::of(income, income.fields[0].name), Rule::WriteOnce);
    }

    #[test]
    fn verdicts_have_their_wire_status_and_reason() {
        assert_eq!((Verdict::Apply.status(), Verdict::Apply.reason()), ("applied", None));
        assert_eq!((Verdict::AlreadyApplied.status(), Verdict::AlreadyApplied.reason()), ("applied", None));
        assert_eq!((Verdict::Superseded.status(), Verdict::Superseded.reason()), ("superseded", None));
        assert_eq!((Verdict::RejectedStale.status(), Verdict::RejectedStale.reason()), ("rejected", Some("stale_base")));
        assert_eq!(Verdict::RejectedServerOnly.reason(), Some("server_only"));
        assert_eq!(Verdict::RejectedEdit.reason(), Some("invalid"));
        assert_eq!(Verdict::RejectedDelete.reason(), Some("invalid"));
    }

    /// A field's state: the stamp and value of the version held, if any.
    type State = Option<(Stamp, u32)>;

    /// Delivers one change to a field through [`decide`], as every replica does.
    fn deliver(state: State, change: (Stamp, u32)) -> State {
        match decide(state.map(|(stamp, _)| stamp), change.0, Rule::LastWriterWins, None) {
            Verdict::Apply => Some(change),
            _ => state,
        }
    }

    /// Merges two replicas' states of one field: the other's version is delivered to this one.
    fn join(this: State, other: State) -> State {
        match other {
            Some(change) => deliver(this, change),
            None => this,
        }
    }

    /// A set of stamped changes to one field. A stamp names one change, so two changes never
    /// share a stamp with different values: each value is drawn per stamp.
    fn changes() -> impl Strategy<Value = Vec<(Stamp, u32)>> {
        prop::collection::btree_map((0i64..40, 0u8..4), any::<u32>(), 1..24).prop_map(|map| {
            map.into_iter().map(|((hlc, node), value)| (stamp(hlc, node), value)).collect::<Vec<_>>()
        })
    }

    /// A state a replica may be in: nothing, or one of the changes.
    fn state_of(changes: &[(Stamp, u32)], pick: Option<usize>) -> State {
        pick.map(|index| changes[index % changes.len()])
    }

    proptest! {
        /// Whatever order the changes arrive in, and however often each arrives, every replica
        /// ends with the change of the greatest stamp.
        #[test]
        fn any_order_of_delivery_with_duplicates_converges(
            changes in changes(),
            orders in prop::collection::vec(prop::collection::vec(any::<prop::sample::Index>(), 1..60), 1..5),
        ) {
            let winner = changes.iter().copied().max_by_key(|(stamp, _)| *stamp);
            for order in orders {
                // Every change at least once, then any of them again, in a shuffled order.
                let mut deliveries: Vec<(Stamp, u32)> = changes.clone();
                deliveries.extend(order.iter().map(|index| changes[index.index(changes.len())]));
                let mut shuffled = Vec::with_capacity(deliveries.len());
                for index in &order {
                    if deliveries.is_empty() {
                        break;
                    }
                    shuffled.push(deliveries.remove(index.index(deliveries.len())));
                }
                shuffled.extend(deliveries);
                let end = shuffled.into_iter().fold(None, deliver);
                prop_assert_eq!(end, winner);
            }
        }

        /// Merging replicas is commutative, associative and idempotent, so it does not matter
        /// which replica hears from which first.
        #[test]
        fn merging_is_commutative_associative_and_idempotent(
            changes in changes(),
            a in proptest::option::of(any::<usize>()),
            b in proptest::option::of(any::<usize>()),
            c in proptest::option::of(any::<usize>()),
        ) {
            let (a, b, c) = (state_of(&changes, a), state_of(&changes, b), state_of(&changes, c));
            prop_assert_eq!(join(a, b), join(b, a));
            prop_assert_eq!(join(join(a, b), c), join(a, join(b, c)));
            prop_assert_eq!(join(a, a), a);
            prop_assert_eq!(join(join(a, b), b), join(a, b));
        }

        /// Delivering a change again never changes the outcome: the second delivery of the
        /// version held is already applied, and any change is decided the same way twice.
        #[test]
        fn a_change_delivered_again_is_already_applied(changes in changes()) {
            let held = changes.iter().copied().fold(None, deliver);
            let (stamp, _) = held.expect("at least one change");
            prop_assert_eq!(decide(Some(stamp), stamp, Rule::LastWriterWins, None), Verdict::AlreadyApplied);
            for change in &changes {
                prop_assert_eq!(deliver(deliver(held, *change), *change), deliver(held, *change));
            }
        }

        /// The rules that refuse changes never let an older stamp replace a newer one, and a
        /// `reject_if_stale` field takes only a change made from the version stored.
        #[test]
        fn no_rule_lets_an_older_change_win(
            stored in proptest::option::of((0i64..40, 0u8..4)),
            incoming in (0i64..40, 0u8..4),
            base in proptest::option::of(0i64..40),
            rule in prop::sample::select(vec![
                Rule::LastWriterWins, Rule::RejectIfStale, Rule::ServerOnly, Rule::WriteOnce, Rule::NeverDeleted,
            ]),
        ) {
            let stored = stored.map(|(hlc, node)| stamp(hlc, node));
            let incoming = stamp(incoming.0, incoming.1);
            let verdict = decide(stored, incoming, rule, base);
            if verdict == Verdict::Apply {
                prop_assert!(stored.is_none_or(|stored| incoming > stored));
                prop_assert!(rule != Rule::ServerOnly && rule != Rule::NeverDeleted);
                if rule == Rule::RejectIfStale {
                    prop_assert!(stored.is_none_or(|stored| base == Some(stored.hlc)));
                }
                if rule == Rule::WriteOnce {
                    prop_assert!(stored.is_none());
                }
            }
            if verdict == Verdict::AlreadyApplied {
                prop_assert_eq!(stored, Some(incoming));
            }
        }
    }
}
