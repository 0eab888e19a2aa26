//! Which process holds the WebSocket connection. Fortnox asks for one connection for all
//! customers, so with several processes on PostgreSQL exactly one holds it:
//!
//! - the holder owns a session-level advisory lock on a connection of its own. When its
//!   process dies, PostgreSQL sees the socket close and releases the lock at once, and a
//!   standby (trying every 2 s) takes it over;
//! - a process that is frozen (SIGSTOP, a stalled VM) keeps its socket and so its lock; it
//!   also stops writing its heartbeat. A standby that finds the heartbeat older than
//!   `HEARTBEAT_STALE` ends the holder's database session, which releases the lock. If the
//!   frozen process wakes up, its next check of the lock fails and it closes its connection
//!   (a few duplicate events meanwhile are harmless: offsets are de-duplicated).
//!
//! SQLite serves one process, which always holds the connection.
use std::time::Duration;

use chrono::Utc;
use sqlx::{Connection, PgConnection};

use crate::store::realtime::HEARTBEAT_STALE;
use crate::store::{Pool, Store, StoreError};

use crate::store::realtime::WS_LOCK_KEY as LOCK_KEY;
/// How often a standby tries the lock: a dead holder's lock is free at once, so this is
/// most of the hand-over time; every try is one statement.
const RETRY: Duration = Duration::from_secs(2);
/// Every this many tries a standby also looks for a frozen holder (30 s of silence is
/// needed anyway), so that standing by costs about half a statement a second.
const FROZEN_CHECK_EVERY: u32 = 5;

pub enum Leadership {
    Sqlite {
        heartbeat: tokio::task::JoinHandle<()>,
    },
    Postgres {
        lock: PgConnection,
        heartbeat: tokio::task::JoinHandle<()>,
    },
}

/// Waits until this process holds the connection's lock; from then on, writes the
/// heartbeat every `interval` until the leadership is released.
pub async fn acquire(store: &Store, holder: &str) -> Result<Leadership, StoreError> {
    let interval = Duration::from_secs(5);
    match &store.pool {
        Pool::Sqlite(_) => Ok(Leadership::Sqlite {
            heartbeat: spawn_heartbeat(store.clone(), holder.to_owned(), interval),
        }),
        Pool::Postgres(pool) => {
            let mut lock = PgConnection::connect_with(&pool.connect_options()).await?;
            let mut tries = 0u32;
            loop {
                let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(LOCK_KEY)
                    .fetch_one(&mut lock)
                    .await?;
                if held {
                    tracing::info!(
                        holder,
                        "this process now holds Fortnox's WebSocket connection"
                    );
                    return Ok(Leadership::Postgres {
                        lock,
                        heartbeat: spawn_heartbeat(store.clone(), holder.to_owned(), interval),
                    });
                }
                tries = tries.wrapping_add(1);
                if tries.is_multiple_of(FROZEN_CHECK_EVERY) {
                    end_frozen_holder(&mut lock).await?;
                }
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Ends every database session of a holder whose heartbeat is stale (by the database's
/// clock), which releases its lock and rolls back whatever it left half done (an event's
/// transaction would otherwise block the successor's replay of that event). Only a holder
/// that really holds the lock is ended; its sessions carry its name
/// (`store::instance_application_name`).
async fn end_frozen_holder(conn: &mut PgConnection) -> Result<(), StoreError> {
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a, fortnox_ws_connection c \
         WHERE c.id = 1 AND c.heartbeat_at < now() - make_interval(secs => $2) \
         AND a.datname = current_database() \
         AND a.application_name = 'ff-' || c.holder AND a.pid <> pg_backend_pid() \
         AND EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity h ON h.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
             AND l.classid::bigint = ($1::bigint >> 32) AND l.objid::bigint = ($1::bigint & 4294967295) \
             AND h.datname = current_database() AND h.application_name = 'ff-' || c.holder)",
    )
    .bind(LOCK_KEY)
    .bind(HEARTBEAT_STALE.num_seconds() as f64)
    .fetch_all(&mut *conn)
    .await?;
    if ended.iter().any(|ended| *ended) {
        tracing::warn!(sessions = ended.len(), "the Fortnox WebSocket holder stopped saying it is alive (frozen?); its database sessions were ended so that this process takes over");
    }
    Ok(())
}

fn spawn_heartbeat(
    store: Store,
    holder: String,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let since = Utc::now();
        let mut ticker = tokio::time::interval(interval);
        loop {
            ticker.tick().await;
            if let Err(error) = store.ws_heartbeat(&holder, since).await {
                tracing::warn!(%error, "could not write the Fortnox WebSocket holder's heartbeat");
            }
        }
    })
}

impl Leadership {
    /// Whether this process still holds the lock (its lock connection still answers).
    pub async fn still_held(&mut self) -> bool {
        match self {
            Leadership::Sqlite { .. } => true,
            Leadership::Postgres { lock, .. } => tokio::time::timeout(
                Duration::from_secs(5),
                sqlx::query("SELECT 1").execute(lock),
            )
            .await
            .is_ok_and(|answered| answered.is_ok()),
        }
    }

    /// Stops writing the heartbeat (before the connection is recorded as down).
    pub fn stop_heartbeat(&self) {
        match self {
            Leadership::Sqlite { heartbeat } | Leadership::Postgres { heartbeat, .. } => {
                heartbeat.abort()
            }
        }
    }

    pub async fn release(self) {
        match self {
            Leadership::Sqlite { heartbeat } => heartbeat.abort(),
            Leadership::Postgres {
                mut lock,
                heartbeat,
            } => {
                heartbeat.abort();
                let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(LOCK_KEY)
                    .execute(&mut lock)
                    .await;
                let _ = lock.close().await;
            }
        }
    }
}
