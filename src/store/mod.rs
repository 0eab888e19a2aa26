//! Storage: one pool shared by sea-orm (CRUD and reads) and apalis (the job queue), on
//! SQLite or PostgreSQL chosen by the URL. The transition function (`transitions`) talks
//! sqlx directly so that the state change and the job it triggers commit together.
pub mod catalog;
pub mod duplicates;
pub mod event_log;
pub mod fortnox_rate;
pub mod fortnox_tokens;
pub mod import_failures;
pub mod integrations;
pub mod job_wakeups;
pub mod jobs_table;
pub mod leases;
pub mod order_counts;
pub mod orders;
pub mod pipeline;
pub mod product_sync;
pub mod realtime;
pub mod transitions;
pub mod webhooks;
pub mod write;

use std::str::FromStr;
use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{DatabaseConnection, SqlxPostgresConnector, SqlxSqliteConnector};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DATABASE_URL `{0}` is neither sqlite:... nor postgres://...")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Orm(#[from] sea_orm::DbErr),
    #[error("job queue error: {0}")]
    Queue(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

/// The raw pool, for the few places that need sqlx (transactions shared with apalis).
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

#[derive(Clone, Debug)]
pub struct Store {
    pub db: DatabaseConnection,
    pub pool: Pool,
}

/// Connections of the pool the HTTP API uses, and of the one the jobs use (see
/// `App::build`): apart, so that a job backlog cannot make API requests queue behind it.
/// SQLite lets one connection write at a time, and more connections only wait longer
/// for it: there the two pools share the 8 of one.
pub const API_POOL_CONNECTIONS: u32 = 6;
pub const JOB_POOL_CONNECTIONS: u32 = 16;
const SQLITE_API_POOL_CONNECTIONS: u32 = 2;
const SQLITE_JOB_POOL_CONNECTIONS: u32 = 6;

/// Rows a SQLite connection's thread may read ahead of the task taking them (sqlx's default
/// is 50): a page of the API is up to 201 rows, and lines twice that; with room for all of
/// them the thread never waits for the task mid-query.
const SQLITE_ROW_BUFFER: usize = 512;

/// (API, jobs) pool sizes for the database at `url`.
pub fn pool_sizes(url: &str) -> (u32, u32) {
    if url.starts_with("sqlite:") {
        (SQLITE_API_POOL_CONNECTIONS, SQLITE_JOB_POOL_CONNECTIONS)
    } else {
        (API_POOL_CONNECTIONS, JOB_POOL_CONNECTIONS)
    }
}
impl Store {
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, JOB_POOL_CONNECTIONS).await
    }

    /// A store with its own pool of at most `max_connections` connections.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30))
                .foreign_keys(true)
                .row_buffer_size(SQLITE_ROW_BUFFER);
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections.clamp(1, 8))
                .connect_with(options)
                .await?;
            Ok(Store {
                db: SqlxSqliteConnector::from_sqlx_sqlite_pool(pool.clone()),
                pool: Pool::Sqlite(pool),
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // Named after this process, so that a standby can end every session of a
            // frozen holder of the Fortnox WebSocket connection (see `realtime::leader`).
            let options = sqlx::postgres::PgConnectOptions::from_str(url)?
                .application_name(&instance_application_name());
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?;
            Ok(Store {
                db: SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone()),
                pool: Pool::Postgres(pool),
            })
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }

    /// Our tables (sea-orm migrations) and the job queue's tables (apalis' own migrations).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Migrator::up(&self.db, None).await?;
        match &self.pool {
            Pool::Sqlite(pool) => apalis_sqlite::SqliteStorage::setup(pool)
                .await
                .map_err(|e| StoreError::Queue(e.to_string()))?,
            Pool::Postgres(pool) => apalis_postgres::PostgresStorage::setup(pool)
                .await
                .map_err(|e| StoreError::Queue(e.to_string()))?,
        }
        jobs_table::ensure_key_index(&self.pool).await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Pool::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// This process's name among the processes sharing the database: its pid and a random
/// tail (pids repeat across hosts and restarts).
pub fn instance_id() -> &'static str {
    static ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple())
    });
    &ID
}

/// The `application_name` of this process's PostgreSQL sessions.
pub fn instance_application_name() -> String {
    format!("ff-{}", instance_id())
}

/// SQL is written once with `?` placeholders; PostgreSQL wants `$1, $2, ...`.
pub fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            super::numbered_placeholders("a = ? AND b = ?"),
            "a = $1 AND b = $2"
        );
    }
}
