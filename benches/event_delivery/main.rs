//! How fast order events reach the systems that follow them, and what following costs the
//! server: `cargo bench --bench event_delivery`.
//!
//! The server is the real binary in a process of its own (so that its memory is its own);
//! this process plays the admin who changes an order and the subscribers who follow it.
//! An admin forces one order back and forth between RESERVED and CANCELLED, one change
//! every `BENCH_EVENT_GAP_MS`; each change is one event. For every event and every
//! subscriber, the delay is measured from the moment the admin's request was sent (an
//! upper bound of the delay from commit) to the moment the subscriber has the event.
//!
//! Scenarios, each beside a reference measured in the same run:
//! - `subscribers`: one subscriber (the reference), then `BENCH_SUBSCRIBERS` subscribers,
//!   each on a WebSocket of its own with a token of its own; delay p50/p99, events lost,
//!   and the server's resident memory per open subscription.
//! - `webhooks`: one endpoint (the reference), then `BENCH_ENDPOINTS` endpoints (20 per
//!   merchant, the most a merchant may have), receivers in this process; delay p50/p99
//!   from the change to the receiver, and deliveries lost.
//!
//! Runs on SQLite (a temp file), and also on PostgreSQL when `BENCH_DATABASE_URL` points at
//! a server where the user may create databases. Knobs (environment):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BENCH_DATABASE_URL` | unset | also run on PostgreSQL (`postgres://postgres@127.0.0.1:5432/postgres`) |
//! | `BENCH_SKIP_SQLITE` | unset | `1`: PostgreSQL only |
//! | `BENCH_ONLY` | `subscribers,webhooks` | scenarios to run |
//! | `BENCH_SUBSCRIBERS` | `1000` | subscribers of the large run |
//! | `BENCH_ENDPOINTS` | `100` | webhook endpoints of the large run |
//! | `BENCH_EVENTS` | `100` | events per run |
//! | `BENCH_EVENT_GAP_MS` | `100` | time between two changes |
#[allow(dead_code)]
#[path = "../throughput/harness.rs"]
mod harness;
mod server;
mod subscribers;
mod webhooks;

use harness::Backend;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub subscribers: usize,
    pub endpoints: usize,
    pub events: usize,
    pub gap: std::time::Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings {
        subscribers: env_number("BENCH_SUBSCRIBERS", 1000) as usize,
        endpoints: env_number("BENCH_ENDPOINTS", 100) as usize,
        events: env_number("BENCH_EVENTS", 100) as usize,
        gap: std::time::Duration::from_millis(env_number("BENCH_EVENT_GAP_MS", 100)),
    };
    let mut backends = Vec::new();
    if std::env::var("BENCH_SKIP_SQLITE").as_deref() != Ok("1") {
        backends.push(Backend::Sqlite);
    }
    if let Some(admin_url) = std::env::var("BENCH_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        backends.push(Backend::Postgres { admin_url });
    }
    println!("event delivery: {settings:?}");
    let only = std::env::var("BENCH_ONLY").unwrap_or_else(|_| "subscribers,webhooks".into());
    for backend in &backends {
        if only.contains("subscribers") {
            subscribers::run(backend, &settings).await?;
        }
        if only.contains("webhooks") {
            webhooks::run(backend, &settings).await?;
        }
    }
    Ok(())
}

/// p50 and p99 of delays in milliseconds.
pub fn percentiles(mut delays: Vec<f64>) -> (f64, f64) {
    if delays.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    delays.sort_by(f64::total_cmp);
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99))
}
