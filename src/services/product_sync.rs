//! Use cases of the product sync: the merchant's Fortnox stock articles (after the
//! integration's `stockLocation` filter) beside the products we hold, products created
//! from those articles, and the stock levels the warehouse reports (stored, then pushed to
//! Fortnox by `jobs::stock`).
use std::collections::{HashMap, HashSet};

use entity::product;
use rust_decimal::prelude::ToPrimitive;

use super::{Result, ServiceError, Services};
use crate::auth::Principal;
use crate::fortnox::types::{Amount, Article};
use crate::fortnox::{FortnoxError, TenantClient};
use crate::store::catalog::{CatalogError, NewProduct};
use crate::store::product_sync::{quoted, StockLevel};

/// A Fortnox stock article as the sync view shows it: measures in whole grams and
/// millimetres, amounts as decimal text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StockArticle {
    pub article_number: String,
    pub description: Option<String>,
    pub ean: Option<String>,
    pub weight_grams: Option<i64>,
    pub width_mm: Option<i64>,
    pub height_mm: Option<i64>,
    pub depth_mm: Option<i64>,
    pub sales_price: Option<String>,
    pub quantity_in_stock: Option<String>,
    /// Known only when a stock location is set (list items do not carry it, so each
    /// article is then read on its own).
    pub default_stock_location: Option<String>,
}

/// One article and the product with its number as SKU, if we hold one.
#[derive(Clone, Debug)]
pub struct SyncRow {
    pub article: StockArticle,
    pub product: Option<product::Model>,
}

#[derive(Clone, Debug)]
pub struct ProductSyncView {
    pub merchant_id: i64,
    /// The stock-location filter applied; `None`: every stock article.
    pub stock_location: Option<String>,
    /// Sorted by article number.
    pub rows: Vec<SyncRow>,
    /// Products whose SKU is none of the articles above, in creation order.
    pub products_not_in_fortnox: Vec<product::Model>,
}

fn text(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Whole units (grams, millimetres), rounded; negative values mean nothing and are dropped.
fn whole(value: &Option<Amount>) -> Option<i64> {
    value
        .and_then(|v| {
            v.0.round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
                .to_i64()
        })
        .filter(|v| *v >= 0)
}

fn decimal_text(value: &Option<Amount>) -> Option<String> {
    value
        .map(|v| v.0.normalize())
        .filter(|v| !v.is_sign_negative() || v.is_zero())
        .map(|v| v.to_string())
}

/// Articles we stock: `Type` STOCK or `StockGoods` true, and neither marked as a service
/// nor as not kept in stock (the order checks ignore those rows), and active.
fn is_stock_article(article: &Article) -> bool {
    let service = article
        .article_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("SERVICE"));
    article.is_stock()
        && !service
        && article.stock_goods != Some(false)
        && article.active != Some(false)
}

impl From<&Article> for StockArticle {
    fn from(a: &Article) -> Self {
        StockArticle {
            article_number: a.article_number.trim().to_owned(),
            description: text(&a.description),
            ean: text(&a.ean),
            weight_grams: whole(&a.weight),
            width_mm: whole(&a.width),
            height_mm: whole(&a.height),
            depth_mm: whole(&a.depth),
            sales_price: decimal_text(&a.sales_price),
            quantity_in_stock: a.quantity_in_stock.map(|q| q.0.normalize().to_string()),
            default_stock_location: text(&a.default_stock_location),
        }
    }
}

impl StockArticle {
    /// The product this article becomes: SKU = ArticleNumber, name = Description (the
    /// article number when the description is empty).
    pub fn new_product(&self, merchant_id: i64) -> NewProduct {
        NewProduct {
            merchant_id,
            sku: self.article_number.clone(),
            name: self
                .description
                .clone()
                .unwrap_or_else(|| self.article_number.clone()),
            ean: self.ean.clone(),
            weight_grams: self.weight_grams,
            width_mm: self.width_mm,
            height_mm: self.height_mm,
            depth_mm: self.depth_mm,
            price: self.sales_price.clone(),
        }
    }
}

impl Services {
    /// The sync view: each Fortnox stock article with the product of the same SKU, and
    /// the products that match none of the articles.
    pub async fn product_sync(
        &self,
        actor: &Principal,
        merchant_id: i64,
    ) -> Result<ProductSyncView> {
        self.merchant_in_scope(actor, merchant_id).await?;
        self.sync_view(merchant_id).await
    }

