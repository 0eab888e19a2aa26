//! Orders per state for `/metrics`, kept by triggers on `orders` so that a scrape reads a
//! few dozen rows however many orders there are.
//!
//! On PostgreSQL a transition's trigger only appends its change to `order_state_deltas`
//! (an insert that waits on no other transaction); [`run_folding`] folds the deltas into
//! `order_state_counts` every few seconds. SQLite (one writer) updates the counts in its
//! triggers directly. Either way a count is the kept rows plus the deltas not yet folded.
use std::time::Duration;

use tokio::sync::watch;

use super::{Pool, StoreError};

/// Orders per state, exact: one statement, so one snapshot of the counts and the deltas.
const COUNTS: &str = "SELECT state, CAST(SUM(n) AS BIGINT) FROM \
    (SELECT state, n FROM order_state_counts UNION ALL SELECT state, n FROM order_state_deltas) AS kept \
    GROUP BY state";

/// Moves every committed delta into the counts, in one statement. Deltas committed while
/// it runs are not in its snapshot and wait for the next fold; two processes folding at
/// once each move only rows the other did not.
const FOLD: &str = "WITH moved AS (DELETE FROM order_state_deltas RETURNING state, n) \
    INSERT INTO order_state_counts (state, stripe, n) \
    SELECT state, 0, SUM(n) FROM moved GROUP BY state \
    ON CONFLICT (state, stripe) DO UPDATE SET n = order_state_counts.n + EXCLUDED.n";

/// How often the deltas are folded: at 165 orders a second (100 merchants) about 5,000
/// rows gather in between, which a scrape sums in a few milliseconds.
pub const FOLD_EVERY: Duration = Duration::from_secs(5);

/// Orders per state (states with none may be missing or 0).
pub async fn per_state(pool: &Pool) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(match pool {
        Pool::Sqlite(pool) => sqlx::query_as(COUNTS).fetch_all(pool).await?,
        Pool::Postgres(pool) => sqlx::query_as(COUNTS).fetch_all(pool).await?,
    })
}

/// Folds the deltas into the counts once (PostgreSQL; SQLite has none).
pub async fn fold(pool: &sqlx::PgPool) -> Result<(), StoreError> {
    sqlx::query(FOLD).execute(pool).await?;
    Ok(())
}

/// Even with no sign of a change, fold this often: a sign may be missed (a feed that fell
/// behind), and the counts stay exact meanwhile anyway.
const FOLD_AT_LEAST_EVERY: Duration = Duration::from_secs(300);

/// Folds every [`FOLD_EVERY`] while orders change, until `shutdown`. `changed` answers
/// whether orders may have changed since it was last asked (every state change writes an
/// order event, which every process's event feed sees); an idle server so sends nothing.
/// A failed fold is retried at the next turn: the deltas stay where they are and the
/// counts stay exact meanwhile.
pub async fn run_folding(
    pool: sqlx::PgPool,
    mut changed: impl FnMut() -> bool + Send,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(FOLD_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut folded_at = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = every.tick() => {
                if !changed() && folded_at.elapsed() < FOLD_AT_LEAST_EVERY {
                    continue;
                }
                match fold(&pool).await {
                    Ok(()) => folded_at = tokio::time::Instant::now(),
                    Err(error) => tracing::warn!(%error, "could not fold the order count deltas; trying again in {FOLD_EVERY:?}"),
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
