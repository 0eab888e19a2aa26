//! The checks an imported order must pass before it goes to the warehouse (docs/rules.md rule 5,
//! with rule 2's `ignoreMissingProducts` and rules 4 and 6 for the address and the way of
//! delivery).
//!
//! `check_order` is pure: everything it needs is handed in, so the validate job, the
//! revalidation after a product or rule was added, and the API's previews all give the same
//! answer. It collects EVERY failure rather than stopping at the first: a merchant who fixes
//! one problem only to be told about the next loses a round trip per problem.
//!
//! Each reason names the row or field at fault and the fix, in words a merchant can act on
//! in Fortnox or here. Reasons never contain `;`, which callers may use to join them.

use std::collections::{HashMap, HashSet};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::address::{
    address_source, delivery_address, AddressField, AddressSource, DeliveryAddress,
    OrderAddressFields,
};
use super::quantity::Quantity;
use super::shipping::{match_way_of_delivery, RuleMatch, ShippingRule};

/// An order row's `OrderedQuantity`. Fortnox sends quantities as strings (`"1"`, `"1.12"`)
/// and sometimes as numbers; a value we cannot read is kept as sent so the reason can
/// quote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowQuantity {
    Number(Decimal),
    /// Not a number; the text as Fortnox sent it (empty when it sent nothing or `null`).
    Unparseable(String),
}

impl RowQuantity {
    /// Reads a quantity sent as text, by the one quantity policy (`domain::quantity`).
    pub fn parse(text: &str) -> Self {
        Quantity::parse(text)
            .map(|q| RowQuantity::Number(q.value()))
            .unwrap_or_else(|_| RowQuantity::Unparseable(text.to_owned()))
    }

    /// Reads a quantity from the Fortnox JSON value, a string or a number.
    pub fn from_json(value: &serde_json::Value) -> Self {
        match value {
            serde_json::Value::String(text) => Self::parse(text),
            serde_json::Value::Number(number) => Self::parse(&number.to_string()),
            serde_json::Value::Null => RowQuantity::Unparseable(String::new()),
            other => RowQuantity::Unparseable(other.to_string()),
        }
    }
}

/// One Fortnox order row, as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRowToCheck {
    /// 1-based, in Fortnox's row order: what the merchant sees as "row 2".
    pub position: i32,
    /// Fortnox `RowId`, as last read.
    pub row_id: Option<i64>,
    pub article_number: Option<String>,
    pub description: String,
    pub ordered_quantity: RowQuantity,
}

/// What the checks read from a Fortnox order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderToCheck {
    pub rows: Vec<OrderRowToCheck>,
    pub address: OrderAddressFields,
    /// `WayOfDelivery`: a code; empty or `None` when the order has none.
    pub way_of_delivery: Option<String>,
    /// The way of delivery's description, when the caller already has it. When `None`,
    /// [`CheckContext::way_of_delivery_descriptions`] is consulted.
    pub way_of_delivery_description: Option<String>,
    /// `DeliveryState`: `delivery` passes, and so does `0`, which older accounts send.
    pub delivery_state: Option<String>,
    /// `WarehouseReady` ("Delivery done").
    pub warehouse_ready: bool,
}

/// What the checks need to know about the merchant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckContext {
    /// The SKUs of the merchant's products. A row's `ArticleNumber` must be one of them,
    /// exactly (case-sensitive; only surrounding whitespace is ignored).
    pub product_skus: HashSet<String>,
    /// Article numbers that are not stock articles in Fortnox (services, fees). Their rows
    /// are not shipped and not checked. An article not listed here counts as stock.
    pub non_stock_article_numbers: HashSet<String>,
    pub ignore_missing_products: bool,
    pub shipping_rules: Vec<ShippingRule>,
    /// Way-of-delivery code to its description, from `/3/wayofdeliveries`, so that rules
    /// written against descriptions match too.
    pub way_of_delivery_descriptions: HashMap<String, String>,
}

/// A row to send to the warehouse and to invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineToShip {
    pub position: i32,
    pub row_id: Option<i64>,
    pub article_number: String,
    pub quantity: Decimal,
}

