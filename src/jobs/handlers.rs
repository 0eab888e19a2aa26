//! What each job does. Every handler first checks that the order is still in the state the
//! job was queued for: a stale or duplicated task is a no-op, which is what makes re-runs
//! after a crash safe.
use std::str::FromStr;

use super::{invoice, send, validate, JobContext, JobError};
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
    let state =
        OrderState::from_str(&order.state).map_err(|e| JobError::NeedsAttention(e.to_string()))?;
    let runnable = matches!(
        (kind, state),
        (
            JobKind::ValidateOrder,
            OrderState::Imported | OrderState::Reserved
        ) | (JobKind::SendToWarehouse, OrderState::Validated)
            | (JobKind::InvoiceOrder, OrderState::Shipped)
    );
    if !runnable {
        tracing::debug!(order_id, ?kind, %state, "stale job: the order has moved on");
        return Ok(());
    }
    let lease = match ctx
        .store
        .claim(order_id, state.as_str(), ctx.settings.lease())
        .await?
    {
        Ok(lease) => lease,
        Err(held) => return Err(JobError::Busy(held.until)),
    };
    let result = run(kind, state, order, ctx).await;
    if let Err(error) = ctx.store.release(lease).await {
        // The lease runs out by itself; the next job only waits for that.
        tracing::warn!(order_id, %error, "could not release the order's lease");
    }
    result
}

async fn run(
    kind: JobKind,
    state: OrderState,
    order: entity::order::Model,
    ctx: &JobContext,
) -> Result<(), JobError> {
    match (kind, state) {
        // Validation also re-checks RESERVED orders (`revalidateOrder`, or a fix elsewhere).
        (JobKind::ValidateOrder, OrderState::Imported | OrderState::Reserved) => {
            validate::run(ctx, order, state).await
        }
        (JobKind::SendToWarehouse, OrderState::Validated) => send::run(ctx, order).await,
        (JobKind::InvoiceOrder, OrderState::Shipped) => invoice::run(ctx, order).await,
        _ => {
            tracing::debug!(order_id = order.id, ?kind, %state, "stale job: the order has moved on");
            Ok(())
        }
    }
}

/// Applies a job's transition; losing a race to another change is not an error.
pub(super) async fn finish(ctx: &JobContext, request: TransitionRequest) -> Result<(), JobError> {
    match apply_transition(&ctx.store, &ctx.bus, request).await {
        Ok(_) => Ok(()),
        // Someone (an admin, a racing duplicate) moved the order first: nothing left to do.
        Err(TransitionError::Conflict { .. }) | Err(TransitionError::Refused(_)) => Ok(()),
        Err(TransitionError::NotFound) => Ok(()),
        Err(TransitionError::Store(e)) => Err(e.into()),
    }
}
