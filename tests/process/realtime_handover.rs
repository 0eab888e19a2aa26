//! The one connection to Fortnox's WebSocket API, held by real server processes with
//! polling set to an hour, so that only events import:
//! - PostgreSQL: of two processes exactly one holds it; when that one is SIGKILLed the other
//!   takes it over within 10 s and imports what was marked done meanwhile, from the stored
//!   offsets.
//! - SQLite (one process): a SIGKILLed process's successor resumes from the stored offsets.
use std::time::{Duration, Instant};

use crate::common::eventually;
use crate::harness::{ProcessHarness, ServerProcess};

/// The sandbox's subscribed connections that carry the merchant's tenant.
fn holders(h: &ProcessHarness, tenant_id: i64) -> Vec<u64> {
    h.sb()
        .ws_connections()
        .into_iter()
        .filter(|c| c.subscribed && c.tenant_ids.contains(&tenant_id))
        .map(|c| c.id)
        .collect()
}

async fn holder_pid(h: &ProcessHarness) -> Option<u32> {
    let holder: Option<String> = match &h.store.pool {
        fortnox_fulfilment::store::Pool::Sqlite(pool) => {
            sqlx::query_scalar("SELECT holder FROM fortnox_ws_connection WHERE id = 1")
                .fetch_one(pool)
                .await
                .ok()?
        }
        fortnox_fulfilment::store::Pool::Postgres(pool) => {
            sqlx::query_scalar("SELECT holder FROM fortnox_ws_connection WHERE id = 1")
                .fetch_one(pool)
                .await
                .ok()?
        }
    };
    holder?.split('-').next()?.parse().ok()
}

