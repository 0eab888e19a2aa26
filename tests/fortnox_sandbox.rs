//! The sandbox's answers, over raw HTTP, against the recorded shapes of
//! fortnox-api.md: string quantities, the list-item subset, both error
//! casings, the OAuth error bodies and content types, the rate limit, the
//! RowId and warehouse rules.

mod fortnox_common;

use std::time::Duration;

use fortnox_common::*;
use fortnox_fulfilment::fortnox::limiter::RateLimit;
use fortnox_fulfilment::fortnox::sandbox::{Sandbox, SandboxConfig, TenantSettings};
use serde_json::{json, Value};

struct Raw {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Raw {
    async fn new(e: &Env) -> Raw {
        let token = e.sb.issue_tokens(TENANT).access_token;
        Raw {
            http: reqwest::Client::new(),
            base: e.sandbox.api_base(),
            token,
        }
    }
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("send");
        let status = resp.status().as_u16();
        let v = resp.json::<Value>().await.unwrap_or(Value::Null);
        (status, v)
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }
    async fn put(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, body).await
    }
}

#[tokio::test]
async fn orders_have_the_recorded_shapes() {
    let e = env().await;
    let raw = Raw::new(&e).await;
    let (s, created) = raw
        .send(
            reqwest::Method::POST,
            "/3/orders",
            Some(json!({ "Order": order_json("2") })),
        )
        .await;
    assert_eq!(s, 201);
    let o = &created["Order"];
    assert_eq!(o["DocumentNumber"], "1");
    assert_eq!(o["InvoiceReference"], "0");
    assert_eq!(o["DeliveryState"], "delivery");
    assert_eq!(o["OrderType"], "Order");
    assert_eq!(o["DeliveryDate"], Value::Null);
    let row = &o["OrderRows"][1];
    assert_eq!(row["OrderedQuantity"], "1.5", "quantities are strings");
    assert_eq!(row["DeliveredQuantity"], "0");
    assert_eq!(row["ReservedQuantity"], "0");
    assert!(row["RowId"].is_u64());
    assert!(row["Price"].is_number());

    let (s, list) = raw.get("/3/orders").await;
    assert_eq!(s, 200);
    assert_eq!(list["MetaInformation"]["@TotalResources"], 1);
    assert_eq!(list["MetaInformation"]["@TotalPages"], 1);
    assert_eq!(list["MetaInformation"]["@CurrentPage"], 1);
    let item = list["Orders"][0].as_object().expect("item");
    let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "@url",
            "Cancelled",
            "Currency",
            "CustomerName",
            "CustomerNumber",
            "DeliveryDate",
            "DocumentNumber",
            "ExternalInvoiceReference1",
            "ExternalInvoiceReference2",
            "OrderDate",
            "OrderType",
            "Project",
            "Sent",
            "Total"
        ],
        "list items are the documented subset"
    );
}

#[tokio::test]
async fn errors_come_in_both_casings() {
    let e = env().await;
    let raw = Raw::new(&e).await;
    let (s, v) = raw.get("/3/orders?filter=bogus").await;
    assert_eq!(s, 400);
    assert_eq!(v["ErrorInformation"]["code"], 2000587);
    assert_eq!(
        v["ErrorInformation"]["message"],
        "Ett ogiltigt filter har använts."
    );
    let (s, v) = raw.get("/3/orders/999").await;
    assert_eq!(s, 404);
    assert_eq!(v["ErrorInformation"]["Code"], 2000439);
    assert_eq!(v["ErrorInformation"]["Message"], "Kan inte hitta ordern.");
    let (s, v) = raw.get("/3/articles/NOPE").await;
    assert_eq!(
        (s, v["ErrorInformation"]["Code"].clone()),
        (404, json!(2000428))
    );
    let (s, v) = raw.send(reqwest::Method::POST, "/3/orders", None).await;
    assert_eq!(
        (s, v["ErrorInformation"]["code"].clone()),
        (400, json!(2002115))
    );

    let resp = reqwest::Client::new()
        .get(format!("{}/3/orders", raw.base))
        .bearer_auth("expired")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.json::<Value>().await.expect("json"),
        json!({"message":"unauthorized"})
    );
}

