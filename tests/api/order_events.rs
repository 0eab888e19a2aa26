//! The order event log as partners follow it: the `orderEvents` query page by page, and
//! the `orderEvents` subscription resumed from a cursor after a disconnect, a restart or
//! a reader that stopped reading; and cursors that never go backwards while writers race.
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use fortnox_fulfilment::auth::Role;
use fortnox_fulfilment::domain::OrderState;
use fortnox_fulfilment::store::event_log::{EventFilter, Position};
use fortnox_fulfilment::store::jobs_table::has_live_job;
use fortnox_fulfilment::store::write::{EventKind, NewEvent};
use fortnox_fulfilment::store::{Pool, Store};
use serde_json::{json, Value};

use crate::common::{
    self, admin_token, assert_code, create_merchant, insert_order, token, Subscriber, TestApp,
};

const FOLLOW: &str = "subscription($m: ID, $after: String, $kinds: [OrderEventKind!]) { \
    orderEvents(merchantId: $m, after: $after, kinds: $kinds) { cursor kind message orderId } }";

/// Writes `count` INFO events on the order, `per_tx` to a transaction, with messages
/// `{prefix}{n}`, as the jobs and services would (one `WriteTx` each).
pub(crate) async fn write_events(
    store: &Store,
    order_id: i64,
    merchant_id: i64,
    prefix: &str,
    count: usize,
    per_tx: usize,
) {
    let mut written = 0;
    while written < count {
        let mut tx = store.begin_tx().await.expect("begin");
        for _ in 0..per_tx.min(count - written) {
            let message = format!("{prefix}{written}");
            tx.insert_event(&NewEvent {
                order_id,
                merchant_id,
                kind: EventKind::Info,
                from_state: None,
                to_state: None,
                cause: "test",
                actor: "system:test",
                message: Some(&message),
                forced: false,
                at: Utc::now(),
                payload: None,
            })
            .await
            .expect("insert event");
            written += 1;
        }
        tx.commit().await.expect("commit");
    }
}

/// An order the pipeline is done with (this merchant has no Fortnox connection, so its
/// checks leave it RESERVED), so that from here on only the test writes its events.
pub(crate) async fn quiet_order(app: &TestApp, merchant: i64, document: &str) -> i64 {
    let order = insert_order(app.store(), merchant, document).await;
    let store = app.store().clone();
    let quiet = common::eventually(Duration::from_secs(20), || {
        let store = store.clone();
        async move {
            let state = common::order_state(&store, order).await;
            !matches!(state, OrderState::Imported | OrderState::Validated)
                && !has_live_job(&store.pool, order).await.unwrap_or(true)
        }
    })
    .await;
    assert!(quiet, "the pipeline leaves order {order} alone");
    order
}

/// The next `orderEvents` item on the subscription.
async fn next_event(subscriber: &mut Subscriber, waiting_for: &str) -> Value {
    let msg = subscriber
        .next_json_within(Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("no event on the subscription while waiting for {waiting_for}"));
    assert_eq!(msg["type"], "next", "{msg}");
    msg["payload"]["data"]["orderEvents"].clone()
}

/// Reads `count` events and checks they are `{prefix}0..count` in order with rising cursors;
/// returns the last cursor.
async fn expect_sequence(
    subscriber: &mut Subscriber,
    prefix: &str,
    from: usize,
    count: usize,
    mut last: String,
) -> String {
    for n in from..from + count {
        let event = next_event(subscriber, &format!("{prefix}{n}")).await;
        let cursor = event["cursor"].as_str().expect("a cursor").to_owned();
        assert!(cursor > last, "cursor {cursor} after {last}");
        assert_eq!(
            event["message"],
            format!("{prefix}{n}"),
            "event {n} of {prefix}"
        );
        last = cursor;
    }
    last
}

