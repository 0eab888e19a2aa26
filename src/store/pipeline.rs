//! Reads and writes the order pipeline needs besides state changes: check inputs and
//! results and Fortnox refreshes of an order.
use std::collections::HashSet;

use chrono::Utc;
use entity::{order, product, shipping_method, shipping_rule};
use sea_orm::prelude::*;
use sea_orm::{QueryOrder, QuerySelect};

use super::orders::NewOrderLine;
use super::write::{on_tx, EventKind, EventPayload, NewEvent};
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
        // Only the SKUs: a catalogue of thousands of products is read for every check.
        let skus: Vec<String> = product::Entity::find()
            .select_only()
            .column(product::Column::Sku)
            .filter(product::Column::MerchantId.eq(merchant_id))
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(skus.into_iter().collect())
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
        let now = Utc::now();
        let mut tx = self.begin_tx().await?;
        on_tx!(&mut tx, |conn, sql| {
            sqlx::query(sql(
                "UPDATE orders SET fortnox_snapshot = ?, way_of_delivery = ?, updated_at = ? \
                 WHERE id = ?",
            ))
            .bind(sqlx::types::Json(&snapshot))
            .bind(way_of_delivery.as_deref())
            .bind(now)
            .bind(order_id)
            .execute(&mut *conn)
            .await?;
            sqlx::query(sql("DELETE FROM order_lines WHERE order_id = ?"))
                .bind(order_id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        super::orders::insert_lines(&mut tx, order_id, &lines, now).await?;
        tx.commit().await
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
        let now = Utc::now();
        // Only when they differ: a re-check that finds the same reasons is no news.
        let updated: Option<i64> = on_tx!(&mut tx, |conn, sql| {
            sqlx::query_scalar(sql(
                "UPDATE orders SET reasons = ?, updated_at = ? WHERE id = ? AND state = ? \
                 AND reasons <> ? RETURNING merchant_id",
            ))
            .bind(sqlx::types::Json(reasons))
            .bind(now)
            .bind(order_id)
            .bind(OrderState::Reserved.as_str())
            .bind(sqlx::types::Json(reasons))
            .fetch_optional(&mut *conn)
            .await?
        });
        if let Some(merchant_id) = updated {
            let message = format!("Checked again, still reserved: {}", reasons.join("; "));
            tx.insert_event(&NewEvent {
                order_id,
                merchant_id,
                kind: EventKind::ReasonsChanged,
                from_state: Some(OrderState::Reserved),
                to_state: Some(OrderState::Reserved),
                cause: "revalidated",
                actor,
                message: Some(&message),
                forced: false,
                at: now,
                payload: Some(EventPayload {
                    reasons: Some(reasons.to_vec()),
                    ..EventPayload::default()
                }),
            })
            .await?;
        }
        tx.commit().await
    }
}
