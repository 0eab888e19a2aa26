use async_graphql::{Context, Subscription, ID};
use futures::{Stream, StreamExt};

use super::types::OrderStateChange;
use super::{parse_id, principal, services, ApiError, Result};

pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Every state change the caller may see, narrowed to one merchant and/or one order.
    /// When the token expires, the subscription ends with an UNAUTHENTICATED error
    /// (reason TOKEN_EXPIRED): subscribe again, on a new connection, with a new token.
    async fn order_state_changed(
        &self,
        ctx: &Context<'_>,
        merchant_id: Option<ID>,
        order_id: Option<ID>,
    ) -> Result<impl Stream<Item = Result<OrderStateChange>>> {
        let merchant_id = merchant_id
            .map(|id| parse_id(&id, "merchant"))
            .transpose()?;
        let order_id = order_id.map(|id| parse_id(&id, "order")).transpose()?;
        let changes = services(ctx).order_changes(principal(ctx)?, merchant_id, order_id)?;
        Ok(changes.map(|change| change.map(OrderStateChange::from).map_err(ApiError::from)))
    }
}
