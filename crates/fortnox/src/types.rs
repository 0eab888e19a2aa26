//! The one set of Fortnox wire types, shared by the client and the sandbox.
//!
//! Tolerant where Fortnox is loose (quantities as strings or numbers, nulls,
//! missing optional fields, unknown fields ignored) and strict where a mistake
//! costs money: document numbers, row ids and quantities that do not parse are
//! errors. Decode through [`decode`] so the error names the field's path.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

mod errors;
mod scalars;
pub use errors::*;
use scalars::int_loose;
pub use scalars::*;

/// Decodes JSON into `T`; on failure the message carries the JSON path of the
/// offending field (e.g. `Order.OrderRows[0].DeliveredQuantity`).
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| DecodeError {
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode Fortnox field `{path}`: {message}")]
pub struct DecodeError {
    pub path: String,
    pub message: String,
}

// ---------------------------------------------------------------- lists

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetaInformation {
    #[serde(rename = "@TotalResources", deserialize_with = "int_loose")]
    pub total_resources: i64,
    #[serde(rename = "@TotalPages", deserialize_with = "int_loose")]
    pub total_pages: i64,
    #[serde(rename = "@CurrentPage", deserialize_with = "int_loose")]
    pub current_page: i64,
}

// ---------------------------------------------------------------- orders

/// An order as `GET /3/orders/{n}` returns it. Optional fields tolerate null
/// and absence; `DocumentNumber` does not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Order {
    #[serde(rename = "@url", default)]
    pub url: Option<String>,
    pub document_number: DocumentNumber,
    #[serde(default)]
    pub order_date: Option<String>,
    #[serde(default)]
    pub delivery_date: Option<String>,
    #[serde(default)]
    pub customer_number: Option<String>,
    #[serde(default)]
    pub customer_name: Option<String>,
    #[serde(default)]
    pub address1: Option<String>,
    #[serde(default)]
    pub address2: Option<String>,
    #[serde(default)]
    pub zip_code: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub delivery_name: Option<String>,
    #[serde(default)]
    pub delivery_address1: Option<String>,
    #[serde(default)]
    pub delivery_address2: Option<String>,
    #[serde(default)]
    pub delivery_zip_code: Option<String>,
    #[serde(default)]
    pub delivery_city: Option<String>,
    #[serde(default)]
    pub delivery_country: Option<String>,
    #[serde(default)]
    pub phone1: Option<String>,
    #[serde(default)]
    pub email_information: Option<EmailInformation>,
    #[serde(default)]
    pub way_of_delivery: Option<String>,
    #[serde(default)]
    pub terms_of_delivery: Option<String>,
    #[serde(default)]
    pub your_order_number: Option<String>,
    #[serde(default)]
    pub remarks: Option<String>,
    #[serde(default)]
    pub cancelled: bool,
    #[serde(default)]
    pub not_completed: bool,
    #[serde(default)]
    pub warehouse_ready: bool,
    #[serde(default)]
    pub outbound_date: Option<String>,
    /// `registration|reservation|delivery`, or `0` on older accounts.
    #[serde(default, deserialize_with = "opt_string_loose")]
    pub delivery_state: Option<String>,
    #[serde(default)]
    pub invoice_reference: Option<String>,
    #[serde(default)]
    pub order_type: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub total: Option<Amount>,
    #[serde(default)]
    pub stock_point_code: Option<String>,
    #[serde(default)]
    pub order_rows: Vec<OrderRow>,
}

impl Order {
    /// The invoice created from this order, if any.
    pub fn invoice(&self) -> Option<DocumentNumber> {
        invoice_reference(&self.invoice_reference)
    }
    /// `DeliveryState` is `delivery` (older accounts say `0`).
    pub fn in_delivery_state(&self) -> bool {
        matches!(self.delivery_state.as_deref(), Some("delivery") | Some("0"))
    }
}

/// `DeliveryState` has been seen as a string and as the number 0.
fn opt_string_loose<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(other) => return Err(de::Error::custom(format!("expected a string, got {other}"))),
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EmailInformation {
    #[serde(default)]
    pub email_address_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OrderRow {
    /// Strict: an integer. Absent only on rows we are about to create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_id: Option<u64>,
    #[serde(default)]
    pub article_number: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub ordered_quantity: Option<Quantity>,
    #[serde(default)]
    pub delivered_quantity: Option<Quantity>,
    #[serde(default)]
    pub reserved_quantity: Option<Quantity>,
    #[serde(default)]
    pub price: Option<Amount>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default, rename = "VAT")]
    pub vat: Option<Amount>,
    #[serde(default)]
    pub discount: Option<Amount>,
    #[serde(default)]
    pub discount_type: Option<String>,
    #[serde(default)]
    pub account_number: Option<i64>,
    #[serde(default)]
    pub stock_point_code: Option<String>,
}

