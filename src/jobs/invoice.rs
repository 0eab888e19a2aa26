//! SHIPPED → INVOICED: write the shipped quantities to the Fortnox order's rows, then create
//! the invoice, exactly once.
//!
//! Three Fortnox calls per order on the happy path (the import's read, the rows update,
//! `createinvoice`): the rows update answers with the whole order, which serves as the read
//! of `InvoiceReference` before invoicing. That answer can be trusted only because the job
//! still holds the order's lease when it acts on it: `createinvoice` is fenced
//! (`Store::fence_invoice_intent`: one conditional write proving the lease and recording the
//! intent, immediately before the request). A job that finds an intent recorded by another
//! holder reads the Fortnox order fresh and adopts an invoice that already exists.
//!
//! No fence stops a request a frozen process already had in flight, so a second invoice is
//! detected instead: the dispatcher never swallows an INVOICED transition that conflicts.
//! If the order has a different invoice, the new one is a duplicate: a
//! `credit_duplicate_invoice` job records it (ERROR event naming both), counts it, and
//! credits it in Fortnox.

use super::faults::{self, InvoicePoint};
use super::fortnox_glue::fortnox_error;
use super::outcome::{ensure_held, StepOutcome};
use super::{JobContext, JobError};
use crate::domain::checks::delivery_state_allows_delivery;
use crate::domain::{self, OrderState};
use crate::fortnox::types::{DocumentNumber, Order, Quantity, RowUpdate};
use crate::fortnox::{ErrorClass, FortnoxError, TenantClient};
use crate::store::leases::Lease;
use crate::store::transitions::TransitionRequest;
use entity::{order, order_line};

const ACTOR: &str = "system:invoice_order";

/// Where the invoice number the job is about to record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Created,
    /// It already existed in Fortnox (an interrupted attempt, or made by hand).
    Adopted,
}

pub(super) async fn run(
    ctx: &JobContext,
    order: order::Model,
    lease: &mut Lease,
) -> Result<StepOutcome, JobError> {
    let tenant = ctx.fortnox.tenant(order.merchant_id.to_string());
    let doc =
        DocumentNumber::parse(&order.fortnox_document_number).map_err(JobError::NeedsAttention)?;
    let lines = ctx.store.order_lines(order.id).await?;
    let mut current: Option<Order> = None;
    if order.invoice_requested_at.is_some() {
        // Another holder (an interrupted attempt, or a job that outlived its lease) got as
        // far as createinvoice: only a read made now tells whether an invoice exists.
        let fresh = tenant.get_order(&doc).await.map_err(fortnox_error)?;
        if let Some(invoice) = fresh.invoice() {
            return Ok(invoiced(&order, invoice.as_str(), Source::Adopted));
        }
        current = Some(fresh);
    }
    faults::at(ctx, lease, InvoicePoint::BeforeRowsPut).await;
    ensure_held(ctx, lease).await?;
    let updated = match write_delivered(&tenant, &doc, &lines, current.as_ref()).await {
        Ok(updated) => updated,
        Err(error) if error.class() == ErrorClass::Document => {
            return refused_rows(ctx, &order, lease, &tenant, &doc, &lines, error).await
        }
        Err(error) => return Err(fortnox_error(error)),
    };
    faults::at(ctx, lease, InvoicePoint::AfterRowsPut).await;
    if let Some(invoice) = updated.invoice() {
        return Ok(invoiced(&order, invoice.as_str(), Source::Adopted));
    }
    create_invoice(ctx, &order, lease, &tenant, &doc).await
}

/// The fence, then `createinvoice` once. An ambiguous failure is not retried here: the
/// intent is recorded, so the next attempt reads the order first and adopts what exists.
async fn create_invoice(
    ctx: &JobContext,
    order: &order::Model,
    lease: &mut Lease,
    tenant: &TenantClient,
    doc: &DocumentNumber,
) -> Result<StepOutcome, JobError> {
    if !ctx.store.fence_invoice_intent(lease).await? {
        tracing::warn!(
            order_id = order.id,
            "lease lost before createinvoice; stopping without it"
        );
        return Err(JobError::Busy(None));
    }
    faults::at(ctx, lease, InvoicePoint::AfterIntent).await;
    let invoice = tenant
        .create_invoice_raw(doc)
        .await
        .map_err(fortnox_error)?;
    faults::at(ctx, lease, InvoicePoint::AfterCreateInvoice).await;
    if faults::crash_after_invoice(ctx) {
        // Test-only: as if the process died after Fortnox created the invoice.
        return Err(JobError::Retryable(
            "fault injected: crashed after createinvoice".into(),
        ));
    }
    Ok(invoiced(
        order,
        invoice.document_number.as_str(),
        Source::Created,
    ))
}

/// The INVOICED transition, carrying the invoice number: should the order have changed
/// meanwhile, the dispatcher compares invoices and reports a duplicate.
fn invoiced(order: &order::Model, invoice: &str, source: Source) -> StepOutcome {
    let message = match source {
        Source::Adopted => {
            format!("Adopted Fortnox invoice {invoice}, which already existed for this order")
        }
        Source::Created => format!("Fortnox invoice {invoice} created"),
    };
    let mut request = TransitionRequest::new(
        order.id,
        Some(OrderState::Shipped),
        OrderState::Invoiced,
        "invoiced",
        ACTOR,
    )
    .message(message);
    request.invoice_number = Some(invoice.to_owned());
    StepOutcome::Transition(request)
}

