//! The one function that changes an order's state.
//!
//! In one transaction (`store::write`): check the table against the state the change is
//! based on (the caller's expected state, or the one read now when it names none),
//! compare-and-set (`UPDATE ... WHERE state = <that state> RETURNING`), save what it carries
//! (check results, shipped quantities), append the event, and insert the job the new state
//! needs. Subscribers read it from the event log after commit. Nothing else writes `orders.state` (the import
//! writes the first one, IMPORTED, when it creates the order).
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::jobs_table::{self, OrderJob, QueuedTask};
use super::pipeline::CheckResults;
use super::write::{on_tx, EventKind, EventPayload, NewEvent, WriteTx};
use super::{Store, StoreError};
use crate::domain::state_machine::check_transition;
use crate::domain::{JobKind, OrderState, TransitionRefused};

#[derive(Clone, Debug)]
pub struct TransitionRequest {
    pub order_id: i64,
    /// The state the caller based its decision on. Jobs always set it, so that of two
    /// racing changes the second sees a conflict instead of stacking on the first.
    pub expected: Option<OrderState>,
    pub to: OrderState,
    /// Machine-readable cause, e.g. `checks_passed`, `admin_forced`.
    pub cause: String,
    /// Who asked: `system:<job>`, `admin:<sub>`, `merchant:<sub>`, `warehouse:<sub>`.
    pub actor: String,
    pub message: Option<String>,
    pub forced: bool,
    /// Replaces the order's reasons (RESERVED keeps them; other states clear them).
    pub reasons: Vec<String>,
    pub warehouse_reference: Option<String>,
    pub tracking_numbers: Option<Vec<String>>,
    pub invoice_number: Option<String>,
    /// (order line id, quantity) shipped, written with the SHIPPED transition.
    pub shipped_quantities: Vec<(i64, String)>,
    /// What the checks decided, saved with the VALIDATED transition.
    pub check_results: Option<CheckResults>,
    /// The lease token of the job making this change: the lease is released in the same
    /// write, so the job the new state queues can take the order at once instead of
    /// waiting for a lease its predecessor no longer needs.
    pub lease_token: Option<String>,
    /// The merchant's catalogue version the checks read before reserving the order. If a
    /// product or rule was saved since, the order is checked again at once: the re-check
    /// that change queued covered only orders already RESERVED, which this one was not yet.
    pub catalog_version_seen: Option<i64>,
}

