//! The sandbox's data and Fortnox's document rules, free of HTTP.
//!
//! Orders, articles and invoices are kept as the shared wire types, so what the
//! sandbox serves is by construction what the client parses.

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::faults::Faults;
use crate::fortnox::types::*;

/// Error codes (the ones not in fortnox-api.md are **assumed** by the sandbox).
pub mod codes {
    pub const INVALID_FILTER: i64 = 2000587;
    pub const ORDER_NOT_FOUND: i64 = 2000439;
    pub const ARTICLE_NOT_FOUND: i64 = 2000428;
    pub const MISSING_TOKEN: i64 = 2000311;
    pub const BAD_JSON: i64 = 2002115;
    /// assumed: delivered quantity outside `delivery` state / after WarehouseReady
    pub const DELIVERY_LOCKED: i64 = 2000850;
    /// assumed: change to a cancelled or invoiced order, unknown RowId
    pub const ORDER_LOCKED: i64 = 2000851;
    /// assumed
    pub const INVOICE_NOT_FOUND: i64 = 2000434;
    pub const WAY_NOT_FOUND: i64 = 2000435;
}

/// An error in Fortnox's shape: status, `ErrorInformation`, and the key casing
/// this endpoint uses.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxError {
    pub status: u16,
    pub info: ErrorInformation,
    pub casing: KeyCasing,
}

impl SandboxError {
    pub fn bad_request(message: impl Into<String>, code: i64) -> Self {
        SandboxError {
            status: 400,
            info: ErrorInformation::new(message, code),
            casing: KeyCasing::Lower,
        }
    }
    pub fn not_found(message: impl Into<String>, code: i64) -> Self {
        SandboxError {
            status: 404,
            info: ErrorInformation::new(message, code),
            casing: KeyCasing::Pascal,
        }
    }
    pub fn bad_json(e: impl std::fmt::Display) -> Self {
        Self::bad_request(format!("Ogiltig JSON: {e}"), codes::BAD_JSON)
    }
}

pub type SResult<T> = Result<T, SandboxError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    /// Fortnox's "Select 'Delivery done' automatically when creating invoice".
    pub delivery_done_on_invoice: bool,
}

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            delivery_done_on_invoice: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoredOrder {
    pub order: Order,
    pub modified: NaiveDateTime,
    /// For back orders: the order they were split from.
    pub backorder_of: Option<DocumentNumber>,
}

#[derive(Debug)]
pub struct Tenant {
    pub settings: TenantSettings,
    pub orders: BTreeMap<u64, StoredOrder>,
    pub articles: BTreeMap<String, Article>,
    pub ways: Vec<WayOfDelivery>,
    pub invoices: BTreeMap<u64, Invoice>,
    next_order: u64,
    next_row_id: u64,
    next_invoice: u64,
}

#[derive(Debug, Clone)]
pub struct AccessToken {
    pub tenant: String,
    pub expires_at: Instant,
}

#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub tenant: String,
    pub expires_at: Instant,
    pub used: bool,
}

#[derive(Debug, Clone)]
pub struct AuthCode {
    pub tenant: String,
    pub redirect_uri: String,
    pub expires_at: Instant,
    pub used: bool,
}

/// One request the sandbox answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallRecord {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: String,
    pub resource: String,
    pub status: u16,
    pub tenant: Option<String>,
    /// e.g. the grant type and outcome of a token request.
    pub note: Option<String>,
    pub at_ms: u64,
}

#[derive(Debug, Default)]
pub struct State {
    pub tenants: BTreeMap<String, Tenant>,
    pub access: HashMap<String, AccessToken>,
    pub refresh: HashMap<String, RefreshToken>,
    pub codes: HashMap<String, AuthCode>,
    /// Accepted request times per access token (the sliding window).
    pub windows: HashMap<String, VecDeque<Instant>>,
    pub faults: Faults,
    pub calls: Vec<CallRecord>,
    /// Tenant that the authorize page approves for when none is named.
    pub authorize_tenant: Option<String>,
}

impl State {
    pub fn tenant_mut(&mut self, id: &str) -> &mut Tenant {
        self.tenants.entry(id.to_string()).or_default()
    }
}

pub fn now_naive() -> NaiveDateTime {
    Utc::now().naive_utc()
}

fn today() -> String {
    Utc::now().date_naive().format("%Y-%m-%d").to_string()
}

/// Overlays the keys of `patch` on `base` (both JSON objects).
fn merge(base: &mut Value, patch: &Map<String, Value>) {
    if let Value::Object(b) = base {
        for (k, v) in patch {
            b.insert(k.clone(), v.clone());
        }
    }
}

