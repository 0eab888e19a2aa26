//! The test switches: drop, mute, duplicate, reorder, expiry with the token;
//! on the handle and over HTTP.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;
use fortnox_sandbox::testkit::article;
use fortnox_sandbox::{WsConnectionInfo, WsCounters, REORDER_DELAY};

/// Waits until the sandbox counts `n` open connections.
async fn connections_become(sb: &fortnox_sandbox::SandboxHandle, n: usize) {
    let deadline = Instant::now() + WAIT;
    while sb.ws_connections().len() != n {
        assert!(Instant::now() < deadline, "{:?}", sb.ws_connections());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn dropping_connections_cuts_them_without_a_close_frame() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let mut a = subscribed(&sb, &["t1"], &["orders"]).await;
    let mut b = connect(&sb).await;
    connections_become(&sb, 2).await;
    assert_eq!(sb.ws_drop_connections(), 2);
    assert_eq!(a.end(WAIT).await, End::Dropped);
    assert_eq!(b.end(WAIT).await, End::Dropped);
    connections_become(&sb, 0).await;
    // The client comes back and adds its tenants again.
    let _again = subscribed(&sb, &["t1"], &["orders"]).await;
    let counters = sb.ws_counters();
    assert_eq!(counters.command("add-tenants-v1"), 2);
    assert_eq!(counters.connections_opened, 3);
    assert_eq!(counters.connections_open, 1);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_muted_tenant_emits_nothing() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let mut c = subscribed(&sb, &["t1", "t2"], &["orders"]).await;
    sb.ws_mute_tenant("t1", true);
    sb.create_order("t1", json!({})).expect("order");
    sb.create_order("t2", json!({})).expect("order");
    let e = c.event().await;
    assert_eq!(e["tenantId"], json!(sb.tenant_id("t2")));
    c.quiet().await;
    assert_eq!(sb.ws_events("orders").len(), 1, "nothing logged for t1");
    sb.ws_mute_tenant("t1", false);
    sb.mark_done("t1", "1").expect("done");
    let e = c.event().await;
    assert_eq!(e["tenantId"], json!(sb.tenant_id("t1")));
    assert_eq!(what(&e), ev("orders", "order-updated-v1", "1"));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn duplicated_events_come_twice_with_the_same_offset() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let mut c = subscribed(&sb, &["t1"], &["orders"]).await;
    sb.ws_duplicate_events(true);
    sb.create_order("t1", json!({})).expect("order");
    let first = c.event().await;
    assert_eq!(c.event().await, first);
    c.quiet().await;
    assert_eq!(sb.ws_events("orders").len(), 1);
    sb.ws_duplicate_events(false);
    sb.create_order("t1", json!({})).expect("order");
    c.event().await;
    c.quiet().await;
    sandbox.shutdown().await;
}

#[tokio::test]
async fn reordering_holds_orders_back_and_keeps_the_order_within_the_topic() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let mut c = subscribed(&sb, &["t1"], &["orders", "articles"]).await;
    sb.ws_reorder_topics(true);
    let start = Instant::now();
    sb.create_order("t1", json!({})).expect("order");
    sb.mark_done("t1", "1").expect("done");
    sb.add_articles("t1", vec![article("A1", true, 1)]);
    // The article, made last, overtakes the orders.
    assert_eq!(
        what(&c.event().await),
        ev("articles", "article-created-v1", "A1")
    );
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-created-v1", "1")
    );
    assert!(start.elapsed() >= REORDER_DELAY);
    // Switched off while one is held: the next one still comes after it.
    sb.cancel_order("t1", "1").expect("cancel");
    sb.ws_reorder_topics(false);
    sb.create_order("t1", json!({})).expect("order");
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-updated-v1", "1")
    );
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-cancelled-v1", "1")
    );
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-created-v1", "2")
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn tenants_outlive_their_token_unless_the_expiry_switch_is_on() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let mut c = subscribed(&sb, &["t1"], &["orders"]).await;
    sb.expire_access_tokens(Some("t1"));
    sb.create_order("t1", json!({})).expect("order");
    c.event().await;

    sb.ws_expire_tenants_with_token(true);
    sb.create_order("t1", json!({})).expect("order");
    c.quiet().await;
    let r = c.command(json!({"command": "list-tenants-v1"})).await;
    assert_eq!(r["tenantIds"], json!([]));
    assert!(sb.ws_connections()[0].tenant_ids.is_empty());
    // A fresh token brings the tenant back.
    let fresh = token(&sb, "t1");
    assert_eq!(c.add_tenants(&[&fresh]).await["result"], "ok");
    sb.create_order("t1", json!({})).expect("order");
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-created-v1", "3")
    );
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_switches_and_readings_over_http() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}/sandbox{p}", sb.api_base());
    let ok = |r: reqwest::Response| {
        assert!(r.status().is_success(), "{}", r.status());
        r
    };

    let tokens: Value = ok(http
        .post(url("/tenants/t1/tokens"))
        .json(&json!({"scope": "order"}))
        .send()
        .await
        .expect("tokens"))
    .json()
    .await
    .expect("json");
    assert_eq!(tokens["scope"], "order");
    let id: Value = ok(http.get(url("/ws/tenant-id/t1")).send().await.expect("id"))
        .json()
        .await
        .expect("json");
    assert_eq!(id["tenant_id"], json!(sb.tenant_id("t1")));
    let r = http
        .get(url("/ws/tenant-id/none"))
        .send()
        .await
        .expect("id");
    assert_eq!(r.status(), 404);

    let tok = tokens["access_token"].as_str().expect("token").to_string();
    let mut c = connect(&sb).await;
    c.setup(&[&tok], &["orders", "articles"]).await;
    let put = |p: &str, body: Value| http.put(url(p)).json(&body).send();
    ok(put("/ws/duplicate", json!({"on": true}))
        .await
        .expect("duplicate"));
    sb.create_order("t1", json!({})).expect("order");
    assert_eq!(c.event().await, c.event().await);
    ok(put("/ws/duplicate", json!({"on": false}))
        .await
        .expect("duplicate"));
    ok(put("/ws/mute", json!({"tenant": "t1", "muted": true}))
        .await
        .expect("mute"));
    sb.create_order("t1", json!({})).expect("order");
    c.quiet().await;
    ok(put("/ws/mute", json!({"tenant": "t1", "muted": false}))
        .await
        .expect("mute"));
    ok(put("/ws/reorder", json!({"on": true}))
        .await
        .expect("reorder"));
    ok(put("/ws/reorder", json!({"on": false}))
        .await
        .expect("reorder"));
    ok(put("/ws/expire-tenants-with-token", json!({"on": true}))
        .await
        .expect("expiry"));
    sb.expire_access_tokens(None);
    sb.create_order("t1", json!({})).expect("order");
    c.quiet().await;

    let conns: Vec<WsConnectionInfo> = ok(http
        .get(url("/ws/connections"))
        .send()
        .await
        .expect("conns"))
    .json()
    .await
    .expect("json");
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].topics, vec!["articles", "orders"]);
    assert!(conns[0].subscribed && conns[0].tenant_ids.is_empty());
    let events: Vec<Value> = ok(http
        .get(url("/ws/events/orders"))
        .send()
        .await
        .expect("events"))
    .json()
    .await
    .expect("json");
    assert_eq!(events, sb.ws_events("orders"));
    assert_eq!(events.len(), 2, "the muted change was not logged");
    let counters: WsCounters = ok(http
        .get(url("/ws/counters"))
        .send()
        .await
        .expect("counters"))
    .json()
    .await
    .expect("json");
    assert_eq!(counters, sb.ws_counters());
    assert_eq!(counters.command("subscribe-v1"), 1);

    let dropped: Value = ok(http.post(url("/ws/drop")).send().await.expect("drop"))
        .json()
        .await
        .expect("json");
    assert_eq!(dropped, json!({"dropped": 1}));
    assert_eq!(c.end(WAIT).await, End::Dropped);
    let r = put("/ws/duplicate", json!({"no": 1}))
        .await
        .expect("bad body");
    assert!(r.status().is_client_error());
    sandbox.shutdown().await;
}
