//! IMPORTED (and RESERVED, on revalidation) → VALIDATED or RESERVED, by the checks of
//! docs/rules.md rule 5.
use rust_decimal::Decimal;

use super::fortnox_glue::{fortnox_error, new_order};
use super::outcome::StepOutcome;
use super::{JobContext, JobError};
use crate::domain::address::OrderAddressFields;
use crate::domain::checks::{
    check_order, CheckContext, CheckOutcome, OrderRowToCheck, OrderToCheck, RowQuantity,
};
use crate::domain::OrderState;
use crate::fortnox::types::{DocumentNumber, Order};
use crate::store::pipeline::CheckResults;
use crate::store::transitions::TransitionRequest;
use entity::order;
use entity::IntegrationStatus;

const ACTOR: &str = "system:validate_order";

pub(super) async fn run(
    ctx: &JobContext,
    order: order::Model,
    state: OrderState,
) -> Result<StepOutcome, JobError> {
    // Read before the catalogue: a change committed after this read is either seen by the
    // reads below or moves the version, and reserving the order then checks it again.
    let catalog_version = ctx.store.catalog_version(order.merchant_id).await?;
    // The reads are independent: made at once, the step waits for the slowest, not the sum.
    let (integration, product_skus, shipping_rules) = tokio::try_join!(
        ctx.store.integration(order.merchant_id),
        ctx.store.product_skus(order.merchant_id),
        ctx.store.rules_for_checks(order.merchant_id),
    )?;
    let connected = integration
        .as_ref()
        .is_some_and(|i| i.status == IntegrationStatus::Connected);
    let order = if state == OrderState::Reserved && connected {
        // The merchant may have fixed the cause in Fortnox: check what Fortnox has now.
        refresh_from_fortnox(ctx, &order).await?;
        match ctx
            .store
            .order(&crate::store::orders::TenantScope::All, order.id)
            .await?
        {
            Some(order) => order,
            None => return Ok(StepOutcome::Done),
        }
    } else {
        order
    };
    let lines = ctx.store.order_lines(order.id).await?;
    let to_check = order_to_check(&order, &lines);
    let mut check_ctx = CheckContext {
        product_skus,
        ignore_missing_products: integration
            .as_ref()
            .is_some_and(|i| i.ignore_missing_products),
        shipping_rules,
        ..CheckContext::default()
    };
    let mut outcome = check_order(&to_check, &check_ctx);
    // A failure, or a row dropped as a missing product, may only be a service article or a
    // way of delivery matched by its description. Only then look those up in Fortnox: most
    // orders pass without, and every Fortnox call counts.
    let needs_catalog = !outcome.passes() || !outcome.warnings.is_empty();
    if needs_catalog && connected {
        let changed_at = ctx.store.catalog_changed_at(order.merchant_id).await?;
        let catalog = ctx
            .catalog
            .get(&ctx.fortnox, order.merchant_id, changed_at)
            .await
            .map_err(fortnox_error)?;
        check_ctx.non_stock_article_numbers = catalog.non_stock_articles.clone();
        check_ctx.way_of_delivery_descriptions = catalog.way_of_delivery_descriptions.clone();
        outcome = check_order(&to_check, &check_ctx);
    }
    super::faults::after_catalog_read(ctx, order.id).await;
    decide(&order, &lines, state, outcome, &check_ctx, catalog_version)
}

fn decide(
    order: &order::Model,
    lines: &[entity::order_line::Model],
    state: OrderState,
    outcome: CheckOutcome,
    check_ctx: &CheckContext,
    catalog_version: i64,
) -> Result<StepOutcome, JobError> {
    if outcome.passes() {
        let results = CheckResults {
            shipping_method_id: outcome.shipping_method_id,
            delivery_address: serde_json::to_value(&outcome.address)
                .map_err(|e| JobError::NeedsAttention(e.to_string()))?,
            picks: picks(lines, &outcome, check_ctx),
        };
        let cause = if state == OrderState::Reserved {
            "revalidated"
        } else {
            "checks_passed"
        };
        let mut request =
            TransitionRequest::new(order.id, Some(state), OrderState::Validated, cause, ACTOR);
        if !outcome.warnings.is_empty() {
            request.message = Some(outcome.warnings.join("; "));
        }
        // Saved with the transition, in one transaction.
        request.check_results = Some(results);
        return Ok(StepOutcome::Transition(request));
    }
    if state == OrderState::Reserved {
        return Ok(StepOutcome::StillReserved {
            reasons: outcome.reasons,
        });
    }
    let mut request = TransitionRequest::new(
        order.id,
        Some(state),
        OrderState::Reserved,
        "checks_failed",
        ACTOR,
    )
    .message(outcome.reasons.join("; "));
    request.reasons = outcome.reasons;
    request.catalog_version_seen = Some(catalog_version);
    Ok(StepOutcome::Transition(request))
}

/// Lines to ship get their quantity; stock lines dropped (a missing product with
/// ignoreMissingProducts on) get 0, so they are neither picked nor invoiced; lines without
/// an article or for services stay unset (see `invoice` for how each is written back).
fn picks(
    lines: &[entity::order_line::Model],
    outcome: &CheckOutcome,
    check_ctx: &CheckContext,
) -> Vec<(i32, String)> {
    lines
        .iter()
        .filter_map(|line| {
            if let Some(ship) = outcome
                .lines_to_ship
                .iter()
                .find(|l| l.position == line.position)
            {
                return Some((line.position, ship.quantity.normalize().to_string()));
            }
            let article = line
                .article_number
                .as_deref()
                .map(str::trim)
                .filter(|a| !a.is_empty())?;
            let dropped = !check_ctx.non_stock_article_numbers.contains(article)
                && !check_ctx.product_skus.contains(article);
            dropped.then(|| (line.position, Decimal::ZERO.to_string()))
        })
        .collect()
}

/// The order as the checks see it: its stored lines and the Fortnox snapshot's fields.
fn order_to_check(order: &order::Model, lines: &[entity::order_line::Model]) -> OrderToCheck {
    let snapshot = &order.fortnox_snapshot;
    let address: OrderAddressFields = serde_json::from_value(snapshot.clone()).unwrap_or_default();
    // Older accounts send the delivery state as the number 0.
    let delivery_state = match snapshot.get("DeliveryState") {
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let rows = lines
        .iter()
        .map(|line| OrderRowToCheck {
            position: line.position,
            row_id: line.fortnox_row_id,
            article_number: line.article_number.clone(),
            description: line.description.clone(),
            ordered_quantity: RowQuantity::parse(&line.ordered_quantity),
        })
        .collect();
    OrderToCheck {
        rows,
        address,
        way_of_delivery: order.way_of_delivery.clone(),
        way_of_delivery_description: None,
        delivery_state,
        warehouse_ready: snapshot
            .get("WarehouseReady")
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
    }
}

async fn refresh_from_fortnox(ctx: &JobContext, order: &order::Model) -> Result<(), JobError> {
    let doc =
        DocumentNumber::parse(&order.fortnox_document_number).map_err(JobError::NeedsAttention)?;
    let fresh: Order = ctx
        .fortnox
        .tenant(order.merchant_id.to_string())
        .get_order(&doc)
        .await
        .map_err(fortnox_error)?;
    let stored = new_order(order.merchant_id, &fresh).map_err(JobError::NeedsAttention)?;
    ctx.store
        .refresh_from_fortnox(
            order.id,
            stored.fortnox_snapshot,
            stored.way_of_delivery,
            stored.lines,
        )
        .await?;
    Ok(())
}
