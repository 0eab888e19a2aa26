use async_graphql::{Context, Subscription, ID};
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

use super::types::OrderStateChange;
use super::{bus, parse_id, principal, ApiError, Result};

pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Every state change the caller may see, narrowed to one merchant and/or one order.
    async fn order_state_changed(
        &self,
        ctx: &Context<'_>,
        merchant_id: Option<ID>,
        order_id: Option<ID>,
    ) -> Result<impl Stream<Item = OrderStateChange>> {
        let scope = principal(ctx)?.scope.clone();
        let merchant_id = match merchant_id {
            Some(id) => {
                let id = parse_id(&id, "merchant")?;
                if !scope.allows(id) {
                    return Err(ApiError::not_found("merchant"));
                }
                Some(id)
            }
            None => None,
        };
        let order_id = match order_id {
            Some(id) => Some(parse_id(&id, "order")?),
            None => None,
        };
        let stream = BroadcastStream::new(bus(ctx).subscribe()).filter_map(move |event| {
            let scope = scope.clone();
            async move {
                // A lagging subscriber skips what it missed rather than ending the stream.
                let event = event.ok()?;
                let visible = scope.allows(event.merchant_id)
                    && merchant_id.is_none_or(|m| m == event.merchant_id)
                    && order_id.is_none_or(|o| o == event.order_id);
                visible.then(|| OrderStateChange::from(event))
            }
        });
        Ok(stream)
    }
}
