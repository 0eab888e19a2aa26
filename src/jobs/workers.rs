//! Wires the dispatcher to apalis workers on the shared pool and runs them until shutdown.
use std::future::Future;

use apalis::prelude::*;

use super::{dispatch, reconciler, JobContext, JobError};
use crate::domain::JobKind;
use crate::store::job_wakeups::Wakeups;
use crate::store::jobs_table::{self, OrderJob};
use crate::store::Pool;

/// Runs one attempt and turns its failure into a re-scheduled task or, after the last
/// attempt, an error event. Only a failure to record that outcome reaches apalis.
async fn run_order_job(kind: JobKind, job: OrderJob, ctx: &JobContext) -> Result<(), BoxDynError> {
    let actor = format!("system:{}", jobs_table::queue_name(kind));
    let (message, retry) = match dispatch::handle(kind, job.order_id, ctx).await {
        Ok(()) => return Ok(()),
        Err(JobError::Busy(until)) => {
            // Not a failure: the same attempt runs again once the other job is done.
            super::counters::bump(&super::counters::ORDER_JOBS_PUT_OFF);
            let wait = until
                .and_then(|until| (until - chrono::Utc::now()).to_std().ok())
                .unwrap_or_default()
                .clamp(
                    std::time::Duration::from_secs(1),
                    std::time::Duration::from_secs(60),
                );
            tracing::debug!(
                order_id = job.order_id,
                ?kind,
                ?wait,
                "order busy with another job; trying later"
            );
            jobs_table::push(
                &ctx.store.pool,
                vec![jobs_table::order_task(kind, &job, Some(wait))?],
            )
            .await?;
            return Ok(());
        }
        Err(JobError::Retryable(message)) => (message, true),
        Err(JobError::NeedsAttention(message)) => (message, false),
    };
    let next_attempt = job.attempt + 1;
    if retry && next_attempt < ctx.settings.retry.max_attempts {
        let delay = ctx.settings.retry.delay(job.attempt, None);
        tracing::warn!(order_id = job.order_id, ?kind, attempt = next_attempt, ?delay, %message, "job failed; retrying later");
        let next = OrderJob {
            order_id: job.order_id,
            attempt: next_attempt,
        };
        jobs_table::push(
            &ctx.store.pool,
            vec![jobs_table::order_task(kind, &next, Some(delay))?],
        )
        .await?;
        return Ok(());
    }
    let message = if retry {
        format!("{message} (gave up after {next_attempt} attempts; retry the order once the cause is fixed)")
    } else {
        message
    };
    tracing::error!(order_id = job.order_id, ?kind, %message, "job stopped; the order needs attention");
    ctx.store
        .record_order_error(job.order_id, "job_failed", &actor, &message, true)
        .await?;
    Ok(())
}

async fn validate_order(job: OrderJob, ctx: Data<JobContext>) -> Result<(), BoxDynError> {
    run_order_job(JobKind::ValidateOrder, job, &ctx).await
}

async fn send_to_warehouse(job: OrderJob, ctx: Data<JobContext>) -> Result<(), BoxDynError> {
    run_order_job(JobKind::SendToWarehouse, job, &ctx).await
}

async fn invoice_order(job: OrderJob, ctx: Data<JobContext>) -> Result<(), BoxDynError> {
    run_order_job(JobKind::InvoiceOrder, job, &ctx).await
}

/// An import that fails is not retried by itself: the next scheduled poll (or syncOrders)
/// starts from the same cursor, so nothing is lost; the error is kept on the integration.
async fn import_orders(
    job: jobs_table::ImportOrders,
    ctx: Data<JobContext>,
) -> Result<(), BoxDynError> {
    if let Err(error) = super::import_orders(&ctx, job.merchant_id, job.requested_at).await {
        tracing::warn!(merchant_id = job.merchant_id, %error, "order import failed; the next poll tries again");
        ctx.store
            .set_integration_error(job.merchant_id, &format!("Order import failed: {error}"))
            .await?;
    }
    Ok(())
}

