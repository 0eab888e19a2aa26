//! The merchant's catalogue: products (SKU = Fortnox `ArticleNumber`) and shipping rules
//! (docs/rules.md rule 6). The way-of-delivery preview, which reads Fortnox, is a use case
//! (`services::catalog`).
//!
//! Input is validated here, not in the resolvers, so every caller (the API, the product
//! sync, the demo) gets the same rules and the same messages.
use std::collections::HashMap;
use std::str::FromStr;

use chrono::Utc;
use entity::{merchant, product, shipping_method, shipping_rule};
use rust_decimal::Decimal;
use sea_orm::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ConnectionTrait, QueryOrder, QuerySelect, SqlErr};

use super::orders::TenantScope;
use super::{Store, StoreError};
use crate::domain::shipping::{self, literal_character_count};

/// Fortnox limits `ArticleNumber` to 50 characters.
pub const MAX_SKU_CHARS: usize = 50;
/// Fortnox limits an article's `Description` to 200 characters.
pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_EAN_CHARS: usize = 50;

/// Why a catalogue operation was refused. The messages are shown to API users as they are,
/// so each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    Invalid(String),
    #[error("a product with SKU `{sku}` already exists for this merchant: SKUs (Fortnox article numbers) are unique per merchant; change the existing product with updateProduct")]
    DuplicateSku { sku: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("unknown shipping method `{code}`: query `shippingMethods` for the codes you can use ({known})")]
    UnknownShippingMethod { code: String, known: String },
    #[error("a shipping rule with the pattern `{pattern}` already exists (rule {rule_id}, shipping method {method_code}): remove it first to map the pattern to another method")]
    DuplicateRule {
        pattern: String,
        rule_id: i64,
        method_code: String,
    },
    #[error("{0}")]
    UnknownSkus(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<DbErr> for CatalogError {
    fn from(e: DbErr) -> Self {
        CatalogError::Store(StoreError::Orm(e))
    }
}

// ------------------------------------------------------------------------- version

/// Bumps the merchant's catalogue version inside the transaction that changes the
/// catalogue, so that both commit together: an order's checks that read the catalogue
/// before the change see the version move when they reserve the order, and check it again
/// (`TransitionRequest::catalog_version_seen`).
pub(super) async fn bump_catalog_version(
    txn: &impl ConnectionTrait,
    merchant_id: i64,
) -> Result<(), DbErr> {
    merchant::Entity::update_many()
        .col_expr(
            merchant::Column::CatalogVersion,
            Expr::col(merchant::Column::CatalogVersion).add(1),
        )
        .filter(merchant::Column::Id.eq(merchant_id))
        .exec(txn)
        .await?;
    Ok(())
}

impl Store {
    /// The merchant's catalogue version now (0 for a merchant that does not exist).
    pub async fn catalog_version(&self, merchant_id: i64) -> Result<i64, StoreError> {
        let version: Option<i64> = merchant::Entity::find_by_id(merchant_id)
            .select_only()
            .column(merchant::Column::CatalogVersion)
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(version.unwrap_or(0))
    }
}

// ------------------------------------------------------------------------- products

/// A product to create. Optional fields left `None` stay empty.
#[derive(Clone, Debug, Default)]
pub struct NewProduct {
    pub merchant_id: i64,
    /// The Fortnox `ArticleNumber`; surrounding whitespace is dropped.
    pub sku: String,
    pub name: String,
    pub ean: Option<String>,
    pub weight_grams: Option<i64>,
    pub width_mm: Option<i64>,
    pub height_mm: Option<i64>,
    pub depth_mm: Option<i64>,
    /// A decimal as text (`"199.50"`), never a float.
    pub price: Option<String>,
}

/// Changes to a product: `None` leaves a field as it is, `Some(None)` clears it. The SKU
/// cannot change: orders refer to it, and it is the Fortnox article number.
#[derive(Clone, Debug, Default)]
pub struct ProductUpdate {
    pub name: Option<String>,
    pub ean: Option<Option<String>>,
    pub weight_grams: Option<Option<i64>>,
    pub width_mm: Option<Option<i64>>,
    pub height_mm: Option<Option<i64>>,
    pub depth_mm: Option<Option<i64>>,
    pub price: Option<Option<String>>,
}

fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

pub fn normalize_sku(sku: &str) -> Result<String, CatalogError> {
    let sku = sku.trim();
    if sku.is_empty() {
        return Err(CatalogError::Invalid(
            "sku must not be empty: use the article number (ArticleNumber) from Fortnox".into(),
        ));
    }
    let length = sku.chars().count();
    if length > MAX_SKU_CHARS {
        return Err(CatalogError::Invalid(format!(
            "sku is {length} characters long: Fortnox article numbers have at most {MAX_SKU_CHARS}"
        )));
    }
    if has_control(sku) {
        return Err(CatalogError::Invalid(
            "sku contains a control character (such as a line break or tab): remove it".into(),
        ));
    }
    Ok(sku.to_owned())
}

pub fn normalize_name(name: &str) -> Result<String, CatalogError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(CatalogError::Invalid("name must not be empty".into()));
    }
    let length = name.chars().count();
    if length > MAX_NAME_CHARS {
        return Err(CatalogError::Invalid(format!(
            "name is {length} characters long: at most {MAX_NAME_CHARS} are allowed"
        )));
    }
    if has_control(name) {
        return Err(CatalogError::Invalid(
            "name contains a control character (such as a line break or tab): remove it".into(),
        ));
    }
    Ok(name.to_owned())
}

