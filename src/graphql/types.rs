//! GraphQL object types, mapped from the stored models.
use async_graphql::{ComplexObject, Context, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::{merchant, order_event, order_line, shipping_method, EventKind};

use super::loaders::{
    group_by_order, DuplicateInvoicesLoader, OrderEventsLoader, OrderLinesLoader,
};
use super::{cost, Result};
use crate::domain::OrderState;
use crate::store::event_log::Position;
use crate::store::orders::OrderSummary;
use async_graphql::dataloader::DataLoader;

#[derive(SimpleObject)]
pub struct Merchant {
    pub id: ID,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<merchant::Model> for Merchant {
    fn from(m: merchant::Model) -> Self {
        Merchant {
            id: m.id.into(),
            name: m.name,
            created_at: m.created_at,
        }
    }
}

#[derive(SimpleObject)]
pub struct ShippingMethod {
    pub id: ID,
    /// Stable code that shipping rules refer to.
    pub code: String,
    pub carrier: String,
    pub name: String,
}

impl From<shipping_method::Model> for ShippingMethod {
    fn from(m: shipping_method::Model) -> Self {
        ShippingMethod {
            id: m.id.into(),
            code: m.code,
            carrier: m.carrier,
            name: m.name,
        }
    }
}

#[derive(SimpleObject)]
pub struct DeliveryAddress {
    pub name: Option<String>,
    pub street: Option<String>,
    pub street2: Option<String>,
    pub zip_code: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    /// ISO 3166-1 alpha-2, when the country name could be mapped.
    pub country_code: Option<String>,
}

/// From the domain's address, which the store reads from the stored one (one conversion
/// from storage, in `store::orders`).
impl From<crate::domain::address::DeliveryAddress> for DeliveryAddress {
    fn from(a: crate::domain::address::DeliveryAddress) -> DeliveryAddress {
        DeliveryAddress {
            name: a.name,
            street: a.street,
            street2: a.street2,
            zip_code: a.zip_code,
            city: a.city,
            country: a.country,
            country_code: a.country_code,
        }
    }
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Order {
    pub id: ID,
    pub merchant_id: ID,
    pub fortnox_document_number: String,
    pub state: OrderState,
    /// Why the order is RESERVED: each reason says what to fix.
    pub reasons: Vec<String>,
    pub way_of_delivery: Option<String>,
    pub delivery_address: Option<DeliveryAddress>,
    pub warehouse_reference: Option<String>,
    pub tracking_numbers: Vec<String>,
    pub invoice_number: Option<String>,
    /// The last job error, if the order's job failed.
    pub last_error: Option<String>,
    /// True when the job for the current state gave up; `retryOrder` starts it again.
    pub stalled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[graphql(skip)]
    pub db_id: i64,
    /// Read with the order (or its page) when the query asks for them; otherwise the
    /// loader reads them.
    #[graphql(skip)]
    pub prefetched_lines: Option<Vec<order_line::Model>>,
    #[graphql(skip)]
    pub prefetched_events: Option<Vec<order_event::Model>>,
}

impl Order {
    pub fn from_model(o: impl Into<OrderSummary>) -> Result<Order> {
        let o: OrderSummary = o.into();
        let state = o.state;
        Ok(Order {
            id: o.id.into(),
            merchant_id: o.merchant_id.into(),
            fortnox_document_number: o.fortnox_document_number,
            state,
            reasons: o.reasons.0,
            way_of_delivery: o.way_of_delivery,
            delivery_address: o
                .delivery_address
                .map(crate::domain::address::DeliveryAddress::from)
                .map(DeliveryAddress::from),
            warehouse_reference: o.warehouse_reference,
            tracking_numbers: o.tracking_numbers.0,
            invoice_number: o.invoice_number,
            last_error: o.last_error,
            stalled: o.stalled_at.is_some(),
            created_at: o.created_at,
            updated_at: o.updated_at,
            db_id: o.id,
            prefetched_lines: None,
            prefetched_events: None,
        })
    }

    /// Reads the lines and events of `orders` that `node` (the selection of an order)
    /// asks for, one query each for all of them, and keeps them with each order. The
    /// loaders would read the same, but async-graphql's DataLoader waits 1 ms for a batch
    /// to gather (a page's keys do not arrive in one go: at 100 us they came in two or
    /// three batches); read here, a page costs no wait.
    pub async fn prefetch(
        store: &crate::store::Store,
        node: async_graphql::Lookahead<'_>,
        orders: &mut [Order],
    ) -> Result<()> {
        let (lines, events) = (node.field("lines").exists(), node.field("events").exists());
        if orders.is_empty() || !(lines || events) {
            return Ok(());
        }
        let ids: Vec<i64> = orders.iter().map(|o| o.db_id).collect();
        if lines {
            let mut by_order = group_by_order(store.lines_of_orders(&ids).await?, |l| l.order_id);
            for order in orders.iter_mut() {
                order.prefetched_lines = Some(by_order.remove(&order.db_id).unwrap_or_default());
            }
        }
        if events {
            let mut by_order = group_by_order(store.events_of_orders(&ids).await?, |e| e.order_id);
            for order in orders.iter_mut() {
                order.prefetched_events = Some(by_order.remove(&order.db_id).unwrap_or_default());
            }
        }
        Ok(())
    }
}

#[ComplexObject]
impl Order {
    #[graphql(complexity = "cost::LONG_LIST * child_complexity")]
    async fn lines(&self, ctx: &Context<'_>) -> Result<Vec<OrderLine>> {
        if let Some(lines) = &self.prefetched_lines {
            return Ok(lines.iter().cloned().map(OrderLine::from).collect());
        }
        let loader = ctx.data_unchecked::<DataLoader<OrderLinesLoader>>();
        let lines = loader.load_one(self.db_id).await?;
        Ok(lines
            .unwrap_or_default()
            .into_iter()
            .map(OrderLine::from)
            .collect())
    }

    /// The order's history, oldest first.
    #[graphql(complexity = "cost::LIST * child_complexity")]
    async fn events(&self, ctx: &Context<'_>) -> Result<Vec<OrderEvent>> {
        if let Some(events) = &self.prefetched_events {
            return Ok(events.iter().cloned().map(OrderEvent::from).collect());
        }
        let loader = ctx.data_unchecked::<DataLoader<OrderEventsLoader>>();
        let events = loader.load_one(self.db_id).await?;
        Ok(events
            .unwrap_or_default()
            .into_iter()
            .map(OrderEvent::from)
            .collect())
    }

    /// Second Fortnox invoices found for this order (each named in an ERROR event), and
    /// how they were credited. Empty in normal operation.
    #[graphql(complexity = "cost::LIST * child_complexity")]
    async fn duplicate_invoices(&self, ctx: &Context<'_>) -> Result<Vec<DuplicateInvoice>> {
        let loader = ctx.data_unchecked::<DataLoader<DuplicateInvoicesLoader>>();
        let duplicates = loader.load_one(self.db_id).await?;
        Ok(duplicates
            .unwrap_or_default()
            .into_iter()
            .map(DuplicateInvoice::from)
            .collect())
    }
}

/// A second Fortnox invoice for an order that already had one.
#[derive(SimpleObject)]
pub struct DuplicateInvoice {
    /// The duplicate.
    pub invoice_number: String,
    /// The order's invoice, which stays.
    pub kept_invoice_number: String,
    /// The Fortnox credit invoice that cancels the duplicate; null until credited.
    pub credit_invoice_number: Option<String>,
    /// Why it was not credited automatically (the merchant's setting, or Fortnox refused).
    pub credit_error: Option<String>,
    pub detected_at: DateTime<Utc>,
    pub credited_at: Option<DateTime<Utc>>,
}

impl From<entity::duplicate_invoice::Model> for DuplicateInvoice {
    fn from(d: entity::duplicate_invoice::Model) -> Self {
        DuplicateInvoice {
            invoice_number: d.invoice_number,
            kept_invoice_number: d.kept_invoice_number,
            credit_invoice_number: d.credit_invoice_number,
            credit_error: d.credit_error,
            detected_at: d.detected_at,
            credited_at: d.credited_at,
        }
    }
}

#[derive(SimpleObject)]
pub struct OrderLine {
    pub id: ID,
    pub position: i32,
    pub fortnox_row_id: Option<i64>,
    pub article_number: Option<String>,
    pub description: String,
    /// Decimal, as text to keep it exact.
    pub ordered_quantity: String,
    /// What the warehouse is to pick; null for rows that are not shipped (no article, a
    /// service article), 0 for a missing product dropped by ignoreMissingProducts.
    pub pick_quantity: Option<String>,
    pub shipped_quantity: Option<String>,
}

impl From<order_line::Model> for OrderLine {
    fn from(l: order_line::Model) -> Self {
        OrderLine {
            id: l.id.into(),
            position: l.position,
            fortnox_row_id: l.fortnox_row_id,
            article_number: l.article_number,
            description: l.description,
            ordered_quantity: l.ordered_quantity,
            pick_quantity: l.pick_quantity,
            shipped_quantity: l.shipped_quantity,
        }
    }
}

/// One entry of the order event log.
#[derive(SimpleObject)]
pub struct OrderEvent {
    pub id: ID,
    /// Where the event stands in the log: resume after it with `after`. Cursors compare as
    /// text in log order, so a receiver can order events and drop ones it has seen.
    pub cursor: String,
    pub order_id: ID,
    pub merchant_id: ID,
    pub kind: EventKind,
    pub from_state: Option<OrderState>,
    pub to_state: Option<OrderState>,
    pub cause: String,
    pub actor: String,
    pub message: Option<String>,
    /// True when an admin forced the change.
    pub forced: bool,
    /// The reasons a RESERVED order waits for: on the change into RESERVED and on
    /// REASONS_CHANGED.
    pub reasons: Option<Vec<String>>,
    /// On TRACKING_NUMBERS.
    pub tracking_numbers: Option<Vec<String>>,
    /// On INVOICE_CREATED.
    pub invoice_number: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<order_event::Model> for OrderEvent {
    fn from(e: order_event::Model) -> Self {
        let payload = e.payload.clone().unwrap_or_default();
        OrderEvent {
            id: e.id.into(),
            cursor: Position::of(&e).cursor(),
            order_id: e.order_id.into(),
            merchant_id: e.merchant_id.into(),
            kind: e.kind,
            from_state: e.from_state,
            to_state: e.to_state,
            cause: e.cause,
            actor: e.actor,
            message: e.message,
            forced: e.forced,
            reasons: payload.reasons,
            tracking_numbers: payload.tracking_numbers,
            invoice_number: payload.invoice_number,
            created_at: e.created_at,
        }
    }
}

/// One change of an order's state, as pushed to subscribers.
#[derive(SimpleObject, Clone)]
pub struct OrderStateChange {
    pub event_id: ID,
    pub order_id: ID,
    pub merchant_id: ID,
    pub from_state: OrderState,
    pub to_state: OrderState,
    pub cause: String,
    pub actor: String,
    pub message: Option<String>,
    pub forced: bool,
    pub at: DateTime<Utc>,
}

impl OrderStateChange {
    /// A TRANSITION event that changed a state (the import's first event has no `from`).
    pub fn from_event(e: order_event::Model) -> Option<Self> {
        Some(OrderStateChange {
            event_id: e.id.into(),
            order_id: e.order_id.into(),
            merchant_id: e.merchant_id.into(),
            from_state: e.from_state?,
            to_state: e.to_state?,
            cause: e.cause,
            actor: e.actor,
            message: e.message,
            forced: e.forced,
            at: e.created_at,
        })
    }
}