/// Real-time import on, polling set to an hour: only events can import.
fn events_only<'a>(realtime: &'a [(&'static str, String); 2]) -> Vec<(&'static str, &'a str)> {
    let mut env: Vec<(&str, &str)> = realtime.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend([
        ("IMPORT_INTERVAL_SECS", "3600"),
        ("IMPORT_INTERVAL_REALTIME_SECS", "3600"),
    ]);
    env
}

fn list_calls(h: &ProcessHarness) -> usize {
    h.api_calls()
        .iter()
        .filter(|c| c.method == "GET" && c.path.trim_end_matches('/') == "/3/orders")
        .count()
}

async fn wait_stored(h: &ProcessHarness, count: usize, timeout: Duration) -> bool {
    eventually(timeout, || async { h.stored_orders().await >= count }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_has_one_holder_and_a_successor_within_seconds_of_its_death() {
    let test = tokio::time::timeout(Duration::from_secs(180), run()).await;
    assert!(test.is_ok(), "the hand-over test hung for 3 minutes");
}

async fn run() {
    let h = ProcessHarness::new().await;
    let postgres = h.store.is_postgres();
    let tenant_id = h
        .sb()
        .tenant_id(crate::harness::TENANT)
        .expect("the tenant's id");
    let realtime = h.realtime_env();
    let env = events_only(&realtime);
    let first = h.start_server(&env).await;
    let mut second: Option<ServerProcess> = if postgres {
        Some(h.start_server(&env).await)
    } else {
        None
    };
    assert!(
        eventually(Duration::from_secs(30), || async {
            holders(&h, tenant_id).len() == 1
        })
        .await,
        "no process took the connection: {:?}\n{}",
        h.sb().ws_connections(),
        h.log_tail(40)
    );
    h.create_done_orders(3);
    assert!(
        wait_stored(&h, 3, Duration::from_secs(20)).await,
        "orders were not imported from their events\n{}",
        h.log_tail(40)
    );
    // A standby never opens a second connection.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        h.sb().ws_counters().connections_open,
        1,
        "{:?}",
        h.sb().ws_connections()
    );
    let before = holders(&h, tenant_id);

    let pid = holder_pid(&h).await.expect("the holder is recorded");
    let (mut dead, survivor) = match second.take() {
        Some(second) if second.pid == pid => (second, Some(first)),
        Some(second) => (first, Some(second)),
        None => (first, None),
    };
    assert_eq!(dead.pid, pid, "the recorded holder is one of ours");
    let lists_before = list_calls(&h);
    dead.sigkill();
    let killed = Instant::now();
    // Marked done while nobody holds the connection: only the offsets can bring these.
    h.create_done_orders(5);
    let survivor = match survivor {
        Some(survivor) => survivor,
        None => h.start_server(&env).await,
    };
    let took_over = eventually(Duration::from_secs(30), || async {
        holders(&h, tenant_id).iter().any(|id| !before.contains(id))
    })
    .await;
    let handover = killed.elapsed();
    println!("connection handed over {handover:?} after the holder was killed");
    assert!(took_over, "nobody took over\n{}", h.log_tail(40));
    if postgres {
        assert!(
            handover < Duration::from_secs(10),
            "the hand-over took {handover:?}"
        );
        assert_eq!(holder_pid(&h).await, Some(survivor.pid));
    }
    assert!(
        wait_stored(&h, 8, Duration::from_secs(30)).await,
        "orders marked done during the hand-over were lost: {} of 8\n{}",
        h.stored_orders().await,
        h.log_tail(40)
    );
    assert_eq!(
        list_calls(&h),
        lists_before,
        "the stored offsets, not a poll, imported the orders marked done during the hand-over"
    );
    drop(survivor);
    h.stop().await;
}

/// A holder that freezes (SIGSTOP) keeps its socket and so its lock, but stops writing its
/// heartbeat: the standby ends its database session after 30 s of silence and takes over;
/// the frozen process, woken, finds its lock gone and closes its connection. PostgreSQL
/// only (SQLite has one process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_holder_is_replaced_and_steps_down_when_it_wakes() {
    let test = tokio::time::timeout(Duration::from_secs(240), frozen()).await;
    assert!(test.is_ok(), "the frozen-holder test hung for 4 minutes");
}

async fn frozen() {
    let h = ProcessHarness::new().await;
    if !h.store.is_postgres() {
        h.stop().await;
        return;
    }
    let tenant_id = h
        .sb()
        .tenant_id(crate::harness::TENANT)
        .expect("the tenant's id");
    let realtime = h.realtime_env();
    let env = events_only(&realtime);
    let first = h.start_server(&env).await;
    let second = h.start_server(&env).await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            holders(&h, tenant_id).len() == 1
        })
        .await,
        "no process took the connection\n{}",
        h.log_tail(40)
    );
    let before = holders(&h, tenant_id);
    let pid = holder_pid(&h).await.expect("the holder is recorded");
    let (frozen, other) = if first.pid == pid {
        (first, second)
    } else {
        (second, first)
    };
    frozen.sigstop();
    let stopped = Instant::now();
    h.create_done_orders(4);
    let took_over = eventually(Duration::from_secs(90), || async {
        holders(&h, tenant_id).iter().any(|id| !before.contains(id))
    })
    .await;
    println!("a frozen holder was replaced after {:?}", stopped.elapsed());
    assert!(
        took_over,
        "nobody replaced the frozen holder\n{}",
        h.log_tail(40)
    );
    assert_eq!(holder_pid(&h).await, Some(other.pid));
    assert!(
        wait_stored(&h, 4, Duration::from_secs(30)).await,
        "orders marked done while the holder was frozen were lost\n{}",
        h.log_tail(40)
    );
    frozen.sigcont();
    assert!(
        eventually(Duration::from_secs(30), || async {
            holders(&h, tenant_id).len() == 1
        })
        .await,
        "the woken process did not step down: {:?}",
        h.sb().ws_connections()
    );
    // The woken process found its lock gone: it neither holds the row nor unmarked the
    // successor's merchants (a late heartbeat or disconnect of its own must not).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(holder_pid(&h).await, Some(other.pid));
    assert_eq!(holders(&h, tenant_id).len(), 1);
    assert!(
        h.store
            .realtime_live_merchants()
            .await
            .expect("live merchants")
            .contains(&h.merchant),
        "the merchant is still live on the successor's connection"
    );
    assert_eq!(h.stored_orders().await, 4);
    drop(frozen);
    drop(other);
    h.stop().await;
}
