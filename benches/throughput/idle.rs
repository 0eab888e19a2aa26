//! What an idle server asks of its database: transactions per second on PostgreSQL (from
//! `pg_stat_database`, which counts each statement sent outside a transaction as one),
//! with the idle poll as shipped against the old fixed 250 ms poll, in the same run.
//! SQLite keeps no such count, so this scenario runs on PostgreSQL only.
use std::time::Duration;

use crate::harness::{base_config, Backend, BenchDb, Server};
use fortnox_fulfilment::store::Pool;

pub struct IdleFigures {
    /// Transactions per second with the settings as shipped.
    pub shipped: f64,
    /// The same with the poll fixed at 250 ms (the old behaviour).
    pub fixed_poll: f64,
}

pub async fn run(
    backend: &Backend,
    settle: Duration,
    window: Duration,
) -> anyhow::Result<IdleFigures> {
    let shipped = measure(backend, None, settle, window).await?;
    let fixed_poll = measure(backend, Some(Duration::from_millis(250)), settle, window).await?;
    Ok(IdleFigures {
        shipped,
        fixed_poll,
    })
}

async fn measure(
    backend: &Backend,
    idle_poll: Option<Duration>,
    settle: Duration,
    window: Duration,
) -> anyhow::Result<f64> {
    let db = BenchDb::create(backend, "idle").await?;
    let mut config = base_config(&db.url);
    if let Some(poll) = idle_poll {
        config.jobs.idle_poll = poll;
    }
    let server = Server::start(config).await?;
    // Let start-up settle and the idle poll stretch to its longest.
    tokio::time::sleep(settle).await;
    let Pool::Postgres(pool) = server.pool() else {
        anyhow::bail!("the idle scenario needs PostgreSQL");
    };
    let count = || async {
        // The statistics are flushed by each backend at most once a second: force ours.
        let _ = sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(pool)
            .await;
        sqlx::query_scalar::<_, i64>(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(pool)
        .await
    };
    let before = count().await?;
    tokio::time::sleep(window).await;
    let after = count().await?;
    server.stop().await;
    db.drop_database().await;
    // Our own two reads (and their snapshot clears) are in the count: take them out.
    Ok((after - before - 2).max(0) as f64 / window.as_secs_f64())
}
