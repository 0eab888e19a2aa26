//! Real-time import from Fortnox's WebSocket API: how far each topic has been processed
//! (offsets are per topic, shared by every tenant), the offsets already seen (delivery is
//! at-least-once), which process holds the one connection and when it last said so, and
//! each merchant's real-time status.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The statements with `{ts}` standing for each database's timestamp type.
const TABLES: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS fortnox_ws_offsets (
        topic TEXT PRIMARY KEY,
        event_offset TEXT NOT NULL,
        updated_at {ts} NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS fortnox_ws_seen (
        topic TEXT NOT NULL,
        event_offset TEXT NOT NULL,
        seen_at {ts} NOT NULL,
        PRIMARY KEY (topic, event_offset)
    )",
    "CREATE TABLE IF NOT EXISTS fortnox_ws_connection (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        holder TEXT NULL,
        connected_at {ts} NULL,
        heartbeat_at {ts} NULL
    )",
    "CREATE TABLE IF NOT EXISTS fortnox_realtime_merchants (
        merchant_id BIGINT PRIMARY KEY REFERENCES merchants(id) ON DELETE CASCADE,
        tenant_id BIGINT NULL,
        live_since {ts} NULL,
        last_event_at {ts} NULL,
        problem TEXT NULL,
        catalog_changed_at {ts} NULL
    )",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let ts = match manager.get_database_backend() {
            DatabaseBackend::Postgres => "TIMESTAMPTZ",
            _ => "TEXT",
        };
        for table in TABLES {
            db.execute_unprepared(&table.replace("{ts}", ts)).await?;
        }
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS ix_fortnox_ws_seen_at ON fortnox_ws_seen (seen_at)",
        )
        .await?;
        db.execute_unprepared(
            "INSERT INTO fortnox_ws_connection (id) VALUES (1) ON CONFLICT (id) DO NOTHING",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for table in [
            "fortnox_realtime_merchants",
            "fortnox_ws_connection",
            "fortnox_ws_seen",
            "fortnox_ws_offsets",
        ] {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}"))
                .await?;
        }
        Ok(())
    }
}
