//! Use cases on one order: forcing a state, cancelling, checking a RESERVED order again,
//! the warehouse's shipment report, and running the current state's job again.

use entity::{merchant, order};

use super::{validate_task, Result, ServiceError, Services};
use crate::auth::{Principal, Role};
use crate::domain::cancel::{check_cancel, Canceller};
use crate::domain::shipment::{shipped_quantities, Pick, Shipped};
use crate::domain::{OrderState, Quantity};
use crate::jobs::enqueue_state_job;
use crate::store::jobs_table;
use crate::store::transitions::{apply_transition, TransitionRequest};

/// An admin's move of an order to any state.
#[derive(Clone, Debug)]
pub struct ForceState {
    pub order_id: i64,
    pub state: OrderState,
    /// Why; required, and kept with the change.
    pub reason: String,
    /// When given, the change is refused if the order moved meanwhile.
    pub expected_state: Option<OrderState>,
}

/// A shipment the warehouse reports.
#[derive(Clone, Debug)]
pub struct ShipmentReport {
    pub order_id: i64,
    pub tracking_numbers: Vec<String>,
    pub lines: Vec<ShippedLine>,
}

/// One shipped line as reported: our line id as given (text), and a decimal quantity.
#[derive(Clone, Debug)]
pub struct ShippedLine {
    pub line_id: String,
    pub quantity: String,
}

impl Services {
    /// Creates a merchant (admins only, by the API's guard).
    pub async fn create_merchant(&self, name: &str) -> Result<merchant::Model> {
        let name = name.trim();
        if name.is_empty() {
            return Err(ServiceError::InvalidInput(
                "name must not be empty: give the merchant's name".into(),
            ));
        }
        Ok(self.store.create_merchant(name).await?)
    }

    /// An order in the actor's scope; another tenant's order is "not found".
    pub async fn order_in_scope(&self, actor: &Principal, order_id: i64) -> Result<order::Model> {
        self.store
            .order(&actor.scope, order_id)
            .await?
            .ok_or(ServiceError::NotFound("order"))
    }

    /// Moves an order to any state, recorded as forced with the reason.
    pub async fn force_order_state(
        &self,
        actor: &Principal,
        input: ForceState,
    ) -> Result<order::Model> {
        let reason = input.reason.trim();
        if reason.is_empty() {
            return Err(ServiceError::InvalidInput(
                "a reason is required to force a state: say why, it is kept with the change".into(),
            ));
        }
        let mut request = TransitionRequest::new(
            input.order_id,
            input.expected_state,
            input.state,
            "admin_forced",
            &actor.actor(),
        )
        .message(reason);
        request.forced = true;
        if input.state == OrderState::Reserved {
            request.reasons = vec![format!("Forced to RESERVED by an admin: {reason}")];
        }
        apply_transition(&self.store, request).await?;
        self.order_in_scope(actor, input.order_id).await
    }

    /// Cancels an order, if the actor may in its state (`domain::cancel`).
    pub async fn cancel_order(
        &self,
        actor: &Principal,
        order_id: i64,
        reason: Option<String>,
    ) -> Result<order::Model> {
        let state = self.order_in_scope(actor, order_id).await?.state;
        let by = match actor.role {
            Role::Warehouse => Canceller::Warehouse,
            _ => Canceller::Owner,
        };
        check_cancel(by, state)?;
        let mut request = TransitionRequest::new(
            order_id,
            Some(state),
            OrderState::Cancelled,
            "cancelled_by_user",
            &actor.actor(),
        );
        request.message = reason;
        apply_transition(&self.store, request).await?;
        self.order_in_scope(actor, order_id).await
    }

    /// Queues a check of a RESERVED order; returns the order as it was before the check.
    pub async fn revalidate_order(&self, actor: &Principal, order_id: i64) -> Result<order::Model> {
        let order = self.order_in_scope(actor, order_id).await?;
        let state = order.state;
        if state != OrderState::Reserved {
            return Err(ServiceError::TransitionRefused(format!(
                "only RESERVED orders are revalidated; this one is {state}"
            )));
        }
        jobs_table::push(&self.store.pool, vec![validate_task(order_id)?]).await?;
        Ok(order)
    }

