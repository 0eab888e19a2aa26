//! What a job step decides, and the check a step makes before each external effect. Apart
//! from the dispatcher (`dispatch.rs`), which runs the steps, so that the steps depend on
//! this file and not on the dispatcher.
use super::{JobContext, JobError};
use crate::store::leases::Lease;
use crate::store::transitions::TransitionRequest;

/// What a job step decided.
// One outcome per job attempt, dropped at once: boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum StepOutcome {
    /// Change the order's state; what the request carries (check results, references,
    /// the invoice number) is saved in the same transaction.
    Transition(TransitionRequest),
    /// A RESERVED order checked again and still failing, for these reasons.
    StillReserved { reasons: Vec<String> },
    /// Nothing (left) to do.
    Done,
}

/// Stops the step unless the job still holds the order's lease: called before each
/// external effect. A lost lease means another job has the order; this task comes back
/// later and finds the order moved on (or waits its turn).
pub(super) async fn ensure_held(ctx: &JobContext, lease: &Lease) -> Result<(), JobError> {
    if ctx.store.ensure_held(lease).await? {
        Ok(())
    } else {
        tracing::warn!(
            order_id = lease.order_id,
            "lease lost before an external effect; stopping without it"
        );
        Err(JobError::Busy(None))
    }
}
