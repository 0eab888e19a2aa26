//! What one query or a burst of calls may cost: complexity multiplied by list sizes, live
//! Fortnox reads shared between aliases and callers, and `syncOrders` coalesced, so that a
//! read-only partner cannot spend the server's memory or the merchant's Fortnox budget.
use std::time::Duration;

use fortnox_fulfilment::auth::Role;
use fortnox_fulfilment::store::orders::NewOrderLine;
use fortnox_sandbox::FaultSpec;
use serde_json::{json, Value};

use crate::common::{self, error_code, error_message, eventually, token, TestApp};
use crate::flow::Flow;

/// `count` aliases of `field`, which uses the variable `$v`.
fn aliases(count: usize, field: &str) -> String {
    let fields: Vec<String> = (0..count).map(|i| format!("a{i}: {field}")).collect();
    format!("query($v: ID!) {{ {} }}", fields.join(" "))
}

#[tokio::test]
async fn long_lists_count_towards_the_complexity_limit() {
    let app = TestApp::spawn().await;
    let merchant = common::create_merchant(app.store(), "Big Orders AB").await;
    let mut order = common::fixture_order(merchant, "1", "1");
    order.lines = (0..1_000)
        .map(|row| NewOrderLine {
            fortnox_row_id: Some(row),
            article_number: Some(format!("ART-{row}")),
            description: "A line of a long order".into(),
            ordered_quantity: "1".into(),
        })
        .collect();
    let id = app
        .store()
        .insert_order(order)
        .await
        .expect("insert")
        .expect("new")
        .id;
    let partner = token(Role::Partner, vec![merchant]);
    let vars = json!({ "v": id.to_string() });
    let lines = "order(id: $v) { id lines { id articleNumber orderedQuantity } }";

    // 300 aliases of a 1,000-line order: 23 MB of answer before; refused unread now.
    let (status, body) = app
        .graphql_status(Some(&partner), &aliases(300, lines), vars.clone())
        .await;
    assert_eq!(status, 200);
    assert_eq!(error_code(&body), Some("INVALID_INPUT"), "{body}");
    assert!(error_message(&body).contains("complex"), "{body}");
    // So is a full page of orders with their lines.
    let page = "query { orders(first: 200) { edges { node { id lines { id articleNumber orderedQuantity } } } } }";
    let (_, body) = app.graphql_status(Some(&partner), page, json!({})).await;
    assert_eq!(error_code(&body), Some("INVALID_INPUT"), "{body}");

    // What a frontend or a warehouse asks for still runs: one order with all its lines,
    // a page of 200 orders with their lines' pick quantities, a list page of 200.
    let (_, body) = app
        .graphql_status(Some(&partner), &aliases(1, lines), vars.clone())
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(
        body["data"]["a0"]["lines"].as_array().map(Vec::len),
        Some(1_000)
    );
    for query in [
        "query { orders(states: [SENT], first: 200) { edges { node { id lines { id pickQuantity } } } } }",
        "query { orders(first: 200) { edges { node { id state fortnoxDocumentNumber updatedAt } } pageInfo { hasNextPage endCursor } } }",
    ] {
        let (_, body) = app.graphql_status(Some(&partner), query, json!({})).await;
        assert!(body["errors"].is_null(), "{query}: {body}");
    }
    app.stop().await;
}

fn calls_of(flow: &Flow, method: &str, path: &str) -> usize {
    flow.sb()
        .calls()
        .iter()
        .filter(|c| c.method == method && c.path == path)
        .count()
}

#[tokio::test]
async fn aliases_of_a_live_fortnox_field_make_one_fortnox_call() {
    let flow = Flow::start().await;
    flow.standard_setup().await;
    let partner = token(Role::Partner, vec![flow.merchant]);
    let vars = json!({ "v": flow.merchant.to_string() });
    flow.sb().clear_calls();

    // 20 aliases from a read-only partner: 20 of the merchant's 25 calls per 5 s before.
    let mappings = "wayOfDeliveryMappings(merchantId: $v) { code outcome }";
    let (_, body) = flow
        .app
        .graphql_status(Some(&partner), &aliases(20, mappings), vars.clone())
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["a19"], body["data"]["a0"]);
    assert_eq!(calls_of(&flow, "GET", "/3/wayofdeliveries"), 1);

    // Concurrent callers share the read as well.
    let three = aliases(3, mappings);
    let requests = (0..5).map(|_| {
        flow.app
            .graphql_status(Some(&partner), &three, vars.clone())
    });
    for (_, body) in futures::future::join_all(requests).await {
        assert!(body["errors"].is_null(), "{body}");
    }
    assert_eq!(calls_of(&flow, "GET", "/3/wayofdeliveries"), 1);

    // The product sync view reads the article list once for any number of aliases.
    let sync = "productSync(merchantId: $v) { missingProducts articles { articleNumber } }";
    let (_, body) = flow
        .app
        .graphql_status(Some(&partner), &aliases(10, sync), vars.clone())
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(calls_of(&flow, "GET", "/3/articles"), 1);

    // And live fields carry a cost of their own: a query cannot hold fifty of them.
    let (_, body) = flow
        .app
        .graphql_status(Some(&partner), &aliases(50, mappings), vars)
        .await;
    assert_eq!(error_code(&body), Some("INVALID_INPUT"), "{body}");
    flow.stop().await;
}

async fn orders_synced_until(flow: &Flow) -> Value {
    let body = flow
        .gql(
            "query($m: ID!) { fortnoxIntegration(merchantId: $m) { ordersSyncedUntil } }",
            json!({ "m": flow.merchant.to_string() }),
        )
        .await;
    body["data"]["fortnoxIntegration"]["ordersSyncedUntil"].clone()
}

#[tokio::test]
async fn repeated_sync_orders_reuse_the_import_already_waiting() {
    let flow = Flow::start().await;
    // The first import, queued by connecting, is over.
    assert!(
        eventually(Duration::from_secs(30), || async {
            !orders_synced_until(&flow).await.is_null()
        })
        .await
    );
    let before = orders_synced_until(&flow).await;
    // Fortnox answers the order list slowly, so the import runs while the calls come.
    flow.sb().inject(FaultSpec {
        latency_ms: Some(1_500),
        path_contains: Some("/3/orders".into()),
        method: Some("GET".into()),
        ..FaultSpec::default()
    });
    flow.sb().clear_calls();
    let merchant = token(Role::Merchant, vec![flow.merchant]);
    let sync = "mutation($m: ID!) { syncOrders(merchantId: $m) }";
    let vars = json!({ "m": flow.merchant.to_string() });
    let calls = (0..30).map(|_| flow.app.graphql_status(Some(&merchant), sync, vars.clone()));
    for (_, body) in futures::future::join_all(calls).await {
        assert_eq!(body["data"]["syncOrders"], true, "{body}");
    }
    assert!(
        eventually(Duration::from_secs(30), || async {
            orders_synced_until(&flow).await != before
        })
        .await
    );
    // Time for the one import that may wait behind the running one (two slow lists).
    tokio::time::sleep(Duration::from_secs(5)).await;
    flow.sb().clear_faults();
    // At most the running import and one queued behind it, each listing done and
    // cancelled orders: 4 calls (60 before, one import per call).
    let lists = calls_of(&flow, "GET", "/3/orders");
    assert!((2..=4).contains(&lists), "{lists} order lists");
    flow.stop().await;
}
