//! Test harness: a fresh database per test (SQLite file, or a new PostgreSQL database when
//! `TEST_DATABASE_URL` points at a server), the real app on a random loopback port, and
//! small HTTP/WebSocket clients.
#![allow(dead_code)]

pub mod subscriber;
#[allow(unused_imports)] // tests/process shares this module and uses neither
pub use subscriber::{open_socket, Subscriber};

use std::net::SocketAddr;
use std::time::Duration;

use fortnox_fulfilment::auth::{Claims, JwtKeys, Role};
use fortnox_fulfilment::config::Config;
use fortnox_fulfilment::domain::OrderState;
use fortnox_fulfilment::server::App;
use fortnox_fulfilment::store::orders::{NewOrder, NewOrderLine, TenantScope};
use fortnox_fulfilment::store::Store;
use serde_json::{json, Value};

pub const JWT_SECRET: &str = "test-secret-for-integration-tests";

/// A database of its own for one test; PostgreSQL databases are dropped by `cleanup`.
pub struct TestDb {
    pub url: String,
    admin_url: Option<String>,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let name = format!("ff_test_{}", uuid::Uuid::new_v4().simple());
        match std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("postgres"))
        {
            Some(admin_url) => {
                let admin = sqlx::PgPool::connect(&admin_url)
                    .await
                    .expect("connect to TEST_DATABASE_URL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await
                    .expect("create test database");
                admin.close().await;
                let base = admin_url.split('?').next().unwrap_or(&admin_url);
                let (server, _) = base
                    .rsplit_once('/')
                    .expect("TEST_DATABASE_URL has a database name");
                TestDb {
                    url: format!("{server}/{name}"),
                    admin_url: Some(admin_url),
                    name,
                    _dir: None,
                }
            }
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                TestDb {
                    url,
                    admin_url: None,
                    name,
                    _dir: Some(dir),
                }
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.admin_url.is_some()
    }

    pub async fn cleanup(self) {
        if let Some(admin_url) = &self.admin_url {
            if let Ok(admin) = sqlx::PgPool::connect(admin_url).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                )))
                .execute(&admin)
                .await;
                admin.close().await;
            }
        }
    }
}

pub fn test_config(database_url: &str) -> Config {
    let mut config = Config::defaults();
    config.server.database_url = database_url.to_owned();
    config.auth.jwt_secret = Some(JWT_SECRET.into());
    config.jobs.max_attempts = 3;
    config.jobs.retry_base = Duration::from_millis(200);
    config.jobs.heartbeat = Duration::from_secs(1);
    config.jobs.reconcile_interval = Duration::from_secs(1);
    config.jobs.reconcile_idle = Duration::from_secs(2);
    config.jobs.lease = Duration::from_secs(10);
    // Real-time import is turned on by the tests about it, pointed at their sandbox.
    config.fortnox.ws_enabled = false;
    config
}

pub fn token(role: Role, merchants: Vec<i64>) -> String {
    token_with_exp(role, merchants, chrono::Utc::now().timestamp() + 3600)
}

pub fn token_with_exp(role: Role, merchants: Vec<i64>, exp: i64) -> String {
    let claims = Claims {
        sub: format!("test-{}", role.as_str()),
        exp,
        role,
        merchants,
    };
    JwtKeys::new(&JWT_SECRET.into())
        .issue(&claims)
        .expect("sign token")
}

/// A token for one person (`sub`), where who the caller is matters (e.g. OAuth).
pub fn token_for(sub: &str, role: Role, merchants: Vec<i64>) -> String {
    let claims = Claims {
        sub: sub.to_owned(),
        exp: chrono::Utc::now().timestamp() + 3600,
        role,
        merchants,
    };
    JwtKeys::new(&JWT_SECRET.into())
        .issue(&claims)
        .expect("sign token")
}

pub fn admin_token() -> String {
    token(Role::Admin, vec![])
}