/// `GET /3/orders` list items: a subset of the order (no rows, no address,
/// no `NotCompleted`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OrderListItem {
    #[serde(rename = "@url", default)]
    pub url: Option<String>,
    #[serde(default)]
    pub cancelled: bool,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub customer_name: Option<String>,
    #[serde(default)]
    pub customer_number: Option<String>,
    #[serde(default)]
    pub delivery_date: Option<String>,
    pub document_number: DocumentNumber,
    #[serde(default)]
    pub external_invoice_reference1: Option<String>,
    #[serde(default)]
    pub external_invoice_reference2: Option<String>,
    #[serde(default)]
    pub order_date: Option<String>,
    #[serde(default)]
    pub order_type: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub sent: bool,
    #[serde(default)]
    pub total: Option<Amount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderEnvelope {
    #[serde(rename = "Order")]
    pub order: Order,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderList {
    #[serde(rename = "MetaInformation")]
    pub meta: MetaInformation,
    #[serde(rename = "Orders", default)]
    pub orders: Vec<OrderListItem>,
}

/// Body of `PUT /3/orders/{n}` when writing rows: every row is sent (rows left
/// out are deleted by Fortnox), each keeping its `RowId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRowsUpdate {
    #[serde(rename = "Order")]
    pub order: OrderRowsUpdateBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRowsUpdateBody {
    #[serde(rename = "OrderRows")]
    pub order_rows: Vec<RowUpdate>,
}

/// One row in an update. `{"RowId":123}` alone keeps the row as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RowUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub article_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered_quantity: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_quantity: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Amount>,
}

// ---------------------------------------------------------------- articles

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Article {
    #[serde(rename = "@url", default)]
    pub url: Option<String>,
    pub article_number: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, rename = "EAN")]
    pub ean: Option<String>,
    /// `STOCK|SERVICE`
    #[serde(default, rename = "Type")]
    pub article_type: Option<String>,
    #[serde(default)]
    pub stock_goods: Option<bool>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub unit: Option<String>,
    /// grams
    #[serde(default)]
    pub weight: Option<Amount>,
    /// mm
    #[serde(default)]
    pub width: Option<Amount>,
    #[serde(default)]
    pub height: Option<Amount>,
    #[serde(default)]
    pub depth: Option<Amount>,
    #[serde(default)]
    pub sales_price: Option<Amount>,
    #[serde(default)]
    pub purchase_price: Option<Amount>,
    #[serde(default)]
    pub quantity_in_stock: Option<Quantity>,
    #[serde(default)]
    pub reserved_quantity: Option<Quantity>,
    #[serde(default)]
    pub disposable_quantity: Option<Quantity>,
    #[serde(default)]
    pub stock_place: Option<String>,
    /// Only on the single article (list items omit the stock-point fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_stock_point: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_stock_location: Option<String>,
}

