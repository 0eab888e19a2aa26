//! What the real-time import keeps: each topic's offset, the offsets already seen, which
//! process holds the one connection to Fortnox's WebSocket API, and each merchant's
//! real-time status. SQL only; the decisions are in `realtime`.
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use super::jobs_table::{self, FortnoxOrderEvent};
use super::write::on_tx;
use super::{Store, StoreError};
use crate::domain::{JobKind, OrderState};

/// What one event leads to, decided by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventEffect {
    /// Read the order from Fortnox (unless a read is already waiting) and import or cancel.
    ReadOrder {
        merchant_id: i64,
        document_number: String,
    },
    /// The merchant's catalogue changed: cached copies are stale, and RESERVED orders with
    /// a line of this article are checked again.
    ArticleChanged { merchant_id: i64, article: String },
    /// Nothing to do (an echo of our own write, an unknown tenant or type); the offset still
    /// moves on.
    Nothing { merchant_id: Option<i64> },
}

impl EventEffect {
    fn merchant_id(&self) -> Option<i64> {
        match self {
            EventEffect::ReadOrder { merchant_id, .. }
            | EventEffect::ArticleChanged { merchant_id, .. } => Some(*merchant_id),
            EventEffect::Nothing { merchant_id } => *merchant_id,
        }
    }
}

/// A merchant's real-time import, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RealtimeStatus {
    /// Since when the merchant's events arrive on a healthy connection; `None`: not live.
    pub live_since: Option<DateTime<Utc>>,
    pub last_event_at: Option<DateTime<Utc>>,
    /// Why the merchant is left to polling, when it is.
    pub problem: Option<String>,
}

/// The key of the advisory lock that the connection's holder owns on PostgreSQL: "FNXWS"
/// in ASCII, so that it is recognisable in `pg_locks` (see `realtime::leader`).
pub const WS_LOCK_KEY: i64 = 0x46_4e58_5753;

/// A connection whose holder has not said it is alive for this long counts as down.
pub const HEARTBEAT_STALE: Duration = Duration::seconds(30);

