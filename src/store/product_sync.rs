//! The stored side of the product sync (docs/rules.md rule 8): the merchant's products, and the
//! stock levels the warehouse reports, stored and queued for Fortnox (`jobs::stock` pushes
//! them). Reading Fortnox's stock articles is a use case (`services::product_sync`).
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::product;
use sea_orm::prelude::*;
use sea_orm::QueryOrder;

use super::catalog::{normalize_sku, CatalogError};
use super::jobs_table::{self, PushStock};
use super::{numbered_placeholders, Pool, Store};
use crate::domain::Quantity;

/// A stock level the warehouse reports for a product.
#[derive(Clone, Debug)]
pub struct StockLevel {
    pub sku: String,
    /// A non-negative decimal as text.
    pub quantity: String,
}

pub(crate) fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A stock quantity: a non-negative decimal with a decimal point, no thousands separator.
fn parse_quantity(sku: &str, quantity: &str) -> Result<String, CatalogError> {
    let value = Quantity::parse(quantity)
        .map_err(|e| CatalogError::Invalid(format!("quantity for SKU `{sku}`: {e}")))?;
    if value.is_negative() {
        return Err(CatalogError::Invalid(format!(
            "quantity for SKU `{sku}` must not be negative (got {value})"
        )));
    }
    // `-0` is zero.
    Ok(Quantity::new(value.value().abs()).to_string())
}

const UPDATE_STOCK: &str =
    "UPDATE products SET stock_quantity = ?, updated_at = ? WHERE id = ? AND merchant_id = ?";

/// Stores the levels and queues their push in one transaction on either backend.
macro_rules! store_levels_in_tx {
    ($tx:expr, $sql:expr, $push:path, $updates:expr, $merchant_id:expr, $now:expr, $task:expr) => {{
        let tx = $tx;
        for (id, quantity) in $updates {
            sqlx::query(sqlx::AssertSqlSafe($sql(UPDATE_STOCK)))
                .bind(quantity)
                .bind($now)
                .bind(*id)
                .bind($merchant_id)
                .execute(&mut *tx)
                .await?;
        }
        $push(&mut *tx, vec![$task]).await?;
    }};
}

impl From<sqlx::Error> for CatalogError {
    fn from(e: sqlx::Error) -> Self {
        CatalogError::Store(super::StoreError::Sqlx(e))
    }
}

fn same_sql(sql: &str) -> String {
    sql.to_owned()
}

impl Store {
    pub async fn merchant_products(
        &self,
        merchant_id: i64,
    ) -> Result<Vec<product::Model>, CatalogError> {
        Ok(product::Entity::find()
            .filter(product::Column::MerchantId.eq(merchant_id))
            .order_by_asc(product::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// Stores the stock level of each reported product and queues the push of those
    /// levels to Fortnox, in one transaction. An unknown SKU (or a bad quantity) is an
    /// error that names it, and nothing is stored. Returns the updated products.
    pub async fn report_stock_levels(
        &self,
        merchant_id: i64,
        levels: Vec<StockLevel>,
    ) -> Result<Vec<product::Model>, CatalogError> {
        if levels.is_empty() {
            return Ok(Vec::new());
        }
        let mut parsed: Vec<(String, String)> = Vec::with_capacity(levels.len());
        let mut seen = HashSet::new();
        for level in &levels {
            let sku = normalize_sku(&level.sku)?;
            if !seen.insert(sku.clone()) {
                return Err(CatalogError::Invalid(format!("SKU `{sku}` is reported more than once: report one quantity per product; nothing was stored")));
            }
            let quantity = parse_quantity(&sku, &level.quantity)?;
            parsed.push((sku, quantity));
        }
        let products: HashMap<String, product::Model> = product::Entity::find()
            .filter(product::Column::MerchantId.eq(merchant_id))
            .filter(product::Column::Sku.is_in(parsed.iter().map(|(sku, _)| sku.clone())))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|p| (p.sku.clone(), p))
            .collect();
        let unknown: Vec<String> = parsed
            .iter()
            .filter(|(sku, _)| !products.contains_key(sku))
            .map(|(sku, _)| sku.clone())
            .collect();
        if !unknown.is_empty() {
            let (noun, verb) = if unknown.len() == 1 {
                ("SKU", "is")
            } else {
                ("SKUs", "are")
            };
            return Err(CatalogError::UnknownSkus(format!(
                "unknown {noun} {} for this merchant: {} not a product we hold (query products, or create it with createProduct or createProductsFromFortnox); nothing was stored",
                quoted(&unknown),
                verb
            )));
        }
        let updates: Vec<(i64, String)> = parsed
            .iter()
            .map(|(sku, quantity)| (products[sku].id, quantity.clone()))
            .collect();
        let task = jobs_table::push_stock_task(
            &PushStock {
                merchant_id,
                skus: parsed.iter().map(|(sku, _)| sku.clone()).collect(),
                attempt: 0,
            },
            None,
        )?;
        let now: DateTime<Utc> = Utc::now();
        let wake_up = task.wake_up();
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                store_levels_in_tx!(
                    &mut *tx,
                    same_sql,
                    jobs_table::push_sqlite,
                    &updates,
                    merchant_id,
                    now,
                    task
                );
                tx.commit().await?;
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                store_levels_in_tx!(
                    &mut *tx,
                    numbered_placeholders,
                    jobs_table::push_postgres,
                    &updates,
                    merchant_id,
                    now,
                    task
                );
                tx.commit().await?;
            }
        }
        super::job_wakeups::task_queued(wake_up.0, wake_up.1);
        let ids: Vec<i64> = updates.iter().map(|(id, _)| *id).collect();
        let mut updated = product::Entity::find()
            .filter(product::Column::Id.is_in(ids))
            .all(&self.db)
            .await?;
        let order: HashMap<&str, usize> = parsed
            .iter()
            .enumerate()
            .map(|(i, (sku, _))| (sku.as_str(), i))
            .collect();
        updated.sort_by_key(|p| order.get(p.sku.as_str()).copied().unwrap_or(usize::MAX));
        Ok(updated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_non_negative_decimals() {
        assert_eq!(parse_quantity("A", " 12 ").unwrap(), "12");
        assert_eq!(parse_quantity("A", "2.50").unwrap(), "2.5");
        assert_eq!(parse_quantity("A", "0").unwrap(), "0");
        assert!(parse_quantity("A", "-1")
            .unwrap_err()
            .to_string()
            .contains("negative"));
        assert!(parse_quantity("A", "1,5")
            .unwrap_err()
            .to_string()
            .contains("decimal point"));
        assert!(parse_quantity("A", "").is_err());
    }
}
