//! Composable write transactions on the pool apalis shares, on either database.
//!
//! A use case opens one `WriteTx`, adds what it needs (check results, the transition, its
//! event, the next job), and commits once: all of it happens, or none. The statements are
//! written once with `?` placeholders and run on SQLite or PostgreSQL. SQLite transactions
//! begin IMMEDIATE, so two racing writers run one after the other instead of failing with
//! SQLITE_BUSY when one upgrades its read lock.
//!
//! Every order event in the database is written by [`WriteTx::insert_event`].
use chrono::{DateTime, Utc};

use super::jobs_table::{self, QueuedTask};
use super::{event_log, job_wakeups};
use super::{Pool, Store, StoreError};
use crate::domain::OrderState;

pub struct WriteTx {
    pub(crate) conn: TxConn,
    /// The queues of the tasks pushed, and when each is due: woken once this commits.
    queued: Vec<(&'static str, Option<std::time::Duration>)>,
    /// Whether this wrote order events: the event feed is woken once this commits.
    wrote_events: bool,
}

pub enum TxConn {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs `$body` with `$conn` (the transaction's connection) and `$sql` (a function turning
/// `?` placeholders into the backend's), once per backend.
macro_rules! on_tx {
    ($tx:expr, |$conn:ident, $sql:ident| $body:expr) => {
        match &mut $tx.conn {
            $crate::store::write::TxConn::Sqlite(tx) => {
                let $conn = &mut **tx;
                let $sql = |s: &str| sqlx::AssertSqlSafe(s.to_owned());
                $body
            }
            $crate::store::write::TxConn::Postgres(tx) => {
                let $conn = &mut **tx;
                let $sql = |s: &str| sqlx::AssertSqlSafe($crate::store::numbered_placeholders(s));
                $body
            }
        }
    };
}
pub(crate) use on_tx;

pub use entity::{EventKind, EventPayload};

/// One entry of an order's history.
#[derive(Clone, Debug)]
pub struct NewEvent<'a> {
    pub order_id: i64,
    pub merchant_id: i64,
    pub kind: EventKind,
    pub from_state: Option<OrderState>,
    pub to_state: Option<OrderState>,
    pub cause: &'a str,
    pub actor: &'a str,
    pub message: Option<&'a str>,
    pub forced: bool,
    pub at: DateTime<Utc>,
    pub payload: Option<EventPayload>,
}

/// `tx_position` is left to its default: the transaction's id on PostgreSQL, 0 on SQLite.
const INSERT_EVENT: &str = "INSERT INTO order_events \
    (order_id, merchant_id, kind, from_state, to_state, cause, actor, message, forced, created_at, payload) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id";

impl Store {
    /// Opens a write transaction; nothing is written until `commit`.
    pub async fn begin_tx(&self) -> Result<WriteTx, StoreError> {
        let conn = match &self.pool {
            Pool::Sqlite(pool) => TxConn::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(pool) => TxConn::Postgres(pool.begin().await?),
        };
        Ok(WriteTx {
            conn,
            queued: Vec::new(),
            wrote_events: false,
        })
    }
}

impl Store {
    /// A transaction for reading several rows consistently; on SQLite it takes no write
    /// lock (unlike `begin_tx`). Writes through it may fail with SQLITE_BUSY there.
    pub async fn begin_read(&self) -> Result<WriteTx, StoreError> {
        let conn = match &self.pool {
            Pool::Sqlite(pool) => TxConn::Sqlite(pool.begin().await?),
            Pool::Postgres(pool) => TxConn::Postgres(pool.begin().await?),
        };
        Ok(WriteTx {
            conn,
            queued: Vec::new(),
            wrote_events: false,
        })
    }
}

impl WriteTx {
    pub fn is_postgres(&self) -> bool {
        matches!(self.conn, TxConn::Postgres(_))
    }