impl Store {
    /// The stored offset of each topic: where a new connection resumes (inclusive).
    pub async fn ws_offsets(&self) -> Result<HashMap<String, String>, StoreError> {
        let mut tx = self.begin_read().await?;
        let rows: Vec<(String, String)> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_as(sql("SELECT topic, event_offset FROM fortnox_ws_offsets"))
                .fetch_all(&mut *conn)
                .await?
        });
        tx.commit().await?;
        Ok(rows.into_iter().collect())
    }

    /// Records one event with its effect, in one transaction: the offset is marked seen,
    /// the job it needs is queued, and the topic's offset moves to it. Returns false (and
    /// changes nothing) when the offset was seen before: delivery is at-least-once, and a
    /// resumed topic starts with the last event processed.
    pub async fn record_ws_event(
        &self,
        topic: &str,
        offset: &str,
        effect: &EventEffect,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let mut tx = self.begin_tx().await?;
        let postgres = tx.is_postgres();
        let fresh = on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql(
                "INSERT INTO fortnox_ws_seen (topic, event_offset, seen_at) VALUES (?, ?, ?) \
                 ON CONFLICT (topic, event_offset) DO NOTHING",
            ))
            .bind(topic)
            .bind(offset)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        }) == 1;
        if !fresh {
            return Ok(false);
        }
        match effect {
            EventEffect::ReadOrder {
                merchant_id,
                document_number,
            } => {
                let (query, pattern) = jobs_table::pending_fortnox_order_query(
                    postgres,
                    *merchant_id,
                    document_number,
                );
                let waiting: i64 = on_tx!(&mut tx, |conn, sql| {
                    sqlx::query_scalar(sql(&query))
                        .bind(pattern)
                        .fetch_one(&mut *conn)
                        .await?
                });
                if waiting == 0 {
                    let job = FortnoxOrderEvent {
                        merchant_id: *merchant_id,
                        document_number: document_number.clone(),
                        attempt: 0,
                    };
                    tx.push_jobs(vec![jobs_table::fortnox_order_task(&job, None)?])
                        .await?;
                }
            }
            EventEffect::ArticleChanged {
                merchant_id,
                article,
            } => {
                on_tx!(&mut tx, |conn, sql| {
                    sqlx::query(sql(
                        "UPDATE fortnox_realtime_merchants SET catalog_changed_at = ? WHERE merchant_id = ?",
                    ))
                    .bind(now)
                    .bind(merchant_id)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected()
                });
                let waiting: Vec<i64> = on_tx!(&mut tx, |conn, sql| {
                    sqlx::query_scalar(sql(
                        "SELECT o.id FROM orders o WHERE o.merchant_id = ? AND o.state = ? AND EXISTS \
                         (SELECT 1 FROM order_lines l WHERE l.order_id = o.id AND l.article_number = ?) \
                         ORDER BY o.id LIMIT 500",
                    ))
                    .bind(merchant_id)
                    .bind(OrderState::Reserved.as_str())
                    .bind(article)
                    .fetch_all(&mut *conn)
                    .await?
                });
                // Our own stock pushes come back as article events: an order whose
                // check is already waiting needs no second one.
                let mut unchecked = Vec::with_capacity(waiting.len());
                for order_id in waiting {
                    let (query, pattern) = jobs_table::pending_order_job_query(postgres, order_id);
                    let pending: i64 = on_tx!(&mut tx, |conn, sql| {
                        sqlx::query_scalar(sql(&query))
                            .bind(pattern)
                            .fetch_one(&mut *conn)
                            .await?
                    });
                    if pending == 0 {
                        unchecked.push(order_id);
                    }
                }
                let tasks = unchecked
                    .into_iter()
                    .map(|order_id| {
                        jobs_table::order_task(
                            JobKind::ValidateOrder,
                            &jobs_table::OrderJob {
                                order_id,
                                attempt: 0,
                            },
                            None,
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                tx.push_jobs(tasks).await?;
            }
            EventEffect::Nothing { .. } => {}
        }
        if let Some(merchant_id) = effect.merchant_id() {
            on_tx!(&mut tx, |conn, sql| {
                sqlx::query(sql(
                    "UPDATE fortnox_realtime_merchants SET last_event_at = ? WHERE merchant_id = ?",
                ))
                .bind(now)
                .bind(merchant_id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
            });
        }
        on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql(
                "INSERT INTO fortnox_ws_offsets (topic, event_offset, updated_at) VALUES (?, ?, ?) \
                 ON CONFLICT (topic) DO UPDATE SET event_offset = excluded.event_offset, updated_at = excluded.updated_at",
            ))
            .bind(topic)
            .bind(offset)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        tx.commit().await?;
        Ok(true)
    }

    /// Forgets a topic's offset (Fortnox refused it): the topic starts at its newest event,
    /// and the caller polls over the gap.
    pub async fn forget_ws_offset(&self, topic: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql("DELETE FROM fortnox_ws_offsets WHERE topic = ?"))
                .bind(topic)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        tx.commit().await
    }

    /// Every merchant's catalogue may have changed unseen (article events were missed).
    pub async fn ws_catalogs_changed(&self) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql(
                "UPDATE fortnox_realtime_merchants SET catalog_changed_at = ?",
            ))
            .bind(Utc::now())
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        tx.commit().await
    }

    /// Forgets seen offsets older than `keep` (Fortnox replays about two weeks).
    pub async fn prune_ws_seen(&self, keep: Duration) -> Result<u64, StoreError> {
        let mut tx = self.begin_tx().await?;
        let deleted = on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql("DELETE FROM fortnox_ws_seen WHERE seen_at < ?"))
                .bind(Utc::now() - keep)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        tx.commit().await?;
        Ok(deleted)
    }

    /// The holder of the connection says it is alive (and since when it holds it). A late
    /// heartbeat of a process that lost the connection cannot claim the row back: on
    /// PostgreSQL only the process holding the lock writes it, by the database's clock
    /// (processes may run on other hosts); on SQLite (one process) only the last writer or
    /// after `HEARTBEAT_STALE`.
    pub async fn ws_heartbeat(
        &self,
        holder: &str,
        connected_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let stale = Utc::now() - HEARTBEAT_STALE;
        let mut tx = self.begin_tx().await?;
        // PostgreSQL: only while this process holds the connection's advisory lock (its
        // lock session carries this process's name), whoever wrote the row last.
        let query = if tx.is_postgres() {
            "UPDATE fortnox_ws_connection SET holder = ?, connected_at = ?, heartbeat_at = now() \
             WHERE id = 1 AND EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
                 AND l.classid::bigint = (?::bigint >> 32) AND l.objid::bigint = (?::bigint & 4294967295) \
                 AND a.datname = current_database() AND a.application_name = ?)"
        } else {
            "UPDATE fortnox_ws_connection SET holder = ?, connected_at = ?, heartbeat_at = ? \
             WHERE id = 1 AND (holder = ? OR holder IS NULL OR heartbeat_at IS NULL OR heartbeat_at < ?)"
        };
        let postgres = tx.is_postgres();
        on_tx!(&mut tx, |conn, sql| {
            let statement = sqlx::query(sql(query)).bind(holder).bind(connected_at);
            let statement = if postgres {
                statement
                    .bind(WS_LOCK_KEY)
                    .bind(WS_LOCK_KEY)
                    .bind(format!("ff-{holder}"))
            } else {
                statement.bind(Utc::now()).bind(holder).bind(stale)
            };
            statement.execute(&mut *conn).await?.rows_affected()
        });
        tx.commit().await
    }

    /// No merchant is live until this connection adds it again (a holder that crashed
    /// left its merchants marked live).
    pub async fn ws_reset_live(&self) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql(
                "UPDATE fortnox_realtime_merchants SET live_since = NULL",
            ))
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        tx.commit().await
    }

    /// The connection is down: no merchant is live until the next connection adds it.
    /// Only the holder that was live clears the row, so a late call from a process that
    /// lost the connection cannot hide its successor.
    pub async fn ws_disconnected(&self, holder: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        let held = on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql(
                "UPDATE fortnox_ws_connection SET holder = NULL, connected_at = NULL, heartbeat_at = NULL \
                 WHERE id = 1 AND (holder = ? OR holder IS NULL)",
            ))
            .bind(holder)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        }) == 1;
        if held {
            on_tx!(&mut tx, |conn, sql| {
                sqlx::query(sql(
                    "UPDATE fortnox_realtime_merchants SET live_since = NULL",
                ))
                .execute(&mut *conn)
                .await?
                .rows_affected()
            });
        }
        tx.commit().await
    }

    /// The merchant's events arrive from now on (tenant added on a live connection).
    pub async fn ws_merchant_live(
        &self,
        merchant_id: i64,
        tenant_id: i64,
    ) -> Result<(), StoreError> {
        self.upsert_realtime(merchant_id, Some(tenant_id), true, None)
            .await
    }

    /// The merchant is left to polling, and why (`None`: removed without a problem).
    pub async fn ws_merchant_not_live(
        &self,
        merchant_id: i64,
        problem: Option<&str>,
    ) -> Result<(), StoreError> {
        self.upsert_realtime(merchant_id, None, false, problem)
            .await
    }

    async fn upsert_realtime(
        &self,
        merchant_id: i64,
        tenant_id: Option<i64>,
        live: bool,
        problem: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        let mut tx = self.begin_tx().await?;
        on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql(
                "INSERT INTO fortnox_realtime_merchants (merchant_id, tenant_id, live_since, problem) \
                 SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM merchants WHERE id = ?) \
                 ON CONFLICT (merchant_id) DO UPDATE SET \
                 tenant_id = COALESCE(excluded.tenant_id, fortnox_realtime_merchants.tenant_id), \
                 live_since = CASE WHEN excluded.live_since IS NULL THEN NULL \
                     ELSE COALESCE(fortnox_realtime_merchants.live_since, excluded.live_since) END, \
                 problem = excluded.problem",
            ))
            .bind(merchant_id)
            .bind(tenant_id)
            .bind(live.then_some(now))
            .bind(problem)
            .bind(merchant_id)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        tx.commit().await
    }

    /// Merchants whose events arrive on a connection that is alive now: their safety poll
    /// may stretch.
    pub async fn realtime_live_merchants(&self) -> Result<HashSet<i64>, StoreError> {
        let mut tx = self.begin_read().await?;
        // PostgreSQL compares by its own clock, as the heartbeat is written by it.
        let fresh = if tx.is_postgres() {
            "heartbeat_at > now() - make_interval(secs => ?)"
        } else {
            "heartbeat_at > ?"
        };
        let query = format!(
            "SELECT merchant_id FROM fortnox_realtime_merchants WHERE live_since IS NOT NULL \
             AND EXISTS (SELECT 1 FROM fortnox_ws_connection WHERE id = 1 AND {fresh})"
        );
        let postgres = tx.is_postgres();
        let rows: Vec<i64> = on_tx!(&mut tx, |conn, sql| {
            let statement = sqlx::query_scalar(sql(&query));
            let statement = if postgres {
                statement.bind(HEARTBEAT_STALE.num_seconds() as f64)
            } else {
                statement.bind(Utc::now() - HEARTBEAT_STALE)
            };
            statement.fetch_all(&mut *conn).await?
        });
        tx.commit().await?;
        Ok(rows.into_iter().collect())
    }

    /// The merchant's real-time import; not live while the connection's holder is silent.
    pub async fn realtime_status(&self, merchant_id: i64) -> Result<RealtimeStatus, StoreError> {
        let mut tx = self.begin_read().await?;
        type Row = (
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Option<String>,
            Option<DateTime<Utc>>,
        );
        let row: Option<Row> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_as(sql(
                "SELECT m.live_since, m.last_event_at, m.problem, c.heartbeat_at \
                 FROM fortnox_realtime_merchants m, fortnox_ws_connection c \
                 WHERE m.merchant_id = ? AND c.id = 1",
            ))
            .bind(merchant_id)
            .fetch_optional(&mut *conn)
            .await?
        });
        tx.commit().await?;
        let Some((live_since, last_event_at, problem, heartbeat)) = row else {
            return Ok(RealtimeStatus::default());
        };
        let alive = heartbeat.is_some_and(|at| at > Utc::now() - HEARTBEAT_STALE);
        Ok(RealtimeStatus {
            live_since: live_since.filter(|_| alive),
            last_event_at,
            problem,
        })
    }

    /// When an article event last said the merchant's Fortnox catalogue changed.
    pub async fn catalog_changed_at(
        &self,
        merchant_id: i64,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut tx = self.begin_read().await?;
        let at: Option<Option<DateTime<Utc>>> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_scalar(sql(
                "SELECT catalog_changed_at FROM fortnox_realtime_merchants WHERE merchant_id = ?",
            ))
            .bind(merchant_id)
            .fetch_optional(&mut *conn)
            .await?
        });
        tx.commit().await?;
        Ok(at.flatten())
    }
}
