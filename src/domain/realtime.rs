//! What an event from Fortnox's WebSocket API asks of us. Events say only that an order or
//! an article changed; reading the order costs a call from the merchant's Fortnox budget,
//! so it is read only when the change can matter.
use std::time::Duration;

use super::OrderState;

/// What happened to a Fortnox order, as its event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderChange {
    Created,
    Updated,
    Cancelled,
}

/// Whether an order event needs the order read from Fortnox, given what we hold of it.
///
/// - Not imported yet: it may be done now (read, and import it if so).
/// - Imported but not sent: an update may be its cancellation (read, and cancel it if so).
/// - Sent: only a cancellation matters (the warehouse must be told); other updates are the
///   echoes of our own writes (delivered quantities, the invoice), which come from SENT on
///   and so cost no read.
/// - Shipped, invoiced or cancelled here: nothing an event can change.
pub fn order_event_needs_read(change: OrderChange, held: Option<OrderState>) -> bool {
    match held {
        None => true,
        Some(OrderState::Imported | OrderState::Validated | OrderState::Reserved) => true,
        Some(OrderState::Sent) => change == OrderChange::Cancelled,
        Some(OrderState::Shipped | OrderState::Invoiced | OrderState::Cancelled) => false,
    }
}

/// The reconnect delay after `failures` failed attempts in a row: 1 s doubling to 60 s,
/// times a jitter in [0.5, 1] so that many services (or processes) do not reconnect in step.
pub fn reconnect_delay(failures: u32, jitter: f64) -> Duration {
    let base = Duration::from_secs(1).saturating_mul(1u32 << failures.min(6));
    base.min(Duration::from_secs(60))
        .mul_f64(jitter.clamp(0.5, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_of_our_own_writes_cost_no_read() {
        for state in [OrderState::Sent, OrderState::Shipped, OrderState::Invoiced] {
            assert!(!order_event_needs_read(OrderChange::Updated, Some(state)));
        }
        assert!(!order_event_needs_read(
            OrderChange::Cancelled,
            Some(OrderState::Invoiced)
        ));
    }

    #[test]
    fn new_orders_and_cancellations_before_shipping_are_read() {
        assert!(order_event_needs_read(OrderChange::Created, None));
        assert!(order_event_needs_read(OrderChange::Updated, None));
        assert!(order_event_needs_read(
            OrderChange::Updated,
            Some(OrderState::Reserved)
        ));
        assert!(order_event_needs_read(
            OrderChange::Cancelled,
            Some(OrderState::Sent)
        ));
    }

    #[test]
    fn reconnects_back_off_to_a_minute() {
        assert_eq!(reconnect_delay(0, 1.0), Duration::from_secs(1));
        assert_eq!(reconnect_delay(3, 1.0), Duration::from_secs(8));
        assert_eq!(reconnect_delay(30, 1.0), Duration::from_secs(60));
        assert_eq!(reconnect_delay(30, 0.5), Duration::from_secs(30));
        assert_eq!(reconnect_delay(0, 0.0), Duration::from_millis(500));
    }
}
