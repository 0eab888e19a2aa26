//! Each Fortnox tenant's rate-limit log in PostgreSQL, shared by every server process: the
//! log itself and the admission rule are the `fortnox_rate_try_record` function (see its
//! migration), so one request costs one short statement and processes need not know of
//! each other. SQLite serves one process and keeps the log in memory instead.
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;

use crate::fortnox::limiter::{Admission, RateLimit, SharedRateLog};
use crate::fortnox::oauth::StoreError;

pub struct PgRateLog {
    pool: PgPool,
}

impl PgRateLog {
    pub fn new(pool: PgPool) -> PgRateLog {
        PgRateLog { pool }
    }
}

#[async_trait]
impl SharedRateLog for PgRateLog {
    async fn try_record(&self, tenant: &str, limit: RateLimit) -> Result<Admission, StoreError> {
        let span_ms = i32::try_from(limit.span().as_millis()).unwrap_or(i32::MAX);
        let max = i32::try_from(limit.max).unwrap_or(i32::MAX);
        let (wait_ms, recorded): (f64, Option<i64>) =
            sqlx::query_as("SELECT wait_ms, recorded_micros FROM fortnox_rate_admit($1, $2, $3)")
                .bind(tenant)
                .bind(max)
                .bind(span_ms)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| StoreError(format!("Fortnox rate-limit log: {e}")))?;
        Ok(match recorded {
            Some(at_micros) => Admission::Recorded { at_micros },
            None => Admission::Wait(Duration::from_secs_f64(wait_ms.max(1.0) / 1000.0)),
        })
    }

    async fn move_later(
        &self,
        tenant: &str,
        at_micros: i64,
        to_micros: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT fortnox_rate_move($1, $2, $3)")
            .bind(tenant)
            .bind(at_micros)
            .bind(to_micros)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError(format!("Fortnox rate-limit log: {e}")))?;
        Ok(())
    }
}
