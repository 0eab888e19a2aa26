//! The real binary (`fortnox-fulfilment serve`) as a child process, for tests about
//! crashes, signals and restarts: the Fortnox sandbox runs in the test process with its
//! real rate limit, and one merchant of the test database is connected to it, its tokens
//! stored the way the binary stores them (encrypted under `TOKEN_KEY` in
//! `fortnox_integrations`), so that every process started on that database calls the
//! sandbox for that merchant.
//!
//! ```ignore
//! let h = ProcessHarness::new().await;
//! h.create_done_orders(10);
//! let mut server = h.start_server(&[("IMPORT_INTERVAL_SECS", "2")]).await;
//! server.graphql(&h.merchant_token(), "{ orders(first: 5) { edges { node { id } } } }", json!({})).await;
//! server.sigkill();
//! h.stop().await;
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use fortnox_fulfilment::auth::Role;
use fortnox_fulfilment::fortnox::crypto::TokenCipher;
use fortnox_fulfilment::fortnox::types::WayOfDelivery;
use fortnox_fulfilment::fortnox::{TokenSet, TokenStore};
use fortnox_fulfilment::store::fortnox_tokens::DbTokenStore;
use fortnox_fulfilment::store::orders::{OrderFilter, TenantScope};
use fortnox_fulfilment::store::Store;
use fortnox_sandbox::{
    CallRecord, Sandbox, SandboxConfig, SandboxHandle, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
};
use serde_json::{json, Value};

use crate::common::{create_ready_merchant, TestDb, JWT_SECRET};

/// The sandbox tenant the merchant is connected to.
pub const TENANT: &str = "proc-shop";
/// `TOKEN_ENCRYPTION_KEY` of every process the harness starts.
pub const TOKEN_KEY: &str = "70726f636573732d746573742d6b65792070726f636573732d746573742d6b21";

/// A test database, the sandbox, and one merchant connected to the sandbox's `TENANT`;
/// starts server processes on that database. Every process's stderr is appended to one
/// log file.
pub struct ProcessHarness {
    pub db: TestDb,
    /// The test's own connection to the database, to look at what the processes did.
    pub store: Store,
    pub sandbox: Sandbox,
    /// The merchant's id in the database.
    pub merchant: i64,
    /// Where every started process's stderr goes.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ProcessHarness {
    /// The sandbox with Fortnox's real rate limit (25 per 5 s per access token), tenant
    /// `TENANT` with article ART-1 and way of delivery DHL, and a merchant whose orders
    /// of ART-1 by DHL pass the checks (product ART-1, rule `DHL*`), connected to it.
    pub async fn new() -> ProcessHarness {
        let sandbox = Sandbox::start(SandboxConfig::default())
            .await
            .expect("start the sandbox");
        let sb = sandbox.handle();
        sb.create_tenant(TENANT, None);
        sb.set_authorize_tenant(TENANT);
        sb.add_articles(
            TENANT,
            vec![fortnox_sandbox::testkit::article("ART-1", true, 100_000)],
        );
        sb.add_ways_of_delivery(
            TENANT,
            vec![WayOfDelivery {
                url: None,
                code: "DHL".into(),
                description: Some("DHL Express".into()),
                description_english: None,
            }],
        );

        let db = TestDb::new().await;
        let store = Store::connect(&db.url)
            .await
            .expect("connect to the test db");
        store.migrate().await.expect("migrate the test db");
        let merchant = create_ready_merchant(&store, "Process Shop AB").await;
        // What the OAuth callback does after the code exchange, without the browser step.
        let cipher = TokenCipher::from_key_text(TOKEN_KEY).expect("TOKEN_KEY is a key");
        DbTokenStore::new(store.pool.clone(), cipher)
            .save(
                &merchant.to_string(),
                &TokenSet::from_response(sb.issue_tokens(TENANT), chrono::Utc::now()),
            )
            .await
            .expect("store the merchant's Fortnox tokens");

        let dir = tempfile::tempdir().expect("temp dir for the server log");
        let log = dir.path().join("server.log");
        ProcessHarness {
            db,
            store,
            sandbox,
            merchant,
            log,
            _dir: dir,
        }
    }

    pub fn sb(&self) -> SandboxHandle {
        self.sandbox.handle()
    }

    /// A JWT (role merchant) for the harness's merchant, accepted by the processes.
    pub fn merchant_token(&self) -> String {
        crate::common::token(Role::Merchant, vec![self.merchant])
    }

    /// The Fortnox settings a process needs to reach the sandbox for the merchant.
    pub fn fortnox_env(&self) -> Vec<(String, String)> {
        vec![
            ("FORTNOX_API_URL".into(), self.sandbox.api_base()),
            ("FORTNOX_AUTH_URL".into(), self.sandbox.auth_base()),
            ("FORTNOX_CLIENT_ID".into(), DEFAULT_CLIENT_ID.into()),
            ("FORTNOX_CLIENT_SECRET".into(), DEFAULT_CLIENT_SECRET.into()),
            ("TOKEN_ENCRYPTION_KEY".into(), TOKEN_KEY.into()),
            // Real-time import is turned on by the tests about it (`realtime_env`).
            ("FORTNOX_WS_ENABLED".into(), "false".into()),
        ]
    }

