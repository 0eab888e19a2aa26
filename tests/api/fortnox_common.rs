//! Shared setup for the Fortnox tests: a sandbox on loopback, tenant `t1`
//! connected as merchant `m1` in an in-memory token store.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use fortnox_fulfilment::fortnox::limiter::RateLimit;
use fortnox_fulfilment::fortnox::{
    FortnoxClient, FortnoxConfig, RetryPolicy, TokenSet, TokenState,
};
use fortnox_sandbox::{InMemoryTokenStore, Sandbox, SandboxConfig, SandboxHandle};
use serde_json::json;

pub const TENANT: &str = "t1";
pub const MERCHANT: &str = "m1";
pub const REDIRECT: &str = "http://localhost:9/oauth/fortnox/callback";

pub struct Env {
    pub sandbox: Sandbox,
    pub sb: SandboxHandle,
    pub client: FortnoxClient,
    pub store: Arc<InMemoryTokenStore>,
}

/// Fast retries and a short request timeout so fault tests stay quick.
pub fn client_config(sandbox: &Sandbox) -> FortnoxConfig {
    let mut cfg = FortnoxConfig::new(
        sandbox.api_base(),
        sandbox.auth_base(),
        "sandbox-client",
        "sandbox-secret",
        REDIRECT,
    );
    cfg.retry = RetryPolicy {
        max_attempts: 6,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
    };
    cfg.request_timeout = Duration::from_secs(2);
    cfg
}

pub async fn env_with(sandbox_cfg: SandboxConfig, client_rate: Option<RateLimit>) -> Env {
    let sandbox = Sandbox::start(sandbox_cfg).await.expect("sandbox starts");
    let sb = sandbox.handle();
    sb.create_tenant(TENANT, None);
    let store = InMemoryTokenStore::new();
    let tokens = sb.issue_tokens(TENANT);
    store.put(
        MERCHANT,
        TokenState::Active(TokenSet::from_response(tokens, chrono::Utc::now())),
    );
    let mut cfg = client_config(&sandbox);
    cfg.rate_limit = client_rate;
    let client = FortnoxClient::new(cfg, store.clone()).expect("client");
    Env {
        sandbox,
        sb,
        client,
        store,
    }
}

/// Sandbox without the rate limit (tests that are not about it).
pub async fn env() -> Env {
    env_with(
        SandboxConfig {
            rate_limit: None,
            ..SandboxConfig::default()
        },
        None,
    )
    .await
}

/// An order with two stock rows, quantities given as Fortnox strings.
pub fn order_json(customer: &str) -> serde_json::Value {
    json!({
        "CustomerNumber": customer, "CustomerName": "Test customer",
        "Address1": "Storgatan 1", "ZipCode": "111 22", "City": "Stockholm", "Country": "Sverige",
        "OrderDate": "2026-11-01", "WayOfDelivery": "DHL",
        "OrderRows": [
            {"ArticleNumber": "101", "Description": "Hammer", "OrderedQuantity": "2", "Price": 100, "VAT": 25},
            {"ArticleNumber": "102", "Description": "Nails", "OrderedQuantity": "1.5", "Price": 10, "VAT": 25}
        ]
    })
}

/// The browser step of OAuth for sandbox tenant `tenant` (the sandbox-only
/// `tenant` parameter on the client's authorize URL): the callback's `code`.
pub async fn authorize_code(e: &Env, tenant: &str) -> String {
    let url = e.client.oauth().authorize_url("state-1").expect("url");
    let mut url = reqwest::Url::parse(&url).expect("parse");
    url.query_pairs_mut().append_pair("tenant", tenant);
    fortnox_sandbox::approve(url.as_str())
        .await
        .expect("approved")
        .code
}
