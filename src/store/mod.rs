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
mod order_page;
pub mod orders;
pub mod pipeline;
pub mod product_sync;
pub mod realtime;
mod sqlite_busy;
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

/// Each SQLite connection's page cache, in KiB (SQLite's own default, set here so that the
/// bound is ours): at most 8 connections, so at most 16 MiB of cached pages in all.
const SQLITE_PAGE_CACHE_KIB: u32 = 2048;

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
                // While the connection is set up; then `sqlite_busy` waits in finer steps.
                .busy_timeout(sqlite_busy::BUSY_TIMEOUT)
                .foreign_keys(true)
                .pragma("cache_size", format!("-{SQLITE_PAGE_CACHE_KIB}"))
                // The write-ahead log is emptied at each checkpoint but keeps its size on
                // disk; past 64 MiB it is cut back (the one setting of the job queue's
                // own setup worth keeping).
                .pragma("journal_size_limit", "67108864")
                .row_buffer_size(SQLITE_ROW_BUFFER);
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections.clamp(1, 8))
                .after_connect(|connection, _| Box::pin(sqlite_busy::install(connection)))
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
            Pool::Sqlite(pool) => {
                // Not `SqliteStorage::setup`: besides the migrations it sets, on whichever
                // pooled connection it gets, `synchronous = OFF` (a power loss can corrupt the
                // database), a page cache of 64,000 pages (250 MB that is never given
                // back), and runs `PRAGMA optimize` without a limit (at 100,000 orders it
                // read 48 MB of pages into that cache at every start). The connection
                // settings are ours, the same on every connection (`connect_with`).
                apalis_sqlite::SqliteStorage::migrations()
                    .run(pool)
                    .await
                    .map_err(|e| StoreError::Queue(e.to_string()))?;
                refresh_sqlite_statistics(pool).await?;
            }
            Pool::Postgres(pool) => apalis_postgres::PostgresStorage::setup(pool)
                .await
                .map_err(|e| StoreError::Queue(e.to_string()))?,
        }
        jobs_table::tune_job_indexes(&self.pool).await
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

/// Keeps the query planner's statistics current, at bounded cost: `PRAGMA optimize` runs
/// ANALYZE only on tables whose size changed much since their last analysis, and
/// `analysis_limit` makes each index's analysis read about that many rows, not the whole
/// index (SQLite's advice for long-lived connections, run when they open). Both pragmas are
/// per connection, so they run on one held connection.
async fn refresh_sqlite_statistics(pool: &sqlx::SqlitePool) -> Result<(), StoreError> {
    let mut connection = pool.acquire().await?;
    sqlx::query("PRAGMA analysis_limit = 400")
        .execute(&mut *connection)
        .await?;
    sqlx::query("PRAGMA optimize = 0x10002")
        .execute(&mut *connection)
        .await?;
    Ok(())
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

/// A migrated store on a new SQLite file with at most `connections` connections, for the
/// store's unit tests; the file lives as long as the returned directory.
#[cfg(test)]
pub(crate) async fn temp_sqlite_store(
    connections: u32,
) -> (tempfile::TempDir, Store, sqlx::SqlitePool) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = Store::connect_with(&url, connections)
        .await
        .expect("open SQLite");
    store.migrate().await.expect("migrate");
    let Pool::Sqlite(pool) = store.pool.clone() else {
        unreachable!("a SQLite url")
    };
    (dir, store, pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every SQLite connection keeps the settings `connect_with` gives it, after the
    /// migrations too (the job queue's own setup would have set `synchronous = OFF` and a
    /// 250 MB page cache on the connection it ran on).
    #[tokio::test]
    async fn sqlite_connections_keep_safe_syncing_and_a_bounded_page_cache() {
        // One connection, so that the one the migrations ran on is the one checked.
        let (_dir, store, pool) = temp_sqlite_store(1).await;
        let pool = &pool;
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(pool)
            .await
            .expect("read synchronous");
        let cache_size: i64 = sqlx::query_scalar("PRAGMA cache_size")
            .fetch_one(pool)
            .await
            .expect("read cache_size");
        assert_eq!(
            synchronous, 1,
            "synchronous = NORMAL: in WAL mode a power loss cannot corrupt the database"
        );
        assert_eq!(cache_size, -i64::from(SQLITE_PAGE_CACHE_KIB));
        store.close().await;
    }

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            super::numbered_placeholders("a = ? AND b = ?"),
            "a = $1 AND b = $2"
        );
    }
}
