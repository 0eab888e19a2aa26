//! The GraphQL API over real HTTP and WebSocket: authentication, tenant isolation, roles,
//! and an admin driving an order through its states while a subscriber watches.
use crate::common;

use std::time::Duration;

use crate::common::{
    admin_token, assert_code, create_merchant, error_code, error_message, eventually, insert_order,
    open_socket, token, token_with_exp, Subscriber, TestApp,
};
use base64::Engine;
use fortnox_fulfilment::auth::Role;
use fortnox_fulfilment::domain::{OrderState, TransitionRefused};
use fortnox_fulfilment::graphql::INTERNAL_MESSAGE;
use fortnox_fulfilment::store::transitions::{
    apply_transition, TransitionError, TransitionRequest,
};
use fortnox_fulfilment::store::{Pool, Store};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const ORDER_QUERY: &str = "query($id: ID!) { order(id: $id) { id state events { fromState toState cause actor forced message } } }";
const ORDER_LINES: &str = "query($id: ID!) { order(id: $id) { lines { id } } }";
const CONFIRM: &str = "mutation($id: ID!, $lines: [ShippedLineInput!]!) { confirmShipment(orderId: $id, trackingNumbers: [\"T1\"], lines: $lines) { state } }";
const FORCE: &str = "mutation($id: ID!, $state: OrderState!, $reason: String!) { forceOrderState(orderId: $id, state: $state, reason: $reason) { id state } }";

/// Writes a test row directly, to stage data the API never writes (`?` placeholders on
/// SQLite, `$n` on PostgreSQL).
async fn stage(store: &Store, sqlite: &'static str, postgres: &'static str, value: &str, id: i64) {
    let done = match &store.pool {
        Pool::Sqlite(pool) => sqlx::query(sqlite)
            .bind(value)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()),
        Pool::Postgres(pool) => sqlx::query(postgres)
            .bind(value)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()),
    };
    done.expect("stage test data");
}

/// Puts an order into `state` by a forced change, as an admin would. A fresh order's
/// validation job may have moved it there already, which is as good.
async fn put_in_state(app: &TestApp, order: i64, state: OrderState) {
    for _ in 0..5 {
        let mut request = TransitionRequest::new(order, None, state, "setup", "test");
        request.forced = true;
        match apply_transition(app.store(), request).await {
            Ok(_) | Err(TransitionError::Refused(TransitionRefused::SameState(_))) => return,
            // The validation moved the order between the read and the write: again.
            Err(TransitionError::Conflict { .. }) => continue,
            Err(other) => panic!("setup: {other}"),
        }
    }
    panic!("setup: the order kept changing");
}