impl Article {
    pub fn is_stock(&self) -> bool {
        self.stock_goods == Some(true)
            || self
                .article_type
                .as_deref()
                .map(|t| t.eq_ignore_ascii_case("STOCK"))
                == Some(true)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArticleEnvelope {
    #[serde(rename = "Article")]
    pub article: Article,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArticleList {
    #[serde(rename = "MetaInformation")]
    pub meta: MetaInformation,
    #[serde(rename = "Articles", default)]
    pub articles: Vec<Article>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArticleStockUpdate {
    #[serde(rename = "Article")]
    pub article: ArticleStockUpdateBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArticleStockUpdateBody {
    #[serde(rename = "QuantityInStock")]
    pub quantity_in_stock: Quantity,
}

// ---------------------------------------------------------------- ways of delivery

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WayOfDelivery {
    #[serde(rename = "@url", default)]
    pub url: Option<String>,
    pub code: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub description_english: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WayOfDeliveryList {
    #[serde(
        rename = "MetaInformation",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub meta: Option<MetaInformation>,
    #[serde(rename = "WayOfDeliveries", default)]
    pub way_of_deliveries: Vec<WayOfDelivery>,
}

// ---------------------------------------------------------------- invoices

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Invoice {
    #[serde(rename = "@url", default)]
    pub url: Option<String>,
    pub document_number: DocumentNumber,
    #[serde(default)]
    pub order_reference: Option<String>,
    #[serde(default)]
    pub customer_number: Option<String>,
    #[serde(default)]
    pub invoice_date: Option<String>,
    #[serde(default)]
    pub total: Option<Amount>,
    #[serde(default)]
    pub cancelled: bool,
    #[serde(default)]
    pub invoice_rows: Vec<InvoiceRow>,
    /// `true` on a credit invoice. Read loosely (a bool or `"true"`/`"false"`).
    #[serde(
        default,
        deserialize_with = "opt_bool_loose",
        skip_serializing_if = "Option::is_none"
    )]
    pub credit: Option<bool>,
    /// On an invoice: the credit invoice that credits it. On a credit invoice:
    /// the invoice it credits. `"0"`, empty or absent: none. Read loosely (a
    /// string or a number); use [`Invoice::credited_by`] / [`Invoice::credits`].
    #[serde(
        default,
        deserialize_with = "opt_string_loose",
        skip_serializing_if = "Option::is_none"
    )]
    pub credit_invoice_reference: Option<String>,
}

impl Invoice {
    pub fn is_credit(&self) -> bool {
        self.credit == Some(true)
    }
    /// The credit invoice that credits this invoice, if any. Always `None` on
    /// a credit invoice, whose reference points back at the original instead.
    pub fn credited_by(&self) -> Option<DocumentNumber> {
        if self.is_credit() {
            return None;
        }
        invoice_reference(&self.credit_invoice_reference)
    }
    /// On a credit invoice: the invoice it credits.
    pub fn credits(&self) -> Option<DocumentNumber> {
        if !self.is_credit() {
            return None;
        }
        invoice_reference(&self.credit_invoice_reference)
    }
}

/// Fortnox sends some flags as `"true"`/`"false"` strings; null means unknown.
fn opt_bool_loose<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(b)) => Some(b),
        Some(serde_json::Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" | "" => Some(false),
            _ => return Err(de::Error::custom(format!("expected a boolean, got {s:?}"))),
        },
        Some(other) => {
            return Err(de::Error::custom(format!(
                "expected a boolean, got {other}"
            )))
        }
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvoiceRow {
    #[serde(default)]
    pub article_number: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub delivered_quantity: Option<Quantity>,
    #[serde(default)]
    pub price: Option<Amount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvoiceEnvelope {
    #[serde(rename = "Invoice")]
    pub invoice: Invoice,
}

// ---------------------------------------------------------------- company

/// `GET /3/companyinformation`: the Fortnox company (one Fortnox database) the
/// access token belongs to. We take `DatabaseNumber` as the Fortnox tenant id
/// (**assumed** in docs/fortnox.md): use [`CompanyInformation::tenant_id`].
/// Every field tolerates null and absence; the address fields are kept for
/// display only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CompanyInformation {
    /// Empty when Fortnox sends none (null or absent).
    #[serde(default, deserialize_with = "string_or_null")]
    pub company_name: String,
    /// `556677-8899` as Fortnox writes it; empty reads as `None`.
    #[serde(default, deserialize_with = "opt_text_loose")]
    pub organization_number: Option<String>,
    /// A number or a numeric string; empty reads as `None`, anything else
    /// is an error (it identifies the company).
    #[serde(default, deserialize_with = "opt_id_loose")]
    pub database_number: Option<i64>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub zip_code: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub country_code: Option<String>,
    #[serde(default)]
    pub visit_address: Option<String>,
    #[serde(default)]
    pub visit_zip_code: Option<String>,
    #[serde(default)]
    pub visit_city: Option<String>,
    #[serde(default)]
    pub visit_country_code: Option<String>,
}

impl CompanyInformation {
    /// The Fortnox tenant id: `DatabaseNumber` (**assumed** to be unique per
    /// Fortnox company and stable; see docs/fortnox.md).
    pub fn tenant_id(&self) -> Option<i64> {
        self.database_number
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanyInformationEnvelope {
    #[serde(rename = "CompanyInformation")]
    pub company_information: CompanyInformation,
}

/// A text field that may be null: null reads as empty.
fn string_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// Like `opt_string_loose`, and blank means absent (Fortnox sends `""` for
/// fields never filled in).
fn opt_text_loose<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(opt_string_loose(d)?
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty()))
}

/// An integer id sent as a number or a numeric string; null, absent or blank
/// mean none. Anything else is an error rather than a guess.
fn opt_id_loose<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match opt_string_loose(d)? {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("expected an integer, got {s:?}"))),
    }
}