/// The app serving on a random loopback port, with its workers.
pub struct TestApp {
    pub config: Config,
    pub addr: SocketAddr,
    pub app: App,
    pub db: TestDb,
    pub http: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let db = TestDb::new().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut config = test_config(&db.url);
        config.server.public_url = format!("http://{addr}");
        adjust(&mut config);
        let app = App::build(&config, &JWT_SECRET.into())
            .await
            .expect("build app");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.clone().serve(listener, async move {
            let _ = rx.await;
        }));
        TestApp {
            config,
            addr,
            app,
            db,
            http: reqwest::Client::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the app (gracefully) and starts a new one on the same database and address.
    pub async fn restart(self) -> TestApp {
        self.restart_after(|| {}).await
    }

    /// Stops the app, runs `between` while it is down, and starts it again as `restart`.
    pub async fn restart_after(mut self, between: impl FnOnce()) -> TestApp {
        self.halt().await;
        between();
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("rebind the same address");
        let app = App::build(&self.config, &JWT_SECRET.into())
            .await
            .expect("build app");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.clone().serve(listener, async move {
            let _ = rx.await;
        }));
        self.app = app;
        self.shutdown = Some(tx);
        self.task = Some(task);
        self
    }

    async fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(40), task).await;
        }
    }

    pub fn store(&self) -> &Store {
        &self.app.store
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a GraphQL request; returns the HTTP status and the JSON body.
    pub async fn graphql_status(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("send graphql request");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.expect("graphql response is JSON"),
        )
    }

    pub async fn graphql(&self, token: &str, query: &str, variables: Value) -> Value {
        self.graphql_status(Some(token), query, variables).await.1
    }

    pub async fn stop(mut self) {
        self.halt().await;
        self.db.cleanup().await;
    }
}

pub async fn create_merchant(store: &Store, name: &str) -> i64 {
    store
        .create_merchant(name)
        .await
        .expect("create merchant")
        .id
}

/// A merchant whose fixture orders pass the checks: product ART-1 and a rule for DHL.
pub async fn create_ready_merchant(store: &Store, name: &str) -> i64 {
    let id = create_merchant(store, name).await;
    let product = fortnox_fulfilment::store::catalog::NewProduct {
        merchant_id: id,
        sku: "ART-1".into(),
        name: "T-shirt".into(),
        ean: None,
        weight_grams: None,
        width_mm: None,
        height_mm: None,
        depth_mm: None,
        price: None,
    };
    store.create_product(product).await.expect("create product");
    store
        .add_shipping_rule(id, "DHL*", "DHL_EXPRESS_WORLDWIDE")
        .await
        .expect("add rule");
    id
}

/// A Fortnox order as the importer would store it (a test fixture).
pub fn fixture_order(merchant_id: i64, document: &str, quantity: &str) -> NewOrder {
    NewOrder {
        merchant_id,
        fortnox_document_number: document.to_owned(),
        way_of_delivery: Some("DHL".into()),
        delivery_address: Some(
            json!({"name": "Anna Andersson", "street": "Storgatan 1", "zip_code": "111 22", "city": "Stockholm", "country": "Sverige", "country_code": "SE"}),
        ),
        fortnox_snapshot: json!({
            "DocumentNumber": document, "CustomerName": "Anna Andersson", "Address1": "Storgatan 1",
            "ZipCode": "111 22", "City": "Stockholm", "Country": "Sverige", "WayOfDelivery": "DHL",
            "DeliveryState": "delivery", "WarehouseReady": false, "NotCompleted": false,
        }),
        lines: vec![NewOrderLine {
            fortnox_row_id: Some(1),
            article_number: Some("ART-1".into()),
            description: "T-shirt".into(),
            ordered_quantity: quantity.into(),
        }],
    }
}

pub async fn insert_order(store: &Store, merchant_id: i64, document: &str) -> i64 {
    store
        .insert_order(fixture_order(merchant_id, document, "1"))
        .await
        .expect("insert order")
        .expect("new order")
        .id
}

