//! 户 Roster search. Each household has one search document (register number, head, phone,
//! group, village, members' names, phones and identity card numbers, and the pinyin of every
//! name, full and initials) in `household_search_doc`, indexed by an FTS5 trigram table, and
//! every one- and two-character piece of the names and their initials is kept in
//! `household_name_grams`, since a trigram index cannot find the two-character given name that
//! is the most common query. The roster's order by the head's name reads the pinyin key kept in
//! `household_name_order`, which the same hook keeps current in the write's own transaction.
//!
//! Nothing else knows these tables. The write path, the pull's purges and the store say that a
//! row changed (`Changed::row_changed`); the households whose documents that changes are noted
//! in `household_search_pending` before the commit, and their documents are rewritten before the
//! next text search, by the app's housekeeping a batch at a time (`flush_batch`), or all at once
//! when an upgrade changed what is indexed (`rebuild_if_outdated`). Rewriting a full-text
//! document can set off a merge of index segments, which an edit must not wait for.

mod pinyin;

use std::collections::BTreeSet;

use rusqlite::functions::FunctionFlags;
use rusqlite::{params, Connection, OptionalExtension, ToSql};
use serde::{Deserialize, Serialize};

use crate::codes::{HouseholdClosure, MonitoringType, PovertyCause, PovertyStatus};
use crate::error::Result;

/// The version of the derived search index; raising it makes the next open rebuild the index
/// from the records, so an upgrade that changes what is indexed needs no hand-written backfill.
const SEARCH_INDEX_VERSION: i64 = 3;

/// The households whose search documents one transaction's writes change, collected while it
/// runs and noted as waiting once, just before its commit (`Changed::note_pending`), so a bulk
/// import notes each household once.
#[derive(Debug, Default)]
pub(crate) struct Changed {
    households: BTreeSet<String>,
    villages: BTreeSet<String>,
    /// The households whose own row was written: their name order key is brought up to date.
    heads: BTreeSet<String>,
}

impl Changed {
    /// The one hook: a row of `table` was written, deleted or purged. `household` is the
    /// household of a member row when the caller has it at hand; otherwise it is read from the
    /// row, which must still be there.
    pub(crate) fn row_changed(&mut self, conn: &Connection, table: &str, id: &str, household: Option<&str>) -> Result<()> {
        match table {
            "households" => {
                self.households.insert(id.to_owned());
                self.heads.insert(id.to_owned());
            }
            "members" => {
                let household = match household {
                    Some(household) => Some(household.to_owned()),
                    None => conn
                        .prepare_cached("SELECT household_id FROM members WHERE id = ?1")?
                        .query_row([id], |row| row.get::<_, Option<String>>(0))
                        .optional()?
                        .flatten(),
                };
                if let Some(household) = household {
                    self.households.insert(household);
                }
            }
            "villages" => {
                self.villages.insert(id.to_owned());
            }
            _ => {}
        }
        Ok(())
    }

