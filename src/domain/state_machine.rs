//! The order state machine of docs/rules.md.
//!
//! ```text
//! IMPORTED ──► VALIDATED ──► SENT ──► SHIPPED ──► INVOICED
//!     │          ▲   │
//!     ▼          │   ▼
//!     RESERVED ──┘ ◄─┘
//! ```
//! plus CANCELLED from IMPORTED, VALIDATED, RESERVED and SENT.

pub use entity::{OrderState, UnknownState};

use OrderState::*;

/// Every allowed transition and when it happens, in the order of the diagram.
pub const TRANSITIONS: &[(OrderState, OrderState, &str)] = &[
    (Imported, Validated, "every check passes"),
    (Imported, Reserved, "a check fails"),
    (
        Reserved,
        Validated,
        "revalidation passes after the cause was fixed",
    ),
    (Validated, Sent, "the warehouse accepted the order"),
    (Validated, Reserved, "the warehouse refused the order"),
    (Sent, Shipped, "the warehouse confirmed the shipment"),
    (
        Shipped,
        Invoiced,
        "delivered quantities written back and the invoice created",
    ),
    (
        Imported,
        Cancelled,
        "cancelled in Fortnox, or by the merchant or an admin",
    ),
    (
        Validated,
        Cancelled,
        "cancelled in Fortnox, or by the merchant or an admin",
    ),
    (
        Reserved,
        Cancelled,
        "cancelled in Fortnox, or by the merchant or an admin",
    ),
    (
        Sent,
        Cancelled,
        "the warehouse cancelled it before shipping",
    ),
];

/// The durable job a state needs, if any. States without a job wait for a person or the
/// warehouse (RESERVED, SENT) or are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// IMPORTED: run the checks.
    ValidateOrder,
    /// VALIDATED: hand the order to the warehouse.
    SendToWarehouse,
    /// SHIPPED: write delivered quantities back to Fortnox and create the invoice.
    InvoiceOrder,
}

impl JobKind {
    /// The states in which this job has work to do: the state it is queued for, and for
    /// validation also RESERVED (`revalidateOrder`, or a fix elsewhere re-checks it). A job
    /// that finds its order in any other state has nothing to do (a stale or duplicate task).
    pub fn runs_in(self, state: OrderState) -> bool {
        self.runs_in_states().contains(&state)
    }

    /// The states of [`Self::runs_in`], as a list (what a claim filters on).
    pub fn runs_in_states(self) -> &'static [OrderState] {
        match self {
            JobKind::ValidateOrder => &[Imported, Reserved],
            JobKind::SendToWarehouse => &[Validated],
            JobKind::InvoiceOrder => &[Shipped],
        }
    }
}

impl JobKind {
    /// The job queued when an order enters `state`, if that state has work to do.
    pub fn queued_in(state: OrderState) -> Option<JobKind> {
        match state {
            Imported => Some(JobKind::ValidateOrder),
            Validated => Some(JobKind::SendToWarehouse),
            Shipped => Some(JobKind::InvoiceOrder),
            Reserved | Sent | Invoiced | Cancelled => None,
        }
    }
}

/// States whose job the reconciler makes sure is queued.
pub fn actionable_states() -> impl Iterator<Item = OrderState> {
    OrderState::ALL
        .into_iter()
        .filter(|s| JobKind::queued_in(*s).is_some())
}

/// Why a change of state was refused. The messages are shown to API users as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionRefused {
    #[error("the order is already {0}")]
    SameState(OrderState),
    #[error("the order is {0}, which is final; no further change is possible")]
    FinalState(OrderState),
    #[error("an order cannot go from {from} to {to}; allowed from {from}: {allowed}")]
    NotAllowed {
        from: OrderState,
        to: OrderState,
        allowed: String,
    },
}

/// Checks one change against the table. A forced change (admins only) may go to any
/// other state, even out of a final one: that is what forcing is for.
pub fn check_transition(
    from: OrderState,
    to: OrderState,
    forced: bool,
) -> Result<(), TransitionRefused> {
    if from == to {
        return Err(TransitionRefused::SameState(from));
    }
    if forced {
        return Ok(());
    }
    if from.is_final() {
        return Err(TransitionRefused::FinalState(from));
    }
    if TRANSITIONS.iter().any(|(f, t, _)| *f == from && *t == to) {
        return Ok(());
    }
    let allowed: Vec<&str> = allowed_from(from).map(OrderState::as_str).collect();
    Err(TransitionRefused::NotAllowed {
        from,
        to,
        allowed: allowed.join(", "),
    })
}

pub fn allowed_from(from: OrderState) -> impl Iterator<Item = OrderState> {
    TRANSITIONS
        .iter()
        .filter(move |(f, _, _)| *f == from)
        .map(|(_, t, _)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_transition_is_allowed() {
        for (from, to, _) in TRANSITIONS {
            assert_eq!(
                check_transition(*from, *to, false),
                Ok(()),
                "{from} -> {to}"
            );
        }
    }

    #[test]
    fn every_unlisted_transition_is_refused_with_a_reason() {
        for from in OrderState::ALL {
            for to in OrderState::ALL {
                let listed = TRANSITIONS.iter().any(|(f, t, _)| *f == from && *t == to);
                if !listed {
                    let refused = check_transition(from, to, false).expect_err("must be refused");
                    assert!(!refused.to_string().is_empty());
                }
            }
        }
    }

    #[test]
    fn diagram_has_eleven_arrows() {
        assert_eq!(TRANSITIONS.len(), 11);
    }

    #[test]
    fn final_states_refuse_everything_but_forcing() {
        assert_eq!(
            check_transition(Invoiced, Shipped, false),
            Err(TransitionRefused::FinalState(Invoiced))
        );
        assert_eq!(check_transition(Invoiced, Shipped, true), Ok(()));
        assert_eq!(check_transition(Cancelled, Imported, true), Ok(()));
    }

    #[test]
    fn forcing_to_the_same_state_is_refused() {
        assert_eq!(
            check_transition(Sent, Sent, true),
            Err(TransitionRefused::SameState(Sent))
        );
    }

    #[test]
    fn not_allowed_names_the_alternatives() {
        let refused = check_transition(Imported, Shipped, false).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "an order cannot go from IMPORTED to SHIPPED; allowed from IMPORTED: VALIDATED, RESERVED, CANCELLED"
        );
    }

    #[test]
    fn jobs_follow_the_states_that_need_them() {
        assert_eq!(JobKind::queued_in(Imported), Some(JobKind::ValidateOrder));
        assert_eq!(
            JobKind::queued_in(Validated),
            Some(JobKind::SendToWarehouse)
        );
        assert_eq!(JobKind::queued_in(Shipped), Some(JobKind::InvoiceOrder));
        assert_eq!(JobKind::queued_in(Reserved), None);
        assert_eq!(JobKind::queued_in(Sent), None);
        assert_eq!(actionable_states().count(), 3);
    }

    #[test]
    fn every_state_runs_the_job_it_queues() {
        for state in OrderState::ALL {
            if let Some(kind) = JobKind::queued_in(state) {
                assert!(kind.runs_in(state), "{kind:?} in {state}");
            }
        }
        assert!(JobKind::ValidateOrder.runs_in(Reserved));
        assert!(!JobKind::InvoiceOrder.runs_in(Sent));
    }
}
