//! Orders flowing from Fortnox to INVOICED, driving the real server over HTTP against the
//! Fortnox sandbox, on SQLite and PostgreSQL.

use std::time::Duration;

use crate::flow::{Flow, TENANT};
use fortnox_fulfilment::domain::OrderState;
use serde_json::json;

fn two_rows() -> serde_json::Value {
    json!([
        {"ArticleNumber": "ART-1", "Description": "Hammer", "OrderedQuantity": "2", "Price": 100, "VAT": 25},
        {"ArticleNumber": "ART-2", "Description": "Nails", "OrderedQuantity": "1", "Price": 10, "VAT": 25}
    ])
}

/// Calls to Fortnox's API, OAuth aside.
pub(crate) fn api_calls(counters: &fortnox_sandbox::Counters) -> u64 {
    counters
        .calls
        .iter()
        .filter(|(resource, _)| !resource.starts_with("oauth"))
        .flat_map(|(_, by_status)| by_status.values())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_done_orders_are_invoiced_once_each_within_the_call_budget() {
    let _gate = crate::common::timing_gate().await;
    let flow = Flow::start().await;
    flow.standard_setup().await;
    const ORDERS: usize = 100;
    let documents: Vec<String> = (0..ORDERS)
        .map(|_| flow.create_order(Flow::order_json(two_rows())))
        .collect();
    let calls_before = api_calls(&flow.sb().counters());
    flow.sync().await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while flow.count_in(OrderState::Invoiced).await < ORDERS
        && tokio::time::Instant::now() < deadline
    {
        flow.ship_sent(None).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let invoiced = flow.count_in(OrderState::Invoiced).await;
    assert_eq!(
        invoiced,
        ORDERS,
        "every order reached INVOICED (reserved: {})",
        flow.count_in(OrderState::Reserved).await
    );

    let counters = flow.sb().counters();
    for document in &documents {
        assert_eq!(
            counters.invoices_for(TENANT, document),
            1,
            "exactly one invoice for order {document}"
        );
    }
    assert!(
        counters.back_orders.is_empty(),
        "no back orders: {:?}",
        counters.back_orders
    );
    assert_eq!(
        counters.total_with_status(429),
        0,
        "the client kept within the rate limit"
    );
    let calls = api_calls(&counters) - calls_before;
    let per_order = calls as f64 / ORDERS as f64;
    eprintln!(
        "{calls} Fortnox calls for {ORDERS} orders ({per_order:.2} per order): {:?}",
        counters.calls
    );
    assert!(per_order <= 3.05, "{per_order:.2} Fortnox calls per order");

    let order = flow.order_json_of(&documents[0]).await;
    assert!(order["invoiceNumber"].is_string(), "{order}");
    assert_eq!(
        order["trackingNumbers"].as_array().map(|t| t.len()),
        Some(1)
    );
    // The event log tells a partner the tracking numbers and the invoice on their own.
    let events = flow
        .gql(
            "query($o: ID) { orderEvents(orderId: $o, kinds: [TRACKING_NUMBERS, INVOICE_CREATED]) { edges { node { kind trackingNumbers invoiceNumber } } } }",
            serde_json::json!({ "o": order["id"] }),
        )
        .await;
    let nodes: Vec<_> = events["data"]["orderEvents"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|edge| edge["node"].clone())
        .collect();
    assert_eq!(nodes.len(), 2, "{events}");
    assert_eq!(nodes[0]["kind"], "TRACKING_NUMBERS");
    assert_eq!(nodes[0]["trackingNumbers"], order["trackingNumbers"]);
    assert_eq!(nodes[1]["kind"], "INVOICE_CREATED");
    assert_eq!(nodes[1]["invoiceNumber"], order["invoiceNumber"]);
    // The per-state counts /metrics reads are kept by triggers through every transition.
    let metrics = flow
        .app
        .http
        .get(flow.app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics text");
    assert!(
        metrics.contains(&format!("orders{{state=\"INVOICED\"}} {ORDERS}\n")),
        "{metrics}"
    );
    for state in ["IMPORTED", "VALIDATED", "SENT", "SHIPPED"] {
        assert!(
            metrics.contains(&format!("orders{{state=\"{state}\"}} 0\n")),
            "{state}: {metrics}"
        );
    }
    flow.stop().await;
}
