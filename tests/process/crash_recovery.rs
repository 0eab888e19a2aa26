//! The real binary, killed with SIGKILL while jobs are queued and running, then started
//! again: every job completes, and none ran its transition twice.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{create_ready_merchant, eventually, fixture_order, TestDb, JWT_SECRET};
use entity::EventKind;
use fortnox_fulfilment::domain::OrderState;
use fortnox_fulfilment::store::orders::{OrderFilter, TenantScope};
use fortnox_fulfilment::store::Store;

const ORDERS: usize = 300;

fn start_binary(db: &TestDb, log: &std::path::Path) -> Child {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    Command::new(env!("CARGO_BIN_EXE_fortnox-fulfilment"))
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("JWT_SECRET", JWT_SECRET)
        .env("JOB_HEARTBEAT_SECS", "1")
        .env("JOB_RETRY_BASE_MS", "200")
        .env("JOB_LEASE_SECS", "3")
        .env("RECONCILE_INTERVAL_SECS", "2")
        .env("RECONCILE_IDLE_SECS", "5")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the binary")
}

async fn count_in(store: &Store, state: OrderState) -> usize {
    let filter = OrderFilter {
        merchant_id: None,
        states: vec![state],
    };
    store
        .orders_page(&TenantScope::All, &filter, None, 10_000)
        .await
        .expect("count")
        .len()
}

#[tokio::test]
async fn sigkill_with_jobs_in_flight_then_restart_completes_every_job_once() {
    // One at a time: each drives real processes against Fortnox's real rate limit, and
    // together they starve the two cores (the demo saw no invoice in 150 s).
    let _gate = crate::common::timing_gate().await;
    let db = TestDb::new().await;
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let merchant = create_ready_merchant(&store, "M").await;
    // Each stored with its first job queued.
    for n in 0..ORDERS {
        store
            .insert_order(fixture_order(merchant, &n.to_string(), "1"))
            .await
            .unwrap()
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");

    let mut first = start_binary(&db, &log);
    let started = eventually(Duration::from_secs(60), || async {
        count_in(&store, OrderState::Sent).await > 0
    })
    .await;
    assert!(
        started,
        "the first process made progress; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    first.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix
    first.wait().expect("reap");
    let sent_at_kill = count_in(&store, OrderState::Sent).await;
    eprintln!("{sent_at_kill} of {ORDERS} orders were SENT when the first process was killed");
    assert!(
        sent_at_kill < ORDERS,
        "killed while work was left ({sent_at_kill} of {ORDERS} done)"
    );

    let mut second = start_binary(&db, &log);
    let all_done = eventually(Duration::from_secs(120), || async {
        count_in(&store, OrderState::Sent).await == ORDERS
    })
    .await;
    assert!(
        all_done,
        "every order reached SENT after the restart; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    for order in store
        .orders_page(&TenantScope::All, &OrderFilter::default(), None, 10_000)
        .await
        .unwrap()
    {
        let transitions: Vec<_> = store
            .order_events(order.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == EventKind::Transition)
            .filter_map(|e| e.to_state)
            .collect();
        assert_eq!(
            transitions,
            vec![
                OrderState::Imported,
                OrderState::Validated,
                OrderState::Sent
            ],
            "order {}",
            order.id
        );
    }

    // SIGTERM: a graceful stop.
    let pid = second.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("send SIGTERM");
    let stopped = eventually(Duration::from_secs(40), || {
        let exited = second.try_wait().ok().flatten().is_some();
        async move { exited }
    })
    .await;
    assert!(stopped, "the binary stops on SIGTERM");
    assert!(
        second.wait().expect("exit status").success(),
        "a graceful stop exits 0"
    );
    store.close().await;
    db.cleanup().await;
}
