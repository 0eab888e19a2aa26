//! The event feed: one reader of the order event log per process, fanning each new event
//! out to every subscriber of this process, in log order.
//!
//! The store is the truth; the feed only saves each subscriber its own queries. It reads
//! when woken (a commit in this process that wrote events, or on PostgreSQL the NOTIFY of
//! any process's commit), soon again while committed events wait behind a transaction
//! still running (from 15 ms, doubling up to 250 ms while nothing moves), and every
//! safety poll for a wake-up that got lost. A subscriber that falls behind the channel
//! is told so (`Lagged`) and reads what it missed from the store (`services::order_events`).
use std::sync::Arc;
use std::time::Duration;

use entity::order_event;
use tokio::sync::{broadcast, watch};

use crate::store::event_log::{self, Position};
use crate::store::Store;

/// Events kept for subscribers that are a little behind; beyond that they read the store.
const CHANNEL_CAPACITY: usize = 4096;
/// Events read per query.
const BATCH: u64 = 500;
/// How soon to look again while committed events wait behind a running transaction.
const HELD_BACK_RETRY: Duration = Duration::from_millis(15);
/// The longest wait between looks while events stay held back.
const HELD_BACK_MAX: Duration = Duration::from_millis(250);
/// How often to look without a wake-up. On PostgreSQL every commit of events, in any
/// process, NOTIFYs, and a listener that reconnects wakes the feed, so the poll only covers
/// the unforeseen. A SQLite file may be written by another process (the `seed` command, a
/// script), which wakes nobody: the poll is how those events arrive.
const SAFETY_POLL_POSTGRES: Duration = Duration::from_secs(60);
const SAFETY_POLL_SQLITE: Duration = Duration::from_secs(5);

pub type FeedEvent = Arc<order_event::Model>;

#[derive(Clone)]
pub struct EventFeed {
    sender: broadcast::Sender<FeedEvent>,
    /// Where `run` starts: the newest settled event when the feed was made, before anyone
    /// could subscribe. A subscriber's replay from the store reaches at least this far, so
    /// nothing falls between its replay and what the feed publishes.
    start: Position,
}

impl EventFeed {
    /// A feed that will publish every event after the newest one settled now.
    pub async fn new(store: &Store) -> Result<Self, crate::store::StoreError> {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        Ok(EventFeed {
            sender,
            start: store.event_log_head().await?,
        })
    }

    /// Every event the feed reads from now on, in log order.
    pub fn subscribe(&self) -> broadcast::Receiver<FeedEvent> {
        self.sender.subscribe()
    }

    /// Reads the log and publishes what is new until `shutdown`.
    pub async fn run(self, store: Store, mut shutdown: watch::Receiver<bool>) {
        let mut wakeups = event_log::feed_wakeups();
        let mut position = self.start;
        let mut held_back_for = Duration::ZERO;
        let safety_poll = if store.is_postgres() {
            SAFETY_POLL_POSTGRES
        } else {
            SAFETY_POLL_SQLITE
        };
        loop {
            // Seen before reading: a wake-up during the read makes the next wait return.
            wakeups.borrow_and_update();
            let pause = match store.feed_batch(position, BATCH).await {
                Ok(batch) => {
                    let full = batch.events.len() as u64 == BATCH;
                    if !batch.events.is_empty() {
                        held_back_for = Duration::ZERO;
                    }
                    for event in batch.events {
                        position = Position::of(&event);
                        // No subscriber is not an error.
                        let _ = self.sender.send(Arc::new(event));
                    }
                    if full {
                        continue;
                    }
                    if batch.held_back {
                        // Doubling while nothing moves, so that one long transaction
                        // costs a few reads a second, not sixty; a wake-up still reads
                        // at once.
                        held_back_for = (held_back_for * 2).clamp(HELD_BACK_RETRY, HELD_BACK_MAX);
                        held_back_for
                    } else {
                        held_back_for = Duration::ZERO;
                        safety_poll
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "the event feed cannot read the log; retrying in 1 s");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = wakeups.changed() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// PostgreSQL: wakes this process's feed on every other process's commit of events
/// (`NOTIFY order_events`). Runs until `shutdown`; reconnects when the connection drops,
/// and wakes the feed then, since notifications may have been missed meanwhile.
pub async fn listen_postgres(pool: sqlx::PgPool, mut shutdown: watch::Receiver<bool>) {
    loop {
        let listener = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(event_log::EVENTS_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match listener.await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "cannot listen for order events; retrying in 5 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        event_log::wake_feeds();
        loop {
            tokio::select! {
                notification = listener.recv() => match notification {
                    Ok(_) => event_log::wake_feeds(),
                    Err(error) => {
                        tracing::warn!(%error, "the order event listener lost its connection; reconnecting");
                        break;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}