impl Default for Tenant {
    fn default() -> Self {
        Tenant {
            settings: TenantSettings::default(),
            orders: BTreeMap::new(),
            articles: BTreeMap::new(),
            ways: Vec::new(),
            invoices: BTreeMap::new(),
            next_order: 1,
            next_row_id: 1,
            next_invoice: 1001,
        }
    }
}

impl Tenant {
    fn row_id(&mut self) -> u64 {
        let id = self.next_row_id;
        self.next_row_id += 1;
        id
    }

    pub fn order(&self, doc: &str) -> SResult<&StoredOrder> {
        doc.parse::<u64>()
            .ok()
            .and_then(|n| self.orders.get(&n))
            .ok_or_else(|| {
                SandboxError::not_found("Kan inte hitta ordern.", codes::ORDER_NOT_FOUND)
            })
    }

    fn order_mut(&mut self, doc: &str) -> SResult<&mut StoredOrder> {
        doc.parse::<u64>()
            .ok()
            .and_then(|n| self.orders.get_mut(&n))
            .ok_or_else(|| {
                SandboxError::not_found("Kan inte hitta ordern.", codes::ORDER_NOT_FOUND)
            })
    }

    /// `POST /3/orders`: fills in what Fortnox fills in and numbers the rows.
    pub fn create_order(&mut self, body: &Map<String, Value>, base_url: &str) -> SResult<Order> {
        let number = match body.get("DocumentNumber") {
            Some(v) => {
                let d: DocumentNumber =
                    serde_json::from_value(v.clone()).map_err(SandboxError::bad_json)?;
                if self.orders.contains_key(&d.number()) {
                    return Err(SandboxError::bad_request(
                        "Dokumentnumret används redan.",
                        codes::ORDER_LOCKED,
                    ));
                }
                d.number()
            }
            None => {
                while self.orders.contains_key(&self.next_order) {
                    self.next_order += 1;
                }
                self.next_order
            }
        };
        let mut v = serde_json::json!({
            "DocumentNumber": number.to_string(),
            "OrderDate": today(),
            "DeliveryDate": null,
            "DeliveryState": "delivery",
            "InvoiceReference": "0",
            "OrderType": "Order",
            "Currency": "SEK",
            "Cancelled": false,
            "NotCompleted": false,
            "WarehouseReady": false,
            "StockPointCode": null,
        });
        let mut patch = body.clone();
        patch.remove("DocumentNumber");
        merge(&mut v, &patch);
        let mut order: Order = serde_json::from_value(v).map_err(SandboxError::bad_json)?;
        order.url = Some(format!("{base_url}/3/orders/{number}"));
        for i in 0..order.order_rows.len() {
            let id = self.row_id();
            let row = &mut order.order_rows[i];
            row.row_id = Some(id);
            row.delivered_quantity.get_or_insert(Quantity::ZERO);
            row.reserved_quantity.get_or_insert(Quantity::ZERO);
            row.ordered_quantity.get_or_insert(Quantity::ZERO);
            row.discount.get_or_insert(Quantity::ZERO);
            row.discount_type.get_or_insert_with(|| "PERCENT".into());
            row.unit.get_or_insert_with(String::new);
        }
        order.total = Some(total(&order.order_rows, |r| r.ordered_quantity));
        self.next_order = self.next_order.max(number + 1);
        self.orders.insert(
            number,
            StoredOrder {
                order: order.clone(),
                modified: now_naive(),
                backorder_of: None,
            },
        );
        Ok(order)
    }

