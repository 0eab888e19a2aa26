//! In-process fan-out of order changes to GraphQL subscribers. Events are published only
//! after their transaction has committed, so a subscriber never sees a change that was
//! rolled back.
use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::domain::OrderState;

#[derive(Clone, Debug)]
pub struct OrderStateChanged {
    pub event_id: i64,
    pub order_id: i64,
    pub merchant_id: i64,
    pub from: OrderState,
    pub to: OrderState,
    pub cause: String,
    pub actor: String,
    pub message: Option<String>,
    pub forced: bool,
    pub at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<OrderStateChanged>,
}

impl EventBus {
    pub fn new() -> Self {
        // Slow subscribers lag and are told so by the channel; they never block writers.
        let (sender, _) = broadcast::channel(4096);
        EventBus { sender }
    }

    pub fn publish(&self, event: OrderStateChanged) {
        // No subscriber is not an error.
        let _ = self.sender.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<OrderStateChanged> {
        self.sender.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

/// PostgreSQL: feeds the bus from `NOTIFY order_state_changed`, so that a subscriber on any
/// process sees every change. Runs until `shutdown`; reconnects when the connection drops.
pub async fn listen_postgres(
    pool: sqlx::PgPool,
    bus: EventBus,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "cannot listen for order changes; retrying in 5 s");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        if let Err(error) = listener.listen("order_state_changed").await {
            tracing::error!(%error, "cannot listen for order changes; retrying in 5 s");
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            continue;
        }
        loop {
            tokio::select! {
                notification = listener.recv() => match notification {
                    Ok(notification) => {
                        let Ok(event_id) = notification.payload().parse::<i64>() else { continue };
                        match load_event(&pool, event_id).await {
                            Ok(Some(event)) => bus.publish(event),
                            Ok(None) => {}
                            Err(error) => tracing::warn!(event_id, %error, "cannot load a notified order change"),
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "order change listener lost its connection; reconnecting");
                        break;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}

async fn load_event(
    pool: &sqlx::PgPool,
    event_id: i64,
) -> Result<Option<OrderStateChanged>, sqlx::Error> {
    type Row = (
        i64,
        i64,
        i64,
        Option<String>,
        Option<String>,
        String,
        String,
        Option<String>,
        bool,
        DateTime<Utc>,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, order_id, merchant_id, from_state, to_state, cause, actor, message, forced, created_at \
         FROM order_events WHERE id = $1 AND kind = 'TRANSITION'",
    )
    .bind(event_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(
        |(event_id, order_id, merchant_id, from, to, cause, actor, message, forced, at)| {
            Some(OrderStateChanged {
                event_id,
                order_id,
                merchant_id,
                from: from?.parse().ok()?,
                to: to?.parse().ok()?,
                cause,
                actor,
                message,
                forced,
                at,
            })
        },
    ))
}
