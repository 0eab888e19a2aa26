//! Per-state order counts without a shared row to wait on (PostgreSQL).
//!
//! The striped counters of `order_state_counts` were updated in every transition's
//! transaction and stayed locked until its commit: with a hundred jobs at once, transitions
//! queued on each other's counter rows (the trigger took about a third of the database's
//! time at 100 merchants). Now a transition only appends its change to
//! `order_state_deltas`, an insert that waits on nobody, and a background task folds the
//! deltas into `order_state_counts` every few seconds in one statement (see
//! `store::order_counts`). A count is the kept rows plus the deltas not yet folded, read
//! in one statement, so it is always exact.
//!
//! SQLite has one writer at a time, so nothing waits on a counter row there: it keeps its
//! triggers on the striped rows, and its delta table stays empty.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLE: &str = "CREATE TABLE IF NOT EXISTS order_state_deltas (
    state TEXT NOT NULL,
    n BIGINT NOT NULL
)";

const POSTGRES_UP: &str =
    "CREATE OR REPLACE FUNCTION orders_count_states() RETURNS TRIGGER LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO order_state_deltas (state, n) VALUES (NEW.state, 1);
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO order_state_deltas (state, n) VALUES (OLD.state, -1);
        ELSIF OLD.state <> NEW.state THEN
            INSERT INTO order_state_deltas (state, n) VALUES (OLD.state, -1), (NEW.state, 1);
        END IF;
        RETURN NULL;
    END $$";

/// The function as `m20261129_000002_order_state_counts` made it, after folding the deltas.
const POSTGRES_DOWN: [&str; 3] = [
    "UPDATE order_state_counts c SET n = c.n + d.n FROM \
     (SELECT state, SUM(n) AS n FROM order_state_deltas GROUP BY state) d \
     WHERE c.state = d.state AND c.stripe = 0",
    "CREATE OR REPLACE FUNCTION orders_count_states() RETURNS TRIGGER LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE order_state_counts SET n = n + 1 WHERE state = NEW.state AND stripe = NEW.id % 16;
        ELSIF TG_OP = 'DELETE' THEN
            UPDATE order_state_counts SET n = n - 1 WHERE state = OLD.state AND stripe = OLD.id % 16;
        ELSIF OLD.state <> NEW.state THEN
            UPDATE order_state_counts SET n = n + CASE WHEN state = NEW.state THEN 1 ELSE -1 END
            WHERE stripe = NEW.id % 16 AND state IN (OLD.state, NEW.state);
        END IF;
        RETURN NULL;
    END $$",
    "DROP TABLE IF EXISTS order_state_deltas",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(TABLE).await?;
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            db.execute_unprepared(POSTGRES_UP).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            for statement in POSTGRES_DOWN {
                db.execute_unprepared(statement).await?;
            }
        } else {
            db.execute_unprepared("DROP TABLE IF EXISTS order_state_deltas")
                .await?;
        }
        Ok(())
    }
}