/// The verdict on one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// Why the order cannot be sent; empty when it passes.
    pub reasons: Vec<String>,
    /// Worth telling the merchant, but not blocking (rows left out by
    /// `ignoreMissingProducts`).
    pub warnings: Vec<String>,
    /// The rows to ship, in row order. Only complete when `reasons` is empty: rows with a
    /// reason of their own are not in it.
    pub lines_to_ship: Vec<LineToShip>,
    /// The rule that chose the shipping method, when one did.
    pub shipping_rule_id: Option<i64>,
    pub shipping_method_id: Option<i64>,
    pub address: DeliveryAddress,
}

impl CheckOutcome {
    pub fn passes(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// Whether Fortnox will take delivered quantities for an order in this `DeliveryState`:
/// only in `delivery`, which older accounts send as `0`.
pub fn delivery_state_allows_delivery(delivery_state: Option<&str>) -> bool {
    delivery_state
        .map(str::trim)
        .is_some_and(|state| state.eq_ignore_ascii_case("delivery") || state == "0")
}

/// Runs every check on one order. See the module documentation.
pub fn check_order(order: &OrderToCheck, ctx: &CheckContext) -> CheckOutcome {
    let mut reasons = Vec::new();
    let mut warnings = Vec::new();

    let lines_to_ship = check_rows(order, ctx, &mut reasons, &mut warnings);
    let address = check_address(&order.address, &mut reasons);
    let (shipping_rule_id, shipping_method_id) = check_way_of_delivery(order, ctx, &mut reasons);
    check_fortnox_can_take_the_delivery(order, &mut reasons);

    CheckOutcome {
        reasons,
        warnings,
        lines_to_ship,
        shipping_rule_id,
        shipping_method_id,
        address,
    }
}

fn check_rows(
    order: &OrderToCheck,
    ctx: &CheckContext,
    reasons: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Vec<LineToShip> {
    let mut lines = Vec::new();
    let mut stock_rows = 0;
    let mut left_out_rows = 0;
    for row in &order.rows {
        let Some(article) = row
            .article_number
            .as_deref()
            .map(str::trim)
            .filter(|article| !article.is_empty())
        else {
            continue; // A text or comment row: nothing to ship.
        };
        if ctx.non_stock_article_numbers.contains(article) {
            continue; // A service or fee: invoiced by Fortnox, never picked.
        }
        stock_rows += 1;
        let position = row.position;

        if !ctx.product_skus.contains(article) {
            if ctx.ignore_missing_products {
                left_out_rows += 1;
                warnings.push(format!(
                    "Article {article} on row {position} is not in the product catalogue and is left out of the warehouse order and the invoice because ignoreMissingProducts is on"
                ));
            } else {
                reasons.push(format!(
                    "Article {article} on row {position} is not in the product catalogue: create the product or turn on ignoreMissingProducts"
                ));
                // The quantity is still checked so that both problems are fixed in one go.
                let _ = positive_quantity(row, article, reasons);
            }
            continue;
        }

        if let Some(quantity) = positive_quantity(row, article, reasons) {
            lines.push(LineToShip {
                position,
                row_id: row.row_id,
                article_number: article.to_owned(),
                quantity,
            });
        }
    }

    if stock_rows == left_out_rows {
        reasons.push(if left_out_rows > 0 {
            "Nothing is left to ship: every stock article on the order is missing from the product catalogue and ignoreMissingProducts left them all out, so create the products or cancel the order".to_owned()
        } else {
            "The order has no rows with stock articles to ship: add them to the order in Fortnox, or cancel the order".to_owned()
        });
    }
    lines
}

/// The row's quantity when it is a positive number, otherwise a reason and `None`.
fn positive_quantity(
    row: &OrderRowToCheck,
    article: &str,
    reasons: &mut Vec<String>,
) -> Option<Decimal> {
    let position = row.position;
    match &row.ordered_quantity {
        RowQuantity::Number(quantity) if *quantity > Decimal::ZERO => Some(*quantity),
        RowQuantity::Number(quantity) => {
            let quantity = quantity.normalize();
            reasons.push(format!(
                "Row {position} (article {article}) has quantity {quantity}: quantities must be positive, so correct the ordered quantity in Fortnox or remove the row"
            ));
            None
        }
        RowQuantity::Unparseable(text) if text.trim().is_empty() => {
            reasons.push(format!(
                "Row {position} (article {article}) has no quantity: fill in the ordered quantity in Fortnox"
            ));
            None
        }
        RowQuantity::Unparseable(text) => {
            reasons.push(format!(
                "Row {position} (article {article}) has quantity '{}', which is not a number: correct the ordered quantity in Fortnox",
                text.trim()
            ));
            None
        }
    }
}

fn check_address(fields: &OrderAddressFields, reasons: &mut Vec<String>) -> DeliveryAddress {
    let source = address_source(fields);
    let address = delivery_address(fields);
    for field in address.missing_required_fields() {
        let fortnox_field = source.fortnox_field(field);
        let label = field.label();
        reasons.push(match source {
            AddressSource::DeliveryFields => format!(
                "The delivery address has no {label}: fill in {fortnox_field} in Fortnox (the order's delivery address is used because DeliveryName is filled in)"
            ),
            AddressSource::CustomerFields => format!(
                "The delivery address has no {label}: fill in {fortnox_field} in Fortnox, or fill in the order's delivery address starting with DeliveryName"
            ),
        });
    }
    if let (Some(country), None) = (&address.country, &address.country_code) {
        let fortnox_field = source.fortnox_field(AddressField::Country);
        reasons.push(format!(
            "Country '{country}' cannot be mapped to a country code: correct the country name in {fortnox_field} in Fortnox (for example Sverige, Finland or Tyskland)"
        ));
    }
    address
}

/// The matching rule and its shipping method, or a reason.
fn check_way_of_delivery(
    order: &OrderToCheck,
    ctx: &CheckContext,
    reasons: &mut Vec<String>,
) -> (Option<i64>, Option<i64>) {
    let code = order
        .way_of_delivery
        .as_deref()
        .map(str::trim)
        .unwrap_or_default();
    let description = order
        .way_of_delivery_description
        .as_deref()
        .or_else(|| {
            ctx.way_of_delivery_descriptions
                .get(code)
                .map(String::as_str)
        })
        .map(str::trim)
        .filter(|text| !text.is_empty());

    match match_way_of_delivery(&ctx.shipping_rules, code, description) {
        RuleMatch::Matched { rule_id, shipping_method_id } => return (Some(rule_id), Some(shipping_method_id)),
        RuleMatch::NoMatch if code.is_empty() => reasons.push(
            "The order has no way of delivery: choose one in Fortnox (WayOfDelivery), or add a shipping rule '*' that catches every order".to_owned(),
        ),
        RuleMatch::NoMatch => reasons.push(format!(
            "Way of delivery {} matches no shipping rule: add a shipping rule for it",
            quote_way_of_delivery(code, description)
        )),
        RuleMatch::Conflict { rule_ids } => {
            let tied: Vec<String> = rule_ids
                .iter()
                .filter_map(|id| ctx.shipping_rules.iter().find(|rule| rule.id == *id))
                .map(|rule| format!("rule {} '{}' (shipping method {})", rule.id, rule.pattern.trim(), rule.shipping_method_id))
                .collect();
            reasons.push(format!(
                "Way of delivery {} matches shipping rules that are equally specific but choose different shipping methods: {}. Remove all but one of them, or add a more specific rule",
                quote_way_of_delivery(code, description),
                tied.join(", ")
            ));
        }
    }
    (None, None)
}

fn quote_way_of_delivery(code: &str, description: Option<&str>) -> String {
    match description {
        Some(description) if description != code => format!("'{code}' ({description})"),
        _ => format!("'{code}'"),
    }
}

/// Rule 5's last part: checked before anything is sent, because after shipping it is too
/// late: Fortnox would refuse the delivered quantities or create a back order.
fn check_fortnox_can_take_the_delivery(order: &OrderToCheck, reasons: &mut Vec<String>) {
    const CONSEQUENCE: &str =
        "or Fortnox cannot take the delivered quantities and will create a back order";
    let state = order
        .delivery_state
        .as_deref()
        .map(str::trim)
        .filter(|state| !state.is_empty());
    if !delivery_state_allows_delivery(state) {
        reasons.push(match state {
            Some(state) => format!("DeliveryState is '{state}': set Stock status to Delivery on the order in Fortnox, {CONSEQUENCE}"),
            None => format!("The order has no DeliveryState: set Stock status to Delivery on the order in Fortnox, {CONSEQUENCE}"),
        });
    }
    if order.warehouse_ready {
        reasons.push(
            "The order is already marked Delivery done (WarehouseReady) in Fortnox: Fortnox cannot take the delivered quantities any more and would create a back order, so undo Delivery done on the order in Fortnox (or cancel the order here if it was delivered another way)".to_owned(),
        );
    }
}

#[cfg(test)]
mod tests;
