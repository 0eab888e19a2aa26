//! Re-enqueues orders left in an actionable state with no live job: the safety net for a
//! job lost between a commit and a crash, or a task apalis gave up on.
use super::{enqueue_state_job, JobContext};
use crate::store::jobs_table;
use crate::store::StoreError;

const BATCH: u64 = 500;
/// Finished tasks are kept this long (for inspection), then deleted.
const KEEP_FINISHED_TASKS: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// One pass; returns how many orders got a new job.
pub async fn reconcile_once(ctx: &JobContext) -> Result<usize, StoreError> {
    let idle = chrono::Duration::from_std(ctx.settings.reconcile_idle)
        .unwrap_or(chrono::Duration::seconds(60));
    let mut requeued = 0;
    for state in crate::domain::actionable_states() {
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
                match jobs_table::prune_finished(&ctx.store.pool, KEEP_FINISHED_TASKS).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::info!(deleted, "pruned finished job tasks"),
                    Err(error) => tracing::warn!(%error, "could not prune finished job tasks"),
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Queues an import for every connected merchant each `import_interval` (each
/// `realtime_import_interval` while its real-time import is live). The key names the
/// interval, so several processes sharing the database queue one import per merchant.
pub(super) async fn schedule_imports(
    ctx: JobContext,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    // Each merchant's slot is either interval; ticking at the shorter one meets both.
    let interval = ctx
        .settings
        .import_interval
        .min(ctx.settings.realtime_import_interval);
    let first = if ctx.settings.realtime_enabled {
        tokio::time::Instant::now() + interval
    } else {
        tokio::time::Instant::now()
    };
    let mut ticker = tokio::time::interval_at(first, interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(error) = queue_imports(&ctx).await {
                    tracing::error!(%error, "could not queue the scheduled imports; trying again next interval");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn queue_imports(ctx: &JobContext) -> Result<(), StoreError> {
    let now = chrono::Utc::now().timestamp();
    let slot = |interval: std::time::Duration| now / interval.as_secs().max(1) as i64;
    let live = ctx.store.realtime_live_merchants().await?;
    for merchant_id in ctx.store.connected_merchants().await? {
        // A live merchant's slots are longer (and keyed apart from the normal ones): its
        // events import its orders, and this poll only catches what Fortnox sends no
        // event for.
        let key = if live.contains(&merchant_id) {
            format!("realtime:{}", slot(ctx.settings.realtime_import_interval))
        } else {
            slot(ctx.settings.import_interval).to_string()
        };
        let task = jobs_table::scheduled_import_task(merchant_id, &key)?;
        if let Err(error) = jobs_table::push(&ctx.store.pool, vec![task]).await {
            // Another process queued this slot's import first.
            tracing::debug!(merchant_id, %error, "scheduled import already queued");
        }
    }
    Ok(())
}
