//! Scenario 1: K merchants, each with a backlog of done orders in Fortnox (the sandbox,
//! with Fortnox's real rate limit), drained to INVOICED while this benchmark plays the
//! warehouse over GraphQL. Compared with what Fortnox's limit allows and with apalis
//! draining no-op tasks on the same database.
use fortnox_fulfilment::jobs::counters::ORDER_JOBS_PUT_OFF;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use fortnox_fulfilment::auth::Role;
use fortnox_fulfilment::domain::OrderState;
use fortnox_fulfilment::fortnox::types::WayOfDelivery;
use fortnox_fulfilment::fortnox::TokenSet;
use fortnox_fulfilment::store::{order_counts, Pool};
use fortnox_sandbox::testkit::article;
use fortnox_sandbox::{Counters, Sandbox, SandboxConfig, SandboxHandle};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::harness::{self, Api, Backend, BenchDb, Server};
use crate::noop;

/// Fortnox allows 25 calls per 5 s per tenant.
pub const FORTNOX_CALLS_PER_SECOND: f64 = 5.0;
/// Calls per order the pipeline test holds the service to (import read, write-back,
/// invoice, and a share of the order lists), for a ceiling that does not move with the run.
pub const FIXED_CALLS_PER_ORDER: f64 = 3.03;

pub struct DrainSettings {
    pub merchants: usize,
    pub orders_per_merchant: usize,
    pub timeout: Duration,
    pub noop_tasks: usize,
    pub warehouse_concurrency: usize,
}

pub struct DrainFigures {
    pub merchants: usize,
    pub orders: usize,
    pub invoiced: usize,
    pub drain: Duration,
    pub api_calls: u64,
    pub too_many_requests: u64,
    pub validate_p50: Option<Duration>,
    pub validate_p99: Option<Duration>,
    pub pipeline_jobs: i64,
    /// Order jobs that found their order held by another job and waited for its lease.
    pub put_off: u64,
    pub cpu_seconds: f64,
    pub noop: noop::NoopFigures,
}

impl DrainFigures {
    pub fn invoiced_per_second(&self) -> f64 {
        self.invoiced as f64 / self.drain.as_secs_f64()
    }

    pub fn calls_per_order(&self) -> f64 {
        self.api_calls as f64 / self.invoiced.max(1) as f64
    }

    /// Orders per second Fortnox's limit allows with `calls_per_order` calls each.
    pub fn ideal(&self, calls_per_order: f64) -> f64 {
        self.merchants as f64 * FORTNOX_CALLS_PER_SECOND / calls_per_order
    }

    pub fn pipeline_jobs_per_second(&self) -> f64 {
        self.pipeline_jobs as f64 / self.drain.as_secs_f64()
    }

    /// The process's CPU time over the drain as a share of the machine's two cores.
    pub fn cpu_share_of_two_cores(&self) -> f64 {
        self.cpu_seconds / (2.0 * self.drain.as_secs_f64())
    }
}

pub async fn run(backend: &Backend, settings: &DrainSettings) -> anyhow::Result<DrainFigures> {
    let sandbox = Sandbox::start(SandboxConfig::default()).await?;
    let sb = sandbox.handle();
    let tenants: Vec<String> = (0..settings.merchants)
        .map(|i| format!("shop{i}"))
        .collect();
    for tenant in &tenants {
        seed_tenant(&sb, tenant, settings.orders_per_merchant)?;
    }
    let db = BenchDb::create(backend, &format!("drain{}", settings.merchants)).await?;
    let mut config = harness::base_config(&db.url);
    config.fortnox.api_url = sandbox.api_base();
    config.fortnox.auth_url = sandbox.auth_base();
    config.fortnox.client_id = Some(fortnox_sandbox::DEFAULT_CLIENT_ID.into());
    config.fortnox.client_secret = Some(fortnox_sandbox::DEFAULT_CLIENT_SECRET.into());
    // Measured as before real-time import existed: orders come in by polling.
    config.fortnox.ws_enabled = false;
    let server = Server::start(config).await?;
    let result = drain(&server, &sb, &tenants, settings).await;
    server.stop().await;
    sandbox.shutdown().await;
    db.drop_database().await;
    result
}