/// When a worker looks for due tasks: at once when a task is queued (`Wakeups`), and
/// otherwise on a poll that doubles from `busy` up to `idle` while the queue stays empty
/// and drops back to `busy` as soon as a look finds work.
///
/// Written by hand: apalis' combined `Strategy` (a stream plus `interval_with_backoff`)
/// never passes its poll results on to the backoff, which so stays at its first interval:
/// an idle server polled every queue four times a second.
struct WakeOrPoll {
    wakeups: Wakeups,
    busy: std::time::Duration,
    idle: std::time::Duration,
    next: std::time::Duration,
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl WakeOrPoll {
    fn new(wakeups: Wakeups, busy: std::time::Duration, idle: std::time::Duration) -> Self {
        WakeOrPoll {
            wakeups,
            busy,
            idle: idle.max(busy),
            next: busy,
            timer: None,
        }
    }
}

impl PollStrategy for WakeOrPoll {
    /// apalis ignores what this returns: it only needs the worker's waker registered, and
    /// then asks the backend, which fetches only when its last batch is done. So both the
    /// wake-ups and the timer must hold the waker after every call. (Returning at the first
    /// wake-up without listening again or arming the timer lost the worker: when the backend
    /// had just found nothing, it answered Pending, and the worker slept until its next
    /// heartbeat, 15 s, while tasks piled up; on PostgreSQL validations waited 10 s.)
    fn poll_drive(
        &mut self,
        cx: &mut std::task::Context<'_>,
        _: &PollSnapshot,
    ) -> std::task::Poll<Option<()>> {
        use futures::{FutureExt, StreamExt};
        use std::task::Poll;
        // Until Pending, so that the stream holds the waker for the next wake-up.
        let mut woken = false;
        while let Poll::Ready(Some(())) = self.wakeups.poll_next_unpin(cx) {
            woken = true;
        }
        if woken {
            self.next = self.busy;
            self.timer = None;
        }
        let next = self.next;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(next)));
        let timed_out = timer.poll_unpin(cx).is_ready();
        if timed_out {
            if !woken {
                self.next = (self.next * 2).min(self.idle);
            }
            // Armed again and polled once, so that it holds the waker.
            let next = self.next;
            let _ = self
                .timer
                .insert(Box::pin(tokio::time::sleep(next)))
                .poll_unpin(cx);
        }
        if woken || timed_out {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }

    fn on_poll(&mut self, snapshot: &PollSnapshot) {
        if !snapshot.is_idle() {
            self.next = self.busy;
        }
    }
}

