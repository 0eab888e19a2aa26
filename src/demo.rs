//! `fortnox-fulfilment demo`: the whole product on one machine, nothing to install.
//!
//! Starts the Fortnox sandbox in-process with a realistic merchant's account, starts the
//! service on SQLite pointed at it, and then does what a merchant and a warehouse would:
//! connects Fortnox through the real OAuth flow, adds shipping rules, creates the products,
//! and ships every SENT order after a few seconds. Orders flow to INVOICED on their own; a
//! few stop in RESERVED, each with a reason a person can act on.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use fortnox_sandbox::{demo as sandbox_demo, Sandbox, SandboxConfig};
use serde_json::{json, Value};

use crate::auth::{generate_secret, Claims, JwtKeys, Role};
use crate::config::Config;
use crate::server::{shutdown_signal, App};

const DEMO_DATABASE: &str = "fortnox-fulfilment-demo.db";
/// How long the simulated warehouse takes to ship an order.
const SHIPPING_DELAY: Duration = Duration::from_secs(4);

/// The rules a merchant would add: their Fortnox delivery codes to our carriers. The
/// sandbox also has `UNKNOWN-CARRIER`, left unmapped on purpose.
const RULES: &[(&str, &str)] = &[
    ("DHL*", "DHL_EXPRESS_WORLDWIDE"),
    ("DHL-PARCEL", "DHL_PARCEL_CONNECT"),
    ("PN", "POSTNORD_MYPACK_COLLECT"),
    ("PNH", "POSTNORD_MYPACK_HOME"),
];

pub async fn run(mut config: Config) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(SandboxConfig::default()).await?;
    sandbox_demo::seed(&sandbox.handle())?;
    let _ = std::fs::remove_file(DEMO_DATABASE);
    let _ = std::fs::remove_file(format!("{DEMO_DATABASE}-wal"));
    let _ = std::fs::remove_file(format!("{DEMO_DATABASE}-shm"));
    config.server.database_url = format!("sqlite://{DEMO_DATABASE}");
    config.fortnox.api_url = sandbox.api_base();
    config.fortnox.auth_url = sandbox.auth_base();
    config.fortnox.client_id = Some("sandbox-client".into());
    config.fortnox.client_secret = Some("sandbox-secret".into());
    // Orders marked done in the sandbox arrive within seconds through its WebSocket API.
    config.fortnox.ws_url = sandbox.ws_url();
    config.server.public_url = format!("http://{}", config.server.bind_addr);
    config.jobs.import_interval = config.jobs.import_interval.min(Duration::from_secs(30));
    if config.auth.token_encryption_key.is_none() {
        // The demo's database is thrown away at the next start, and so is this key.
        let key: [u8; 32] = rand::random();
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        config.auth.token_encryption_key = Some(hex.into());
    }
    let secret = config
        .auth
        .jwt_secret
        .clone()
        .unwrap_or_else(|| generate_secret().into());

    let app = App::build(&config, &secret).await?;
    let listener = tokio::net::TcpListener::bind(config.server.bind_addr)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e} (pass --bind-addr or BIND_ADDR with a free port)",
                config.server.bind_addr
            )
        })?;
    let mut changes = app.feed.subscribe();
    let server = tokio::spawn(app.clone().serve(listener, shutdown_signal()));

    let keys = JwtKeys::new(&secret);
    let token = |role: Role| -> anyhow::Result<String> {
        let exp = (chrono::Utc::now() + chrono::Duration::hours(12)).timestamp();
        Ok(keys.issue(&Claims {
            sub: format!("demo-{}", role.as_str()),
            exp,
            role,
            merchants: vec![],
        })?)
    };
    let api = Api {
        http: reqwest::Client::new(),
        url: format!("{}/graphql", config.server.public_url),
        token: token(Role::Admin)?,
    };
    let merchant = setup_merchant(&api, &sandbox).await?;
    let admin_token = api.token.clone();
    let warehouse = Api {
        token: token(Role::Warehouse)?,
        ..api.clone()
    };
    tokio::spawn(simulated_warehouse(warehouse));
    tokio::spawn(async move {
        // Progress, one line per change, as a merchant would want to watch it.
        loop {
            let event = match changes.recv().await {
                Ok(event) => event,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            if let (Some(from), Some(to)) = (event.from_state, event.to_state) {
                if event.kind == entity::EventKind::Transition {
                    tracing::info!(target: "demo", "order {:>3}: {} → {} ({})", event.order_id, from, to, event.cause);
                }
            }
        }
    });

    // Written at once and without `println!`: a reader that closes our stdout early (a
    // pipe into `head`, a script that only wanted the token) must not kill the demo.
    let banner = format!(
        "\n  Fortnox fulfilment demo is running.\n\n\
         \x20 GraphiQL:     {url}/graphql\n\
         \x20 Header:       {{\"Authorization\": \"Bearer {admin_token}\"}}\n\
         \x20 Merchant:     {merchant}\n\
         \x20 Sandbox:      {sandbox} (a stand-in for Fortnox)\n\n\
         \x20 Paste this into GraphiQL (with the header) and run it a few times:\n\n\
         \x20 {{ orders(first: 60) {{ edges {{ node {{ fortnoxDocumentNumber state reasons invoiceNumber trackingNumbers }} }} }} }}\n\n\
         \x20 Or watch the changes live:  subscription {{ orderStateChanged {{ orderId fromState toState cause }} }}\n\
         \x20 Stop with Ctrl-C.\n\n",
        url = config.server.public_url,
        sandbox = sandbox.api_base(),
    );
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        if stdout
            .write_all(banner.as_bytes())
            .and_then(|()| stdout.flush())
            .is_err()
        {
            tracing::warn!(target: "demo", "stdout is closed; the demo goes on without its banner");
        }
    }
    server.await??;
    sandbox.shutdown().await;
    Ok(())
}

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn call(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let response: Value = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?
            .json()
            .await?;
        if let Some(errors) = response.get("errors").filter(|e| !e.is_null()) {
            anyhow::bail!("GraphQL error: {errors}");
        }
        Ok(response["data"].clone())
    }
}

