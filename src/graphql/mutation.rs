use async_graphql::{Context, InputObject, Object, ID};
use rust_decimal::Decimal;
use std::str::FromStr;

use super::types::{Merchant, Order};
use super::{bus, parse_id, principal, store, ApiError, Result, RoleGuard};
use crate::domain::shipment::{shipped_quantities, Pick, Shipped};
use crate::domain::JobKind;
use crate::domain::OrderState;
use crate::jobs::enqueue_state_job;
use crate::store::jobs_table::{self, OrderJob};
use crate::store::transitions::{apply_transition, TransitionRequest};

#[derive(Default)]
pub struct OrderMutation;

#[Object]
impl OrderMutation {
    #[graphql(guard = "RoleGuard::admin()")]
    async fn create_merchant(&self, ctx: &Context<'_>, name: String) -> Result<Merchant> {
        let name = name.trim();
        if name.is_empty() {
            return Err(ApiError::invalid_input(
                "name must not be empty: give the merchant's name",
            ));
        }
        Ok(store(ctx).create_merchant(name).await?.into())
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
            return Err(ApiError::invalid_input(
                "a reason is required to force a state: say why, it is kept with the change",
            ));
        }
        let principal = principal(ctx)?;
        let id = parse_id(&order_id, "order")?;
        let mut request = TransitionRequest::new(
            id,
            expected_state,
            state,
            "admin_forced",
            &principal.actor(),
        )
        .message(reason);
        request.forced = true;
        if state == OrderState::Reserved {
            request.reasons = vec![format!("Forced to RESERVED by an admin: {reason}")];
        }
        apply_transition(store(ctx), bus(ctx), request).await?;
        load_order(ctx, id).await
    }

    /// Cancels an order. Merchants and admins cancel orders not yet sent to the warehouse;
    /// a SENT order only the warehouse cancels (it holds the goods). Admins can force.
    #[graphql(guard = "RoleGuard::merchant_warehouse_or_admin()")]
    async fn cancel_order(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        reason: Option<String>,
    ) -> Result<Order> {
        let principal = principal(ctx)?;
        let id = parse_id(&order_id, "order")?;
        let order = load_order(ctx, id).await?;
        let allowed = match principal.role {
            crate::auth::Role::Warehouse => order.state == OrderState::Sent,
            _ => matches!(
                order.state,
                OrderState::Imported | OrderState::Validated | OrderState::Reserved
            ),
        };
        if !allowed {
            let who = if principal.role == crate::auth::Role::Warehouse {
                "the warehouse cancels only SENT orders"
            } else {
                "orders already at the warehouse are cancelled by the warehouse"
            };
            return Err(ApiError::transition_refused(format!(
                "cannot cancel an order in {}: {who}",
                order.state
            )));
        }
        let mut request = TransitionRequest::new(
            id,
            Some(order.state),
            OrderState::Cancelled,
            "cancelled_by_user",
            &principal.actor(),
        );
        request.message = reason;
        apply_transition(store(ctx), bus(ctx), request).await?;
        load_order(ctx, id).await
    }

    /// Checks a RESERVED order again (after fixing its cause in Fortnox or here); it goes
    /// on to VALIDATED when every check passes, else its reasons are updated.
    #[graphql(guard = "RoleGuard::merchant_or_admin()")]
    async fn revalidate_order(&self, ctx: &Context<'_>, order_id: ID) -> Result<Order> {
        let id = parse_id(&order_id, "order")?;
        let order = load_order(ctx, id).await?;
        if order.state != OrderState::Reserved {
            return Err(ApiError::transition_refused(format!(
                "only RESERVED orders are revalidated; this one is {}",
                order.state
            )));
        }
        let task = jobs_table::order_task(
            JobKind::ValidateOrder,
            &OrderJob {
                order_id: id,
                attempt: 0,
            },
            None,
        )?;
        jobs_table::push(&store(ctx).pool, vec![task]).await?;
        Ok(order)
    }

    /// The warehouse reports a shipment: tracking numbers and the quantity shipped per
    /// line (lines left out shipped nothing). The order becomes SHIPPED and is invoiced.
    #[graphql(guard = "RoleGuard::warehouse_or_admin()")]
    async fn confirm_shipment(
        &self,
        ctx: &Context<'_>,
        order_id: ID,
        tracking_numbers: Vec<String>,
        lines: Vec<ShippedLineInput>,
    ) -> Result<Order> {
        let principal = principal(ctx)?;
        let id = parse_id(&order_id, "order")?;
        let order = load_order(ctx, id).await?;
        if matches!(order.state, OrderState::Shipped | OrderState::Invoiced) {
            // A repeated report (say, after a lost response) is answered, not refused.
            return Ok(order);
        }
        let store = store(ctx);
        let picks: Vec<Pick> = store
            .order_lines(id)
            .await?
            .into_iter()
            .filter_map(|line| {
                let quantity = Decimal::from_str(line.pick_quantity.as_deref()?).ok()?;
                (quantity > Decimal::ZERO).then_some(Pick {
                    line_id: line.id,
                    quantity,
                })
            })
            .collect();
        let reported = lines
            .into_iter()
            .map(|line| {
                Ok(Shipped {
                    line_id: line.line_id.parse::<i64>().map_err(|_| {
                        ApiError::invalid_input(format!(
                            "line {} is not a line of this order",
                            line.line_id.as_str()
                        ))
                    })?,
                    quantity: line.quantity,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let shipped = shipped_quantities(&picks, &reported).map_err(ApiError::invalid_input)?;
        let tracking: Vec<String> = tracking_numbers
            .into_iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        let mut request = TransitionRequest::new(
            id,
            Some(order.state),
            OrderState::Shipped,
            "warehouse_shipped",
            &principal.actor(),
        );
        request.tracking_numbers = Some(tracking);
        request.shipped_quantities = shipped
            .into_iter()
            .map(|(line, quantity)| (line, quantity.normalize().to_string()))
            .collect();
        apply_transition(store, bus(ctx), request).await?;
        load_order(ctx, id).await
    }

    /// Runs the job of the order's current state again, e.g. after its cause was fixed.
    #[graphql(guard = "RoleGuard::merchant_or_admin()")]
    async fn retry_order(&self, ctx: &Context<'_>, order_id: ID) -> Result<Order> {
        let id = parse_id(&order_id, "order")?;
        let order = load_order(ctx, id).await?;
        let store = store(ctx);
        store.clear_stall(id).await?;
        if !enqueue_state_job(store, id, order.state).await? {
            return Err(ApiError::transition_refused(format!(
                "an order in {} has nothing to retry: it waits for a person or the warehouse, or is final",
                order.state
            )));
        }
        load_order(ctx, id).await
    }
}

/// One line of a shipment: our order line id and the quantity shipped.
#[derive(InputObject)]
pub struct ShippedLineInput {
    pub line_id: ID,
    /// Decimal as text, e.g. "2" or "1.5"; at most the line's pick quantity.
    pub quantity: String,
}

/// Loads an order within the caller's scope; another tenant's order is "not found".
async fn load_order(ctx: &Context<'_>, id: i64) -> Result<Order> {
    let scope = &principal(ctx)?.scope;
    let model = store(ctx)
        .order(scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("order"))?;
    Order::from_model(model)
}