pub async fn order_state(store: &Store, order_id: i64) -> OrderState {
    let order = store
        .order(&TenantScope::All, order_id)
        .await
        .expect("read order")
        .expect("order exists");
    order.state
}

/// Polls until `check` holds or `timeout` passes; returns whether it held.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The order's tasks in apalis' table for one queue: (payload, run_at in unix seconds).
/// Deletes every queued task of the order, as if it had been lost (a crash between a
/// commit and the enqueue, or a task apalis gave up on).
pub async fn delete_order_tasks(store: &Store, order_id: i64) {
    use fortnox_fulfilment::store::Pool;
    let key = format!("order:{order_id}:%");
    match &store.pool {
        Pool::Sqlite(pool) => sqlx::query("DELETE FROM Jobs WHERE idempotency_key LIKE ?")
            .bind(key)
            .execute(pool)
            .await
            .map(|_| ()),
        Pool::Postgres(pool) => {
            sqlx::query("DELETE FROM apalis.jobs WHERE idempotency_key LIKE $1")
                .bind(key)
                .execute(pool)
                .await
                .map(|_| ())
        }
    }
    .expect("delete the order's tasks");
}

pub async fn order_tasks(store: &Store, queue: &str, order_id: i64) -> Vec<(Value, i64)> {
    use fortnox_fulfilment::store::Pool;
    let key = format!("order:{order_id}:%");
    let rows: Vec<(Vec<u8>, i64)> = match &store.pool {
        Pool::Sqlite(pool) => sqlx::query_as("SELECT job, run_at FROM Jobs WHERE job_type = ? AND idempotency_key LIKE ? ORDER BY run_at, ROWID")
            .bind(queue)
            .bind(key)
            .fetch_all(pool)
            .await
            .expect("read jobs"),
        Pool::Postgres(pool) => sqlx::query_as("SELECT job, EXTRACT(EPOCH FROM run_at)::bigint FROM apalis.jobs WHERE job_type = $1 AND idempotency_key LIKE $2 ORDER BY run_at")
            .bind(queue)
            .bind(key)
            .fetch_all(pool)
            .await
            .expect("read jobs"),
    };
    rows.into_iter()
        .map(|(job, run_at)| {
            (
                serde_json::from_slice(&job).expect("job payload is JSON"),
                run_at,
            )
        })
        .collect()
}

/// The first error's `extensions.code`, if the answer has an error.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// `extensions.reason`: the finer kind within a code (e.g. DUPLICATE_SKU within CONFLICT).
pub fn error_reason(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["reason"].as_str()
}

/// The first error's message, or "" if there is none.
pub fn error_message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or("")
}

/// The first error's `extensions.code` is `code` (e.g. a role refused with FORBIDDEN); on
/// failure, shows the whole answer.
#[track_caller]
pub fn assert_code(body: &Value, code: &str) {
    assert_eq!(
        body["errors"][0]["extensions"]["code"].as_str(),
        Some(code),
        "{body}"
    );
}

/// The gate of the tests that measure time against Fortnox's real rate limit (throughput,
/// calls per order within a deadline): all tests of a binary share one process and run
/// in parallel threads, so these take the gate and never overlap one another.
pub async fn timing_gate() -> tokio::sync::MutexGuard<'static, ()> {
    static GATE: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    GATE.get_or_init(|| tokio::sync::Mutex::new(()))
        .lock()
        .await
}

/// The service's log lines of one test, kept in memory to show when it fails. The
/// subscriber is the default of the calling thread only, so it sees what a test on the
/// current-thread runtime runs (the app included), and no other test's lines.
pub struct CapturedLogs {
    lines: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl CapturedLogs {
    pub fn start(filter: &str) -> CapturedLogs {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_ansi(false)
            .with_writer(move || LogSink(sink.clone()))
            .finish();
        CapturedLogs {
            lines,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    /// The last `count` lines.
    pub fn tail(&self, count: usize) -> String {
        let bytes = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(count)..].join("\n")
    }
}

struct LogSink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut lines) = self.0.lock() {
            lines.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
