//! Durable jobs: retries with backoff, the error event after the last attempt, retrying a
//! stalled order, and the reconciler.
use crate::common;

use std::time::Duration;

use crate::common::{
    admin_token, create_ready_merchant, eventually, insert_order, order_state, order_tasks, TestApp,
};
use fortnox_fulfilment::domain::{JobKind, OrderState};
use fortnox_fulfilment::store::jobs_table;
use fortnox_fulfilment::store::orders::TenantScope;
use serde_json::json;

#[tokio::test]
async fn the_next_job_never_waits_for_its_predecessors_lease() {
    // A lease far longer than the wait below, and jobs that are slow to give it back after
    // their step committed: the send job queued with VALIDATED starts while the validate
    // job still holds the order, so only a lease handed on in that commit lets it run.
    let app = TestApp::spawn_with(|config| {
        config.jobs.lease = Duration::from_secs(120);
    })
    .await;
    app.app.faults.delay_release(Duration::from_secs(3));
    let merchant = create_ready_merchant(app.store(), "M").await;
    let order = insert_order(app.store(), merchant, "1").await;
    let store = app.store().clone();
    assert!(
        eventually(Duration::from_secs(30), || async {
            order_state(&store, order).await == OrderState::Sent
        })
        .await,
        "the send job waited for the validate job's lease (120 s)"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_reconcilers_live_job_lookup_uses_an_index() {
    // A scan of apalis' table per order took 55 ms at 300,000 tasks on PostgreSQL.
    let app = TestApp::spawn().await;
    let plan = jobs_table::live_job_lookup_plan(&app.store().pool, 42)
        .await
        .expect("plan");
    assert!(plan.contains("ix_jobs_idempotency_key"), "{plan}");
    app.stop().await;
}

/// apalis' acknowledgement of finished tasks, as apalis-sqlite 1.0 writes it
/// (`queries/task/ack.sql`).
const SQLITE_ACK: &str = "WITH j AS (SELECT value ->> 'task_id' AS task_id, \
    value ->> 'attempt' AS attempt, value ->> 'result' AS result, value ->> 'status' AS status \
    FROM json_each(?1)) UPDATE Jobs SET status = j.status, attempts = j.attempt, \
    last_result = j.result, done_at = strftime('%s', 'now') FROM j \
    WHERE Jobs.id = j.task_id AND Jobs.lock_by = ?2";

#[tokio::test]
async fn finished_tasks_are_acknowledged_by_id_and_lock_by_is_indexed_once() {
    // On SQLite an index on lock_by made the acknowledgement walk every task the worker
    // ever ran; on PostgreSQL apalis had two identical ones.
    use fortnox_fulfilment::store::Pool;
    let app = TestApp::spawn().await;
    match &app.store().pool {
        Pool::Sqlite(pool) => {
            let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "EXPLAIN QUERY PLAN {SQLITE_ACK}"
            )))
            .bind("[]")
            .bind("worker")
            .fetch_all(pool)
            .await
            .expect("plan");
            let plan: Vec<String> = plan.into_iter().map(|row| row.3).collect();
            assert!(
                plan.iter()
                    .any(|step| step.contains("SEARCH Jobs") && step.contains("(id=?)"))
                    && !plan.iter().any(|step| step.contains("lock_by=?")),
                "each acknowledged task is looked up by id: {plan:?}"
            );
        }
        Pool::Postgres(pool) => {
            let indexes: Vec<String> = sqlx::query_scalar(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'apalis' \
                 AND tablename = 'jobs' AND indexdef LIKE '%(lock_by)'",
            )
            .fetch_all(pool)
            .await
            .expect("indexes");
            assert_eq!(indexes, ["idx_apalis_jobs_lock_by"]);
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn imported_orders_flow_through_their_jobs() {
    let app = TestApp::spawn().await;
    let merchant = create_ready_merchant(app.store(), "M").await;
    let good = insert_order(app.store(), merchant, "1").await;
    let bad = app
        .store()
        .insert_order(common::fixture_order(merchant, "2", "0"))
        .await
        .unwrap()
        .unwrap()
        .id;
    let store = app.store().clone();
    assert!(
        eventually(Duration::from_secs(20), || async {
            order_state(&store, good).await == OrderState::Sent
        })
        .await
    );
    assert!(
        eventually(Duration::from_secs(20), || async {
            order_state(&store, bad).await == OrderState::Reserved
        })
        .await
    );
    let reserved = app
        .store()
        .order(&TenantScope::All, bad)
        .await
        .unwrap()
        .unwrap();
    assert!(
        reserved
            .reasons
            .0
            .join("; ")
            .contains("quantities must be positive"),
        "{:?}",
        reserved.reasons
    );
    let sent = app
        .store()
        .order(&TenantScope::All, good)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sent.warehouse_reference.as_deref(),
        Some(format!("WH-{good:08}").as_str())
    );
    app.stop().await;
}

#[tokio::test]
async fn a_job_that_keeps_failing_backs_off_then_leaves_an_error_event_and_can_be_retried() {
    let app = TestApp::spawn_with(|config| {
        config.jobs.max_attempts = 3;
        config.jobs.retry_base = Duration::from_millis(1000);
    })
    .await;
    app.app.faults.fail_always(JobKind::ValidateOrder);
    let merchant = create_ready_merchant(app.store(), "M").await;
    let order = insert_order(app.store(), merchant, "1").await;

    let store = app.store().clone();
    let stalled = eventually(Duration::from_secs(30), || async {
        store
            .order(&TenantScope::All, order)
            .await
            .unwrap()
            .unwrap()
            .stalled_at
            .is_some()
    })
    .await;
    assert!(
        stalled,
        "the order is marked stalled after the last attempt"
    );

    // Three attempts, each a task of its own, each scheduled later than the one before.
    let mut tasks = order_tasks(app.store(), "validate_order", order).await;
    // run_at has whole seconds: the first two may share one, so order by attempt.
    tasks.sort_by_key(|(job, _)| job["attempt"].as_u64());
    let attempts: Vec<u64> = tasks
        .iter()
        .map(|(job, _)| job["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, vec![0, 1, 2]);
    let run_at: Vec<i64> = tasks.iter().map(|(_, at)| *at).collect();
    assert!(
        run_at[1] < run_at[2],
        "the second retry waits longer than the first: {run_at:?}"
    );

    let events = app.store().order_events(order).await.unwrap();
    let errors: Vec<_> = events
        .iter()
        .filter(|e| e.kind == entity::EventKind::Error)
        .collect();
    assert_eq!(errors.len(), 1, "one error event after the last attempt");
    let message = errors[0].message.as_deref().unwrap_or("");
    assert!(message.contains("gave up after 3 attempts"), "{message}");
    assert_eq!(
        order_state(app.store(), order).await,
        OrderState::Imported,
        "the order is still there, unchanged"
    );

    // The reconciler leaves a stalled order alone.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        order_tasks(app.store(), "validate_order", order)
            .await
            .len(),
        3
    );

    // Once the cause is gone, retryOrder takes it on.
    app.app.faults.clear();
    let body = app
        .graphql(
            &admin_token(),
            "mutation($id: ID!) { retryOrder(orderId: $id) { id stalled } }",
            json!({ "id": order.to_string() }),
        )
        .await;
    assert_eq!(body["data"]["retryOrder"]["stalled"], false, "{body}");
    assert!(
        eventually(Duration::from_secs(20), || async {
            order_state(&store, order).await == OrderState::Sent
        })
        .await
    );
    app.stop().await;
}

#[tokio::test]
async fn the_reconciler_requeues_an_order_whose_job_was_lost() {
    let app = TestApp::spawn().await;
    let merchant = create_ready_merchant(app.store(), "M").await;
    // Stored, then its job lost (as if apalis gave up on it).
    let order = insert_order(app.store(), merchant, "1").await;
    common::delete_order_tasks(app.store(), order).await;
    let store = app.store().clone();
    assert!(
        eventually(Duration::from_secs(30), || async {
            order_state(&store, order).await == OrderState::Sent
        })
        .await
    );
    app.stop().await;
}

#[tokio::test]
async fn retry_is_refused_for_states_without_a_job() {
    let app = TestApp::spawn().await;
    let merchant = create_ready_merchant(app.store(), "M").await;
    let order = app
        .store()
        .insert_order(common::fixture_order(merchant, "1", "0"))
        .await
        .unwrap()
        .unwrap()
        .id;
    let store = app.store().clone();
    assert!(
        eventually(Duration::from_secs(20), || async {
            order_state(&store, order).await == OrderState::Reserved
        })
        .await
    );
    let body = app
        .graphql(
            &admin_token(),
            "mutation($id: ID!) { retryOrder(orderId: $id) { id } }",
            json!({ "id": order.to_string() }),
        )
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("nothing to retry"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn finished_tasks_are_pruned_after_a_week_and_live_ones_never() {
    use fortnox_fulfilment::store::{jobs_table, Pool, Store};
    let db = common::TestDb::new().await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let merchant = create_ready_merchant(&store, "M").await;
    // Each stored with its first job.
    let old = insert_order(&store, merchant, "1").await;
    let live = insert_order(&store, merchant, "2").await;
    let eight_days_ago = chrono::Utc::now() - chrono::Duration::days(8);
    let key = format!("order:{old}:%");
    match &store.pool {
        Pool::Sqlite(pool) => {
            sqlx::query("UPDATE Jobs SET status = 'Done', done_at = ? WHERE idempotency_key LIKE ?")
                .bind(eight_days_ago.timestamp())
                .bind(&key)
                .execute(pool)
                .await
                .map(|_| ())
        }
        Pool::Postgres(pool) => sqlx::query(
            "UPDATE apalis.jobs SET status = 'Done', done_at = $1 WHERE idempotency_key LIKE $2",
        )
        .bind(eight_days_ago)
        .bind(&key)
        .execute(pool)
        .await
        .map(|_| ()),
    }
    .unwrap();
    let deleted = jobs_table::prune_finished(&store.pool, Duration::from_secs(7 * 24 * 3600))
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert!(order_tasks(&store, "validate_order", old).await.is_empty());
    assert_eq!(
        order_tasks(&store, "validate_order", live).await.len(),
        1,
        "a pending task is kept"
    );
    store.close().await;
    db.cleanup().await;
}
