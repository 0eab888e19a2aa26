//! Bounds on a query's size, checked as soon as the request is parsed and before any of
//! async-graphql's own checks, because those (recursion depth, validation, complexity)
//! walk every fragment spread as often as it is spread: eight fragments that each spread
//! the previous one ten times are 10^8 fields to them, seconds of CPU and gigabytes for a
//! request of under 700 bytes. The check runs before the request reaches the schema
//! (`AppSchema`), which parses the query once and hands the parsed document on.
//! Here each fragment's expanded size is computed once and reused, so the check costs
//! time linear in the document, and a query over the limits is refused in microseconds.
use std::collections::HashMap;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Selection, SelectionSet,
};
use async_graphql::{Name, Request, ServerError, ServerResult};

use super::ErrorCode;

/// The most fields a query may select once every fragment is expanded in place. The
/// largest query our own frontend sends has well under a hundred.
pub(super) const MAX_EXPANDED_FIELDS: u64 = 2_000;
/// The most operations one document may hold (only one of them runs).
pub(super) const MAX_OPERATIONS: usize = 10;

/// The complexity limit, checked after the expanded size: a field costs 1, a list its
/// element's cost times its size (a page's `first`, or the size declared below for lists
/// without a bound), and a field read live from Fortnox [`LIVE_FORTNOX`] more. The
/// warehouse's page of 200 SENT orders with their lines' ids and pick quantities is about
/// 40,000; 300 aliases of one order's lines with three fields, 90,000.
pub(super) const MAX_COMPLEXITY: usize = 50_000;
/// Declared size of a list with no bound in the query (merchants, rules, an order's
/// events): what such a list usually holds, not its maximum.
pub(super) const LIST: usize = 20;
/// Declared size of the lists that are often long: an order's lines, a merchant's
/// Fortnox stock articles and the products they are compared with.
pub(super) const LONG_LIST: usize = 100;
/// Extra cost of a field that reads the merchant's Fortnox live: at most about forty fit
/// in one query, and their reads are shared anyway (see `services::live_reads`).
pub(super) const LIVE_FORTNOX: usize = 1_000;

/// A page's size for the complexity limit: `first` as served (default 50, at most 200).
pub(super) fn page(first: Option<i32>) -> usize {
    // A negative `first` is refused when the field runs; here it costs nothing.
    super::pagination::page_limit(first.map(|f| usize::try_from(f).unwrap_or(0)))
}

/// Checks a request's size before async-graphql sees it: parses the query once (the
/// parsed document stays in the request, so async-graphql does not parse it again) and
/// refuses it when it is too large. A syntax error is left to async-graphql, which reports
/// it as usual.
pub(super) fn check_request(request: &mut Request) -> ServerResult<()> {
    match request.parsed_query() {
        Ok(document) => check(document),
        Err(_) => Ok(()),
    }
}

fn refused(message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", ErrorCode::InvalidInput.as_str());
    error.extensions = Some(extensions);
    error
}

/// Refuses a document with too many operations or too many fields once expanded.
pub(super) fn check(document: &ExecutableDocument) -> ServerResult<()> {
    let operations: Vec<&SelectionSet> = match &document.operations {
        DocumentOperations::Single(op) => vec![&op.node.selection_set.node],
        DocumentOperations::Multiple(ops) => {
            ops.values().map(|op| &op.node.selection_set.node).collect()
        }
    };
    if operations.len() > MAX_OPERATIONS {
        return Err(refused(format!(
            "the document holds {} operations; at most {MAX_OPERATIONS} are allowed: send one operation per request",
            operations.len()
        )));
    }
    let mut sizes = FragmentSizes {
        document,
        known: HashMap::new(),
    };
    for selection_set in operations {
        let size = sizes.of(selection_set);
        if size > MAX_EXPANDED_FIELDS {
            return Err(refused(format!(
                "the query selects {} fields once its fragments are expanded; at most {MAX_EXPANDED_FIELDS} are allowed: spread fragments fewer times or ask for less",
                if size == u64::MAX { "too many".to_owned() } else { size.to_string() }
            )));
        }
    }
    Ok(())
}

struct FragmentSizes<'a> {
    document: &'a ExecutableDocument,
    /// Expanded size per fragment; `None` while it is being computed, so that a cycle
    /// (refused later by validation) counts as nothing instead of recursing forever.
    known: HashMap<&'a Name, Option<u64>>,
}

impl<'a> FragmentSizes<'a> {
    fn of(&mut self, set: &'a SelectionSet) -> u64 {
        set.items.iter().fold(0u64, |total, item| {
            let size = match &item.node {
                Selection::Field(field) => {
                    1u64.saturating_add(self.of(&field.node.selection_set.node))
                }
                Selection::InlineFragment(inline) => self.of(&inline.node.selection_set.node),
                Selection::FragmentSpread(spread) => self.fragment(&spread.node.fragment_name.node),
            };
            total.saturating_add(size)
        })
    }

    fn fragment(&mut self, name: &'a Name) -> u64 {
        if let Some(known) = self.known.get(name) {
            return known.unwrap_or(0);
        }
        let Some(fragment) = self.document.fragments.get(name) else {
            // An unknown fragment is refused by validation.
            return 0;
        };
        self.known.insert(name, None);
        let size = self.of(&fragment.node.selection_set.node);
        self.known.insert(name, Some(size));
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size_check(query: &str) -> ServerResult<()> {
        check(&async_graphql::parser::parse_query(query).expect("parses"))
    }

    /// Eight fragments, each spreading the previous one ten times: 10^8 fields expanded.
    pub(crate) fn fragment_bomb() -> String {
        let mut query =
            String::from("query { __typename ...F7 }\nfragment F0 on QueryRoot { __typename }\n");
        for level in 1..8 {
            let spreads = vec![format!("...F{}", level - 1); 10].join(" ");
            query.push_str(&format!("fragment F{level} on QueryRoot {{ {spreads} }}\n"));
        }
        query
    }

    #[test]
    fn fragments_count_as_expanded_and_each_is_sized_once() {
        let error = size_check(&fragment_bomb()).expect_err("refused");
        assert!(
            error.message.contains("fragments are expanded"),
            "{}",
            error.message
        );
        assert!(size_check("{ a b ...F } fragment F on Q { c d { e } }").is_ok());
    }

    #[test]
    fn a_fragment_cycle_does_not_loop() {
        assert!(size_check("{ ...A } fragment A on Q { x ...B } fragment B on Q { ...A }").is_ok());
    }

    #[test]
    fn too_many_operations_are_refused() {
        let many: String = (0..11).map(|i| format!("query Q{i} {{ a }}\n")).collect();
        assert!(size_check(&many).is_err());
    }
}
