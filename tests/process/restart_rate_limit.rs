//! The real binary restarted 10 times (SIGKILL and SIGTERM in turn) while a backlog of
//! Fortnox orders drains: Fortnox (the sandbox, with its real 25-per-5-s window) never
//! answers 429. On SQLite a new process waits one window before its first call while
//! Fortnox still counts the previous process's calls; on PostgreSQL the log of calls is
//! in the database and outlives the process. See docs/rate-limit.md.
use crate::common;

use std::time::{Duration, Instant};

use crate::harness::ProcessHarness;
use serde_json::json;

/// Importing reads every order with a GET, so at 25 calls per 5.4 s this takes about
/// 130 s of calling: more than the processes below get (about 100 s; on PostgreSQL a new
/// process needs no start-up window, since the shared log knows what its predecessor
/// sent, so they get nearly all of it).
const ORDERS: usize = 600;

#[derive(Clone, Copy)]
enum Stop {
    Kill,
    /// SIGTERM, then SIGKILL if it has not stopped within this long.
    Term(Duration),
}

/// A graceful stop waits for the running import, up to the server's own 30 s.
const GRACEFUL: Duration = Duration::from_secs(40);
/// A supervisor's short grace period: what it does after SIGTERM is to keep calling
/// Fortnox (the running import) until it is killed.
const GRACE: Duration = Duration::from_secs(2);

/// How long each process runs, then how it is stopped; the next starts at once. 3 s: it
/// is stopped before its first call (it waits one window); 6.5 s: about a second into
/// calling, with a window's worth of calls just made.
const PLAN: [(Duration, Stop); 10] = [
    (Duration::from_millis(6500), Stop::Kill),
    (Duration::from_millis(6500), Stop::Term(GRACEFUL)),
    (Duration::from_millis(3000), Stop::Kill),
    (Duration::from_millis(6500), Stop::Term(GRACE)),
    (Duration::from_millis(6500), Stop::Kill),
    (Duration::from_millis(3000), Stop::Term(GRACE)),
    (Duration::from_millis(6500), Stop::Kill),
    (Duration::from_millis(3000), Stop::Term(GRACE)),
    (Duration::from_millis(6500), Stop::Kill),
    (Duration::from_millis(6500), Stop::Term(GRACE)),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_restarts_while_a_backlog_drains_earn_no_429() {
    // One at a time: each drives real processes against Fortnox's real rate limit, and
    // together they starve the two cores (the demo saw no invoice in 150 s).
    let _gate = crate::common::timing_gate().await;
    // The sandbox starts first thing in `new`: its call log's times count from about here.
    let t0 = Instant::now();
    let h = ProcessHarness::new().await;
    h.create_done_orders(ORDERS);
    // Imports queued every 2 s, so that each new process starts one at once.
    let env = [("IMPORT_INTERVAL_SECS", "2")];
    let mut server = h.start_server(&env).await;
    let mut restarts = Vec::new();
    for (i, (lifetime, stop)) in PLAN.iter().enumerate() {
        tokio::time::sleep(*lifetime).await;
        let stopping = Instant::now();
        let how = match *stop {
            Stop::Kill => {
                server.sigkill();
                "SIGKILL".to_owned()
            }
            Stop::Term(grace) => match server.sigterm_and_wait(grace).await {
                Some(status) => {
                    assert!(
                        status.success(),
                        "a graceful stop exits 0 ({status}); log:\n{}",
                        h.log_tail(40)
                    );
                    format!("SIGTERM, stopped in {} ms", stopping.elapsed().as_millis())
                }
                None => {
                    server.sigkill();
                    format!("SIGTERM, SIGKILL after {grace:?}")
                }
            },
        };
        server = h.start_server(&env).await;
        restarts.push(format!(
            "restart {} at {} ms: {how}; imported so far: {}",
            i + 1,
            t0.elapsed().as_millis(),
            h.stored_orders().await
        ));
    }
    // The last process's first window and its first calls.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let body = server
        .graphql(
            &h.merchant_token(),
            "{ orders(first: 1) { edges { node { id state } } } }",
            json!({}),
        )
        .await;
    assert!(body["errors"].is_null(), "the last process answers: {body}");

    let calls = h.api_calls();
    let too_many: Vec<u64> = calls
        .iter()
        .filter(|c| c.status == 429)
        .map(|c| c.at_ms)
        .collect();
    let imported = h.stored_orders().await;
    let elapsed = t0.elapsed();
    // The harness's freeze and thaw, checked here where a process is at hand.
    server.sigstop();
    let frozen = common::eventually(Duration::from_secs(5), || {
        let stopped = server.is_stopped();
        async move { stopped }
    })
    .await;
    server.sigcont();
    let thawed = common::eventually(Duration::from_secs(5), || {
        let stopped = server.is_stopped();
        async move { !stopped }
    })
    .await;
    server.sigkill();
    eprintln!(
        "{} API calls, {} answered 429 (at ms {too_many:?}); {imported} of {ORDERS} orders imported in {elapsed:?}\n{}",
        calls.len(),
        too_many.len(),
        restarts.join("\n")
    );
    let log = h.log_tail(40);
    h.stop().await;

    assert!(
        too_many.is_empty(),
        "{} of {} calls were answered 429 (at ms {too_many:?} since the sandbox started);\n{}\nlog:\n{log}",
        too_many.len(),
        calls.len(),
        restarts.join("\n")
    );
    assert!(frozen && thawed, "SIGSTOP is seen in /proc, SIGCONT too");
    assert!(
        imported > 0,
        "the restarted processes imported orders;\n{}\nlog:\n{log}",
        restarts.join("\n")
    );
    assert!(
        imported < ORDERS,
        "the backlog lasted through every restart ({imported} of {ORDERS} imported): make it bigger"
    );
}
