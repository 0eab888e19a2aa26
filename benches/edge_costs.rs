//! What hostile or careless queries cost the server, beside an ordinary query measured in
//! the same run: the fragment bomb, 300 aliases of a 1,000-line order, and 20 aliases of a
//! field read live from Fortnox. Prints a table of times, memory growth and Fortnox calls,
//! with ratios against the reference; asserts nothing (figures are not pass/fail).
//!
//! `cargo bench --bench edge_costs` (a release build). The server runs in this process,
//! on SQLite, against the Fortnox sandbox; memory growth is the rise of this process's
//! peak resident set (VmHWM, reset before each query through /proc/self/clear_refs).
use std::time::{Duration, Instant};

use fortnox_fulfilment::auth::{Claims, JwtKeys, Role};
use fortnox_fulfilment::config::Config;
use fortnox_fulfilment::fortnox::types::WayOfDelivery;
use fortnox_fulfilment::fortnox::TokenSet;
use fortnox_fulfilment::server::App;
use fortnox_fulfilment::store::orders::{NewOrder, NewOrderLine};
use fortnox_sandbox::{Sandbox, SandboxConfig};
use serde_json::{json, Value};

const SECRET: &str = "benchmark-secret";
const RUNS: usize = 15;

/// Eight fragments, each spreading the previous one ten times: 10^8 fields once expanded.
fn fragment_bomb() -> String {
    let mut query =
        String::from("query { __typename ...F7 }\nfragment F0 on QueryRoot { __typename }\n");
    for level in 1..8 {
        let spreads = vec![format!("...F{}", level - 1); 10].join(" ");
        query.push_str(&format!("fragment F{level} on QueryRoot {{ {spreads} }}\n"));
    }
    query
}

fn aliases(count: usize, field: &str) -> String {
    let fields: Vec<String> = (0..count).map(|i| format!("a{i}: {field}")).collect();
    format!("query($v: ID!) {{ {} }}", fields.join(" "))
}

fn kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

struct Measured {
    median: Duration,
    peak_growth_mib: f64,
    errors: Option<String>,
}

struct Bench {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Bench {
    async fn post(&self, query: &str, variables: &Value) -> Value {
        self.http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("JSON answer")
    }

    async fn measure(&self, query: &str, variables: Value) -> Measured {
        let mut times = Vec::with_capacity(RUNS);
        let mut growth = 0u64;
        let mut errors = None;
        for _ in 0..RUNS {
            // Resets VmHWM to the current resident set (Linux).
            let _ = std::fs::write("/proc/self/clear_refs", "5");
            let before = kib("VmRSS:");
            let started = Instant::now();
            let body = self.post(query, &variables).await;
            times.push(started.elapsed());
            growth = growth.max(kib("VmHWM:").saturating_sub(before));
            errors = body["errors"][0]["message"]
                .as_str()
                .map(|m| m.chars().take(60).collect());
        }
        times.sort();
        Measured {
            median: times[RUNS / 2],
            peak_growth_mib: growth as f64 / 1024.0,
            errors,
        }
    }
}

fn row(name: &str, m: &Measured, reference: &Measured) {
    println!(
        "| {name} | {:.2} ms | {:.1}x | {:.1} MiB | {} |",
        m.median.as_secs_f64() * 1e3,
        m.median.as_secs_f64() / reference.median.as_secs_f64(),
        m.peak_growth_mib,
        m.errors.as_deref().unwrap_or("answered")
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let sandbox = Sandbox::start(SandboxConfig {
        rate_limit: None,
        ..SandboxConfig::default()
    })
    .await?;
    let sb = sandbox.handle();
    sb.create_tenant("bench", None);
    sb.add_ways_of_delivery(
        "bench",
        vec![WayOfDelivery {
            url: None,
            code: "DHL".into(),
            description: Some("DHL".into()),
            description_english: None,
        }],
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut config = Config::defaults();
    config.server.database_url = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());
    config.server.public_url = format!("http://{addr}");
    config.auth.jwt_secret = Some(SECRET.into());
    config.fortnox.api_url = sandbox.api_base();
    config.fortnox.auth_url = sandbox.auth_base();
    config.fortnox.client_id = Some("sandbox-client".into());
    config.fortnox.client_secret = Some("sandbox-secret".into());
    // Measured as before real-time import existed: orders come in by polling.
    config.fortnox.ws_enabled = false;
    config.jobs.import_interval = Duration::from_secs(3600);
    let app = App::build(&config, &SECRET.into()).await?;
    let store = app.store.clone();
    let merchant = store.create_merchant("Bench AB").await?.id;
    let tokens = TokenSet::from_response(sb.issue_tokens("bench"), chrono::Utc::now());
    app.fortnox
        .save_tokens(&merchant.to_string(), &tokens)
        .await?;
    let mut order = NewOrder {
        merchant_id: merchant,
        fortnox_document_number: "1".into(),
        way_of_delivery: Some("DHL".into()),
        delivery_address: None,
        fortnox_snapshot: json!({ "DocumentNumber": "1" }),
        lines: Vec::new(),
    };
    order.lines = (0..1_000)
        .map(|row| NewOrderLine {
            fortnox_row_id: Some(row),
            article_number: Some(format!("ART-{row}")),
            description: "A line of a long order".into(),
            ordered_quantity: "1".into(),
        })
        .collect();
    let order_id = store
        .insert_order(order)
        .await?
        .map(|o| o.id)
        .unwrap_or_default();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.clone().serve(listener, async move {
        let _ = stopped.await;
    }));

    let claims = Claims {
        sub: "bench-partner".into(),
        exp: chrono::Utc::now().timestamp() + 3600,
        role: Role::Partner,
        merchants: vec![merchant],
    };
    let bench = Bench {
        http: reqwest::Client::new(),
        url: format!("http://{addr}/graphql"),
        token: JwtKeys::new(&SECRET.into()).issue(&claims)?,
    };
    let by_merchant = json!({ "v": merchant.to_string() });
    let by_order = json!({ "v": order_id.to_string() });
    let lines = "order(id: $v) { id lines { id articleNumber orderedQuantity } }";
    let ways = "wayOfDeliveryMappings(merchantId: $v) { code outcome }";

    // Warm-up: connections, statements, the first live read.
    bench.post("{ merchants { id } }", &json!({})).await;
    let reference = bench.measure("{ merchants { id name } }", json!({})).await;
    println!("| query | median | vs. reference | peak memory growth | answer |");
    println!("|---|---|---|---|---|");
    row(
        "reference: `{ merchants { id name } }`",
        &reference,
        &reference,
    );
    let bomb = fragment_bomb();
    row(
        &format!("fragment bomb ({} bytes, 10^8 fields expanded)", bomb.len()),
        &bench.measure(&bomb, json!({})).await,
        &reference,
    );
    row(
        "one order with its 1,000 lines",
        &bench.measure(&aliases(1, lines), by_order.clone()).await,
        &reference,
    );
    row(
        "300 aliases of that order's lines",
        &bench.measure(&aliases(300, lines), by_order).await,
        &reference,
    );
    let way_reads = || {
        sb.calls()
            .iter()
            .filter(|c| c.path == "/3/wayofdeliveries")
            .count()
    };
    let calls_before = way_reads();
    row(
        "20 aliases of wayOfDeliveryMappings",
        &bench.measure(&aliases(20, ways), by_merchant).await,
        &reference,
    );
    let calls = way_reads() - calls_before;
    println!();
    println!("Fortnox calls for {RUNS} requests of 20 aliases of wayOfDeliveryMappings: {calls} (without the shared read: {})", RUNS * 20);

    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}
