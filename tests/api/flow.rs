//! The whole pipeline against the Fortnox sandbox: a merchant connected through the real
//! OAuth flow, orders marked done in the sandbox, a simulated warehouse shipping them.
#![allow(dead_code)]

use std::time::Duration;

use fortnox_fulfilment::auth::Role;
use fortnox_fulfilment::domain::OrderState;
use fortnox_fulfilment::fortnox::types::{Article, WayOfDelivery};
use fortnox_fulfilment::store::orders::TenantScope;
use fortnox_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use serde_json::{json, Value};

use crate::common::{self, admin_token, eventually, TestApp};

pub const TENANT: &str = "shop";
pub const KEY: &str = "6b6579206b6579206b6579206b6579206b6579206b6579206b6579206b657921";

/// A stock article with 100 on hand, or a service article.
pub fn article(number: &str, stock: bool) -> Article {
    fortnox_sandbox::testkit::article(number, stock, 100)
}

pub struct Flow {
    pub app: TestApp,
    pub sandbox: Sandbox,
    pub merchant: i64,
    pub admin: String,
    pub warehouse: String,
}

/// Starts a connection as `token`, approves it on the sandbox's authorize page (whichever
/// tenant the sandbox authorizes), and returns the code and state Fortnox sends back.
pub async fn approve_in_fortnox(app: &TestApp, token: &str, merchant: i64) -> (String, String) {
    let body = app
        .graphql(
            token,
            "mutation($m: ID!) { connectFortnox(merchantId: $m) }",
            json!({ "m": merchant.to_string() }),
        )
        .await;
    let url = body["data"]["connectFortnox"]
        .as_str()
        .unwrap_or_else(|| panic!("authorize url: {body}"))
        .to_owned();
    let back = fortnox_sandbox::approve(&url).await.expect("approved");
    (back.code, back.state)
}

/// Completes a connection as `token` with the code and state Fortnox sent back.
pub async fn complete_as(
    app: &TestApp,
    token: &str,
    merchant: i64,
    code: &str,
    state: &str,
) -> Value {
    app.graphql(
        token,
        "mutation($m: ID!, $c: String!, $s: String!) { completeFortnoxConnection(merchantId: $m, code: $c, state: $s) { status company { name organizationNumber tenantId } } }",
        json!({ "m": merchant.to_string(), "c": code, "s": state }),
    )
    .await
}

/// The whole connection by one caller; returns completeFortnoxConnection's answer.
pub async fn connect_as(app: &TestApp, token: &str, merchant: i64) -> Value {
    let (code, state) = approve_in_fortnox(app, token, merchant).await;
    complete_as(app, token, merchant, &code, &state).await
}

