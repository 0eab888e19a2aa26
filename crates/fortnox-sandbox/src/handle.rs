//! The Rust-side control of a running sandbox (the `/sandbox` HTTP endpoints
//! call these same functions).

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use super::faults::FaultSpec;
use super::state::{
    AccessToken, CallRecord, CompanySettings, RefreshToken, SResult, SandboxError, State,
    TenantSettings,
};
use super::Shared;
use fortnox::types::{Article, CompanyInformation, Invoice, Order, TokenResponse, WayOfDelivery};

#[derive(Clone)]
pub struct SandboxHandle {
    pub(crate) shared: Arc<Shared>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackOrder {
    pub tenant: String,
    pub document_number: String,
    pub origin: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counters {
    /// resource -> status -> calls (API and token endpoint).
    pub calls: BTreeMap<String, BTreeMap<u16, u64>>,
    /// `tenant/DocumentNumber` -> invoices created from that order (credit
    /// invoices not counted).
    pub invoices_per_order: BTreeMap<String, u64>,
    /// `tenant/DocumentNumber` -> credit invoices of the order's invoices.
    #[serde(default)]
    pub credits_per_order: BTreeMap<String, u64>,
    pub back_orders: Vec<BackOrder>,
    /// Token requests by note (`refresh_token ok`, `refresh_token invalid_grant`, ...).
    pub token_requests: BTreeMap<String, u64>,
}

impl Counters {
    pub fn calls_with(&self, resource: &str, status: u16) -> u64 {
        self.calls
            .get(resource)
            .and_then(|m| m.get(&status))
            .copied()
            .unwrap_or(0)
    }
    pub fn calls_to(&self, resource: &str) -> u64 {
        self.calls
            .get(resource)
            .map(|m| m.values().sum())
            .unwrap_or(0)
    }
    pub fn total_with_status(&self, status: u16) -> u64 {
        self.calls.values().filter_map(|m| m.get(&status)).sum()
    }
    pub fn invoices_for(&self, tenant: &str, doc: &str) -> u64 {
        self.invoices_per_order
            .get(&format!("{tenant}/{doc}"))
            .copied()
            .unwrap_or(0)
    }
    /// Credit invoices of the invoices made from order `doc`.
    pub fn credits_for(&self, tenant: &str, doc: &str) -> u64 {
        self.credits_per_order
            .get(&format!("{tenant}/{doc}"))
            .copied()
            .unwrap_or(0)
    }
    pub fn token_requests_total(&self) -> u64 {
        self.token_requests.values().sum()
    }
}

pub(crate) fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// The scopes of the tokens the sandbox issues, unless told otherwise.
pub const DEFAULT_SCOPE: &str = "article companyinformation invoice order settings";

/// Issues a fresh access/refresh pair for `tenant` with `scope`
/// (space-separated; the refresh token passes it on).
pub(crate) fn issue_tokens(
    shared: &Shared,
    st: &mut State,
    tenant: &str,
    scope: &str,
) -> TokenResponse {
    let now = Instant::now();
    let access = random_token(48);
    let refresh = random_token(40);
    st.access.insert(
        access.clone(),
        AccessToken {
            tenant: tenant.into(),
            expires_at: now + shared.cfg.access_token_ttl,
            scope: scope.into(),
        },
    );
    st.refresh.insert(
        refresh.clone(),
        RefreshToken {
            tenant: tenant.into(),
            expires_at: now + shared.cfg.refresh_token_ttl,
            used: false,
            scope: scope.into(),
        },
    );
    TokenResponse {
        access_token: access,
        refresh_token: refresh,
        scope: Some(scope.into()),
        expires_in: shared.cfg.access_token_ttl.as_secs() as i64,
        token_type: Some("bearer".into()),
    }
}

impl SandboxHandle {
    /// Now, on the clock of the call log's `at_ms` (milliseconds since the start).
    pub fn now_ms(&self) -> u64 {
        self.shared.started.elapsed().as_millis() as u64
    }

    pub fn api_base(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn auth_base(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn create_tenant(&self, tenant: &str, settings: Option<TenantSettings>) {
        let mut st = self.shared.lock();
        let t = st.tenant_mut(tenant);
        if let Some(s) = settings {
            t.settings = s;
        }
    }

    /// Like [`Self::create_tenant`], and gives the tenant `company`'s fields
    /// (the others keep their defaults). Also on an existing tenant. Fails if
    /// another tenant has the `DatabaseNumber`. Returns what
    /// `GET /3/companyinformation` will answer.
    pub fn create_tenant_with_company(
        &self,
        tenant: &str,
        settings: Option<TenantSettings>,
        company: CompanySettings,
    ) -> anyhow::Result<CompanyInformation> {
        let mut st = self.shared.lock();
        st.set_company(tenant, company)
            .map_err(anyhow::Error::msg)?;
        let t = st.tenant_mut(tenant);
        if let Some(s) = settings {
            t.settings = s;
        }
        Ok(t.company.clone())
    }

    /// The tenant's company, as `GET /3/companyinformation` answers it.
    pub fn company(&self, tenant: &str) -> CompanyInformation {
        self.shared.lock().tenant_mut(tenant).company.clone()
    }

    pub fn set_settings(&self, tenant: &str, settings: TenantSettings) {
        self.shared.lock().tenant_mut(tenant).settings = settings;
    }

    pub fn settings(&self, tenant: &str) -> TenantSettings {
        self.shared.lock().tenant_mut(tenant).settings
    }

    /// Which tenant the authorize page approves for when the request names none.
    pub fn set_authorize_tenant(&self, tenant: &str) {
        let mut st = self.shared.lock();
        st.tenant_mut(tenant);
        st.authorize_tenant = Some(tenant.into());
    }

    pub fn add_articles(&self, tenant: &str, articles: Vec<Article>) {
        let mut st = self.shared.lock();
        let t = st.tenant_mut(tenant);
        for a in articles {
            t.upsert_article(a, &self.shared.base_url);
        }
    }

    /// Deletes an article, as `DELETE /3/articles/{n}` does, without a call
    /// in the log.
    pub fn delete_article(&self, tenant: &str, number: &str) -> SResult<Article> {
        self.shared.lock().tenant_mut(tenant).delete_article(number)
    }

    pub fn add_ways_of_delivery(&self, tenant: &str, ways: Vec<WayOfDelivery>) {
        let mut st = self.shared.lock();
        let t = st.tenant_mut(tenant);
        for w in ways {
            t.upsert_way(w, &self.shared.base_url);
        }
    }

    /// Creates an order from a Fortnox-shaped JSON object (the content of
    /// `{"Order":{...}}`), as `POST /3/orders` does.
    pub fn create_order(&self, tenant: &str, order: Value) -> SResult<Order> {
        let Value::Object(map) = order else {
            return Err(SandboxError::bad_json("an order must be a JSON object"));
        };
        self.shared
            .lock()
            .tenant_mut(tenant)
            .create_order(&map, &self.shared.base_url)
    }

    pub fn order(&self, tenant: &str, doc: &str) -> Option<Order> {
        self.shared
            .lock()
            .tenant_mut(tenant)
            .order(doc)
            .ok()
            .map(|s| s.order.clone())
    }

    pub fn orders(&self, tenant: &str) -> Vec<Order> {
        self.shared
            .lock()
            .tenant_mut(tenant)
            .orders
            .values()
            .map(|s| s.order.clone())
            .collect()
    }

    pub fn invoices(&self, tenant: &str) -> Vec<Invoice> {
        self.shared
            .lock()
            .tenant_mut(tenant)
            .invoices
            .values()
            .cloned()
            .collect()
    }

    /// Invoice `doc` as `GET /3/invoices/{doc}` shows it.
    pub fn invoice(&self, tenant: &str, doc: &str) -> Option<Invoice> {
        self.shared
            .lock()
            .tenant_mut(tenant)
            .invoice(doc)
            .ok()
            .cloned()
    }

    /// Every invoice whose `OrderReference` is order `order`, credit invoices
    /// included, by number.
    pub fn invoices_of_order(&self, tenant: &str, order: &str) -> Vec<Invoice> {
        self.shared
            .lock()
            .tenant_mut(tenant)
            .invoices_of_order(order)
    }

    /// Invoices order `order`, as `PUT /3/orders/{order}/createinvoice` does
    /// (back order and all), without a call in the log.
    pub fn create_invoice(&self, tenant: &str, order: &str) -> SResult<Invoice> {
        self.shared
            .lock()
            .tenant_mut(tenant)
            .create_invoice(order, &self.shared.base_url)
    }

    /// Credits invoice `doc` as `PUT /3/invoices/{doc}/credit` does (as if
    /// someone credited it by hand in Fortnox), without a call in the log.
    pub fn credit_invoice(&self, tenant: &str, doc: &str) -> SResult<Invoice> {
        self.shared
            .lock()
            .tenant_mut(tenant)
            .credit_invoice(doc, &self.shared.base_url)
    }

    /// Every article of a tenant.
    pub fn articles(&self, tenant: &str) -> Vec<Article> {
        let st = self.shared.lock();
        st.tenants
            .get(tenant)
            .map(|t| t.articles.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn article(&self, tenant: &str, number: &str) -> Option<Article> {
        self.shared
            .lock()
            .tenant_mut(tenant)
            .articles
            .get(number)
            .cloned()
    }

    /// The merchant marks the order as done in Fortnox.
    pub fn mark_done(&self, tenant: &str, doc: &str) -> SResult<Order> {
        self.shared.lock().tenant_mut(tenant).mark_done(doc)
    }

    pub fn cancel_order(&self, tenant: &str, doc: &str) -> SResult<Order> {
        self.shared.lock().tenant_mut(tenant).cancel_order(doc)
    }

    /// Tokens as if the merchant had just connected (skips the browser step).
    pub fn issue_tokens(&self, tenant: &str) -> TokenResponse {
        let mut st = self.shared.lock();
        st.tenant_mut(tenant);
        issue_tokens(&self.shared, &mut st, tenant, DEFAULT_SCOPE)
    }

    /// Like [`Self::issue_tokens`], with only `scope` (space-separated, e.g.
    /// `"article"`): the Topics WebSocket then sends the tenant only the
    /// topics those scopes cover. The REST API checks no scopes.
    pub fn issue_tokens_with_scope(&self, tenant: &str, scope: &str) -> TokenResponse {
        let mut st = self.shared.lock();
        st.tenant_mut(tenant);
        issue_tokens(&self.shared, &mut st, tenant, scope)
    }

    /// The merchant revoked the integration: every token of the tenant dies.
    pub fn revoke_tokens(&self, tenant: &str) {
        let mut st = self.shared.lock();
        st.access.retain(|_, a| a.tenant != tenant);
        st.refresh.retain(|_, r| r.tenant != tenant);
    }

    /// Expires access tokens now (all tenants when `tenant` is `None`).
    pub fn expire_access_tokens(&self, tenant: Option<&str>) {
        let now = Instant::now();
        let mut st = self.shared.lock();
        for a in st.access.values_mut() {
            if tenant.is_none_or(|t| a.tenant == t) {
                a.expires_at = now;
            }
        }
    }

    pub fn inject(&self, spec: FaultSpec) {
        self.shared.lock().faults.add(spec);
    }

    /// Removes every fault rule and releases the answers held back by
    /// injected latency.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
        self.shared.release_held();
    }

    pub fn calls(&self) -> Vec<CallRecord> {
        self.shared.lock().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.shared.lock().calls.clear();
    }

    pub fn counters(&self) -> Counters {
        let st = self.shared.lock();
        let mut c = Counters::default();
        for call in &st.calls {
            *c.calls
                .entry(call.resource.clone())
                .or_default()
                .entry(call.status)
                .or_default() += 1;
            if call.resource == "oauth/token" {
                let note = call.note.clone().unwrap_or_else(|| "unknown".into());
                *c.token_requests.entry(note).or_default() += 1;
            }
        }
        for (tenant_id, t) in &st.tenants {
            for inv in t.invoices.values() {
                let order = inv.order_reference.clone().unwrap_or_default();
                let per_order = if inv.is_credit() {
                    &mut c.credits_per_order
                } else {
                    &mut c.invoices_per_order
                };
                *per_order.entry(format!("{tenant_id}/{order}")).or_default() += 1;
            }
            for s in t.orders.values() {
                if let Some(origin) = &s.backorder_of {
                    c.back_orders.push(BackOrder {
                        tenant: tenant_id.clone(),
                        document_number: s.order.document_number.to_string(),
                        origin: origin.to_string(),
                    });
                }
            }
        }
        c
    }
}