    /// Notes the households collected (and every household of a changed village) as waiting for
    /// their documents to be rewritten, and brings the name order of the households written up
    /// to date (a key is cheap to make, and the plain roster must never wait for the index);
    /// called once before the commit.
    pub(crate) fn note_pending(&mut self, conn: &Connection) -> Result<()> {
        for household in std::mem::take(&mut self.heads) {
            refresh_order(conn, &household)?;
        }
        for village in std::mem::take(&mut self.villages) {
            let mut statement = conn.prepare("SELECT id FROM households WHERE village_id = ?1")?;
            let ids = statement.query_map([&village], |row| row.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
            self.households.extend(ids);
        }
        for household in std::mem::take(&mut self.households) {
            conn.prepare_cached("INSERT OR IGNORE INTO household_search_pending (household_id) VALUES (?1)")?.execute([&household])?;
        }
        Ok(())
    }
}

/// Rebuilds the whole index from the records, in one transaction, when it was built by a version
/// that indexed differently (or never built); the store calls it when it opens.
pub(crate) fn rebuild_if_outdated(conn: &mut Connection) -> Result<()> {
    let built: Option<i64> =
        conn.query_row("SELECT v FROM sync_state WHERE k = 'search_index_version'", [], |row| row.get(0)).optional()?;
    if built == Some(SEARCH_INDEX_VERSION) {
        return Ok(());
    }
    let transaction = conn.transaction()?;
    let ids: Vec<String> = {
        let mut statement = transaction.prepare("SELECT id FROM households")?;
        let ids = statement.query_map([], |row| row.get(0))?;
        ids.collect::<rusqlite::Result<_>>()?
    };
    transaction.execute("DELETE FROM household_name_order", [])?;
    for id in ids {
        refresh(&transaction, &id)?;
        refresh_order(&transaction, &id)?;
    }
    transaction.execute("DELETE FROM household_search_pending", [])?;
    transaction.execute(
        "INSERT INTO sync_state (k, v) VALUES ('search_index_version', ?1) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
        [SEARCH_INDEX_VERSION],
    )?;
    transaction.commit()?;
    Ok(())
}

/// Rewrites a household's search document and its name pieces (or removes both once the
/// household is deleted).
fn refresh(conn: &Connection, household_id: &str) -> Result<()> {
    let found: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT concat_ws(' ', h.register_no, h.head_name, h.phone, h.group_name, v.name, v.code,
                    (SELECT group_concat(concat_ws(' ', m.name, m.phone, m.id_card_no), ' ') FROM members m
                      WHERE m.household_id = h.id AND m.deleted = 0)),
                    concat_ws(' ', h.head_name,
                    (SELECT group_concat(m.name, ' ') FROM members m WHERE m.household_id = h.id AND m.deleted = 0))
               FROM households h LEFT JOIN villages v ON v.id = h.village_id
              WHERE h.id = ?1 AND h.deleted = 0",
        )?
        .query_row([household_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    // The pinyin of every name is searched like the names themselves; the initials (wjh) are
    // also short pieces, so two letters find 王建 as two characters do.
    let found = found.map(|(body, names): (String, String)| {
        let (initials, full) = pinyin::search_forms(&names);
        let body = [body].into_iter().chain(initials.iter().cloned()).chain(full).collect::<Vec<_>>().join(" ");
        let names = [names].into_iter().chain(initials).collect::<Vec<_>>().join(" ");
        (body, names)
    });
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

/// Brings a household's key in the roster's name order up to date (or removes it once the
/// household is deleted or gone).
fn refresh_order(conn: &Connection, household_id: &str) -> Result<()> {
    let head: Option<Option<String>> = conn
        .prepare_cached("SELECT head_name FROM households WHERE id = ?1 AND deleted = 0")?
        .query_row([household_id], |row| row.get(0))
        .optional()?;
    match head {
        Some(head) => {
            let key = pinyin::sort_key(head.as_deref().unwrap_or_default());
            conn.prepare_cached(
                "INSERT INTO household_name_order (household_id, head_pinyin) VALUES (?1, ?2)
                 ON CONFLICT (household_id) DO UPDATE SET head_pinyin = excluded.head_pinyin
                  WHERE head_pinyin <> excluded.head_pinyin",
            )?
            .execute(params![household_id, key])?;
        }
        None => {
            conn.prepare_cached("DELETE FROM household_name_order WHERE household_id = ?1")?.execute([household_id])?;
        }
    }
    Ok(())
}

/// Rewrites the search documents of the households edited since the last search, in one
/// transaction. Returns how many were rewritten.
pub(crate) fn flush_all(conn: &Connection) -> Result<usize> {
    flush_batch(conn, i64::MAX)
}

/// Rewrites at most `limit` of the pending search documents in one short transaction, so that
/// after a large import or a first sync the index can be brought up to date in the background
/// a batch at a time, never holding the store for long. Returns how many were rewritten; zero
/// means the index is up to date.
pub(crate) fn flush_batch(conn: &Connection, limit: i64) -> Result<usize> {
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
        refresh(&transaction, id)?;
        transaction.prepare_cached("DELETE FROM household_search_pending WHERE household_id = ?1")?.execute([id])?;
    }
    transaction.commit()?;
    Ok(pending.len())
}

/// How many households wait for their search document to be rewritten.
pub(crate) fn pending(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM household_search_pending", [], |row| row.get(0))?)
}

/// The most waiting search documents a text search rewrites before it runs; with more waiting,
/// it reads the households themselves (see `roster`).
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


/// A column the roster can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum RosterSort {
    /// 户编号 Register number.
    RegisterNo,
    /// 户主 The head's name, by its pinyin (安 before 张; a surname read as a surname: 曾 zeng).
    HeadName,
    /// 村 Village name.
    Village,
    /// 电话 Phone.
    Phone,
    /// 脱贫状态 Poverty status (by its code).
    PovertyStatus,
    /// 监测类型 Monitoring type (by its code).
    MonitoringType,
    /// 致贫原因 Main cause (by its code).
    MainCause,
    /// 人口 Number of live members.
    MemberCount,
}

/// A roster search: free text plus filters, all optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(optional_fields = nullable))]
#[serde(default)]
pub struct RosterQuery {
    /// Substring of a name (head or member), its pinyin (full, or initials: `wjh` finds 王建华),
    /// register number, phone, identity card number or village.
    pub text: Option<String>,
    /// Only this village.
    pub village_id: Option<String>,
    /// Only this poverty status.
    pub poverty_status: Option<PovertyStatus>,
    /// Only this monitoring type.
    pub monitoring_type: Option<MonitoringType>,
    /// Only households with this main or secondary cause.
    pub cause: Option<PovertyCause>,
    /// `true` lists the households that left the register (closed) instead of those in it.
    pub closed: Option<bool>,
    /// The order; none lists a text search's matches in the order households were registered on
    /// the device and the plain roster by register number.
    pub sort: Option<RosterSort>,
    /// `true` orders by `sort` from the last.
    pub descending: Option<bool>,
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
    /// Why the household left the register, when it is closed.
    pub closed_reason: Option<HouseholdClosure>,
    /// When it left the register.
    pub closed_on: Option<String>,
}

/// The pinyin forms of names (full and initials), as the SQL function `roster_pinyin`, for a text
/// search that reads the households themselves while the index is being rebuilt.
fn register_pinyin_function(conn: &Connection) -> Result<()> {
    conn.create_scalar_function("roster_pinyin", 1, FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC, |context| {
        let names: Option<String> = context.get(0)?;
        Ok(names.map(|names| {
            let (initials, full) = pinyin::search_forms(&names);
            initials.into_iter().chain(full).collect::<Vec<_>>().join(" ")
        }))
    })?;
    Ok(())
}

/// Searches the roster. Text of three or more characters uses the trigram index; shorter text
/// (a two-character Chinese name is common) scans the compact search documents.
pub(crate) fn roster(conn: &Connection, query: &RosterQuery) -> Result<Vec<RosterEntry>> {
    // Only a text search reads the search documents; the plain or filtered roster reads the
    // households themselves, so opening the roster after a large import does not wait for the
    // whole index to be rebuilt. A text search brings a few waiting documents up to date first;
    // while many wait (the index is being rebuilt in the background after an import or a first
    // sync), it reads the households and members themselves instead: slower, never stale, and
    // never waiting for the whole rebuild.
    let mut scan = false;
    if query.text.as_deref().is_some_and(|text| !text.trim().is_empty()) {
        if pending(conn)? <= SEARCH_FLUSH_AT_MOST {
            flush_all(conn)?;
        } else {
            scan = true;
        }
    }
    // A closed household has left the register: the roster, its count and every list drawn
    // from it show the households in the register, and the closed ones only when asked for.
    let closed = if query.closed == Some(true) { "h.closed_reason IS NOT NULL" } else { "h.closed_reason IS NULL" };
    let mut clauses = vec!["h.deleted = 0".to_owned(), closed.to_owned()];
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    let mut from = "households h".to_owned();
    // A text search lists its matches in the order households were registered on the device
    // (the search document's number), which both indexes yield already sorted, so a page of a
    // query matching thousands is read without sorting them all. The plain roster is in register
    // order, which an index also yields.
    let mut sort_key = "NULL";
    // Full pinyin typed with spaces between syllables (wang jian hua) is searched as one word,
    // the form the documents hold.
    let text = query.text.as_deref().map(str::trim).filter(|text| !text.is_empty()).map(|text| {
        if text.contains(char::is_whitespace) && text.chars().all(|character| character.is_ascii_alphabetic() || character.is_whitespace()) {
            text.split_whitespace().collect::<String>()
        } else {
            text.to_owned()
        }
    });
    if let Some(text) = text.as_deref() {
        if scan {
            register_pinyin_function(conn)?;
            from = "households h LEFT JOIN villages sv ON sv.id = h.village_id".to_owned();
            clauses.push(format!(
                "instr(lower(concat_ws(' ', h.register_no, h.head_name, h.phone, h.group_name, sv.name, sv.code,
                    (SELECT group_concat(concat_ws(' ', m.name, m.phone, m.id_card_no), ' ') FROM members m
                      WHERE m.household_id = h.id AND m.deleted = 0),
                    roster_pinyin(concat_ws(' ', h.head_name,
                      (SELECT group_concat(m.name, ' ') FROM members m WHERE m.household_id = h.id AND m.deleted = 0))))),
                    lower(?{})) > 0",
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
            let village_named: bool = conn.query_row(
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
    // A chosen order sorts the matches (or the whole roster) by that column, ties in register
    // order; the head's name by its pinyin key, which an index yields in order.
    let direction = if query.sort.is_some() && query.descending == Some(true) { "DESC" } else { "ASC" };
    let mut ties = "p.register_no, p.head_name, p.id".to_owned();
    let (sort_key, order) = match query.sort {
        None if sort_key == "NULL" => (sort_key, "h.register_no, h.head_name, h.id".to_owned()),
        None => (sort_key, sort_key.to_owned()),
        Some(RosterSort::HeadName) => {
            // The key holds the name, so the key and the household's id order every row, and
            // the plain or filtered roster walks the key's index and stops at the page instead
            // of sorting every household; a text search sorts its matches.
            if from == "households h" {
                from = "household_name_order k CROSS JOIN households h".to_owned();
                clauses.push("h.id = k.household_id".to_owned());
            } else {
                from.push_str(" JOIN household_name_order k ON k.household_id = h.id");
            }
            ties = format!("p.id {direction}");
            ("k.head_pinyin", format!("k.head_pinyin {direction}, k.household_id {direction}"))
        }
        Some(sort) => {
            let column = match sort {
                RosterSort::RegisterNo => "h.register_no",
                RosterSort::HeadName => unreachable!("ordered by its own key above"),
                RosterSort::Village => "(SELECT name FROM villages WHERE id = h.village_id)",
                RosterSort::Phone => "h.phone",
                RosterSort::PovertyStatus => "h.poverty_status",
                RosterSort::MonitoringType => "h.monitoring_type",
                RosterSort::MainCause => "h.main_cause",
                RosterSort::MemberCount => "(SELECT count(*) FROM members m WHERE m.household_id = h.id AND m.deleted = 0)",
            };
            (column, format!("{column} {direction}, h.register_no, h.head_name, h.id"))
        }
    };
    let limit = query.limit.unwrap_or(200).clamp(1, 10_000);
    let offset = query.offset.unwrap_or(0).max(0);
    // The page is chosen first; the village name and member count are looked up for the rows
    // shown only, not for every match of a common character.
    let sql = format!(
        "SELECT p.id, p.register_no, p.head_name, p.phone, p.village_id, v.name, p.poverty_status, p.monitoring_type,
                p.main_cause,
                (SELECT count(*) FROM members m WHERE m.household_id = p.id AND m.deleted = 0),
                p.closed_reason, p.closed_on
           FROM (SELECT h.id, h.register_no, h.head_name, h.phone, h.village_id, h.poverty_status, h.monitoring_type,
                        h.main_cause, h.closed_reason, h.closed_on, {sort_key} AS sort_key
                   FROM {from}
                  WHERE {}
                  ORDER BY {order}
                  LIMIT {limit} OFFSET {offset}) p
           LEFT JOIN villages v ON v.id = p.village_id
          ORDER BY p.sort_key {direction}, {ties}",
        clauses.join(" AND ")
    );
    let mut statement = conn.prepare_cached(&sql)?;
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
            closed_reason: code(10)?.as_deref().and_then(HouseholdClosure::from_code),
            closed_on: row.get(11)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

