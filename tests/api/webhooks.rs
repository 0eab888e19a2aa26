//! Webhooks as a receiver sees them: every event delivered, at least once, signed so that
//! the Standard Webhooks project's own verifier accepts it; retried with backoff while the
//! receiver fails; refused for private destinations unless development allows them; an
//! endpoint that keeps failing disabled with a reason, and its delivery re-sent.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use fortnox_fulfilment::auth::Role;
use serde_json::{json, Value};

use crate::common::{self, assert_code, create_merchant, eventually, token, TestApp};
use crate::order_events::{quiet_order, write_events};

/// One request the receiver got, and what it answered.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
    answered: u16,
}

/// A webhook receiver on a loopback port that answers 500 to its first `failures`
/// requests (all of them when `failures` is None), then 200.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    failures: Arc<Mutex<Option<usize>>>,
}

impl Receiver {
    async fn start(failures: Option<usize>) -> Receiver {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let failures = Arc::new(Mutex::new(failures));
        let (log, plan) = (received.clone(), failures.clone());
        let app = axum::Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (log, plan) = (log.clone(), plan.clone());
                async move {
                    let mut log = log.lock().unwrap();
                    let fail = plan.lock().unwrap().is_none_or(|n| log.len() < n);
                    let status = if fail {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    };
                    log.push(Received {
                        headers,
                        body: body.to_vec(),
                        answered: status.as_u16(),
                    });
                    (status, if fail { "not now" } else { "thanks" })
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            addr,
            received,
            failures,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn answer_ok_from_now(&self) {
        *self.failures.lock().unwrap() = Some(0);
    }

    /// The messages of the events it accepted (answered 200), in the order received.
    fn accepted_messages(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter(|r| r.answered == 200)
            .map(|r| {
                let body: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                body["data"]["message"].as_str().unwrap_or("").to_owned()
            })
            .collect()
    }
}

async fn app_with_webhooks(
    adjust: impl FnOnce(&mut fortnox_fulfilment::config::Config),
) -> TestApp {
    TestApp::spawn_with(|config| {
        config.webhooks.allow_private_urls = true;
        // Secrets must still be readable after a restart.
        config.auth.token_encryption_key = Some("11".repeat(32).into());
        config.webhooks.delivery_retry_base = Duration::from_millis(50);
        adjust(config);
    })
    .await
}

const CREATE: &str = "mutation($m: ID!, $url: String!, $kinds: [OrderEventKind!]) { \
    createWebhookEndpoint(merchantId: $m, url: $url, kinds: $kinds) { secret endpoint { id url kinds enabled } } }";
const ENDPOINT: &str = "query($id: ID!) { webhookEndpoint(id: $id) { enabled disabledReason failingSince \
    deliveries(first: 50) { edges { node { id status attempts lastError attemptLog { attempt statusCode error latencyMs response } } } } } }";

/// Registers an endpoint for INFO events; returns its id and secret.
async fn register(app: &TestApp, token: &str, merchant: i64, url: &str) -> (String, String) {
    let body = app
        .graphql(
            token,
            CREATE,
            json!({ "m": merchant.to_string(), "url": url, "kinds": ["INFO"] }),
        )
        .await;
    let created = &body["data"]["createWebhookEndpoint"];
    let secret = created["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{body}");
    (
        created["endpoint"]["id"].as_str().unwrap().to_owned(),
        secret,
    )
}

/// Checks the request with the Standard Webhooks project's verifier, not ours.
fn verifies(secret: &str, received: &Received) -> bool {
    let webhook = standardwebhooks::Webhook::new(secret).expect("a whsec_ secret");
    webhook.verify(&received.body, &received.headers).is_ok()
}

#[tokio::test]
async fn a_receiver_that_fails_at_first_gets_every_event_signed_verifiably() {
    let app = app_with_webhooks(|_| {}).await;
    let merchant = create_merchant(app.store(), "M").await;
    let order = quiet_order(&app, merchant, "1").await;
    let receiver = Receiver::start(Some(3)).await;
    let partner = token(Role::Partner, vec![merchant]);
    let (endpoint, secret) = register(&app, &partner, merchant, &receiver.url()).await;
    // On PostgreSQL a second process fans out and delivers beside the first.
    let second = if app.db.is_postgres() {
        let other = fortnox_fulfilment::server::App::build(&app.config, &common::JWT_SECRET.into())
            .await
            .expect("second app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(other.serve(listener, async move {
            let _ = stopped.await;
        }));
        Some(stop)
    } else {
        None
    };