/// Worker names must be unique per process: apalis refuses to register a name whose last
/// heartbeat is recent, which a restart right after a crash would otherwise hit.
fn worker_name(queue: &str) -> String {
    format!(
        "{queue}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

macro_rules! register_workers {
    ($monitor:expr, $ctx:expr, $storage:ident, $config:ident, $pool:expr) => {{
        let ctx: JobContext = $ctx;
        let poll_interval = ctx.settings.poll_interval;
        let idle_poll_interval = ctx.settings.idle_poll_interval;
        let batch_size = ctx.settings.batch_size;
        // Woken at once for every task queued (job_wakeups); the poll is the safety net, so
        // it stretches from `poll_interval` to `idle_poll_interval` while a queue is idle.
        let strategy = move |queue: &str| {
            WakeOrPoll::new(Wakeups::of(queue), poll_interval, idle_poll_interval)
        };
        let config = |queue: &str| {
            $config::default()
                .queue(queue)
                .heartbeat_interval(ctx.settings.heartbeat)
                .missed_heartbeats(3)
                .batch_size(batch_size)
        };
        let pool = $pool.clone();
        let (c, p, cfg, st) = (
            ctx.clone(),
            pool.clone(),
            config(jobs_table::queue_name(JobKind::ValidateOrder)),
            strategy,
        );
        let monitor = $monitor.register(move |_| {
            WorkerBuilder::new(worker_name(jobs_table::queue_name(JobKind::ValidateOrder)))
                .backend(
                    $storage::<OrderJob>::new(&p)
                        .with_config(cfg.clone())
                        .poll_with_strategy(st(cfg.queue.as_ref())),
                )
                .data(c.clone())
                .build(validate_order)
        });
        let (c, p, cfg, st) = (
            ctx.clone(),
            pool.clone(),
            config(jobs_table::queue_name(JobKind::SendToWarehouse)),
            strategy,
        );
        let monitor = monitor.register(move |_| {
            WorkerBuilder::new(worker_name(jobs_table::queue_name(
                JobKind::SendToWarehouse,
            )))
            .backend(
                $storage::<OrderJob>::new(&p)
                    .with_config(cfg.clone())
                    .poll_with_strategy(st(cfg.queue.as_ref())),
            )
            .data(c.clone())
            .build(send_to_warehouse)
        });
        let (c, p, cfg, st) = (
            ctx.clone(),
            pool.clone(),
            config(jobs_table::queue_name(JobKind::InvoiceOrder)),
            strategy,
        );
        let monitor = monitor.register(move |_| {
            WorkerBuilder::new(worker_name(jobs_table::queue_name(JobKind::InvoiceOrder)))
                .backend(
                    $storage::<OrderJob>::new(&p)
                        .with_config(cfg.clone())
                        .poll_with_strategy(st(cfg.queue.as_ref())),
                )
                .data(c.clone())
                .build(invoice_order)
        });
        let (c, p, cfg, st) = (
            ctx.clone(),
            pool.clone(),
            config(jobs_table::IMPORT_QUEUE),
            strategy,
        );
        let monitor = monitor.register(move |_| {
            WorkerBuilder::new(worker_name(jobs_table::IMPORT_QUEUE))
                .backend(
                    $storage::<jobs_table::ImportOrders>::new(&p)
                        .with_config(cfg.clone())
                        .poll_with_strategy(st(cfg.queue.as_ref())),
                )
                .data(c.clone())
                .build(import_orders)
        });
        let (c, p, cfg, st) = (
            ctx.clone(),
            pool.clone(),
            config(jobs_table::FORTNOX_EVENT_QUEUE),
            strategy,
        );
        let monitor = monitor.register(move |_| {
            WorkerBuilder::new(worker_name(jobs_table::FORTNOX_EVENT_QUEUE))
                .backend(
                    $storage::<jobs_table::FortnoxOrderEvent>::new(&p)
                        .with_config(cfg.clone())
                        .poll_with_strategy(st(cfg.queue.as_ref())),
                )
                .data(c.clone())
                .build(super::fortnox_events::read_fortnox_order)
        });
        let (c, p, cfg, st) = (
            ctx.clone(),
            pool.clone(),
            config(jobs_table::CREDIT_DUPLICATE_QUEUE),
            strategy,
        );
        let monitor = monitor.register(move |_| {
            WorkerBuilder::new(worker_name(jobs_table::CREDIT_DUPLICATE_QUEUE))
                .backend(
                    $storage::<jobs_table::CreditDuplicate>::new(&p)
                        .with_config(cfg.clone())
                        .poll_with_strategy(st(cfg.queue.as_ref())),
                )
                .data(c.clone())
                .build(super::credit::credit_duplicate)
        });
        let (c, p, cfg, st) = (
            ctx.clone(),
            pool.clone(),
            config(jobs_table::WEBHOOK_QUEUE),
            strategy,
        );
        let monitor = monitor.register(move |_| {
            WorkerBuilder::new(worker_name(jobs_table::WEBHOOK_QUEUE))
                .backend(
                    $storage::<jobs_table::DeliverWebhook>::new(&p)
                        .with_config(cfg.clone())
                        .poll_with_strategy(st(cfg.queue.as_ref())),
                )
                .data(c.clone())
                .build(super::webhooks::deliver_webhook)
        });
        let (c, p, cfg, st) = (
            ctx.clone(),
            pool.clone(),
            config(jobs_table::PUSH_STOCK_QUEUE),
            strategy,
        );
        monitor.register(move |_| {
            WorkerBuilder::new(worker_name(jobs_table::PUSH_STOCK_QUEUE))
                .backend(
                    $storage::<jobs_table::PushStock>::new(&p)
                        .with_config(cfg.clone())
                        .poll_with_strategy(st(cfg.queue.as_ref())),
                )
                .data(c.clone())
                .build(super::stock::push_stock)
        })
    }};
}

/// Runs every worker and the reconciler until `shutdown` resolves, then lets running jobs
/// finish (up to 30 s) before returning.
pub async fn run_workers(
    ctx: JobContext,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let reconciler = tokio::spawn(reconciler::run(ctx.clone(), stop_rx.clone()));
    let scheduler = tokio::spawn(reconciler::schedule_imports(ctx.clone(), stop_rx));
    let monitor = Monitor::new()
        .shutdown_timeout(std::time::Duration::from_secs(30))
        // A worker whose poll failed (e.g. the database was briefly unreachable) is
        // restarted rather than left dead.
        .should_restart(|_, _| true);
    let signal = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
        Ok(())
    };
    let result = match &ctx.store.pool {
        Pool::Sqlite(pool) => {
            use apalis_sqlite::{Config, SqliteStorage};
            let monitor = register_workers!(monitor, ctx.clone(), SqliteStorage, Config, pool);
            monitor.run_with_signal(signal).await
        }
        Pool::Postgres(pool) => {
            use apalis_postgres::{Config, PostgresStorage};
            let monitor = register_workers!(monitor, ctx.clone(), PostgresStorage, Config, pool);
            monitor.run_with_signal(signal).await
        }
    };
    let _ = reconciler.await;
    let _ = scheduler.await;
    result.map_err(|e| anyhow::anyhow!("job workers stopped with an error: {e}"))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Context;
    use std::time::{Duration, Instant};

    use apalis::prelude::{PollSnapshot, PollStrategy};
    use futures::task::ArcWake;

    use super::WakeOrPoll;
    use crate::store::job_wakeups::{wake, Wakeups};

    /// How long until the strategy next asks for a look.
    async fn next_look(strategy: &mut WakeOrPoll) -> Duration {
        let started = Instant::now();
        std::future::poll_fn(|cx| strategy.poll_drive(cx, &PollSnapshot::default())).await;
        started.elapsed()
    }

    #[tokio::test]
    async fn the_poll_doubles_while_idle_up_to_its_cap_and_a_wake_up_brings_it_back() {
        let busy = Duration::from_millis(100);
        let idle = Duration::from_millis(400);
        let mut strategy = WakeOrPoll::new(Wakeups::of("test-wake-or-poll"), busy, idle);
        let mut gaps = Vec::new();
        for _ in 0..4 {
            gaps.push(next_look(&mut strategy).await);
        }
        assert!(gaps[0] >= busy, "{gaps:?}");
        assert!(gaps[1] >= busy * 2, "{gaps:?}");
        assert!(gaps[2] >= idle && gaps[3] >= idle, "{gaps:?}");
        assert!(gaps[3] < idle * 3, "capped at `idle`: {gaps:?}");
        wake("test-wake-or-poll");
        let woken = next_look(&mut strategy).await;
        assert!(woken < busy, "a wake-up asks at once: {woken:?}");
        let after = next_look(&mut strategy).await;
        // The timer is armed when the wake-up is taken, a moment before this look began.
        let armed_early = Duration::from_millis(5);
        assert!(
            after + armed_early >= busy && after < idle,
            "back to `busy`: {after:?}"
        );
    }

    /// A waker that counts how often it is woken.
    struct Counter(AtomicUsize);

    impl ArcWake for Counter {
        fn wake_by_ref(counter: &Arc<Self>) {
            counter.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A strategy, a waker counting its wake-ups, and one wake-up taken. Then the worker's
    /// backend, having just found nothing, answers Pending without fetching: from here the
    /// worker waits for its waker alone.
    fn wake_up_taken(queue: &str, busy: Duration) -> (WakeOrPoll, Arc<Counter>) {
        let mut strategy = WakeOrPoll::new(Wakeups::of(queue), busy, Duration::from_secs(3600));
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = futures::task::waker(counter.clone());
        wake(queue);
        let taken = strategy.poll_drive(&mut Context::from_waker(&waker), &PollSnapshot::default());
        assert!(taken.is_ready());
        (strategy, counter)
    }

    #[tokio::test]
    async fn after_a_wake_up_is_taken_the_next_one_still_wakes_the_worker() {
        // A timer of an hour cannot be what wakes it here.
        let (_strategy, counter) = wake_up_taken("test-wake-again", Duration::from_secs(3600));
        wake("test-wake-again");
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn after_a_wake_up_is_taken_the_timer_still_wakes_the_worker() {
        let busy = Duration::from_millis(50);
        let (_strategy, counter) = wake_up_taken("test-wake-then-timer", busy);
        tokio::time::sleep(busy * 4).await;
        assert!(counter.0.load(Ordering::SeqCst) >= 1);
    }
}