    /// Appends an event to the order's history; returns its id. On PostgreSQL the first
    /// event of a transaction also queues the NOTIFY that wakes every process's event feed
    /// when (and only if) the transaction commits.
    pub async fn insert_event(&mut self, event: &NewEvent<'_>) -> Result<i64, StoreError> {
        if !self.wrote_events {
            if let TxConn::Postgres(tx) = &mut self.conn {
                sqlx::query(event_log::NOTIFY_EVENTS_WRITTEN)
                    .execute(&mut **tx)
                    .await?;
            }
            self.wrote_events = true;
        }
        let id: i64 = on_tx!(self, |conn, sql| {
            sqlx::query_scalar(sql(INSERT_EVENT))
                .bind(event.order_id)
                .bind(event.merchant_id)
                .bind(event.kind.as_str())
                .bind(event.from_state.map(OrderState::as_str))
                .bind(event.to_state.map(OrderState::as_str))
                .bind(event.cause)
                .bind(event.actor)
                .bind(event.message)
                .bind(event.forced)
                .bind(event.at)
                .bind(event.payload.as_ref().map(sqlx::types::Json))
                .fetch_one(conn)
                .await?
        });
        Ok(id)
    }

    /// Queues jobs; they run only if the transaction commits.
    pub async fn push_jobs(&mut self, tasks: Vec<QueuedTask>) -> Result<(), StoreError> {
        if tasks.is_empty() {
            return Ok(());
        }
        self.queued.extend(tasks.iter().map(QueuedTask::wake_up));
        match &mut self.conn {
            TxConn::Sqlite(tx) => jobs_table::push_sqlite(tx, tasks).await,
            TxConn::Postgres(tx) => jobs_table::push_postgres(tx, tasks).await,
        }
    }

    /// Commits, then wakes the workers of the jobs it queued and this process's event feed.
    pub async fn commit(self) -> Result<(), StoreError> {
        match self.conn {
            TxConn::Sqlite(tx) => tx.commit().await?,
            TxConn::Postgres(tx) => tx.commit().await?,
        }
        for (queue, delay) in self.queued {
            job_wakeups::task_queued(queue, delay);
        }
        if self.wrote_events {
            event_log::wake_feeds();
        }
        Ok(())
    }

    /// An event that does not change the order's state (see `Store::record_order_event`).
    /// Returns false when the order does not exist.
    pub async fn record_order_event(
        &mut self,
        order_id: i64,
        kind: EventKind,
        cause: &str,
        actor: &str,
        message: &str,
        stall: bool,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let row: Option<(String, i64)> = on_tx!(self, |conn, sql| {
            sqlx::query_as(sql("SELECT state, merchant_id FROM orders WHERE id = ?"))
                .bind(order_id)
                .fetch_optional(&mut *conn)
                .await?
        });
        let Some((state, merchant_id)) = row else {
            return Ok(false);
        };
        let state = state
            .parse::<OrderState>()
            .map_err(|e| StoreError::Corrupt(format!("order {order_id}: {e}")))?;
        self.insert_event(&NewEvent {
            order_id,
            merchant_id,
            kind,
            from_state: Some(state),
            to_state: Some(state),
            cause,
            actor,
            message: Some(message),
            forced: false,
            at: now,
            payload: None,
        })
        .await?;
        if stall {
            self.insert_event(&NewEvent {
                order_id,
                merchant_id,
                kind: EventKind::Stalled,
                from_state: Some(state),
                to_state: Some(state),
                cause,
                actor,
                message: Some("no further attempts: fix the cause, then retry the order"),
                forced: false,
                at: now,
                payload: None,
            })
            .await?;
        }
        if kind == EventKind::Error {
            on_tx!(self, |conn, sql| {
                sqlx::query(sql("UPDATE orders SET last_error = ?, updated_at = ?, \
                     stalled_at = CASE WHEN ? THEN ? ELSE stalled_at END WHERE id = ?"))
                .bind(message)
                .bind(now)
                .bind(stall)
                .bind(now)
                .bind(order_id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
            });
        }
        Ok(true)
    }
}
