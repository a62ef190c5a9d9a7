//! The search box language: words (all must match), `"quoted phrases"`, and `prefix*` (also at the end
//! of a phrase: `"see you tom"*`). Each piece goes through the index's own analyzer, so a CJK word of
//! three characters becomes a phrase of its two bigrams and a lone CJK character matches every bigram
//! that contains it.

use super::analysis::{self, is_cjk};
use crate::{Error, Result};

/// Longest accepted query, in characters.
pub const MAX_QUERY_CHARS: usize = 256;
/// More clauses than this is not a chat search; it is a denial of service.
const MAX_CLAUSES: usize = 16;
/// Lone CJK characters per query: each reads every term it takes part in (two levels of the term
/// dictionary), the costliest clause there is.
const MAX_CONTAINS_CLAUSES: usize = 4;

/// One piece of a parsed search query; every clause of a query must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Clause {
    /// Consecutive analyzed terms: one is a term query, more a phrase.
    Terms(Vec<String>),
    /// Like `Terms`, but the last term is a prefix.
    Prefix(Vec<String>),
    /// One CJK character: matches any token containing it.
    Contains(char),
}

impl Clause {
    /// Whether an analyzed token of a stored text takes part in this clause's match (for highlights).
    pub fn highlights(&self, token: &str) -> bool {
        match self {
            Clause::Terms(terms) => terms.iter().any(|t| t == token),
            Clause::Prefix(terms) => match terms.split_last() {
                Some((prefix, whole)) => token.starts_with(prefix.as_str()) || whole.iter().any(|t| t == token),
                None => false,
            },
            Clause::Contains(c) => token.contains(*c),
        }
    }
}

/// Parses the search box text into clauses: `validation_failed` when it is longer than [`MAX_QUERY_CHARS`],
/// holds no searchable word, or has too many pieces.
pub fn parse(query: &str) -> Result<Vec<Clause>> {
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::Validation(format!(
            "q is longer than {MAX_QUERY_CHARS} characters"
        )));
    }
    let mut clauses = Vec::new();
    for piece in pieces(query)? {
        let terms: Vec<String> = analysis::tokens(&piece.text).into_iter().map(|t| t.text).collect();
        let clause = match (terms.as_slice(), piece.prefix) {
            ([], _) => continue,
            ([only], false) if only.chars().count() == 1 && only.chars().all(is_cjk) => {
                Clause::Contains(only.chars().next().unwrap_or_default())
            }
            (_, false) => Clause::Terms(terms),
            (_, true) => Clause::Prefix(terms),
        };
        clauses.push(clause);
    }
    if clauses.is_empty() {
        return Err(Error::Validation(
            "q must contain at least one word (letters, digits or CJK characters)".into(),
        ));
    }
    if clauses.iter().filter(|c| matches!(c, Clause::Contains(_))).count() > MAX_CONTAINS_CLAUSES {
        return Err(Error::Validation(format!(
            "q has more than {MAX_CONTAINS_CLAUSES} single CJK characters; search for words of two or more"
        )));
    }
    if clauses.len() > MAX_CLAUSES {
        return Err(Error::Validation(format!(
            "q has more than {MAX_CLAUSES} words or phrases"
        )));
    }
    Ok(clauses)
}

struct Piece {
    text: String,
    prefix: bool,
}

/// Splits on whitespace outside quotes; a quoted run is one piece; a trailing `*` marks a prefix.
fn pieces(query: &str) -> Result<Vec<Piece>> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = query.chars().peekable();
    let mut finish = |current: &mut String, prefix: bool| {
        if !current.trim().is_empty() {
            pieces.push(Piece {
                text: std::mem::take(current),
                prefix,
            });
        }
        current.clear();
    };
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let prefix = quoted && chars.next_if_eq(&'*').is_some();
                finish(&mut current, prefix);
                quoted = !quoted;
            }
            '*' if !quoted && chars.peek().is_none_or(|next| next.is_whitespace() || *next == '"') => {
                finish(&mut current, true)
            }
            c if c.is_whitespace() && !quoted => finish(&mut current, false),
            c => current.push(c),
        }
    }
    if quoted {
        return Err(Error::Validation("q has an unclosed quote".into()));
    }
    finish(&mut current, false);
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn words_phrases_and_prefixes() {
        assert_eq!(
            parse(r#"Lunch "see you" tom* "big red"*"#).unwrap(),
            [
                Clause::Terms(terms(&["lunch"])),
                Clause::Terms(terms(&["see", "you"])),
                Clause::Prefix(terms(&["tom"])),
                Clause::Prefix(terms(&["big", "red"])),
            ]
        );
    }

    #[test]
    fn cjk_words_become_bigram_phrases_and_single_characters_contains() {
        assert_eq!(
            parse("北京 你好吗 京").unwrap(),
            [
                Clause::Terms(terms(&["北京"])),
                Clause::Terms(terms(&["你好", "好吗"])),
                Clause::Contains('京'),
            ]
        );
    }

    #[test]
    fn bad_queries_are_refused_with_a_reason() {
        for (query, reason) in [
            ("", "at least one word"),
            ("?! ...", "at least one word"),
            ("\"open", "unclosed quote"),
            (&"a ".repeat(200), "longer than"),
            (&"w ".repeat(20), "more than 16"),
            ("京 北 你 好 吗", "more than 4 single CJK"),
        ] {
            let error = parse(query).unwrap_err().to_string();
            assert!(error.contains(reason), "{query:?}: {error}");
        }
    }

    #[test]
    fn highlights_follow_the_clause() {
        assert!(Clause::Prefix(terms(&["tom"])).highlights("tomorrow"));
        assert!(!Clause::Terms(terms(&["tom"])).highlights("tomorrow"));
        assert!(Clause::Contains('京').highlights("北京"));
    }
}
