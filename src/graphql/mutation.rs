use async_graphql::{Context, ErrorExtensions, Object, Result, ID};

use super::types::{Merchant, Order};
use super::{bus, internal, not_found, parse_id, principal, store, RoleGuard};
use crate::domain::OrderState;
use crate::jobs::enqueue_state_job;
use crate::store::transitions::{apply_transition, TransitionError, TransitionRequest};

#[derive(Default)]
pub struct OrderMutation;

fn transition_error(error: TransitionError) -> async_graphql::Error {
    match error {
        TransitionError::NotFound => not_found("order"),
        TransitionError::Refused(refused) => {
            async_graphql::Error::new(refused.to_string()).extend_with(|_, e| e.set("code", "TRANSITION_REFUSED"))
        }
        conflict @ TransitionError::Conflict { .. } => {
            async_graphql::Error::new(conflict.to_string()).extend_with(|_, e| e.set("code", "CONFLICT"))
        }
        TransitionError::Store(e) => internal(e),
    }
}

#[Object]
impl OrderMutation {
    #[graphql(guard = "RoleGuard::admin()")]
    async fn create_merchant(&self, ctx: &Context<'_>, name: String) -> Result<Merchant> {
        let name = name.trim();
        if name.is_empty() {
            return Err(async_graphql::Error::new("name must not be empty"));
        }
        Ok(store(ctx).create_merchant(name).await.map_err(internal)?.into())
    }

    /// Moves an order to any state, recorded as forced with the reason; the target state's
    /// job runs as usual. `expectedState`, when given, guards against racing changes.
    #[graphql(guard = "RoleGuard::admin()")]
    async fn force_order_state(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        state: OrderState,
        reason: String,
        expected_state: Option<OrderState>,
    ) -> Result<Order> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(async_graphql::Error::new("a reason is required to force a state"));
        }
        let principal = principal(ctx)?;
        let id = parse_id(&order_id, "order")?;
        let mut request = TransitionRequest::new(id, expected_state, state, "admin_forced", &principal.actor()).message(reason);
        request.forced = true;
        if state == OrderState::Reserved {
            request.reasons = vec![format!("Forced to RESERVED by an admin: {reason}")];
        }
        apply_transition(store(ctx), bus(ctx), request).await.map_err(transition_error)?;
        load_order(ctx, id).await
    }

    /// Cancels an order that has not been sent to the warehouse yet.
    #[graphql(guard = "RoleGuard::merchant_or_admin()")]
    async fn cancel_order(&self, ctx: &Context<'_>, order_id: ID, reason: Option<String>) -> Result<Order> {
        let principal = principal(ctx)?;
        let id = parse_id(&order_id, "order")?;
        let order = load_order(ctx, id).await?;
        let mut request = TransitionRequest::new(id, Some(order.state), OrderState::Cancelled, "cancelled_by_user", &principal.actor());
        request.message = reason;
        apply_transition(store(ctx), bus(ctx), request).await.map_err(transition_error)?;
        load_order(ctx, id).await
    }

    /// Runs the job of the order's current state again, e.g. after its cause was fixed.
    #[graphql(guard = "RoleGuard::merchant_or_admin()")]
    async fn retry_order(&self, ctx: &Context<'_>, order_id: ID) -> Result<Order> {
        let id = parse_id(&order_id, "order")?;
        let order = load_order(ctx, id).await?;
        let store = store(ctx);
        store.clear_stall(id).await.map_err(internal)?;
        if !enqueue_state_job(store, id, order.state).await.map_err(internal)? {
            return Err(async_graphql::Error::new(format!(
                "an order in {} has nothing to retry: it waits for a person or the warehouse, or is final",
                order.state
            )));
        }
        load_order(ctx, id).await
    }
}

/// Loads an order within the caller's scope; another tenant's order is "not found".
async fn load_order(ctx: &Context<'_>, id: i64) -> Result<Order> {
    let scope = &principal(ctx)?.scope;
    let model = store(ctx).order(scope, id).await.map_err(internal)?.ok_or_else(|| not_found("order"))?;
    Order::from_model(model)
}