impl Flow {
    /// Sandbox with the real rate limit, the app pointed at it, one merchant connected.
    pub async fn start() -> Flow {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut fortnox_fulfilment::config::Config)) -> Flow {
        let sandbox = Sandbox::start(SandboxConfig::default())
            .await
            .expect("sandbox");
        let sb = sandbox.handle();
        sb.create_tenant(TENANT, None);
        sb.set_authorize_tenant(TENANT);
        sb.add_articles(
            TENANT,
            vec![
                article("ART-1", true),
                article("ART-2", true),
                article("ART-3", true),
                article("FRAKT", false),
            ],
        );
        sb.add_ways_of_delivery(
            TENANT,
            vec![
                WayOfDelivery {
                    url: None,
                    code: "DHL".into(),
                    description: Some("DHL Express".into()),
                    description_english: None,
                },
                WayOfDelivery {
                    url: None,
                    code: "PN".into(),
                    description: Some("PostNord MyPack".into()),
                    description_english: None,
                },
            ],
        );
        let (api, auth, ws_url) = (sandbox.api_base(), sandbox.auth_base(), sandbox.ws_url());
        let app = TestApp::spawn_with(|config| {
            config.fortnox.api_url = api;
            config.fortnox.auth_url = auth;
            config.fortnox.client_id = Some("sandbox-client".into());
            config.fortnox.client_secret = Some("sandbox-secret".into());
            // Off unless a test turns it on (`config.fortnox.ws_enabled = true`).
            config.fortnox.ws_url = ws_url;
            config.auth.token_encryption_key = Some(KEY.into());
            config.jobs.import_interval = Duration::from_secs(3600);
            config.jobs.retry_base = Duration::from_millis(300);
            config.jobs.max_attempts = 4;
            adjust(config);
        })
        .await;
        let admin = admin_token();
        let body = app
            .graphql(
                &admin,
                "mutation { createMerchant(name: \"Shop AB\") { id } }",
                json!({}),
            )
            .await;
        let merchant: i64 = body["data"]["createMerchant"]["id"]
            .as_str()
            .expect("merchant")
            .parse()
            .unwrap();
        let flow = Flow {
            app,
            sandbox,
            merchant,
            admin,
            warehouse: common::token(Role::Warehouse, vec![]),
        };
        flow.connect().await;
        flow
    }

    pub fn sb(&self) -> SandboxHandle {
        self.sandbox.handle()
    }

    /// The real OAuth flow: connectFortnox, the sandbox's authorize page, and
    /// completeFortnoxConnection with the code and state it sends back, by the same caller.
    pub async fn connect(&self) {
        let body = connect_as(&self.app, &self.admin, self.merchant).await;
        assert_eq!(
            body["data"]["completeFortnoxConnection"]["status"], "CONNECTED",
            "{body}"
        );
    }

    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.app.graphql(&self.admin, query, variables).await
    }

    pub async fn add_rule(&self, pattern: &str, method_code: &str) {
        let body = self
            .gql(
                "mutation($m: ID!, $p: String!, $c: String!) { addShippingRule(merchantId: $m, pattern: $p, shippingMethodCode: $c) { id } }",
                json!({ "m": self.merchant.to_string(), "p": pattern, "c": method_code }),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
    }

    pub async fn add_product(&self, sku: &str) {
        let body = self
            .gql(
                "mutation($m: ID!, $s: String!) { createProduct(merchantId: $m, sku: $s, name: $s) { id } }",
                json!({ "m": self.merchant.to_string(), "s": sku }),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
    }

    /// The usual catalogue: ART-1 and ART-2 as products, DHL* and PN mapped.
    pub async fn standard_setup(&self) {
        self.add_product("ART-1").await;
        self.add_product("ART-2").await;
        self.add_rule("DHL*", "DHL_EXPRESS_WORLDWIDE").await;
        self.add_rule("PN", "POSTNORD_MYPACK_COLLECT").await;
    }

    pub fn order_json(rows: Value) -> Value {
        json!({
            "CustomerNumber": "1", "CustomerName": "Anna Andersson",
            "Address1": "Storgatan 1", "ZipCode": "111 22", "City": "Stockholm", "Country": "Sverige",
            "WayOfDelivery": "DHL",
            "OrderRows": rows,
        })
    }

    /// Creates an order in Fortnox (done unless the JSON says otherwise); returns its number.
    pub fn create_order(&self, order: Value) -> String {
        self.sb()
            .create_order(TENANT, order)
            .expect("sandbox order")
            .document_number
            .as_str()
            .to_owned()
    }

    pub async fn sync(&self) {
        let body = self
            .gql(
                "mutation($m: ID!) { syncOrders(merchantId: $m) }",
                json!({ "m": self.merchant.to_string() }),
            )
            .await;
        assert_eq!(body["data"]["syncOrders"], true, "{body}");
    }

    pub async fn order_id(&self, document: &str) -> Option<i64> {
        self.app
            .store()
            .order_by_document(self.merchant, document)
            .await
            .expect("read")
            .map(|o| o.id)
    }

    pub async fn state_of(&self, document: &str) -> Option<OrderState> {
        let id = self.order_id(document).await?;
        Some(common::order_state(self.app.store(), id).await)
    }

    pub async fn wait_for(&self, document: &str, state: OrderState, timeout: Duration) -> bool {
        eventually(timeout, || async {
            self.state_of(document).await == Some(state)
        })
        .await
    }

    pub async fn order_json_of(&self, document: &str) -> Value {
        let id = self.order_id(document).await.expect("imported");
        let body = self
            .gql(
                "query($id: ID!) { order(id: $id) { id state reasons stalled lastError invoiceNumber trackingNumbers lines { id articleNumber orderedQuantity pickQuantity shippedQuantity } events { kind cause message } } }",
                json!({ "id": id.to_string() }),
            )
            .await;
        body["data"]["order"].clone()
    }

    /// Ships every SENT order in full (or with `quantity` per line if given), as the
    /// warehouse would; returns how many it shipped.
    pub async fn ship_sent(&self, quantity: Option<&str>) -> usize {
        let body = self
            .app
            .graphql(&self.warehouse, "{ orders(states: [SENT], first: 200) { edges { node { id lines { id pickQuantity } } } } }", json!({}))
            .await;
        let mut shipped = 0;
        for edge in body["data"]["orders"]["edges"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let node = &edge["node"];
            let lines: Vec<Value> = node["lines"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|l| l["pickQuantity"].as_str().is_some_and(|q| q != "0"))
                .map(|l| json!({ "lineId": l["id"], "quantity": quantity.unwrap_or_else(|| l["pickQuantity"].as_str().unwrap()) }))
                .collect();
            let result = self
                .app
                .graphql(
                    &self.warehouse,
                    "mutation($id: ID!, $t: [String!]!, $l: [ShippedLineInput!]!) { confirmShipment(orderId: $id, trackingNumbers: $t, lines: $l) { state } }",
                    json!({ "id": node["id"], "t": [format!("TRACK-{}", node["id"].as_str().unwrap())], "l": lines }),
                )
                .await;
            if report_taken(&result) {
                shipped += 1;
            } else {
                eprintln!("the warehouse's report was not taken: {result}");
            }
        }
        shipped
    }

    /// Keeps shipping until `done` holds or time runs out.
    pub async fn ship_until(&self, timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            self.ship_sent(None).await;
            if done() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        false
    }

    pub async fn count_in(&self, state: OrderState) -> usize {
        let filter = fortnox_fulfilment::store::orders::OrderFilter {
            merchant_id: Some(self.merchant),
            states: vec![state],
        };
        self.app
            .store()
            .orders_page(&TenantScope::All, &filter, None, 10_000)
            .await
            .unwrap()
            .len()
    }

    pub async fn stop(self) {
        self.app.stop().await;
        self.sandbox.shutdown().await;
    }
}

impl Flow {
    /// A graceful restart of the service on the same database.
    pub async fn restart(mut self) -> Flow {
        self.app = self.app.restart().await;
        self
    }

    pub fn reasons(order: &Value) -> Vec<String> {
        order["reasons"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Flow {
    /// Changes an order in Fortnox, as the merchant would in its UI.
    pub async fn edit_in_fortnox(&self, document: &str, fields: Value) {
        let token = self.sb().issue_tokens(TENANT).access_token;
        let response = reqwest::Client::new()
            .put(format!("{}/3/orders/{document}", self.sandbox.api_base()))
            .bearer_auth(token)
            .json(&json!({ "Order": fields }))
            .send()
            .await
            .expect("edit the order in Fortnox");
        assert!(
            response.status().is_success(),
            "{}",
            response.text().await.unwrap_or_default()
        );
    }
}

/// Whether a `confirmShipment` answer took the report: the order is SHIPPED, or already
/// INVOICED when the invoice job the report queued finished before the answer re-read it.
fn report_taken(answer: &Value) -> bool {
    answer["errors"].is_null()
        && matches!(
            answer["data"]["confirmShipment"]["state"].as_str(),
            Some("SHIPPED" | "INVOICED")
        )
}