impl TransitionRequest {
    pub fn new(
        order_id: i64,
        expected: Option<OrderState>,
        to: OrderState,
        cause: &str,
        actor: &str,
    ) -> Self {
        TransitionRequest {
            order_id,
            expected,
            to,
            cause: cause.to_owned(),
            actor: actor.to_owned(),
            message: None,
            forced: false,
            reasons: Vec::new(),
            warehouse_reference: None,
            tracking_numbers: None,
            invoice_number: None,
            shipped_quantities: Vec::new(),
            check_results: None,
            lease_token: None,
            catalog_version_seen: None,
        }
    }

    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransitionError {
    #[error("order not found")]
    NotFound,
    #[error(transparent)]
    Refused(#[from] TransitionRefused),
    /// Another change won the race; `actual` is the state found, when it was read.
    #[error("the order changed meanwhile (this change expected it to be {expected}); reload the order and try again")]
    Conflict {
        expected: OrderState,
        actual: Option<OrderState>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TransitionError {
    fn from(e: sqlx::Error) -> Self {
        TransitionError::Store(StoreError::Sqlx(e))
    }
}

const SELECT_STATE: &str = "SELECT state FROM orders WHERE id = ?";
/// The compare-and-set, releasing the job's lease and saving what the checks decided (when
/// the request carries check results) in the same write.
const UPDATE_STATE: &str = "UPDATE orders SET state = ?, reasons = ?, \
    warehouse_reference = COALESCE(?, warehouse_reference), \
    tracking_numbers = COALESCE(?, tracking_numbers), \
    invoice_number = COALESCE(?, invoice_number), \
    stalled_at = NULL, last_error = NULL, updated_at = ?, \
    lease_until = CASE WHEN lease_token = ? THEN NULL ELSE lease_until END, \
    lease_token = CASE WHEN lease_token = ? THEN NULL ELSE lease_token END, \
    shipping_method_id = CASE WHEN ? THEN ? ELSE shipping_method_id END, \
    delivery_address = CASE WHEN ? THEN ? ELSE delivery_address END \
    WHERE id = ? AND state = ? RETURNING merchant_id";

fn jobs_for(order_id: i64, state: OrderState) -> Result<Vec<QueuedTask>, StoreError> {
    match JobKind::queued_in(state) {
        Some(kind) => Ok(vec![jobs_table::order_task(
            kind,
            &OrderJob {
                order_id,
                attempt: 0,
            },
            None,
        )?]),
        None => Ok(Vec::new()),
    }
}

/// What a transition changed.
#[derive(Clone, Copy, Debug)]
pub struct Applied {
    pub from: OrderState,
    pub merchant_id: i64,
    /// The TRANSITION event's id.
    pub event_id: i64,
}

impl WriteTx {
    /// Sets `column` of an order's lines in one statement, each line found by `key` (a
    /// column) to its value, and every line not listed to `otherwise` (an SQL expression):
    /// `UPDATE order_lines SET <column> = CASE <key> WHEN ? THEN ? ... ELSE <otherwise> END
    /// WHERE order_id = ?`. One round trip instead of one per line.
    async fn set_per_line(
        &mut self,
        order_id: i64,
        column: &str,
        key: &str,
        values: &[(i64, &str)],
        otherwise: &str,
    ) -> Result<(), StoreError> {
        let sql_text = if values.is_empty() {
            format!("UPDATE order_lines SET {column} = {otherwise} WHERE order_id = ?")
        } else {
            let whens = " WHEN ? THEN ?".repeat(values.len());
            format!(
                "UPDATE order_lines SET {column} = CASE {key}{whens} ELSE {otherwise} END WHERE order_id = ?"
            )
        };
        on_tx!(self, |conn, sql| {
            let mut query = sqlx::query(sql(&sql_text));
            for (key_value, value) in values {
                query = query.bind(*key_value).bind(*value);
            }
            query.bind(order_id).execute(conn).await?.rows_affected()
        });
        Ok(())
    }

    /// The state change, inside the caller's transaction: check the table, compare-and-set,
    /// save what comes with it (check results, shipped quantities), append the event and
    /// queue the job the new state needs.
    async fn transition(
        &mut self,
        req: &TransitionRequest,
        now: DateTime<Utc>,
    ) -> Result<Applied, TransitionError> {
        // Jobs name the state they decided on: the compare-and-set alone tells whether it
        // still holds. Only a change without one (rare) reads the state first.
        let current = match req.expected {
            Some(expected) => expected,
            None => self.current_state(req.order_id).await?,
        };
        check_transition(current, req.to, req.forced)?;
        let checks = req.check_results.as_ref();
        let merchant_id: Option<i64> = on_tx!(self, |conn, sql| {
            sqlx::query_scalar(sql(UPDATE_STATE))
                .bind(req.to.as_str())
                .bind(Json(&req.reasons))
                .bind(req.warehouse_reference.as_deref())
                .bind(req.tracking_numbers.as_ref().map(Json))
                .bind(req.invoice_number.as_deref())
                .bind(now)
                // Both CASEs compare the token as it was before this write.
                .bind(req.lease_token.as_deref())
                .bind(req.lease_token.as_deref())
                .bind(checks.is_some())
                .bind(checks.and_then(|c| c.shipping_method_id))
                .bind(checks.is_some())
                .bind(checks.map(|c| Json(&c.delivery_address)))
                .bind(req.order_id)
                .bind(current.as_str())
                .fetch_optional(conn)
                .await?
        });
        let Some(merchant_id) = merchant_id else {
            // Someone else changed the order first (or it is gone).
            let actual = self.current_state(req.order_id).await?;
            return Err(TransitionError::Conflict {
                expected: current,
                actual: Some(actual),
            });
        };
        if !req.shipped_quantities.is_empty() {
            let quantities: Vec<(i64, &str)> = req
                .shipped_quantities
                .iter()
                .map(|(line_id, quantity)| (*line_id, quantity.as_str()))
                .collect();
            self.set_per_line(
                req.order_id,
                "shipped_quantity",
                "id",
                &quantities,
                "shipped_quantity",
            )
            .await?;
        }
        if let Some(results) = checks {
            // Lines not listed are not shipped: their pick is cleared in the same write.
            let picks: Vec<(i64, &str)> = results
                .picks
                .iter()
                .map(|(position, quantity)| (i64::from(*position), quantity.as_str()))
                .collect();
            self.set_per_line(req.order_id, "pick_quantity", "position", &picks, "NULL")
                .await?;
        }
        let entered_reserved = req.to == OrderState::Reserved && !req.reasons.is_empty();
        let event = NewEvent {
            order_id: req.order_id,
            merchant_id,
            kind: EventKind::Transition,
            from_state: Some(current),
            to_state: Some(req.to),
            cause: &req.cause,
            actor: &req.actor,
            message: req.message.as_deref(),
            forced: req.forced,
            at: now,
            payload: entered_reserved.then(|| EventPayload {
                reasons: Some(req.reasons.clone()),
                ..EventPayload::default()
            }),
        };
        let event_id = self.insert_event(&event).await?;
        // What the change carries that partners follow on its own.
        let same_state = |kind, message: &'static str, payload| NewEvent {
            kind,
            from_state: Some(req.to),
            message: Some(message),
            forced: false,
            payload: Some(payload),
            ..event.clone()
        };
        if let Some(numbers) = req.tracking_numbers.as_ref().filter(|n| !n.is_empty()) {
            self.insert_event(&same_state(
                EventKind::TrackingNumbers,
                "the warehouse reported tracking numbers",
                EventPayload {
                    tracking_numbers: Some(numbers.clone()),
                    ..EventPayload::default()
                },
            ))
            .await?;
        }
        if let Some(invoice_number) = &req.invoice_number {
            self.insert_event(&same_state(
                EventKind::InvoiceCreated,
                "the invoice was created in Fortnox",
                EventPayload {
                    invoice_number: Some(invoice_number.clone()),
                    ..EventPayload::default()
                },
            ))
            .await?;
        }
        let mut jobs = jobs_for(req.order_id, req.to)?;
        if let Some(seen) = req
            .catalog_version_seen
            .filter(|_| req.to == OrderState::Reserved)
        {
            let now_version = self.catalog_version_locked(merchant_id).await?;
            if now_version != seen {
                tracing::info!(
                    order_id = req.order_id,
                    seen,
                    now_version,
                    "the catalogue changed while the order was checked: checking it again"
                );
                jobs.push(jobs_table::order_task(
                    JobKind::ValidateOrder,
                    &OrderJob {
                        order_id: req.order_id,
                        attempt: 0,
                    },
                    None,
                )?);
            }
        }
        self.push_jobs(jobs).await?;
        Ok(Applied {
            from: current,
            merchant_id,
            event_id,
        })
    }

    /// The merchant's catalogue version, read so that a catalogue change cannot commit
    /// between this read and this transaction's commit: on PostgreSQL the row is share
    /// locked (the change's bump waits for this commit, and its re-check of RESERVED
    /// orders then sees this one); SQLite's write transactions run one at a time.
    async fn catalog_version_locked(&mut self, merchant_id: i64) -> Result<i64, StoreError> {
        let lock = if self.is_postgres() { " FOR SHARE" } else { "" };
        let version: Option<i64> = on_tx!(self, |conn, sql| {
            sqlx::query_scalar(sql(&format!(
                "SELECT catalog_version FROM merchants WHERE id = ?{lock}"
            )))
            .bind(merchant_id)
            .fetch_optional(conn)
            .await?
        });
        Ok(version.unwrap_or(0))
    }

    /// The order's state now, inside the transaction.
    async fn current_state(&mut self, order_id: i64) -> Result<OrderState, TransitionError> {
        let state: Option<String> = on_tx!(self, |conn, sql| {
            sqlx::query_scalar(sql(SELECT_STATE))
                .bind(order_id)
                .fetch_optional(conn)
                .await?
        });
        let state = state.ok_or(TransitionError::NotFound)?;
        Ok(state
            .parse()
            .map_err(|e: crate::domain::state_machine::UnknownState| {
                StoreError::Corrupt(e.to_string())
            })?)
    }
}

/// Changes the order's state in a transaction of its own. Subscribers learn of it from the
/// event log once it has committed (see `events`).
pub async fn apply_transition(
    store: &Store,
    req: TransitionRequest,
) -> Result<Applied, TransitionError> {
    let now: DateTime<Utc> = Utc::now();
    let mut tx = store.begin_tx().await?;
    let applied = tx.transition(&req, now).await?;
    tx.commit().await?;
    tracing::info!(order_id = req.order_id, from = %applied.from, to = %req.to, cause = %req.cause, actor = %req.actor, forced = req.forced, "order state changed");
    Ok(applied)
}
