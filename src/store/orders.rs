//! Reads and non-state writes of orders, merchants and their events (sea-orm).
use chrono::Utc;
use entity::{merchant, order, order_event, order_line, shipping_method};
use sea_orm::prelude::*;
use sea_orm::{
    ActiveValue::Set, Condition, DatabaseTransaction, QueryOrder, QuerySelect,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use serde_json::json;

use super::jobs_table::{self, OrderJob};
use super::write::{on_tx, EventKind, NewEvent, WriteTx};
use super::{Store, StoreError};
use crate::domain::{JobKind, OrderState};

const INSERT_ORDER: &str = "INSERT INTO orders \
    (merchant_id, fortnox_document_number, state, reasons, delivery_address, way_of_delivery, \
     tracking_numbers, fortnox_snapshot, created_at, updated_at) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT (merchant_id, fortnox_document_number) DO NOTHING RETURNING id";
const INSERT_LINE: &str = "INSERT INTO order_lines \
    (order_id, position, fortnox_row_id, article_number, description, ordered_quantity, created_at) \
    VALUES (?, ?, ?, ?, ?, ?, ?)";

/// Which merchants a caller may see. Built once from the token, applied to every query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantScope {
    All,
    Merchants(Vec<i64>),
}

impl TenantScope {
    pub fn allows(&self, merchant_id: i64) -> bool {
        match self {
            TenantScope::All => true,
            TenantScope::Merchants(ids) => ids.contains(&merchant_id),
        }
    }

    fn condition(&self, column: impl ColumnTrait) -> Condition {
        match self {
            TenantScope::All => Condition::all(),
            TenantScope::Merchants(ids) => Condition::all().add(column.is_in(ids.clone())),
        }
    }
}

