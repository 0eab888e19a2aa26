//! The import of one merchant's done orders from Fortnox (docs/rules.md rule 3), run on a
//! schedule and on `syncOrders`.
//!
//! Incremental by `lastmodified`, starting a few minutes before the previous poll began so
//! that an order changed during a poll is never missed; the overlap is harmless because an
//! order is stored once per merchant and document number.
use chrono::{Duration, NaiveDate, Utc};

use super::fortnox_glue::{fortnox_error, new_order};
use super::{JobContext, JobError};
use crate::domain::OrderState;
use crate::fortnox::types::{invoice_reference, Order, OrderListItem};
use crate::fortnox::{OrderFilter, OrderQuery};
use crate::store::transitions::{TransitionError, TransitionRequest};
use entity::IntegrationStatus;

const OVERLAP_MINUTES: i64 = 5;
const ACTOR: &str = "system:import_orders";

/// What one import did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub imported: usize,
    pub skipped: usize,
    pub cancelled: usize,
}

pub async fn import_orders(ctx: &JobContext, merchant_id: i64) -> Result<ImportSummary, JobError> {
    let _one_at_a_time = ctx.import_locks.lock(merchant_id).await;
    let Some(integration) = ctx.store.integration(merchant_id).await? else {
        return Ok(ImportSummary::default());
    };
    if integration.status != IntegrationStatus::Connected {
        // Paused until the merchant (re)connects.
        return Ok(ImportSummary::default());
    }
    let first_order_date = integration
        .first_order_date
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    let since = integration
        .orders_synced_until
        .map(|t| (t - Duration::minutes(OVERLAP_MINUTES)).naive_utc());
    let started = Utc::now();
    let tenant = ctx.fortnox.tenant(merchant_id.to_string());
    let mut summary = ImportSummary::default();

    let done = OrderQuery {
        last_modified: since,
        from_date: first_order_date,
        filter: Some(OrderFilter::InvoiceNotCreated),
        not_completed: Some(false),
    };
    for item in tenant.list_orders(&done).await.map_err(fortnox_error)? {
        if item.cancelled
            || ctx
                .store
                .order_by_document(merchant_id, item.document_number.as_str())
                .await?
                .is_some()
        {
            summary.skipped += 1;
            continue;
        }
        let order = tenant
            .get_order(&item.document_number)
            .await
            .map_err(fortnox_error)?;
        if !importable(&order, first_order_date) {
            summary.skipped += 1;
            continue;
        }
        let stored = new_order(merchant_id, &order).map_err(JobError::NeedsAttention)?;
        // Stored with its first event and its first job, in one transaction.
        if ctx.store.insert_order(stored).await?.is_some() {
            summary.imported += 1;
        }
    }

    if since.is_some() {
        let cancelled = OrderQuery {
            last_modified: since,
            filter: Some(OrderFilter::Cancelled),
            ..OrderQuery::default()
        };
        for item in tenant
            .list_orders(&cancelled)
            .await
            .map_err(fortnox_error)?
        {
            if cancel_local(ctx, merchant_id, &item).await? {
                summary.cancelled += 1;
            }
        }
    }
    ctx.store
        .set_orders_synced_until(merchant_id, started)
        .await?;
    if summary.imported + summary.cancelled > 0 {
        tracing::info!(
            merchant_id,
            imported = summary.imported,
            cancelled = summary.cancelled,
            "Fortnox orders imported"
        );
    }
    Ok(summary)
}

/// Rule 3: done, not cancelled, not invoiced, not dated before `firstOrderDate`.
fn importable(order: &Order, first_order_date: Option<NaiveDate>) -> bool {
    let dated_ok = match (
        first_order_date,
        order
            .order_date
            .as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()),
    ) {
        (Some(first), Some(date)) => date >= first,
        (Some(_), None) => false,
        (None, _) => true,
    };
    !order.not_completed
        && !order.cancelled
        && invoice_reference(&order.invoice_reference).is_none()
        && dated_ok
}

/// An order cancelled in Fortnox before we sent it is cancelled here too.
async fn cancel_local(
    ctx: &JobContext,
    merchant_id: i64,
    item: &OrderListItem,
) -> Result<bool, JobError> {
    let Some(order) = ctx
        .store
        .order_by_document(merchant_id, item.document_number.as_str())
        .await?
    else {
        return Ok(false);
    };
    let state = order.state;
    if !matches!(
        state,
        OrderState::Imported | OrderState::Validated | OrderState::Reserved
    ) {
        if state == OrderState::Sent {
            ctx.store
                .record_order_error(order.id, "cancelled_in_fortnox", ACTOR, "The order was cancelled in Fortnox after it was sent to the warehouse: stop the shipment in the warehouse, or it will still be shipped", false)
                .await?;
        }
        return Ok(false);
    }
    let request = TransitionRequest::new(
        order.id,
        Some(state),
        OrderState::Cancelled,
        "cancelled_in_fortnox",
        ACTOR,
    )
    .message(format!(
        "Order {} was cancelled in Fortnox",
        order.fortnox_document_number
    ));
    match crate::store::transitions::apply_transition(&ctx.store, &ctx.bus, request).await {
        Ok(_) => Ok(true),
        Err(TransitionError::Conflict { .. } | TransitionError::Refused(_)) => Ok(false),
        Err(TransitionError::NotFound) => Ok(false),
        Err(TransitionError::Store(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(fields: serde_json::Value) -> Order {
        let mut base = serde_json::json!({
            "DocumentNumber": "7", "OrderDate": "2026-11-10", "Cancelled": false, "NotCompleted": false,
            "InvoiceReference": "0", "OrderRows": []
        });
        if let (Some(base), Some(extra)) = (base.as_object_mut(), fields.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(base).expect("order")
    }

    fn date(text: &str) -> Option<NaiveDate> {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
    }

    #[test]
    fn a_done_uninvoiced_order_is_imported() {
        assert!(importable(&order(serde_json::json!({})), None));
        assert!(importable(
            &order(serde_json::json!({ "InvoiceReference": "" })),
            None
        ));
    }

    #[test]
    fn not_done_cancelled_or_invoiced_orders_are_not() {
        assert!(!importable(
            &order(serde_json::json!({ "NotCompleted": true })),
            None
        ));
        assert!(!importable(
            &order(serde_json::json!({ "Cancelled": true })),
            None
        ));
        assert!(!importable(
            &order(serde_json::json!({ "InvoiceReference": "12" })),
            None
        ));
    }

    #[test]
    fn orders_before_the_first_order_date_are_not() {
        assert!(importable(
            &order(serde_json::json!({})),
            date("2026-11-10")
        ));
        assert!(!importable(
            &order(serde_json::json!({})),
            date("2026-11-11")
        ));
        assert!(!importable(
            &order(serde_json::json!({ "OrderDate": null })),
            date("2026-11-01")
        ));
    }
}
