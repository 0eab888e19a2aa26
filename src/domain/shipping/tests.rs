//! Unit tests of the shipping-rule matcher, kept apart so that shipping.rs stays readable.
use super::*;

fn rule(id: i64, pattern: &str, shipping_method_id: i64) -> ShippingRule {
    ShippingRule {
        id,
        pattern: pattern.to_owned(),
        shipping_method_id,
    }
}

fn matched(rule_id: i64, shipping_method_id: i64) -> RuleMatch {
    RuleMatch::Matched {
        rule_id,
        shipping_method_id,
    }
}

// --- the pattern itself -------------------------------------------------------------

#[test]
fn the_guides_examples() {
    assert!(pattern_matches("DHL*", "DHL-1"));
    assert!(pattern_matches("DHL*", "DHL-test"));
    assert!(pattern_matches("D*L", "DtestL"));
    assert!(pattern_matches("D*L", "DYL"));
    assert!(!pattern_matches("D*L", "DHL-1"));
}

#[test]
fn the_whole_code_must_match() {
    assert!(pattern_matches("DHL", "DHL"));
    assert!(
        !pattern_matches("DHL", "DHL-1"),
        "no implicit trailing star"
    );
    assert!(!pattern_matches("DHL", "XDHL"), "no implicit leading star");
    assert!(!pattern_matches("HL", "DHL"));
    assert!(
        !pattern_matches("DHL-1", "DHL"),
        "the pattern is longer than the code"
    );
    assert!(!pattern_matches("*DHL", "DHL-1"));
    assert!(pattern_matches("*DHL", "MyDHL"));
    assert!(pattern_matches("*-1", "DHL-1"));
}

#[test]
fn a_star_matches_a_run_including_none() {
    assert!(pattern_matches("DHL*", "DHL"));
    assert!(pattern_matches("D*HL", "DHL"));
    assert!(pattern_matches("*DHL", "DHL"));
    assert!(pattern_matches("D*L", "DL"));
    assert!(pattern_matches("D*L", "D L"), "a star matches spaces too");
}

#[test]
fn matching_ignores_case() {
    assert!(pattern_matches("dhl*", "DHL-Express"));
    assert!(pattern_matches("DHL*", "dhl-express"));
    assert!(pattern_matches("d*l", "DYL"));
    assert!(pattern_matches("PostNord", "POSTNORD"));
}

#[test]
fn case_folding_is_unicode_aware() {
    assert!(pattern_matches("Å*", "åland-frakt"));
    assert!(pattern_matches("hämta i butik", "HÄMTA I BUTIK"));
    assert!(pattern_matches("ÖVERNATT*", "övernatt express"));
    assert!(pattern_matches("straße", "STRASSE"), "ß folds like SS");
    assert!(
        pattern_matches("ΣΑΣ", "σας"),
        "final sigma folds like sigma"
    );
    assert!(pattern_matches("Σ*", "ς"));
    assert!(
        !pattern_matches("A*", "Å"),
        "no accent stripping: Å is its own letter"
    );
}

#[test]
fn patterns_of_only_stars_match_everything_including_nothing() {
    for pattern in ["*", "**", "***"] {
        for text in ["", "DHL", "a", "DHL Express 09:00", "*"] {
            assert!(pattern_matches(pattern, text), "{pattern:?} vs {text:?}");
        }
    }
}

#[test]
fn several_stars() {
    assert!(pattern_matches("D*H*L", "DHL"));
    assert!(pattern_matches("D*H*L", "DxxHyyL"));
    assert!(pattern_matches("*HL*", "DHL-1"));
    assert!(pattern_matches("*-*-*", "a-b-c"));
    assert!(pattern_matches("*-*-*", "--"));
    assert!(!pattern_matches("*-*-*", "a-b"));
    assert!(pattern_matches("D**L", "DHL"), "adjacent stars act as one");
    assert!(
        pattern_matches("a*b*c", "abxbc"),
        "needs backtracking past a false b"
    );
    assert!(
        pattern_matches("*ab", "aab"),
        "backtracking after a partial match"
    );
    assert!(pattern_matches("*aab", "aaab"));
    assert!(!pattern_matches("a*b*c", "abxbcx"));
    assert!(
        !pattern_matches("D*H*L", "DLH"),
        "order of literals matters"
    );
}

