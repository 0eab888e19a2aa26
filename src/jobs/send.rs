//! VALIDATED → SENT (the warehouse took it) or RESERVED (the warehouse refused it).

use super::outcome::{ensure_held, StepOutcome};
use super::{JobContext, JobError};
use crate::domain::address::DeliveryAddress;
use crate::domain::{OrderState, Quantity};
use crate::store::leases::Lease;
use crate::store::transitions::TransitionRequest;
use crate::warehouse::{PickLine, WarehouseError, WarehouseOrder};
use entity::order;

const ACTOR: &str = "system:send_to_warehouse";

pub(super) async fn run(
    ctx: &JobContext,
    order: order::Model,
    lease: &Lease,
) -> Result<StepOutcome, JobError> {
    let lines = ctx.store.order_lines(order.id).await?;
    let mut picks = Vec::new();
    for line in lines {
        let Some(quantity) = line
            .pick_quantity
            .as_deref()
            .and_then(|q| Quantity::parse(q).ok())
        else {
            continue;
        };
        if quantity.is_positive() {
            picks.push(PickLine {
                line_id: line.id,
                sku: line.article_number.unwrap_or_default(),
                description: line.description,
                quantity: quantity.value(),
            });
        }
    }
    let address: DeliveryAddress = order
        .delivery_address
        .clone()
        .map(DeliveryAddress::from)
        .unwrap_or_default();
    let shipping_method_code = match order.shipping_method_id {
        Some(id) => ctx.store.shipping_method(id).await?.map(|m| m.code),
        None => None,
    };
    let request = WarehouseOrder {
        order_id: order.id,
        merchant_id: order.merchant_id,
        fortnox_document_number: order.fortnox_document_number.clone(),
        address,
        shipping_method_code,
        lines: picks,
    };
    // The warehouse takes orders idempotently by our id, so a late duplicate cannot ship
    // twice; holding the lease still keeps a job that lost it from acting on stale data.
    ensure_held(ctx, lease).await?;
    match ctx.warehouse.submit(&request).await {
        Ok(reference) => {
            let mut transition = TransitionRequest::new(
                order.id,
                Some(OrderState::Validated),
                OrderState::Sent,
                "warehouse_accepted",
                ACTOR,
            )
            .message(format!("Warehouse reference {reference}"));
            // If the order changed meanwhile, the dispatcher tells a person that the
            // warehouse holds it.
            transition.warehouse_reference = Some(reference);
            Ok(StepOutcome::Transition(transition))
        }
        Err(WarehouseError::Refused(reason)) => {
            let reason = format!("The warehouse refused the order: {reason}");
            let mut transition = TransitionRequest::new(
                order.id,
                Some(OrderState::Validated),
                OrderState::Reserved,
                "warehouse_refused",
                ACTOR,
            )
            .message(reason.clone());
            transition.reasons = vec![reason];
            Ok(StepOutcome::Transition(transition))
        }
        Err(WarehouseError::Unavailable(message)) => Err(JobError::Retryable(format!(
            "the warehouse is unavailable: {message}"
        ))),
    }
}