    /// Real-time import from the sandbox's WebSocket API, for `start_server`'s extra env.
    pub fn realtime_env(&self) -> [(&'static str, String); 2] {
        [
            ("FORTNOX_WS_ENABLED", "true".into()),
            ("FORTNOX_WS_URL", self.sandbox.ws_url()),
        ]
    }

    /// Starts `fortnox-fulfilment serve` on the harness's database and the sandbox, with
    /// `extra_env` on top of the defaults (later values win), and waits until it answers.
    pub async fn start_server(&self, extra_env: &[(&str, &str)]) -> ServerProcess {
        let mut env = self.fortnox_env();
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut server = ServerProcess::spawn(&self.db.url, &self.log, &env);
        server.wait_ready(Duration::from_secs(60)).await;
        server
    }

    /// Orders of one ART-1 by DHL, marked done in the sandbox; their document numbers.
    pub fn create_done_orders(&self, count: usize) -> Vec<String> {
        let sb = self.sb();
        (0..count)
            .map(|_| {
                sb.create_order(
                    TENANT,
                    json!({
                        "CustomerNumber": "1", "CustomerName": "Anna Andersson",
                        "Address1": "Storgatan 1", "ZipCode": "111 22", "City": "Stockholm",
                        "Country": "Sverige", "WayOfDelivery": "DHL",
                        "OrderRows": [{"ArticleNumber": "ART-1", "Description": "T-shirt",
                            "OrderedQuantity": "1", "Price": 100, "VAT": 25}],
                    }),
                )
                .expect("create an order in the sandbox")
                .document_number
                .as_str()
                .to_owned()
            })
            .collect()
    }

    /// The sandbox's log of the merchant's API calls (`/3/...`, not token requests).
    pub fn api_calls(&self) -> Vec<CallRecord> {
        self.sb()
            .calls()
            .into_iter()
            .filter(|c| c.tenant.as_deref() == Some(TENANT) && !c.path.contains("oauth"))
            .collect()
    }

    /// How many of the merchant's orders are stored, in any state.
    pub async fn stored_orders(&self) -> usize {
        let filter = OrderFilter {
            merchant_id: Some(self.merchant),
            states: vec![],
        };
        self.store
            .orders_page(&TenantScope::All, &filter, None, 100_000)
            .await
            .expect("count the merchant's orders")
            .len()
    }

    /// The last `lines` lines of every process's log, for assertion messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Stop every `ServerProcess` first (or drop it).
    pub async fn stop(self) {
        self.store.close().await;
        self.sandbox.shutdown().await;
        self.db.cleanup().await;
    }
}

/// The whole log file (empty when it cannot be read).
pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The last `lines` lines of a log file.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = read_log(path);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One running `fortnox-fulfilment serve`. Dropping it kills the process (SIGKILL).
pub struct ServerProcess {
    pub pid: u32,
    /// Where it serves HTTP (`BIND_ADDR`).
    pub addr: SocketAddr,
    /// Its stderr is appended here.
    pub log: PathBuf,
    child: Child,
    http: reqwest::Client,
}

impl ServerProcess {
    /// Spawns the binary (`TEST_SERVER_BINARY` if set) on `database_url` and a free
    /// loopback port, with the test JWT secret and fast job settings (as
    /// tests/process/crash_recovery.rs), then `env` on top (later values win). Does not
    /// wait for it: see `wait_ready`.
    pub fn spawn(database_url: &str, log: &Path, env: &[(&str, &str)]) -> ServerProcess {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the server log");
        // Another build may be tried (e.g. one without a fix, to see a test fail).
        let binary = std::env::var("TEST_SERVER_BINARY")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_fortnox-fulfilment").to_owned());
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("BIND_ADDR", addr.to_string())
            .env("PUBLIC_URL", format!("http://{addr}"))
            .env("JWT_SECRET", JWT_SECRET)
            .env("JOB_HEARTBEAT_SECS", "1")
            .env("JOB_RETRY_BASE_MS", "200")
            .env("JOB_LEASE_SECS", "3")
            .env("RECONCILE_INTERVAL_SECS", "2")
            .env("RECONCILE_IDLE_SECS", "5")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start the binary");
        ServerProcess {
            pid: child.id(),
            addr,
            log: log.to_owned(),
            child,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Waits until `/healthz` answers; panics (with the log) if the process exits or does
    /// not answer within `timeout`.
    pub async fn wait_ready(&mut self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                panic!(
                    "the server exited while starting ({status}); log:\n{}",
                    self.log_tail(60)
                );
            }
            let answered = self
                .http
                .get(self.url("/healthz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if answered {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server did not answer /healthz within {timeout:?}; log:\n{}",
                self.log_tail(60)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last `lines` lines of the log file, for assertion messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// POSTs a GraphQL request; the JSON body (whatever the HTTP status).
    pub async fn graphql(&self, token: &str, query: &str, variables: Value) -> Value {
        self.http
            .post(self.url("/graphql"))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("send the GraphQL request")
            .json()
            .await
            .expect("the GraphQL answer is JSON")
    }

    /// The exit status, once it has exited (reaps it).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("poll the server process")
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid);
    }

    /// A crash: SIGKILL, then reaps the process.
    pub fn sigkill(&mut self) {
        if self.exit_status().is_none() {
            // Child::kill sends SIGKILL on Unix.
            self.child.kill().expect("SIGKILL the server");
        }
        self.child.wait().expect("reap the server");
    }

    /// A graceful stop: SIGTERM, then waits up to `timeout` for the process to exit.
    /// `None` if it is still running then (it is left running: `sigkill` it if need be).
    pub async fn sigterm_and_wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exit_status() {
            return Some(status);
        }
        self.signal("TERM");
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Freezes the process (SIGSTOP): it holds its connections and leases but runs nothing.
    pub fn sigstop(&self) {
        self.signal("STOP");
    }

    pub fn sigcont(&self) {
        self.signal("CONT");
    }

    /// Whether the process is stopped (state `T` in /proc/<pid>/stat).
    pub fn is_stopped(&self) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) else {
            return false;
        };
        // "pid (comm) state ...": comm may hold spaces and parentheses, so the state is
        // the first field after the last ')'.
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            == Some("T")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // A stopped process dies of SIGKILL too.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
