//! The local record of every time the device showed a member's full identity card number on
//! request. Lists and views show the number masked ([`mask_id_card`]); the edit form and an
//! explicit reveal show it whole, and each reveal is kept here for the assistant to read. The
//! record is the device's own: it is never synced.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::Store;

/// One reveal of a full identity card number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct IdCardReveal {
    /// The member whose number was shown.
    pub member_id: String,
    /// The member's name at the time.
    pub member_name: Option<String>,
    /// When (local time, RFC 3339).
    pub revealed_at: String,
}

/// The number as lists and views show it: the first four and the last four characters, the rest
/// as asterisks (`5307**********0018`). Anything shorter than nine characters is all asterisks.
pub fn mask_id_card(number: &str) -> String {
    let characters: Vec<char> = number.trim().chars().collect();
    if characters.len() < 9 {
        return "*".repeat(characters.len());
    }
    let hidden = characters.len() - 8;
    characters[..4].iter().chain(std::iter::repeat_n(&'*', hidden)).chain(characters[characters.len() - 4..].iter()).collect()
}

/// Shows the full number of a member's identity card, recording the reveal; `None` when the
/// member has none on record. A member that does not exist is `NotFound`, and nothing is
/// recorded.
pub fn reveal_id_card(store: &Store, member_id: &str) -> Result<Option<String>> {
    let found: Option<(Option<String>, Option<String>)> = store
        .conn()
        .query_row("SELECT id_card_no, name FROM members WHERE id = ?1 AND deleted = 0", [member_id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    let Some((number, name)) = found else {
        return Err(Error::NotFound { table: "members".to_owned(), id: member_id.to_owned() });
    };
    let Some(number) = number.filter(|number| !number.is_empty()) else { return Ok(None) };
    store.conn().execute(
        "INSERT INTO id_card_reveals (member_id, member_name, revealed_at) VALUES (?1, ?2, ?3)",
        params![member_id, name, chrono::Local::now().to_rfc3339()],
    )?;
    Ok(Some(number))
}

/// The latest reveals, newest first, at most `limit`.
pub fn reveals(store: &Store, limit: usize) -> Result<Vec<IdCardReveal>> {
    let mut statement = store
        .conn()
        .prepare("SELECT member_id, member_name, revealed_at FROM id_card_reveals ORDER BY id DESC LIMIT ?1")?;
    let rows = statement.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
        Ok(IdCardReveal { member_id: row.get(0)?, member_name: row.get(1)?, revealed_at: row.get(2)? })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::mask_id_card;

    #[test]
    fn numbers_are_masked_but_for_their_ends() {
        assert_eq!(mask_id_card("530724198506120018"), "5307**********0018");
        assert_eq!(mask_id_card(" 53072419850612001X "), "5307**********001X");
        assert_eq!(mask_id_card("12345"), "*****");
    }
}