/// An EAN is kept as text (Fortnox does the same); blank means none.
pub fn normalize_ean(ean: Option<String>) -> Result<Option<String>, CatalogError> {
    let Some(ean) = ean.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()) else {
        return Ok(None);
    };
    if ean.chars().count() > MAX_EAN_CHARS {
        return Err(CatalogError::Invalid(format!(
            "ean is longer than {MAX_EAN_CHARS} characters"
        )));
    }
    if has_control(&ean) {
        return Err(CatalogError::Invalid(
            "ean contains a control character (such as a line break or tab): remove it".into(),
        ));
    }
    Ok(Some(ean))
}

/// Weights and dimensions are whole grams and millimetres, never negative.
pub fn check_measure(field: &str, value: Option<i64>) -> Result<Option<i64>, CatalogError> {
    match value {
        Some(v) if v < 0 => Err(CatalogError::Invalid(format!(
            "{field} must not be negative (got {v})"
        ))),
        other => Ok(other),
    }
}

/// A price is a non-negative decimal with a decimal point (`199.50`); blank means none.
/// Returned as the canonical text of the decimal, which keeps the given scale.
pub fn normalize_price(price: Option<String>) -> Result<Option<String>, CatalogError> {
    let Some(text) = price.map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let invalid = || {
        CatalogError::Invalid(format!(
            "price `{text}` is not a decimal number: write it with a decimal point and no thousands separator, e.g. 1299.50"
        ))
    };
    if !text
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+')
    {
        return Err(invalid());
    }
    let value = Decimal::from_str(&text).map_err(|_| invalid())?;
    if value.is_sign_negative() && !value.is_zero() {
        return Err(CatalogError::Invalid(format!(
            "price must not be negative (got {text})"
        )));
    }
    Ok(Some(value.abs().to_string()))
}

impl NewProduct {
    pub(crate) fn validated(self) -> Result<NewProduct, CatalogError> {
        Ok(NewProduct {
            merchant_id: self.merchant_id,
            sku: normalize_sku(&self.sku)?,
            name: normalize_name(&self.name)?,
            ean: normalize_ean(self.ean)?,
            weight_grams: check_measure("weightGrams", self.weight_grams)?,
            width_mm: check_measure("widthMm", self.width_mm)?,
            height_mm: check_measure("heightMm", self.height_mm)?,
            depth_mm: check_measure("depthMm", self.depth_mm)?,
            price: normalize_price(self.price)?,
        })
    }
}

