//! The `credit_duplicate_invoice` job: records a duplicate Fortnox invoice on its order (an
//! ERROR event naming both invoices) and, unless the merchant turned it off, credits the
//! duplicate in Fortnox. Crediting never happens twice: the client reads the invoice first
//! and adopts an existing credit, and Fortnox refuses to credit an invoice twice.
use apalis::prelude::{BoxDynError, Data};

use super::{counters, JobContext};
use crate::fortnox::types::DocumentNumber;
use crate::fortnox::ErrorClass;
use crate::store::jobs_table::{self, CreditDuplicate};
use crate::store::orders::TenantScope;
use crate::store::StoreError;

const ACTOR: &str = "system:credit_duplicate_invoice";

/// The apalis handler. Only a failure to record the outcome reaches apalis (which then
/// re-runs the task; every step is idempotent).
pub(super) async fn credit_duplicate(
    job: CreditDuplicate,
    ctx: Data<JobContext>,
) -> Result<(), BoxDynError> {
    run(&ctx, job).await?;
    Ok(())
}

async fn run(ctx: &JobContext, job: CreditDuplicate) -> Result<(), StoreError> {
    let Some(order) = ctx.store.order(&TenantScope::All, job.order_id).await? else {
        return Ok(());
    };
    let auto_credit = ctx
        .store
        .credits_duplicate_invoices(order.merchant_id)
        .await?;
    let next = if auto_credit {
        "It is credited in Fortnox automatically; the credit is recorded on the order."
    } else {
        "Automatic credit of duplicates is off for this merchant: credit it in Fortnox."
    };
    let message = format!(
        "Fortnox invoice {} duplicates invoice {} of this order (a job that outlived its lease invoiced the order again). {next}",
        job.invoice, job.kept
    );
    let Some(duplicate) = ctx
        .store
        .record_duplicate_invoice(order.id, &job.invoice, &job.kept, ACTOR, &message)
        .await?
    else {
        return Ok(());
    };
    if duplicate.credit_invoice_number.is_some() {
        return Ok(());
    }
    if !auto_credit {
        let reason = format!(
            "Duplicate invoice {} was not credited: automatic credit is off for this merchant; credit it in Fortnox",
            job.invoice
        );
        return ctx
            .store
            .record_duplicate_not_credited(duplicate.id, ACTOR, &reason)
            .await;
    }
    let not_credited = |why: String| {
        format!(
            "Duplicate invoice {} could not be credited automatically: {why}. Credit it in Fortnox.",
            job.invoice
        )
    };
    let doc = match DocumentNumber::parse(&job.invoice) {
        Ok(doc) => doc,
        Err(error) => {
            return ctx
                .store
                .record_duplicate_not_credited(duplicate.id, ACTOR, &not_credited(error))
                .await
        }
    };
    let tenant = ctx.fortnox.tenant(order.merchant_id.to_string());
    match tenant.credit_invoice(&doc).await {
        Ok(outcome) => {
            let credit = outcome.credit_invoice.document_number.as_str().to_owned();
            counters::bump(&counters::DUPLICATE_INVOICES_CREDITED);
            tracing::warn!(order_id = order.id, invoice = %job.invoice, %credit, "duplicate invoice credited");
            ctx.store
                .record_duplicate_credited(
                    duplicate.id,
                    &credit,
                    ACTOR,
                    &format!(
                        "Duplicate invoice {} credited in Fortnox with credit invoice {credit}; invoice {} stays",
                        job.invoice, job.kept
                    ),
                )
                .await
        }
        Err(error)
            if error.class() == ErrorClass::Retryable
                && job.attempt + 1 < ctx.settings.retry.max_attempts =>
        {
            let delay = ctx.settings.retry.delay(job.attempt, None);
            tracing::warn!(order_id = order.id, invoice = %job.invoice, %error, ?delay, "crediting the duplicate invoice failed; retrying later");
            let next = CreditDuplicate {
                attempt: job.attempt + 1,
                ..job
            };
            jobs_table::push(
                &ctx.store.pool,
                vec![jobs_table::credit_duplicate_task(&next, Some(delay))?],
            )
            .await
        }
        Err(error) => {
            ctx.store
                .record_duplicate_not_credited(
                    duplicate.id,
                    ACTOR,
                    &not_credited(error.to_string()),
                )
                .await
        }
    }
}
