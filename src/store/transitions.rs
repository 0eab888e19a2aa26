//! The one function that changes an order's state.
//!
//! In one transaction: read the current state, check the table, compare-and-set
//! (`UPDATE ... WHERE state = <current>`), append the event, and insert the job the new
//! state needs. Subscribers are told after commit. Nothing else writes `orders.state`.
use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::jobs_table::{self, OrderJob, QueuedTask};
use super::{numbered_placeholders, Pool, Store, StoreError};
use crate::domain::state_machine::check_transition;
use crate::domain::{OrderState, TransitionRefused};
use crate::events::{EventBus, OrderStateChanged};

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

const SELECT_STATE: &str = "SELECT state, merchant_id FROM orders WHERE id = ?";
const UPDATE_STATE: &str = "UPDATE orders SET state = ?, reasons = ?, \
    warehouse_reference = COALESCE(?, warehouse_reference), \
    tracking_numbers = COALESCE(?, tracking_numbers), \
    invoice_number = COALESCE(?, invoice_number), \
    stalled_at = NULL, last_error = NULL, updated_at = ? \
    WHERE id = ? AND state = ?";
/// PostgreSQL: tell every process (see `events::listen_postgres`); the payload is the event
/// id, since NOTIFY payloads are small and the event row has everything.
const NOTIFY: &str = "SELECT pg_notify('order_state_changed', $1)";
const UPDATE_SHIPPED: &str =
    "UPDATE order_lines SET shipped_quantity = ? WHERE id = ? AND order_id = ?";
const INSERT_EVENT: &str = "INSERT INTO order_events \
    (order_id, merchant_id, kind, from_state, to_state, cause, actor, message, forced, created_at) \
    VALUES (?, ?, 'TRANSITION', ?, ?, ?, ?, ?, ?, ?) RETURNING id";

/// Runs the same statements on either backend's transaction.
macro_rules! transition_in_tx {
    ($tx:expr, $req:expr, $now:expr, $sql:expr, $push:path, $notify:expr) => {{
        let tx = $tx;
        let req: &TransitionRequest = $req;
        let row: Option<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe($sql(SELECT_STATE)))
            .bind(req.order_id)
            .fetch_optional(&mut *tx)
            .await?;
        let (current, merchant_id) = row.ok_or(TransitionError::NotFound)?;
        let current: OrderState =
            current
                .parse()
                .map_err(|e: crate::domain::state_machine::UnknownState| {
                    StoreError::Corrupt(e.to_string())
                })?;
        if let Some(expected) = req.expected {
            if expected != current {
                return Err(TransitionError::Conflict {
                    expected,
                    actual: Some(current),
                });
            }
        }
        check_transition(current, req.to, req.forced)?;
        let updated = sqlx::query(sqlx::AssertSqlSafe($sql(UPDATE_STATE)))
            .bind(req.to.as_str())
            .bind(Json(&req.reasons))
            .bind(req.warehouse_reference.as_deref())
            .bind(req.tracking_numbers.as_ref().map(Json))
            .bind(req.invoice_number.as_deref())
            .bind($now)
            .bind(req.order_id)
            .bind(current.as_str())
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() != 1 {
            // Someone else committed a change between our read and our write.
            return Err(TransitionError::Conflict {
                expected: current,
                actual: None,
            });
        }
        for (line_id, quantity) in &req.shipped_quantities {
            sqlx::query(sqlx::AssertSqlSafe($sql(UPDATE_SHIPPED)))
                .bind(quantity)
                .bind(line_id)
                .bind(req.order_id)
                .execute(&mut *tx)
                .await?;
        }
        let event_id: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe($sql(INSERT_EVENT)))
            .bind(req.order_id)
            .bind(merchant_id)
            .bind(current.as_str())
            .bind(req.to.as_str())
            .bind(&req.cause)
            .bind(&req.actor)
            .bind(req.message.as_deref())
            .bind(req.forced)
            .bind($now)
            .fetch_one(&mut *tx)
            .await?;
        $push(&mut *tx, jobs_for(req.order_id, req.to)?).await?;
        if let Some(notify) = $notify {
            // Delivered to every process's listener when (and only if) this commits.
            sqlx::query(notify)
                .bind(event_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        (current, merchant_id, event_id)
    }};
}

fn jobs_for(order_id: i64, state: OrderState) -> Result<Vec<QueuedTask>, StoreError> {
    match state.job() {
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

fn same_sql(sql: &str) -> String {
    sql.to_owned()
}

pub async fn apply_transition(
    store: &Store,
    bus: &EventBus,
    req: TransitionRequest,
) -> Result<OrderStateChanged, TransitionError> {
    let now: DateTime<Utc> = Utc::now();
    let (from, merchant_id, event_id) = match &store.pool {
        Pool::Sqlite(pool) => {
            // IMMEDIATE takes the write lock up front: two racing transitions then run one
            // after the other and the second sees the first's state (a clean conflict),
            // instead of failing with SQLITE_BUSY when upgrading a read lock.
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let result = transition_in_tx!(
                &mut *tx,
                &req,
                now,
                same_sql,
                jobs_table::push_sqlite,
                None::<&'static str>
            );
            tx.commit().await?;
            result
        }
        Pool::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            let result = transition_in_tx!(
                &mut *tx,
                &req,
                now,
                numbered_placeholders,
                jobs_table::push_postgres,
                Some(NOTIFY)
            );
            tx.commit().await?;
            result
        }
    };
    let event = OrderStateChanged {
        event_id,
        order_id: req.order_id,
        merchant_id,
        from,
        to: req.to,
        cause: req.cause,
        actor: req.actor,
        message: req.message,
        forced: req.forced,
        at: now,
    };
    tracing::info!(order_id = event.order_id, from = %event.from, to = %event.to, cause = %event.cause, actor = %event.actor, forced = event.forced, "order state changed");
    if !store.is_postgres() {
        // On PostgreSQL the listener publishes it, in this process and every other.
        bus.publish(event.clone());
    }
    Ok(event)
}