    /// The warehouse's shipment report: the order becomes SHIPPED with the quantities
    /// shipped per line. A repeated report (say, after a lost response) of an order already
    /// SHIPPED or INVOICED is answered with the order, not refused.
    pub async fn confirm_shipment(
        &self,
        actor: &Principal,
        report: ShipmentReport,
    ) -> Result<order::Model> {
        let id = report.order_id;
        let order = self.order_in_scope(actor, id).await?;
        let state = order.state;
        if matches!(state, OrderState::Shipped | OrderState::Invoiced) {
            return Ok(order);
        }
        let picks = self.picks(id).await?;
        let reported = parse_shipped_lines(report.lines)?;
        let shipped = shipped_quantities(&picks, &reported).map_err(ServiceError::InvalidInput)?;
        let mut request = TransitionRequest::new(
            id,
            Some(state),
            OrderState::Shipped,
            "warehouse_shipped",
            &actor.actor(),
        );
        request.tracking_numbers = Some(clean_tracking_numbers(report.tracking_numbers));
        request.shipped_quantities = shipped
            .into_iter()
            .map(|(line, quantity)| (line, quantity.normalize().to_string()))
            .collect();
        apply_transition(&self.store, request).await?;
        self.order_in_scope(actor, id).await
    }

    /// Runs the job of the order's current state again, e.g. after its cause was fixed;
    /// refused when the state has no job (it waits for a person or the warehouse, or is final).
    pub async fn retry_order(&self, actor: &Principal, order_id: i64) -> Result<order::Model> {
        let state = self.order_in_scope(actor, order_id).await?.state;
        self.store.clear_stall(order_id, &actor.actor()).await?;
        if !enqueue_state_job(&self.store, order_id, state).await? {
            return Err(ServiceError::TransitionRefused(format!(
                "an order in {state} has nothing to retry: it waits for a person or the warehouse, or is final"
            )));
        }
        self.order_in_scope(actor, order_id).await
    }

    /// The lines the warehouse was asked to pick (a positive pick quantity).
    async fn picks(&self, order_id: i64) -> Result<Vec<Pick>> {
        Ok(self
            .store
            .order_lines(order_id)
            .await?
            .into_iter()
            .filter_map(|line| {
                let quantity = Quantity::parse(line.pick_quantity.as_deref()?).ok()?;
                quantity.is_positive().then_some(Pick {
                    line_id: line.id,
                    quantity: quantity.value(),
                })
            })
            .collect())
    }
}

/// Line ids are ours, so one that is no number cannot be a line of the order.
fn parse_shipped_lines(lines: Vec<ShippedLine>) -> Result<Vec<Shipped>> {
    lines
        .into_iter()
        .map(|line| {
            let line_id = line.line_id.parse::<i64>().map_err(|_| {
                ServiceError::InvalidInput(format!(
                    "line {} is not a line of this order",
                    line.line_id
                ))
            })?;
            Ok(Shipped {
                line_id,
                quantity: line.quantity,
            })
        })
        .collect()
}

/// Tracking numbers trimmed, blank ones dropped.
fn clean_tracking_numbers(numbers: Vec<String>) -> Vec<String> {
    numbers
        .into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_line_ids_must_be_ours() {
        let lines = vec![
            ShippedLine {
                line_id: "7".into(),
                quantity: "1".into(),
            },
            ShippedLine {
                line_id: "L-1".into(),
                quantity: "1".into(),
            },
        ];
        let error = parse_shipped_lines(lines).unwrap_err().to_string();
        assert_eq!(error, "line L-1 is not a line of this order");
        assert_eq!(
            clean_tracking_numbers(vec![" T1 ".into(), "  ".into()]),
            vec!["T1".to_owned()]
        );
    }
}
