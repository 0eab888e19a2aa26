//! Between the jobs and Fortnox: error mapping, turning a Fortnox order into what we store,
//! and the merchant's article types and ways of delivery (fetched only when a check needs
//! them, and cached, to stay within Fortnox's call budget).
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::future::Cache;

use crate::fortnox::types::Order;
use crate::fortnox::{ErrorClass, FortnoxClient, FortnoxError};
use crate::store::orders::{NewOrder, NewOrderLine};

use super::JobError;

pub(super) fn fortnox_error(error: FortnoxError) -> JobError {
    match error.class() {
        ErrorClass::Retryable => JobError::Retryable(format!("Fortnox call failed: {error}")),
        ErrorClass::NeedsReauthorization => JobError::NeedsAttention(
            "Fortnox no longer accepts our access (the connection was revoked or expired): connect Fortnox again; the order continues after reconnecting".into(),
        ),
        ErrorClass::Document => JobError::NeedsAttention(format!("Fortnox refused the request: {error}")),
    }
}

/// The order as we store it at import: its rows as lines, the whole order as the snapshot.
pub fn new_order(merchant_id: i64, order: &Order) -> Result<NewOrder, String> {
    let snapshot = serde_json::to_value(order)
        .map_err(|e| format!("cannot keep a snapshot of the order: {e}"))?;
    let lines = order
        .order_rows
        .iter()
        .map(|row| NewOrderLine {
            fortnox_row_id: row.row_id.map(|id| id as i64),
            article_number: row.article_number.clone().filter(|a| !a.trim().is_empty()),
            description: row.description.clone().unwrap_or_default(),
            ordered_quantity: row
                .ordered_quantity
                .as_ref()
                .map(|q| q.0.normalize().to_string())
                .unwrap_or_default(),
        })
        .collect();
    Ok(NewOrder {
        merchant_id,
        fortnox_document_number: order.document_number.as_str().to_owned(),
        way_of_delivery: order
            .way_of_delivery
            .clone()
            .filter(|w| !w.trim().is_empty()),
        delivery_address: None,
        fortnox_snapshot: snapshot,
        lines,
    })
}

/// What the checks may need from the merchant's Fortnox beyond the order itself.
#[derive(Debug, Default)]
pub struct MerchantCatalog {
    /// When it was read (a copy read before a change is stale).
    pub fetched_at: Option<DateTime<Utc>>,
    pub non_stock_articles: HashSet<String>,
    pub way_of_delivery_descriptions: HashMap<String, String>,
}

/// Per-process cache of each merchant's catalogue; a few minutes old is fine for checks.
/// Concurrent misses for one merchant wait for one fetch; a failed fetch is not cached.
#[derive(Clone)]
pub struct CatalogCache {
    entries: Cache<i64, Arc<MerchantCatalog>>,
}

const CATALOG_TTL: Duration = Duration::from_secs(300);

impl Default for CatalogCache {
    fn default() -> Self {
        CatalogCache {
            entries: Cache::builder().time_to_live(CATALOG_TTL).build(),
        }
    }
}

impl CatalogCache {
    /// The merchant's catalogue, read again when the cached copy is older than
    /// `changed_at` (when an article event last said it changed, in any process).
    pub async fn get(
        &self,
        fortnox: &FortnoxClient,
        merchant_id: i64,
        changed_at: Option<DateTime<Utc>>,
    ) -> Result<Arc<MerchantCatalog>, FortnoxError> {
        if let (Some(changed), Some(cached)) = (changed_at, self.entries.get(&merchant_id).await) {
            if cached.fetched_at.is_none_or(|at| at <= changed) {
                self.entries.invalidate(&merchant_id).await;
            }
        }
        self.entries
            .try_get_with(merchant_id, fetch_catalog(fortnox, merchant_id))
            .await
            // Every waiter of a failed fetch gets the one error.
            .map_err(Arc::unwrap_or_clone)
    }

    /// Drops the merchant's cached catalogue (an article changed in Fortnox).
    pub async fn forget(&self, merchant_id: i64) {
        self.entries.invalidate(&merchant_id).await;
    }
}

async fn fetch_catalog(
    fortnox: &FortnoxClient,
    merchant_id: i64,
) -> Result<Arc<MerchantCatalog>, FortnoxError> {
    // Taken before the reads: a change made while they run makes this copy stale.
    let fetched_at = Some(Utc::now());
    let tenant = fortnox.tenant(merchant_id.to_string());
    let articles = tenant.list_articles(None).await?;
    let ways = tenant.list_ways_of_delivery().await?;
    Ok(Arc::new(MerchantCatalog {
        fetched_at,
        non_stock_articles: articles
            .into_iter()
            .filter(|a| {
                a.article_type
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case("SERVICE"))
                    || a.stock_goods == Some(false)
            })
            .map(|a| a.article_number)
            .collect(),
        way_of_delivery_descriptions: ways
            .into_iter()
            .filter_map(|w| w.description.or(w.description_english).map(|d| (w.code, d)))
            .collect(),
    }))
}
