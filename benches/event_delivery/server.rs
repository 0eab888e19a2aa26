//! The server binary in a process of its own, a merchant with one order, and the admin who
//! changes that order on a clock.
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use fortnox_fulfilment::auth::{Claims, JwtKeys, Role};
use fortnox_fulfilment::store::orders::{NewOrder, NewOrderLine};
use fortnox_fulfilment::store::Store;
use serde_json::{json, Value};

use crate::harness::{BenchDb, SECRET};

pub struct ServerProcess {
    child: Child,
    pub addr: std::net::SocketAddr,
    http: reqwest::Client,
}

impl ServerProcess {
    pub async fn start(db: &BenchDb, extra_env: &[(&str, &str)]) -> anyhow::Result<ServerProcess> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_fortnox-fulfilment"));
        command
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("BIND_ADDR", addr.to_string())
            .env("PUBLIC_URL", format!("http://{addr}"))
            .env("JWT_SECRET", SECRET)
            .env("IMPORT_INTERVAL_SECS", "3600")
            .env("TOKEN_ENCRYPTION_KEY", "00".repeat(32))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let child = command.spawn().context("start the server binary")?;
        let mut server = ServerProcess {
            child,
            addr,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            anyhow::ensure!(
                server.child.try_wait()?.is_none(),
                "the server exited while starting"
            );
            let ready = server
                .http
                .get(format!("http://{addr}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(server);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the server did not start in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    pub async fn graphql(
        &self,
        token: &str,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Value> {
        let body: Value = self
            .http
            .post(format!("http://{}/graphql", self.addr))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?
            .json()
            .await?;
        Ok(body)
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token for `sub`; each subscriber has its own, since one token may hold only a few
/// connections.
pub fn token(sub: &str, role: Role, merchants: Vec<i64>) -> anyhow::Result<String> {
    let claims = Claims {
        sub: sub.to_owned(),
        exp: chrono::Utc::now().timestamp() + 6 * 3600,
        role,
        merchants,
    };
    Ok(JwtKeys::new(&SECRET.into()).issue(&claims)?)
}

/// A merchant with one order the pipeline leaves alone (it is forced to RESERVED).
pub async fn merchant_with_order(
    server: &ServerProcess,
    db: &BenchDb,
) -> anyhow::Result<(i64, i64)> {
    let admin = token("bench-admin", Role::Admin, vec![])?;
    let body = server
        .graphql(
            &admin,
            "mutation { createMerchant(name: \"Bench\") { id } }",
            json!({}),
        )
        .await?;
    let merchant: i64 = body["data"]["createMerchant"]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .with_context(|| format!("createMerchant: {body}"))?;
    let store = Store::connect(&db.url).await?;
    let order = store
        .insert_order(NewOrder {
            merchant_id: merchant,
            fortnox_document_number: "1".into(),
            way_of_delivery: None,
            delivery_address: None,
            fortnox_snapshot: json!({ "DocumentNumber": "1" }),
            lines: vec![NewOrderLine {
                fortnox_row_id: Some(1),
                article_number: Some("ART-1".into()),
                description: "T-shirt".into(),
                ordered_quantity: "1".into(),
            }],
        })
        .await?
        .context("a new order")?
        .id;
    store.close().await;
    force(server, &admin, order, "RESERVED", "bench setup").await?;
    // Whatever the import queued finds the order RESERVED and leaves it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok((merchant, order))
}

const FORCE: &str = "mutation($id: ID!, $state: OrderState!, $reason: String!) { \
    forceOrderState(orderId: $id, state: $state, reason: $reason) { state } }";

pub async fn force(
    server: &ServerProcess,
    admin: &str,
    order: i64,
    state: &str,
    reason: &str,
) -> anyhow::Result<()> {
    let body = server
        .graphql(
            admin,
            FORCE,
            json!({ "id": order.to_string(), "state": state, "reason": reason }),
        )
        .await?;
    let refused_same = body["errors"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("already"));
    anyhow::ensure!(
        body["errors"].is_null() || refused_same,
        "forceOrderState: {body}"
    );
    Ok(())
}

/// Changes the order `count` times, one change every `gap`, with reasons `bench-<n>`;
/// returns when each request was sent.
pub async fn change_on_a_clock(
    server: &ServerProcess,
    order: i64,
    count: usize,
    gap: Duration,
) -> anyhow::Result<Vec<Instant>> {
    let admin = token("bench-admin", Role::Admin, vec![])?;
    let mut sent = Vec::with_capacity(count);
    let start = Instant::now();
    for n in 0..count {
        let due = start + gap * n as u32;
        tokio::time::sleep_until(due.into()).await;
        let state = if n % 2 == 0 { "CANCELLED" } else { "RESERVED" };
        sent.push(Instant::now());
        force(server, &admin, order, state, &format!("bench-{n}")).await?;
    }
    Ok(sent)
}
