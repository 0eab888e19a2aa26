//! One webhook endpoint, then many, receiving the events of the orders an admin changes.
//! The receivers are one HTTP server in this process, a path per endpoint.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::routing::post;
use fortnox_fulfilment::auth::Role;
use fortnox_fulfilment::services::webhooks::MAX_ENDPOINTS_PER_MERCHANT;
use serde_json::{json, Value};

use crate::harness::{Backend, BenchDb};
use crate::server::{self, ServerProcess};
use crate::{percentiles, Settings};

/// (endpoint, event number) → when it arrived; the first arrival counts.
type Arrivals = Arc<Mutex<HashMap<(usize, usize), Instant>>>;

pub async fn run(backend: &Backend, settings: &Settings) -> anyhow::Result<()> {
    let db = BenchDb::create(backend, "webhooks").await?;
    let server = ServerProcess::start(&db, &[("WEBHOOK_ALLOW_PRIVATE_URLS", "true")]).await?;
    let outcome = measure(backend, settings, &db, &server).await;
    server.stop();
    db.drop_database().await;
    outcome
}

async fn measure(
    backend: &Backend,
    settings: &Settings,
    db: &BenchDb,
    server: &ServerProcess,
) -> anyhow::Result<()> {
    let arrivals: Arrivals = Arc::default();
    let receiver = {
        let arrivals = arrivals.clone();
        axum::Router::new().route(
            "/hook/{endpoint}",
            post(
                move |Path(endpoint): Path<usize>, body: axum::body::Bytes| {
                    let arrivals = arrivals.clone();
                    async move {
                        let at = Instant::now();
                        let body: Value = serde_json::from_slice(&body).unwrap_or_default();
                        let message = body["data"]["message"].as_str().unwrap_or("");
                        if let Some(n) = message.strip_prefix("bench-").and_then(|n| n.parse().ok())
                        {
                            let mut arrivals = arrivals.lock().unwrap_or_else(|e| e.into_inner());
                            arrivals.entry((endpoint, n)).or_insert(at);
                        }
                        "ok"
                    }
                },
            ),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let reference = deliver(server, db, settings, 1, receiver_addr, &arrivals, 0).await?;
    let many = deliver(
        server,
        db,
        settings,
        settings.endpoints,
        receiver_addr,
        &arrivals,
        1000,
    )
    .await?;
    println!("\n{} · webhooks", backend.name());
    println!(
        "{:>12} {:>10} {:>10} {:>8}",
        "endpoints", "p50 ms", "p99 ms", "lost"
    );
    for (endpoints, (p50, p99, lost)) in [(1, reference), (settings.endpoints, many)] {
        println!("{endpoints:>12} {p50:>10.1} {p99:>10.1} {lost:>8}");
    }
    println!(
        "p99 with {} endpoints against one: {:.2}x; lost must be 0",
        settings.endpoints,
        many.1 / reference.1
    );
    Ok(())
}

/// Registers `count` endpoints (at most 20 a merchant, so over several merchants, each
/// with an order), changes the orders in turn `settings.events` times, and waits for every
/// delivery; returns p50, p99 and the deliveries lost. `first_path` keeps the runs'
/// receivers apart.
async fn deliver(
    server: &ServerProcess,
    db: &BenchDb,
    settings: &Settings,
    count: usize,
    receiver: std::net::SocketAddr,
    arrivals: &Arrivals,
    first_path: usize,
) -> anyhow::Result<(f64, f64, usize)> {
    let admin = server::token("bench-admin", Role::Admin, vec![])?;
    let merchants = count.div_ceil(MAX_ENDPOINTS_PER_MERCHANT);
    let mut orders = Vec::new();
    // Endpoint paths of each merchant.
    let mut paths_of: Vec<Vec<usize>> = Vec::new();
    for m in 0..merchants {
        let (merchant, order) = server::merchant_with_order(server, db).await?;
        orders.push(order);
        let mut paths = Vec::new();
        for e in 0..MAX_ENDPOINTS_PER_MERCHANT.min(count - m * MAX_ENDPOINTS_PER_MERCHANT) {
            let path = first_path + m * MAX_ENDPOINTS_PER_MERCHANT + e;
            let body = server
                .graphql(
                    &admin,
                    "mutation($m: ID!, $url: String!) { createWebhookEndpoint(merchantId: $m, url: $url, kinds: [TRANSITION]) { secret } }",
                    json!({ "m": merchant.to_string(), "url": format!("http://{receiver}/hook/{path}") }),
                )
                .await?;
            anyhow::ensure!(body["errors"].is_null(), "createWebhookEndpoint: {body}");
            paths.push(path);
        }
        paths_of.push(paths);
    }
    // The admin changes the orders in turn: change n is of order n % merchants.
    let mut sent = Vec::with_capacity(settings.events);
    let start = Instant::now();
    for n in 0..settings.events {
        tokio::time::sleep_until((start + settings.gap * n as u32).into()).await;
        let order = orders[n % merchants];
        // Each order alternates, starting from RESERVED.
        let state = if (n / merchants).is_multiple_of(2) {
            "CANCELLED"
        } else {
            "RESERVED"
        };
        sent.push(Instant::now());
        server::force(server, &admin, order, state, &format!("bench-{n}")).await?;
    }
    let expected: Vec<(usize, usize)> = (0..settings.events)
        .flat_map(|n| paths_of[n % merchants].iter().map(move |path| (*path, n)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let arrived = {
            let arrivals = arrivals.lock().unwrap_or_else(|e| e.into_inner());
            expected
                .iter()
                .filter(|key| arrivals.contains_key(key))
                .count()
        };
        if arrived == expected.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let arrivals = arrivals.lock().unwrap_or_else(|e| e.into_inner());
    let mut delays = Vec::with_capacity(expected.len());
    let mut lost = 0;
    for key in &expected {
        match arrivals.get(key) {
            Some(at) => delays.push(at.duration_since(sent[key.1]).as_secs_f64() * 1000.0),
            None => lost += 1,
        }
    }
    let (p50, p99) = percentiles(delays);
    Ok((p50, p99, lost))
}
