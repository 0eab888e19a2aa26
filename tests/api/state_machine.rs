//! The transition function against a real database (no workers running, so the jobs it
//! queues stay in the queue where we can see them).
use crate::common;

use crate::common::{create_merchant, insert_order, order_state, TestDb};
use fortnox_fulfilment::domain::state_machine::TRANSITIONS;
use fortnox_fulfilment::domain::{JobKind, OrderState};
use fortnox_fulfilment::store::jobs_table::has_live_job;
use fortnox_fulfilment::store::orders::TenantScope;
use fortnox_fulfilment::store::transitions::{
    apply_transition, TransitionError, TransitionRequest,
};
use fortnox_fulfilment::store::Store;

async fn store(db: &TestDb) -> Store {
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    store
}

/// Puts a fresh order into `state` by an admin's forced change.
async fn order_in(store: &Store, merchant: i64, document: &str, state: OrderState) -> i64 {
    let id = insert_order(store, merchant, document).await;
    // Start without the first job the import queued: the tests look at what each
    // transition queues.
    common::delete_order_tasks(store, id).await;
    if state != OrderState::Imported {
        let mut force =
            TransitionRequest::new(id, None, state, "admin_forced", "admin:test").message("setup");
        force.forced = true;
        apply_transition(store, force)
            .await
            .expect("forced setup transition");
    }
    id
}

#[tokio::test]
async fn every_allowed_transition_succeeds_with_an_event_and_its_job() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let merchant = create_merchant(&store, "M").await;
    for (n, (from, to, _)) in TRANSITIONS.iter().enumerate() {
        let id = order_in(&store, merchant, &format!("A{n}"), *from).await;
        let event = apply_transition(
            &store,
            TransitionRequest::new(id, Some(*from), *to, "test", "system:test"),
        )
        .await
        .unwrap_or_else(|e| panic!("{from} -> {to} must succeed: {e}"));
        assert_eq!(event.from, *from);
        assert_eq!(order_state(&store, id).await, *to);
        let events = store.order_events(id).await.expect("events");
        let last = events.last().expect("an event");
        assert_eq!((last.from_state, last.to_state), (Some(*from), Some(*to)));
        assert_eq!(
            (last.cause.as_str(), last.actor.as_str(), last.forced),
            ("test", "system:test", false)
        );
        // The job the new state needs was committed with it.
        if JobKind::queued_in(*to).is_some() {
            assert!(
                has_live_job(&store.pool, id).await.expect("jobs"),
                "{from} -> {to} queues its job"
            );
        }
        if *from == OrderState::Imported && JobKind::queued_in(*to).is_none() {
            assert!(
                !has_live_job(&store.pool, id).await.expect("jobs"),
                "{to} needs no job"
            );
        }
    }
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn every_forbidden_transition_is_refused_and_changes_nothing() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let merchant = create_merchant(&store, "M").await;
    let mut refused = 0;
    for from in OrderState::ALL {
        let id = order_in(&store, merchant, &format!("F-{from}"), from).await;
        let events_before = store.order_events(id).await.expect("events").len();
        for to in OrderState::ALL {
            if TRANSITIONS.iter().any(|(f, t, _)| *f == from && *t == to) {
                continue;
            }
            match apply_transition(
                &store,
                TransitionRequest::new(id, Some(from), to, "test", "system:test"),
            )
            .await
            {
                Err(TransitionError::Refused(reason)) => {
                    assert!(
                        reason.to_string().contains(from.as_str()),
                        "the reason names the state: {reason}"
                    );
                    refused += 1;
                }
                other => panic!("{from} -> {to} must be refused, got {other:?}"),
            }
            assert_eq!(order_state(&store, id).await, from);
        }
        assert_eq!(
            store.order_events(id).await.expect("events").len(),
            events_before,
            "no event for a refused change"
        );
    }
    assert_eq!(refused, 7 * 7 - TRANSITIONS.len());
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn of_two_concurrent_transitions_exactly_one_wins() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let merchant = create_merchant(&store, "M").await;
    for round in 0..15 {
        let id = insert_order(&store, merchant, &format!("C{round}")).await;
        let (a, b) = tokio::join!(
            apply_transition(
                &store,
                TransitionRequest::new(
                    id,
                    Some(OrderState::Imported),
                    OrderState::Validated,
                    "a",
                    "system:a"
                )
            ),
            apply_transition(
                &store,
                TransitionRequest::new(
                    id,
                    Some(OrderState::Imported),
                    OrderState::Reserved,
                    "b",
                    "system:b"
                )
            ),
        );
        let outcomes = [a, b];
        let winners = outcomes.iter().filter(|r| r.is_ok()).count();
        let conflicts = outcomes
            .iter()
            .filter(|r| matches!(r, Err(TransitionError::Conflict { .. })))
            .count();
        assert_eq!((winners, conflicts), (1, 1), "round {round}: {outcomes:?}");
        let transitions = store
            .order_events(id)
            .await
            .expect("events")
            .into_iter()
            .filter(|e| e.from_state.is_some())
            .count();
        assert_eq!(transitions, 1, "only the winner left an event");
    }
    store.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_forced_change_is_recorded_as_forced() {
    let db = TestDb::new().await;
    let store = store(&db).await;
    let merchant = create_merchant(&store, "M").await;
    let id = order_in(&store, merchant, "X", OrderState::Invoiced).await;
    let mut request = TransitionRequest::new(
        id,
        Some(OrderState::Invoiced),
        OrderState::Shipped,
        "admin_forced",
        "admin:root",
    )
    .message("re-invoice");
    request.forced = true;
    apply_transition(&store, request)
        .await
        .expect("forced out of a final state");
    let last = store
        .order_events(id)
        .await
        .expect("events")
        .pop()
        .expect("event");
    assert!(last.forced);
    assert_eq!(last.message.as_deref(), Some("re-invoice"));
    assert!(
        has_live_job(&store.pool, id).await.expect("jobs"),
        "SHIPPED queues the invoice job"
    );
    assert!(store
        .order(&TenantScope::Merchants(vec![merchant + 1]), id)
        .await
        .expect("read")
        .is_none());
    store.close().await;
    db.cleanup().await;
}

