//! The sandbox's answers, over raw HTTP, against the recorded shapes of
//! docs/fortnox.md: string quantities, the list-item subset, both error
//! casings, the OAuth error bodies and content types, the rate limit, the
//! RowId and warehouse rules.

use std::time::Duration;

use crate::fortnox_common::*;
use fortnox_fulfilment::fortnox::limiter::RateLimit;
use fortnox_sandbox::{CompanySettings, FaultSpec, Sandbox, SandboxConfig, TenantSettings};
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
    fortnox_sandbox::demo::seed(&sandbox.handle()).expect("seed");
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
    let company: Value = http
        .get(format!("{}/3/companyinformation", sandbox.api_base()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("s")
        .json()
        .await
        .expect("j");
    let company = &company["CompanyInformation"];
    assert_eq!(
        company["CompanyName"],
        fortnox_sandbox::demo::DEMO_COMPANY_NAME
    );
    assert_eq!(
        company["DatabaseNumber"],
        fortnox_sandbox::demo::DEMO_DATABASE_NUMBER
    );
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

#[tokio::test]
async fn credit_invoice_follows_fortnox_rules() {
    let e = env().await;
    let raw = Raw::new(&e).await;
    e.sb.create_order(TENANT, order_json("2")).expect("order");
    let (s, inv) = raw.put("/3/orders/1/createinvoice", None).await;
    assert_eq!(s, 200);
    let number = inv["Invoice"]["DocumentNumber"]
        .as_str()
        .expect("invoice number")
        .to_string();
    assert_eq!(inv["Invoice"]["Credit"], false);
    assert_eq!(inv["Invoice"]["CreditInvoiceReference"], "0");

    let (s, credit) = raw.put(&format!("/3/invoices/{number}/credit"), None).await;
    assert_eq!(s, 200, "{credit}");
    let c = &credit["Invoice"];
    let credit_number = c["DocumentNumber"].as_str().expect("credit number");
    assert_eq!(
        credit_number.parse::<u64>().expect("numeric"),
        number.parse::<u64>().expect("numeric") + 1,
        "credit invoices take the next number of the invoice counter"
    );
    assert_eq!(c["Credit"], true);
    assert_eq!(c["CreditInvoiceReference"], number.as_str());
    assert_eq!(c["OrderReference"], "1");
    assert_eq!(c["InvoiceRows"], inv["Invoice"]["InvoiceRows"], "same rows");
    assert_eq!(c["InvoiceRows"][1]["DeliveredQuantity"], "0", "as strings");

    let (s, original) = raw.get(&format!("/3/invoices/{number}")).await;
    assert_eq!(s, 200);
    assert_eq!(original["Invoice"]["CreditInvoiceReference"], credit_number);
    assert_eq!(original["Invoice"]["Credit"], false);
    let (s, shown) = raw.get(&format!("/3/invoices/{credit_number}")).await;
    assert_eq!((s, &shown["Invoice"]), (200, c));

    // Refusals, as Fortnox answers them.
    let (s, v) = raw.put(&format!("/3/invoices/{number}/credit"), None).await;
    assert_eq!(s, 400, "a second credit is refused");
    assert_eq!(v["ErrorInformation"]["code"], 2000852);
    assert!(v["ErrorInformation"]["message"]
        .as_str()
        .is_some_and(|m| m.contains(credit_number)));
    let (s, v) = raw
        .put(&format!("/3/invoices/{credit_number}/credit"), None)
        .await;
    assert_eq!(
        (s, v["ErrorInformation"]["code"].clone()),
        (400, json!(2000853)),
        "a credit invoice cannot be credited"
    );
    for missing in ["999999", "abc"] {
        let (s, v) = raw
            .put(&format!("/3/invoices/{missing}/credit"), None)
            .await;
        assert_eq!(
            (s, v["ErrorInformation"]["Code"].clone()),
            (404, json!(2000434)),
            "{missing}"
        );
    }

    // The control side shows the same, and finds both invoices by order.
    let all = e.sb.invoices_of_order(TENANT, "1");
    assert_eq!(all.len(), 2);
    assert!(!all[0].is_credit() && all[1].is_credit());
    assert_eq!(all[0].credited_by(), Some(all[1].document_number.clone()));
    assert_eq!(all[1].credits(), Some(all[0].document_number.clone()));
    let counters = e.sb.counters();
    assert_eq!(counters.invoices_for(TENANT, "1"), 1, "credits not counted");
    assert_eq!(counters.credits_for(TENANT, "1"), 1);
    assert_eq!(counters.calls_with("invoices/credit", 200), 1);
    assert_eq!(counters.calls_with("invoices/credit", 400), 2);
    assert_eq!(counters.calls_with("invoices/credit", 404), 2);
    let ctl = format!("{}/sandbox", e.sandbox.api_base());
    let http = reqwest::Client::new();
    let listed: Value = http
        .get(format!("{ctl}/tenants/{TENANT}/invoices"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let listed = listed["Invoices"].as_array().expect("invoices");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1]["Credit"], true);
    assert_eq!(listed[0]["CreditInvoiceReference"], credit_number);
    e.sb.create_order(TENANT, order_json("3")).expect("order 2");
    e.sb.create_invoice(TENANT, "2")
        .expect("invoice of order 2");
    let of_order: Value = http
        .get(format!("{ctl}/tenants/{TENANT}/invoices?order=1"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(of_order["Invoices"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn fault_rules_match_the_full_path_and_the_method() {
    let e = env().await;
    let raw = Raw::new(&e).await;
    e.sb.create_order(TENANT, order_json("2")).expect("order");
    let ctl = format!("{}/sandbox", e.sandbox.api_base());
    let http = reqwest::Client::new();
    let inject = |spec: Value| {
        let http = http.clone();
        let url = format!("{ctl}/faults");
        async move {
            let r = http.post(url).json(&spec).send().await.expect("send");
            assert_eq!(r.status().as_u16(), 204, "{spec}");
        }
    };

    inject(json!({"fail_next": 1, "status": 503, "path_contains": "/3/orders"})).await;
    assert_eq!(raw.get("/3/wayofdeliveries").await.0, 200, "other path");
    assert_eq!(raw.get("/3/orders/1").await.0, 503, "the rule fires");
    assert_eq!(raw.get("/3/orders/1").await.0, 200, "once");
    let calls = e.sb.calls();
    let paths: Vec<(&str, &str, u16)> = calls
        .iter()
        .map(|c| (c.path.as_str(), c.resource.as_str(), c.status))
        .collect();
    assert_eq!(
        paths,
        [
            ("/3/wayofdeliveries", "wayofdeliveries", 200),
            ("/3/orders/1", "orders", 503),
            ("/3/orders/1", "orders", 200),
        ],
        "the call log has the full path and the same resources"
    );

    // A rule for `PUT` spares the `GET` of the same path.
    inject(json!({"fail_next": 1, "status": 502, "method": "put", "path_contains": "/3/orders/1"}))
        .await;
    let rows = json!({"Order":{"OrderRows":[]}});
    assert_eq!(raw.get("/3/orders/1").await.0, 200);
    assert_eq!(raw.put("/3/orders/1", Some(rows.clone())).await.0, 502);
    assert_eq!(raw.put("/3/orders/1", Some(rows)).await.0, 200);
    assert_eq!(e.sb.counters().calls_with("orders", 502), 1);
}

#[tokio::test]
async fn a_held_answer_blocks_no_other_request() {
    let Env { sandbox, sb, .. } = env().await;
    let token = sb.issue_tokens(TENANT).access_token;
    let base = sandbox.api_base();
    sb.create_order(TENANT, order_json("2")).expect("order");
    sb.inject(FaultSpec {
        latency_ms: Some(30_000),
        method: Some("PUT".into()),
        path_contains: Some("/3/orders/1".into()),
        ..Default::default()
    });
    let put = |customer: &'static str| {
        let (base, token) = (base.clone(), token.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .put(format!("{base}/3/orders/1"))
                .bearer_auth(token)
                .json(&json!({"Order":{"CustomerName": customer}}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    let started = std::time::Instant::now();
    let held = put("Held");
    // The update takes effect (and is logged) before the answer is held.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sb.calls().iter().any(|c| c.method == "PUT") {
        assert!(
            std::time::Instant::now() < deadline,
            "the PUT never reached the sandbox"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let r = http
            .get(format!("{base}/3/orders/1"))
            .bearer_auth(&token)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .expect("a GET of the same path is answered at once");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["Order"]["CustomerName"], "Held", "the effect happened");
    }
    assert!(!held.is_finished(), "the PUT's answer is still held");

    // Clearing the faults lets it go.
    sb.clear_faults();
    let status = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("released by clear_faults")
        .expect("join")
        .expect("answered");
    assert_eq!(status, 200);

    // Stopping the sandbox does not wait out a held answer either.
    sb.inject(FaultSpec {
        latency_ms: Some(60_000),
        path_contains: Some("/3/orders/1".into()),
        ..Default::default()
    });
    let held = put("Held again");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sb.calls().iter().filter(|c| c.method == "PUT").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "second PUT");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::timeout(Duration::from_secs(5), sandbox.shutdown())
        .await
        .expect("shutdown releases held answers");
    let _ = tokio::time::timeout(Duration::from_secs(5), held).await;
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn expire_access_tokens_takes_an_empty_json_body() {
    let e = env().await;
    let http = reqwest::Client::new();
    let url = format!("{}/sandbox/expire-access-tokens", e.sandbox.api_base());
    let works = |token: String| {
        let http = http.clone();
        let url = format!("{}/3/wayofdeliveries", e.sandbox.api_base());
        async move {
            let r = http.get(url).bearer_auth(token).send().await.expect("send");
            r.status().as_u16() == 200
        }
    };
    let expire = |body: &'static str| {
        http.post(&url)
            .header("content-type", "application/json")
            .body(body)
    };

    let token = e.sb.issue_tokens(TENANT).access_token;
    assert!(works(token.clone()).await);
    let r = expire("").send().await.expect("send");
    assert_eq!(r.status().as_u16(), 204, "an empty body means every tenant");
    assert!(!works(token).await);

    let token = e.sb.issue_tokens(TENANT).access_token;
    let r = expire(r#"{"tenant":"someone-else"}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 204);
    assert!(works(token.clone()).await, "another tenant's tokens only");
    let r = expire(r#"{"tenant":"t1"}"#).send().await.expect("send");
    assert_eq!(r.status().as_u16(), 204);
    assert!(!works(token).await);

    let token = e.sb.issue_tokens(TENANT).access_token;
    let r = http.post(&url).send().await.expect("send");
    assert_eq!(r.status().as_u16(), 204, "no body, no content type");
    assert!(!works(token).await);
    let r = expire("{").send().await.expect("send");
    assert_eq!(r.status().as_u16(), 400, "malformed JSON is still an error");
}

/// `NNNNNN-NNNN`, the shape of a Swedish organisation number.
fn org_number_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 11
        && b[6] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 6 || c.is_ascii_digit())
}

#[tokio::test]
async fn each_tenant_answers_its_own_company_information() {
    let e = env().await;
    e.sb.create_tenant_with_company(
        "t2",
        None,
        CompanySettings {
            company_name: Some("Acme AB".into()),
            organization_number: Some("556677-8899".into()),
            database_number: Some(123456),
        },
    )
    .expect("tenant t2");
    let t1 = Raw::new(&e).await;
    let t2 = Raw {
        http: reqwest::Client::new(),
        base: e.sandbox.api_base(),
        token: e.sb.issue_tokens("t2").access_token,
    };

    let (s, one) = t1.get("/3/companyinformation").await;
    assert_eq!(s, 200, "{one}");
    let one = &one["CompanyInformation"];
    assert_eq!(one["CompanyName"], "Sandbox company t1");
    let org = one["OrganizationNumber"].as_str().expect("org number");
    assert!(org_number_shaped(org), "{org}");
    assert!(one["DatabaseNumber"].is_i64(), "{one}");
    assert_eq!(one["CountryCode"], "SE");
    let (s, two) = t2.get("/3/companyinformation").await;
    assert_eq!(s, 200, "{two}");
    let two = &two["CompanyInformation"];
    assert_eq!(two["CompanyName"], "Acme AB");
    assert_eq!(two["OrganizationNumber"], "556677-8899");
    assert_eq!(two["DatabaseNumber"], 123456);

    // Defaults differ per tenant, and are the same on every run.
    e.sb.create_tenant("t3", None);
    let (t1c, t3c) = (e.sb.company(TENANT), e.sb.company("t3"));
    assert_ne!(t1c.database_number, t3c.database_number);
    assert_ne!(t1c.organization_number, t3c.organization_number);
    let other = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    other.handle().create_tenant("t3", None);
    assert_eq!(other.handle().company("t3"), t3c, "deterministic");
    other.shutdown().await;

    // A DatabaseNumber names one tenant only.
    let taken = CompanySettings {
        database_number: Some(123456),
        ..Default::default()
    };
    e.sb.create_tenant_with_company("t4", None, taken)
        .expect_err("t2's DatabaseNumber");

    let c = e.sb.counters();
    assert_eq!(c.calls_with("companyinformation", 200), 2);
    let tenants: Vec<Option<String>> =
        e.sb.calls()
            .into_iter()
            .filter(|c| c.resource == "companyinformation")
            .map(|c| c.tenant)
            .collect();
    assert_eq!(tenants, [Some("t1".into()), Some("t2".into())]);
}

#[tokio::test]
async fn company_information_needs_a_token_and_takes_faults() {
    let e = env().await;
    let http = reqwest::Client::new();
    let url = format!("{}/3/companyinformation", e.sandbox.api_base());
    let r = http.get(&url).send().await.expect("send");
    assert_eq!(r.status().as_u16(), 401, "no token");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["ErrorInformation"]["code"], 2000311);
    let r = http
        .get(&url)
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 401, "unknown token");
    let raw = Raw::new(&e).await;
    e.sb.expire_access_tokens(Some(TENANT));
    let (s, _) = raw.get("/3/companyinformation").await;
    assert_eq!(s, 401, "expired token");

    let raw = Raw::new(&e).await;
    e.sb.inject(FaultSpec {
        fail_next: Some(1),
        status: Some(503),
        path_contains: Some("companyinformation".into()),
        ..Default::default()
    });
    let (s, _) = raw.get("/3/companyinformation").await;
    assert_eq!(s, 503, "faults apply");
    let (s, _) = raw.get("/3/companyinformation").await;
    assert_eq!(s, 200);
    let c = e.sb.counters();
    assert_eq!(c.calls_with("companyinformation", 401), 3);
    assert_eq!(c.calls_with("companyinformation", 503), 1);
    assert_eq!(c.calls_with("companyinformation", 200), 1);
}

#[tokio::test]
async fn control_endpoint_creates_a_tenant_with_its_company() {
    let e = env().await;
    let http = reqwest::Client::new();
    let ctl = format!("{}/sandbox", e.sandbox.api_base());
    let r = http
        .post(format!("{ctl}/tenants"))
        .json(&json!({"id": "acme", "company": {
            "company_name": "Acme AB", "organization_number": "556677-8899", "database_number": 424242
        }}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().await.expect("json");
    assert_eq!(created["CompanyInformation"]["CompanyName"], "Acme AB");
    let r = http
        .post(format!("{ctl}/tenants"))
        .json(&json!({"id": "other", "company": {"database_number": 424242}}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 409, "the DatabaseNumber is acme's");
    // Only the name given: the rest are the tenant's defaults.
    let r = http
        .post(format!("{ctl}/tenants"))
        .json(&json!({"id": "named", "company": {"company_name": "Named AB"}}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 201);
    let named: Value = http
        .get(format!("{ctl}/tenants/named/company"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let named = &named["CompanyInformation"];
    assert_eq!(named["CompanyName"], "Named AB");
    assert!(named["DatabaseNumber"].is_i64());
    assert_ne!(named["DatabaseNumber"], 424242);
    assert_eq!(e.sb.company("acme").database_number, Some(424242));
}
