//! Shipping rules (docs/rules.md rule 6): which of the warehouse's shipping methods a Fortnox
//! way of delivery maps to.
//!
//! A rule is a pattern and a shipping method. In a pattern `*` matches any run of
//! characters, including none; every other character matches itself, case-insensitively;
//! and the pattern must match the WHOLE text (`DHL*` matches `DHL-1`, `D*L` matches `DYL`
//! but not `DHL-1`). A pattern is tried against the way-of-delivery code and against its
//! description, so a merchant can write rules for either.
//!
//! When several rules match, the one with the most literal (non-`*`) characters wins: it is
//! the most specific. A tie between rules that point to different shipping methods is a
//! configuration conflict that the merchant must resolve; we report it rather than pick one,
//! because picking by insertion order or id would ship with a carrier nobody chose.
//!
//! No regex: a pattern is user input, and the greedy algorithm below is linear in practice
//! and worst case O(pattern × text), with nothing to escape.

use std::collections::BTreeSet;

/// The longest pattern accepted. Fortnox codes and descriptions are short; a limit keeps a
/// pasted paragraph from becoming a rule.
pub const MAX_PATTERN_CHARS: usize = 100;

/// The wildcard character of a pattern.
pub const WILDCARD: char = '*';

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippingRule {
    pub id: i64,
    pub pattern: String,
    pub shipping_method_id: i64,
}

/// The result of mapping one way of delivery through a merchant's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleMatch {
    /// Exactly one most specific rule matched (or several equally specific ones that all
    /// point to the same method; then `rule_id` is the lowest of their ids).
    Matched {
        rule_id: i64,
        shipping_method_id: i64,
    },
    /// No rule matches the code or the description.
    NoMatch,
    /// The most specific matching rules are equally specific but point to different
    /// shipping methods. `rule_ids` lists every tied rule, ascending.
    Conflict { rule_ids: Vec<i64> },
}

/// Why a pattern was refused. The messages are shown to API users as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPattern {
    #[error(
        "the pattern is empty: enter a way-of-delivery code or description, using * as a wildcard"
    )]
    Empty,
    #[error("the pattern is {actual} characters long: at most {max} are allowed")]
    TooLong { actual: usize, max: usize },
    #[error("the pattern contains a control character (such as a line break or tab): remove it")]
    ControlCharacter,
}

/// Checks a pattern a merchant entered and returns it trimmed, as it should be stored.
/// Surrounding whitespace is never intended (it comes from copy and paste) and matching
/// trims the code and description too, so it is dropped here.
pub fn validate_pattern(pattern: &str) -> Result<String, InvalidPattern> {
    let trimmed = pattern.trim();
    if trimmed.is_empty() {
        return Err(InvalidPattern::Empty);
    }
    let length = trimmed.chars().count();
    if length > MAX_PATTERN_CHARS {
        return Err(InvalidPattern::TooLong {
            actual: length,
            max: MAX_PATTERN_CHARS,
        });
    }
    if trimmed.chars().any(char::is_control) {
        return Err(InvalidPattern::ControlCharacter);
    }
    Ok(trimmed.to_owned())
}

/// How specific a pattern is: its number of non-`*` characters (after trimming).
pub fn literal_character_count(pattern: &str) -> usize {
    pattern.trim().chars().filter(|c| *c != WILDCARD).count()
}

/// Whether `pattern` matches the whole of `text`: `*` is any run of characters, anything
/// else matches itself case-insensitively. Both sides are trimmed first.
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    let pattern = fold_case(pattern.trim());
    let text = fold_case(text.trim());
    wildcard_matches(&pattern, &text)
}

/// Maps a way of delivery (its code, and its description when known) through the rules.
/// See the module documentation for precedence and conflicts.
pub fn match_way_of_delivery(
    rules: &[ShippingRule],
    code: &str,
    description: Option<&str>,
) -> RuleMatch {
    let matching = rules.iter().filter(|rule| {
        pattern_matches(&rule.pattern, code)
            || description.is_some_and(|text| pattern_matches(&rule.pattern, text))
    });

    let mut best_score: Option<usize> = None;
    let mut best: Vec<&ShippingRule> = Vec::new();
    for rule in matching {
        let score = literal_character_count(&rule.pattern);
        match best_score {
            Some(current) if score < current => {}
            Some(current) if score == current => best.push(rule),
            _ => {
                best_score = Some(score);
                best = vec![rule];
            }
        }
    }

    let Some(first) = best.first() else {
        return RuleMatch::NoMatch;
    };
    let methods: BTreeSet<i64> = best.iter().map(|rule| rule.shipping_method_id).collect();
    let mut rule_ids: Vec<i64> = best.iter().map(|rule| rule.id).collect();
    rule_ids.sort_unstable();
    rule_ids.dedup();
    if methods.len() > 1 {
        return RuleMatch::Conflict { rule_ids };
    }
    RuleMatch::Matched {
        // Ties that agree on the method are harmless; the lowest id keeps the answer stable.
        rule_id: rule_ids.first().copied().unwrap_or(first.id),
        shipping_method_id: first.shipping_method_id,
    }
}

/// Case folding per character, not per string: `str::to_lowercase` applies the Greek
/// final-sigma rule depending on the neighbours, which would make `Σ*` fold differently
/// from `Σ`. Upper-then-lower also folds `ß`/`SS` and `ς`/`σ` together.
fn fold_case(text: &str) -> Vec<char> {
    text.chars()
        .flat_map(|c| {
            if c == WILDCARD {
                vec![c]
            } else {
                c.to_uppercase().flat_map(char::to_lowercase).collect()
            }
        })
        .collect()
}

/// The classic greedy wildcard match: advance on literal matches; on a `*` remember where
/// it was and first let it match nothing; on a mismatch go back to the last `*` and let it
/// swallow one more character. Backtracking to the LAST star only is enough because any
/// earlier star could only absorb text the last one can absorb as well.
fn wildcard_matches(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    // (pattern index of the last star, text index it currently extends to)
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(&WILDCARD) => {
                last_star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match last_star {
                Some((star_p, star_t)) => {
                    last_star = Some((star_p, star_t + 1));
                    p = star_p + 1;
                    t = star_t + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == WILDCARD)
}

#[cfg(test)]
mod tests;
