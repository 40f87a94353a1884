//! What a pull page carries, as pure functions over a row's history and the pull's positions,
//! so the server, the test fake and the property tests share one rule (docs/sync.md section 4).
//!
//! A pull has two positions. `reached` is how far its pages have gone in the server's order:
//! the next page holds the rows whose latest change is after it. `complete` is the point up to
//! which the device is known to hold every change: 0 for a snapshot, otherwise where the pull
//! began. A row on any page must carry every field changed after `complete`, not only those
//! after `reached`: a row first met on page N may have changed between the pull's start and the
//! previous page's end, and no later page would bring those fields (the loss of a paged pull the
//! second position exists to prevent). `complete` moves up to `reached` only on the page that
//! ends the pull (`has_more: false`); until then every page keeps it where the pull began.

/// The positions of a pull, as a cursor carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Positions {
    /// The next page holds rows whose latest change is after this sequence number.
    pub reached: i64,
    /// The device holds every change up to this sequence number (0: nothing, a snapshot).
    pub complete: i64,
}

impl Positions {
    /// The positions of a pull that starts from scratch (a snapshot).
    pub const SNAPSHOT: Positions = Positions { reached: 0, complete: 0 };

    /// The positions of a cursor that knew one position only (the first cursor format): it meant
    /// that the device was complete up to where the pages had reached.
    pub fn single(seq: i64) -> Positions {
        Positions { reached: seq, complete: seq }
    }

    /// The positions after a page whose last row has the sequence number `last_sv` (or none, an
    /// empty page) and after which more pages follow or not. `complete` advances only when the
    /// page ends the pull.
    pub fn after_page(self, last_sv: Option<i64>, has_more: bool) -> Positions {
        let reached = last_sv.map_or(self.reached, |sv| sv.max(self.reached));
        Positions { reached, complete: if has_more { self.complete } else { reached } }
    }
}

/// The name of the pseudo-field carrying a row's scope.
const SCOPE_FIELD: &str = "scope_id";

/// Whether a row must be sent whole: it entered the caller's villages after `complete` (its
/// scope changed after it), so the device may hold none of it. A snapshot (`complete` 0) sends
/// every row whole.
pub fn sent_whole<'a>(fields: impl IntoIterator<Item = (&'a str, i64)>, complete: i64) -> bool {
    complete <= 0 || fields.into_iter().any(|(name, server_seq)| name == SCOPE_FIELD && server_seq > complete)
}