#[test]
fn empty_codes_match_only_star_patterns() {
    assert!(pattern_matches("*", ""));
    assert!(pattern_matches("**", ""));
    assert!(!pattern_matches("DHL", ""));
    assert!(!pattern_matches("D*", ""));
    assert!(
        !pattern_matches("", "DHL"),
        "an empty pattern (refused by validation) matches nothing but empty"
    );
    assert!(pattern_matches("", ""));
}

#[test]
fn surrounding_whitespace_is_ignored_on_both_sides() {
    assert!(pattern_matches(" DHL* ", "DHL-1"));
    assert!(pattern_matches("DHL*", "  DHL-1 "));
    assert!(
        !pattern_matches("D HL", "DHL"),
        "inner whitespace is literal"
    );
}

#[test]
fn a_literal_star_in_the_code_is_just_a_character() {
    assert!(pattern_matches("A*", "A*B"));
    assert!(!pattern_matches("A", "*"));
}

#[test]
fn literal_characters_are_the_non_star_ones() {
    assert_eq!(literal_character_count("DHL*"), 3);
    assert_eq!(literal_character_count("D*L"), 2);
    assert_eq!(literal_character_count("*"), 0);
    assert_eq!(literal_character_count("**"), 0);
    assert_eq!(
        literal_character_count(" Åland* "),
        5,
        "characters, not bytes, and trimmed"
    );
}

// --- validation ---------------------------------------------------------------------

#[test]
fn validation_trims_and_accepts_ordinary_patterns() {
    assert_eq!(validate_pattern("DHL*"), Ok("DHL*".to_owned()));
    assert_eq!(validate_pattern("  D*L\t"), Ok("D*L".to_owned()));
    assert_eq!(validate_pattern("*"), Ok("*".to_owned()));
    assert_eq!(
        validate_pattern("Hämta i butik"),
        Ok("Hämta i butik".to_owned())
    );
}

#[test]
fn validation_refuses_empty_and_whitespace_only_patterns() {
    assert_eq!(validate_pattern(""), Err(InvalidPattern::Empty));
    assert_eq!(validate_pattern("   "), Err(InvalidPattern::Empty));
    assert_eq!(validate_pattern("\t\n"), Err(InvalidPattern::Empty));
}

#[test]
fn validation_refuses_overlong_patterns_counting_characters() {
    let at_limit = "Å".repeat(MAX_PATTERN_CHARS);
    assert!(
        validate_pattern(&at_limit).is_ok(),
        "multi-byte characters count once"
    );
    let over = "x".repeat(MAX_PATTERN_CHARS + 1);
    assert_eq!(
        validate_pattern(&over),
        Err(InvalidPattern::TooLong {
            actual: MAX_PATTERN_CHARS + 1,
            max: MAX_PATTERN_CHARS
        })
    );
}

#[test]
fn validation_refuses_control_characters_inside() {
    assert_eq!(
        validate_pattern("DHL\nExpress"),
        Err(InvalidPattern::ControlCharacter)
    );
    assert_eq!(
        validate_pattern("DHL\tExpress"),
        Err(InvalidPattern::ControlCharacter)
    );
}

#[test]
fn validation_errors_explain_themselves() {
    assert!(InvalidPattern::Empty.to_string().contains("empty"));
    let too_long = InvalidPattern::TooLong {
        actual: 150,
        max: 100,
    }
    .to_string();
    assert!(
        too_long.contains("150") && too_long.contains("100"),
        "{too_long}"
    );
}

// --- choosing a rule ----------------------------------------------------------------

