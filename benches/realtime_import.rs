//! How soon an order marked done in Fortnox is IMPORTED: through the WebSocket API (polling
//! set to an hour) against polling alone every `BENCH_POLL_SECS` (5) as the reference,
//! measured in the same run on SQLite and, with `BENCH_POSTGRES_URL`, PostgreSQL.
//!
//! `cargo bench --bench realtime_import`. Knobs: `BENCH_ORDERS` (200, spread over 4
//! merchants so that each stays within its 25-per-5-s Fortnox budget),
//! `BENCH_MARK_EVERY_MS` (100). The delay of an order is from the moment the bench marks
//! it done in the sandbox to the order's `created_at` in the database.
#[path = "throughput/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fortnox_fulfilment::fortnox::oauth::TokenSet;
use fortnox_fulfilment::fortnox::types::WayOfDelivery;
use fortnox_fulfilment::store::Pool;
use fortnox_sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use harness::{quantile, Backend, BenchDb, Server};
use serde_json::json;

const MERCHANTS: usize = 4;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Delays {
    sorted: Vec<Duration>,
    lost: usize,
}

impl Delays {
    fn q(&self, q: f64) -> Duration {
        quantile(&self.sorted, q).unwrap_or_default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let orders = knob("BENCH_ORDERS", 200) as usize;
    let every = Duration::from_millis(knob("BENCH_MARK_EVERY_MS", 100));
    let poll = Duration::from_secs(knob("BENCH_POLL_SECS", 5));
    let mut backends = vec![Backend::Sqlite];
    if let Ok(admin_url) = std::env::var("BENCH_POSTGRES_URL") {
        backends.push(Backend::Postgres { admin_url });
    }
    for backend in &backends {
        let realtime = run(backend, true, orders, every, poll).await?;
        // The reference: fewer orders suffice, each waits for the next poll.
        let polling = run(backend, false, (orders / 4).max(20), every, poll).await?;
        println!(
            "{}: marked done -> IMPORTED over {orders} orders ({MERCHANTS} merchants, one every {every:?})",
            backend.name()
        );
        for (label, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
            let (r, p) = (realtime.q(q), polling.q(q));
            println!(
                "  {label}: real-time {} | polling every {poll:?} {} | ratio {:.3}",
                harness::ms(r),
                harness::ms(p),
                r.as_secs_f64() / p.as_secs_f64().max(1e-9)
            );
        }
        println!(
            "  lost: real-time {}, polling {}; real-time p99 under 2 s: {}",
            realtime.lost,
            polling.lost,
            realtime.q(0.99) < Duration::from_secs(2)
        );
    }
    Ok(())
}

async fn run(
    backend: &Backend,
    realtime: bool,
    orders: usize,
    every: Duration,
    poll: Duration,
) -> anyhow::Result<Delays> {
    let sandbox = Sandbox::start(SandboxConfig::default()).await?;
    let sb = sandbox.handle();
    let tenants: Vec<String> = (0..MERCHANTS).map(|i| format!("shop{i}")).collect();
    let db = BenchDb::create(backend, if realtime { "rt" } else { "poll" }).await?;
    let mut config = harness::base_config(&db.url);
    config.fortnox.api_url = sandbox.api_base();
    config.fortnox.auth_url = sandbox.auth_base();
    config.fortnox.client_id = Some(fortnox_sandbox::DEFAULT_CLIENT_ID.into());
    config.fortnox.client_secret = Some(fortnox_sandbox::DEFAULT_CLIENT_SECRET.into());
    config.fortnox.ws_url = sandbox.ws_url();
    config.fortnox.ws_enabled = realtime;
    config.jobs.import_interval = if realtime {
        Duration::from_secs(3600)
    } else {
        poll
    };
    config.jobs.realtime_import_interval = Duration::from_secs(3600);
    let server = Server::start(config).await?;
    // On SQLite each merchant's Fortnox log starts full at process start (so that a restart
    // cannot exceed Fortnox's window with the previous process's calls), which holds every
    // first call until one window has passed: measured from then on, the steady state.
    let window_passed = tokio::time::Instant::now()
        + fortnox_fulfilment::fortnox::RateLimit::FORTNOX.span()
        + Duration::from_millis(500);
    let mut merchants = HashMap::new();
    for tenant in &tenants {
        seed(&sb, tenant);
        let merchant = server.app.store.create_merchant(tenant).await?.id;
        let tokens = TokenSet::from_response(sb.issue_tokens(tenant), Utc::now());
        server
            .app
            .fortnox
            .save_tokens(&merchant.to_string(), &tokens)
            .await?;
        merchants.insert(merchant, tenant.clone());
    }
    if realtime {
        fortnox_fulfilment::realtime::tenants_changed();
        wait_live(&server, merchants.len()).await?;
    }
    // Drafts made while no event is sent for them (Fortnox emits order-created, which
    // would cost a read each; the bench measures marking done).
    let mut drafts = Vec::with_capacity(orders);
    for i in 0..orders {
        let tenant = &tenants[i % tenants.len()];
        sb.ws_mute_tenant(tenant, true);
        let order = sb
            .create_order(
                tenant,
                json!({
                    "CustomerNumber": "1", "CustomerName": "Anna Andersson",
                    "Address1": "Storgatan 1", "ZipCode": "111 22", "City": "Stockholm",
                    "Country": "Sverige", "WayOfDelivery": "DHL", "NotCompleted": true,
                    "OrderRows": [{"ArticleNumber": "ART-1", "Description": "T-shirt",
                        "OrderedQuantity": "1", "Price": 100, "VAT": 25}],
                }),
            )
            .map_err(|e| anyhow::anyhow!("sandbox order: {e:?}"))?;
        drafts.push((tenant.clone(), order.document_number.as_str().to_owned()));
    }
    for tenant in &tenants {
        sb.ws_mute_tenant(tenant, false);
    }
    // The polling reference starts from a poll that has seen the drafts (not done).
    tokio::time::sleep(if realtime {
        Duration::from_millis(500)
    } else {
        poll * 2
    })
    .await;
    tokio::time::sleep_until(window_passed).await;
    let mut marked: HashMap<(String, String), DateTime<Utc>> = HashMap::new();
    let mut ticker = tokio::time::interval(every);
    for (tenant, document) in &drafts {
        ticker.tick().await;
        marked.insert((tenant.clone(), document.clone()), Utc::now());
        sb.mark_done(tenant, document)
            .map_err(|e| anyhow::anyhow!("mark done: {e:?}"))?;
    }
    let deadline = tokio::time::Instant::now() + poll * 3 + Duration::from_secs(20);
    let mut imported = Vec::new();
    while tokio::time::Instant::now() < deadline {
        imported = imported_at(server.pool()).await?;
        if imported.len() >= drafts.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut sorted = Vec::new();
    for (merchant, document, at) in &imported {
        let Some(tenant) = merchants.get(merchant) else {
            continue;
        };
        if let Some(done) = marked.get(&(tenant.clone(), document.clone())) {
            sorted.push((*at - *done).to_std().unwrap_or_default());
        }
    }
    sorted.sort();
    let lost = drafts.len() - sorted.len();
    if realtime {
        // Where the time goes: from marking done to the event's arrival, and on to import.
        let seen: HashMap<String, DateTime<Utc>> =
            seen_at(server.pool()).await?.into_iter().collect();
        let mut to_event = Vec::new();
        for event in sb.ws_events("orders") {
            let (Some(offset), Some(entity), Some(tenant_id)) = (
                event["offset"].as_str(),
                event["entityId"].as_str(),
                event["tenantId"].as_i64(),
            ) else {
                continue;
            };
            let Some(tenant) = tenants.iter().find(|t| sb.tenant_id(t) == Some(tenant_id)) else {
                continue;
            };
            if let (Some(done), Some(at)) = (
                marked.get(&(tenant.clone(), entity.to_owned())),
                seen.get(offset),
            ) {
                to_event.push((*at - *done).to_std().unwrap_or_default());
            }
        }
        to_event.sort();
        println!(
            "  (diagnostic) marked done -> event recorded: p50 {:?} p90 {:?} max {:?}",
            quantile(&to_event, 0.5).unwrap_or_default(),
            quantile(&to_event, 0.9).unwrap_or_default(),
            quantile(&to_event, 1.0).unwrap_or_default()
        );
    }
    server.stop().await;
    sandbox.shutdown().await;
    db.drop_database().await;
    Ok(Delays { sorted, lost })
}

fn seed(sb: &SandboxHandle, tenant: &str) {
    sb.create_tenant(tenant, None);
    sb.add_articles(
        tenant,
        vec![fortnox_sandbox::testkit::article("ART-1", true, 100_000)],
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
}

async fn wait_live(server: &Server, merchants: usize) -> anyhow::Result<()> {
    for _ in 0..300 {
        if server.app.store.realtime_live_merchants().await?.len() >= merchants {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("real-time import did not go live for every merchant within 30 s")
}

/// (merchant, document number, created_at) of every stored order.
async fn imported_at(pool: &Pool) -> anyhow::Result<Vec<(i64, String, DateTime<Utc>)>> {
    const SQL: &str = "SELECT merchant_id, fortnox_document_number, created_at FROM orders";
    Ok(match pool {
        Pool::Sqlite(pool) => sqlx::query_as(SQL).fetch_all(pool).await?,
        Pool::Postgres(pool) => sqlx::query_as(SQL).fetch_all(pool).await?,
    })
}

async fn seen_at(pool: &Pool) -> anyhow::Result<Vec<(String, DateTime<Utc>)>> {
    const SQL: &str = "SELECT event_offset, seen_at FROM fortnox_ws_seen WHERE topic = 'orders'";
    Ok(match pool {
        Pool::Sqlite(pool) => sqlx::query_as(SQL).fetch_all(pool).await?,
        Pool::Postgres(pool) => sqlx::query_as(SQL).fetch_all(pool).await?,
    })
}
