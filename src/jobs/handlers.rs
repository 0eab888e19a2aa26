//! What each job does. Every handler first checks that the order is still in the state the
//! job was queued for: a stale or duplicated task is a no-op, which is what makes re-runs
//! after a crash safe.
use std::str::FromStr;

use super::{invoice, send, validate, JobContext, JobError};
use crate::domain::{JobKind, OrderState};
use crate::store::leases::Lease;
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
    let state = runnable_state(kind, &order)?;
    let Some(state) = state else {
        tracing::debug!(order_id, ?kind, state = %order.state, "stale job: the order has moved on");
        return Ok(());
    };
    let (mut lease, order) = match ctx
        .store
        .claim(order_id, state.as_str(), ctx.settings.lease_terms())
        .await?
    {
        Ok(claimed) => claimed,
        Err(held) => return Err(JobError::Busy(held.until)),
    };
    // Decide on the order as read after the claim: a holder before us may have changed it.
    let result = match runnable_state(kind, &order)? {
        Some(state) => run(kind, state, order, &mut lease, ctx).await,
        None => Ok(()),
    };
    if let Err(error) = ctx.store.release(lease).await {
        // The lease runs out by itself; the next job only waits for that.
        tracing::warn!(order_id, %error, "could not release the order's lease");
    }
    result
}

/// The order's state if this kind of job has work to do in it.
fn runnable_state(
    kind: JobKind,
    order: &entity::order::Model,
) -> Result<Option<OrderState>, JobError> {
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
    Ok(runnable.then_some(state))
}

async fn run(
    kind: JobKind,
    state: OrderState,
    order: entity::order::Model,
    lease: &mut Lease,
    ctx: &JobContext,
) -> Result<(), JobError> {
    match (kind, state) {
        // Validation also re-checks RESERVED orders (`revalidateOrder`, or a fix elsewhere).
        (JobKind::ValidateOrder, OrderState::Imported | OrderState::Reserved) => {
            validate::run(ctx, order, state).await
        }
        (JobKind::SendToWarehouse, OrderState::Validated) => send::run(ctx, order, lease).await,
        (JobKind::InvoiceOrder, OrderState::Shipped) => invoice::run(ctx, order, lease).await,
        _ => {
            tracing::debug!(order_id = order.id, ?kind, %state, "stale job: the order has moved on");
            Ok(())
        }
    }
}

/// Stops the job unless it still holds the order's lease: called before each external
/// effect. A lost lease means another job has the order; this task comes back later and
/// finds the order moved on (or waits its turn).
pub(super) async fn ensure_held(ctx: &JobContext, lease: &Lease) -> Result<(), JobError> {
    if ctx.store.ensure_held(lease).await? {
        Ok(())
    } else {
        tracing::warn!(
            order_id = lease.order_id,
            "lease lost before an external effect; stopping without it"
        );
        Err(JobError::Busy(None))
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
