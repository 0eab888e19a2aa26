//! Reads and non-state writes of orders, merchants and their events (sea-orm).
use chrono::Utc;
use entity::{merchant, order, order_event, order_line, shipping_method};
use sea_orm::prelude::*;
use sea_orm::{
    ActiveValue::Set, Condition, DatabaseTransaction, QueryOrder, QuerySelect,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use serde_json::json;

use super::{Store, StoreError};
use crate::domain::OrderState;

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

    /// Stores a new IMPORTED order once: a second import of the same Fortnox document
    /// returns `None` (unique per merchant and document number). Its first job is queued
    /// by the caller through `transitions` or `enqueue_state_job`.
    pub async fn insert_order(&self, new: NewOrder) -> Result<Option<order::Model>, StoreError> {
        let now = Utc::now();
        let txn = self.begin_write().await?;
        let exists = order::Entity::find()
            .filter(order::Column::MerchantId.eq(new.merchant_id))
            .filter(order::Column::FortnoxDocumentNumber.eq(new.fortnox_document_number.clone()))
            .one(&txn)
            .await?;
        if exists.is_some() {
            return Ok(None);
        }
        let model = order::ActiveModel {
            merchant_id: Set(new.merchant_id),
            fortnox_document_number: Set(new.fortnox_document_number),
            state: Set(OrderState::Imported.as_str().to_owned()),
            reasons: Set(json!([])),
            delivery_address: Set(new.delivery_address),
            way_of_delivery: Set(new.way_of_delivery),
            shipping_method_id: Set(None),
            warehouse_reference: Set(None),
            tracking_numbers: Set(json!([])),
            invoice_number: Set(None),
            fortnox_snapshot: Set(new.fortnox_snapshot),
            stalled_at: Set(None),
            last_error: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await;
        let model = match model {
            Ok(model) => model,
            // Another process imported it between our look and our insert.
            Err(error)
                if matches!(
                    error.sql_err(),
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                ) =>
            {
                return Ok(None)
            }
            Err(error) => return Err(error.into()),
        };
        super::pipeline::insert_lines(&txn, model.id, new.lines).await?;
        order_event::ActiveModel {
            order_id: Set(model.id),
            merchant_id: Set(model.merchant_id),
            kind: Set("TRANSITION".into()),
            from_state: Set(None),
            to_state: Set(Some(OrderState::Imported.as_str().into())),
            cause: Set("imported".into()),
            actor: Set("system:import".into()),
            message: Set(Some(format!(
                "Imported Fortnox order {}",
                model.fortnox_document_number
            ))),
            forced: Set(false),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(Some(model))
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
    ) -> Result<Vec<order::Model>, StoreError> {
        let mut query = order::Entity::find().filter(scope.condition(order::Column::MerchantId));
        if let Some(merchant_id) = filter.merchant_id {
            query = query.filter(order::Column::MerchantId.eq(merchant_id));
        }
        if !filter.states.is_empty() {
            query =
                query.filter(order::Column::State.is_in(filter.states.iter().map(|s| s.as_str())));
        }
        if let Some(after) = after_id {
            query = query.filter(order::Column::Id.lt(after));
        }
        Ok(query
            .order_by_desc(order::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
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
            .order_by_asc(order_event::Column::Id)
            .all(&self.db)
            .await?)
    }

    pub async fn order_events(&self, order_id: i64) -> Result<Vec<order_event::Model>, StoreError> {
        Ok(order_event::Entity::find()
            .filter(order_event::Column::OrderId.eq(order_id))
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
        let txn = self.begin_write().await?;
        let Some(order) = order::Entity::find_by_id(order_id).one(&txn).await? else {
            return Ok(());
        };
        let now = Utc::now();
        order_event::ActiveModel {
            order_id: Set(order.id),
            merchant_id: Set(order.merchant_id),
            kind: Set("ERROR".into()),
            from_state: Set(Some(order.state.clone())),
            to_state: Set(Some(order.state.clone())),
            cause: Set(cause.to_owned()),
            actor: Set(actor.to_owned()),
            message: Set(Some(message.to_owned())),
            forced: Set(false),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        let mut active: order::ActiveModel = order.into();
        active.last_error = Set(Some(message.to_owned()));
        if stall {
            active.stalled_at = Set(Some(now));
        }
        active.update(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    pub async fn clear_stall(&self, order_id: i64) -> Result<(), StoreError> {
        order::Entity::update_many()
            .col_expr(
                order::Column::StalledAt,
                Expr::value(Option::<DateTimeUtc>::None),
            )
            .filter(order::Column::Id.eq(order_id))
            .exec(&self.db)
            .await?;
        Ok(())
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
            .filter(order::Column::State.eq(state.as_str()))
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
