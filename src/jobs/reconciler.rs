//! Re-enqueues orders left in an actionable state with no live job: the safety net for a
//! job lost between a commit and a crash, or a task apalis gave up on.
use super::{enqueue_state_job, JobContext};
use crate::domain::OrderState;
use crate::store::jobs_table;
use crate::store::StoreError;

const BATCH: u64 = 500;

/// One pass; returns how many orders got a new job.
pub async fn reconcile_once(ctx: &JobContext) -> Result<usize, StoreError> {
    let idle = chrono::Duration::from_std(ctx.settings.reconcile_idle).unwrap_or(chrono::Duration::seconds(60));
    let mut requeued = 0;
    for state in OrderState::actionable() {
        for order in ctx.store.idle_orders(state, idle, BATCH).await? {
            if jobs_table::has_live_job(&ctx.store.pool, order.id).await? {
                continue;
            }
            if enqueue_state_job(&ctx.store, order.id, state).await? {
                tracing::warn!(order_id = order.id, %state, "reconciler re-enqueued an order with no live job");
                requeued += 1;
            }
        }
    }
    Ok(requeued)
}

pub(super) async fn run(ctx: JobContext, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(ctx.settings.reconcile_interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(error) = reconcile_once(&ctx).await {
                    tracing::error!(%error, "reconciler pass failed; trying again next interval");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