#[tokio::test]
async fn row_ids_and_warehouse_rules() {
    let e = env().await;
    let raw = Raw::new(&e).await;
    let o = e.sb.create_order(TENANT, order_json("2")).expect("order");
    let ids: Vec<u64> = o.order_rows.iter().filter_map(|r| r.row_id).collect();
    // Keep the first row as is, deliver nothing on it; drop the second row.
    let (s, v) = raw
        .put(
            "/3/orders/1",
            Some(json!({"Order":{"OrderRows":[{"RowId": ids[0]}]}})),
        )
        .await;
    assert_eq!(s, 200);
    let rows = v["Order"]["OrderRows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "rows left out are deleted");
    assert_eq!(rows[0]["ArticleNumber"], "101");
    assert_ne!(
        rows[0]["RowId"],
        json!(ids[0]),
        "new RowIds after every update"
    );
    // The old RowId is gone.
    let (s, _) = raw
        .put(
            "/3/orders/1",
            Some(json!({"Order":{"OrderRows":[{"RowId": ids[0], "DeliveredQuantity": 1}]}})),
        )
        .await;
    assert_eq!(s, 400);
    let new_id = rows[0]["RowId"].clone();
    let (s, v) = raw
        .put(
            "/3/orders/1",
            Some(json!({"Order":{"OrderRows":[{"RowId": new_id, "DeliveredQuantity": 1}]}})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["Order"]["OrderRows"][0]["DeliveredQuantity"], "1");

    // Not in `delivery` state: delivered quantities are refused.
    let o2 = e.sb.create_order(TENANT, json!({"DeliveryState":"registration","OrderRows":[{"ArticleNumber":"101","OrderedQuantity":"1"}]})).expect("o2");
    let id = o2.order_rows[0].row_id.expect("row id");
    let (s, v) = raw
        .put(
            &format!("/3/orders/{}", o2.document_number),
            Some(json!({"Order":{"OrderRows":[{"RowId": id, "DeliveredQuantity": 1}]}})),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(v["ErrorInformation"]["code"], 2000850);

    // createinvoice: invoice of delivered quantities, back order for the rest,
    // InvoiceReference set, WarehouseReady (setting on by default). Twice = two invoices.
    let (s, inv) = raw.put("/3/orders/1/createinvoice", None).await;
    assert_eq!(s, 200);
    assert_eq!(inv["Invoice"]["OrderReference"], "1");
    assert_eq!(inv["Invoice"]["InvoiceRows"][0]["DeliveredQuantity"], "1");
    let (_, after) = raw.get("/3/orders/1").await;
    assert_eq!(
        after["Order"]["InvoiceReference"],
        inv["Invoice"]["DocumentNumber"]
    );
    assert_eq!(after["Order"]["WarehouseReady"], true);
    let c = e.sb.counters();
    assert_eq!(c.back_orders.len(), 1);
    let bo =
        e.sb.order(TENANT, &c.back_orders[0].document_number)
            .expect("back order");
    assert_eq!(bo.order_type.as_deref(), Some("Backorder"));
    assert_eq!(
        bo.order_rows[0].ordered_quantity.map(|q| q.to_string()),
        Some("1".into())
    );
    let (s, _) = raw
        .get(&format!(
            "/3/invoices/{}",
            inv["Invoice"]["DocumentNumber"].as_str().expect("no")
        ))
        .await;
    assert_eq!(s, 200);
    // After WarehouseReady, delivered quantities are locked (and the order is invoiced).
    let (s, _) = raw
        .put("/3/orders/1", Some(json!({"Order":{"OrderRows":[]}})))
        .await;
    assert_eq!(s, 400);
    let (s, _) = raw.put("/3/orders/1/createinvoice", None).await;
    assert_eq!(s, 200);
    assert_eq!(
        e.sb.counters().invoices_for(TENANT, "1"),
        2,
        "createinvoice is not idempotent"
    );

    // With the setting off, WarehouseReady stays false.
    e.sb.set_settings(
        TENANT,
        TenantSettings {
            delivery_done_on_invoice: false,
        },
    );
    let o3 = e.sb.create_order(TENANT, order_json("3")).expect("o3");
    raw.put(
        &format!("/3/orders/{}/createinvoice", o3.document_number),
        None,
    )
    .await;
    assert_eq!(
        e.sb.order(TENANT, o3.document_number.as_str())
            .map(|o| o.warehouse_ready),
        Some(false)
    );
    let (s, v) = raw
        .put(&format!("/3/orders/{}/cancel", o2.document_number), None)
        .await;
    assert_eq!((s, v["Order"]["Cancelled"].clone()), (200, json!(true)));
}

#[tokio::test]
async fn oauth_errors_have_recorded_bodies_and_content_types() {
    let e = env().await;
    let http = reqwest::Client::new();
    let url = format!("{}/oauth-v1/token", e.sandbox.auth_base());
    let resp = http
        .post(&url)
        .basic_auth("sandbox-client", Some("wrong"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(
        resp.json::<Value>().await.expect("json"),
        json!({"error":"invalid_client","error_description":"The client credentials are invalid"})
    );
    let resp = http
        .post(&url)
        .basic_auth("sandbox-client", Some("sandbox-secret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(resp.headers()["content-type"], "text/html");
    assert_eq!(
        resp.json::<Value>().await.expect("json"),
        json!({"error":"invalid_grant","error_description":"Invalid refresh token"})
    );
    // A refresh token is single use.
    let t = e.sb.issue_tokens(TENANT);
    for want in [200u16, 400] {
        let resp = http
            .post(&url)
            .basic_auth("sandbox-client", Some("sandbox-secret"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", t.refresh_token.as_str()),
            ])
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), want);
    }
}

#[tokio::test]
async fn sliding_window_answers_429_and_tokens_expire() {
    let cfg = SandboxConfig {
        rate_limit: Some(RateLimit {
            max: 5,
            window: Duration::from_millis(400),
            margin: Duration::ZERO,
        }),
        access_token_ttl: Duration::from_millis(300),
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(cfg).await.expect("sandbox");
    let sb = sandbox.handle();
    let token = sb.issue_tokens(TENANT).access_token;
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = http
            .get(format!("{}/3/wayofdeliveries", sandbox.api_base()))
            .bearer_auth(&token)
            .send()
            .await
            .expect("send");
        statuses.push(r.status().as_u16());
        if r.status().as_u16() == 429 {
            assert_eq!(
                r.json::<Value>().await.expect("json"),
                json!({"message":"Too Many Requests"})
            );
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let r = http
        .get(format!("{}/3/wayofdeliveries", sandbox.api_base()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 401, "access token expired");
}

#[tokio::test]
async fn demo_seed_and_control_endpoints() {
    let sandbox = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    fortnox_fulfilment::fortnox::sandbox::demo::seed(&sandbox.handle()).expect("seed");
    let http = reqwest::Client::new();
    let ctl = format!("{}/sandbox", sandbox.api_base());
    let t: Value = http
        .post(format!("{ctl}/tenants/demo/tokens"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let token = t["access_token"].as_str().expect("token").to_string();
    let arts: Value = http
        .get(format!("{}/3/articles?limit=500", sandbox.api_base()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("s")
        .json()
        .await
        .expect("j");
    assert!(arts["Articles"].as_array().expect("articles").len() >= 30);
    assert!(
        arts["Articles"][0].get("DefaultStockLocation").is_none(),
        "stock-point fields only on the single article"
    );
    let one: Value = http
        .get(format!("{}/3/articles/HAM-001", sandbox.api_base()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("s")
        .json()
        .await
        .expect("j");
    assert!(one["Article"]["DefaultStockLocation"].is_string());
    let ways: Value = http
        .get(format!("{}/3/wayofdeliveries", sandbox.api_base()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("s")
        .json()
        .await
        .expect("j");
    let codes: Vec<&str> = ways["WayOfDeliveries"]
        .as_array()
        .expect("w")
        .iter()
        .filter_map(|w| w["Code"].as_str())
        .collect();
    assert!(codes.contains(&"DHL") && codes.contains(&"PN"));
    let r = http
        .post(format!("{ctl}/faults"))
        .json(&json!({"fail_next": 1, "status": 503}))
        .send()
        .await
        .expect("s");
    assert_eq!(r.status().as_u16(), 204);
    let r = http
        .get(format!("{}/3/orders", sandbox.api_base()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("s");
    assert_eq!(r.status().as_u16(), 503);
    let r = http
        .post(format!("{ctl}/tenants/demo/orders/4/done"))
        .send()
        .await
        .expect("s");
    assert_eq!(r.status().as_u16(), 200);
    let counters: Value = http
        .get(format!("{ctl}/counters"))
        .send()
        .await
        .expect("s")
        .json()
        .await
        .expect("j");
    assert_eq!(counters["calls"]["orders"]["503"], 1);
    let calls: Value = http
        .get(format!("{ctl}/calls"))
        .send()
        .await
        .expect("s")
        .json()
        .await
        .expect("j");
    assert!(calls.as_array().expect("calls").len() >= 4);
    sandbox.shutdown().await;
}
