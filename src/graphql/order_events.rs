//! Following orders from another system: the event log as a Relay connection (oldest
//! first) and as a subscription that resumes from a cursor.
use async_graphql::connection::{query, Connection, Edge};
use async_graphql::{Context, Object, ID};

use super::pagination::{page_limit, Page};
use super::types::OrderEvent;
use super::{cost, parse_id, principal, services, ApiError, Result};
use crate::services::order_events::{EventKind, EventQuery};
use crate::store::event_log::Position;

#[derive(Default)]
pub struct OrderEventsQuery;

#[Object]
impl OrderEventsQuery {
    /// The order event log, oldest first, narrowed to one merchant, one order and/or some
    /// kinds (`first` at most 200). Keep the last `endCursor` and pass it as `after` to read
    /// on: a page never holds an event that a later page could precede.
    #[graphql(complexity = "cost::page(first) * child_complexity")]
    async fn order_events(
        &self,
        ctx: &Context<'_>,
        merchant_id: Option<ID>,
        order_id: Option<ID>,
        kinds: Option<Vec<EventKind>>,
        after: Option<String>,
        first: Option<i32>,
    ) -> async_graphql::Result<Page<OrderEvent>> {
        let actor = principal(ctx)?;
        let event_query = event_query(merchant_id, order_id, kinds)?;
        query(
            after,
            None,
            first,
            None,
            |after: Option<String>, _, first, _| async move {
                let after = after.as_deref().map(parse_cursor).transpose()?;
                let limit = page_limit(first);
                let mut events = services(ctx)
                    .order_events(actor, event_query, after, limit as u64 + 1)
                    .await?;
                let has_next = events.len() > limit;
                events.truncate(limit);
                let mut connection = Connection::new(after.is_some(), has_next);
                for event in events {
                    let cursor = Position::of(&event).cursor();
                    connection
                        .edges
                        .push(Edge::new(cursor, OrderEvent::from(event)));
                }
                Ok::<_, ApiError>(connection)
            },
        )
        .await
    }
}

/// A malformed merchant or order id is refused (unlike the order list, where it matches
/// nothing), so that a partner's typo does not look like a quiet log.
pub(super) fn event_query(
    merchant_id: Option<ID>,
    order_id: Option<ID>,
    kinds: Option<Vec<EventKind>>,
) -> Result<EventQuery> {
    Ok(EventQuery {
        merchant_id: merchant_id
            .map(|id| parse_id(&id, "merchant"))
            .transpose()?,
        order_id: order_id.map(|id| parse_id(&id, "order")).transpose()?,
        kinds: kinds.unwrap_or_default(),
    })
}

/// An event cursor as `orderEvents` hands them out (`cursor`, `endCursor`).
pub(super) fn parse_cursor(cursor: &str) -> Result<Position> {
    Position::parse(cursor).ok_or_else(|| {
        ApiError::invalid_input(format!(
            "invalid cursor `{cursor}`: pass the `cursor` of an event (or an `endCursor`) this API handed out, or no cursor"
        ))
    })
}
