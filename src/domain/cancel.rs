//! Who may cancel an order in which state. The state machine allows CANCELLED from every
//! state before SHIPPED; this rule narrows it by who holds the goods.
use super::OrderState;

/// Who asks to cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Canceller {
    /// The warehouse holds the goods of a SENT order, so only it may cancel one.
    Warehouse,
    /// A merchant or an admin: orders not yet handed to the warehouse.
    Owner,
}

/// A cancellation the rule refuses; the message says who may cancel instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot cancel an order in {state}: {}", match .by {
    Canceller::Warehouse => "the warehouse cancels only SENT orders",
    Canceller::Owner => "orders already at the warehouse are cancelled by the warehouse",
})]
pub struct CancelRefused {
    pub by: Canceller,
    pub state: OrderState,
}

/// Whether `by` may cancel an order in `state`.
pub fn check_cancel(by: Canceller, state: OrderState) -> Result<(), CancelRefused> {
    let allowed = match by {
        Canceller::Warehouse => state == OrderState::Sent,
        Canceller::Owner => matches!(
            state,
            OrderState::Imported | OrderState::Validated | OrderState::Reserved
        ),
    };
    if allowed {
        Ok(())
    } else {
        Err(CancelRefused { by, state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderState::*;

    const ALL: [OrderState; 7] = [
        Imported, Validated, Reserved, Sent, Shipped, Invoiced, Cancelled,
    ];

    #[test]
    fn owners_cancel_only_orders_not_yet_at_the_warehouse() {
        let allowed: Vec<OrderState> = ALL
            .into_iter()
            .filter(|s| check_cancel(Canceller::Owner, *s).is_ok())
            .collect();
        assert_eq!(allowed, vec![Imported, Validated, Reserved]);
        assert_eq!(
            check_cancel(Canceller::Owner, Sent).unwrap_err().to_string(),
            "cannot cancel an order in SENT: orders already at the warehouse are cancelled by the warehouse"
        );
    }

    #[test]
    fn the_warehouse_cancels_only_sent_orders() {
        let allowed: Vec<OrderState> = ALL
            .into_iter()
            .filter(|s| check_cancel(Canceller::Warehouse, *s).is_ok())
            .collect();
        assert_eq!(allowed, vec![Sent]);
        assert_eq!(
            check_cancel(Canceller::Warehouse, Reserved)
                .unwrap_err()
                .to_string(),
            "cannot cancel an order in RESERVED: the warehouse cancels only SENT orders"
        );
    }
}
