//! SHIPPED → INVOICED: write the shipped quantities to the Fortnox order's rows, then create
//! the invoice, never twice.
//!
//! Three Fortnox calls per order on the happy path (the import's read, the rows update,
//! `createinvoice`): the rows update answers with the whole order, which serves as the read
//! of `InvoiceReference` before invoicing. Before `createinvoice` we record the intent; an
//! attempt that finds the intent recorded reads the order first and adopts an invoice that
//! already exists, so a crash between `createinvoice` and our commit cannot cause a second.
use std::str::FromStr;

use rust_decimal::Decimal;

use super::fortnox_glue::fortnox_error;
use super::{JobContext, JobError};
use crate::domain::checks::delivery_state_allows_delivery;
use crate::domain::OrderState;
use crate::fortnox::types::{DocumentNumber, Order, Quantity, RowUpdate};
use crate::fortnox::{ErrorClass, FortnoxError, TenantClient};
use crate::store::transitions::TransitionRequest;
use entity::{order, order_line};

const ACTOR: &str = "system:invoice_order";

pub(super) async fn run(ctx: &JobContext, order: order::Model) -> Result<(), JobError> {
    let tenant = ctx.fortnox.tenant(order.merchant_id.to_string());
    let doc = DocumentNumber::parse(&order.fortnox_document_number).map_err(JobError::NeedsAttention)?;
    let lines = ctx.store.order_lines(order.id).await?;
    let mut current: Option<Order> = None;
    if order.invoice_requested_at.is_some() {
        // An earlier attempt may have created the invoice before it could record it.
        let fresh = tenant.get_order(&doc).await.map_err(fortnox_error)?;
        if let Some(invoice) = fresh.invoice() {
            return invoiced(ctx, &order, invoice.as_str(), true).await;
        }
        current = Some(fresh);
    }
    let updated = match write_delivered(&tenant, &doc, &lines, current.as_ref()).await {
        Ok(updated) => updated,
        Err(error) if error.class() == ErrorClass::Document => return refused_rows(ctx, &order, &tenant, &doc, &lines, error).await,
        Err(error) => return Err(fortnox_error(error)),
    };
    if let Some(invoice) = updated.invoice() {
        return invoiced(ctx, &order, invoice.as_str(), true).await;
    }
    ctx.store.mark_invoice_requested(order.id).await?;
    let outcome = tenant.create_invoice_given(&doc, Some(updated)).await.map_err(fortnox_error)?;
    if ctx.faults.take_crash_after_invoice() {
        // Test-only: as if the process died after Fortnox created the invoice.
        return Err(JobError::Retryable("fault injected: crashed after createinvoice".into()));
    }
    invoiced(ctx, &order, outcome.invoice.document_number.as_str(), outcome.adopted).await
}

async fn invoiced(ctx: &JobContext, order: &order::Model, invoice: &str, adopted: bool) -> Result<(), JobError> {
    let message = if adopted {
        format!("Adopted Fortnox invoice {invoice}, which already existed for this order")
    } else {
        format!("Fortnox invoice {invoice} created")
    };
    let mut request = TransitionRequest::new(order.id, Some(OrderState::Shipped), OrderState::Invoiced, "invoiced", ACTOR).message(message);
    request.invoice_number = Some(invoice.to_owned());
    super::handlers::finish(ctx, request).await
}

/// Every row of the order, in Fortnox's order, with the quantity delivered: shipped lines
/// as shipped (0 for dropped ones), service rows in full, text rows untouched.
fn row_updates(lines: &[order_line::Model], fortnox_rows: Option<&Order>) -> Result<Vec<RowUpdate>, FortnoxError> {
    let mut rows = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        // Fortnox renumbers rows after each update: prefer ids from a fresh read.
        let row_id = match fortnox_rows {
            Some(order) => order.order_rows.get(index).and_then(|r| r.row_id),
            None => line.fortnox_row_id.map(|id| id as u64),
        };
        let Some(row_id) = row_id else {
            return Err(FortnoxError::Document {
                status: 400,
                code: None,
                message: format!("row {} of the order has no RowId; the order's rows changed in Fortnox since it was imported", line.position),
            });
        };
        let delivered = match (&line.pick_quantity, &line.article_number) {
            (Some(_), _) => Some(line.shipped_quantity.as_deref().unwrap_or("0")),
            (None, Some(_)) => Some(line.ordered_quantity.as_str()),
            (None, None) => None,
        };
        let delivered_quantity = match delivered {
            Some(text) => Some(Quantity(Decimal::from_str(text).map_err(|_| FortnoxError::Document {
                status: 400,
                code: None,
                message: format!("quantity `{text}` of row {} is not a number", line.position),
            })?)),
            None => None,
        };
        rows.push(RowUpdate { row_id: Some(row_id), article_number: None, description: None, ordered_quantity: None, delivered_quantity, price: None });
    }
    Ok(rows)
}

async fn write_delivered(tenant: &TenantClient, doc: &DocumentNumber, lines: &[order_line::Model], fresh: Option<&Order>) -> Result<Order, FortnoxError> {
    tenant.update_order_rows(doc, row_updates(lines, fresh)?).await
}

/// Fortnox refused the rows. Read the order to tell the merchant what to change; if only
/// the row ids moved (the order was edited after import), write again with fresh ids.
async fn refused_rows(
    ctx: &JobContext,
    order: &order::Model,
    tenant: &TenantClient,
    doc: &DocumentNumber,
    lines: &[order_line::Model],
    error: FortnoxError,
) -> Result<(), JobError> {
    let fresh = tenant.get_order(doc).await.map_err(fortnox_error)?;
    if let Some(invoice) = fresh.invoice() {
        return invoiced(ctx, order, invoice.as_str(), true).await;
    }
    let number = &order.fortnox_document_number;
    if !delivery_state_allows_delivery(fresh.delivery_state.as_deref()) {
        return Err(JobError::NeedsAttention(format!(
            "Fortnox refused the delivered quantities because order {number} is not in stock status Delivery (DeliveryState is '{}'): set Stock status to Delivery on the order in Fortnox, then retry the order. No invoice was created. ({error})",
            fresh.delivery_state.as_deref().unwrap_or("")
        )));
    }
    if fresh.warehouse_ready {
        return Err(JobError::NeedsAttention(format!(
            "Fortnox refused the delivered quantities because order {number} is already marked Delivery done (WarehouseReady): untick Delivery done on the order in Fortnox, then retry the order. No invoice was created. ({error})"
        )));
    }
    let stale_ids = fresh.order_rows.len() == lines.len()
        && fresh.order_rows.iter().zip(lines).any(|(row, line)| row.row_id.map(|id| id as i64) != line.fortnox_row_id);
    if stale_ids {
        let updated = write_delivered(tenant, doc, lines, Some(&fresh)).await.map_err(fortnox_error)?;
        ctx.store.mark_invoice_requested(order.id).await?;
        let outcome = tenant.create_invoice_given(doc, Some(updated)).await.map_err(fortnox_error)?;
        return invoiced(ctx, order, outcome.invoice.document_number.as_str(), outcome.adopted).await;
    }
    Err(JobError::NeedsAttention(format!(
        "Fortnox refused the delivered quantities for order {number}: {error}. Correct the order in Fortnox, then retry the order. No invoice was created."
    )))
}
