//! PostgreSQL only: the shared Fortnox rate-limit log names each entry it records, so that
//! a request whose answer came late can move its entry to when it may have reached
//! Fortnox (see the fortnox crate's `limiter`). `fortnox_rate_try_record` stays for
//! processes of the previous version during a rolling update.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `fortnox_rate_admit(tenant, max, span_ms)`: as `fortnox_rate_try_record`, but answers
/// `(0, recorded)` with the entry's time in microseconds since the epoch, or
/// `(wait_ms, NULL)`. `fortnox_rate_move(tenant, from, to)` moves the entry recorded at
/// `from` to `to` (both microseconds since the epoch); an entry already trimmed is added
/// back at `to`.
const UP: &str = r#"
CREATE OR REPLACE FUNCTION fortnox_rate_admit(p_tenant TEXT, p_max INTEGER, p_span_ms INTEGER)
RETURNS TABLE (wait_ms DOUBLE PRECISION, recorded_micros BIGINT) LANGUAGE plpgsql AS $$
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
    -- Moved entries may lie after now: they count too, and the one that frees room
    -- first is still the `max`-th from the end.
    IF coalesce(array_length(v_sent, 1), 0) < p_max THEN
        UPDATE fortnox_rate_log SET sent = v_sent || v_now WHERE tenant = p_tenant;
        RETURN QUERY SELECT 0::float8,
            (extract(epoch FROM v_now) * 1000000)::bigint;
        RETURN;
    END IF;
    RETURN QUERY SELECT greatest(1.0, extract(epoch FROM
        v_sent[array_length(v_sent, 1) - p_max + 1] + v_span - v_now)::float8 * 1000.0),
        NULL::bigint;
END
$$;

CREATE OR REPLACE FUNCTION fortnox_rate_move(p_tenant TEXT, p_from BIGINT, p_to BIGINT)
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    v_from TIMESTAMPTZ := 'epoch'::timestamptz + p_from * interval '1 microsecond';
    v_to TIMESTAMPTZ := 'epoch'::timestamptz + p_to * interval '1 microsecond';
    v_position INTEGER;
BEGIN
    SELECT array_position(sent, v_from) INTO v_position
        FROM fortnox_rate_log WHERE tenant = p_tenant FOR UPDATE;
    IF v_position IS NULL THEN
        UPDATE fortnox_rate_log SET sent = sent || v_to WHERE tenant = p_tenant;
    ELSE
        UPDATE fortnox_rate_log SET sent[v_position] = v_to WHERE tenant = p_tenant;
    END IF;
END
$$;
"#;

const DOWN: &str = r#"
DROP FUNCTION IF EXISTS fortnox_rate_move(TEXT, BIGINT, BIGINT);
DROP FUNCTION IF EXISTS fortnox_rate_admit(TEXT, INTEGER, INTEGER);
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