    /// `PUT /3/orders/{n}`: header fields are overlaid; `OrderRows`, when
    /// present, replaces the rows by the RowId rules.
    pub fn update_order(&mut self, doc: &str, body: &Map<String, Value>) -> SResult<Order> {
        let rows: Option<Vec<RowUpdate>> = match body.get("OrderRows") {
            Some(v) => Some(serde_json::from_value(v.clone()).map_err(SandboxError::bad_json)?),
            None => None,
        };
        let current = self.order(doc)?.order.clone();
        if current.cancelled {
            return Err(SandboxError::bad_request(
                "Ordern är makulerad och kan inte ändras.",
                codes::ORDER_LOCKED,
            ));
        }
        if current.invoice().is_some() {
            return Err(SandboxError::bad_request(
                "Ordern är fakturerad och kan inte ändras.",
                codes::ORDER_LOCKED,
            ));
        }
        let mut header = body.clone();
        for fixed in [
            "OrderRows",
            "DocumentNumber",
            "InvoiceReference",
            "WarehouseReady",
            "@url",
        ] {
            header.remove(fixed);
        }
        let mut v = serde_json::to_value(&current).map_err(SandboxError::bad_json)?;
        merge(&mut v, &header);
        let mut updated: Order = serde_json::from_value(v).map_err(SandboxError::bad_json)?;
        if let Some(rows) = rows {
            let mut new_rows = Vec::with_capacity(rows.len());
            for ru in rows {
                let mut row = match ru.row_id {
                    Some(id) => current
                        .order_rows
                        .iter()
                        .find(|r| r.row_id == Some(id))
                        .cloned()
                        .ok_or_else(|| {
                            SandboxError::bad_request(
                                format!("Orderrad med RowId {id} finns inte."),
                                codes::ORDER_LOCKED,
                            )
                        })?,
                    None => blank_row(),
                };
                let before = row.delivered_quantity.unwrap_or(Quantity::ZERO);
                if let Some(a) = ru.article_number {
                    row.article_number = Some(a);
                }
                if let Some(d) = ru.description {
                    row.description = Some(d);
                }
                if let Some(q) = ru.ordered_quantity {
                    row.ordered_quantity = Some(q);
                }
                if let Some(p) = ru.price {
                    row.price = Some(p);
                }
                if let Some(q) = ru.delivered_quantity {
                    if q != before && (!updated.in_delivery_state() || updated.warehouse_ready) {
                        return Err(SandboxError::bad_request(
                            "Levererat antal kan endast ändras när leveransstatus är Leverans och ordern inte är levererad.",
                            codes::DELIVERY_LOCKED,
                        ));
                    }
                    row.delivered_quantity = Some(q);
                }
                new_rows.push(row);
            }
            updated.order_rows = new_rows;
        }
        // Fortnox renumbers every row after every update.
        for i in 0..updated.order_rows.len() {
            let id = self.row_id();
            updated.order_rows[i].row_id = Some(id);
        }
        updated.total = Some(total(&updated.order_rows, |r| r.ordered_quantity));
        let stored = self.order_mut(doc)?;
        stored.order = updated.clone();
        stored.modified = now_naive();
        Ok(updated)
    }

    /// `PUT /3/orders/{n}/createinvoice`. Not idempotent, as in Fortnox: every
    /// call makes an invoice (and a back order for rows delivered short).
    pub fn create_invoice(&mut self, doc: &str, base_url: &str) -> SResult<Invoice> {
        let order = self.order(doc)?.order.clone();
        if order.cancelled {
            return Err(SandboxError::bad_request(
                "Ordern är makulerad.",
                codes::ORDER_LOCKED,
            ));
        }
        let number = self.next_invoice;
        self.next_invoice += 1;
        let rows: Vec<InvoiceRow> = order
            .order_rows
            .iter()
            .map(|r| InvoiceRow {
                article_number: r.article_number.clone(),
                description: r.description.clone(),
                delivered_quantity: Some(r.delivered_quantity.unwrap_or(Quantity::ZERO)),
                price: r.price,
            })
            .collect();
        let invoice = Invoice {
            url: Some(format!("{base_url}/3/invoices/{number}")),
            document_number: DocumentNumber::from_u64(number),
            order_reference: Some(order.document_number.to_string()),
            customer_number: order.customer_number.clone(),
            invoice_date: Some(today()),
            total: Some(total(&order.order_rows, |r| r.delivered_quantity)),
            cancelled: false,
            invoice_rows: rows,
        };
        self.invoices.insert(number, invoice.clone());

        let short: Vec<OrderRow> = order
            .order_rows
            .iter()
            .filter_map(|r| {
                let ordered = r.ordered_quantity.unwrap_or(Quantity::ZERO);
                let delivered = r.delivered_quantity.unwrap_or(Quantity::ZERO);
                (delivered < ordered).then(|| OrderRow {
                    ordered_quantity: Some(Quantity(ordered.0 - delivered.0)),
                    delivered_quantity: Some(Quantity::ZERO),
                    reserved_quantity: Some(Quantity::ZERO),
                    ..r.clone()
                })
            })
            .collect();
        if !short.is_empty() {
            self.create_backorder(&order, short, base_url);
        }
        let delivery_done = self.settings.delivery_done_on_invoice;
        let stored = self.order_mut(doc)?;
        stored.order.invoice_reference = Some(number.to_string());
        if delivery_done {
            stored.order.warehouse_ready = true;
        }
        stored.modified = now_naive();
        Ok(invoice)
    }

