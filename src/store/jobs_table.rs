//! Our jobs as rows in apalis' table: building them (so they can be inserted inside our
//! own transactions) and asking whether an order still has a live one (for the reconciler).
use std::time::Duration;

use apalis::prelude::TaskBuilder;
use serde::{Deserialize, Serialize};

use super::{Pool, StoreError};
use crate::domain::JobKind;

/// Payload of every order job. `attempt` counts our own retries (see `jobs::run_order_job`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderJob {
    pub order_id: i64,
    #[serde(default)]
    pub attempt: u32,
}

/// Payload of the per-merchant import job.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImportOrders {
    pub merchant_id: i64,
    /// When the import was asked for. An import that began after that has covered it, so
    /// this one is skipped (see `jobs::import`). Absent in tasks queued by older versions.
    #[serde(default)]
    pub requested_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl ImportOrders {
    pub fn now(merchant_id: i64) -> Self {
        ImportOrders {
            merchant_id,
            requested_at: Some(chrono::Utc::now()),
        }
    }
}

pub const IMPORT_QUEUE: &str = "import_orders";

/// Payload of a stock push: the products (by SKU) whose stored stock level goes to their
/// Fortnox article. The level is read when the job runs, so the latest report wins.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PushStock {
    pub merchant_id: i64,
    pub skus: Vec<String>,
    #[serde(default)]
    pub attempt: u32,
}

pub const PUSH_STOCK_QUEUE: &str = "push_stock";

/// Payload of the read of one Fortnox order that a real-time event named: the order is
/// read when the job runs, so one job stands for every event of the order queued before.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FortnoxOrderEvent {
    pub merchant_id: i64,
    pub document_number: String,
    #[serde(default)]
    pub attempt: u32,
}

pub const FORTNOX_EVENT_QUEUE: &str = "fortnox_order_event";

/// The key prefix of an order's event reads: `fortnox-order:{merchant}:{document}:`.
fn fortnox_order_key(merchant_id: i64, document_number: &str) -> String {
    format!("fortnox-order:{merchant_id}:{document_number}")
}

pub fn fortnox_order_task(
    job: &FortnoxOrderEvent,
    delay: Option<Duration>,
) -> Result<QueuedTask, StoreError> {
    task_on(
        FORTNOX_EVENT_QUEUE,
        job,
        &fortnox_order_key(job.merchant_id, &job.document_number),
        delay,
    )
}

/// Is a read of this order waiting to start? Then a new event needs no job of its own:
/// that read sees the change too. `document_number` must be a parsed document number
/// (digits), since it becomes part of a pattern.
pub(crate) fn pending_fortnox_order_query(
    postgres: bool,
    merchant_id: i64,
    document_number: &str,
) -> (String, String) {
    pending_query(postgres, &fortnox_order_key(merchant_id, document_number))
}

/// Is one of the order's jobs waiting to start? (Its key starts `order:{id}:`.)
pub(crate) fn pending_order_job_query(postgres: bool, order_id: i64) -> (String, String) {
    pending_query(postgres, &format!("order:{order_id}"))
}

/// A count of the tasks under `prefix:` still waiting to start, with its pattern. Only
/// `Pending` counts: apalis marks a task `Queued` when a worker fetches it, and its handler
/// may already be running by then.
fn pending_query(postgres: bool, prefix: &str) -> (String, String) {
    if postgres {
        (
            "SELECT COUNT(*) FROM apalis.jobs WHERE idempotency_key LIKE ? AND status = 'Pending'"
                .into(),
            format!("{prefix}:%"),
        )
    } else {
        (
            "SELECT COUNT(*) FROM Jobs INDEXED BY ix_jobs_idempotency_key WHERE idempotency_key GLOB ? AND status = 'Pending'".into(),
            format!("{prefix}:*"),
        )
    }
}

