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
