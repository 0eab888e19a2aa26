//! The import of one merchant's done orders from Fortnox (docs/rules.md rule 3), run on a
//! schedule and on `syncOrders`.
//!
//! Incremental by `lastmodified`, starting a few minutes before the previous poll began so
//! that an order changed during a poll is never missed; the overlap is harmless because an
//! order is stored once per merchant and document number.
use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use entity::import_failure;

use super::fortnox_glue::{fortnox_error, new_order};
use super::{JobContext, JobError};
use crate::domain::OrderState;
use crate::fortnox::types::{invoice_reference, DocumentNumber, Order};
use crate::fortnox::{ErrorClass, OrderFilter, OrderQuery, TenantClient};
use crate::store::transitions::{TransitionError, TransitionRequest};
use entity::IntegrationStatus;

const OVERLAP_MINUTES: i64 = 5;
const ACTOR: &str = "system:import_orders";
/// Failed orders retried per poll, so that many broken orders cannot spend the merchant's
/// Fortnox budget on every poll; the rest wait for the next poll.
const RETRIES_PER_POLL: usize = 20;

/// What one import did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub imported: usize,
    pub skipped: usize,
    pub cancelled: usize,
    /// Orders that could not be read or stored; recorded and retried at the next poll.
    pub failed: usize,
}