/// Payload of the job that records a duplicate invoice and credits it in Fortnox. Queued
/// by the job that found it, in one write, so that a crash right after loses nothing.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreditDuplicate {
    pub order_id: i64,
    /// The duplicate, to be credited.
    pub invoice: String,
    /// The order's invoice, which stays.
    pub kept: String,
    #[serde(default)]
    pub attempt: u32,
}

pub const CREDIT_DUPLICATE_QUEUE: &str = "credit_duplicate_invoice";

pub fn credit_duplicate_task(
    job: &CreditDuplicate,
    delay: Option<Duration>,
) -> Result<QueuedTask, StoreError> {
    let key = format!("credit:{}:{}", job.order_id, job.invoice);
    task_on(CREDIT_DUPLICATE_QUEUE, job, &key, delay)
}

/// One attempt at a webhook delivery (see `jobs::webhooks`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeliverWebhook {
    pub delivery_id: i64,
}

pub const WEBHOOK_QUEUE: &str = "webhook_delivery";

pub fn webhook_task(
    job: &DeliverWebhook,
    delay: Option<Duration>,
) -> Result<QueuedTask, StoreError> {
    task_on(
        WEBHOOK_QUEUE,
        job,
        &format!("webhook:{}", job.delivery_id),
        delay,
    )
}

pub fn queue_name(kind: JobKind) -> &'static str {
    match kind {
        JobKind::ValidateOrder => "validate_order",
        JobKind::SendToWarehouse => "send_to_warehouse",
        JobKind::InvoiceOrder => "invoice_order",
    }
}

/// An order job's key (`order:{id}:` and a random tail) lets the reconciler find an
/// order's jobs without decoding payloads.
fn key_prefix(order_id: i64) -> String {
    format!("order:{order_id}:%")
}

/// Apalis' own attempt limit only matters for crashes (orphaned tasks are re-run); ordinary
/// failures are retried by re-scheduling (see jobs), so the task itself never fails.
const TASK_MAX_ATTEMPTS: usize = 25;

/// A task of `job` on `queue`, due after `delay`; its key is `key` and a random tail,
/// since apalis enforces (queue, key) uniqueness and each push is a task of its own.
fn task_on(
    queue: &'static str,
    job: &impl Serialize,
    key: &str,
    delay: Option<Duration>,
) -> Result<QueuedTask, StoreError> {
    let payload = serde_json::to_vec(job).map_err(|e| StoreError::Queue(e.to_string()))?;
    let mut builder = TaskBuilder::new(payload)
        .max_attempts(TASK_MAX_ATTEMPTS)
        .idempotency_key(format!("{key}:{}", uuid::Uuid::new_v4().simple()));
    if let Some(delay) = delay {
        builder = builder.run_after(delay);
    }
    Ok(QueuedTask {
        queue,
        task: builder.build(),
    })
}

pub struct QueuedTask {
    pub queue: &'static str,
    pub task: apalis::prelude::Task<Vec<u8>>,
}

impl QueuedTask {
    /// Its queue, and how long until it is due (None: at once), for the wake-up after the
    /// push commits (see `job_wakeups`).
    pub fn wake_up(&self) -> (&'static str, Option<Duration>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let delay = self
            .task
            .run_at()
            .map(|at| Duration::from_secs(at).saturating_sub(now))
            .filter(|delay| !delay.is_zero());
        (self.queue, delay)
    }
}

pub fn order_task(
    kind: JobKind,
    job: &OrderJob,
    delay: Option<Duration>,
) -> Result<QueuedTask, StoreError> {
    task_on(
        queue_name(kind),
        job,
        &format!("order:{}", job.order_id),
        delay,
    )
}

pub fn import_task(merchant_id: i64) -> Result<QueuedTask, StoreError> {
    let payload = serde_json::to_vec(&ImportOrders::now(merchant_id))
        .map_err(|e| StoreError::Queue(e.to_string()))?;
    Ok(QueuedTask {
        queue: IMPORT_QUEUE,
        task: TaskBuilder::new(payload)
            .max_attempts(TASK_MAX_ATTEMPTS)
            .idempotency_key(format!(
                "import:{merchant_id}:now:{}",
                uuid::Uuid::new_v4().simple()
            ))
            .build(),
    })
}