/// Orders per state as counted and as kept by the triggers for `/metrics`.
async fn counts(store: &Store) -> (Vec<(String, i64)>, Vec<(String, i64)>) {
    use fortnox_fulfilment::store::{order_counts, Pool};
    const COUNTED: &str = "SELECT state, COUNT(*) FROM orders GROUP BY state ORDER BY state";
    let counted = match &store.pool {
        Pool::Sqlite(pool) => sqlx::query_as(COUNTED).fetch_all(pool).await,
        Pool::Postgres(pool) => sqlx::query_as(COUNTED).fetch_all(pool).await,
    }
    .expect("count the orders");
    let mut kept = order_counts::per_state(&store.pool)
        .await
        .expect("read the kept counts");
    kept.retain(|(_, n)| *n != 0);
    kept.sort();
    (kept, counted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_state_counts_follow_every_change_even_concurrent_opposite_ones() {
    use OrderState::*;
    let db = TestDb::new().await;
    let store = store(&db).await;
    let merchant = create_merchant(&store, "M").await;
    const STATES: [OrderState; 7] = [
        Imported, Validated, Reserved, Sent, Shipped, Invoiced, Cancelled,
    ];
    let mut ids = Vec::new();
    for n in 0..42 {
        ids.push(order_in(&store, merchant, &format!("C{n}"), STATES[n % 7]).await);
    }
    // Every order forced to another state and back, all at once: forward and backward
    // changes of orders in the same stripe run side by side (a deadlock would show as a
    // store error).
    let mut changes = Vec::new();
    for (n, id) in ids.iter().copied().enumerate() {
        let store = store.clone();
        changes.push(tokio::spawn(async move {
            for to in [STATES[(n * 3 + 1) % 7], STATES[n % 7]] {
                let mut force = TransitionRequest::new(id, None, to, "admin_forced", "admin:test");
                force.forced = true;
                match apply_transition(&store, force).await {
                    Ok(_) | Err(TransitionError::Refused(_) | TransitionError::Conflict { .. }) => {
                    }
                    Err(error) => panic!("order {id} to {to}: {error}"),
                }
            }
        }));
    }
    for change in changes {
        change.await.expect("a change");
    }
    let (kept, counted) = counts(&store).await;
    assert_eq!(kept, counted, "the kept counts are the orders' states");
    assert_eq!(counted.iter().map(|(_, n)| n).sum::<i64>(), 42);
    if let fortnox_fulfilment::store::Pool::Postgres(pool) = &store.pool {
        // Folding the deltas into the kept rows, while more changes run, changes no count.
        let folds = {
            let pool = pool.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    fortnox_fulfilment::store::order_counts::fold(&pool)
                        .await
                        .expect("fold");
                }
            })
        };
        for (n, id) in ids.iter().copied().enumerate() {
            let mut force =
                TransitionRequest::new(id, None, STATES[(n + 2) % 7], "admin_forced", "admin:test");
            force.forced = true;
            apply_transition(&store, force).await.expect("a change");
        }
        folds.await.expect("folds");
        fortnox_fulfilment::store::order_counts::fold(pool)
            .await
            .expect("fold");
        let (kept, counted) = counts(&store).await;
        assert_eq!(kept, counted, "folded counts are the orders' states");
        let deltas: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM order_state_deltas")
            .fetch_one(pool)
            .await
            .expect("deltas");
        assert_eq!(deltas, 0, "a fold after the last change leaves no delta");
    }
    store.close().await;
    db.cleanup().await;
}
