//! The sandbox's data and Fortnox's document rules, free of HTTP.
//!
//! Orders, articles and invoices are kept as the shared wire types, so what the
//! sandbox serves is by construction what the client parses.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::faults::Faults;
use super::ws::WsState;

mod articles;
pub mod events;
mod invoices;
mod orders;
use events::{EventLog, Outbox};
use fortnox::limiter::SlidingWindow;
use fortnox::types::*;

/// Error codes (the ones not in docs/fortnox.md are **assumed** by the sandbox).
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
    /// assumed: crediting an invoice that already has a credit invoice
    pub const INVOICE_ALREADY_CREDITED: i64 = 2000852;
    /// assumed: crediting a credit invoice
    pub const INVOICE_IS_CREDIT: i64 = 2000853;
    /// assumed: crediting a cancelled invoice
    pub const INVOICE_CANCELLED: i64 = 2000854;
    /// assumed: `POST /3/articles` with an ArticleNumber in use
    pub const ARTICLE_EXISTS: i64 = 2000855;
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

/// Company information to give a tenant when creating it; a field left out
/// keeps the tenant's default (name `Sandbox company <tenant>`, a made-up
/// organisation number, a `DatabaseNumber` derived from the tenant id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompanySettings {
    #[serde(default)]
    pub company_name: Option<String>,
    /// `NNNNNN-NNNN`; not checked, and several tenants may share one (a
    /// company can have more than one Fortnox database).
    #[serde(default)]
    pub organization_number: Option<String>,
    /// The Fortnox tenant id; unique among the sandbox's tenants.
    #[serde(default)]
    pub database_number: Option<i64>,
}

/// Default `DatabaseNumber`s are six digits.
const DATABASE_NUMBERS: std::ops::RangeInclusive<i64> = 100_000..=999_999;

/// The default `DatabaseNumber` of tenant `id`: a hash of the id (FNV-1a,
/// stable across runs and Rust versions), moved on to the next free number
/// if another tenant has it.
fn claim_database_number(used: &mut BTreeSet<i64>, id: &str) -> i64 {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let (low, high) = (*DATABASE_NUMBERS.start(), *DATABASE_NUMBERS.end());
    let span = (high - low + 1) as u64;
    let mut n = low + (hash % span) as i64;
    // Far fewer tenants than numbers: this ends.
    while used.contains(&n) {
        n = if n == high { low } else { n + 1 };
    }
    used.insert(n);
    n
}

/// The default company of tenant `id` with `database_number`.
fn default_company(id: &str, database_number: i64) -> CompanyInformation {
    // Made up, `NNNNNN-NNNN`, one per database number.
    let organization_number = format!(
        "559{:03}-{:04}",
        (database_number / 10_000) % 1_000,
        database_number % 10_000
    );
    CompanyInformation {
        company_name: format!("Sandbox company {id}"),
        organization_number: Some(organization_number),
        database_number: Some(database_number),
        address: Some("Sandlådevägen 1".into()),
        zip_code: Some("111 22".into()),
        city: Some("Stockholm".into()),
        country_code: Some("SE".into()),
        visit_address: Some("Sandlådevägen 1".into()),
        visit_zip_code: Some("111 22".into()),
        visit_city: Some("Stockholm".into()),
        visit_country_code: Some("SE".into()),
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
    /// The sandbox's name of the tenant (`t1`, `demo`).
    pub id: String,
    pub settings: TenantSettings,
    /// What `GET /3/companyinformation` answers.
    pub company: CompanyInformation,
    pub orders: BTreeMap<u64, StoredOrder>,
    pub articles: BTreeMap<String, Article>,
    pub ways: Vec<WayOfDelivery>,
    pub invoices: BTreeMap<u64, Invoice>,
    next_order: u64,
    next_row_id: u64,
    next_invoice: u64,
    /// Where `Tenant::emit` queues events (shared with the state).
    outbox: Outbox,
}

#[derive(Debug, Clone)]
pub struct AccessToken {
    pub tenant: String,
    pub expires_at: Instant,
    /// Space-separated scopes, as in the token response.
    pub scope: String,
}

#[derive(Debug, Clone)]
pub struct RefreshToken {
    pub tenant: String,
    pub expires_at: Instant,
    pub used: bool,
    /// The scopes the access tokens it gives get.
    pub scope: String,
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
    pub windows: HashMap<String, SlidingWindow>,
    pub faults: Faults,
    pub calls: Vec<CallRecord>,
    /// Tenant that the authorize page approves for when none is named.
    pub authorize_tenant: Option<String>,
    /// Every tenant's `DatabaseNumber`, to keep them unique.
    database_numbers: BTreeSet<i64>,
    /// Every event emitted, per topic (the Topics WebSocket).
    pub events: EventLog,
    /// The WebSocket connections and their test switches.
    pub ws: WsState,
    /// Changes made under the current lock, not yet logged.
    outbox: Outbox,
}

impl State {
    /// The tenant, created with its defaults if it does not exist yet.
    pub fn tenant_mut(&mut self, id: &str) -> &mut Tenant {
        let used = &mut self.database_numbers;
        let outbox = &self.outbox;
        self.tenants
            .entry(id.to_string())
            .or_insert_with(|| Tenant::new(id, claim_database_number(used, id), outbox.clone()))
    }

    /// Overlays `company` on tenant `id`'s company information (creating the
    /// tenant first if needed). Refuses a `DatabaseNumber` another tenant has.
    pub fn set_company(&mut self, id: &str, company: CompanySettings) -> Result<(), String> {
        let current = self.tenant_mut(id).company.database_number;
        if let Some(n) = company.database_number.filter(|n| Some(*n) != current) {
            if self.database_numbers.contains(&n) {
                return Err(format!(
                    "DatabaseNumber {n} belongs to another tenant; each tenant is its own Fortnox company"
                ));
            }
            if let Some(old) = current {
                self.database_numbers.remove(&old);
            }
            self.database_numbers.insert(n);
        }
        let c = &mut self.tenant_mut(id).company;
        if let Some(name) = company.company_name {
            c.company_name = name;
        }
        if let Some(org) = company.organization_number {
            c.organization_number = Some(org);
        }
        if let Some(n) = company.database_number {
            c.database_number = Some(n);
        }
        Ok(())
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

impl Tenant {
    fn new(id: &str, database_number: i64, outbox: Outbox) -> Self {
        Tenant {
            id: id.to_string(),
            settings: TenantSettings::default(),
            company: default_company(id, database_number),
            orders: BTreeMap::new(),
            articles: BTreeMap::new(),
            ways: Vec::new(),
            invoices: BTreeMap::new(),
            next_order: 1,
            next_row_id: 1,
            next_invoice: 1001,
            outbox,
        }
    }

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
        let order = stored.order.clone();
        self.emit("orders", "order-cancelled-v1", &order.document_number);
        Ok(order)
    }

    pub fn set_warehouse_ready(&mut self, doc: &str) -> SResult<Order> {
        let stored = self.order_mut(doc)?;
        stored.order.warehouse_ready = true;
        stored.modified = now_naive();
        let order = stored.order.clone();
        self.emit("orders", "order-updated-v1", &order.document_number);
        Ok(order)
    }

    /// Control: the merchant marks the order done (`NotCompleted = false`).
    pub fn mark_done(&mut self, doc: &str) -> SResult<Order> {
        let stored = self.order_mut(doc)?;
        stored.order.not_completed = false;
        stored.modified = now_naive();
        let order = stored.order.clone();
        self.emit("orders", "order-updated-v1", &order.document_number);
        Ok(order)
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
