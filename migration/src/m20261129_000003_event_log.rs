//! The order events become a log that consumers read in order and resume from a cursor.
//!
//! `tx_position` orders events by the transaction that wrote them. Ids alone are not safe
//! on PostgreSQL: sequence values commit out of order (A takes id 10, B takes 11 and
//! commits first), so a reader could see 11 and later 10. Each event records its
//! transaction id instead (`pg_current_xact_id()`), the log is read in (tx_position, id)
//! order, and only transactions older than the oldest one still running are handed out
//! (see `store::event_log`): those can no longer change, and every later transaction has
//! a larger id. SQLite writes one transaction at a time, so its ids commit in order; there
//! tx_position stays 0. Events written before this migration keep 0 on both.
//!
//! `payload` holds what an event adds beyond its state change: the reasons of a RESERVED
//! order, tracking numbers, the invoice number.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: [&str; 3] = [
    "CREATE INDEX IF NOT EXISTS ix_order_events_position ON order_events (tx_position, id)",
    "CREATE INDEX IF NOT EXISTS ix_order_events_merchant_position ON order_events (merchant_id, tx_position, id)",
    "CREATE INDEX IF NOT EXISTS ix_order_events_order_position ON order_events (order_id, tx_position, id)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let columns: &[&str] = match manager.get_database_backend() {
            DatabaseBackend::Postgres => &[
                // Added with a constant (the rows already there keep 0), then every new
                // row takes its transaction's id.
                "ALTER TABLE order_events ADD COLUMN IF NOT EXISTS tx_position BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE order_events ALTER COLUMN tx_position SET DEFAULT (pg_current_xact_id()::text::bigint)",
                "ALTER TABLE order_events ADD COLUMN IF NOT EXISTS payload jsonb NULL",
            ],
            _ => &[
                "ALTER TABLE order_events ADD COLUMN tx_position BIGINT NOT NULL DEFAULT 0",
                "ALTER TABLE order_events ADD COLUMN payload json_text NULL",
            ],
        };
        for statement in columns.iter().chain(INDEXES.iter()) {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in [
            "DROP INDEX IF EXISTS ix_order_events_position",
            "DROP INDEX IF EXISTS ix_order_events_merchant_position",
            "DROP INDEX IF EXISTS ix_order_events_order_position",
            "ALTER TABLE order_events DROP COLUMN payload",
            "ALTER TABLE order_events DROP COLUMN tx_position",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}