    fn create_backorder(&mut self, origin: &Order, rows: Vec<OrderRow>, base_url: &str) {
        while self.orders.contains_key(&self.next_order) {
            self.next_order += 1;
        }
        let number = self.next_order;
        self.next_order += 1;
        let mut order = origin.clone();
        order.url = Some(format!("{base_url}/3/orders/{number}"));
        order.document_number = DocumentNumber::from_u64(number);
        order.order_type = Some("Backorder".into());
        order.invoice_reference = Some("0".into());
        order.warehouse_ready = false;
        order.order_rows = rows;
        for i in 0..order.order_rows.len() {
            let id = self.row_id();
            order.order_rows[i].row_id = Some(id);
        }
        order.total = Some(total(&order.order_rows, |r| r.ordered_quantity));
        self.orders.insert(
            number,
            StoredOrder {
                order,
                modified: now_naive(),
                backorder_of: Some(origin.document_number.clone()),
            },
        );
    }

    pub fn cancel_order(&mut self, doc: &str) -> SResult<Order> {
        let stored = self.order_mut(doc)?;
        if stored.order.invoice().is_some() {
            return Err(SandboxError::bad_request(
                "Ordern är fakturerad och kan inte makuleras.",
                codes::ORDER_LOCKED,
            ));
        }
        stored.order.cancelled = true;
        stored.modified = now_naive();
        Ok(stored.order.clone())
    }

    pub fn set_warehouse_ready(&mut self, doc: &str) -> SResult<Order> {
        let stored = self.order_mut(doc)?;
        stored.order.warehouse_ready = true;
        stored.modified = now_naive();
        Ok(stored.order.clone())
    }

    /// Control: the merchant marks the order done (`NotCompleted = false`).
    pub fn mark_done(&mut self, doc: &str) -> SResult<Order> {
        let stored = self.order_mut(doc)?;
        stored.order.not_completed = false;
        stored.modified = now_naive();
        Ok(stored.order.clone())
    }

    pub fn article(&self, number: &str) -> SResult<&Article> {
        self.articles.get(number).ok_or_else(|| {
            SandboxError::not_found("Kan inte hitta artikeln.", codes::ARTICLE_NOT_FOUND)
        })
    }

    pub fn upsert_article(&mut self, mut a: Article, base_url: &str) -> Article {
        a.url = Some(format!("{base_url}/3/articles/{}", a.article_number));
        let reserved = a.reserved_quantity.unwrap_or(Quantity::ZERO);
        a.reserved_quantity = Some(reserved);
        if let Some(q) = a.quantity_in_stock {
            a.disposable_quantity = Some(Quantity(q.0 - reserved.0));
        }
        self.articles.insert(a.article_number.clone(), a.clone());
        a
    }

    /// `PUT /3/articles/{n}`: overlays the given fields.
    pub fn update_article(
        &mut self,
        number: &str,
        body: &Map<String, Value>,
        base_url: &str,
    ) -> SResult<Article> {
        let current = self.article(number)?.clone();
        let mut v = serde_json::to_value(&current).map_err(SandboxError::bad_json)?;
        let mut patch = body.clone();
        patch.remove("ArticleNumber");
        merge(&mut v, &patch);
        let a: Article = serde_json::from_value(v).map_err(SandboxError::bad_json)?;
        Ok(self.upsert_article(a, base_url))
    }

    pub fn upsert_way(&mut self, mut w: WayOfDelivery, base_url: &str) {
        w.url = Some(format!("{base_url}/3/wayofdeliveries/{}", w.code));
        self.ways.retain(|x| x.code != w.code);
        self.ways.push(w);
    }
}

fn blank_row() -> OrderRow {
    OrderRow {
        row_id: None,
        article_number: None,
        description: None,
        ordered_quantity: Some(Quantity::ZERO),
        delivered_quantity: Some(Quantity::ZERO),
        reserved_quantity: Some(Quantity::ZERO),
        price: None,
        unit: Some(String::new()),
        vat: None,
        discount: Some(Quantity::ZERO),
        discount_type: Some("PERCENT".into()),
        account_number: None,
        stock_point_code: None,
    }
}

fn total(rows: &[OrderRow], qty: impl Fn(&OrderRow) -> Option<Quantity>) -> Quantity {
    let sum: Decimal = rows
        .iter()
        .map(|r| qty(r).unwrap_or(Quantity::ZERO).0 * r.price.unwrap_or(Quantity::ZERO).0)
        .sum();
    Quantity(sum)
}

/// The list-item subset of an order, as `GET /3/orders` shows it.
pub fn list_item(o: &Order) -> OrderListItem {
    OrderListItem {
        url: o.url.clone(),
        cancelled: o.cancelled,
        currency: o.currency.clone(),
        customer_name: o.customer_name.clone(),
        customer_number: o.customer_number.clone(),
        delivery_date: o.delivery_date.clone(),
        document_number: o.document_number.clone(),
        external_invoice_reference1: Some(String::new()),
        external_invoice_reference2: Some(String::new()),
        order_date: o.order_date.clone(),
        order_type: o.order_type.clone(),
        project: Some(String::new()),
        sent: false,
        total: o.total,
    }
}
