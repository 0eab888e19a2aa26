//! The pipeline's rules, each against the sandbox: checks that stop an order in RESERVED
//! and the fixes that bring it on, ignoreMissingProducts, Fortnox's warehouse states,
//! crash safety of invoicing, partial shipments, cancellation and duplicate imports.
use crate::common;

use std::time::Duration;

use crate::flow::{Flow, TENANT};
use fortnox_fulfilment::domain::OrderState;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn row(article: &str, quantity: &str) -> serde_json::Value {
    json!({"ArticleNumber": article, "Description": format!("Item {article}"), "OrderedQuantity": quantity, "Price": 100, "VAT": 25})
}

/// Ships what is SENT until the order is INVOICED.
async fn ship_until_invoiced(flow: &Flow, document: &str) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if flow.state_of(document).await == Some(OrderState::Invoiced) {
            return true;
        }
        flow.ship_sent(None).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failed_check_reserves_with_a_reason_and_fixing_it_brings_the_order_on() {
    let flow = Flow::start().await;
    flow.add_product("ART-1").await;
    flow.add_rule("DHL*", "DHL_EXPRESS_WORLDWIDE").await;

    let missing_product = flow.create_order(Flow::order_json(json!([
        row("ART-1", "1"),
        row("ART-2", "1")
    ])));
    let mut no_rule = Flow::order_json(json!([row("ART-1", "1")]));
    no_rule["WayOfDelivery"] = json!("PN");
    let no_rule = flow.create_order(no_rule);
    let mut bad_address = Flow::order_json(json!([row("ART-1", "1")]));
    bad_address["ZipCode"] = json!("");
    bad_address["Country"] = json!("Atlantis");
    let bad_address = flow.create_order(bad_address);
    let zero_quantity = flow.create_order(Flow::order_json(json!([row("ART-1", "0")])));
    flow.sync().await;

    for document in [&missing_product, &no_rule, &bad_address, &zero_quantity] {
        assert!(
            flow.wait_for(document, OrderState::Reserved, WAIT).await,
            "order {document} is RESERVED"
        );
    }
    let reasons = |order: serde_json::Value| Flow::reasons(&order).join(" | ");
    let text = reasons(flow.order_json_of(&missing_product).await);
    assert!(
        text.contains("ART-2") && text.contains("create the product"),
        "{text}"
    );
    let text = reasons(flow.order_json_of(&no_rule).await);
    assert!(
        text.contains("'PN'") && text.contains("shipping rule"),
        "{text}"
    );
    let text = reasons(flow.order_json_of(&bad_address).await);
    assert!(
        text.contains("zip code") && text.contains("Atlantis"),
        "{text}"
    );
    let text = reasons(flow.order_json_of(&zero_quantity).await);
    assert!(text.contains("quantity"), "{text}");

    // Fixes: the product and the rule here (revalidation is automatic), the address in
    // Fortnox followed by revalidateOrder.
    flow.add_product("ART-2").await;
    flow.add_rule("PN", "POSTNORD_MYPACK_COLLECT").await;
    assert!(
        ship_until_invoiced(&flow, &missing_product).await,
        "the missing product, once created, lets the order through"
    );
    assert!(
        ship_until_invoiced(&flow, &no_rule).await,
        "the new rule lets the order through"
    );

    let update = json!({"Order": {"ZipCode": "111 22", "Country": "Sverige"}});
    let client = reqwest::Client::new();
    let token = flow.sb().issue_tokens(TENANT).access_token;
    let response = client
        .put(format!(
            "{}/3/orders/{bad_address}",
            flow.sandbox.api_base()
        ))
        .bearer_auth(token)
        .json(&update)
        .send()
        .await
        .expect("fix the address in Fortnox");
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap_or_default()
    );
    let id = flow.order_id(&bad_address).await.unwrap();
    let body = flow
        .gql(
            "mutation($id: ID!) { revalidateOrder(orderId: $id) { id } }",
            json!({ "id": id.to_string() }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert!(
        ship_until_invoiced(&flow, &bad_address).await,
        "the fixed address lets the order through"
    );
    assert_eq!(
        flow.state_of(&zero_quantity).await,
        Some(OrderState::Reserved),
        "an unfixed order stays"
    );
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_missing_products_ships_and_invoices_only_known_products_and_warns() {
    let flow = Flow::start().await;
    flow.standard_setup().await;
    let body = flow
        .gql(
            "mutation($m: ID!) { updateFortnoxSettings(merchantId: $m, ignoreMissingProducts: true) { warnings } }",
            json!({ "m": flow.merchant.to_string() }),
        )
        .await;
    let warnings = body["data"]["updateFortnoxSettings"]["warnings"].to_string();
    assert!(warnings.contains("ignoreMissingProducts is on"), "{body}");

    let document = flow.create_order(Flow::order_json(json!([
        row("ART-1", "2"),
        row("ART-3", "5"),
        row("FRAKT", "1")
    ])));
    flow.sync().await;
    assert!(flow.wait_for(&document, OrderState::Sent, WAIT).await);
    let order = flow.order_json_of(&document).await;
    let lines = order["lines"].as_array().unwrap();
    assert_eq!(lines[0]["pickQuantity"], "2");
    assert_eq!(
        lines[1]["pickQuantity"], "0",
        "the missing product is not sent to the warehouse: {order}"
    );
    let warning = order["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["cause"] == "checks_passed")
        .unwrap()["message"]
        .to_string();
    assert!(
        warning.contains("ART-3"),
        "the validation says which line was dropped: {warning}"
    );

    assert!(ship_until_invoiced(&flow, &document).await);
    let invoices = flow.sb().invoices(TENANT);
    let invoice = invoices
        .iter()
        .find(|i| i.order_reference.as_deref() == Some(document.as_str()))
        .expect("invoice");
    let invoiced: Vec<String> = invoice
        .invoice_rows
        .iter()
        .filter(|r| r.delivered_quantity.as_ref().is_some_and(|q| !q.is_zero()))
        .filter_map(|r| r.article_number.clone())
        .collect();
    assert_eq!(
        invoiced,
        vec!["ART-1".to_string(), "FRAKT".to_string()],
        "the known product and the freight service are invoiced, the missing product is not"
    );
    assert_eq!(
        lines[2]["pickQuantity"],
        serde_json::Value::Null,
        "a service is not picked"
    );
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_delivery_state_or_delivery_done_reserve_before_anything_is_sent() {
    let flow = Flow::start().await;
    flow.standard_setup().await;
    let mut reservation = Flow::order_json(json!([row("ART-1", "1")]));
    reservation["DeliveryState"] = json!("reservation");
    let reservation = flow.create_order(reservation);
    let mut ready = Flow::order_json(json!([row("ART-1", "1")]));
    ready["WarehouseReady"] = json!(true);
    let ready = flow.create_order(ready);
    flow.sync().await;
    for document in [&reservation, &ready] {
        assert!(
            flow.wait_for(document, OrderState::Reserved, WAIT).await,
            "{document}"
        );
        let order = flow.order_json_of(document).await;
        assert!(order["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["shippedQuantity"].is_null()));
    }
    assert!(Flow::reasons(&flow.order_json_of(&reservation).await)
        .join(" ")
        .contains("DeliveryState"));
    assert!(Flow::reasons(&flow.order_json_of(&ready).await)
        .join(" ")
        .contains("WarehouseReady"));
    let counters = flow.sb().counters();
    assert!(counters.back_orders.is_empty());
    assert_eq!(
        counters.invoices_per_order.values().sum::<u64>(),
        0,
        "nothing invoiced"
    );
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_createinvoice_still_ends_with_exactly_one_invoice() {
    let flow = Flow::start().await;
    flow.standard_setup().await;
    flow.app.app.faults.crash_after_invoice(1);
    let document = flow.create_order(Flow::order_json(json!([row("ART-1", "1")])));
    flow.sync().await;
    assert!(
        ship_until_invoiced(&flow, &document).await,
        "{}",
        flow.order_json_of(&document).await
    );
    assert_eq!(flow.sb().counters().invoices_for(TENANT, &document), 1);
    let order = flow.order_json_of(&document).await;
    let adopted = order["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["message"].as_str().unwrap_or("").contains("Adopted"));
    assert!(
        adopted,
        "the retry adopted the invoice the first attempt created: {order}"
    );

    // A restart after that changes nothing.
    let flow = flow.restart().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(flow.sb().counters().invoices_for(TENANT, &document), 1);
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_shipment_is_written_back_and_leaves_a_back_order() {
    let flow = Flow::start().await;
    flow.standard_setup().await;
    let document = flow.create_order(Flow::order_json(json!([
        row("ART-1", "3"),
        row("ART-2", "2")
    ])));
    flow.sync().await;
    assert!(flow.wait_for(&document, OrderState::Sent, WAIT).await);
    assert_eq!(flow.ship_sent(Some("1")).await, 1);
    // The warehouse repeats its report (a lost response): answered, not refused.
    let id = flow.order_id(&document).await.unwrap();
    let again = flow
        .app
        .graphql(&flow.warehouse, "mutation($id: ID!) { confirmShipment(orderId: $id, trackingNumbers: [\"T\"], lines: []) { state } }", json!({ "id": id.to_string() }))
        .await;
    assert!(again["errors"].is_null(), "{again}");
    assert!(flow.wait_for(&document, OrderState::Invoiced, WAIT).await);
    let fortnox = flow.sb().order(TENANT, &document).expect("order");
    let delivered: Vec<String> = fortnox
        .order_rows
        .iter()
        .map(|r| {
            r.delivered_quantity
                .as_ref()
                .map(|q| q.0.normalize().to_string())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(delivered, vec!["1", "1"], "delivered = shipped");
    let invoice = flow
        .sb()
        .invoices(TENANT)
        .into_iter()
        .find(|i| i.order_reference.as_deref() == Some(document.as_str()))
        .expect("invoice");
    let invoiced: Vec<String> = invoice
        .invoice_rows
        .iter()
        .map(|r| {
            r.delivered_quantity
                .as_ref()
                .map(|q| q.0.normalize().to_string())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(invoiced, vec!["1", "1"], "the invoice matches the shipment");
    let back_orders = flow.sb().counters().back_orders;
    assert_eq!(
        back_orders.len(),
        1,
        "the rest waits on a back order: {back_orders:?}"
    );
    let back_order = flow
        .sb()
        .order(TENANT, &back_orders[0].document_number)
        .expect("back order");
    let rest: Vec<String> = back_order
        .order_rows
        .iter()
        .map(|r| {
            r.ordered_quantity
                .as_ref()
                .map(|q| q.0.normalize().to_string())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(rest, vec!["2", "1"]);
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_in_fortnox_before_sent_cancels_and_orders_never_import_twice() {
    let flow = Flow::start().await;
    // No products yet: orders stop in RESERVED, i.e. before SENT.
    flow.add_rule("DHL*", "DHL_EXPRESS_WORLDWIDE").await;
    let cancelled = flow.create_order(Flow::order_json(json!([row("ART-1", "1")])));
    let kept = flow.create_order(Flow::order_json(json!([row("ART-1", "1")])));
    flow.sync().await;
    assert!(flow.wait_for(&cancelled, OrderState::Reserved, WAIT).await);
    assert!(flow.wait_for(&kept, OrderState::Reserved, WAIT).await);

    flow.sb()
        .cancel_order(TENANT, &cancelled)
        .expect("cancel in Fortnox");
    // Overlapping polls, then a restart and another poll.
    flow.sync().await;
    flow.sync().await;
    assert!(
        flow.wait_for(&cancelled, OrderState::Cancelled, WAIT).await,
        "cancelled in Fortnox before SENT"
    );
    let flow = flow.restart().await;
    flow.sync().await;
    flow.sync().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = flow
        .app
        .store()
        .orders_page(
            &fortnox_fulfilment::store::orders::TenantScope::All,
            &Default::default(),
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 2, "each Fortnox order stored once");
    assert_eq!(flow.state_of(&kept).await, Some(OrderState::Reserved));
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_write_back_keeps_the_order_shipped_with_the_fix_and_a_retry_invoices_it_once() {
    let flow = Flow::start().await;
    flow.standard_setup().await;
    let document = flow.create_order(Flow::order_json(json!([row("ART-1", "2")])));
    flow.sync().await;
    assert!(flow.wait_for(&document, OrderState::Sent, WAIT).await);
    // After we sent it, the merchant changed the stock status in Fortnox.
    flow.edit_in_fortnox(&document, json!({ "DeliveryState": "reservation" }))
        .await;
    assert_eq!(flow.ship_sent(None).await, 1);
    let stalled = common::eventually(WAIT, || async {
        flow.order_json_of(&document).await["stalled"] == true
    })
    .await;
    assert!(stalled, "{}", flow.order_json_of(&document).await);
    let order = flow.order_json_of(&document).await;
    assert_eq!(order["state"], "SHIPPED");
    let error = order["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["kind"] == "ERROR")
        .expect("an error event")["message"]
        .to_string();
    assert!(
        error.contains("set Stock status to Delivery") && error.contains("No invoice was created"),
        "{error}"
    );
    assert_eq!(flow.sb().counters().invoices_for(TENANT, &document), 0);
    assert!(flow.sb().counters().back_orders.is_empty());

    flow.edit_in_fortnox(&document, json!({ "DeliveryState": "delivery" }))
        .await;
    let id = flow.order_id(&document).await.unwrap();
    let body = flow
        .gql(
            "mutation($id: ID!) { retryOrder(orderId: $id) { stalled } }",
            json!({ "id": id.to_string() }),
        )
        .await;
    assert_eq!(body["data"]["retryOrder"]["stalled"], false, "{body}");
    assert!(flow.wait_for(&document, OrderState::Invoiced, WAIT).await);
    assert_eq!(flow.sb().counters().invoices_for(TENANT, &document), 1);
    assert!(
        flow.sb().counters().back_orders.is_empty(),
        "delivered in full: no back order"
    );
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_invoice_jobs_for_one_order_make_one_invoice() {
    let flow = Flow::start().await;
    flow.standard_setup().await;
    let document = flow.create_order(Flow::order_json(json!([row("ART-1", "1")])));
    flow.sync().await;
    assert!(flow.wait_for(&document, OrderState::Sent, WAIT).await);
    assert_eq!(flow.ship_sent(None).await, 1);
    let id = flow.order_id(&document).await.unwrap();
    for _ in 0..4 {
        fortnox_fulfilment::jobs::enqueue_state_job(flow.app.store(), id, OrderState::Shipped)
            .await
            .unwrap();
    }
    assert!(flow.wait_for(&document, OrderState::Invoiced, WAIT).await);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(flow.sb().counters().invoices_for(TENANT, &document), 1);
    flow.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_changed_in_fortnox_after_import_are_never_overwritten() {
    let flow = Flow::start().await;
    flow.standard_setup().await;
    let document = flow.create_order(Flow::order_json(json!([row("ART-1", "1")])));
    flow.sync().await;
    assert!(flow.wait_for(&document, OrderState::Sent, WAIT).await);
    // The merchant adds a row in Fortnox after the order went to the warehouse.
    let row_id = flow.sb().order(TENANT, &document).unwrap().order_rows[0]
        .row_id
        .unwrap();
    flow.edit_in_fortnox(
        &document,
        json!({ "OrderRows": [{ "RowId": row_id }, row("ART-2", "1")] }),
    )
    .await;
    assert_eq!(flow.ship_sent(None).await, 1);
    let stalled = common::eventually(WAIT, || async {
        flow.order_json_of(&document).await["stalled"] == true
    })
    .await;
    assert!(stalled, "{}", flow.order_json_of(&document).await);
    let error = flow.order_json_of(&document).await["lastError"].to_string();
    assert!(error.contains("changed in Fortnox"), "{error}");
    assert_eq!(
        flow.sb().order(TENANT, &document).unwrap().order_rows.len(),
        2,
        "no row was deleted"
    );
    assert_eq!(flow.sb().counters().invoices_for(TENANT, &document), 0);
    flow.stop().await;
}
