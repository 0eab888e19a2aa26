//! The warehouse: where validated orders go to be picked and shipped.
//!
//! `Warehouse` is what the send job talks to. The built-in warehouse is this service
//! itself: it accepts every order (keyed by our order id, so a re-send is harmless) and the
//! warehouse staff see SENT orders with their pick lines over GraphQL and report shipments
//! with `confirmShipment`. An external WMS would implement the same trait.
use async_trait::async_trait;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::domain::address::DeliveryAddress;

#[derive(Clone, Debug, Serialize)]
pub struct PickLine {
    pub line_id: i64,
    pub sku: String,
    pub description: String,
    pub quantity: Decimal,
}

#[derive(Clone, Debug, Serialize)]
pub struct WarehouseOrder {
    /// Our order id: the warehouse's idempotency key.
    pub order_id: i64,
    pub merchant_id: i64,
    pub fortnox_document_number: String,
    pub address: DeliveryAddress,
    pub shipping_method_code: Option<String>,
    pub lines: Vec<PickLine>,
}

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    /// The warehouse will not take this order; the reason is kept on the order (RESERVED).
    #[error("{0}")]
    Refused(String),
    /// The warehouse could not be reached or answered oddly; try again later.
    #[error("{0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Warehouse: Send + Sync + 'static {
    /// Hands an order over; returns the warehouse's reference. Calling it again for the
    /// same order returns the same reference and creates nothing new.
    async fn submit(&self, order: &WarehouseOrder) -> Result<String, WarehouseError>;
}

/// The warehouse run through this service's own API (see the module comment).
#[derive(Clone, Default)]
pub struct BuiltinWarehouse;

impl BuiltinWarehouse {
    pub fn reference(order_id: i64) -> String {
        format!("WH-{order_id:08}")
    }
}

#[async_trait]
impl Warehouse for BuiltinWarehouse {
    async fn submit(&self, order: &WarehouseOrder) -> Result<String, WarehouseError> {
        if order.lines.is_empty() {
            return Err(WarehouseError::Refused(
                "The warehouse received no lines to pick".into(),
            ));
        }
        if let Some(line) = order.lines.iter().find(|l| l.quantity <= Decimal::ZERO) {
            return Err(WarehouseError::Refused(format!(
                "Line {} ({}) has no quantity to pick",
                line.line_id, line.sku
            )));
        }
        Ok(Self::reference(order.order_id))
    }
}
