//! The merchant's catalogue: products, shipping rules, and the way-of-delivery mapping
//! preview. The use cases live in `services::catalog`, validation in `store::catalog`,
//! matching in `domain::shipping`.
use async_graphql::{Context, Enum, MaybeUndefined, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use entity::product;

use super::limits::MaxChars;
use super::pagination::{page_by_id, Page};
use super::types::ShippingMethod;
use super::{cost, parse_id, principal, services, store, Result, RoleGuard};
use crate::services::catalog::{MappingOutcome, WayOfDeliveryMapping as Mapping};
use crate::store::catalog::{NewProduct, ProductUpdate, RuleWithMethod};

/// A product the warehouse stocks for a merchant.
#[derive(SimpleObject)]
pub struct Product {
    pub id: ID,
    pub merchant_id: ID,
    /// The Fortnox `ArticleNumber`; unique per merchant and never changed.
    pub sku: String,
    pub name: String,
    pub ean: Option<String>,
    pub weight_grams: Option<i64>,
    pub width_mm: Option<i64>,
    pub height_mm: Option<i64>,
    pub depth_mm: Option<i64>,
    /// Decimal, as text to keep it exact.
    pub price: Option<String>,
    /// The stock level the warehouse last reported (decimal, as text).
    pub stock_quantity: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<product::Model> for Product {
    fn from(p: product::Model) -> Self {
        Product {
            id: p.id.into(),
            merchant_id: p.merchant_id.into(),
            sku: p.sku,
            name: p.name,
            ean: p.ean,
            weight_grams: p.weight_grams,
            width_mm: p.width_mm,
            height_mm: p.height_mm,
            depth_mm: p.depth_mm,
            price: p.price,
            stock_quantity: p.stock_quantity,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Maps Fortnox ways of delivery whose code or description matches `pattern` to a
/// shipping method.
#[derive(SimpleObject)]
pub struct ShippingRule {
    pub id: ID,
    pub merchant_id: ID,
    /// `*` matches any run of characters; the rest matches literally, ignoring case; the
    /// whole code (or description) must match.
    pub pattern: String,
    /// The number of non-`*` characters: when several rules match, the one with the most
    /// wins; equally many is a conflict.
    pub literal_characters: i32,
    pub shipping_method: ShippingMethod,
    pub created_at: DateTime<Utc>,
}

impl From<RuleWithMethod> for ShippingRule {
    fn from(r: RuleWithMethod) -> Self {
        ShippingRule {
            id: r.rule.id.into(),
            merchant_id: r.rule.merchant_id.into(),
            literal_characters: r.literal_characters() as i32,
            pattern: r.rule.pattern,
            shipping_method: r.method.into(),
            created_at: r.rule.created_at,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum WayOfDeliveryOutcome {
    /// One most specific rule matches: `rule` and `shippingMethod` are set.
    Matched,
    /// No rule matches: orders with this way of delivery stop in RESERVED.
    NoMatch,
    /// Equally specific rules choose different methods (`conflictingRules`): orders stop
    /// in RESERVED until the merchant resolves it.
    Conflict,
}

/// Where orders with one of the merchant's Fortnox ways of delivery go.
#[derive(SimpleObject)]
pub struct WayOfDeliveryMapping {
    /// The Fortnox way-of-delivery code.
    pub code: String,
    pub description: Option<String>,
    pub outcome: WayOfDeliveryOutcome,
    pub rule: Option<ShippingRule>,
    pub shipping_method: Option<ShippingMethod>,
    /// For a conflict, every tied rule, by id; otherwise empty.
    pub conflicting_rules: Vec<ShippingRule>,
    /// The outcome in one sentence, with what to do about it.
    pub message: String,
}

impl From<Mapping> for WayOfDeliveryMapping {
    fn from(m: Mapping) -> Self {
        let message = m.message();
        let (outcome, rule, shipping_method, conflicting_rules) = match m.outcome {
            MappingOutcome::Matched(rule) => {
                let method = ShippingMethod::from(rule.method.clone());
                (
                    WayOfDeliveryOutcome::Matched,
                    Some(ShippingRule::from(rule)),
                    Some(method),
                    vec![],
                )
            }
            MappingOutcome::NoMatch => (WayOfDeliveryOutcome::NoMatch, None, None, vec![]),
            MappingOutcome::Conflict(rules) => (
                WayOfDeliveryOutcome::Conflict,
                None,
                None,
                rules.into_iter().map(ShippingRule::from).collect(),
            ),
        };
        WayOfDeliveryMapping {
            code: m.code,
            description: m.description,
            outcome,
            rule,
            shipping_method,
            conflicting_rules,
            message,
        }
    }
}

/// The merchant id, if the merchant exists and the caller may see it; otherwise "not found".
async fn scoped_merchant(ctx: &Context<'_>, id: &ID) -> Result<i64> {
    let merchant_id = parse_id(id, "merchant")?;
    services(ctx)
        .merchant_in_scope(principal(ctx)?, merchant_id)
        .await?;
    Ok(merchant_id)
}

fn measure(value: Option<i32>) -> Option<i64> {
    value.map(i64::from)
}

fn maybe<T, U>(value: MaybeUndefined<T>, convert: impl FnOnce(T) -> U) -> Option<Option<U>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(convert(v))),
    }
}

#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// A merchant's products in the order they were created, as a Relay connection
    /// (`first` at most 200).
    #[graphql(complexity = "cost::page(first) * child_complexity")]
    async fn products(
        &self,
        ctx: &Context<'_>,
        merchant_id: ID,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Page<Product>> {
        let merchant_id = scoped_merchant(ctx, &merchant_id).await?;
        let store = store(ctx);
        let fetch = |after_id, limit| async move {
            Ok(store.products_page(merchant_id, after_id, limit).await?)
        };
        page_by_id(after, first, fetch, |row| Ok((row.id, Product::from(row)))).await
    }

    /// One product; another tenant's product is `null`, like a missing one.
    async fn product(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Product>> {
        let scope = &principal(ctx)?.scope;
        let Ok(id) = id.parse::<i64>() else {
            return Ok(None);
        };
        Ok(store(ctx).product(scope, id).await?.map(Product::from))
    }

    /// A merchant's shipping rules, most specific (most literal characters) first.
    #[graphql(
        guard = "RoleGuard::merchant_partner_or_admin()",
        complexity = "cost::LIST * child_complexity"
    )]
    async fn shipping_rules(
        &self,
        ctx: &Context<'_>,
        merchant_id: ID,
    ) -> Result<Vec<ShippingRule>> {
        let merchant_id = parse_id(&merchant_id, "merchant")?;
        let rules = services(ctx)
            .shipping_rules(principal(ctx)?, merchant_id)
            .await?;
        Ok(rules.into_iter().map(ShippingRule::from).collect())
    }

    /// For every way of delivery in the merchant's Fortnox (read live, by code), the rule
    /// and shipping method its orders map to, or why they map to none.
    #[graphql(
        guard = "RoleGuard::merchant_partner_or_admin()",
        complexity = "cost::LIVE_FORTNOX + cost::LIST * child_complexity"
    )]
    async fn way_of_delivery_mappings(
        &self,
        ctx: &Context<'_>,
        merchant_id: ID,
    ) -> Result<Vec<WayOfDeliveryMapping>> {
        let merchant_id = parse_id(&merchant_id, "merchant")?;
        let mappings = services(ctx)
            .way_of_delivery_mappings(principal(ctx)?, merchant_id)
            .await?;
        Ok(mappings
            .into_iter()
            .map(WayOfDeliveryMapping::from)
            .collect())
    }
}

#[derive(Default)]
pub struct CatalogMutation;

#[Object]
impl CatalogMutation {
    /// Creates a product. `sku` is the Fortnox article number (trimmed, unique per
    /// merchant); `price` is a decimal as text, e.g. "199.50". RESERVED orders of the
    /// merchant are re-checked, since they may have waited for this product.
    #[graphql(guard = "RoleGuard::merchant_or_admin()")]
    #[allow(clippy::too_many_arguments)]
    async fn create_product(
        &self,
        ctx: &Context<'_>,
        merchant_id: ID,
        #[graphql(validator(custom = "MaxChars::new(\"sku\", 100)"))] sku: String,
        #[graphql(validator(custom = "MaxChars::new(\"name\", 500)"))] name: String,
        #[graphql(validator(custom = "MaxChars::new(\"ean\", 50)"))] ean: Option<String>,
        weight_grams: Option<i32>,
        width_mm: Option<i32>,
        height_mm: Option<i32>,
        depth_mm: Option<i32>,
        #[graphql(validator(custom = "MaxChars::new(\"price\", 40)"))] price: Option<String>,
    ) -> Result<Product> {
        let new = NewProduct {
            merchant_id: parse_id(&merchant_id, "merchant")?,
            sku,
            name,
            ean,
            weight_grams: measure(weight_grams),
            width_mm: measure(width_mm),
            height_mm: measure(height_mm),
            depth_mm: measure(depth_mm),
            price,
        };
        let product = services(ctx).create_product(principal(ctx)?, new).await?;
        Ok(product.into())
    }

    /// Changes the fields given; `null` clears an optional field, an omitted one stays.
    /// The SKU cannot change.
    #[graphql(guard = "RoleGuard::merchant_or_admin()")]
    #[allow(clippy::too_many_arguments)]
    async fn update_product(
        &self,
        ctx: &Context<'_>,
        id: ID,
        #[graphql(validator(custom = "MaxChars::new(\"name\", 500)"))] name: Option<String>,
        #[graphql(validator(custom = "MaxChars::new(\"ean\", 50)"))] ean: MaybeUndefined<String>,
        weight_grams: MaybeUndefined<i32>,
        width_mm: MaybeUndefined<i32>,
        height_mm: MaybeUndefined<i32>,
        depth_mm: MaybeUndefined<i32>,
        #[graphql(validator(custom = "MaxChars::new(\"price\", 40)"))] price: MaybeUndefined<
            String,
        >,
    ) -> Result<Product> {
        let id = parse_id(&id, "product")?;
        let update = ProductUpdate {
            name,
            ean: maybe(ean, |v| v),
            weight_grams: maybe(weight_grams, i64::from),
            width_mm: maybe(width_mm, i64::from),
            height_mm: maybe(height_mm, i64::from),
            depth_mm: maybe(depth_mm, i64::from),
            price: maybe(price, |v| v),
        };
        let product = services(ctx)
            .update_product(principal(ctx)?, id, update)
            .await?;
        Ok(product.into())
    }

    /// Adds a shipping rule: Fortnox ways of delivery whose code or description matches
    /// `pattern` ship with the method `shippingMethodCode` (see `shippingMethods`). RESERVED
    /// orders of the merchant are re-checked.
    #[graphql(guard = "RoleGuard::merchant_or_admin()")]
    async fn add_shipping_rule(
        &self,
        ctx: &Context<'_>,
        merchant_id: ID,
        #[graphql(validator(custom = "MaxChars::new(\"pattern\", 100)"))] pattern: String,
        #[graphql(validator(custom = "MaxChars::new(\"shippingMethodCode\", 100)"))]
        shipping_method_code: String,
    ) -> Result<ShippingRule> {
        let merchant_id = parse_id(&merchant_id, "merchant")?;
        let rule = services(ctx)
            .add_shipping_rule(
                principal(ctx)?,
                merchant_id,
                &pattern,
                &shipping_method_code,
            )
            .await?;
        Ok(rule.into())
    }

    /// Removes a shipping rule and returns it. RESERVED orders of the merchant are
    /// re-checked, since removing one of two conflicting rules settles the conflict.
    #[graphql(guard = "RoleGuard::merchant_or_admin()")]
    async fn remove_shipping_rule(&self, ctx: &Context<'_>, id: ID) -> Result<ShippingRule> {
        let id = parse_id(&id, "shipping rule")?;
        let removed = services(ctx)
            .remove_shipping_rule(principal(ctx)?, id)
            .await?;
        Ok(removed.into())
    }
}