    /// Creates a product for each of the merchant's Fortnox stock articles (after the
    /// stock-location filter) that has none yet: all of them, or those in
    /// `article_numbers`. Articles already held are skipped. Everything is checked before
    /// anything is created: an article number that is not such an article, or an article
    /// that cannot become a product, is an error and nothing is created. When products
    /// were created, the merchant's RESERVED orders are re-checked.
    pub async fn create_products_from_fortnox(
        &self,
        actor: &Principal,
        merchant_id: i64,
        article_numbers: Option<Vec<String>>,
    ) -> Result<Vec<product::Model>> {
        self.merchant_in_scope(actor, merchant_id).await?;
        let view = self.sync_view(merchant_id).await?;
        let selected = select_rows(&view, article_numbers.as_deref())?;
        let new_products = products_to_create(merchant_id, selected)?;
        let mut created = Vec::with_capacity(new_products.len());
        for product in new_products {
            match self.store.create_product(product).await {
                Ok(model) => created.push(model),
                // Created meanwhile (a concurrent call): held now, so skipped.
                Err(CatalogError::DuplicateSku { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !created.is_empty() {
            self.recheck_reserved_orders(merchant_id).await;
        }
        Ok(created)
    }

    /// The warehouse's stock levels: stored, and queued for Fortnox, in one transaction.
    /// Returns the updated products.
    pub async fn report_stock_levels(
        &self,
        actor: &Principal,
        merchant_id: i64,
        levels: Vec<StockLevel>,
    ) -> Result<Vec<product::Model>> {
        self.merchant_in_scope(actor, merchant_id).await?;
        Ok(self.store.report_stock_levels(merchant_id, levels).await?)
    }

    async fn sync_view(&self, merchant_id: i64) -> Result<ProductSyncView> {
        let (stock_location, articles) = self.fortnox_stock_articles(merchant_id).await?;
        let mut by_sku: HashMap<String, product::Model> = self
            .store
            .merchant_products(merchant_id)
            .await?
            .into_iter()
            .map(|p| (p.sku.clone(), p))
            .collect();
        let rows: Vec<SyncRow> = articles
            .into_iter()
            .map(|article| {
                let product = by_sku.remove(&article.article_number);
                SyncRow { article, product }
            })
            .collect();
        let mut products_not_in_fortnox: Vec<product::Model> = by_sku.into_values().collect();
        products_not_in_fortnox.sort_by_key(|p| p.id);
        Ok(ProductSyncView {
            merchant_id,
            stock_location,
            rows,
            products_not_in_fortnox,
        })
    }

    /// The merchant's active stock articles in Fortnox after the stock-location filter,
    /// and the filter applied; read live, through the short cache of `live_reads`.
    async fn fortnox_stock_articles(
        &self,
        merchant_id: i64,
    ) -> Result<(Option<String>, Vec<StockArticle>)> {
        self.require_fortnox_connected(merchant_id).await?;
        let location = self
            .store
            .integration(merchant_id)
            .await?
            .and_then(|i| text(&i.stock_location));
        let tenant = self.fortnox.tenant(merchant_id.to_string());
        let articles = self
            .live_reads
            .stock_articles(merchant_id, location.clone(), async {
                read_stock_articles(&tenant, location.as_deref()).await
            })
            .await?;
        Ok((location, articles.as_ref().clone()))
    }
}

/// Reads the stock articles from Fortnox. With a stock location set, every stock article
/// is read on its own, since only the single article carries `DefaultStockLocation`.
async fn read_stock_articles(
    tenant: &TenantClient,
    location: Option<&str>,
) -> Result<Vec<StockArticle>, FortnoxError> {
    let listed: Vec<Article> = tenant
        .list_articles(Some("active"))
        .await?
        .into_iter()
        .filter(is_stock_article)
        .collect();
    let mut articles = Vec::with_capacity(listed.len());
    match location {
        None => articles.extend(listed.iter().map(StockArticle::from)),
        Some(location) => {
            for item in &listed {
                let full = match tenant.get_article(&item.article_number).await {
                    Ok(full) => full,
                    // Deleted since the list was read: not there any more.
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e),
                };
                if is_stock_article(&full)
                    && text(&full.default_stock_location).as_deref() == Some(location)
                {
                    articles.push(StockArticle::from(&full));
                }
            }
        }
    }
    articles.sort_by(|a, b| a.article_number.cmp(&b.article_number));
    articles.dedup_by(|a, b| a.article_number == b.article_number);
    Ok(articles)
}

/// The rows asked for: all, or those whose article numbers are listed (trimmed, each
/// once). A number that is no stock article in the view is an error naming it.
fn select_rows<'a>(
    view: &'a ProductSyncView,
    article_numbers: Option<&[String]>,
) -> Result<Vec<&'a SyncRow>> {
    let Some(numbers) = article_numbers else {
        return Ok(view.rows.iter().collect());
    };
    let mut wanted = Vec::new();
    let mut seen = HashSet::new();
    for number in numbers {
        let number = number.trim().to_owned();
        if seen.insert(number.clone()) {
            wanted.push(number);
        }
    }
    let unknown: Vec<String> = wanted
        .iter()
        .filter(|n| !view.rows.iter().any(|r| &r.article.article_number == *n))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        let filter = match &view.stock_location {
            Some(location) => {
                format!(" at stock location `{location}` (the integration's stockLocation)")
            }
            None => String::new(),
        };
        return Err(ServiceError::UnknownArticles(format!(
            "no active stock article{filter} in Fortnox has the article number {}: query productSync for the articles you can create products from; nothing was created",
            quoted(&unknown)
        )));
    }
    Ok(view
        .rows
        .iter()
        .filter(|r| seen.contains(&r.article.article_number))
        .collect())
}

