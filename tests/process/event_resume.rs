//! A partner following the event log loses nothing when the server process it is
//! connected to is killed (SIGKILL) mid-stream: it subscribes again, on another process
//! (PostgreSQL) or on the restarted one (SQLite), with the cursor of the last event it
//! handled, and gets every event exactly once, in cursor order, as the log holds them.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fortnox_fulfilment::auth::Role;
use serde_json::{json, Value};

use crate::common::{self, Subscriber};
use crate::harness::{ProcessHarness, ServerProcess};

/// Changes made while the subscriber follows.
const CHANGES: usize = 300;

const FOLLOW: &str = "subscription($m: ID, $after: String) { \
    orderEvents(merchantId: $m, after: $after, kinds: [TRANSITION]) { cursor message } }";
const FORCE: &str = "mutation($id: ID!, $state: OrderState!, $reason: String!) { \
    forceOrderState(orderId: $id, state: $state, reason: $reason) { state } }";
const PAGE: &str = "query($m: ID, $after: String) { orderEvents(merchantId: $m, after: $after, \
    kinds: [TRANSITION], first: 200) { edges { node { cursor message } } pageInfo { hasNextPage endCursor } } }";

/// An admin changing the order `CHANGES` times through whichever server answers; a
/// change that finds no server (one was just killed) is tried again.
async fn change_the_order(addrs: Vec<std::net::SocketAddr>, order: i64, done: Arc<AtomicBool>) {
    let http = reqwest::Client::new();
    let admin = common::admin_token();
    for n in 0..CHANGES {
        let state = if n % 2 == 0 { "CANCELLED" } else { "RESERVED" };
        'retry: loop {
            for addr in &addrs {
                let sent = http
                    .post(format!("http://{addr}/graphql"))
                    .bearer_auth(&admin)
                    .timeout(Duration::from_secs(5))
                    .json(&json!({ "query": FORCE, "variables": { "id": order.to_string(), "state": state, "reason": format!("change-{n}") } }))
                    .send()
                    .await;
                if let Ok(response) = sent {
                    let body: Value = response.json().await.unwrap_or_default();
                    // "Already in that state": the change was made by a request whose
                    // answer was lost when its process was killed.
                    let already = body["errors"][0]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("already"));
                    if body["errors"].is_null() || already {
                        break 'retry;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    done.store(true, Ordering::SeqCst);
}

/// Reads change events until `stop_after` of them or 5 s of silence; returns (cursor,
/// message)s.
async fn follow(subscriber: &mut Subscriber, stop_after: usize) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    while seen.len() < stop_after {
        let Some(msg) = subscriber.next_json_within(Duration::from_secs(5)).await else {
            break;
        };
        let event = &msg["payload"]["data"]["orderEvents"];
        if let (Some(cursor), Some(message)) = (event["cursor"].as_str(), event["message"].as_str())
        {
            seen.push((cursor.to_owned(), message.to_owned()));
        }
    }
    seen
}

/// Everything the log holds after `after`, as the query pages it.
async fn the_log(
    server: &ServerProcess,
    merchant: i64,
    mut after: String,
) -> Vec<(String, String)> {
    let admin = common::admin_token();
    let mut log = Vec::new();
    loop {
        let body = server
            .graphql(
                &admin,
                PAGE,
                json!({ "m": merchant.to_string(), "after": after }),
            )
            .await;
        let page = &body["data"]["orderEvents"];
        for edge in page["edges"].as_array().cloned().unwrap_or_default() {
            let node = &edge["node"];
            log.push((
                node["cursor"].as_str().unwrap_or("").to_owned(),
                node["message"].as_str().unwrap_or("").to_owned(),
            ));
        }
        if page["pageInfo"]["hasNextPage"] != true {
            return log;
        }
        after = page["pageInfo"]["endCursor"]
            .as_str()
            .unwrap_or("")
            .to_owned();
    }
}

#[tokio::test]
async fn a_subscriber_resumes_with_its_cursor_after_its_process_is_killed() {
    let h = ProcessHarness::new().await;
    let postgres = h.db.is_postgres();
    let mut first = h.start_server(&[]).await;
    let mut second = if postgres {
        Some(h.start_server(&[]).await)
    } else {
        None
    };
    let merchant = h.merchant;
    let order = common::insert_order(&h.store, merchant, "P-1").await;
    let admin = common::admin_token();
    // A first change gives the cursor the subscriber starts from; the checks the import
    // queued may still move the order, which the log shows like any change. They may
    // reserve it first ("already RESERVED": a change to start from all the same) or move
    // it between the forced change's read and write (CONFLICT: asked again).
    let mut attempts = 0;
    loop {
        let body = first
            .graphql(
                &admin,
                FORCE,
                json!({ "id": order.to_string(), "state": "RESERVED", "reason": "start" }),
            )
            .await;
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        if body["errors"].is_null() || message == "the order is already RESERVED" {
            break;
        }
        attempts += 1;
        assert!(
            body["errors"][0]["extensions"]["code"] == "CONFLICT" && attempts < 5,
            "{body}"
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = the_log(&first, merchant, "0".repeat(32)).await;
    let start = start
        .last()
        .expect("the first change is in the log")
        .0
        .clone();

    let partner = common::token(Role::Partner, vec![merchant]);
    let mut subscriber = Subscriber::connect_at(first.addr, &partner)
        .await
        .expect("subscribe");
    subscriber
        .subscribe(FOLLOW, json!({ "m": merchant.to_string(), "after": start }))
        .await;
    let done = Arc::new(AtomicBool::new(false));
    let mut addrs = vec![first.addr];
    addrs.extend(second.as_ref().map(|s| s.addr));
    let changes = tokio::spawn(change_the_order(addrs, order, done.clone()));

    let mut seen = follow(&mut subscriber, 100).await;
    assert_eq!(seen.len(), 100, "events arrive before the kill");
    first.sigkill();
    drop(subscriber);
    let resume_at = match second.as_mut() {
        Some(second) => second.addr,
        None => {
            first = h.start_server(&[]).await;
            first.addr
        }
    };
    let last = seen.last().expect("events").0.clone();
    let mut subscriber = Subscriber::connect_at(resume_at, &partner)
        .await
        .expect("subscribe again");
    subscriber
        .subscribe(FOLLOW, json!({ "m": merchant.to_string(), "after": last }))
        .await;
    // On SQLite the changer had no server while it was down; it goes on with the new one.
    let changer = if postgres {
        changes
    } else {
        changes.abort();
        tokio::spawn(change_the_order(vec![first.addr], order, done.clone()))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the changes did not finish within 3 minutes"
        );
        let more = follow(&mut subscriber, usize::MAX).await;
        let quiet = more.is_empty();
        seen.extend(more);
        if quiet && done.load(Ordering::SeqCst) {
            break;
        }
        assert!(
            !quiet || !changer.is_finished() || done.load(Ordering::SeqCst),
            "the changes stopped"
        );
    }
    let server = second.as_ref().unwrap_or(&first);
    let log = the_log(server, merchant, start).await;
    assert!(
        log.len() >= 100 + CHANGES / 2,
        "the log holds the changes: {}",
        log.len()
    );
    assert_eq!(seen.len(), log.len(), "every event once, none twice");
    assert!(seen == log, "in the log's order, the same events");
    if let Some(mut second) = second {
        second.sigkill();
    }
    first.sigkill();
    h.stop().await;
}