    write_events(app.store(), order, merchant, "e", 5, 1).await;
    let all_in = eventually(Duration::from_secs(30), || async {
        let mut messages = receiver.accepted_messages();
        messages.sort();
        messages.dedup();
        messages.len() == 5
    })
    .await;
    assert!(
        all_in,
        "every event arrives: {:?}",
        receiver.accepted_messages()
    );
    let received = receiver.received();
    assert!(received.iter().filter(|r| r.answered == 500).count() >= 3);
    for request in &received {
        assert!(
            verifies(&secret, request),
            "the signature of {request:?} verifies"
        );
        assert!(
            !verifies("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", request),
            "under another secret it does not"
        );
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["type"], "order.info");
        assert_eq!(
            request.headers["webhook-id"].to_str().unwrap(),
            format!("evt_{}", body["data"]["cursor"].as_str().unwrap()),
            "the id is the event's, the same on every attempt"
        );
    }
    let mut accepted = receiver.accepted_messages();
    accepted.sort();
    assert_eq!(
        accepted,
        ["e0", "e1", "e2", "e3", "e4"],
        "each event accepted once"
    );

    // The delivery log shows the failed attempts and the one that succeeded. The receiver
    // has the last request before the sender records its answer: wait for the record. A
    // delivery and its log are read by separate statements, so one answer may hold a log
    // entry committed after its delivery was read: wait until both agree too.
    let settled = |body: &Value| -> bool {
        body["data"]["webhookEndpoint"]["deliveries"]["edges"]
            .as_array()
            .is_some_and(|edges| {
                edges.iter().all(|d| {
                    d["node"]["attemptLog"].as_array().map(Vec::len)
                        == d["node"]["attempts"].as_u64().map(|n| n as usize)
                })
            })
    };
    let logged = |body: &Value| -> usize {
        body["data"]["webhookEndpoint"]["deliveries"]["edges"]
            .as_array()
            .map_or(0, |edges| {
                edges
                    .iter()
                    .map(|d| d["node"]["attemptLog"].as_array().map_or(0, Vec::len))
                    .sum()
            })
    };
    let mut body = Value::Null;
    for _ in 0..100 {
        body = app
            .graphql(&partner, ENDPOINT, json!({ "id": endpoint }))
            .await;
        if logged(&body) >= received.len() && settled(&body) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let deliveries = body["data"]["webhookEndpoint"]["deliveries"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(deliveries.len(), 5, "{body}");
    let attempts: usize = deliveries
        .iter()
        .map(|d| d["node"]["attemptLog"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(
        attempts,
        received.len(),
        "one log entry per request: {body}"
    );
    assert!(
        deliveries
            .iter()
            .all(|d| d["node"]["status"] == "DELIVERED"),
        "{body}"
    );
    let failed = deliveries
        .iter()
        .flat_map(|d| {
            d["node"]["attemptLog"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|a| a["statusCode"] == 500)
        .expect("a failed attempt in the log");
    assert_eq!(failed["response"], "not now", "{failed}");
    if let Some(stop) = second {
        let _ = stop.send(());
    }
    app.stop().await;
}

#[tokio::test]
async fn private_and_plain_http_destinations_are_refused_without_the_development_setting() {
    let app = TestApp::spawn().await;
    let merchant = create_merchant(app.store(), "M").await;
    let merchant_token = token(Role::Merchant, vec![merchant]);
    for url in [
        "http://hooks.example.com/x",
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://192.168.1.20/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/hook",
        "https://localhost/hook",
    ] {
        let body = app
            .graphql(
                &merchant_token,
                CREATE,
                json!({ "m": merchant.to_string(), "url": url }),
            )
            .await;
        assert_code(&body, "INVALID_INPUT");
        assert!(
            body["data"].is_null() || body["data"]["createWebhookEndpoint"].is_null(),
            "{url}: {body}"
        );
    }
    let body = app
        .graphql(
            &merchant_token,
            CREATE,
            json!({ "m": merchant.to_string(), "url": "https://10.0.0.1/hook" }),
        )
        .await;
    assert!(
        common::error_message(&body).contains("private address"),
        "the refusal says why: {body}"
    );
    app.stop().await;

    // Registered while development allowed it; checked again at delivery once it does not.
    let mut app = app_with_webhooks(|_| {}).await;
    let merchant = create_merchant(app.store(), "M").await;
    let order = quiet_order(&app, merchant, "1").await;
    let receiver = Receiver::start(None).await;
    let merchant_token = token(Role::Merchant, vec![merchant]);
    let (endpoint, _) = register(&app, &merchant_token, merchant, &receiver.url()).await;
    app.config.webhooks.allow_private_urls = false;
    let app = app.restart().await;
    write_events(app.store(), order, merchant, "e", 1, 1).await;
    let refused = eventually(Duration::from_secs(20), || async {
        let body = app
            .graphql(&merchant_token, ENDPOINT, json!({ "id": endpoint }))
            .await;
        body["data"]["webhookEndpoint"]["deliveries"]["edges"][0]["node"]["attemptLog"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("refused"))
    })
    .await;
    assert!(refused, "the delivery is refused at delivery time");
    assert!(
        receiver.received().is_empty(),
        "nothing reached the private address"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_endpoint_failing_for_the_retry_period_is_disabled_and_its_delivery_can_be_resent() {
    let app = app_with_webhooks(|config| {
        config.webhooks.delivery_retry_for = Duration::from_secs(2);
        config.webhooks.delivery_retry_base = Duration::from_millis(100);
    })
    .await;
    let merchant = create_merchant(app.store(), "M").await;
    let order = quiet_order(&app, merchant, "1").await;
    let receiver = Receiver::start(None).await;
    let merchant_token = token(Role::Merchant, vec![merchant]);
    let (endpoint, secret) = register(&app, &merchant_token, merchant, &receiver.url()).await;
    write_events(app.store(), order, merchant, "e", 1, 1).await;

    let disabled = eventually(Duration::from_secs(30), || async {
        let body = app
            .graphql(&merchant_token, ENDPOINT, json!({ "id": endpoint }))
            .await;
        body["data"]["webhookEndpoint"]["enabled"] == false
    })
    .await;
    assert!(
        disabled,
        "the endpoint is disabled after failing for the retry period"
    );
    let body = app
        .graphql(&merchant_token, ENDPOINT, json!({ "id": endpoint }))
        .await;
    let shown = &body["data"]["webhookEndpoint"];
    assert!(
        shown["disabledReason"]
            .as_str()
            .is_some_and(|r| r.contains("fix the receiver")),
        "the owner sees why and what to do: {body}"
    );
    let delivery = &shown["deliveries"]["edges"][0]["node"];
    assert_eq!(delivery["status"], "FAILED", "{body}");
    assert!(
        delivery["attempts"].as_i64().unwrap_or(0) >= 2,
        "retried first: {body}"
    );

    // An event while it is disabled is kept as a failed delivery, not dropped.
    write_events(app.store(), order, merchant, "while-disabled-", 1, 1).await;
    let kept = eventually(Duration::from_secs(10), || async {
        let body = app
            .graphql(&merchant_token, ENDPOINT, json!({ "id": endpoint }))
            .await;
        body["data"]["webhookEndpoint"]["deliveries"]["edges"]
            .as_array()
            .map(Vec::len)
            == Some(2)
    })
    .await;
    assert!(kept, "the event while disabled has its delivery");

    // The receiver is fixed; the owner enables the endpoint and re-sends what failed.
    receiver.answer_ok_from_now();
    let resend = "mutation($id: ID!) { resendWebhookDelivery(id: $id) { status } }";
    let body = app
        .graphql(&merchant_token, resend, json!({ "id": delivery["id"] }))
        .await;
    assert_code(&body, "INVALID_INPUT");
    let enable = "mutation($id: ID!) { updateWebhookEndpoint(id: $id, enabled: true) { enabled disabledReason } }";
    let body = app
        .graphql(&merchant_token, enable, json!({ "id": endpoint }))
        .await;
    assert_eq!(
        body["data"]["updateWebhookEndpoint"]["disabledReason"],
        Value::Null,
        "{body}"
    );
    let resend_failed = "mutation($id: ID!) { resendFailedWebhookDeliveries(endpointId: $id) }";
    let body = app
        .graphql(&merchant_token, resend_failed, json!({ "id": endpoint }))
        .await;
    assert_eq!(body["data"]["resendFailedWebhookDeliveries"], 2, "{body}");
    let delivered = eventually(Duration::from_secs(10), || async {
        let mut accepted = receiver.accepted_messages();
        accepted.sort();
        accepted == ["e0", "while-disabled-0"]
    })
    .await;
    assert!(
        delivered,
        "the re-sent deliveries arrive: {:?}",
        receiver.accepted_messages()
    );
    assert!(verifies(&secret, receiver.received().last().unwrap()));
    // A delivered one can be sent again (a receiver that lost it); a second time, too.
    let body = app
        .graphql(&merchant_token, resend, json!({ "id": delivery["id"] }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_overlaps_with_the_old_one_and_other_tenants_see_nothing() {
    let app = app_with_webhooks(|_| {}).await;
    let merchant = create_merchant(app.store(), "M").await;
    let other = create_merchant(app.store(), "Other").await;
    let order = quiet_order(&app, merchant, "1").await;
    let receiver = Receiver::start(Some(0)).await;
    let partner = token(Role::Partner, vec![merchant]);
    let (endpoint, old_secret) = register(&app, &partner, merchant, &receiver.url()).await;

    let rotate = "mutation($id: ID!) { rotateWebhookSecret(id: $id, overlapHours: 1) { secret endpoint { previousSecretValidUntil } } }";
    let body = app
        .graphql(&partner, rotate, json!({ "id": endpoint }))
        .await;
    let new_secret = body["data"]["rotateWebhookSecret"]["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    assert_ne!(new_secret, old_secret);
    assert!(!body["data"]["rotateWebhookSecret"]["endpoint"]["previousSecretValidUntil"].is_null());
    write_events(app.store(), order, merchant, "e", 1, 1).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            receiver.received().len() == 1
        })
        .await
    );
    let request = &receiver.received()[0];
    assert!(verifies(&new_secret, request), "signed with the new secret");
    assert!(
        verifies(&old_secret, request),
        "and, during the overlap, with the old one"
    );

    // Another partner of the same merchant does not see or change this partner's endpoint.
    let colleague = common::token_for("another-partner-tool", Role::Partner, vec![merchant]);
    let body = app
        .graphql(&colleague, ENDPOINT, json!({ "id": endpoint }))
        .await;
    assert_eq!(body["data"]["webhookEndpoint"], Value::Null, "{body}");
    let body = app
        .graphql(&colleague, rotate, json!({ "id": endpoint }))
        .await;
    assert_code(&body, "NOT_FOUND");
    // The merchant does.
    let merchant_token = token(Role::Merchant, vec![merchant]);
    let body = app
        .graphql(&merchant_token, ENDPOINT, json!({ "id": endpoint }))
        .await;
    assert_eq!(body["data"]["webhookEndpoint"]["enabled"], true, "{body}");

    // Another merchant's partner neither sees nor changes it, nor registers for ours.
    let stranger = token(Role::Partner, vec![other]);
    let body = app
        .graphql(&stranger, ENDPOINT, json!({ "id": endpoint }))
        .await;
    assert_eq!(body["data"]["webhookEndpoint"], Value::Null, "{body}");
    let body = app
        .graphql(&stranger, rotate, json!({ "id": endpoint }))
        .await;
    assert_code(&body, "NOT_FOUND");
    let body = app
        .graphql(
            &stranger,
            CREATE,
            json!({ "m": merchant.to_string(), "url": receiver.url() }),
        )
        .await;
    assert_code(&body, "NOT_FOUND");
    let body = app
        .graphql(&stranger, "{ webhookEndpoints { id } }", json!({}))
        .await;
    assert_eq!(body["data"]["webhookEndpoints"], json!([]), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_that_hangs_times_out_and_one_that_floods_is_read_only_in_part() {
    let app = app_with_webhooks(|config| {
        config.webhooks.delivery_timeout = Duration::from_secs(1);
        config.webhooks.delivery_retry_base = Duration::from_secs(60);
    })
    .await;
    let merchant = create_merchant(app.store(), "M").await;
    let order = quiet_order(&app, merchant, "1").await;
    // One path never answers in time; the other answers 200 with 20 MB.
    let receiver = axum::Router::new()
        .route(
            "/hang",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route("/flood", post(|| async { "x".repeat(20 * 1024 * 1024) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let merchant_token = token(Role::Merchant, vec![merchant]);
    let (hang, _) = register(
        &app,
        &merchant_token,
        merchant,
        &format!("http://{addr}/hang"),
    )
    .await;
    let (flood, _) = register(
        &app,
        &merchant_token,
        merchant,
        &format!("http://{addr}/flood"),
    )
    .await;
    write_events(app.store(), order, merchant, "e", 1, 1).await;

    let first_attempt = |endpoint: String| {
        let (app, merchant_token) = (&app, &merchant_token);
        async move {
            let body = app
                .graphql(merchant_token, ENDPOINT, json!({ "id": endpoint }))
                .await;
            body["data"]["webhookEndpoint"]["deliveries"]["edges"][0]["node"].clone()
        }
    };
    let attempted = eventually(Duration::from_secs(20), || async {
        first_attempt(hang.clone()).await["attempts"] == 1
            && first_attempt(flood.clone()).await["attempts"] == 1
    })
    .await;
    assert!(attempted, "both endpoints were tried");
    let hung = first_attempt(hang).await;
    let attempt = &hung["attemptLog"][0];
    assert_eq!(hung["status"], "PENDING", "retried later: {hung}");
    assert!(
        attempt["error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out")),
        "{hung}"
    );
    assert!(
        attempt["latencyMs"]
            .as_i64()
            .is_some_and(|ms| (900..5000).contains(&ms)),
        "{hung}"
    );
    let flooded = first_attempt(flood).await;
    assert_eq!(flooded["status"], "DELIVERED", "{flooded}");
    let response = flooded["attemptLog"][0]["response"].as_str().unwrap_or("");
    assert!(
        response.len() <= 1024 && response.starts_with("xxx"),
        "kept: {} bytes",
        response.len()
    );
    app.stop().await;
}