/// A tenant in the sandbox with the articles and way of delivery the orders use, and
/// `orders` done orders of two stock rows each.
fn seed_tenant(sb: &SandboxHandle, tenant: &str, orders: usize) -> anyhow::Result<()> {
    sb.create_tenant(tenant, None);
    sb.add_articles(
        tenant,
        vec![
            article("ART-1", true, 100_000),
            article("ART-2", true, 100_000),
        ],
    );
    sb.add_ways_of_delivery(
        tenant,
        vec![WayOfDelivery {
            url: None,
            code: "DHL".into(),
            description: Some("DHL Express".into()),
            description_english: None,
        }],
    );
    for _ in 0..orders {
        sb.create_order(tenant, order_json())
            .map_err(|e| anyhow::anyhow!("sandbox order: {e:?}"))?;
    }
    Ok(())
}

/// An order that passes validation once the merchant has the products and the rule.
fn order_json() -> Value {
    json!({
        "CustomerNumber": "1", "CustomerName": "Anna Andersson",
        "Address1": "Storgatan 1", "ZipCode": "111 22", "City": "Stockholm", "Country": "Sverige",
        "WayOfDelivery": "DHL",
        "OrderRows": [
            {"ArticleNumber": "ART-1", "Description": "Hammer", "OrderedQuantity": "2", "Price": 100, "VAT": 25},
            {"ArticleNumber": "ART-2", "Description": "Nails", "OrderedQuantity": "1", "Price": 10, "VAT": 25}
        ],
    })
}

/// Creates a merchant per tenant, connected (tokens saved directly, as edge_costs does:
/// the OAuth flow is not what is measured), with the products and the shipping rule its
/// orders need.
async fn connect_merchants(
    server: &Server,
    sb: &SandboxHandle,
    tenants: &[String],
    admin: &str,
) -> anyhow::Result<Vec<i64>> {
    let mut merchants = Vec::with_capacity(tenants.len());
    for tenant in tenants {
        let merchant = server.app.store.create_merchant(tenant).await?.id;
        let m = merchant.to_string();
        for sku in ["ART-1", "ART-2"] {
            server
                .api
                .graphql_ok(
                    admin,
                    "mutation($m: ID!, $s: String!) { createProduct(merchantId: $m, sku: $s, name: $s) { id } }",
                    json!({ "m": m, "s": sku }),
                )
                .await?;
        }
        server
            .api
            .graphql_ok(
                admin,
                "mutation($m: ID!) { addShippingRule(merchantId: $m, pattern: \"DHL*\", shippingMethodCode: \"DHL_EXPRESS_WORLDWIDE\") { id } }",
                json!({ "m": m }),
            )
            .await?;
        // Connected last: once connected, its orders are imported and checked at once,
        // and a product or rule that arrives while an order is being checked can leave
        // that order RESERVED (see the note in docs/throughput.md).
        let tokens = TokenSet::from_response(sb.issue_tokens(tenant), Utc::now());
        server
            .app
            .fortnox
            .save_tokens(&merchant.to_string(), &tokens)
            .await?;
        merchants.push(merchant);
    }
    Ok(merchants)
}