/// Is an import of the merchant waiting to start (queued on demand or by the schedule;
/// both keys start `import:{merchant_id}:`)? An import asked for meanwhile is that one. A
/// running import does not count: it may have listed Fortnox's orders before the change
/// the caller wants imported.
pub async fn has_pending_import(pool: &Pool, merchant_id: i64) -> Result<bool, StoreError> {
    // `Queued` is a task a worker has fetched, whose handler may already be running.
    const PENDING: &str = "status = 'Pending'";
    let count: i64 = match pool {
        Pool::Sqlite(pool) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM Jobs WHERE job_type = ? AND idempotency_key GLOB ? AND {PENDING}"
            )))
            .bind(IMPORT_QUEUE)
            .bind(format!("import:{merchant_id}:*"))
            .fetch_one(pool)
            .await?
        }
        Pool::Postgres(pool) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM apalis.jobs WHERE job_type = $1 AND idempotency_key LIKE $2 AND {PENDING}"
            )))
            .bind(IMPORT_QUEUE)
            .bind(format!("import:{merchant_id}:%"))
            .fetch_one(pool)
            .await?
        }
    };
    Ok(count > 0)
}

pub fn push_stock_task(job: &PushStock, delay: Option<Duration>) -> Result<QueuedTask, StoreError> {
    task_on(
        PUSH_STOCK_QUEUE,
        job,
        &format!("stock:{}", job.merchant_id),
        delay,
    )
}

/// The import of one schedule slot; its key makes a second one for the slot a no-op.
pub fn scheduled_import_task(merchant_id: i64, slot: &str) -> Result<QueuedTask, StoreError> {
    let payload = serde_json::to_vec(&ImportOrders::now(merchant_id))
        .map_err(|e| StoreError::Queue(e.to_string()))?;
    let task = TaskBuilder::new(payload)
        .max_attempts(TASK_MAX_ATTEMPTS)
        .idempotency_key(format!("import:{merchant_id}:{slot}"))
        .build();
    Ok(QueuedTask {
        queue: IMPORT_QUEUE,
        task,
    })
}

/// Inserts tasks on any SQLite executor (a transaction included).
pub async fn push_sqlite(
    conn: &mut sqlx::SqliteConnection,
    tasks: Vec<QueuedTask>,
) -> Result<(), StoreError> {
    for QueuedTask { queue, task } in tasks {
        apalis_sqlite::queries::push_tasks(conn, queue, &[task])
            .await
            .map_err(|e| StoreError::Queue(e.to_string()))?;
    }
    Ok(())
}

pub async fn push_postgres(
    conn: &mut sqlx::PgConnection,
    tasks: Vec<QueuedTask>,
) -> Result<(), StoreError> {
    for QueuedTask { queue, task } in tasks {
        apalis_postgres::queries::push_tasks(conn, queue, vec![task])
            .await
            .map_err(|e| StoreError::Queue(e.to_string()))?;
    }
    Ok(())
}

/// Pushes tasks outside any transaction of ours.
pub async fn push(pool: &Pool, tasks: Vec<QueuedTask>) -> Result<(), StoreError> {
    let wake_ups: Vec<_> = tasks.iter().map(QueuedTask::wake_up).collect();
    match pool {
        Pool::Sqlite(pool) => push_sqlite(&mut *pool.acquire().await?, tasks).await?,
        Pool::Postgres(pool) => push_postgres(&mut *pool.acquire().await?, tasks).await?,
    }
    for (queue, delay) in wake_ups {
        super::job_wakeups::task_queued(queue, delay);
    }
    Ok(())
}

