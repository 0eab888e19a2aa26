//! Every change emits its events, whoever makes it (REST, control endpoint,
//! handle), after it took effect; failed changes emit nothing.

use std::collections::BTreeSet;

use serde_json::json;

use crate::common::*;
use fortnox_sandbox::testkit::article;

const ALL: [&str; 3] = ["orders", "articles", "invoices"];

/// The next `n` events, as a set (a change that emits several).
async fn events(c: &mut Client, n: usize) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for _ in 0..n {
        out.insert(what(&c.event().await));
    }
    out
}

#[tokio::test]
async fn rest_changes_emit_events() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    sb.add_articles("t1", vec![article("A1", true, 10)]);
    let rest = Rest::new(&sb, "t1");
    let mut c = subscribed(&sb, &["t1"], &ALL).await;

    let order = json!({"Order": {"CustomerNumber": "1", "OrderRows": [
        {"ArticleNumber": "A1", "OrderedQuantity": "2", "Price": "100"}]}});
    let (status, body) = rest.call("POST", "/3/orders", Some(order)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-created-v1", "1")
    );

    let row = body["Order"]["OrderRows"][0]["RowId"].clone();
    let update = json!({"Order": {"OrderRows": [{"RowId": row, "DeliveredQuantity": "1"}]}});
    let (status, body) = rest.call("PUT", "/3/orders/1", Some(update)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-updated-v1", "1")
    );
    let (status, _) = rest.call("PUT", "/3/orders/1/warehouseready", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-updated-v1", "1")
    );

    // Delivered short: an invoice and a back order for the rest.
    let (status, body) = rest.call("PUT", "/3/orders/1/createinvoice", None).await;
    assert_eq!(status, 200, "{body}");
    let want = BTreeSet::from([
        ev("invoices", "invoice-created-v1", "1001"),
        ev("orders", "order-created-v1", "2"),
        ev("orders", "order-updated-v1", "1"),
    ]);
    assert_eq!(events(&mut c, 3).await, want);

    let (status, _) = rest.call("PUT", "/3/orders/2/cancel", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-cancelled-v1", "2")
    );
    // The change is there for a read that follows the event.
    let (_, body) = rest.call("GET", "/3/orders/2", None).await;
    assert_eq!(body["Order"]["Cancelled"], true);

    let (status, body) = rest
        .call(
            "POST",
            "/3/articles",
            Some(json!({"Article": {"ArticleNumber": "B1", "Description": "Bolt"}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        what(&c.event().await),
        ev("articles", "article-created-v1", "B1")
    );
    let (status, _) = rest
        .call(
            "PUT",
            "/3/articles/B1",
            Some(json!({"Article": {"QuantityInStock": 7}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        what(&c.event().await),
        ev("articles", "article-updated-v1", "B1")
    );
    let (status, _) = rest.call("DELETE", "/3/articles/B1", None).await;
    assert_eq!(status, 204);
    assert_eq!(
        what(&c.event().await),
        ev("articles", "article-deleted-v1", "B1")
    );

    let (status, _) = rest.call("PUT", "/3/invoices/1001/credit", None).await;
    assert_eq!(status, 200);
    let want = BTreeSet::from([
        ev("invoices", "invoice-created-v1", "1002"),
        ev("invoices", "invoice-updated-v1", "1001"),
    ]);
    assert_eq!(events(&mut c, 2).await, want);

    // Failed changes emit nothing.
    let before = sb.ws_counters().events;
    for (method, path, body) in [
        ("PUT", "/3/orders/99", Some(json!({"Order": {}}))),
        ("PUT", "/3/orders/1/cancel", None),
        (
            "PUT",
            "/3/orders/1",
            Some(json!({"Order": {"Comments": "invoiced"}})),
        ),
        (
            "POST",
            "/3/orders",
            Some(json!({"Order": {"DocumentNumber": "1"}})),
        ),
        (
            "POST",
            "/3/articles",
            Some(json!({"Article": {"ArticleNumber": "A1"}})),
        ),
        ("PUT", "/3/articles/nope", Some(json!({"Article": {}}))),
        ("DELETE", "/3/articles/nope", None),
        ("PUT", "/3/invoices/1001/credit", None),
    ] {
        let (status, _) = rest.call(method, path, body).await;
        assert!(status >= 400, "{method} {path}: {status}");
    }
    c.quiet().await;
    assert_eq!(sb.ws_counters().events, before);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn handle_changes_emit_events() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let mut c = subscribed(&sb, &["t1"], &ALL).await;

    let order = json!({"OrderRows": [{"ArticleNumber": "A1", "OrderedQuantity": 3, "DeliveredQuantity": 1}]});
    sb.create_order("t1", order).expect("order");
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-created-v1", "1")
    );
    sb.mark_done("t1", "1").expect("done");
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-updated-v1", "1")
    );
    sb.create_invoice("t1", "1").expect("invoice");
    let want = BTreeSet::from([
        ev("invoices", "invoice-created-v1", "1001"),
        ev("orders", "order-created-v1", "2"),
        ev("orders", "order-updated-v1", "1"),
    ]);
    assert_eq!(events(&mut c, 3).await, want);
    sb.cancel_order("t1", "2").expect("cancel");
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-cancelled-v1", "2")
    );
    sb.credit_invoice("t1", "1001").expect("credit");
    assert_eq!(events(&mut c, 2).await.len(), 2);

    sb.add_articles("t1", vec![article("A1", true, 1), article("A2", true, 1)]);
    assert_eq!(
        what(&c.event().await),
        ev("articles", "article-created-v1", "A1")
    );
    assert_eq!(
        what(&c.event().await),
        ev("articles", "article-created-v1", "A2")
    );
    // Stock changed by seeding again: an update.
    sb.add_articles("t1", vec![article("A1", true, 9)]);
    assert_eq!(
        what(&c.event().await),
        ev("articles", "article-updated-v1", "A1")
    );
    sb.delete_article("t1", "A2").expect("delete");
    assert_eq!(
        what(&c.event().await),
        ev("articles", "article-deleted-v1", "A2")
    );

    // Failures emit nothing.
    assert!(sb.mark_done("t1", "99").is_err());
    assert!(sb.cancel_order("t1", "1").is_err());
    assert!(sb.create_invoice("t1", "2").is_err());
    assert!(sb.delete_article("t1", "A2").is_err());
    assert!(sb.create_order("t1", json!([])).is_err());
    c.quiet().await;
    sandbox.shutdown().await;
}

#[tokio::test]
async fn control_endpoint_changes_emit_events() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let mut c = subscribed(&sb, &["t1"], &ALL).await;
    let http = reqwest::Client::new();
    let base = format!("{}/sandbox/tenants/t1", sb.api_base());
    let post =
        |path: &str, body: serde_json::Value| http.post(format!("{base}{path}")).json(&body).send();

    let r = post("/orders", json!([{}, {}])).await.expect("orders");
    assert_eq!(r.status(), 201);
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-created-v1", "1")
    );
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-created-v1", "2")
    );
    let r = post("/orders/1/done", json!({})).await.expect("done");
    assert_eq!(r.status(), 200);
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-updated-v1", "1")
    );
    let r = post("/orders/2/cancel", json!({})).await.expect("cancel");
    assert_eq!(r.status(), 200);
    assert_eq!(
        what(&c.event().await),
        ev("orders", "order-cancelled-v1", "2")
    );
    let r = post("/articles", json!([{"ArticleNumber": "A9"}]))
        .await
        .expect("articles");
    assert_eq!(r.status(), 201);
    assert_eq!(
        what(&c.event().await),
        ev("articles", "article-created-v1", "A9")
    );
    let r = http
        .delete(format!("{base}/articles/A9"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    assert_eq!(
        what(&c.event().await),
        ev("articles", "article-deleted-v1", "A9")
    );
    let r = post("/orders/7/done", json!({})).await.expect("done");
    assert_eq!(r.status(), 404);
    c.quiet().await;
    sandbox.shutdown().await;
}

#[tokio::test]
async fn every_connection_gets_the_events_of_its_own_tenants() {
    let sandbox = sandbox().await;
    let sb = sandbox.handle();
    let mut both = subscribed(&sb, &["t1", "t2"], &["orders"]).await;
    let mut only_t2 = subscribed(&sb, &["t2"], &["orders"]).await;
    let mut also_t2 = subscribed(&sb, &["t2"], &["orders"]).await;
    assert_eq!(sb.ws_connections().len(), 3);

    sb.create_order("t1", json!({})).expect("order");
    let e = both.event().await;
    assert_eq!(e["tenantId"], json!(sb.tenant_id("t1")));
    sb.create_order("t2", json!({})).expect("order");
    for c in [&mut both, &mut only_t2, &mut also_t2] {
        let e = c.event().await;
        assert_eq!(e["tenantId"], json!(sb.tenant_id("t2")));
        c.quiet().await;
    }
    // A tenant made with a given company sends that DatabaseNumber.
    let company = fortnox_sandbox::CompanySettings {
        database_number: Some(5_550_123),
        ..Default::default()
    };
    sb.create_tenant_with_company("t3", None, company)
        .expect("t3");
    assert_eq!(sb.tenant_id("t3"), Some(5_550_123));
    let tok = token(&sb, "t3");
    let r = only_t2.add_tenants(&[&tok]).await;
    assert_eq!(r["tenantIds"][&tok], 5_550_123);
    sb.create_order("t3", json!({})).expect("order");
    assert_eq!(only_t2.event().await["tenantId"], 5_550_123);
    both.quiet().await;
    sandbox.shutdown().await;
}