async fn drain(
    server: &Server,
    sb: &SandboxHandle,
    tenants: &[String],
    settings: &DrainSettings,
) -> anyhow::Result<DrainFigures> {
    let admin = harness::token(Role::Admin, vec![])?;
    let merchants = connect_merchants(server, sb, tenants, &admin).await?;
    let orders = tenants.len() * settings.orders_per_merchant;
    let pool = server.pool();
    // Steady state, not a start: a process's in-memory rate-limit logs (SQLite) start
    // full, so its first Fortnox calls wait one window (5.4 s) after it starts, once per
    // start (docs/rate-limit.md; measured by tests/process/restart_rate_limit.rs). The
    // drain begins after that window has passed, as it would on a server that has been
    // up for a while; on PostgreSQL the shared log has no such window.
    if matches!(pool, Pool::Sqlite(_)) {
        let window = Duration::from_millis(5_400);
        if let Some(rest) = window.checked_sub(server.started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }

    let calls_before = api_calls(&sb.counters());
    let put_off_before = ORDER_JOBS_PUT_OFF.get();
    let cpu_before = harness::cpu_seconds();
    let started_at = Utc::now();
    let started = Instant::now();
    for merchant in &merchants {
        server
            .api
            .graphql_ok(
                &admin,
                "mutation($m: ID!) { syncOrders(merchantId: $m) }",
                json!({ "m": merchant.to_string() }),
            )
            .await?;
    }
    let (stop_warehouse, stopped) = tokio::sync::watch::channel(false);
    let warehouse = tokio::spawn(play_warehouse(
        server.api.clone(),
        harness::token(Role::Warehouse, vec![])?,
        stopped,
        settings.warehouse_concurrency,
    ));

    let mut invoiced = 0;
    let mut last_report = Instant::now();
    while started.elapsed() < settings.timeout {
        // The per-state counts `/metrics` reads: a COUNT(*) four times a second grew to
        // 5-6 ms of the database's time each as the orders piled up, load of the bench's own.
        invoiced = order_counts::per_state(pool)
            .await?
            .into_iter()
            .find(|(state, _)| state == OrderState::Invoiced.as_str())
            .map_or(0, |(_, n)| n.max(0) as usize);
        if invoiced >= orders {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            // Progress on stderr, so that a stuck drain shows where orders wait.
            eprintln!(
                "K={} after {:.0} s: {}",
                tenants.len(),
                started.elapsed().as_secs_f64(),
                orders_by_state(pool).await?
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let cpu_seconds = harness::cpu_seconds() - cpu_before;
    let put_off = ORDER_JOBS_PUT_OFF.get() - put_off_before;
    let _ = stop_warehouse.send(true);
    let shipped = warehouse.await.context("warehouse task")??;
    if invoiced < orders {
        eprintln!(
            "K={}: only {invoiced} of {orders} orders INVOICED within {:?} ({shipped} shipped); figures cover those",
            tenants.len(),
            settings.timeout
        );
    }

    let counters = sb.counters();
    let times = TransitionTimes::read(pool).await?;
    // The drain ends at the last INVOICED transition, not at the poll that saw it.
    let drain = times
        .last_invoiced
        .and_then(|last| (last - started_at).to_std().ok())
        .unwrap_or_else(|| started.elapsed());
    let mut latencies = times.import_to_validated();
    latencies.sort();
    let pipeline_jobs = scalar(pool, &pipeline_jobs_sql(pool)).await?;
    let noop = noop::drain_noop_tasks(pool, &server.app.job_settings, settings.noop_tasks).await?;
    Ok(DrainFigures {
        merchants: tenants.len(),
        orders,
        invoiced,
        drain,
        api_calls: api_calls(&counters) - calls_before,
        too_many_requests: counters.total_with_status(429),
        validate_p50: harness::quantile(&latencies, 0.5),
        validate_p99: harness::quantile(&latencies, 0.99),
        pipeline_jobs,
        put_off,
        cpu_seconds,
        noop,
    })
}

/// Calls to Fortnox's API, OAuth aside (as tests/api/pipeline.rs counts them).
fn api_calls(counters: &Counters) -> u64 {
    counters
        .calls
        .iter()
        .filter(|(resource, _)| !resource.starts_with("oauth"))
        .flat_map(|(_, by_status)| by_status.values())
        .sum()
}

/// The jobs of the three pipeline queues apalis finished (a job that found its order
/// busy and queued itself again counts once per run, as apalis ran it).
fn pipeline_jobs_sql(pool: &Pool) -> String {
    let table = match pool {
        Pool::Sqlite(_) => "Jobs",
        Pool::Postgres(_) => "apalis.jobs",
    };
    format!(
        "SELECT COUNT(*) FROM {table} WHERE job_type IN ('validate_order', 'send_to_warehouse', 'invoice_order') AND status = 'Done'"
    )
}

/// One number from SQL without parameters (the SQL holds only constants of ours).
async fn scalar(pool: &Pool, sql: &str) -> anyhow::Result<i64> {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    Ok(match pool {
        Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
        Pool::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
    })
}

/// "STATE: n, ..." for the orders stored so far.
async fn orders_by_state(pool: &Pool) -> anyhow::Result<String> {
    let sql = "SELECT state, COUNT(*) FROM orders GROUP BY state ORDER BY state";
    let rows: Vec<(String, i64)> = match pool {
        Pool::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
        Pool::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
    };
    let parts: Vec<String> = rows.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    Ok(if parts.is_empty() {
        "no orders yet".into()
    } else {
        parts.join(", ")
    })
}

/// When each order was imported and validated, from its transition events (each
/// recorded in the commit of the change), and when the last one was invoiced.
struct TransitionTimes {
    imported: HashMap<i64, DateTime<Utc>>,
    validated: HashMap<i64, DateTime<Utc>>,
    last_invoiced: Option<DateTime<Utc>>,
}

impl TransitionTimes {
    async fn read(pool: &Pool) -> anyhow::Result<TransitionTimes> {
        let sql = "SELECT order_id, to_state, created_at FROM order_events \
            WHERE kind = 'TRANSITION' AND to_state IN ('IMPORTED', 'VALIDATED', 'INVOICED')";
        let rows: Vec<(i64, String, DateTime<Utc>)> = match pool {
            Pool::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
            Pool::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await?,
        };
        let mut times = TransitionTimes {
            imported: HashMap::new(),
            validated: HashMap::new(),
            last_invoiced: None,
        };
        for (order, state, at) in rows {
            match state.as_str() {
                "IMPORTED" => {
                    times.imported.insert(order, at);
                }
                "VALIDATED" => {
                    times.validated.insert(order, at);
                }
                _ => times.last_invoiced = times.last_invoiced.max(Some(at)),
            }
        }
        Ok(times)
    }

    fn import_to_validated(&self) -> Vec<Duration> {
        self.validated
            .iter()
            .filter_map(|(order, validated)| {
                let imported = self.imported.get(order)?;
                (*validated - *imported).to_std().ok()
            })
            .collect()
    }
}

const SENT_LIST: &str =
    "{ orders(states: [SENT], first: 200) { edges { node { id lines { id pickQuantity } } } } }";
const CONFIRM: &str = "mutation($id: ID!, $t: [String!]!, $l: [ShippedLineInput!]!) { confirmShipment(orderId: $id, trackingNumbers: $t, lines: $l) { state } }";

/// The warehouse staff: list SENT orders, ship each in full (a few at a time, as several
/// packers would), and look again; until told to stop. Returns the orders shipped.
async fn play_warehouse(
    api: Api,
    token: String,
    stop: tokio::sync::watch::Receiver<bool>,
    concurrency: usize,
) -> anyhow::Result<usize> {
    let mut shipped = 0;
    while !*stop.borrow() {
        let body = api.graphql_ok(&token, SENT_LIST, json!({})).await?;
        let nodes: Vec<Value> = body["data"]["orders"]["edges"]
            .as_array()
            .map(|edges| edges.iter().map(|e| e["node"].clone()).collect())
            .unwrap_or_default();
        if nodes.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let results: Vec<anyhow::Result<bool>> = futures::stream::iter(nodes)
            .map(|node| confirm_shipment(&api, &token, node))
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        for result in results {
            if result? {
                shipped += 1;
            }
        }
    }
    Ok(shipped)
}

/// Ships every line's pick quantity; true when the order is SHIPPED.
async fn confirm_shipment(api: &Api, token: &str, node: Value) -> anyhow::Result<bool> {
    let id = node["id"].as_str().context("a SENT order has an id")?;
    let lines: Vec<Value> = node["lines"]
        .as_array()
        .context("a SENT order has lines")?
        .iter()
        .filter_map(|line| {
            let quantity = line["pickQuantity"].as_str().filter(|q| *q != "0")?;
            Some(json!({ "lineId": line["id"], "quantity": quantity }))
        })
        .collect();
    let body = api
        .graphql(
            token,
            CONFIRM,
            json!({ "id": id, "t": [format!("TRACK-{id}")], "l": lines }),
        )
        .await?;
    Ok(body["data"]["confirmShipment"]["state"] == "SHIPPED")
}