fn duplicate_sku_or(error: DbErr, sku: &str) -> CatalogError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => CatalogError::DuplicateSku {
            sku: sku.to_owned(),
        },
        _ => error.into(),
    }
}

impl Store {
    /// Creates a product; its SKU must be new for the merchant. The caller makes sure the
    /// merchant exists and may be written by whoever asks.
    pub async fn create_product(&self, new: NewProduct) -> Result<product::Model, CatalogError> {
        let new = new.validated()?;
        if self
            .product_by_sku(new.merchant_id, &new.sku)
            .await?
            .is_some()
        {
            return Err(CatalogError::DuplicateSku { sku: new.sku });
        }
        let now = Utc::now();
        let model = product::ActiveModel {
            merchant_id: Set(new.merchant_id),
            sku: Set(new.sku.clone()),
            name: Set(new.name),
            ean: Set(new.ean),
            weight_grams: Set(new.weight_grams),
            width_mm: Set(new.width_mm),
            height_mm: Set(new.height_mm),
            depth_mm: Set(new.depth_mm),
            price: Set(new.price),
            stock_quantity: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        let txn = self.begin_write().await?;
        // The unique index settles a race between two creations of the same SKU.
        let product = model
            .insert(&txn)
            .await
            .map_err(|e| duplicate_sku_or(e, &new.sku))?;
        bump_catalog_version(&txn, new.merchant_id).await?;
        txn.commit().await?;
        Ok(product)
    }

    /// Changes the given fields of a product in the caller's scope.
    pub async fn update_product(
        &self,
        scope: &TenantScope,
        id: i64,
        update: ProductUpdate,
    ) -> Result<product::Model, CatalogError> {
        let row = self
            .product(scope, id)
            .await?
            .ok_or(CatalogError::NotFound("product"))?;
        let mut active: product::ActiveModel = row.into();
        if let Some(name) = update.name {
            active.name = Set(normalize_name(&name)?);
        }
        if let Some(ean) = update.ean {
            active.ean = Set(normalize_ean(ean)?);
        }
        if let Some(v) = update.weight_grams {
            active.weight_grams = Set(check_measure("weightGrams", v)?);
        }
        if let Some(v) = update.width_mm {
            active.width_mm = Set(check_measure("widthMm", v)?);
        }
        if let Some(v) = update.height_mm {
            active.height_mm = Set(check_measure("heightMm", v)?);
        }
        if let Some(v) = update.depth_mm {
            active.depth_mm = Set(check_measure("depthMm", v)?);
        }
        if let Some(price) = update.price {
            active.price = Set(normalize_price(price)?);
        }
        active.updated_at = Set(Utc::now());
        Ok(active.update(&self.db).await?)
    }

    /// A product in the caller's scope; another tenant's product is `None`, like a missing one.
    pub async fn product(
        &self,
        scope: &TenantScope,
        id: i64,
    ) -> Result<Option<product::Model>, StoreError> {
        let found = product::Entity::find_by_id(id).one(&self.db).await?;
        Ok(found.filter(|p| scope.allows(p.merchant_id)))
    }

    pub async fn product_by_sku(
        &self,
        merchant_id: i64,
        sku: &str,
    ) -> Result<Option<product::Model>, StoreError> {
        Ok(product::Entity::find()
            .filter(product::Column::MerchantId.eq(merchant_id))
            .filter(product::Column::Sku.eq(sku))
            .one(&self.db)
            .await?)
    }

    /// A page of a merchant's products in creation order (ascending id), after `after_id`.
    pub async fn products_page(
        &self,
        merchant_id: i64,
        after_id: Option<i64>,
        limit: u64,
    ) -> Result<Vec<product::Model>, StoreError> {
        let mut query = product::Entity::find().filter(product::Column::MerchantId.eq(merchant_id));
        if let Some(after) = after_id {
            query = query.filter(product::Column::Id.gt(after));
        }
        Ok(query
            .order_by_asc(product::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }
}

// ------------------------------------------------------------------- shipping rules

/// A rule with the shipping method it maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleWithMethod {
    pub rule: shipping_rule::Model,
    pub method: shipping_method::Model,
}

impl RuleWithMethod {
    /// Precedence: the rule with the most literal (non-`*`) characters wins.
    pub fn literal_characters(&self) -> usize {
        literal_character_count(&self.rule.pattern)
    }
}

/// Most specific first (precedence), then in the order they were added.
fn sort_by_precedence(rules: &mut [RuleWithMethod]) {
    rules.sort_by(|a, b| {
        b.literal_characters()
            .cmp(&a.literal_characters())
            .then(a.rule.id.cmp(&b.rule.id))
    });
}

/// The shipping method with this code; codes compare case-insensitively.
fn find_method<'a>(
    methods: &'a [shipping_method::Model],
    code: &str,
) -> Option<&'a shipping_method::Model> {
    let code = code.trim();
    methods.iter().find(|m| m.code.eq_ignore_ascii_case(code))
}

