//! The one dispatcher of order jobs: takes the order's lease, runs the step for the order's
//! state, and applies what the step decided. Steps (`validate`, `send`, `invoice`) only
//! decide; they never write the order's state themselves, so every transition error is
//! mapped here, once.
use super::counters::{self, bump};
use super::outcome::StepOutcome;
use super::{invoice, send, validate, JobContext, JobError};
use crate::domain::{JobKind, OrderState};
use crate::store::jobs_table::{self, CreditDuplicate};
use crate::store::leases::{Claim, Lease};
use crate::store::orders::TenantScope;
use crate::store::transitions::{apply_transition, TransitionError, TransitionRequest};

pub(super) async fn handle(kind: JobKind, order_id: i64, ctx: &JobContext) -> Result<(), JobError> {
    if super::faults::should_fail(ctx, kind) {
        return Err(JobError::Retryable(format!("fault injected into {kind:?}")));
    }
    let (mut lease, order) = match ctx
        .store
        .claim(order_id, kind.runs_in_states(), ctx.settings.lease_terms())
        .await?
    {
        Claim::Claimed(lease, order) => (lease, *order),
        Claim::Held(held) => return Err(JobError::Busy(held.until)),
        Claim::NotRunnable(order) => {
            tracing::debug!(order_id, ?kind, state = %order.state, "stale job: the order has moved on");
            return Ok(());
        }
        Claim::Missing => {
            tracing::warn!(order_id, ?kind, "job for a missing order dropped");
            return Ok(());
        }
    };
    let state = order.state;
    let mut released = false;
    let result = match run_step(kind, state, order, &mut lease, ctx).await {
        Ok(outcome) => {
            let applied = apply(ctx, kind, order_id, outcome, lease.token()).await;
            released = matches!(applied, Ok(Applied::Transitioned));
            applied.map(|_| ())
        }
        Err(error) => Err(error),
    };
    super::faults::before_release(ctx).await;
    if released {
        // The transition's own UPDATE released it (and the next job may hold it by now).
        lease.stop_renewing();
    } else if let Err(error) = ctx.store.release(lease).await {
        // The lease runs out by itself; the next job only waits for that.
        tracing::warn!(order_id, %error, "could not release the order's lease");
    }
    result
}

/// What applying a step's outcome did.
enum Applied {
    /// The order changed state, which released its lease in the same write.
    Transitioned,
    /// Anything else: the lease is still ours to release.
    Other,
}

async fn run_step(
    kind: JobKind,
    state: OrderState,
    order: entity::order::Model,
    lease: &mut Lease,
    ctx: &JobContext,
) -> Result<StepOutcome, JobError> {
    match kind {
        JobKind::ValidateOrder => validate::run(ctx, order, state).await,
        JobKind::SendToWarehouse => send::run(ctx, order, lease).await,
        JobKind::InvoiceOrder => invoice::run(ctx, order, lease).await,
    }
}

async fn apply(
    ctx: &JobContext,
    kind: JobKind,
    order_id: i64,
    outcome: StepOutcome,
    lease_token: &str,
) -> Result<Applied, JobError> {
    let actor = format!("system:{}", jobs_table::queue_name(kind));
    match outcome {
        StepOutcome::Transition(mut request) => {
            // The next state's job may start before this one returns: hand the order on.
            request.lease_token = Some(lease_token.to_owned());
            match apply_transition(&ctx.store, request.clone()).await {
                Ok(_) => Ok(Applied::Transitioned),
                Err(TransitionError::Store(e)) => Err(e.into()),
                Err(TransitionError::NotFound) => {
                    tracing::warn!(order_id, ?kind, "the order vanished while its job ran");
                    Ok(Applied::Other)
                }
                Err(TransitionError::Conflict { .. } | TransitionError::Refused(_)) => {
                    lost_race(ctx, &request, &actor)
                        .await
                        .map(|()| Applied::Other)
                }
            }
        }
        StepOutcome::StillReserved { reasons } => {
            ctx.store.update_reasons(order_id, &reasons, &actor).await?;
            Ok(Applied::Other)
        }
        StepOutcome::Done => Ok(Applied::Other),
    }
}

/// Someone (an admin, the warehouse, a racing job) changed the order while the step ran.
/// Usually nothing is left to do; but an effect that already happened outside (an invoice,
/// the warehouse taking the order) is never swallowed.
async fn lost_race(
    ctx: &JobContext,
    request: &TransitionRequest,
    actor: &str,
) -> Result<(), JobError> {
    let order_id = request.order_id;
    let Some(now) = ctx.store.order(&TenantScope::All, order_id).await? else {
        return Ok(());
    };
    if let Some(invoice) = request.invoice_number.as_deref() {
        return invoiced_meanwhile(ctx, &now, invoice, actor).await;
    }
    if let (OrderState::Sent, Some(reference)) = (request.to, &request.warehouse_reference) {
        let message = format!("The warehouse accepted this order (reference {reference}) while it was being changed here: stop it in the warehouse if it should not ship");
        ctx.store
            .record_order_error(order_id, "warehouse_holds_order", actor, &message, false)
            .await?;
        return Ok(());
    }
    tracing::debug!(order_id, to = %request.to, state = %now.state, "the order moved on first; nothing left to do");
    Ok(())
}

/// A Fortnox invoice was made for an order that left SHIPPED meanwhile: the same invoice
/// is fine, a different one is a duplicate (credited by its own job), any other change
/// needs a person.
async fn invoiced_meanwhile(
    ctx: &JobContext,
    now: &entity::order::Model,
    invoice: &str,
    actor: &str,
) -> Result<(), JobError> {
    let order_id = now.id;
    match now.invoice_number.as_deref() {
        Some(kept) if kept == invoice => {
            tracing::debug!(order_id, invoice, "a racing job recorded the same invoice");
            Ok(())
        }
        Some(kept) => {
            bump(&counters::DUPLICATE_INVOICES_DETECTED);
            tracing::error!(
                order_id,
                invoice,
                kept,
                "duplicate Fortnox invoice detected"
            );
            let job = CreditDuplicate {
                order_id,
                invoice: invoice.to_owned(),
                kept: kept.to_owned(),
                attempt: 0,
            };
            jobs_table::push(
                &ctx.store.pool,
                vec![jobs_table::credit_duplicate_task(&job, None)?],
            )
            .await?;
            Ok(())
        }
        None => {
            bump(&counters::INVOICES_FOR_CHANGED_ORDERS);
            let message = format!(
                "Fortnox invoice {invoice} was created for this order while it was changed to {} here: check the invoice in Fortnox and credit it if it is not wanted",
                now.state
            );
            tracing::error!(order_id, invoice, state = %now.state, "invoice created for an order that changed meanwhile");
            ctx.store
                .record_order_error(order_id, "invoice_after_change", actor, &message, false)
                .await?;
            Ok(())
        }
    }
}
