//! One subscriber, then many, following one merchant's events over GraphQL subscriptions.
use std::time::{Duration, Instant};

use anyhow::Context;
use fortnox_fulfilment::auth::Role;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Backend, BenchDb};
use crate::server::{self, ServerProcess};
use crate::{percentiles, Settings};

const FOLLOW: &str =
    "subscription($m: ID) { orderEvents(merchantId: $m, kinds: [TRANSITION]) { message } }";

/// Subscribers opened at a time.
const CONNECTING_AT_ONCE: usize = 50;

pub async fn run(backend: &Backend, settings: &Settings) -> anyhow::Result<()> {
    let db = BenchDb::create(backend, "events").await?;
    let server = ServerProcess::start(&db, &[]).await?;
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
    let (merchant, order) = server::merchant_with_order(server, db).await?;
    let reference = follow(server, merchant, order, 1, settings).await?;
    let many = follow(server, merchant, order, settings.subscribers, settings).await?;
    println!("\n{} · subscribers", backend.name());
    println!(
        "{:>12} {:>10} {:>10} {:>8} {:>16}",
        "subscribers", "p50 ms", "p99 ms", "lost", "KiB/subscription"
    );
    for run in [&reference, &many] {
        println!(
            "{:>12} {:>10.1} {:>10.1} {:>8} {:>16.1}",
            run.subscribers, run.p50_ms, run.p99_ms, run.lost, run.kib_per_subscription
        );
    }
    println!(
        "p99 with {} against one: {:.2}x; the target is p99 < 250 ms, 0 lost, < 40 KiB each",
        settings.subscribers,
        many.p99_ms / reference.p99_ms
    );
    Ok(())
}

struct Run {
    subscribers: usize,
    p50_ms: f64,
    p99_ms: f64,
    lost: usize,
    kib_per_subscription: f64,
}

/// Opens `count` subscriptions, changes the order `settings.events` times, and measures.
async fn follow(
    server: &ServerProcess,
    merchant: i64,
    order: i64,
    count: usize,
    settings: &Settings,
) -> anyhow::Result<Run> {
    let rss_before = server.rss_kib();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(count);
    let mut subscribers = Vec::with_capacity(count);
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(CONNECTING_AT_ONCE));
    for n in 0..count {
        let token = server::token(&format!("bench-partner-{n}"), Role::Partner, vec![merchant])?;
        let (addr, ready, gate) = (server.addr, ready_tx.clone(), gate.clone());
        let expected = settings.events;
        let quiet_after = settings.gap * settings.events as u32 + Duration::from_secs(20);
        subscribers.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.context("connect gate")?;
            let mut socket = subscribe(addr, &token, merchant).await?;
            drop(permit);
            let _ = ready.send(()).await;
            receive(&mut socket, expected, quiet_after).await
        }));
    }
    drop(ready_tx);
    for _ in 0..count {
        ready_rx
            .recv()
            .await
            .context("a subscriber failed to subscribe")?;
    }
    // Let the server set each subscription up (it reads the log once for each).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_open = server.rss_kib();
    let sent = server::change_on_a_clock(server, order, settings.events, settings.gap).await?;
    let mut delays = Vec::with_capacity(count * settings.events);
    let mut lost = 0;
    for subscriber in subscribers {
        let received = subscriber.await??;
        let mut seen = vec![false; settings.events];
        for (n, at) in received {
            if let Some(sent_at) = sent.get(n) {
                if !seen[n] {
                    seen[n] = true;
                    delays.push(at.duration_since(*sent_at).as_secs_f64() * 1000.0);
                }
            }
        }
        lost += seen.iter().filter(|s| !**s).count();
    }
    let (p50_ms, p99_ms) = percentiles(delays);
    Ok(Run {
        subscribers: count,
        p50_ms,
        p99_ms,
        lost,
        kib_per_subscription: rss_open.saturating_sub(rss_before) as f64 / count as f64,
    })
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(
    addr: std::net::SocketAddr,
    token: &str,
    merchant: i64,
) -> anyhow::Result<Socket> {
    let mut request = format!("ws://{addr}/graphql").into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    socket.send(Message::Text(init.to_string().into())).await?;
    let ack = next_json(&mut socket, Duration::from_secs(30)).await;
    anyhow::ensure!(
        ack.as_ref().is_some_and(|a| a["type"] == "connection_ack"),
        "not acknowledged: {ack:?}"
    );
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": FOLLOW, "variables": { "m": merchant.to_string() } } });
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await?;
    Ok(socket)
}

/// The bench events received (their number, and when), until all `expected` are in or
/// nothing has come for `quiet_after`.
async fn receive(
    socket: &mut Socket,
    expected: usize,
    quiet_after: Duration,
) -> anyhow::Result<Vec<(usize, Instant)>> {
    let mut received = Vec::with_capacity(expected);
    while received.len() < expected {
        let Some(msg) = next_json(socket, quiet_after).await else {
            break;
        };
        let message = msg["payload"]["data"]["orderEvents"]["message"]
            .as_str()
            .unwrap_or("");
        if let Some(n) = message.strip_prefix("bench-").and_then(|n| n.parse().ok()) {
            received.push((n, Instant::now()));
        }
    }
    Ok(received)
}

async fn next_json(socket: &mut Socket, wait: Duration) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(wait, socket.next())
            .await
            .ok()??
            .ok()?;
        match msg {
            Message::Text(text) => return serde_json::from_str(&text).ok(),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}
