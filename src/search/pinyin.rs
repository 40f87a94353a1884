//! The pinyin of names, for roster search (full pinyin and initials: `wangjianhua`, `wjh`) and
//! the roster's order by the head's name. Readings come from the `pinyin` crate, which gives a
//! character's most common reading first (单 dan, 曾 ceng); a name's first character is a
//! surname, so every reading of it is searchable (单 as shan or dan, 曾 as zeng or ceng), and
//! the order uses its reading as a surname where that differs from the common one.

use pinyin::{ToPinyin, ToPinyinMulti};

/// Surnames whose reading as a surname is not the character's most common reading. Each is one
/// of the crate's readings of the character (a unit test checks it); the crate has no notion of
/// surnames, and without this 曾国 would sort under C and 单 under D.
const SURNAME_READINGS: &[(char, &str)] = &[
    ('单', "shan"),
    ('曾', "zeng"),
    ('解', "xie"),
    ('仇', "qiu"),
    ('朴', "piao"),
    ('区', "ou"),
    ('查', "zha"),
    ('盖', "ge"),
    ('翟', "zhai"),
    ('覃', "qin"),
    ('秘', "bi"),
    ('缪', "miao"),
    ('召', "shao"),
    ('种', "chong"),
    ('重', "chong"),
];

/// The most readings of a surname that are searchable, so a document stays small.
const SURNAME_VARIANTS_AT_MOST: usize = 4;

/// The distinct readings of a character without tones, the one used as a surname first.
fn surname_readings(character: char) -> Vec<&'static str> {
    let mut readings: Vec<&'static str> = Vec::new();
    if let Some((_, reading)) = SURNAME_READINGS.iter().find(|(surname, _)| *surname == character) {
        readings.push(reading);
    }
    if let Some(multi) = character.to_pinyin_multi() {
        for reading in multi {
            if !readings.contains(&reading.plain()) {
                readings.push(reading.plain());
            }
        }
    }
    readings.truncate(SURNAME_VARIANTS_AT_MOST);
    readings
}

/// The syllables of a name, one per character, with the surname read as a surname; a character
/// without a reading (a letter, a digit) stands for itself, lowercased.
fn syllables(name: &str) -> Vec<String> {
    name.chars()
        .enumerate()
        .map(|(index, character)| {
            let reading = if index == 0 { surname_readings(character).first().copied() } else { character.to_pinyin().map(|reading| reading.plain()) };
            reading.map(str::to_owned).unwrap_or_else(|| character.to_lowercase().collect())
        })
        .collect()
}

/// Whether a name has a character with a pinyin reading.
fn has_reading(name: &str) -> bool {
    name.chars().any(|character| character.to_pinyin().is_some())
}

/// The pinyin forms of every name in `names` (separated by whitespace), as words to search:
/// for each name its full pinyin without spaces and its initials, once per reading of its
/// surname. The initials come first, then the full forms.
pub(super) fn search_forms(names: &str) -> (Vec<String>, Vec<String>) {
    let mut initials = Vec::new();
    let mut full = Vec::new();
    for name in names.split_whitespace().filter(|name| has_reading(name)) {
        let rest: Vec<String> = syllables(name).into_iter().skip(1).collect();
        let first = name.chars().next().expect("a name with a reading has a character");
        let surnames: Vec<String> = match surname_readings(first) {
            readings if readings.is_empty() => vec![first.to_lowercase().collect()],
            readings => readings.into_iter().map(str::to_owned).collect(),
        };
        for surname in surnames {
            let letters: String = std::iter::once(&surname).chain(rest.iter()).filter_map(|syllable| syllable.chars().next()).collect();
            let whole: String = std::iter::once(surname.as_str()).chain(rest.iter().map(String::as_str)).collect();
            if !initials.contains(&letters) {
                initials.push(letters);
            }
            if !full.contains(&whole) {
                full.push(whole);
            }
        }
    }
    (initials, full)
}

/// The key the roster orders heads of household by: their pinyin, syllables apart (so 安 `an`
/// comes before 昂 `ang`), then the name itself after a separator below every letter, so names
/// read alike keep a stable order and the key alone orders the roster.
pub(super) fn sort_key(name: &str) -> String {
    let name = name.trim();
    format!("{}\u{1}{name}", syllables(name).join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surname_readings_are_readings_the_crate_knows() {
        for (character, reading) in SURNAME_READINGS {
            let known: Vec<&str> = character.to_pinyin_multi().expect("a reading").into_iter().map(|reading| reading.plain()).collect();
            assert!(known.contains(reading), "{character} {reading} not among {known:?}");
        }
    }

    #[test]
    fn names_give_full_pinyin_and_initials() {
        let (initials, full) = search_forms("王建华 李小梅");
        assert!(initials.contains(&"wjh".to_owned()) && initials.contains(&"lxm".to_owned()), "{initials:?}");
        assert!(full.contains(&"wangjianhua".to_owned()) && full.contains(&"lixiaomei".to_owned()), "{full:?}");
        let (initials, full) = search_forms("单田芳");
        assert_eq!(initials[0], "stf");
        assert!(full.contains(&"shantianfang".to_owned()) && full.contains(&"dantianfang".to_owned()), "{full:?}");
        assert_eq!(search_forms("Alice 42"), (vec![], vec![]));
    }

    #[test]
    fn the_order_reads_surnames_as_surnames() {
        assert!(sort_key("安小明") < sort_key("昂立"));
        assert!(sort_key("单田芳") > sort_key("沙") && sort_key("单田芳") < sort_key("沈"));
        assert!(sort_key("曾国") > sort_key("杨") && sort_key("曾国") < sort_key("张三"));
        assert!(sort_key("安") < sort_key("张"));
    }
}
