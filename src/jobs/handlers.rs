//! What each job does. Every handler first checks that the order is still in the state the
//! job was queued for: a stale or duplicated task is a no-op, which is what makes re-runs
//! after a crash safe.
use std::str::FromStr;

use rust_decimal::Decimal;

use super::{JobContext, JobError};
use crate::domain::{JobKind, OrderState};
use crate::store::orders::TenantScope;
use crate::store::transitions::{apply_transition, TransitionError, TransitionRequest};

pub(super) async fn handle(kind: JobKind, order_id: i64, ctx: &JobContext) -> Result<(), JobError> {
    if ctx.faults.should_fail(kind) {
        return Err(JobError::Retryable(format!("fault injected into {kind:?}")));
    }
    let Some(order) = ctx.store.order(&TenantScope::All, order_id).await? else {
        tracing::warn!(order_id, ?kind, "job for a missing order dropped");
        return Ok(());
    };
    let state = OrderState::from_str(&order.state).map_err(|e| JobError::NeedsAttention(e.to_string()))?;
    if state.job() != Some(kind) {
        tracing::debug!(order_id, ?kind, %state, "stale job: the order has moved on");
        return Ok(());
    }
    match kind {
        JobKind::ValidateOrder => validate(ctx, order_id).await,
        JobKind::SendToWarehouse => send_to_warehouse(ctx, order_id).await,
        JobKind::InvoiceOrder => invoice(ctx, order.merchant_id).await,
    }
}

/// The checks available before the Fortnox pipeline lands: the order has rows and every
/// quantity is a positive number.
async fn validate(ctx: &JobContext, order_id: i64) -> Result<(), JobError> {
    let lines = ctx.store.order_lines(order_id).await?;
    let mut reasons = Vec::new();
    if lines.is_empty() {
        reasons.push("The order has no rows: add the rows in Fortnox, then revalidate the order".to_owned());
    }
    for line in &lines {
        match Decimal::from_str(&line.ordered_quantity) {
            Ok(quantity) if quantity > Decimal::ZERO => {}
            _ => reasons.push(format!(
                "Row {} ({}) has quantity {}: quantities must be positive",
                line.position, line.description, line.ordered_quantity
            )),
        }
    }
    let request = if reasons.is_empty() {
        TransitionRequest::new(order_id, Some(OrderState::Imported), OrderState::Validated, "checks_passed", "system:validate_order")
    } else {
        let mut request = TransitionRequest::new(order_id, Some(OrderState::Imported), OrderState::Reserved, "checks_failed", "system:validate_order")
            .message(reasons.join("; "));
        request.reasons = reasons;
        request
    };
    finish(ctx, request).await
}

/// The built-in warehouse accepts every order and dedupes on our order id, so the reference
/// is derived from it: a re-run yields the same reference.
async fn send_to_warehouse(ctx: &JobContext, order_id: i64) -> Result<(), JobError> {
    let mut request = TransitionRequest::new(order_id, Some(OrderState::Validated), OrderState::Sent, "warehouse_accepted", "system:send_to_warehouse");
    request.warehouse_reference = Some(format!("WH-{order_id:08}"));
    finish(ctx, request).await
}

/// Writing back to Fortnox needs a connected integration; until one exists the order waits
/// here with an error a person can act on.
async fn invoice(_ctx: &JobContext, merchant_id: i64) -> Result<(), JobError> {
    Err(JobError::NeedsAttention(format!(
        "Merchant {merchant_id} has no connected Fortnox integration to write the delivery back to: connect Fortnox, then retry the order"
    )))
}

async fn finish(ctx: &JobContext, request: TransitionRequest) -> Result<(), JobError> {
    match apply_transition(&ctx.store, &ctx.bus, request).await {
        Ok(_) => Ok(()),
        // Someone (an admin, a racing duplicate) moved the order first: nothing left to do.
        Err(TransitionError::Conflict { .. }) | Err(TransitionError::Refused(_)) => Ok(()),
        Err(TransitionError::NotFound) => Ok(()),
        Err(TransitionError::Store(e)) => Err(e.into()),
    }
}