/// An order as lists show it: every column but the Fortnox snapshot (about 1.5 KB of JSON
/// per order that no list shows; reading and decoding it for each order of a page was most
/// of a list's cost) and the job bookkeeping (lease, invoice intent).
#[derive(Clone, Debug, PartialEq, DerivePartialModel)]
#[sea_orm(entity = "order::Entity")]
pub struct OrderSummary {
    pub id: i64,
    pub merchant_id: i64,
    pub fortnox_document_number: String,
    pub state: OrderState,
    pub reasons: entity::TextList,
    pub delivery_address: Option<entity::StoredAddress>,
    pub way_of_delivery: Option<String>,
    pub shipping_method_id: Option<i64>,
    pub warehouse_reference: Option<String>,
    pub tracking_numbers: entity::TextList,
    pub invoice_number: Option<String>,
    pub stalled_at: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl From<order::Model> for OrderSummary {
    fn from(o: order::Model) -> OrderSummary {
        OrderSummary {
            id: o.id,
            merchant_id: o.merchant_id,
            fortnox_document_number: o.fortnox_document_number,
            state: o.state,
            reasons: o.reasons,
            delivery_address: o.delivery_address,
            way_of_delivery: o.way_of_delivery,
            shipping_method_id: o.shipping_method_id,
            warehouse_reference: o.warehouse_reference,
            tracking_numbers: o.tracking_numbers,
            invoice_number: o.invoice_number,
            stalled_at: o.stalled_at,
            last_error: o.last_error,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// A new order with its rows, as the importer (or a test fixture) stores it.
#[derive(Clone, Debug)]
pub struct NewOrder {
    pub merchant_id: i64,
    pub fortnox_document_number: String,
    pub way_of_delivery: Option<String>,
    pub delivery_address: Option<serde_json::Value>,
    pub fortnox_snapshot: serde_json::Value,
    pub lines: Vec<NewOrderLine>,
}

#[derive(Clone, Debug)]
pub struct NewOrderLine {
    pub fortnox_row_id: Option<i64>,
    pub article_number: Option<String>,
    pub description: String,
    pub ordered_quantity: String,
}

#[derive(Clone, Debug, Default)]
pub struct OrderFilter {
    pub merchant_id: Option<i64>,
    pub states: Vec<OrderState>,
}

impl Store {
    /// A transaction that will write. On SQLite it takes the write lock at BEGIN, because a
    /// read lock cannot be upgraded while the job workers write (SQLITE_BUSY at once).
    pub async fn begin_write(&self) -> Result<DatabaseTransaction, StoreError> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        Ok(self.db.begin_with_options(options).await?)
    }

    pub async fn create_merchant(&self, name: &str) -> Result<merchant::Model, StoreError> {
        let model = merchant::ActiveModel {
            name: Set(name.to_owned()),
            created_at: Set(Utc::now()),
            ..Default::default()
        };
        Ok(model.insert(&self.db).await?)
    }

    pub async fn merchants(&self, scope: &TenantScope) -> Result<Vec<merchant::Model>, StoreError> {
        Ok(merchant::Entity::find()
            .filter(scope.condition(merchant::Column::Id))
            .order_by_asc(merchant::Column::Id)
            .all(&self.db)
            .await?)
    }

    pub async fn merchant(
        &self,
        scope: &TenantScope,
        id: i64,
    ) -> Result<Option<merchant::Model>, StoreError> {
        if !scope.allows(id) {
            return Ok(None);
        }
        Ok(merchant::Entity::find_by_id(id).one(&self.db).await?)
    }

    /// Stores a new IMPORTED order once, with its lines, its first event and its first job,
    /// in one transaction: a second import of the same Fortnox document returns `None`
    /// (unique per merchant and document number), and a crash leaves either all or nothing.
    pub async fn insert_order(&self, new: NewOrder) -> Result<Option<order::Model>, StoreError> {
        let now = Utc::now();
        let mut tx = self.begin_tx().await?;
        let id: Option<i64> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_scalar(sql(INSERT_ORDER))
                .bind(new.merchant_id)
                .bind(&new.fortnox_document_number)
                .bind(OrderState::Imported.as_str())
                .bind(sqlx::types::Json(json!([])))
                .bind(new.delivery_address.as_ref().map(sqlx::types::Json))
                .bind(new.way_of_delivery.as_deref())
                .bind(sqlx::types::Json(json!([])))
                .bind(sqlx::types::Json(&new.fortnox_snapshot))
                .bind(now)
                .bind(now)
                .fetch_optional(&mut *conn)
                .await?
        });
        // Already imported (by an earlier poll, or by another process just now).
        let Some(id) = id else { return Ok(None) };
        insert_lines(&mut tx, id, &new.lines, now).await?;
        let message = format!("Imported Fortnox order {}", new.fortnox_document_number);
        tx.insert_event(&NewEvent {
            order_id: id,
            merchant_id: new.merchant_id,
            kind: EventKind::Transition,
            from_state: None,
            to_state: Some(OrderState::Imported),
            cause: "imported",
            actor: "system:import",
            message: Some(&message),
            forced: false,
            at: now,
            payload: None,
        })
        .await?;
        if let Some(kind) = JobKind::queued_in(OrderState::Imported) {
            let job = OrderJob {
                order_id: id,
                attempt: 0,
            };
            tx.push_jobs(vec![jobs_table::order_task(kind, &job, None)?])
                .await?;
        }
        tx.commit().await?;
        Ok(order::Entity::find_by_id(id).one(&self.db).await?)
    }

    pub async fn order(
        &self,
        scope: &TenantScope,
        id: i64,
    ) -> Result<Option<order::Model>, StoreError> {
        let found = order::Entity::find_by_id(id).one(&self.db).await?;
        // Another tenant's order is reported exactly like a missing one.
        Ok(found.filter(|o| scope.allows(o.merchant_id)))
    }

    /// A page of orders, newest id first, after the cursor `after_id`.
    pub async fn orders_page(
        &self,
        scope: &TenantScope,
        filter: &OrderFilter,
        after_id: Option<i64>,
        limit: u64,
    ) -> Result<Vec<OrderSummary>, StoreError> {
        let rows = Self::orders_page_query(scope, filter, after_id, limit)
            .into_partial_model::<super::order_page::PageRow>()
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|row| row.0).collect())
    }

    /// The query of [`Store::orders_page`] (public for the benchmark, which runs the same
    /// SQL directly).
    pub fn orders_page_query(
        scope: &TenantScope,
        filter: &OrderFilter,
        after_id: Option<i64>,
        limit: u64,
    ) -> sea_orm::Select<order::Entity> {
        let mut query = order::Entity::find().filter(scope.condition(order::Column::MerchantId));
        if let Some(merchant_id) = filter.merchant_id {
            query = query.filter(order::Column::MerchantId.eq(merchant_id));
        }
        if !filter.states.is_empty() {
            query = query.filter(order::Column::State.is_in(filter.states.iter().copied()));
        }
        if let Some(after) = after_id {
            query = query.filter(order::Column::Id.lt(after));
        }
        query.order_by_desc(order::Column::Id).limit(limit)
    }

    pub async fn order_lines(&self, order_id: i64) -> Result<Vec<order_line::Model>, StoreError> {
        Ok(order_line::Entity::find()
            .filter(order_line::Column::OrderId.eq(order_id))
            .order_by_asc(order_line::Column::Position)
            .all(&self.db)
            .await?)
    }

    /// The lines of several orders, each order's in position order.
    pub async fn lines_of_orders(
        &self,
        order_ids: &[i64],
    ) -> Result<Vec<order_line::Model>, StoreError> {
        Ok(order_line::Entity::find()
            .filter(order_line::Column::OrderId.is_in(order_ids.iter().copied()))
            .order_by_asc(order_line::Column::OrderId)
            .order_by_asc(order_line::Column::Position)
            .all(&self.db)
            .await?)
    }

    /// The events of several orders, each order's oldest first.
    pub async fn events_of_orders(
        &self,
        order_ids: &[i64],
    ) -> Result<Vec<order_event::Model>, StoreError> {
        Ok(order_event::Entity::find()
            .filter(order_event::Column::OrderId.is_in(order_ids.iter().copied()))
            .order_by_asc(order_event::Column::TxPosition)
            .order_by_asc(order_event::Column::Id)
            .all(&self.db)
            .await?)
    }

    pub async fn order_events(&self, order_id: i64) -> Result<Vec<order_event::Model>, StoreError> {
        Ok(order_event::Entity::find()
            .filter(order_event::Column::OrderId.eq(order_id))
            .order_by_asc(order_event::Column::TxPosition)
            .order_by_asc(order_event::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// Appends an ERROR event; with `stall`, the order is also marked as needing a person
    /// (the reconciler leaves it alone until `retryOrder`).
    pub async fn record_order_error(
        &self,
        order_id: i64,
        cause: &str,
        actor: &str,
        message: &str,
        stall: bool,
    ) -> Result<(), StoreError> {
        self.record_order_event(order_id, EventKind::Error, cause, actor, message, stall)
            .await
    }

    /// An event that does not change the order's state: an ERROR (kept as `last_error`,
    /// and with `stall`, the order waits for `retryOrder`) or an INFO.
    pub async fn record_order_event(
        &self,
        order_id: i64,
        kind: EventKind,
        cause: &str,
        actor: &str,
        message: &str,
        stall: bool,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        tx.record_order_event(order_id, kind, cause, actor, message, stall)
            .await?;
        tx.commit().await
    }

    /// Takes a stalled order up again: clears the stall and records RESUMED. Nothing
    /// happens to an order that is not stalled.
    pub async fn clear_stall(&self, order_id: i64, actor: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        let resumed: Option<(i64, String)> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_as(sql("UPDATE orders SET stalled_at = NULL \
                 WHERE id = ? AND stalled_at IS NOT NULL RETURNING merchant_id, state"))
            .bind(order_id)
            .fetch_optional(&mut *conn)
            .await?
        });
        if let Some((merchant_id, state)) = resumed {
            let state = state
                .parse::<OrderState>()
                .map_err(|e| StoreError::Corrupt(format!("order {order_id}: {e}")))?;
            tx.insert_event(&NewEvent {
                order_id,
                merchant_id,
                kind: EventKind::Resumed,
                from_state: Some(state),
                to_state: Some(state),
                cause: "resumed",
                actor,
                message: Some("taken up again: its job runs once more"),
                forced: false,
                at: Utc::now(),
                payload: None,
            })
            .await?;
        }
        tx.commit().await
    }

    pub async fn stalled_orders(&self, merchant_id: i64) -> Result<Vec<order::Model>, StoreError> {
        Ok(order::Entity::find()
            .filter(order::Column::MerchantId.eq(merchant_id))
            .filter(order::Column::StalledAt.is_not_null())
            .all(&self.db)
            .await?)
    }

    /// Orders in `state` that nobody has touched for `idle`, not stalled: reconciler input.
    pub async fn idle_orders(
        &self,
        state: OrderState,
        idle: chrono::Duration,
        limit: u64,
    ) -> Result<Vec<order::Model>, StoreError> {
        Ok(order::Entity::find()
            .filter(order::Column::State.eq(state))
            .filter(order::Column::StalledAt.is_null())
            .filter(order::Column::UpdatedAt.lt(Utc::now() - idle))
            .order_by_asc(order::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    pub async fn shipping_methods(&self) -> Result<Vec<shipping_method::Model>, StoreError> {
        Ok(shipping_method::Entity::find()
            .order_by_asc(shipping_method::Column::Id)
            .all(&self.db)
            .await?)
    }
}

/// The order's lines, numbered from 1 in Fortnox's order: the one writer of order lines
/// (import and the refresh before a re-check).
pub(super) async fn insert_lines(
    tx: &mut WriteTx,
    order_id: i64,
    lines: &[NewOrderLine],
    now: chrono::DateTime<Utc>,
) -> Result<(), StoreError> {
    for (index, line) in lines.iter().enumerate() {
        on_tx!(&mut *tx, |conn, sql| {
            sqlx::query(sql(INSERT_LINE))
                .bind(order_id)
                .bind(index as i32 + 1)
                .bind(line.fortnox_row_id)
                .bind(line.article_number.as_deref())
                .bind(&line.description)
                .bind(&line.ordered_quantity)
                .bind(now)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
    }
    Ok(())
}

/// The stored address as the domain's (the same keys; see `entity::json`).
impl From<entity::StoredAddress> for crate::domain::address::DeliveryAddress {
    fn from(a: entity::StoredAddress) -> Self {
        crate::domain::address::DeliveryAddress {
            name: a.name,
            street: a.street,
            street2: a.street2,
            zip_code: a.zip_code,
            city: a.city,
            country: a.country,
            country_code: a.country_code,
        }
    }
}