#[tokio::test]
async fn requests_without_a_valid_token_are_refused() {
    let app = TestApp::spawn().await;
    let query = "{ merchants { id } }";
    let (status, body) = app.graphql_status(None, query, json!({})).await;
    assert_eq!(
        (status, error_code(&body)),
        (401, Some("UNAUTHENTICATED")),
        "no token: {body}"
    );

    let expired = token_with_exp(Role::Admin, vec![], chrono::Utc::now().timestamp() - 3600);
    let (status, body) = app.graphql_status(Some(&expired), query, json!({})).await;
    assert_eq!(status, 401, "expired token: {body}");
    // Only "token expired" or "invalid token": no library internals for a prober.
    assert_eq!(body["errors"][0]["message"], "token expired", "{body}");

    let claims = json!({"sub": "x", "exp": chrono::Utc::now().timestamp() + 3600, "role": "admin", "merchants": []});
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-secret"),
    )
    .unwrap();
    let (status, _) = app.graphql_status(Some(&forged), query, json!({})).await;
    assert_eq!(status, 401, "wrong signature");

    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    );
    let (status, body) = app.graphql_status(Some(&unsigned), query, json!({})).await;
    assert_eq!(status, 401, "alg none");
    assert_eq!(body["errors"][0]["message"], "invalid token", "{body}");

    let (status, _) = app
        .graphql_status(Some("not-a-jwt"), query, json!({}))
        .await;
    assert_eq!(status, 401, "garbage");

    let (status, body) = app
        .graphql_status(Some(&admin_token()), query, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn tenants_see_only_their_own_orders() {
    let app = TestApp::spawn().await;
    let mine = create_merchant(app.store(), "Mine").await;
    let theirs = create_merchant(app.store(), "Theirs").await;
    let my_order = insert_order(app.store(), mine, "1").await;
    let their_order = insert_order(app.store(), theirs, "1").await;
    let merchant = token(Role::Merchant, vec![mine]);

    let body = app
        .graphql(
            &merchant,
            ORDER_QUERY,
            json!({ "id": their_order.to_string() }),
        )
        .await;
    assert_eq!(
        body["data"]["order"],
        Value::Null,
        "another tenant's order is not found: {body}"
    );
    let body = app
        .graphql(
            &merchant,
            ORDER_QUERY,
            json!({ "id": my_order.to_string() }),
        )
        .await;
    assert_eq!(body["data"]["order"]["id"], json!(my_order.to_string()));

    let body = app
        .graphql(
            &merchant,
            "{ orders(first: 50) { edges { node { id merchantId } } } }",
            json!({}),
        )
        .await;
    let ids: Vec<&str> = body["data"]["orders"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["merchantId"].as_str().unwrap())
        .collect();
    assert!(
        !ids.is_empty() && ids.iter().all(|m| *m == mine.to_string()),
        "{body}"
    );
    let body = app
        .graphql(
            &merchant,
            "query($m: ID) { orders(merchantId: $m) { edges { node { id } } } }",
            json!({ "m": theirs.to_string() }),
        )
        .await;
    assert_eq!(body["data"]["orders"]["edges"], json!([]), "{body}");

    let body = app
        .graphql(&merchant, "{ merchants { id } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["merchants"],
        json!([{ "id": mine.to_string() }])
    );
    let body = app
        .graphql(
            &merchant,
            "query($id: ID!) { merchant(id: $id) { id } }",
            json!({ "id": theirs.to_string() }),
        )
        .await;
    assert_eq!(body["data"]["merchant"], Value::Null);

    // Mutations on another tenant's order say "not found", exactly like a missing one.
    let body = app
        .graphql(
            &merchant,
            "mutation($id: ID!) { cancelOrder(orderId: $id) { id } }",
            json!({ "id": their_order.to_string() }),
        )
        .await;
    assert_code(&body, "NOT_FOUND");
    let body = app
        .graphql(
            &merchant,
            "mutation($id: ID!) { cancelOrder(orderId: $id) { id } }",
            json!({ "id": "999999" }),
        )
        .await;
    assert_code(&body, "NOT_FOUND");
    app.stop().await;
}

#[tokio::test]
async fn only_admins_force_states_or_create_merchants_and_partners_only_read() {
    let app = TestApp::spawn().await;
    let merchant_id = create_merchant(app.store(), "M").await;
    let order = insert_order(app.store(), merchant_id, "1").await;
    // In a state no job moves: the check the import queued cannot change the order under
    // the forced change below (a CONFLICT).
    put_in_state(&app, order, OrderState::Reserved).await;
    let vars = json!({ "id": order.to_string(), "state": "CANCELLED", "reason": "test" });
    let create = "mutation { createMerchant(name: \"New\") { id } }";

    for role in [Role::Merchant, Role::Partner, Role::Warehouse] {
        let t = token(role, vec![merchant_id]);
        let body = app.graphql(&t, FORCE, vars.clone()).await;
        assert_eq!(
            error_code(&body),
            Some("FORBIDDEN"),
            "{role:?} force: {body}"
        );
        let body = app.graphql(&t, create, json!({})).await;
        assert_eq!(
            error_code(&body),
            Some("FORBIDDEN"),
            "{role:?} createMerchant: {body}"
        );
    }
    let partner = token(Role::Partner, vec![merchant_id]);
    for mutation in [
        "mutation($id: ID!) { cancelOrder(orderId: $id) { id } }",
        "mutation($id: ID!) { retryOrder(orderId: $id) { id } }",
    ] {
        let body = app
            .graphql(&partner, mutation, json!({ "id": order.to_string() }))
            .await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "partner: {body}");
    }
    let body = app
        .graphql(&partner, ORDER_QUERY, json!({ "id": order.to_string() }))
        .await;
    assert_eq!(
        body["data"]["order"]["id"],
        json!(order.to_string()),
        "partners read their merchants' orders"
    );

    let admin = admin_token();
    let body = app.graphql(&admin, create, json!({})).await;
    assert!(body["data"]["createMerchant"]["id"].is_string(), "{body}");
    let body = app
        .graphql(
            &admin,
            FORCE,
            json!({ "id": order.to_string(), "state": "CANCELLED", "reason": " " }),
        )
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("reason"),
        "a reason is required: {body}"
    );
    let body = app.graphql(&admin, FORCE, vars).await;
    assert_eq!(
        body["data"]["forceOrderState"]["state"], "CANCELLED",
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn depth_limit_rejects_abusive_queries() {
    let app = TestApp::spawn().await;
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(12),
        "} ".repeat(12)
    );
    let body = app.graphql(&admin_token(), &deep, json!({})).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .to_lowercase()
            .contains("nested too deep"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn admin_forces_an_order_through_states_and_a_subscriber_sees_each_change() {
    let app = TestApp::spawn().await;
    let admin = admin_token();
    let body = app
        .graphql(
            &admin,
            "mutation { createMerchant(name: \"Acme AB\") { id name } }",
            json!({}),
        )
        .await;
    let merchant_id: i64 = body["data"]["createMerchant"]["id"]
        .as_str()
        .expect("merchant id")
        .parse()
        .unwrap();
    // An order in RESERVED needs no job, so only the forced changes below move it.
    let order = insert_order(app.store(), merchant_id, "1001").await;
    put_in_state(&app, order, OrderState::Reserved).await;

    let partner = token(Role::Partner, vec![merchant_id]);
    let mut subscriber = Subscriber::connect(&app, &partner)
        .await
        .expect("partner subscribes");
    subscriber
        .subscribe(
            "subscription($m: ID, $o: ID) { orderStateChanged(merchantId: $m, orderId: $o) { orderId fromState toState forced cause actor } }",
            json!({ "m": merchant_id.to_string(), "o": order.to_string() }),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let path = [
        ("SENT", "RESERVED"),
        ("SHIPPED", "SENT"),
        ("CANCELLED", "SHIPPED"),
    ];
    for (to, from) in path {
        let body = app
            .graphql(
                &admin,
                FORCE,
                json!({ "id": order.to_string(), "state": to, "reason": format!("move to {to}") }),
            )
            .await;
        assert_eq!(body["data"]["forceOrderState"]["state"], to, "{body}");
        // The setup change, or the order's own validation, may still come after
        // subscribing (on PostgreSQL an event is handed out once every older transaction
        // has ended); skip them.
        let msg = loop {
            let msg = subscriber
                .next_json()
                .await
                .expect("a change on the subscription");
            if msg["payload"]["data"]["orderStateChanged"]["cause"] == "admin_forced" {
                break msg;
            }
        };
        let change = &msg["payload"]["data"]["orderStateChanged"];
        assert_eq!(
            (change["fromState"].as_str(), change["toState"].as_str()),
            (Some(from), Some(to)),
            "{msg}"
        );
        assert_eq!(change["forced"], true);
        assert_eq!(change["actor"], "admin:test-admin");
    }

    let body = app
        .graphql(&admin, ORDER_QUERY, json!({ "id": order.to_string() }))
        .await;
    let events = body["data"]["order"]["events"].as_array().expect("events");
    let forced: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["cause"] == "admin_forced")
        .map(|e| {
            (
                e["toState"].as_str().unwrap(),
                e["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        forced,
        vec![
            ("SENT", "move to SENT"),
            ("SHIPPED", "move to SHIPPED"),
            ("CANCELLED", "move to CANCELLED")
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn websocket_without_a_valid_token_is_refused_and_foreign_merchants_are_not_found() {
    let app = TestApp::spawn().await;
    assert!(Subscriber::connect(&app, "bogus").await.is_err());
    let mine = create_merchant(app.store(), "Mine").await;
    let theirs = create_merchant(app.store(), "Theirs").await;
    let mut subscriber = Subscriber::connect(&app, &token(Role::Partner, vec![mine]))
        .await
        .expect("connect");
    subscriber
        .subscribe(
            "subscription($m: ID) { orderStateChanged(merchantId: $m) { orderId } }",
            json!({ "m": theirs.to_string() }),
        )
        .await;
    let msg = subscriber.next_json().await.expect("an answer");
    assert!(
        msg["type"] == "error" || msg["payload"]["data"].is_null(),
        "{msg}"
    );
    assert!(msg.to_string().contains("not found"), "{msg}");
    assert!(msg.to_string().contains("\"NOT_FOUND\""), "{msg}");
    app.stop().await;
}

#[tokio::test]
async fn only_the_warehouse_cancels_an_order_it_holds() {
    let app = TestApp::spawn().await;
    let merchant_id = create_merchant(app.store(), "M").await;
    let order = insert_order(app.store(), merchant_id, "1").await;
    put_in_state(&app, order, OrderState::Sent).await;
    let cancel = "mutation($id: ID!) { cancelOrder(orderId: $id, reason: \"customer changed their mind\") { state } }";
    let vars = json!({ "id": order.to_string() });
    for t in [token(Role::Merchant, vec![merchant_id]), admin_token()] {
        let body = app.graphql(&t, cancel, vars.clone()).await;
        assert_code(&body, "TRANSITION_REFUSED");
    }
    let body = app
        .graphql(&token(Role::Warehouse, vec![]), cancel, vars)
        .await;
    assert_eq!(body["data"]["cancelOrder"]["state"], "CANCELLED", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn on_postgresql_a_subscriber_sees_changes_made_by_another_process() {
    let app = TestApp::spawn().await;
    if !app.db.is_postgres() {
        // SQLite serves one process; its bus is in-process by design.
        app.stop().await;
        return;
    }
    // A second server process on the same database.
    let other = fortnox_fulfilment::server::App::build(&app.config, &common::JWT_SECRET.into())
        .await
        .expect("second app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let other_task = tokio::spawn(other.serve(listener, async move {
        let _ = stopped.await;
    }));

    let merchant_id = create_merchant(app.store(), "M").await;
    let order = insert_order(app.store(), merchant_id, "1").await;
    // Only the forced change may move the order: first into a state no job moves, so that
    // the check the import queued cannot change it under the forced change (a CONFLICT).
    put_in_state(&app, order, OrderState::Reserved).await;
    let mut subscriber = Subscriber::connect(&app, &admin_token())
        .await
        .expect("subscribe on the first process");
    subscriber
        .subscribe(
            "subscription($o: ID) { orderStateChanged(orderId: $o) { toState } }",
            json!({ "o": order.to_string() }),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let body: Value = reqwest::Client::new()
        .post(format!("http://{other_addr}/graphql"))
        .bearer_auth(admin_token())
        .json(&json!({ "query": FORCE, "variables": { "id": order.to_string(), "state": "CANCELLED", "reason": "via the other process" } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["data"]["forceOrderState"]["state"], "CANCELLED",
        "{body}"
    );
    // The setup change may come first: the forced change is the one this test is about.
    let mut seen = Vec::new();
    while let Some(msg) = subscriber.next_json().await {
        let to = msg["payload"]["data"]["orderStateChanged"]["toState"].clone();
        seen.push(msg);
        if to == "CANCELLED" || seen.len() > 3 {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|m| m["payload"]["data"]["orderStateChanged"]["toState"] == "CANCELLED"),
        "the change made on the other process: {seen:?}"
    );
    let _ = stop.send(());
    let _ = other_task.await;
    app.stop().await;
}

#[tokio::test]
async fn errors_of_missing_forbidden_and_malformed_requests_carry_their_codes() {
    let app = TestApp::spawn().await;
    let mine = create_merchant(app.store(), "Mine").await;
    let theirs = create_merchant(app.store(), "Theirs").await;
    let their_order = insert_order(app.store(), theirs, "1").await;
    let merchant = token(Role::Merchant, vec![mine]);
    let cancel = "mutation($id: ID!) { cancelOrder(orderId: $id) { id } }";

    // NOT_FOUND: another tenant's order reads exactly like a missing one.
    let foreign = app
        .graphql(&merchant, cancel, json!({ "id": their_order.to_string() }))
        .await;
    assert_code(&foreign, "NOT_FOUND");
    let missing = app
        .graphql(&merchant, cancel, json!({ "id": "999999" }))
        .await;
    assert_code(&missing, "NOT_FOUND");
    assert_eq!(error_message(&foreign), error_message(&missing));
    assert!(
        error_message(&foreign).starts_with("order not found"),
        "{foreign}"
    );
    let body = app
        .graphql(
            &merchant,
            "query($m: ID!) { products(merchantId: $m) { edges { node { id } } } }",
            json!({ "m": theirs.to_string() }),
        )
        .await;
    assert_code(&body, "NOT_FOUND");

    // FORBIDDEN: the role may not call the mutation; the message names the roles.
    let partner = token(Role::Partner, vec![mine]);
    let body = app
        .graphql(&partner, cancel, json!({ "id": their_order.to_string() }))
        .await;
    assert_code(&body, "FORBIDDEN");
    let body = app
        .graphql(
            &merchant,
            "mutation { createMerchant(name: \"X\") { id } }",
            json!({}),
        )
        .await;
    assert_code(&body, "FORBIDDEN");
    assert!(
        error_message(&body).contains("needs the role admin"),
        "{body}"
    );

    // INVALID_INPUT: ids that cannot be ids, bad cursors and page sizes, empty names.
    let body = app.graphql(&merchant, cancel, json!({ "id": "abc" })).await;
    assert_code(&body, "INVALID_INPUT");
    assert!(error_message(&body).contains("`abc`"), "{body}");
    let body = app
        .graphql(
            &merchant,
            "query($m: ID!) { products(merchantId: $m) { edges { node { id } } } }",
            json!({ "m": "m-1" }),
        )
        .await;
    assert_code(&body, "INVALID_INPUT");
    let body = app
        .graphql(
            &merchant,
            "{ orders(first: 5, after: \"not-a-cursor\") { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_code(&body, "INVALID_INPUT");
    let body = app
        .graphql(
            &merchant,
            "{ orders(first: -1) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_code(&body, "INVALID_INPUT");
    let body = app
        .graphql(
            &admin_token(),
            "mutation { createMerchant(name: \"  \") { id } }",
            json!({}),
        )
        .await;
    assert_code(&body, "INVALID_INPUT");

    // Errors async-graphql raises before any resolver runs get a code too.
    for query in [
        "{ merchants { id }",
        "{ merchants { id nope } }",
        "{ orders(first: \"ten\") { edges { node { id } } } }",
    ] {
        let body = app.graphql(&merchant, query, json!({})).await;
        assert_code(&body, "INVALID_INPUT");
    }

    // A body that is no GraphQL request: 400 with a GraphQL error; without a token, 401 first.
    let send = |token: Option<&str>| {
        let mut request = app
            .http
            .post(app.url("/graphql"))
            .header("content-type", "application/json")
            .body("{ not json");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let response = send(Some(&merchant)).await.expect("send");
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.expect("JSON");
    assert_code(&body, "INVALID_INPUT");
    let response = send(None).await.expect("send");
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.expect("JSON");
    assert_code(&body, "UNAUTHENTICATED");
    app.stop().await;
}

#[tokio::test]
async fn refused_and_conflicting_changes_carry_their_codes() {
    // Without Fortnox app credentials, whatever the environment says.
    let app = TestApp::spawn_with(|config| {
        config.fortnox.client_id = None;
        config.fortnox.client_secret = None;
    })
    .await;
    // No products nor rules: the order's checks fail, so no job moves it past RESERVED.
    let merchant_id = create_merchant(app.store(), "M").await;
    let merchant = token(Role::Merchant, vec![merchant_id]);
    let admin = admin_token();
    let order = insert_order(app.store(), merchant_id, "1").await;
    put_in_state(&app, order, OrderState::Reserved).await;

    // TRANSITION_REFUSED: a change the state machine does not allow, even forced.
    let body = app
        .graphql(
            &admin,
            FORCE,
            json!({ "id": order.to_string(), "state": "RESERVED", "reason": "again" }),
        )
        .await;
    assert_code(&body, "TRANSITION_REFUSED");
    assert!(error_message(&body).contains("already RESERVED"), "{body}");

    // CONFLICT: the order is not in the state the change expected.
    let body = app
        .graphql(
            &admin,
            "mutation($id: ID!) { forceOrderState(orderId: $id, state: CANCELLED, reason: \"r\", expectedState: SENT) { id } }",
            json!({ "id": order.to_string() }),
        )
        .await;
    assert_code(&body, "CONFLICT");
    assert!(error_message(&body).contains("reload the order"), "{body}");
    // ... or a duplicate, with the finer reason for clients that need it.
    let create = "mutation($m: ID!) { createProduct(merchantId: $m, sku: \"OTHER-1\", name: \"Other\") { id } }";
    let vars = json!({ "m": merchant_id.to_string() });
    let body = app.graphql(&merchant, create, vars.clone()).await;
    assert!(body["errors"].is_null(), "{body}");
    let body = app.graphql(&merchant, create, vars).await;
    assert_code(&body, "CONFLICT");
    assert_eq!(
        body["errors"][0]["extensions"]["reason"], "DUPLICATE_SKU",
        "{body}"
    );

    // INVALID_INPUT: a shipment with a bad line id or quantity.
    put_in_state(&app, order, OrderState::Sent).await;
    let body = app
        .graphql(&admin, ORDER_LINES, json!({ "id": order.to_string() }))
        .await;
    let line = body["data"]["order"]["lines"][0]["id"]
        .as_str()
        .expect("a line")
        .to_owned();
    let line_id: i64 = line.parse().expect("numeric line id");
    stage(
        app.store(),
        "UPDATE order_lines SET pick_quantity = ? WHERE id = ?",
        "UPDATE order_lines SET pick_quantity = $1 WHERE id = $2",
        "1",
        line_id,
    )
    .await;
    let warehouse = token(Role::Warehouse, vec![]);
    for (line, quantity, says) in [
        (line.as_str(), "lots", "not a number"),
        (line.as_str(), "5", "only 1 was to be picked"),
        ("L-1", "1", "not a line of this order"),
    ] {
        let body = app
            .graphql(
                &warehouse,
                CONFIRM,
                json!({ "id": order.to_string(), "lines": [{ "lineId": line, "quantity": quantity }] }),
            )
            .await;
        assert_code(&body, "INVALID_INPUT");
        assert!(error_message(&body).contains(says), "{body}");
    }
    // TRANSITION_REFUSED from the resolver's own rule: merchants do not cancel SENT orders.
    let body = app
        .graphql(
            &merchant,
            "mutation($id: ID!) { cancelOrder(orderId: $id) { id } }",
            json!({ "id": order.to_string() }),
        )
        .await;
    assert_code(&body, "TRANSITION_REFUSED");

    // UPSTREAM: Fortnox cannot be reached (here: the service has no Fortnox app).
    let body = app
        .graphql(
            &merchant,
            "mutation($m: ID!) { connectFortnox(merchantId: $m) }",
            json!({ "m": merchant_id.to_string() }),
        )
        .await;
    assert_code(&body, "UPSTREAM");
    assert!(error_message(&body).contains("FORTNOX_CLIENT_ID"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn an_internal_error_shows_no_internals() {
    let app = TestApp::spawn().await;
    let merchant_id = create_merchant(app.store(), "M").await;
    let order = insert_order(app.store(), merchant_id, "1").await;
    // A state no code writes: reading the order fails inside the server.
    stage(
        app.store(),
        "UPDATE orders SET state = ? WHERE id = ?",
        "UPDATE orders SET state = $1 WHERE id = $2",
        "BROKEN_STATE_XYZ",
        order,
    )
    .await;
    let body = app
        .graphql(
            &admin_token(),
            ORDER_QUERY,
            json!({ "id": order.to_string() }),
        )
        .await;
    assert_code(&body, "INTERNAL");
    assert_eq!(error_message(&body), INTERNAL_MESSAGE, "{body}");
    assert!(!body.to_string().contains("BROKEN_STATE_XYZ"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_subscription_ends_when_its_token_expires() {
    let app = TestApp::spawn().await;
    let merchant = create_merchant(app.store(), "Expiring").await;
    let expires = chrono::Utc::now().timestamp() + 2;
    let short = token_with_exp(Role::Partner, vec![merchant], expires);
    let mut subscriber = Subscriber::connect(&app, &short)
        .await
        .expect("a token valid for two more seconds is accepted");
    subscriber
        .subscribe(
            "subscription { orderStateChanged { orderId toState } }",
            json!({}),
        )
        .await;
    let ended = subscriber.next_json().await.expect("a message at expiry");
    assert_eq!(ended["type"], "next", "{ended}");
    assert_eq!(
        ended["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{ended}"
    );
    assert_eq!(
        ended["payload"]["errors"][0]["extensions"]["reason"], "TOKEN_EXPIRED",
        "{ended}"
    );
    assert!(
        chrono::Utc::now().timestamp() >= expires,
        "ended at the expiry, not before"
    );
    let complete = subscriber.next_json().await.expect("then complete");
    assert_eq!(complete["type"], "complete", "{complete}");
    app.stop().await;
}

#[tokio::test]
async fn a_websocket_that_never_initialises_is_closed_with_4408() {
    let app = TestApp::spawn().await;
    let mut socket = open_socket(&app).await;
    let started = std::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .expect("closed within 30 s");
    assert_eq!(closed, Some(4408));
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "not before the timeout"
    );
    app.stop().await;
}

#[tokio::test]
async fn one_token_holds_a_bounded_number_of_websockets() {
    let app = TestApp::spawn().await;
    let partner = token(Role::Partner, vec![]);
    let max = fortnox_fulfilment::server::websocket::MAX_SOCKETS_PER_TOKEN;
    let mut open = Vec::new();
    for _ in 0..max {
        open.push(
            Subscriber::connect(&app, &partner)
                .await
                .expect("within the cap"),
        );
    }
    let refused = Subscriber::connect(&app, &partner)
        .await
        .err()
        .unwrap_or_default();
    assert!(refused.contains("not acknowledged"), "{refused}");
    // Another identity (the cap counts per role and subject) is not affected.
    let other = admin_token();
    assert!(Subscriber::connect(&app, &other).await.is_ok());
    // A closed connection gives its place back.
    let mut first = open.remove(0);
    first.socket.close(None).await.expect("close");
    drop(first);
    let reopened = eventually(Duration::from_secs(10), || async {
        Subscriber::connect(&app, &partner).await.is_ok()
    })
    .await;
    assert!(reopened, "a place was given back");
    app.stop().await;
}