#[test]
fn no_rules_no_match() {
    assert_eq!(match_way_of_delivery(&[], "DHL", None), RuleMatch::NoMatch);
}

#[test]
fn a_single_matching_rule_wins() {
    let rules = [rule(1, "DHL*", 10), rule(2, "PN*", 20)];
    assert_eq!(match_way_of_delivery(&rules, "DHL-1", None), matched(1, 10));
    assert_eq!(
        match_way_of_delivery(&rules, "pn-ombud", None),
        matched(2, 20)
    );
    assert_eq!(
        match_way_of_delivery(&rules, "UPS", None),
        RuleMatch::NoMatch
    );
}

#[test]
fn the_description_is_matched_too() {
    let rules = [rule(1, "*Express*", 10)];
    assert_eq!(
        match_way_of_delivery(&rules, "DX", Some("DHL Express")),
        matched(1, 10)
    );
    assert_eq!(
        match_way_of_delivery(&rules, "DX", Some("PostNord")),
        RuleMatch::NoMatch
    );
    assert_eq!(
        match_way_of_delivery(&rules, "DX", None),
        RuleMatch::NoMatch
    );
}

#[test]
fn the_description_must_match_whole_as_well() {
    let rules = [rule(1, "DHL", 10)];
    assert_eq!(
        match_way_of_delivery(&rules, "DX", Some("DHL Express")),
        RuleMatch::NoMatch
    );
}

#[test]
fn the_rule_with_most_literal_characters_wins() {
    let rules = [
        rule(1, "*", 1),
        rule(2, "D*", 2),
        rule(3, "DHL*", 3),
        rule(4, "DHL-EXP*", 4),
    ];
    assert_eq!(
        match_way_of_delivery(&rules, "DHL-EXPRESS", None),
        matched(4, 4)
    );
    assert_eq!(match_way_of_delivery(&rules, "DHL-1", None), matched(3, 3));
    assert_eq!(match_way_of_delivery(&rules, "DB", None), matched(2, 2));
    assert_eq!(
        match_way_of_delivery(&rules, "UPS", None),
        matched(1, 1),
        "a lone * is the catch-all"
    );
    assert_eq!(
        match_way_of_delivery(&rules, "", None),
        matched(1, 1),
        "the catch-all takes empty codes"
    );
}

#[test]
fn precedence_does_not_depend_on_rule_order() {
    let mut rules = vec![rule(4, "DHL-EXP*", 4), rule(1, "*", 1), rule(3, "DHL*", 3)];
    assert_eq!(
        match_way_of_delivery(&rules, "DHL-EXPRESS", None),
        matched(4, 4)
    );
    rules.reverse();
    assert_eq!(
        match_way_of_delivery(&rules, "DHL-EXPRESS", None),
        matched(4, 4)
    );
}

#[test]
fn a_description_match_competes_on_literal_characters() {
    // The code matches "DHL*" (3 literal), the description "DHL Express" (11 literal).
    let rules = [rule(1, "DHL*", 10), rule(2, "DHL Express", 20)];
    assert_eq!(
        match_way_of_delivery(&rules, "DHL-X", Some("DHL Express")),
        matched(2, 20)
    );
}

#[test]
fn a_tie_between_different_methods_is_a_conflict_naming_every_tied_rule() {
    let rules = [rule(7, "DHL*", 10), rule(3, "*-1", 20), rule(5, "D*", 30)];
    // "DHL*" has 3 literal characters, "*-1" 2: no tie yet.
    assert_eq!(match_way_of_delivery(&rules, "DHL-1", None), matched(7, 10));
    let tied = [rule(7, "DHL*", 10), rule(3, "*L-1", 20), rule(5, "D*", 30)];
    assert_eq!(
        match_way_of_delivery(&tied, "DHL-1", None),
        RuleMatch::Conflict {
            rule_ids: vec![3, 7]
        }
    );
}