/// What a merchant does on the integration page, through the same API a frontend uses.
async fn setup_merchant(api: &Api, sandbox: &Sandbox) -> anyhow::Result<String> {
    let data = api
        .call(
            "mutation { createMerchant(name: \"Verktygsboden AB\") { id } }",
            json!({}),
        )
        .await?;
    let merchant = data["createMerchant"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let vars = json!({ "m": merchant });
    api.call("mutation($m: ID!) { updateFortnoxSettings(merchantId: $m, firstOrderDate: \"2026-11-01\") { status } }", vars.clone()).await?;
    for (pattern, method) in RULES {
        api.call(
            "mutation($m: ID!, $p: String!, $c: String!) { addShippingRule(merchantId: $m, pattern: $p, shippingMethodCode: $c) { id } }",
            json!({ "m": merchant, "p": pattern, "c": method }),
        )
        .await?;
    }
    // The warehouse stocks every active stock article of the account.
    for article in sandbox.handle().articles(sandbox_demo::DEMO_TENANT) {
        let stocked =
            article.article_type.as_deref() == Some("STOCK") && article.active != Some(false);
        if stocked {
            api.call(
                "mutation($m: ID!, $s: String!, $n: String!, $e: String) { createProduct(merchantId: $m, sku: $s, name: $n, ean: $e) { id } }",
                json!({ "m": merchant, "s": article.article_number, "n": article.description.unwrap_or_default(), "e": article.ean }),
            )
            .await?;
        }
    }
    // The real OAuth flow: the authorize page approves at once and sends us back with a
    // code and state, which the same caller hands to completeFortnoxConnection (what the
    // frontend does at FORTNOX_CONNECT_RETURN_URL).
    let data = api
        .call("mutation($m: ID!) { connectFortnox(merchantId: $m) }", vars)
        .await?;
    let authorize = data["connectFortnox"].as_str().unwrap_or_default();
    let back = fortnox_sandbox::approve(authorize).await?;
    api.call(
        "mutation($m: ID!, $c: String!, $s: String!) { completeFortnoxConnection(merchantId: $m, code: $c, state: $s) { status } }",
        json!({ "m": merchant, "c": back.code, "s": back.state }),
    )
    .await?;
    Ok(merchant)
}

/// Ships each SENT order a few seconds after it arrived, in full.
async fn simulated_warehouse(api: Api) {
    let mut first_seen: HashMap<String, Instant> = HashMap::new();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Ok(data) = api.call("{ orders(states: [SENT], first: 200) { edges { node { id lines { id pickQuantity } } } } }", json!({})).await else {
            continue;
        };
        for edge in data["orders"]["edges"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let node = &edge["node"];
            let id = node["id"].as_str().unwrap_or_default().to_owned();
            if first_seen
                .entry(id.clone())
                .or_insert_with(Instant::now)
                .elapsed()
                < SHIPPING_DELAY
            {
                continue;
            }
            let lines: Vec<Value> = node["lines"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|l| l["pickQuantity"].as_str().is_some_and(|q| q != "0"))
                .map(|l| json!({ "lineId": l["id"], "quantity": l["pickQuantity"] }))
                .collect();
            let shipped = api
                .call(
                    "mutation($id: ID!, $t: [String!]!, $l: [ShippedLineInput!]!) { confirmShipment(orderId: $id, trackingNumbers: $t, lines: $l) { state } }",
                    json!({ "id": id, "t": [format!("00370712345{:0>7}", id)], "l": lines }),
                )
                .await;
            if let Err(error) = shipped {
                tracing::warn!(target: "demo", order = %id, %error, "the simulated warehouse could not ship");
            }
            first_seen.remove(&id);
        }
    }
}