/// `requested_at`: when this import was asked for; `None` runs it in any case.
pub async fn import_orders(
    ctx: &JobContext,
    merchant_id: i64,
    requested_at: Option<DateTime<Utc>>,
) -> Result<ImportSummary, JobError> {
    let _one_at_a_time = ctx.import_locks.lock(merchant_id).await;
    let Some(integration) = ctx.store.integration(merchant_id).await? else {
        return Ok(ImportSummary::default());
    };
    if integration.status != IntegrationStatus::Connected {
        // Paused until the merchant (re)connects.
        return Ok(ImportSummary::default());
    }
    if covered(requested_at, integration.orders_synced_until) {
        // An import that began after this one was asked for has run (while this one
        // waited for it): it read Fortnox as this one would have.
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

    // Orders that failed before are tried again first; each is looked at once per poll.
    let mut looked_at = HashSet::new();
    for failed in ctx
        .store
        .import_failures(merchant_id)
        .await?
        .into_iter()
        .take(RETRIES_PER_POLL)
    {
        looked_at.insert(failed.document_number.clone());
        let Ok(document) = DocumentNumber::parse(&failed.document_number) else {
            // Stored by an older version under a number Fortnox cannot have: forget it.
            ctx.store
                .clear_import_failure(merchant_id, &failed.document_number)
                .await?;
            continue;
        };
        import_one(
            ctx,
            &tenant,
            merchant_id,
            &document,
            first_order_date,
            &mut summary,
        )
        .await?;
    }

    let done = OrderQuery {
        last_modified: since,
        from_date: first_order_date,
        filter: Some(OrderFilter::InvoiceNotCreated),
        not_completed: Some(false),
    };
    for item in tenant.list_orders(&done).await.map_err(fortnox_error)? {
        if item.cancelled
            || !looked_at.insert(item.document_number.as_str().to_owned())
            || ctx
                .store
                .order_by_document(merchant_id, item.document_number.as_str())
                .await?
                .is_some()
        {
            summary.skipped += 1;
            continue;
        }
        import_one(
            ctx,
            &tenant,
            merchant_id,
            &item.document_number,
            first_order_date,
            &mut summary,
        )
        .await?;
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
            if cancel_local(ctx, merchant_id, item.document_number.as_str()).await? {
                summary.cancelled += 1;
            }
        }
    }
    let failures = ctx.store.import_failures(merchant_id).await?;
    ctx.store
        .set_orders_synced_until(merchant_id, started, failures_message(&failures))
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

/// Whether an import asked for at `requested_at` was covered by the last one, which began
/// at `synced_from`. The margin keeps a few milliseconds of clock skew between processes
/// from skipping an import that a change just before the request needs.
fn covered(requested_at: Option<DateTime<Utc>>, synced_from: Option<DateTime<Utc>>) -> bool {
    const SKEW_MARGIN: Duration = Duration::seconds(1);
    match (requested_at, synced_from) {
        (Some(requested), Some(began)) => began >= requested + SKEW_MARGIN,
        _ => false,
    }
}

/// Reads, checks and stores one order. An order that cannot be read or stored is recorded
/// as an import failure (retried at the next poll) and the import goes on; only what stops
/// every order (revoked access, the database) ends the import.
async fn import_one(
    ctx: &JobContext,
    tenant: &TenantClient,
    merchant_id: i64,
    document: &DocumentNumber,
    first_order_date: Option<NaiveDate>,
    summary: &mut ImportSummary,
) -> Result<(), JobError> {
    if let Some(order) = fetch(ctx, tenant, merchant_id, document, summary).await? {
        store_fetched(ctx, merchant_id, &order, first_order_date, summary).await?;
    }
    Ok(())
}

/// One order a real-time event named: read it once, then import it or cancel it as a poll
/// would (rule 3, and cancellations).
pub(super) async fn import_or_cancel(
    ctx: &JobContext,
    merchant_id: i64,
    document: &DocumentNumber,
) -> Result<ImportSummary, JobError> {
    let mut summary = ImportSummary::default();
    let Some(integration) = ctx.store.integration(merchant_id).await? else {
        return Ok(summary);
    };
    if integration.status != IntegrationStatus::Connected {
        return Ok(summary);
    }
    let tenant = ctx.fortnox.tenant(merchant_id.to_string());
    let Some(order) = fetch(ctx, &tenant, merchant_id, document, &mut summary).await? else {
        return Ok(summary);
    };
    if order.cancelled {
        ctx.store
            .clear_import_failure(merchant_id, document.as_str())
            .await?;
        if cancel_local(ctx, merchant_id, document.as_str()).await? {
            summary.cancelled += 1;
        }
        return Ok(summary);
    }
    if ctx
        .store
        .order_by_document(merchant_id, document.as_str())
        .await?
        .is_some()
    {
        summary.skipped += 1;
        return Ok(summary);
    }
    let first_order_date = integration
        .first_order_date
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    store_fetched(ctx, merchant_id, &order, first_order_date, &mut summary).await?;
    Ok(summary)
}

/// Reads one order; `None` when it is gone (404) or could not be read (then recorded as an
/// import failure).
async fn fetch(
    ctx: &JobContext,
    tenant: &TenantClient,
    merchant_id: i64,
    document: &DocumentNumber,
    summary: &mut ImportSummary,
) -> Result<Option<Order>, JobError> {
    let number = document.as_str();
    match tenant.get_order(document).await {
        Ok(order) => Ok(Some(order)),
        Err(error) if error.is_not_found() => {
            // Deleted in Fortnox since it was listed: nothing to import or retry.
            ctx.store.clear_import_failure(merchant_id, number).await?;
            summary.skipped += 1;
            Ok(None)
        }
        Err(error) if error.class() == ErrorClass::NeedsReauthorization => {
            Err(fortnox_error(error))
        }
        Err(error) => {
            let reason = format!("Fortnox order {number} could not be read: {error}");
            failed(ctx, merchant_id, number, &reason, summary).await?;
            Ok(None)
        }
    }
}

/// Checks a read order against rule 3 and stores it with its first event and job.
async fn store_fetched(
    ctx: &JobContext,
    merchant_id: i64,
    order: &Order,
    first_order_date: Option<NaiveDate>,
    summary: &mut ImportSummary,
) -> Result<(), JobError> {
    let number = order.document_number.as_str();
    if !importable(order, first_order_date) {
        ctx.store.clear_import_failure(merchant_id, number).await?;
        summary.skipped += 1;
        return Ok(());
    }
    let stored = match new_order(merchant_id, order) {
        Ok(stored) => stored,
        Err(error) => {
            let reason = format!("Fortnox order {number} could not be stored: {error}");
            return failed(ctx, merchant_id, number, &reason, summary).await;
        }
    };
    // Stored with its first event and its first job, in one transaction.
    if ctx.store.insert_order(stored).await?.is_some() {
        summary.imported += 1;
    }
    ctx.store.clear_import_failure(merchant_id, number).await?;
    Ok(())
}

async fn failed(
    ctx: &JobContext,
    merchant_id: i64,
    number: &str,
    reason: &str,
    summary: &mut ImportSummary,
) -> Result<(), JobError> {
    tracing::warn!(
        merchant_id,
        document_number = number,
        reason,
        "order not imported; retried at the next poll"
    );
    ctx.store
        .record_import_failure(merchant_id, number, reason)
        .await?;
    summary.failed += 1;
    Ok(())
}

/// The integration's last error while orders fail to import: which ones, and why.
fn failures_message(failures: &[import_failure::Model]) -> Option<String> {
    let first = failures.first()?;
    let mut message = match failures.len() {
        1 => String::from("1 Fortnox order could not be imported"),
        n => format!("{n} Fortnox orders could not be imported"),
    };
    message.push_str(
        " and will be retried at every poll (fix them in Fortnox, or see importFailures): ",
    );
    message.push_str(&first.reason);
    if failures.len() > 1 {
        let others: Vec<&str> = failures[1..]
            .iter()
            .take(5)
            .map(|f| f.document_number.as_str())
            .collect();
        message.push_str(&format!("; also order {}", others.join(", ")));
        if failures.len() > 6 {
            message.push_str(", ...");
        }
    }
    Some(message)
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
    document_number: &str,
) -> Result<bool, JobError> {
    let Some(order) = ctx
        .store
        .order_by_document(merchant_id, document_number)
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
    match crate::store::transitions::apply_transition(&ctx.store, request).await {
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
    fn an_import_is_covered_only_by_one_that_began_after_it_was_asked_for() {
        let asked = Utc::now();
        assert!(covered(Some(asked), Some(asked + Duration::seconds(2))));
        assert!(!covered(Some(asked), Some(asked)));
        assert!(!covered(Some(asked), Some(asked - Duration::seconds(5))));
        assert!(!covered(None, Some(asked)));
        assert!(!covered(Some(asked), None));
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
