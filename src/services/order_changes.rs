//! Following order changes live: the changes a caller may see, narrowed to one merchant
//! and/or one order.
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::BroadcastStream;

use super::{Result, ServiceError, Services};
use crate::auth::Principal;
use crate::events::OrderStateChanged;

impl Services {
    /// Every change from now on that the actor may see, until the actor's token expires:
    /// then the stream ends with `ServiceError::TokenExpired`, and the client subscribes
    /// again with a new token. Another tenant's merchant is "not found", like a missing
    /// one; an order id of another tenant simply never matches.
    pub fn order_changes(
        &self,
        actor: &Principal,
        merchant_id: Option<i64>,
        order_id: Option<i64>,
    ) -> Result<impl Stream<Item = Result<OrderStateChanged>> + Send + 'static> {
        if merchant_id.is_some_and(|id| !actor.scope.allows(id)) {
            return Err(ServiceError::NotFound("merchant"));
        }
        let scope = actor.scope.clone();
        let stream = BroadcastStream::new(self.bus.subscribe()).filter_map(move |event| {
            // A lagging subscriber skips what it missed rather than ending the stream.
            let visible = event.ok().filter(|event| {
                scope.allows(event.merchant_id)
                    && merchant_id.is_none_or(|m| m == event.merchant_id)
                    && order_id.is_none_or(|o| o == event.order_id)
            });
            std::future::ready(visible)
        });
        let left = (actor.expires_at - chrono::Utc::now())
            .to_std()
            .unwrap_or_default();
        let expiry = tokio::time::sleep(left);
        let stream = stream
            .take_until(expiry)
            .map(Ok)
            .chain(futures::stream::once(async {
                Err(ServiceError::TokenExpired)
            }));
        Ok(stream)
    }
}
