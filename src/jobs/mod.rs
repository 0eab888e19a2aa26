//! Durable jobs on apalis, one queue and handler per transition, sharing the app's pool.
//!
//! Retries: a failed attempt is re-scheduled as a new task with an exponential, jittered
//! delay (`run_after`), instead of apalis' in-memory retry layer, so that the wait survives
//! a restart. After the last attempt the order gets an ERROR event and is marked stalled;
//! `retryOrder` starts it again.
pub mod counters;
mod credit;
mod dispatch;
pub mod faults;
mod fortnox_events;
mod fortnox_glue;
mod import;
mod invoice;
mod outcome;
mod reconciler;
mod send;
mod stock;
mod validate;
mod webhooks;
mod workers;

use std::sync::Arc;
use std::time::Duration;

pub use fortnox_glue::{new_order, CatalogCache};
pub use import::import_orders;
pub use reconciler::reconcile_once;
pub use webhooks::{fan_out as fan_out_webhooks, payload as webhook_payload};
pub use workers::run_workers;

use crate::domain::{JobKind, OrderState};
use crate::fortnox::RetryPolicy;
use crate::store::jobs_table::{self, OrderJob};
use crate::store::{Store, StoreError};

#[derive(Clone, Debug)]
pub struct JobSettings {
    /// Attempts per job before the order is stalled with an error event (`max_attempts`),
    /// and the delay before each retry: the Fortnox client's policy, from `base_delay`
    /// doubling up to `max_delay`.
    pub retry: RetryPolicy,
    /// How often workers look for due tasks while there is work.
    pub poll_interval: Duration,
    /// How far the look stretches while a queue is idle: every task queued wakes its
    /// workers anyway (see `store::job_wakeups`), so this only bounds how late a task that
    /// no wake-up announced (another process's retry, an orphan re-queued) is seen.
    pub idle_poll_interval: Duration,
    /// Worker heartbeat; a worker silent for 3 heartbeats is dead and its tasks re-run.
    pub heartbeat: Duration,
    pub reconcile_interval: Duration,
    /// How long an order may sit in an actionable state before the reconciler checks it.
    pub reconcile_idle: Duration,
    /// How often each connected merchant's Fortnox is polled for done orders.
    pub import_interval: Duration,
    /// The same for merchants whose real-time import is live: a safety net for changes
    /// Fortnox sends no event for.
    pub realtime_import_interval: Duration,
    /// Real-time import is on: the connection catches up on what happened while the
    /// service was down (from its stored offsets, or by a poll when it has none), so the
    /// schedule does not poll every merchant at start.
    pub realtime_enabled: bool,
    /// How long an order's lease lasts without renewal: a running job renews it, so this is
    /// how long the order waits after its job's process died or froze.
    pub lease: Duration,
    /// Tasks a queue's worker takes per look, which also bounds how many of the queue's
    /// jobs run at once (about twice this; see `JOB_BATCH_SIZE`).
    pub batch_size: usize,
}

impl JobSettings {
    pub fn lease_terms(&self) -> crate::store::leases::LeaseTerms {
        crate::store::leases::LeaseTerms::new(
            chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::minutes(10)),
        )
    }
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            retry: RetryPolicy {
                max_attempts: 12,
                base_delay: Duration::from_secs(5),
                max_delay: Duration::from_secs(15 * 60),
            },
            poll_interval: Duration::from_millis(250),
            idle_poll_interval: Duration::from_secs(30),
            heartbeat: Duration::from_secs(15),
            reconcile_interval: Duration::from_secs(60),
            reconcile_idle: Duration::from_secs(60),
            import_interval: Duration::from_secs(120),
            realtime_import_interval: Duration::from_secs(900),
            realtime_enabled: false,
            lease: Duration::from_secs(600),
            batch_size: 50,
        }
    }
}

#[derive(Clone)]
pub struct JobContext {
    pub store: Store,
    pub settings: JobSettings,
    /// Test-only fault points; absent from builds without the `test-faults` feature.
    #[cfg(feature = "test-faults")]
    pub faults: faults::FaultPoints,
    pub fortnox: crate::fortnox::FortnoxClient,
    pub warehouse: Arc<dyn crate::warehouse::Warehouse>,
    pub catalog: CatalogCache,
    pub import_locks: ImportLocks,
    pub webhooks: crate::webhooks::Webhooks,
}

/// One import per merchant at a time in a process: a second one (a poll and a syncOrders
/// overlapping) waits and then finds every order already stored, instead of reading each
/// from Fortnox again.
pub type ImportLocks = crate::fortnox::KeyedLocks<i64>;

/// How a job attempt ended, when it did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth trying again later (network, Fortnox busy, database hiccup).
    #[error("{0}")]
    Retryable(String),
    /// Will fail the same way until a person changes something; the message says what.
    #[error("{0}")]
    NeedsAttention(String),
    /// Another job holds the order (until the time given, if known): try again then,
    /// without counting an attempt.
    #[error("another job is working on the order")]
    Busy(Option<chrono::DateTime<chrono::Utc>>),
}

impl From<StoreError> for JobError {
    fn from(error: StoreError) -> Self {
        // The details are for the log; the order's event says only what kind of failure.
        tracing::warn!(%error, "database error in a job");
        JobError::Retryable(
            "a temporary database problem (the details are in the service log)".into(),
        )
    }
}

/// Queues the job that the order's current state needs, e.g. after `retryOrder` or from
/// the reconciler. Returns false when the state needs no job.
pub async fn enqueue_state_job(
    store: &Store,
    order_id: i64,
    state: OrderState,
) -> Result<bool, StoreError> {
    let Some(kind) = JobKind::queued_in(state) else {
        return Ok(false);
    };
    let task = jobs_table::order_task(
        kind,
        &OrderJob {
            order_id,
            attempt: 0,
        },
        None,
    )?;
    jobs_table::push(&store.pool, vec![task]).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let settings = JobSettings {
            retry: RetryPolicy {
                base_delay: Duration::from_secs(2),
                max_delay: Duration::from_secs(60),
                ..JobSettings::default().retry
            },
            ..Default::default()
        };
        // backon computes in f32 seconds: allow a microsecond of rounding.
        let rounding = Duration::from_micros(1);
        for attempt in 0..10 {
            let delay = settings.retry.delay(attempt, None);
            let ceiling = (Duration::from_secs(2) * 2u32.pow(attempt)).min(Duration::from_secs(60));
            assert!(
                delay + rounding >= ceiling / 2 && delay <= ceiling + rounding,
                "attempt {attempt}: {delay:?}"
            );
        }
    }
}
