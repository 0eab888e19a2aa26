//! Reads and writes the order pipeline needs besides state changes: check inputs and
//! results and Fortnox refreshes of an order.
use std::collections::HashSet;

use chrono::Utc;
use entity::{order, order_line, product, shipping_method, shipping_rule};
use sea_orm::prelude::*;
use sea_orm::ActiveValue::Set;
use sea_orm::QueryOrder;

use super::orders::NewOrderLine;
use super::write::{on_tx, EventKind};
use super::{Store, StoreError};
use crate::domain::shipping::ShippingRule;
use crate::domain::OrderState;

/// What the checks decided for an order that passed, stored before it becomes VALIDATED.
#[derive(Clone, Debug)]
pub struct CheckResults {
    pub shipping_method_id: Option<i64>,
    pub delivery_address: serde_json::Value,
    /// (line position, quantity to pick); lines not listed are not shipped.
    pub picks: Vec<(i32, String)>,
}

impl Store {
    pub async fn product_skus(&self, merchant_id: i64) -> Result<HashSet<String>, StoreError> {
        let products = product::Entity::find()
            .filter(product::Column::MerchantId.eq(merchant_id))
            .all(&self.db)
            .await?;
        Ok(products.into_iter().map(|p| p.sku).collect())
    }

    pub async fn rules_for_checks(
        &self,
        merchant_id: i64,
    ) -> Result<Vec<ShippingRule>, StoreError> {
        let rules = shipping_rule::Entity::find()
            .filter(shipping_rule::Column::MerchantId.eq(merchant_id))
            .order_by_asc(shipping_rule::Column::Id)
            .all(&self.db)
            .await?;
        Ok(rules
            .into_iter()
            .map(|r| ShippingRule {
                id: r.id,
                pattern: r.pattern,
                shipping_method_id: r.shipping_method_id,
            })
            .collect())
    }

    pub async fn shipping_method(
        &self,
        id: i64,
    ) -> Result<Option<shipping_method::Model>, StoreError> {
        Ok(shipping_method::Entity::find_by_id(id)
            .one(&self.db)
            .await?)
    }

    pub async fn order_by_document(
        &self,
        merchant_id: i64,
        document: &str,
    ) -> Result<Option<order::Model>, StoreError> {
        Ok(order::Entity::find()
            .filter(order::Column::MerchantId.eq(merchant_id))
            .filter(order::Column::FortnoxDocumentNumber.eq(document))
            .one(&self.db)
            .await?)
    }

    /// Replaces the Fortnox data of an order not yet sent (revalidation re-reads Fortnox,
    /// where the merchant fixed the cause).
    pub async fn refresh_from_fortnox(
        &self,
        order_id: i64,
        snapshot: serde_json::Value,
        way_of_delivery: Option<String>,
        lines: Vec<NewOrderLine>,
    ) -> Result<(), StoreError> {
        let txn = self.begin_write().await?;
        let now = Utc::now();
        order::Entity::update_many()
            .col_expr(order::Column::FortnoxSnapshot, Expr::value(snapshot))
            .col_expr(order::Column::WayOfDelivery, Expr::value(way_of_delivery))
            .col_expr(order::Column::UpdatedAt, Expr::value(now))
            .filter(order::Column::Id.eq(order_id))
            .exec(&txn)
            .await?;
        order_line::Entity::delete_many()
            .filter(order_line::Column::OrderId.eq(order_id))
            .exec(&txn)
            .await?;
        insert_lines(&txn, order_id, lines).await?;
        txn.commit().await?;
        Ok(())
    }

    /// A RESERVED order checked again and still failing: new reasons, an INFO event saying
    /// so. Only while the order is still RESERVED (it is not a change of state).
    pub async fn update_reasons(
        &self,
        order_id: i64,
        reasons: &[String],
        actor: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_tx().await?;
        let updated = on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql(
                "UPDATE orders SET reasons = ?, updated_at = ? WHERE id = ? AND state = ?",
            ))
            .bind(sqlx::types::Json(reasons))
            .bind(Utc::now())
            .bind(order_id)
            .bind(OrderState::Reserved.as_str())
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        if updated == 1 {
            let message = format!("Checked again, still reserved: {}", reasons.join("; "));
            tx.record_order_event(
                order_id,
                EventKind::Info,
                "revalidated",
                actor,
                &message,
                false,
            )
            .await?;
        }
        tx.commit().await
    }
}

pub(super) async fn insert_lines(
    txn: &sea_orm::DatabaseTransaction,
    order_id: i64,
    lines: Vec<NewOrderLine>,
) -> Result<(), StoreError> {
    let now = Utc::now();
    for (index, line) in lines.into_iter().enumerate() {
        order_line::ActiveModel {
            order_id: Set(order_id),
            position: Set(index as i32 + 1),
            fortnox_row_id: Set(line.fortnox_row_id),
            article_number: Set(line.article_number),
            description: Set(line.description),
            ordered_quantity: Set(line.ordered_quantity),
            pick_quantity: Set(None),
            shipped_quantity: Set(None),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(txn)
        .await?;
    }
    Ok(())
}