/// Live tasks: waiting, running, or failed with apalis attempts left.
const LIVE: &str = "(status IN ('Pending', 'Queued', 'Running') OR (status = 'Failed' AND attempts < max_attempts))";

/// The lookups by key prefix (`order:N:`, `import:N:`) use an index of ours on apalis'
/// table, made after apalis' own setup. SQLite's LIKE ignores case and so cannot use an
/// index: the SQLite queries use GLOB, which a plain index serves. PostgreSQL's LIKE
/// needs `text_pattern_ops` unless the database's collation is C.
const SQLITE_KEY_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS ix_jobs_idempotency_key ON Jobs (idempotency_key)";
const POSTGRES_KEY_INDEX: &str = "CREATE INDEX IF NOT EXISTS ix_jobs_idempotency_key_prefix \
    ON apalis.jobs (idempotency_key text_pattern_ops)";

/// apalis' SQLite index on `lock_by`, which its acknowledgement of finished tasks
/// (`UPDATE Jobs ... FROM json_each(?) WHERE Jobs.id = j.task_id AND Jobs.lock_by = ?`)
/// should not use. Without statistics SQLite takes it for selective and walks every task
/// the worker ever ran (finished ones keep their `lock_by`), parsing the acknowledged
/// batch's JSON again for each: a cost that grew with every task done and took a fifth of
/// the process's CPU in a 100-merchant drain. Without it the acknowledgement looks each
/// task up by id. No other query of apalis' (or ours) uses it.
const SQLITE_UNUSED_LOCK_INDEX: &str = "LIdx";

/// Our changes to the indexes of apalis' table, made after apalis' own setup: an index on
/// the idempotency key, and on each database one index on `lock_by` less.
pub async fn tune_job_indexes(pool: &Pool) -> Result<(), StoreError> {
    // Asked of the catalogue first: CREATE INDEX locks the table even when the index
    // exists, and would wait for ever behind a process frozen inside a job's transaction.
    match pool {
        Pool::Sqlite(pool) => {
            let index_exists = |name: &'static str| async move {
                sqlx::query_scalar::<_, i32>(
                    "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                )
                .bind(name)
                .fetch_optional(pool)
                .await
                .map(|found| found.is_some())
            };
            if !index_exists("ix_jobs_idempotency_key").await? {
                sqlx::query(SQLITE_KEY_INDEX).execute(pool).await?;
            }
            if index_exists(SQLITE_UNUSED_LOCK_INDEX).await? {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP INDEX IF EXISTS {SQLITE_UNUSED_LOCK_INDEX}"
                )))
                .execute(pool)
                .await?;
            }
        }
        Pool::Postgres(pool) => {
            let made = || async {
                sqlx::query_scalar::<_, i32>(
                    "SELECT 1 FROM pg_indexes WHERE schemaname = 'apalis' AND indexname = 'ix_jobs_idempotency_key_prefix'",
                )
                .fetch_optional(pool)
                .await
            };
            if made().await?.is_none() {
                if let Err(error) = sqlx::query(POSTGRES_KEY_INDEX).execute(pool).await {
                    // Two processes starting at once race on IF NOT EXISTS; one wins.
                    if made().await?.is_none() {
                        return Err(error.into());
                    }
                }
            }
            drop_duplicate_postgres_lock_index(pool).await;
        }
    }
    Ok(())
}

