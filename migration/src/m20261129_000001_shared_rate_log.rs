//! PostgreSQL only: each Fortnox tenant's sliding log of request times, shared by every
//! server process, and the function that admits one request against it in one statement.
//! SQLite serves one process, whose log stays in memory.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `fortnox_rate_try_record(tenant, max, span_ms)` records a request now and returns 0 if
/// fewer than `max` were recorded within `span_ms` before now; otherwise it records nothing
/// and returns the milliseconds until one may be. The row lock makes concurrent callers
/// take turns; "now" is read after the lock, from the database's one clock, so the
/// processes' own clocks do not matter and waiting for the lock is not time in the window.
const UP: &str = r#"
CREATE TABLE IF NOT EXISTS fortnox_rate_log (
    tenant TEXT PRIMARY KEY,
    sent TIMESTAMPTZ[] NOT NULL DEFAULT '{}'
);

CREATE OR REPLACE FUNCTION fortnox_rate_try_record(p_tenant TEXT, p_max INTEGER, p_span_ms INTEGER)
RETURNS DOUBLE PRECISION LANGUAGE plpgsql AS $$
DECLARE
    v_sent TIMESTAMPTZ[];
    v_now TIMESTAMPTZ;
    v_span INTERVAL := make_interval(secs => p_span_ms / 1000.0);
BEGIN
    SELECT sent INTO v_sent FROM fortnox_rate_log WHERE tenant = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO fortnox_rate_log (tenant) VALUES (p_tenant) ON CONFLICT (tenant) DO NOTHING;
        SELECT sent INTO v_sent FROM fortnox_rate_log WHERE tenant = p_tenant FOR UPDATE;
    END IF;
    v_now := clock_timestamp();
    SELECT coalesce(array_agg(t ORDER BY t), '{}') INTO v_sent
        FROM unnest(v_sent) AS t WHERE t > v_now - v_span;
    IF coalesce(array_length(v_sent, 1), 0) < p_max THEN
        UPDATE fortnox_rate_log SET sent = v_sent || v_now WHERE tenant = p_tenant;
        RETURN 0;
    END IF;
    RETURN greatest(1.0, extract(epoch FROM
        v_sent[array_length(v_sent, 1) - p_max + 1] + v_span - v_now)::float8 * 1000.0);
END
$$;
"#;

const DOWN: &str = r#"
DROP FUNCTION IF EXISTS fortnox_rate_try_record(TEXT, INTEGER, INTEGER);
DROP TABLE IF EXISTS fortnox_rate_log;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager.get_connection().execute_unprepared(UP).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            manager.get_connection().execute_unprepared(DOWN).await?;
        }
        Ok(())
    }
}
