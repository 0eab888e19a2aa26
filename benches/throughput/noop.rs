//! The reference for the pipeline's job rate: how fast one apalis worker, configured as
//! the service configures its own (src/jobs/workers.rs), drains no-op tasks from a queue
//! of their own on the same database.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::*;
use fortnox_fulfilment::jobs::JobSettings;
use fortnox_fulfilment::store::jobs_table::{self, QueuedTask};
use fortnox_fulfilment::store::Pool;
use serde::{Deserialize, Serialize};

/// A queue no worker of the service polls.
const NOOP_QUEUE: &str = "bench_noop";

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Noop {
    n: usize,
}

/// Counts the tasks run and wakes the waiter after the last.
#[derive(Clone)]
struct Progress {
    done: Arc<AtomicUsize>,
    target: usize,
    finished: Arc<tokio::sync::Notify>,
}

async fn noop(_task: Noop, progress: Data<Progress>) -> Result<(), BoxDynError> {
    if progress.done.fetch_add(1, Ordering::SeqCst) + 1 == progress.target {
        progress.finished.notify_one();
    }
    Ok(())
}

pub struct NoopFigures {
    pub tasks: usize,
    pub elapsed: Duration,
}

impl NoopFigures {
    pub fn per_second(&self) -> f64 {
        self.tasks as f64 / self.elapsed.as_secs_f64()
    }
}

/// Pushes `tasks` no-op tasks in one transaction (not timed), then times one worker
/// draining them, from its start to the last task's run.
pub async fn drain_noop_tasks(
    pool: &Pool,
    settings: &JobSettings,
    tasks: usize,
) -> anyhow::Result<NoopFigures> {
    push_noop_tasks(pool, tasks).await?;
    let progress = Progress {
        done: Arc::new(AtomicUsize::new(0)),
        target: tasks,
        finished: Arc::new(tokio::sync::Notify::new()),
    };
    let finished = progress.finished.clone();
    let signal = async move {
        finished.notified().await;
        Ok(())
    };
    // The same worker settings as `register_workers!` in src/jobs/workers.rs.
    let poll_interval = settings.poll_interval;
    let heartbeat = settings.heartbeat;
    let strategy = move || Strategy::new().interval(poll_interval);
    let name = format!("{NOOP_QUEUE}-{}", uuid::Uuid::new_v4().simple());
    let monitor = Monitor::new().shutdown_timeout(Duration::from_secs(30));
    let started = Instant::now();
    let result = match pool {
        Pool::Sqlite(pool) => {
            use apalis_sqlite::{Config, SqliteStorage};
            let config = Config::default()
                .queue(NOOP_QUEUE)
                .heartbeat_interval(heartbeat)
                .missed_heartbeats(3)
                .batch_size(10);
            let pool = pool.clone();
            monitor
                .register(move |_| {
                    WorkerBuilder::new(name.clone())
                        .backend(
                            SqliteStorage::<Noop>::new(&pool)
                                .with_config(config.clone())
                                .poll_with_strategy(strategy()),
                        )
                        .data(progress.clone())
                        .build(noop)
                })
                .run_with_signal(signal)
                .await
        }
        Pool::Postgres(pool) => {
            use apalis_postgres::{Config, PostgresStorage};
            let config = Config::default()
                .queue(NOOP_QUEUE)
                .heartbeat_interval(heartbeat)
                .missed_heartbeats(3)
                .batch_size(10);
            let pool = pool.clone();
            monitor
                .register(move |_| {
                    WorkerBuilder::new(name.clone())
                        .backend(
                            PostgresStorage::<Noop>::new(&pool)
                                .with_config(config.clone())
                                .poll_with_strategy(strategy()),
                        )
                        .data(progress.clone())
                        .build(noop)
                })
                .run_with_signal(signal)
                .await
        }
    };
    let elapsed = started.elapsed();
    result.map_err(|e| anyhow::anyhow!("no-op worker: {e}"))?;
    Ok(NoopFigures { tasks, elapsed })
}

async fn push_noop_tasks(pool: &Pool, count: usize) -> anyhow::Result<()> {
    let tasks = (0..count)
        .map(|n| {
            let payload = serde_json::to_vec(&Noop { n })?;
            Ok(QueuedTask {
                queue: NOOP_QUEUE,
                task: TaskBuilder::new(payload).build(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    match pool {
        Pool::Sqlite(pool) => {
            let mut tx = pool.begin().await?;
            jobs_table::push_sqlite(&mut tx, tasks).await?;
            tx.commit().await?;
        }
        Pool::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            jobs_table::push_postgres(&mut tx, tasks).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}