#[test]
fn a_tie_of_identical_patterns_to_different_methods_is_a_conflict() {
    let rules = [rule(2, "dhl*", 20), rule(1, "DHL*", 10)];
    assert_eq!(
        match_way_of_delivery(&rules, "DHL-1", None),
        RuleMatch::Conflict {
            rule_ids: vec![1, 2]
        }
    );
}

#[test]
fn two_catch_alls_to_different_methods_conflict() {
    let rules = [rule(1, "*", 10), rule(2, "**", 20)];
    assert_eq!(
        match_way_of_delivery(&rules, "anything", None),
        RuleMatch::Conflict {
            rule_ids: vec![1, 2]
        }
    );
}

#[test]
fn a_more_specific_rule_resolves_a_tie_below_it() {
    let rules = [
        rule(1, "DHL*", 10),
        rule(2, "dhl*", 20),
        rule(3, "DHL-1", 30),
    ];
    assert_eq!(match_way_of_delivery(&rules, "DHL-1", None), matched(3, 30));
    assert_eq!(
        match_way_of_delivery(&rules, "DHL-2", None),
        RuleMatch::Conflict {
            rule_ids: vec![1, 2]
        }
    );
}

#[test]
fn a_tie_to_the_same_method_is_not_a_conflict() {
    let rules = [rule(9, "DHL*", 10), rule(4, "*L-1", 10)];
    assert_eq!(
        match_way_of_delivery(&rules, "DHL-1", None),
        matched(4, 10),
        "the lowest id is reported"
    );
}

#[test]
fn a_same_method_tie_among_a_different_method_tie_is_still_a_conflict() {
    let rules = [
        rule(1, "DHL*", 10),
        rule(2, "*L-1", 10),
        rule(3, "D*-1", 20),
    ];
    assert_eq!(
        match_way_of_delivery(&rules, "DHL-1", None),
        RuleMatch::Conflict {
            rule_ids: vec![1, 2, 3]
        }
    );
}

#[test]
fn a_rule_matching_both_code_and_description_counts_once() {
    let rules = [rule(1, "DHL*", 10)];
    assert_eq!(
        match_way_of_delivery(&rules, "DHL", Some("DHL Express")),
        matched(1, 10)
    );
}

#[test]
fn a_conflict_only_counts_rules_that_match() {
    let rules = [rule(1, "DHL*", 10), rule(2, "UPS*", 20)];
    assert_eq!(match_way_of_delivery(&rules, "DHL-1", None), matched(1, 10));
}

// --- the greedy algorithm against an obviously correct one ----------------------------

/// Naive recursive matcher: exponential, but its correctness is evident.
fn reference_matches(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((&'*', rest)) => (0..=text.len()).any(|skip| reference_matches(rest, &text[skip..])),
        Some((&c, rest)) => text.first() == Some(&c) && reference_matches(rest, &text[1..]),
    }
}

/// Every string over `alphabet` of length 0 to `max_len`.
fn all_strings(alphabet: &[char], max_len: usize) -> Vec<Vec<char>> {
    let mut all = vec![Vec::new()];
    let mut previous = vec![Vec::new()];
    for _ in 0..max_len {
        let next: Vec<Vec<char>> = previous
            .iter()
            .flat_map(|prefix| {
                alphabet.iter().map(move |c| {
                    let mut longer = prefix.clone();
                    longer.push(*c);
                    longer
                })
            })
            .collect();
        all.extend(next.iter().cloned());
        previous = next;
    }
    all
}

#[test]
fn greedy_matcher_agrees_with_the_reference_on_every_small_case() {
    let patterns = all_strings(&['a', 'b', '*'], 5);
    let texts = all_strings(&['a', 'b'], 6);
    for pattern in &patterns {
        for text in &texts {
            assert_eq!(
                wildcard_matches(pattern, text),
                reference_matches(pattern, text),
                "pattern {:?} text {:?}",
                pattern.iter().collect::<String>(),
                text.iter().collect::<String>()
            );
        }
    }
}