/// The products the selected rows without one become, each validated; any article that
/// cannot become a product is an error listing them all.
fn products_to_create(merchant_id: i64, selected: Vec<&SyncRow>) -> Result<Vec<NewProduct>> {
    let mut new_products = Vec::new();
    let mut problems = Vec::new();
    for row in selected.into_iter().filter(|r| r.product.is_none()) {
        match row.article.new_product(merchant_id).validated() {
            Ok(product) => new_products.push(product),
            Err(e) => problems.push(format!("article `{}`: {e}", row.article.article_number)),
        }
    }
    if !problems.is_empty() {
        return Err(ServiceError::InvalidInput(format!(
            "some Fortnox articles cannot become products: {}. Fix them in Fortnox, or leave them out with articleNumbers; nothing was created",
            problems.join("; ")
        )));
    }
    Ok(new_products)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fortnox::types::Quantity;
    use rust_decimal::Decimal;

    #[test]
    fn articles_map_to_products() {
        let article = Article {
            url: None,
            article_number: " A-1 ".into(),
            description: Some("  ".into()),
            ean: Some("7350000000017".into()),
            article_type: Some("STOCK".into()),
            stock_goods: Some(true),
            active: Some(true),
            unit: None,
            weight: Some(Quantity(Decimal::new(2505, 1))),
            width: Some(Quantity::from_i64(100)),
            height: Some(Quantity::from_i64(-1)),
            depth: None,
            sales_price: Some(Quantity(Decimal::new(19950, 2))),
            purchase_price: None,
            quantity_in_stock: None,
            reserved_quantity: None,
            disposable_quantity: None,
            stock_place: None,
            default_stock_point: None,
            default_stock_location: Some("B1".into()),
        };
        assert!(is_stock_article(&article));
        let stock = StockArticle::from(&article);
        let product = stock.new_product(7).validated().unwrap();
        assert_eq!(
            (product.sku.as_str(), product.name.as_str()),
            ("A-1", "A-1")
        );
        assert_eq!(
            (
                product.weight_grams,
                product.width_mm,
                product.height_mm,
                product.depth_mm
            ),
            (Some(251), Some(100), None, None)
        );
        assert_eq!(product.price.as_deref(), Some("199.5"));
        assert_eq!(stock.default_stock_location.as_deref(), Some("B1"));
        let service = Article {
            article_type: Some("SERVICE".into()),
            stock_goods: None,
            ..article.clone()
        };
        assert!(!is_stock_article(&service));
        let not_kept = Article {
            stock_goods: Some(false),
            ..article.clone()
        };
        assert!(!is_stock_article(&not_kept));
        let inactive = Article {
            active: Some(false),
            ..article
        };
        assert!(!is_stock_article(&inactive));
    }
}
