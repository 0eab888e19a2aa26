//! Pushes the stock levels the warehouse reported to Fortnox: `QuantityInStock` on each
//! product's article (docs/rules.md rule 8).
//!
//! Each push sets an absolute level read from our database when the job runs, so a re-run
//! (after a crash) or a late duplicate repeats no change. What Fortnox refuses (an article
//! that is not there, an account whose warehouse module takes stock only through warehouse
//! documents) is kept on the integration's `last_error`; what fails for a while (network,
//! rate limit) is retried with the same backoff as the order jobs, and kept there when the
//! attempts run out.
use apalis::prelude::{BoxDynError, Data};

use super::JobContext;
use crate::fortnox::types::Quantity;
use crate::fortnox::ErrorClass;
use crate::store::jobs_table::{self, PushStock};
use crate::store::StoreError;
use entity::IntegrationStatus;

/// The apalis handler of the `push_stock` queue. Only a failure to record the outcome
/// reaches apalis (which then re-runs the task).
pub(super) async fn push_stock(job: PushStock, ctx: Data<JobContext>) -> Result<(), BoxDynError> {
    run(&ctx, job).await?;
    Ok(())
}

fn listed(skus: &[String]) -> String {
    skus.iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn run(ctx: &JobContext, job: PushStock) -> Result<(), StoreError> {
    let merchant_id = job.merchant_id;
    let connected = ctx
        .store
        .integration(merchant_id)
        .await?
        .is_some_and(|i| i.status == IntegrationStatus::Connected);
    if !connected {
        let message = format!(
            "Stock levels of {} were stored but not pushed to Fortnox: Fortnox is not connected (or needs to be connected again); connect Fortnox, then report the stock levels again",
            listed(&job.skus)
        );
        tracing::warn!(merchant_id, %message, "stock push skipped");
        return ctx.store.set_integration_error(merchant_id, &message).await;
    }
    let tenant = ctx.fortnox.tenant(merchant_id.to_string());
    let mut refused = Vec::new();
    let mut retry = Vec::new();
    let mut reauthorize = Vec::new();
    let mut pushed = 0usize;
    for (i, sku) in job.skus.iter().enumerate() {
        let Some(product) = ctx.store.product_by_sku(merchant_id, sku).await? else {
            continue;
        };
        let Some(level) = product.stock_quantity.as_deref() else {
            continue;
        };
        let quantity: Quantity = match level.parse() {
            Ok(quantity) => quantity,
            Err(error) => {
                refused.push(format!(
                    "`{sku}`: the stored level `{level}` is not a number ({error})"
                ));
                continue;
            }
        };
        match tenant.update_article_stock(sku, quantity).await {
            Ok(_) => pushed += 1,
            Err(error) => match error.class() {
                ErrorClass::Document => refused.push(format!("`{sku}`: {error}")),
                ErrorClass::Retryable => retry.push(sku.clone()),
                ErrorClass::NeedsReauthorization => {
                    // Every further call would fail the same way.
                    reauthorize.extend(job.skus[i..].iter().cloned());
                    break;
                }
            },
        }
    }
    tracing::info!(
        merchant_id,
        pushed,
        refused = refused.len(),
        retry = retry.len(),
        "stock levels pushed to Fortnox"
    );

    let mut problems = Vec::new();
    if !refused.is_empty() {
        problems.push(format!(
            "Fortnox refused the stock level of {}",
            refused.join("; ")
        ));
    }
    if !reauthorize.is_empty() {
        problems.push(format!(
            "Stock levels of {} were not pushed: Fortnox no longer accepts our access; connect Fortnox again, then report the stock levels again",
            listed(&reauthorize)
        ));
    }
    if !retry.is_empty() {
        let next_attempt = job.attempt + 1;
        if next_attempt < ctx.settings.retry.max_attempts {
            let delay = ctx.settings.retry.delay(job.attempt, None);
            tracing::warn!(merchant_id, attempt = next_attempt, ?delay, skus = %listed(&retry), "stock push failed for a while; retrying later");
            let next = PushStock {
                merchant_id,
                skus: retry,
                attempt: next_attempt,
            };
            jobs_table::push(
                &ctx.store.pool,
                vec![jobs_table::push_stock_task(&next, Some(delay))?],
            )
            .await?;
        } else {
            problems.push(format!(
                "Stock levels of {} could not be pushed: Fortnox was unavailable (gave up after {next_attempt} attempts); report the stock levels again later",
                listed(&retry)
            ));
        }
    }
    if !problems.is_empty() {
        let message = problems.join(". ");
        tracing::warn!(merchant_id, %message, "stock push to Fortnox failed");
        ctx.store
            .set_integration_error(merchant_id, &message)
            .await?;
    }
    Ok(())
}
