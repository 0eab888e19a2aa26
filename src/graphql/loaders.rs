//! Batch loading of an order's lines and events: a page of 200 orders asking for its lines
//! costs one query, not 200.
use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use entity::{duplicate_invoice, order_event, order_line};

use crate::store::{Store, StoreError};

pub struct OrderLinesLoader(pub Store);
pub struct OrderEventsLoader(pub Store);
pub struct DuplicateInvoicesLoader(pub Store);

impl Loader<i64> for OrderLinesLoader {
    type Value = Vec<order_line::Model>;
    type Error = std::sync::Arc<StoreError>;

    async fn load(&self, order_ids: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let lines = self
            .0
            .lines_of_orders(order_ids)
            .await
            .map_err(std::sync::Arc::new)?;
        Ok(group_by_order(lines, |line| line.order_id))
    }
}

impl Loader<i64> for OrderEventsLoader {
    type Value = Vec<order_event::Model>;
    type Error = std::sync::Arc<StoreError>;

    async fn load(&self, order_ids: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let events = self
            .0
            .events_of_orders(order_ids)
            .await
            .map_err(std::sync::Arc::new)?;
        Ok(group_by_order(events, |event| event.order_id))
    }
}

impl Loader<i64> for DuplicateInvoicesLoader {
    type Value = Vec<duplicate_invoice::Model>;
    type Error = std::sync::Arc<StoreError>;

    async fn load(&self, order_ids: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let duplicates = self
            .0
            .duplicate_invoices_of(order_ids)
            .await
            .map_err(std::sync::Arc::new)?;
        Ok(group_by_order(duplicates, |duplicate| duplicate.order_id))
    }
}

/// Rows grouped by their order, each order's in the order they were read.
pub(super) fn group_by_order<T>(
    rows: Vec<T>,
    order_id: impl Fn(&T) -> i64,
) -> HashMap<i64, Vec<T>> {
    let mut by_order: HashMap<i64, Vec<T>> = HashMap::new();
    for row in rows {
        by_order.entry(order_id(&row)).or_default().push(row);
    }
    by_order
}
