//! The read of one Fortnox order that a real-time event named (see `realtime`): import it
//! if it is done, cancel it if it was cancelled, as a poll would.
//!
//! An order that cannot be read is recorded as an import failure, which every poll retries;
//! it is also read again here a few times with the jobs' backoff, so that a short Fortnox
//! outage does not make it wait for the (stretched) poll.
use apalis::prelude::{BoxDynError, Data};

use super::{JobContext, JobError};
use crate::fortnox::types::DocumentNumber;
use crate::store::jobs_table::{self, FortnoxOrderEvent};

/// Reads again after a failed read at most this many times; the poll does the rest.
const READ_ATTEMPTS: u32 = 4;

/// The apalis handler of the `fortnox_order_event` queue. Only a failure to record the
/// outcome reaches apalis (which then re-runs the task).
pub(super) async fn read_fortnox_order(
    job: FortnoxOrderEvent,
    ctx: Data<JobContext>,
) -> Result<(), BoxDynError> {
    let Ok(document) = DocumentNumber::parse(&job.document_number) else {
        // Queued only for parsed numbers; an older or hand-made task is dropped.
        tracing::warn!(document = %job.document_number, "event read for an impossible document number dropped");
        return Ok(());
    };
    let outcome = super::import::import_or_cancel(&ctx, job.merchant_id, &document).await;
    let read_again = match &outcome {
        Ok(summary) => summary.failed > 0,
        Err(error) => matches!(error, JobError::Busy(_) | JobError::Retryable(_)),
    };
    if read_again && job.attempt + 1 < READ_ATTEMPTS {
        let delay = ctx.settings.retry.delay(job.attempt, None);
        let next = FortnoxOrderEvent {
            attempt: job.attempt + 1,
            ..job
        };
        jobs_table::push(
            &ctx.store.pool,
            vec![jobs_table::fortnox_order_task(&next, Some(delay))?],
        )
        .await?;
        return Ok(());
    }
    match outcome {
        Ok(summary) if summary.imported + summary.cancelled > 0 => {
            tracing::info!(
                merchant_id = job.merchant_id,
                document = %job.document_number,
                imported = summary.imported,
                cancelled = summary.cancelled,
                "Fortnox order handled from a real-time event"
            );
        }
        Ok(_) => {}
        Err(error) => {
            // Revoked access, or still failing: the next poll reads the order again.
            tracing::warn!(merchant_id = job.merchant_id, document = %job.document_number, %error, "Fortnox order from a real-time event not handled; the next poll tries again");
            ctx.store
                .set_integration_error(
                    job.merchant_id,
                    &format!(
                        "Fortnox order {} could not be read after a real-time event: {error}",
                        job.document_number
                    ),
                )
                .await?;
        }
    }
    Ok(())
}
