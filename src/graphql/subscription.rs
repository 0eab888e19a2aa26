use async_graphql::{Context, Subscription, ID};
use futures::{Stream, StreamExt};

use super::order_events::{event_query, parse_cursor};
use super::types::{OrderEvent, OrderStateChange};
use super::{principal, services, ApiError, Result};
use crate::services::order_events::EventKind;

pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// The order event log from `after` on (from now on without it), narrowed to one
    /// merchant, one order and/or some kinds: first the events stored since the cursor,
    /// then live ones, in cursor order, with no gap and no duplicate. Keep the `cursor` of
    /// the last event handled; after a disconnect, subscribe again with it as `after`.
    /// When the token expires, the subscription ends with an UNAUTHENTICATED error
    /// (reason TOKEN_EXPIRED): subscribe again, on a new connection, with a new token.
    async fn order_events(
        &self,
        ctx: &Context<'_>,
        merchant_id: Option<ID>,
        order_id: Option<ID>,
        kinds: Option<Vec<EventKind>>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<OrderEvent>>> {
        let query = event_query(merchant_id, order_id, kinds)?;
        let after = after.as_deref().map(parse_cursor).transpose()?;
        let events = services(ctx)
            .follow_order_events(principal(ctx)?, query, after)
            .await?;
        Ok(events.map(|event| event.map(OrderEvent::from).map_err(ApiError::from)))
    }

    /// Every state change the caller may see from now on, narrowed to one merchant and/or
    /// one order. Kept for existing clients: `orderEvents` also resumes after a disconnect
    /// and carries errors, stalls, reasons, tracking numbers and invoices.
    /// When the token expires, the subscription ends with an UNAUTHENTICATED error
    /// (reason TOKEN_EXPIRED): subscribe again, on a new connection, with a new token.
    async fn order_state_changed(
        &self,
        ctx: &Context<'_>,
        merchant_id: Option<ID>,
        order_id: Option<ID>,
    ) -> Result<impl Stream<Item = Result<OrderStateChange>>> {
        let mut query = event_query(merchant_id, order_id, None)?;
        query.kinds = vec![EventKind::Transition];
        let events = services(ctx)
            .follow_order_events(principal(ctx)?, query, None)
            .await?;
        Ok(events.filter_map(|event| {
            std::future::ready(match event {
                Ok(event) => OrderStateChange::from_event(event).map(Ok),
                Err(error) => Some(Err(ApiError::from(error))),
            })
        }))
    }
}