/// The fields a row carries on a page: every field changed after `complete`, or every field
/// when the row is sent whole ([`sent_whole`]). `fields` are the row's stored fields as
/// `(name, server sequence number of the change that wrote it, value)`; the order is kept.
pub fn page_fields<T>(fields: Vec<(String, i64, T)>, complete: i64) -> Vec<(String, T)> {
    let whole = sent_whole(fields.iter().map(|(name, seq, _)| (name.as_str(), *seq)), complete);
    fields.into_iter().filter(|(_, seq, _)| whole || *seq > complete).map(|(name, _, value)| (name, value)).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn fields(list: &[(&str, i64)]) -> Vec<(String, i64, i64)> {
        list.iter().map(|(name, seq)| ((*name).to_owned(), *seq, *seq)).collect()
    }

    fn names(carried: Vec<(String, i64)>) -> Vec<String> {
        carried.into_iter().map(|(name, _)| name).collect()
    }

    #[test]
    fn a_row_carries_what_changed_after_the_point_of_completeness_not_after_the_page() {
        // H was created at 1-3, K at 4, H's notes at 5. A pull from 0 with pages of one row: page
        // 1 ends at K (4); H arrives on page 2 and must still carry what changed at 1-3.
        let h = fields(&[("scope_id", 1), ("head_name", 2), ("village_id", 3), ("notes", 5)]);
        let after_first = Positions::SNAPSHOT.after_page(Some(4), true);
        assert_eq!(after_first, Positions { reached: 4, complete: 0 });
        assert_eq!(names(page_fields(h.clone(), after_first.complete)), ["scope_id", "head_name", "village_id", "notes"]);
        // An incremental pull that began at 2 holds what changed at 1-2 already.
        let incremental = Positions::single(2).after_page(Some(4), true);
        assert_eq!(names(page_fields(h, incremental.complete)), ["village_id", "notes"]);
    }

    #[test]
    fn completeness_advances_only_when_a_page_ends_the_pull() {
        let start = Positions::single(10);
        let middle = start.after_page(Some(20), true);
        assert_eq!(middle, Positions { reached: 20, complete: 10 });
        let end = middle.after_page(Some(30), false);
        assert_eq!(end, Positions { reached: 30, complete: 30 });
        assert_eq!(end.after_page(None, false), end, "an empty last page keeps both positions");
        assert_eq!(middle.after_page(None, false), Positions { reached: 20, complete: 20 });
    }

    #[test]
    fn a_row_that_entered_the_villages_after_the_pull_began_is_sent_whole() {
        let moved = fields(&[("head_name", 2), ("scope_id", 12), ("notes", 5)]);
        assert_eq!(names(page_fields(moved, 10)), ["head_name", "scope_id", "notes"]);
        let stayed = fields(&[("head_name", 2), ("scope_id", 3), ("notes", 15)]);
        assert_eq!(names(page_fields(stayed, 10)), ["notes"]);
    }

    /// One accepted change of a history: row, field, value. Its sequence number is its place.
    type History = Vec<(u8, u8, u32)>;

    /// The server's state after the first `upto` changes: per row, per field, (seq, value).
    fn state(history: &History, upto: usize) -> BTreeMap<u8, BTreeMap<String, (i64, u32)>> {
        let mut rows: BTreeMap<u8, BTreeMap<String, (i64, u32)>> = BTreeMap::new();
        for (index, (row, field, value)) in history.iter().take(upto).enumerate() {
            let name = if *field == 0 { SCOPE_FIELD.to_owned() } else { format!("f{field}") };
            let row = rows.entry(*row).or_default();
            // Every row's first change is its scope, as on the server.
            if row.is_empty() && *field != 0 {
                row.insert(SCOPE_FIELD.to_owned(), (index as i64 + 1, 0));
            }
            row.insert(name, (index as i64 + 1, *value));
        }
        rows
    }

    /// A row's latest change (its `sv`).
    fn sv(row: &BTreeMap<String, (i64, u32)>) -> i64 {
        row.values().map(|(seq, _)| *seq).max().unwrap_or(0)
    }

    /// Pulls from `start` with pages of `limit` rows while the server's history grows between
    /// pages (`growth[i]` changes become visible after page i), applying each page to `device`
    /// (an LWW copy by sequence number). Returns the positions at the end.
    fn pull(
        history: &History,
        mut visible: usize,
        growth: &[usize],
        limit: usize,
        start: Positions,
        device: &mut BTreeMap<u8, BTreeMap<String, (i64, u32)>>,
    ) -> (Positions, usize) {
        let mut positions = start;
        let mut page = 0;
        loop {
            let server = state(history, visible);
            let mut rows: Vec<(&u8, &BTreeMap<String, (i64, u32)>)> =
                server.iter().filter(|(_, fields)| sv(fields) > positions.reached).collect();
            rows.sort_by_key(|(_, fields)| sv(fields));
            let has_more = rows.len() > limit;
            rows.truncate(limit);
            for (id, fields) in &rows {
                let list: Vec<(String, i64, (i64, u32))> =
                    fields.iter().map(|(name, version)| (name.clone(), version.0, *version)).collect();
                let local = device.entry(**id).or_default();
                for (name, version) in page_fields(list, positions.complete) {
                    if local.get(&name).is_none_or(|held| held.0 < version.0) {
                        local.insert(name, version);
                    }
                }
            }
            positions = positions.after_page(rows.last().map(|(_, fields)| sv(fields)), has_more);
            if !has_more {
                return (positions, visible);
            }
            visible = (visible + growth.get(page).copied().unwrap_or(0)).min(history.len());
            page += 1;
        }
    }

    proptest! {
        /// For any history, any page size and any point where a pull began, the union of the
        /// pages equals the server's state, as a pull in one page does.
        #[test]
        fn any_split_into_pages_gives_the_server_state(
            history in prop::collection::vec((0u8..12, 0u8..5, any::<u32>()), 1..80),
            first in 0usize..80,
            limit in 1usize..9,
        ) {
            let first = first.min(history.len());
            // A device that pulled the first part in one page, then the rest in pages of `limit`.
            let mut paged = BTreeMap::new();
            let (positions, _) = pull(&history, first, &[], usize::MAX, Positions::SNAPSHOT, &mut paged);
            let (end, _) = pull(&history, history.len(), &[], limit, positions, &mut paged);
            let mut whole = BTreeMap::new();
            pull(&history, history.len(), &[], usize::MAX, Positions::SNAPSHOT, &mut whole);
            let server = state(&history, history.len());
            prop_assert_eq!(&paged, &server);
            prop_assert_eq!(&whole, &server);
            prop_assert_eq!(end.complete, sv_max(&server));
        }

        /// The same while the history keeps growing between pages (rows edited, moved and
        /// re-edited during a pull): once the last page arrives the device holds the server's
        /// state at that moment.
        #[test]
        fn pages_of_a_growing_history_still_give_the_server_state(
            history in prop::collection::vec((0u8..12, 0u8..5, any::<u32>()), 1..80),
            first in 0usize..80,
            growth in prop::collection::vec(0usize..6, 0..20),
            limit in 1usize..6,
        ) {
            let first = first.min(history.len());
            let mut device = BTreeMap::new();
            let (positions, visible) = pull(&history, first, &[], limit, Positions::SNAPSHOT, &mut device);
            let (_, visible) = pull(&history, (visible + 3).min(history.len()), &growth, limit, positions, &mut device);
            prop_assert_eq!(device, state(&history, visible));
        }
    }

    /// The rows a pull from `start` carries over the server's state after the whole history,
    /// in pages of `limit` rows: per row, the fields each page carried it with, and the positions
    /// at the end.
    fn carried(history: &History, start: Positions, limit: usize) -> (BTreeMap<u8, Vec<BTreeMap<String, (i64, u32)>>>, Positions) {
        let server = state(history, history.len());
        let mut rows: Vec<(&u8, &BTreeMap<String, (i64, u32)>)> = server.iter().collect();
        rows.sort_by_key(|(_, fields)| sv(fields));
        let mut positions = start;
        let mut carried: BTreeMap<u8, Vec<BTreeMap<String, (i64, u32)>>> = BTreeMap::new();
        loop {
            let next: Vec<_> = rows.iter().filter(|(_, fields)| sv(fields) > positions.reached).take(limit + 1).collect();
            let has_more = next.len() > limit;
            let page = &next[..next.len().min(limit)];
            for (id, fields) in page {
                let list: Vec<(String, i64, (i64, u32))> =
                    fields.iter().map(|(name, version)| (name.clone(), version.0, *version)).collect();
                carried.entry(**id).or_default().push(page_fields(list, positions.complete).into_iter().collect());
            }
            positions = positions.after_page(page.last().map(|(_, fields)| sv(fields)), has_more);
            if !has_more {
                return (carried, positions);
            }
        }
    }

    proptest! {
        /// Any split of a history into pages gives the same rows as one page: each row comes
        /// once, carrying exactly the fields a pull in one page gives it, and the pull ends at
        /// the same positions, whatever the page size and wherever the device was complete.
        #[test]
        fn any_split_into_pages_carries_the_same_rows_as_one_page(
            history in prop::collection::vec((0u8..12, 0u8..5, any::<u32>()), 1..80),
            complete in 0i64..80,
            limit in 1usize..9,
        ) {
            let complete = complete.min(history.len() as i64);
            let start = if complete == 0 { Positions::SNAPSHOT } else { Positions::single(complete) };
            let (paged, paged_end) = carried(&history, start, limit);
            let (whole, whole_end) = carried(&history, start, usize::MAX - 1);
            prop_assert!(paged.values().all(|pages| pages.len() == 1), "a row comes on one page only");
            prop_assert_eq!(paged, whole);
            prop_assert_eq!(paged_end, whole_end);
        }
    }

    fn sv_max(rows: &BTreeMap<u8, BTreeMap<String, (i64, u32)>>) -> i64 {
        rows.values().map(sv).max().unwrap_or(0)
    }
}
