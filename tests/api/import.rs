//! The order import: one Fortnox order that cannot be read never holds back the others,
//! is shown to the merchant with its number and reason, and is retried at every poll.
use std::time::Duration;

use fortnox_fulfilment::domain::OrderState;
use fortnox_sandbox::FaultSpec;
use serde_json::{json, Value};

use crate::flow::Flow;

async fn integration(flow: &Flow) -> Value {
    let body = flow
        .gql(
            "query($m: ID!) { fortnoxIntegration(merchantId: $m) { lastError importFailures { documentNumber reason attempts } } }",
            json!({ "m": flow.merchant.to_string() }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["fortnoxIntegration"].clone()
}

#[tokio::test]
async fn an_undecodable_order_is_recorded_and_retried_while_the_others_import() {
    let flow = Flow::start().await;
    flow.standard_setup().await;
    let rows = json!([{ "ArticleNumber": "ART-1", "OrderedQuantity": "1" }]);
    let first = flow.create_order(Flow::order_json(rows.clone()));
    let broken = flow.create_order(Flow::order_json(rows.clone()));
    let last = flow.create_order(Flow::order_json(rows));
    // A proxy answers the broken order's reads with an HTML page, until cleared.
    flow.sb().inject(FaultSpec {
        html_next: Some(1000),
        path_contains: Some(format!("/3/orders/{broken}")),
        method: Some("GET".into()),
        ..FaultSpec::default()
    });

    flow.sync().await;
    for document in [&first, &last] {
        assert!(
            flow.wait_for(document, OrderState::Sent, Duration::from_secs(30))
                .await,
            "order {document} was held back by the broken one"
        );
    }
    assert_eq!(flow.order_id(&broken).await, None);
    // The other orders may reach SENT before the import has finished and recorded its
    // outcome on the integration.
    let named = format!("Fortnox order {broken}");
    crate::common::eventually(Duration::from_secs(20), || async {
        integration(&flow).await["lastError"]
            .as_str()
            .is_some_and(|e| e.contains(&named))
    })
    .await;
    let seen = integration(&flow).await;
    let failures = seen["importFailures"].as_array().expect("failures");
    assert_eq!(failures.len(), 1, "{seen}");
    assert_eq!(failures[0]["documentNumber"], broken.as_str(), "{seen}");
    let reason = failures[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("Fortnox order {broken} could not be read")),
        "{reason}"
    );
    let last_error = seen["lastError"].as_str().unwrap_or_default();
    assert!(
        last_error.contains(&format!("Fortnox order {broken}")),
        "the last error names the order: {last_error}"
    );

    // Still broken at the next poll: tried again, counted, still not blocking. (Compared
    // with the count before, not with 2: on a loaded machine more than one import may
    // have run by now.)
    let attempts_before = failures[0]["attempts"].as_i64().expect("attempts");
    flow.sync().await;
    assert!(
        crate::common::eventually(Duration::from_secs(20), || async {
            integration(&flow).await["importFailures"][0]["attempts"]
                .as_i64()
                .is_some_and(|attempts| attempts > attempts_before)
        })
        .await,
        "{}",
        integration(&flow).await
    );

    // Fixed in Fortnox (the proxy is gone): the next poll imports it, though Fortnox's
    // `lastmodified` did not change, and the error clears.
    flow.sb().clear_faults();
    flow.sync().await;
    assert!(
        flow.wait_for(&broken, OrderState::Sent, Duration::from_secs(30))
            .await
    );
    let seen = integration(&flow).await;
    assert_eq!(seen["importFailures"], json!([]), "{seen}");
    assert!(seen["lastError"].is_null(), "{seen}");
    flow.app.stop().await;
}