/// apalis' first PostgreSQL migration indexed `lock_by` as `lidx`, and a later one again
/// as `idx_apalis_jobs_lock_by` without dropping the first: every task fetched, started
/// and finished wrote both. Dropped once, under a short lock timeout so that a process
/// frozen inside a transaction on the table cannot hold up the start; if it times out,
/// the next start tries again.
async fn drop_duplicate_postgres_lock_index(pool: &sqlx::PgPool) {
    const EXISTS: &str = "SELECT 1 FROM pg_indexes WHERE schemaname = 'apalis' \
        AND indexname = 'lidx' AND indexdef LIKE '%(lock_by)'";
    const OTHER: &str = "SELECT 1 FROM pg_indexes WHERE schemaname = 'apalis' \
        AND indexname = 'idx_apalis_jobs_lock_by'";
    let result: Result<(), sqlx::Error> = async {
        let both: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT 1 WHERE EXISTS ({EXISTS}) AND EXISTS ({OTHER})"
        )))
        .fetch_optional(pool)
        .await?;
        if both.is_none() {
            return Ok(());
        }
        let mut tx = pool.begin().await?;
        sqlx::query("SET LOCAL lock_timeout = '5s'")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DROP INDEX IF EXISTS apalis.lidx")
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(%error, "could not drop apalis' duplicate index on lock_by; the next start tries again");
    }
}

/// The query counting an order's live tasks, and the pattern it takes.
fn live_job_query(pool: &Pool, order_id: i64) -> (String, String) {
    match pool {
        Pool::Sqlite(_) => (
            // Without statistics SQLite may prefer apalis' status index, whose matches
            // grow with the queue; the key narrows to one order's few tasks.
            format!("SELECT COUNT(*) FROM Jobs INDEXED BY ix_jobs_idempotency_key WHERE idempotency_key GLOB ? AND {LIVE}"),
            format!("order:{order_id}:*"),
        ),
        Pool::Postgres(_) => (
            format!("SELECT COUNT(*) FROM apalis.jobs WHERE idempotency_key LIKE $1 AND {LIVE}"),
            key_prefix(order_id),
        ),
    }
}

/// Does the order have a job that will still run (waiting, running, or failed with
/// apalis attempts left)?
pub async fn has_live_job(pool: &Pool, order_id: i64) -> Result<bool, StoreError> {
    let (sql, pattern) = live_job_query(pool, order_id);
    let count: i64 = match pool {
        Pool::Sqlite(pool) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(pattern)
                .fetch_one(pool)
                .await?
        }
        Pool::Postgres(pool) => {
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(pattern)
                .fetch_one(pool)
                .await?
        }
    };
    Ok(count > 0)
}

/// The database's plan for [`has_live_job`], for the test that keeps the reconciler's
/// lookup on an index as the job table grows. On PostgreSQL, sequential scans are
/// disabled for the question, since on a small table a scan is rightly cheaper.
pub async fn live_job_lookup_plan(pool: &Pool, order_id: i64) -> Result<String, StoreError> {
    let (sql, pattern) = live_job_query(pool, order_id);
    let lines: Vec<String> = match pool {
        Pool::Sqlite(pool) => {
            let rows: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .bind(pattern)
                    .fetch_all(pool)
                    .await?;
            rows.into_iter().map(|row| row.3).collect()
        }
        Pool::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::query("SET LOCAL enable_seqscan = off")
                .execute(&mut *tx)
                .await?;
            let lines = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
                .bind(pattern)
                .fetch_all(&mut *tx)
                .await?;
            tx.rollback().await?;
            lines
        }
    };
    Ok(lines.join("\n"))
}

/// Deletes tasks that finished (done, or given up) more than `older_than` ago, so that the
/// queue's table does not grow without end. Order history lives in `order_events`.
pub async fn prune_finished(pool: &Pool, older_than: Duration) -> Result<u64, StoreError> {
    const FINISHED: &str =
        "(status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))";
    let cutoff = chrono::Utc::now()
        - chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::days(7));
    let deleted = match pool {
        Pool::Sqlite(pool) => sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM Jobs WHERE {FINISHED} AND done_at < ?"
        )))
        .bind(cutoff.timestamp())
        .execute(pool)
        .await?
        .rows_affected(),
        Pool::Postgres(pool) => sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM apalis.jobs WHERE {FINISHED} AND done_at < $1"
        )))
        .bind(cutoff)
        .execute(pool)
        .await?
        .rows_affected(),
    };
    Ok(deleted)
}
