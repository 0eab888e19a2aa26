//! Webhooks: the endpoints merchants and partners register, one delivery per event and
//! endpoint, each attempt of a delivery, and how far the event log has been fanned out
//! to deliveries (one row, locked by whoever fans out, so processes take turns).
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The statements with `{pk}`, `{ts}` and `{json}` standing for each database's spelling.
const TABLES: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS webhook_endpoints (
        id {pk},
        merchant_id BIGINT NOT NULL REFERENCES merchants(id) ON DELETE CASCADE,
        url TEXT NOT NULL,
        kinds {json} NOT NULL,
        secret TEXT NOT NULL,
        previous_secret TEXT NULL,
        previous_secret_until {ts} NULL,
        enabled BOOLEAN NOT NULL,
        disabled_reason TEXT NULL,
        failing_since {ts} NULL,
        start_tx BIGINT NOT NULL,
        start_id BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        created_at {ts} NOT NULL,
        updated_at {ts} NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS webhook_deliveries (
        id {pk},
        endpoint_id BIGINT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
        event_id BIGINT NOT NULL REFERENCES order_events(id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at {ts} NULL,
        last_error TEXT NULL,
        created_at {ts} NOT NULL,
        retry_window_start {ts} NOT NULL,
        delivered_at {ts} NULL,
        UNIQUE (endpoint_id, event_id)
    )",
    "CREATE TABLE IF NOT EXISTS webhook_attempts (
        id {pk},
        delivery_id BIGINT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        started_at {ts} NOT NULL,
        status_code INTEGER NULL,
        error TEXT NULL,
        latency_ms BIGINT NOT NULL,
        response_excerpt TEXT NULL
    )",
    "CREATE TABLE IF NOT EXISTS webhook_fanout (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        tx_position BIGINT NOT NULL,
        event_id BIGINT NOT NULL
    )",
];

const INDEXES: [&str; 3] = [
    "CREATE INDEX IF NOT EXISTS ix_webhook_endpoints_merchant ON webhook_endpoints (merchant_id, id)",
    "CREATE INDEX IF NOT EXISTS ix_webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id)",
    "CREATE INDEX IF NOT EXISTS ix_webhook_attempts_delivery ON webhook_attempts (delivery_id, id)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let (pk, ts, json) = match manager.get_database_backend() {
            DatabaseBackend::Postgres => ("BIGSERIAL PRIMARY KEY", "TIMESTAMPTZ", "jsonb"),
            _ => ("INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT", "json_text"),
        };
        for table in TABLES {
            let sql = table
                .replace("{pk}", pk)
                .replace("{ts}", ts)
                .replace("{json}", json);
            db.execute_unprepared(&sql).await?;
        }
        for index in INDEXES {
            db.execute_unprepared(index).await?;
        }
        // Fanned out from the newest event on: there are no endpoints before now.
        db.execute_unprepared(
            "INSERT INTO webhook_fanout (id, tx_position, event_id) VALUES (1, 0, 0) \
             ON CONFLICT (id) DO NOTHING",
        )
        .await?;
        db.execute_unprepared(
            "UPDATE webhook_fanout SET \
             tx_position = COALESCE((SELECT MAX(tx_position) FROM order_events), 0), \
             event_id = COALESCE((SELECT MAX(id) FROM order_events), 0) \
             WHERE id = 1 AND tx_position = 0 AND event_id = 0",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for table in [
            "webhook_fanout",
            "webhook_attempts",
            "webhook_deliveries",
            "webhook_endpoints",
        ] {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}"))
                .await?;
        }
        Ok(())
    }
}
