//! Three server processes on one PostgreSQL database drain one merchant's backlog: they
//! share the merchant's one Fortnox budget (25 calls per 5 s, kept in the database) with
//! no setting of how many they are, Fortnox (the sandbox, enforcing the real window) never
//! answers 429, and when one is killed the other two go on using the whole budget. SQLite
//! serves one process, so the test runs on PostgreSQL only. It prints the share of the
//! budget used in each phase (figures in docs/rate-limit.md); it asserts only what must
//! hold on any machine: no 429, and calls going on after the kill.
use std::time::{Duration, Instant};

use fortnox_fulfilment::auth::Role;
use serde_json::{json, Value};

use crate::harness::{ProcessHarness, ServerProcess};

/// Enough for the three processes to have work for the whole test (about 3 calls each).
const ORDERS: usize = 300;
/// How long each phase is measured, after its start-up window.
const PHASE: Duration = Duration::from_secs(20);
/// Fortnox's budget: this many calls in any window of `BUDGET_WINDOW_MS`.
const BUDGET_CALLS: usize = 25;
const BUDGET_WINDOW_MS: f64 = 5000.0;

/// The share of the budget that calls at `at_ms` (sorted) used: Fortnox lets call `i + 25`
/// come 5 s after call `i` at the earliest, so a full budget shows a mean gap of 5 s between
/// each call and the 25th after it. Counting calls between two fixed instants instead
/// depends on where they fall: a full budget is used in bursts of 25 (each slot is reused
/// one window after it was last used), and a 20-s count holds three or four of them.
/// `None` with too few calls for one gap.
fn budget_share(at_ms: &[u64]) -> Option<f64> {
    let gaps: Vec<u64> = at_ms
        .iter()
        .zip(at_ms.iter().skip(BUDGET_CALLS))
        .map(|(first, later)| later - first)
        .collect();
    if gaps.is_empty() {
        return None;
    }
    let mean_gap_ms = gaps.iter().sum::<u64>() as f64 / gaps.len() as f64;
    Some(BUDGET_WINDOW_MS / mean_gap_ms.max(1.0))
}

/// Confirms the shipment of every SENT order (what the warehouse staff do), through
/// `server`; returns how many it shipped.
async fn ship_sent(server: &ServerProcess, token: &str) -> usize {
    let body = server
        .graphql(
            token,
            "{ orders(states: [SENT], first: 100) { edges { node { id lines { id pickQuantity } } } } }",
            json!({}),
        )
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
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|l| json!({ "lineId": l["id"], "quantity": l["pickQuantity"] }))
            .collect();
        let result = server
            .graphql(
                token,
                "mutation($id: ID!, $l: [ShippedLineInput!]!) { confirmShipment(orderId: $id, trackingNumbers: [\"T\"], lines: $l) { state } }",
                json!({ "id": node["id"], "l": lines }),
            )
            .await;
        // INVOICED when the invoice job the report queued finished before the answer
        // re-read the order.
        if matches!(
            result["data"]["confirmShipment"]["state"].as_str(),
            Some("SHIPPED" | "INVOICED")
        ) {
            shipped += 1;
        }
    }
    shipped
}

/// Ships SENT orders through `server` for `how_long`.
async fn warehouse_for(server: &ServerProcess, token: &str, how_long: Duration) {
    let until = Instant::now() + how_long;
    while Instant::now() < until {
        ship_sent(server, token).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_one_merchants_budget_and_two_keep_it_after_a_kill() {
    let _gate = crate::common::timing_gate().await;
    let h = ProcessHarness::new().await;
    if !h.db.is_postgres() {
        eprintln!("skipped: several processes need PostgreSQL");
        h.stop().await;
        return;
    }
    h.create_done_orders(ORDERS);
    let warehouse = crate::common::token(Role::Warehouse, vec![]);
    let env = [("IMPORT_INTERVAL_SECS", "2")];
    let mut processes = Vec::new();
    for _ in 0..3 {
        processes.push(h.start_server(&env).await);
    }
    let sb = h.sb();

    // Phase 1: three processes; the first window after the start is left out.
    warehouse_for(&processes[0], &warehouse, Duration::from_secs(6)).await;
    let three_from = sb.now_ms();
    warehouse_for(&processes[0], &warehouse, PHASE).await;
    let three_to = sb.now_ms();

    // Phase 2: one is killed; the other two are given 10 s to take up its share.
    let mut killed = processes.remove(2);
    killed.sigkill();
    let killed_at = sb.now_ms();
    warehouse_for(&processes[0], &warehouse, Duration::from_secs(10)).await;
    let two_from = sb.now_ms();
    warehouse_for(&processes[1], &warehouse, PHASE).await;
    let two_to = sb.now_ms();

    let calls = h.api_calls();
    let in_phase = |from: u64, to: u64| -> Vec<u64> {
        let mut at = calls
            .iter()
            .filter(|c| c.at_ms >= from && c.at_ms < to)
            .map(|c| c.at_ms)
            .collect::<Vec<u64>>();
        at.sort_unstable();
        at
    };
    let three = in_phase(three_from, three_to);
    let two = in_phase(two_from, two_to);
    let after_kill = in_phase(killed_at, killed_at + 10_000);
    let too_many: Vec<u64> = calls
        .iter()
        .filter(|c| c.status == 429)
        .map(|c| c.at_ms)
        .collect();
    let shown = |share: Option<f64>| share.map_or("-".to_string(), |s| format!("{s:.2}"));
    eprintln!(
        "share of the merchant's budget used: three processes {} ({} calls in {} ms), \
         two after a kill {} ({} calls in {} ms), in the 10 s right after the kill {} \
         ({} calls); {} calls in all, {} answered 429",
        shown(budget_share(&three)),
        three.len(),
        three_to - three_from,
        shown(budget_share(&two)),
        two.len(),
        two_to - two_from,
        shown(budget_share(&after_kill)),
        after_kill.len(),
        calls.len(),
        too_many.len()
    );
    let log = h.log_tail(40);
    drop(processes);
    h.stop().await;

    assert!(
        too_many.is_empty(),
        "Fortnox answered 429 at ms {too_many:?}: the processes went over the shared budget;\nlog:\n{log}"
    );
    assert!(
        !three.is_empty(),
        "the three processes called Fortnox;\nlog:\n{log}"
    );
    assert!(
        !two.is_empty(),
        "the two processes left went on calling after the kill;\nlog:\n{log}"
    );
}