impl Store {
    /// Adds a rule for a merchant (who must exist). The pattern is validated and trimmed;
    /// the same pattern twice (ignoring case) is refused, since it could only conflict.
    pub async fn add_shipping_rule(
        &self,
        merchant_id: i64,
        pattern: &str,
        method_code: &str,
    ) -> Result<RuleWithMethod, CatalogError> {
        let pattern = shipping::validate_pattern(pattern)
            .map_err(|e| CatalogError::Invalid(e.to_string()))?;
        let methods = self.shipping_methods().await?;
        let Some(method) = find_method(&methods, method_code).cloned() else {
            let known: Vec<&str> = methods.iter().map(|m| m.code.as_str()).collect();
            return Err(CatalogError::UnknownShippingMethod {
                code: method_code.trim().to_owned(),
                known: known.join(", "),
            });
        };
        let existing = self.merchant_rules_with_methods(merchant_id).await?;
        let folded = pattern.to_lowercase();
        if let Some(same) = existing
            .iter()
            .find(|r| r.rule.pattern.to_lowercase() == folded)
        {
            return Err(CatalogError::DuplicateRule {
                pattern: same.rule.pattern.clone(),
                rule_id: same.rule.id,
                method_code: same.method.code.clone(),
            });
        }
        let txn = self.begin_write().await?;
        let rule = shipping_rule::ActiveModel {
            merchant_id: Set(merchant_id),
            pattern: Set(pattern),
            shipping_method_id: Set(method.id),
            created_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        bump_catalog_version(&txn, merchant_id).await?;
        txn.commit().await?;
        Ok(RuleWithMethod { rule, method })
    }

    /// Removes a rule in the caller's scope and returns it; another tenant's rule is "not found".
    pub async fn remove_shipping_rule(
        &self,
        scope: &TenantScope,
        id: i64,
    ) -> Result<RuleWithMethod, CatalogError> {
        let rule = shipping_rule::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .filter(|r| scope.allows(r.merchant_id))
            .ok_or(CatalogError::NotFound("shipping rule"))?;
        let method = shipping_method::Entity::find_by_id(rule.shipping_method_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "shipping rule {} points to a missing shipping method",
                    rule.id
                ))
            })?;
        let txn = self.begin_write().await?;
        let deleted = shipping_rule::Entity::delete_by_id(rule.id)
            .exec(&txn)
            .await?;
        if deleted.rows_affected == 0 {
            // Removed concurrently: the caller's intent holds, but say so as for a missing one.
            return Err(CatalogError::NotFound("shipping rule"));
        }
        bump_catalog_version(&txn, rule.merchant_id).await?;
        txn.commit().await?;
        Ok(RuleWithMethod { rule, method })
    }

    /// A merchant's rules with their methods, most specific first.
    pub async fn merchant_rules_with_methods(
        &self,
        merchant_id: i64,
    ) -> Result<Vec<RuleWithMethod>, StoreError> {
        let rules = shipping_rule::Entity::find()
            .filter(shipping_rule::Column::MerchantId.eq(merchant_id))
            .order_by_asc(shipping_rule::Column::Id)
            .all(&self.db)
            .await?;
        let methods: HashMap<i64, shipping_method::Model> = self
            .shipping_methods()
            .await?
            .into_iter()
            .map(|m| (m.id, m))
            .collect();
        let mut out = rules
            .into_iter()
            .map(|rule| match methods.get(&rule.shipping_method_id) {
                Some(method) => Ok(RuleWithMethod {
                    method: method.clone(),
                    rule,
                }),
                None => Err(StoreError::Corrupt(format!(
                    "shipping rule {} points to a missing shipping method",
                    rule.id
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        sort_by_precedence(&mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(id: i64, code: &str) -> shipping_method::Model {
        shipping_method::Model {
            id,
            code: code.into(),
            carrier: "C".into(),
            name: format!("{code} name"),
        }
    }

    fn rule(id: i64, pattern: &str, method_id: i64, code: &str) -> RuleWithMethod {
        RuleWithMethod {
            rule: shipping_rule::Model {
                id,
                merchant_id: 1,
                pattern: pattern.into(),
                shipping_method_id: method_id,
                created_at: Utc::now(),
            },
            method: method(method_id, code),
        }
    }

    #[test]
    fn skus_are_trimmed_and_must_not_be_empty() {
        assert_eq!(normalize_sku("  ART-1 ").unwrap(), "ART-1");
        assert!(matches!(
            normalize_sku("   "),
            Err(CatalogError::Invalid(_))
        ));
        assert!(matches!(
            normalize_sku(&"x".repeat(51)),
            Err(CatalogError::Invalid(_))
        ));
        assert!(matches!(
            normalize_sku("A\nB"),
            Err(CatalogError::Invalid(_))
        ));
    }

    #[test]
    fn prices_are_exact_non_negative_decimals() {
        assert_eq!(
            normalize_price(Some(" 199.50 ".into())).unwrap(),
            Some("199.50".into())
        );
        assert_eq!(normalize_price(Some("0".into())).unwrap(), Some("0".into()));
        assert_eq!(
            normalize_price(Some("-0".into())).unwrap(),
            Some("0".into())
        );
        assert_eq!(normalize_price(Some("".into())).unwrap(), None);
        assert_eq!(normalize_price(None).unwrap(), None);
        for bad in ["12,50", "1 000", "abc", "1e3", "-1", "1.2.3", "NaN"] {
            assert!(normalize_price(Some(bad.into())).is_err(), "{bad}");
        }
    }

    #[test]
    fn measures_must_not_be_negative() {
        assert_eq!(check_measure("weightGrams", Some(0)).unwrap(), Some(0));
        assert!(check_measure("weightGrams", Some(-1)).is_err());
        assert_eq!(check_measure("weightGrams", None).unwrap(), None);
    }

    #[test]
    fn rules_sort_most_specific_first() {
        let mut rules = vec![
            rule(1, "DHL*", 10, "DHL_A"),
            rule(2, "*DHL", 11, "DHL_B"),
            rule(3, "Post*", 12, "PN"),
            rule(4, "DHL-EXP*", 13, "DHL_X"),
        ];
        sort_by_precedence(&mut rules);
        assert_eq!(
            rules.iter().map(|r| r.rule.id).collect::<Vec<_>>(),
            vec![4, 3, 1, 2]
        );
    }
}
