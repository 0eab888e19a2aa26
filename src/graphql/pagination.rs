//! Relay connections over rows keyed by id, newest first: the cursor is the row id, and a
//! page is read with one row more than asked for to know whether another page follows.
use std::future::Future;

use async_graphql::connection::{query, Connection, Edge, EmptyFields};
use async_graphql::OutputType;

use super::{ApiError, Result};

const DEFAULT_PAGE: usize = 50;
/// The largest `first` served; a larger one is cut to it, not refused.
const MAX_PAGE: usize = 200;

pub(super) type Page<N> = Connection<String, N, EmptyFields, EmptyFields>;

/// One page: `fetch(after_id, limit)` reads at most `limit` rows after the cursor, and
/// `node` maps each row to its id and GraphQL node.
pub(super) async fn page_by_id<R, N, F, Fut>(
    after: Option<String>,
    first: Option<i32>,
    fetch: F,
    node: impl Fn(R) -> Result<(i64, N)>,
) -> async_graphql::Result<Page<N>>
where
    N: OutputType,
    F: FnOnce(Option<i64>, u64) -> Fut,
    Fut: Future<Output = Result<Vec<R>>>,
{
    query(
        after,
        None,
        first,
        None,
        |after: Option<String>, _, first, _| async move {
            let after_id = after.as_deref().map(parse_cursor).transpose()?;
            let limit = page_limit(first);
            let mut rows = fetch(after_id, limit as u64 + 1).await?;
            let has_next = rows.len() > limit;
            rows.truncate(limit);
            let mut connection = Connection::new(after_id.is_some(), has_next);
            for row in rows {
                let (id, node) = node(row)?;
                connection.edges.push(Edge::new(id.to_string(), node));
            }
            Ok::<_, ApiError>(connection)
        },
    )
    .await
}

/// The rows a page holds for `first`: the default when absent, cut to the largest served.
pub(super) fn page_limit(first: Option<usize>) -> usize {
    first.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE)
}

/// A page cursor (`after`) as this API hands them out: the id of the last row seen.
fn parse_cursor(cursor: &str) -> Result<i64> {
    cursor.parse::<i64>().map_err(|_| {
        ApiError::invalid_input(format!(
            "invalid cursor `{cursor}`: pass an endCursor from a previous page, or no cursor"
        ))
    })
}