/// A second server process on the same PostgreSQL database; stopping the sender stops it.
async fn second_process(app: &TestApp) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let other = fortnox_fulfilment::server::App::build(&app.config, &common::JWT_SECRET.into())
        .await
        .expect("second app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(other.serve(listener, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

#[tokio::test]
async fn a_subscriber_that_reconnects_with_its_cursor_gets_every_event_once_in_order() {
    let app = TestApp::spawn().await;
    let merchant = create_merchant(app.store(), "M").await;
    let order = quiet_order(&app, merchant, "1").await;
    let partner = token(Role::Partner, vec![merchant]);
    let vars = |after: Option<&str>| json!({ "m": merchant.to_string(), "after": after, "kinds": ["INFO"] });

    let mut subscriber = Subscriber::connect(&app, &partner).await.expect("connect");
    subscriber.subscribe(FOLLOW, vars(None)).await;
    // Subscribed from now: the first event written after it arrives, and gives a cursor.
    tokio::time::sleep(Duration::from_millis(300)).await;
    write_events(app.store(), order, merchant, "first", 1, 1).await;
    let last = expect_sequence(&mut subscriber, "first", 0, 1, String::new()).await;
    drop(subscriber);

    // Written while nobody listens; on PostgreSQL the subscriber comes back on another
    // process, which never saw it connected.
    write_events(app.store(), order, merchant, "missed", 200, 1).await;
    let second = if app.db.is_postgres() {
        Some(second_process(&app).await)
    } else {
        None
    };
    let addr = second.as_ref().map_or(app.addr, |(addr, _)| *addr);
    let mut subscriber = Subscriber::connect_at(addr, &partner)
        .await
        .expect("reconnect");
    subscriber.subscribe(FOLLOW, vars(Some(&last))).await;
    let last = expect_sequence(&mut subscriber, "missed", 0, 200, last).await;
    // Then live, with nothing repeated at the seam.
    write_events(app.store(), order, merchant, "live", 5, 1).await;
    let last = expect_sequence(&mut subscriber, "live", 0, 5, last).await;
    drop(subscriber);

    // The process the subscriber was on goes away while events are written; the
    // subscriber resumes on the one that is left (SQLite: on the restarted one).
    let app = match second {
        Some((_, stop)) => {
            let _ = stop.send(());
            write_events(app.store(), order, merchant, "after-stop", 200, 7).await;
            app
        }
        None => {
            write_events(app.store(), order, merchant, "after-stop", 200, 7).await;
            app.restart().await
        }
    };
    let mut subscriber = Subscriber::connect(&app, &partner)
        .await
        .expect("reconnect");
    subscriber.subscribe(FOLLOW, vars(Some(&last))).await;
    expect_sequence(&mut subscriber, "after-stop", 0, 200, last).await;
    assert!(
        subscriber
            .next_json_within(Duration::from_millis(500))
            .await
            .is_none(),
        "nothing more than what was written"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_gets_all_ten_thousand_events_in_order_when_it_resumes() {
    let app = TestApp::spawn().await;
    let merchant = create_merchant(app.store(), "M").await;
    let order = quiet_order(&app, merchant, "1").await;
    let mut subscriber = Subscriber::connect(&app, &admin_token())
        .await
        .expect("connect");
    subscriber
        .subscribe(
            FOLLOW,
            json!({ "m": merchant.to_string(), "kinds": ["INFO"] }),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The subscriber reads nothing while these are written: far more than the feed keeps
    // for it, and more than the socket's buffers hold.
    write_events(app.store(), order, merchant, "e", 10_000, 100).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    expect_sequence(&mut subscriber, "e", 0, 10_000, String::new()).await;
    app.stop().await;
}

/// One event in a transaction held open for `hold`. On PostgreSQL the transaction takes
/// its id first and its event's id only after `hold`, and commits after another `hold`:
/// racing writers then commit ids out of order, both of the table's sequence and of
/// their transactions, which is what the log's positions must survive.
async fn race_write(store: &Store, order: i64, merchant: i64, message: &str, hold: Duration) {
    match &store.pool {
        Pool::Postgres(pool) => {
            let mut tx = pool.begin().await.expect("begin");
            sqlx::query("SELECT pg_current_xact_id()")
                .execute(&mut *tx)
                .await
                .expect("take a transaction id");
            tokio::time::sleep(hold).await;
            sqlx::query(
                "INSERT INTO order_events (order_id, merchant_id, kind, cause, actor, message, forced, created_at) \
                 VALUES ($1, $2, 'INFO', 'race', 'system:test', $3, false, now())",
            )
            .bind(order)
            .bind(merchant)
            .bind(message)
            .execute(&mut *tx)
            .await
            .expect("insert");
            tokio::time::sleep(hold).await;
            tx.commit().await.expect("commit");
        }
        Pool::Sqlite(_) => {
            let mut tx = store.begin_tx().await.expect("begin");
            tx.insert_event(&NewEvent {
                order_id: order,
                merchant_id: merchant,
                kind: EventKind::Info,
                from_state: None,
                to_state: None,
                cause: "race",
                actor: "system:test",
                message: Some(message),
                forced: false,
                at: Utc::now(),
                payload: None,
            })
            .await
            .expect("insert");
            tokio::time::sleep(hold).await;
            tx.commit().await.expect("commit");
        }
    }
}

#[tokio::test]
async fn concurrent_writers_never_let_a_reader_see_a_cursor_below_one_it_has_seen() {
    let app = TestApp::spawn().await;
    let store = app.store().clone();
    let merchant = create_merchant(&store, "M").await;
    let order = quiet_order(&app, merchant, "1").await;
    let start = store.event_log_head().await.expect("head");
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 40;
    let writing = Arc::new(AtomicBool::new(true));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..PER_WRITER {
                let message = format!("w{writer}-{n}");
                let hold = Duration::from_millis(((writer * 7 + n * 3) % 11) as u64);
                race_write(&store, order, merchant, &message, hold).await;
            }
        }));
    }
    let reader = {
        let (store, writing) = (store.clone(), writing.clone());
        tokio::spawn(async move {
            let filter = EventFilter {
                order_id: Some(order),
                ..EventFilter::default()
            };
            let mut seen: Vec<(Position, String)> = Vec::new();
            let mut cursor = start;
            let mut done_at = None;
            loop {
                // Once the writers are done, their last events are handed out as soon as
                // every older transaction of the server (other tests' too) has ended.
                let done = !writing.load(Ordering::SeqCst)
                    && (seen.len() == WRITERS * PER_WRITER
                        || done_at
                            .get_or_insert_with(std::time::Instant::now)
                            .elapsed()
                            > Duration::from_secs(20));
                let page = store.events_after(&filter, cursor, 7).await.expect("read");
                for event in &page {
                    let position = Position::of(event);
                    assert!(
                        position > cursor,
                        "{position:?} handed out after {cursor:?}"
                    );
                    cursor = position;
                    seen.push((position, event.message.clone().unwrap_or_default()));
                }
                if done && page.is_empty() {
                    return seen;
                }
                if page.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };
    for writer in writers {
        writer.await.expect("writer");
    }
    writing.store(false, Ordering::SeqCst);
    let seen = reader.await.expect("reader");
    let messages: HashSet<&str> = seen.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(seen.len(), WRITERS * PER_WRITER, "every event once");
    assert_eq!(messages.len(), WRITERS * PER_WRITER, "no event twice");
    if app.db.is_postgres() {
        // The race this guards against did happen: ids committed out of order.
        let ids_out_of_order = seen.windows(2).any(|w| w[1].0.id < w[0].0.id);
        assert!(
            ids_out_of_order,
            "the writers did not race; the test proves nothing"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn order_events_pages_filter_by_kind_and_stay_within_the_callers_merchants() {
    let app = TestApp::spawn().await;
    let mine = create_merchant(app.store(), "Mine").await;
    let theirs = create_merchant(app.store(), "Theirs").await;
    let my_order = quiet_order(&app, mine, "1").await;
    let their_order = quiet_order(&app, theirs, "2").await;
    let start = app.store().event_log_head().await.expect("head");
    write_events(app.store(), my_order, mine, "mine", 5, 1).await;
    write_events(app.store(), their_order, theirs, "theirs", 3, 1).await;
    app.store()
        .record_order_error(my_order, "test", "system:test", "it broke", true)
        .await
        .expect("error");
    app.store()
        .clear_stall(my_order, "admin:test")
        .await
        .expect("resume");

    const PAGE: &str = "query($m: ID, $o: ID, $kinds: [OrderEventKind!], $after: String, $first: Int) { \
        orderEvents(merchantId: $m, orderId: $o, kinds: $kinds, after: $after, first: $first) { \
        edges { cursor node { cursor kind message orderId merchantId } } pageInfo { hasNextPage endCursor } } }";
    let partner = token(Role::Partner, vec![mine]);
    // On PostgreSQL an event is handed out once every older transaction of the server has
    // ended (other tests' included): wait until all eight are.
    let settled = common::eventually(Duration::from_secs(10), || async {
        let body = app
            .graphql(&partner, PAGE, json!({ "after": start.cursor() }))
            .await;
        body["data"]["orderEvents"]["edges"]
            .as_array()
            .map(Vec::len)
            == Some(8)
    })
    .await;
    assert!(settled, "the test's eight events are readable");
    // Two at a time, oldest first, until the end, from where the test's events begin.
    let mut after = Some(start.cursor());
    let mut kinds = Vec::new();
    loop {
        let body = app
            .graphql(&partner, PAGE, json!({ "after": after, "first": 2 }))
            .await;
        let page = &body["data"]["orderEvents"];
        for edge in page["edges"].as_array().expect("edges") {
            assert_eq!(edge["cursor"], edge["node"]["cursor"]);
            assert_eq!(
                edge["node"]["merchantId"],
                mine.to_string(),
                "only my merchant: {body}"
            );
            kinds.push(edge["node"]["kind"].as_str().unwrap_or("").to_owned());
        }
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(
        kinds,
        ["INFO", "INFO", "INFO", "INFO", "INFO", "ERROR", "STALLED", "RESUMED"],
        "five INFO, then the error, its stall and the resume"
    );
    let body = app
        .graphql(
            &partner,
            PAGE,
            json!({ "kinds": ["STALLED", "RESUMED"], "after": start.cursor() }),
        )
        .await;
    let edges = body["data"]["orderEvents"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(edges.len(), 2, "{body}");

    // Another tenant's merchant is not found; its order simply matches nothing.
    let body = app
        .graphql(&partner, PAGE, json!({ "m": theirs.to_string() }))
        .await;
    assert_code(&body, "NOT_FOUND");
    let body = app
        .graphql(&partner, PAGE, json!({ "o": their_order.to_string() }))
        .await;
    assert_eq!(body["data"]["orderEvents"]["edges"], json!([]), "{body}");
    // A cursor this API did not hand out is refused with what to pass instead.
    let body = app.graphql(&partner, PAGE, json!({ "after": "42" })).await;
    assert_code(&body, "INVALID_INPUT");
    app.stop().await;
}
