//! What the API reads live from a merchant's Fortnox (ways of delivery, stock articles),
//! behind a short per-merchant cache. Fortnox allows a merchant 25 calls per 5 s, which
//! imports and invoicing need; without the cache, N aliases of one field in a query, or N
//! people refreshing a page, would make N calls. Concurrent misses for one key wait for a
//! single read (moka's `try_get_with`), and a failed read is not cached, so the next
//! request tries again. The price is that the API may show Fortnox as it was up to
//! `FORTNOX_LIVE_READ_CACHE_SECS` (20 s by default) ago.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;

use super::product_sync::StockArticle;
use crate::fortnox::types::WayOfDelivery;
use crate::fortnox::FortnoxError;

/// Merchants held at once per cache; beyond it the least used are dropped.
const MAX_MERCHANTS: u64 = 10_000;

#[derive(Clone)]
pub struct LiveReads {
    ways_of_delivery: Cache<i64, Arc<Vec<WayOfDelivery>>>,
    /// Keyed by merchant and the stock location the articles were filtered by.
    stock_articles: Cache<(i64, Option<String>), Arc<Vec<StockArticle>>>,
}

impl LiveReads {
    /// Entries live `ttl`; zero still shares one read between concurrent requests.
    pub fn new(ttl: Duration) -> Self {
        LiveReads {
            ways_of_delivery: Cache::builder()
                .time_to_live(ttl)
                .max_capacity(MAX_MERCHANTS)
                .build(),
            stock_articles: Cache::builder()
                .time_to_live(ttl)
                .max_capacity(MAX_MERCHANTS)
                .build(),
        }
    }

    pub async fn ways_of_delivery(
        &self,
        merchant_id: i64,
        read: impl Future<Output = Result<Vec<WayOfDelivery>, FortnoxError>>,
    ) -> Result<Arc<Vec<WayOfDelivery>>, FortnoxError> {
        self.ways_of_delivery
            .try_get_with(merchant_id, async { read.await.map(Arc::new) })
            .await
            // Every waiter of a failed read gets the one error.
            .map_err(Arc::unwrap_or_clone)
    }

    pub async fn stock_articles(
        &self,
        merchant_id: i64,
        location: Option<String>,
        read: impl Future<Output = Result<Vec<StockArticle>, FortnoxError>>,
    ) -> Result<Arc<Vec<StockArticle>>, FortnoxError> {
        self.stock_articles
            .try_get_with((merchant_id, location), async { read.await.map(Arc::new) })
            .await
            .map_err(Arc::unwrap_or_clone)
    }
}
