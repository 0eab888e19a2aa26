//! The product sync: the merchant's Fortnox stock articles beside our products, products
//! created from them, and the stock levels the warehouse reports. The use cases live in
//! `services::product_sync`, the push to Fortnox in `jobs::stock`.
use async_graphql::{Context, InputObject, Object, SimpleObject, ID};

use super::catalog::Product;
use super::limits::{MaxChars, MaxItems, MaxTexts};
use super::{cost, parse_id, principal, services, Result, RoleGuard};
use crate::services::product_sync::{ProductSyncView, SyncRow};
use crate::store::product_sync::StockLevel;

/// A stock article in the merchant's Fortnox, with the product of the same SKU if we hold one.
#[derive(SimpleObject)]
pub struct ProductSyncArticle {
    /// The Fortnox `ArticleNumber`: the SKU of the product made from it.
    pub article_number: String,
    pub description: Option<String>,
    pub ean: Option<String>,
    pub weight_grams: Option<i64>,
    pub width_mm: Option<i64>,
    pub height_mm: Option<i64>,
    pub depth_mm: Option<i64>,
    /// Fortnox `SalesPrice`, a decimal as text.
    pub sales_price: Option<String>,
    /// Fortnox `QuantityInStock`, a decimal as text.
    pub quantity_in_stock: Option<String>,
    /// Fortnox `DefaultStockLocation`; read (and shown) only while the integration's
    /// `stockLocation` is set.
    pub default_stock_location: Option<String>,
    /// Whether we hold a product with this SKU.
    pub product_exists: bool,
    pub product_id: Option<ID>,
    pub product: Option<Product>,
}

impl From<SyncRow> for ProductSyncArticle {
    fn from(row: SyncRow) -> Self {
        let a = row.article;
        ProductSyncArticle {
            article_number: a.article_number,
            description: a.description,
            ean: a.ean,
            weight_grams: a.weight_grams,
            width_mm: a.width_mm,
            height_mm: a.height_mm,
            depth_mm: a.depth_mm,
            sales_price: a.sales_price,
            quantity_in_stock: a.quantity_in_stock,
            default_stock_location: a.default_stock_location,
            product_exists: row.product.is_some(),
            product_id: row.product.as_ref().map(|p| p.id.into()),
            product: row.product.map(Product::from),
        }
    }
}

/// The merchant's Fortnox stock articles side by side with the products we hold.
#[derive(SimpleObject)]
pub struct ProductSync {
    pub merchant_id: ID,
    /// The integration's stock-location filter: only articles whose DefaultStockLocation
    /// equals it are listed; `null`: every active stock article.
    pub stock_location: Option<String>,
    /// Active stock articles (Type STOCK / StockGoods) after the filter, by article number.
    #[graphql(complexity = "cost::LONG_LIST * child_complexity")]
    pub articles: Vec<ProductSyncArticle>,
    /// Products we hold whose SKU is none of `articles` (no such active stock article in
    /// Fortnox, or one at another stock location).
    #[graphql(complexity = "cost::LONG_LIST * child_complexity")]
    pub products_not_in_fortnox: Vec<Product>,
    /// How many of `articles` have no product yet (what createProductsFromFortnox would create).
    pub missing_products: i32,
}

impl From<ProductSyncView> for ProductSync {
    fn from(view: ProductSyncView) -> Self {
        let missing = view.rows.iter().filter(|r| r.product.is_none()).count();
        ProductSync {
            merchant_id: view.merchant_id.into(),
            stock_location: view.stock_location,
            articles: view
                .rows
                .into_iter()
                .map(ProductSyncArticle::from)
                .collect(),
            products_not_in_fortnox: view
                .products_not_in_fortnox
                .into_iter()
                .map(Product::from)
                .collect(),
            missing_products: i32::try_from(missing).unwrap_or(i32::MAX),
        }
    }
}

/// The stock level of one product, as the warehouse counts it.
#[derive(InputObject)]
pub struct StockLevelInput {
    /// The product's SKU (the Fortnox article number).
    #[graphql(validator(custom = "MaxChars::new(\"sku\", 100)"))]
    pub sku: String,
    /// A non-negative decimal as text, e.g. "12" or "2.5".
    #[graphql(validator(custom = "MaxChars::new(\"quantity\", 40)"))]
    pub quantity: String,
}

#[derive(Default)]
pub struct ProductSyncQuery;

#[Object]
impl ProductSyncQuery {
    /// The merchant's active stock articles in Fortnox (read live; with a stockLocation
    /// set, each article is read on its own, which takes longer) beside the products we
    /// hold: which exist, which are missing, and which products match no article.
    #[graphql(
        guard = "RoleGuard::merchant_partner_or_admin()",
        complexity = "cost::LIVE_FORTNOX + child_complexity"
    )]
    async fn product_sync(&self, ctx: &Context<'_>, merchant_id: ID) -> Result<ProductSync> {
        let merchant_id = parse_id(&merchant_id, "merchant")?;
        let view = services(ctx)
            .product_sync(principal(ctx)?, merchant_id)
            .await?;
        Ok(view.into())
    }
}

#[derive(Default)]
pub struct ProductSyncMutation;

#[Object]
impl ProductSyncMutation {
    /// Creates products from the merchant's Fortnox stock articles (see productSync): all
    /// of them when `articleNumbers` is omitted, otherwise those listed. Articles that
    /// already have a product are skipped; returns the products created. SKU =
    /// ArticleNumber, name = Description, EAN, weight (g), width/height/depth (mm), price =
    /// SalesPrice. When products were created, RESERVED orders of the merchant are
    /// re-checked, since they may have waited for them.
    #[graphql(
        guard = "RoleGuard::merchant_or_admin()",
        complexity = "cost::LIVE_FORTNOX + cost::LIST * child_complexity"
    )]
    async fn create_products_from_fortnox(
        &self,
        ctx: &Context<'_>,
        merchant_id: ID,
        #[graphql(validator(custom = "MaxTexts::new(\"articleNumbers\", 1000, 100)"))]
        article_numbers: Option<Vec<String>>,
    ) -> Result<Vec<Product>> {
        let merchant_id = parse_id(&merchant_id, "merchant")?;
        let created = services(ctx)
            .create_products_from_fortnox(principal(ctx)?, merchant_id, article_numbers)
            .await?;
        Ok(created.into_iter().map(Product::from).collect())
    }

    /// The warehouse reports stock levels: each product's `stockQuantity` is stored, and
    /// the levels are pushed to Fortnox (`QuantityInStock` on the article) by a background
    /// job; a refusal by Fortnox shows as the integration's `lastError`. An unknown SKU is
    /// an error naming it, and then nothing is stored. Returns the updated products.
    #[graphql(guard = "RoleGuard::warehouse_or_admin()")]
    async fn report_stock_levels(
        &self,
        ctx: &Context<'_>,
        merchant_id: ID,
        #[graphql(validator(custom = "MaxItems::new(\"levels\", 1000)"))] levels: Vec<
            StockLevelInput,
        >,
    ) -> Result<Vec<Product>> {
        let merchant_id = parse_id(&merchant_id, "merchant")?;
        let levels = levels
            .into_iter()
            .map(|l| StockLevel {
                sku: l.sku,
                quantity: l.quantity,
            })
            .collect();
        let updated = services(ctx)
            .report_stock_levels(principal(ctx)?, merchant_id, levels)
            .await?;
        Ok(updated.into_iter().map(Product::from).collect())
    }
}