/// Every row of the order, in Fortnox's order, with the quantity delivered: shipped lines
/// as shipped (0 for dropped ones), service and free-text rows in full. Rows are matched
/// by position; with a fresh read of the order, its rows must still be ours (same count,
/// same articles), or the quantities would land on the wrong rows and rows left out
/// would be deleted.
fn row_updates(
    lines: &[order_line::Model],
    fresh: Option<&Order>,
) -> Result<Vec<RowUpdate>, FortnoxError> {
    let changed = |why: String| {
        FortnoxError::Document {
        status: 400,
        code: None,
        message: format!("the order's rows changed in Fortnox after it was imported ({why}); restore them or cancel the order and create a new one"),
    }
    };
    if let Some(order) = fresh {
        if order.order_rows.len() != lines.len() {
            return Err(changed(format!(
                "{} rows now, {} when imported",
                order.order_rows.len(),
                lines.len()
            )));
        }
        for (row, line) in order.order_rows.iter().zip(lines) {
            let now = row
                .article_number
                .as_deref()
                .map(str::trim)
                .filter(|a| !a.is_empty());
            if now != line.article_number.as_deref().map(str::trim) {
                return Err(changed(format!(
                    "row {} is now {}",
                    line.position,
                    now.unwrap_or("a text row")
                )));
            }
        }
    }
    let mut rows = Vec::with_capacity(lines.len());
    for (index, line) in lines.iter().enumerate() {
        // Fortnox renumbers rows after each update: prefer ids from a fresh read.
        let row_id = match fresh {
            Some(order) => order.order_rows.get(index).and_then(|r| r.row_id),
            None => line.fortnox_row_id.map(|id| id as u64),
        };
        let Some(row_id) = row_id else {
            return Err(changed(format!("row {} has no RowId", line.position)));
        };
        let delivered = match (&line.pick_quantity, &line.shipped_quantity) {
            (Some(_), Some(shipped)) => Some(shipped.as_str()),
            (Some(pick), None) if pick.as_str() == "0" => Some("0"),
            (Some(_), None) => {
                return Err(FortnoxError::Document {
                    status: 400,
                    code: None,
                    message: format!("row {} has no shipped quantity (was the order forced to SHIPPED?): confirm the shipment with its quantities", line.position),
                })
            }
            // Services and free-text rows are delivered as ordered, so they are invoiced.
            (None, _) => Some(line.ordered_quantity.as_str()).filter(|q| domain::Quantity::parse(q).is_ok_and(|q| q.is_positive())),
        };
        let delivered_quantity = match delivered {
            Some(text) => Some(Quantity(
                domain::Quantity::parse(text)
                    .map_err(|e| FortnoxError::Document {
                        status: 400,
                        code: None,
                        message: format!("quantity of row {}: {e}", line.position),
                    })?
                    .value(),
            )),
            None => None,
        };
        rows.push(RowUpdate {
            row_id: Some(row_id),
            article_number: None,
            description: None,
            ordered_quantity: None,
            delivered_quantity,
            price: None,
        });
    }
    Ok(rows)
}

async fn write_delivered(
    tenant: &TenantClient,
    doc: &DocumentNumber,
    lines: &[order_line::Model],
    fresh: Option<&Order>,
) -> Result<Order, FortnoxError> {
    tenant
        .update_order_rows(doc, row_updates(lines, fresh)?)
        .await
}

/// Fortnox refused the rows. Read the order to tell the merchant what to change; if only
/// the row ids moved (the order was edited after import), write again with fresh ids.
async fn refused_rows(
    ctx: &JobContext,
    order: &order::Model,
    lease: &mut Lease,
    tenant: &TenantClient,
    doc: &DocumentNumber,
    lines: &[order_line::Model],
    error: FortnoxError,
) -> Result<StepOutcome, JobError> {
    let fresh = tenant.get_order(doc).await.map_err(fortnox_error)?;
    if let Some(invoice) = fresh.invoice() {
        return Ok(invoiced(order, invoice.as_str(), Source::Adopted));
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
    let ids_moved = fresh
        .order_rows
        .iter()
        .map(|r| r.row_id.map(|id| id as i64))
        .ne(lines.iter().map(|l| l.fortnox_row_id));
    if ids_moved {
        // The order was edited in Fortnox after import: write again with its current row
        // ids, but only if its rows are still the ones we shipped.
        let rows = row_updates(lines, Some(&fresh)).map_err(|e| match e {
            FortnoxError::Document { message, .. } => JobError::NeedsAttention(format!(
                "Order {number} cannot be written back: {message}. No invoice was created."
            )),
            other => fortnox_error(other),
        })?;
        ensure_held(ctx, lease).await?;
        let updated = tenant
            .update_order_rows(doc, rows)
            .await
            .map_err(fortnox_error)?;
        if let Some(invoice) = updated.invoice() {
            return Ok(invoiced(order, invoice.as_str(), Source::Adopted));
        }
        return create_invoice(ctx, order, lease, tenant, doc).await;
    }
    Err(JobError::NeedsAttention(format!(
        "Fortnox refused the delivered quantities for order {number}: {error}. Correct the order in Fortnox, then retry the order. No invoice was created."
    )))
}
