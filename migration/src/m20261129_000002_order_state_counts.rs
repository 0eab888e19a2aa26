//! Orders per state, kept up to date by triggers on `orders`, so `/metrics` reads a few
//! dozen rows instead of counting every order on every scrape.
//!
//! The counts are split into stripes (the order id modulo 16) so that concurrent
//! transitions on PostgreSQL seldom wait on the same counter row; a transition moves one
//! unit between two rows of its stripe in one UPDATE, which locks them in index order, so
//! two transitions in opposite directions (a forced one) cannot deadlock. Every (state,
//! stripe) row exists from the start: a trigger then only ever updates.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

const STATES: [&str; 7] = [
    "IMPORTED",
    "VALIDATED",
    "RESERVED",
    "SENT",
    "SHIPPED",
    "INVOICED",
    "CANCELLED",
];
pub const STRIPES: i64 = 16;

const TABLE: &str = "CREATE TABLE IF NOT EXISTS order_state_counts (
    state TEXT NOT NULL,
    stripe INTEGER NOT NULL,
    n BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (state, stripe)
)";

/// The statements the triggers run, with `OLD`/`NEW` as each database names them.
const ON_INSERT: &str =
    "UPDATE order_state_counts SET n = n + 1 WHERE state = NEW.state AND stripe = NEW.id % 16";
const ON_DELETE: &str =
    "UPDATE order_state_counts SET n = n - 1 WHERE state = OLD.state AND stripe = OLD.id % 16";
const ON_UPDATE: &str = "UPDATE order_state_counts \
    SET n = n + CASE WHEN state = NEW.state THEN 1 ELSE -1 END \
    WHERE stripe = NEW.id % 16 AND state IN (OLD.state, NEW.state)";

fn sqlite_up() -> Vec<String> {
    vec![
        format!("CREATE TRIGGER IF NOT EXISTS orders_count_insert AFTER INSERT ON orders BEGIN {ON_INSERT}; END"),
        format!("CREATE TRIGGER IF NOT EXISTS orders_count_delete AFTER DELETE ON orders BEGIN {ON_DELETE}; END"),
        format!("CREATE TRIGGER IF NOT EXISTS orders_count_update AFTER UPDATE OF state ON orders \
                 WHEN OLD.state <> NEW.state BEGIN {ON_UPDATE}; END"),
    ]
}

fn postgres_up() -> Vec<String> {
    vec![
        format!(
            "CREATE OR REPLACE FUNCTION orders_count_states() RETURNS TRIGGER LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'INSERT' THEN {ON_INSERT};
                ELSIF TG_OP = 'DELETE' THEN {ON_DELETE};
                ELSIF OLD.state <> NEW.state THEN {ON_UPDATE};
                END IF;
                RETURN NULL;
            END $$"
        ),
        "DROP TRIGGER IF EXISTS orders_count_states ON orders".into(),
        "CREATE TRIGGER orders_count_states AFTER INSERT OR DELETE OR UPDATE OF state ON orders \
         FOR EACH ROW EXECUTE FUNCTION orders_count_states()"
            .into(),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        db.execute_unprepared(TABLE).await?;
        let rows: Vec<String> = STATES
            .iter()
            .flat_map(|state| (0..STRIPES).map(move |stripe| format!("('{state}', {stripe}, 0)")))
            .collect();
        db.execute_unprepared(&format!(
            "INSERT INTO order_state_counts (state, stripe, n) VALUES {} ON CONFLICT DO NOTHING",
            rows.join(", ")
        ))
        .await?;
        // The orders already stored, counted once; the triggers keep it from here. On
        // PostgreSQL the migration is one transaction with the triggers' creation, so no
        // other process's change slips in between; SQLite has one process, which migrates
        // before it writes.
        db.execute_unprepared(
            "UPDATE order_state_counts SET n = (SELECT COUNT(*) FROM orders o \
             WHERE o.state = order_state_counts.state AND o.id % 16 = order_state_counts.stripe)",
        )
        .await?;
        let triggers = match backend {
            DatabaseBackend::Postgres => postgres_up(),
            _ => sqlite_up(),
        };
        for statement in triggers {
            db.execute_unprepared(&statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let statements: &[&str] = match manager.get_database_backend() {
            DatabaseBackend::Postgres => &[
                "DROP TRIGGER IF EXISTS orders_count_states ON orders",
                "DROP FUNCTION IF EXISTS orders_count_states()",
                "DROP TABLE IF EXISTS order_state_counts",
            ],
            _ => &[
                "DROP TRIGGER IF EXISTS orders_count_insert",
                "DROP TRIGGER IF EXISTS orders_count_delete",
                "DROP TRIGGER IF EXISTS orders_count_update",
                "DROP TABLE IF EXISTS order_state_counts",
            ],
        };
        for statement in statements {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}
