//! OAuth against the sandbox: the authorize round trip, the single-flight
//! refresh, and a revoked refresh token without a retry storm.

use std::collections::HashMap;

use crate::fortnox_common::*;
use fortnox_fulfilment::fortnox::types::DocumentNumber;
use fortnox_fulfilment::fortnox::{ErrorClass, FortnoxClient, FortnoxError, TokenSet, TokenState};

fn doc(n: &str) -> DocumentNumber {
    DocumentNumber::parse(n).expect("document number")
}

#[tokio::test]
async fn authorize_redirects_with_code_and_state_and_code_is_single_use() {
    let e = env().await;
    e.sb.create_order(TENANT, order_json("1")).expect("order");
    e.sb.set_authorize_tenant(TENANT);
    let url = e.client.oauth().authorize_url("state-123").expect("url");
    let parsed = reqwest::Url::parse(&url).expect("parse");
    let q: HashMap<String, String> = parsed.query_pairs().into_owned().collect();
    assert_eq!(parsed.path(), "/oauth-v1/auth");
    assert_eq!(
        q["scope"],
        "order article invoice settings companyinformation"
    );
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["state"], "state-123");
    assert_eq!(q["client_id"], "sandbox-client");
    assert_eq!(q["redirect_uri"], REDIRECT);

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http");
    let resp = http.get(&url).send().await.expect("authorize");
    assert!(resp.status().is_redirection());
    let location = resp.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(location.starts_with(REDIRECT), "{location}");
    let back = reqwest::Url::parse(&location).expect("location url");
    let bq: HashMap<String, String> = back.query_pairs().into_owned().collect();
    assert_eq!(bq["state"], "state-123");

    let tokens = e.client.connect("m2", &bq["code"]).await.expect("exchange");
    assert!(matches!(e.store.state("m2"), TokenState::Active(t) if t == tokens));
    let o = e
        .client
        .tenant("m2")
        .get_order(&doc("1"))
        .await
        .expect("api with new tokens");
    assert_eq!(o.document_number.as_str(), "1");

    let err = e
        .client
        .connect("m3", &bq["code"])
        .await
        .expect_err("code reused");
    assert_eq!(err.class(), ErrorClass::NeedsReauthorization);
}

#[tokio::test]
async fn bad_client_credentials_are_a_configuration_error() {
    let e = env().await;
    let mut cfg = client_config(&e.sandbox);
    cfg.client_secret = "wrong".into();
    let client = FortnoxClient::new(cfg, e.store.clone()).expect("client");
    let err = client
        .oauth()
        .refresh("whatever")
        .await
        .expect_err("invalid_client");
    assert!(matches!(err, FortnoxError::Config(_)), "{err:?}");
}

async fn twenty_concurrent_calls(e: &Env) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let t = e.client.tenant(MERCHANT);
        tasks.push(tokio::spawn(async move { t.get_order(&doc("1")).await }));
    }
    for task in tasks {
        task.await.expect("join").expect("call succeeds");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_callers_with_a_token_fortnox_rejects_make_one_refresh() {
    let e = env().await;
    e.sb.create_order(TENANT, order_json("1")).expect("order");
    // We believe the token is valid; Fortnox has expired it: 20 x 401.
    e.sb.expire_access_tokens(Some(TENANT));
    twenty_concurrent_calls(&e).await;
    let c = e.sb.counters();
    assert_eq!(c.token_requests_total(), 1, "{:?}", c.token_requests);
    assert_eq!(c.token_requests.get("refresh_token ok"), Some(&1));
    assert_eq!(c.calls_with("orders", 200), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_callers_with_an_expired_token_make_one_refresh() {
    let e = env().await;
    e.sb.create_order(TENANT, order_json("1")).expect("order");
    let TokenState::Active(mut t) = e.store.state(MERCHANT) else {
        panic!("connected")
    };
    t.access_expires_at = chrono::Utc::now() - chrono::Duration::seconds(1);
    e.store.put(MERCHANT, TokenState::Active(t.clone()));
    e.sb.expire_access_tokens(Some(TENANT));
    twenty_concurrent_calls(&e).await;
    let c = e.sb.counters();
    assert_eq!(c.token_requests_total(), 1, "{:?}", c.token_requests);
    assert_eq!(c.calls_with("orders", 401), 0, "refreshed before calling");
    assert_eq!(c.calls_with("orders", 200), 20);
    let TokenState::Active(new) = e.store.state(MERCHANT) else {
        panic!("still connected")
    };
    assert_ne!(
        new.refresh_token, t.refresh_token,
        "the rotated refresh token is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_refresh_token_needs_reauthorization_without_a_storm() {
    let e = env().await;
    e.sb.create_order(TENANT, order_json("1")).expect("order");
    e.sb.revoke_tokens(TENANT);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let t = e.client.tenant(MERCHANT);
        tasks.push(tokio::spawn(async move { t.get_order(&doc("1")).await }));
    }
    for task in tasks {
        let err = task.await.expect("join").expect_err("revoked");
        assert_eq!(err.class(), ErrorClass::NeedsReauthorization, "{err:?}");
    }
    assert!(matches!(
        e.store.state(MERCHANT),
        TokenState::NeedsReauthorization { .. }
    ));
    // Later jobs fail fast: no HTTP at all.
    for _ in 0..5 {
        let err = e
            .client
            .tenant(MERCHANT)
            .get_order(&doc("1"))
            .await
            .expect_err("still revoked");
        assert_eq!(err.class(), ErrorClass::NeedsReauthorization);
    }
    let c = e.sb.counters();
    assert_eq!(
        c.token_requests_total(),
        1,
        "one refresh attempt: {:?}",
        c.token_requests
    );
    assert_eq!(
        c.token_requests.get("refresh_token invalid_grant"),
        Some(&1)
    );
    assert!(
        c.calls_to("orders") <= 10,
        "at most one API call per concurrent caller"
    );

    // Reconnecting restores the merchant.
    let fresh = e.sb.issue_tokens(TENANT);
    e.store.put(
        MERCHANT,
        TokenState::Active(TokenSet::from_response(fresh, chrono::Utc::now())),
    );
    e.client
        .tenant(MERCHANT)
        .get_order(&doc("1"))
        .await
        .expect("reconnected");
}

#[tokio::test]
async fn in_memory_store_passes_the_token_store_contract() {
    let store = fortnox_sandbox::InMemoryTokenStore::new();
    fortnox_sandbox::testkit::check_token_store(store, "merchant-x").await;
}
