//! A local Fortnox for tests and the demo: OAuth, `/3/orders`, `/3/articles`,
//! `/3/wayofdeliveries`, `/3/invoices`, `/3/companyinformation`, the rate limit
//! and the warehouse rules of docs/fortnox.md, plus control endpoints under
//! `/sandbox` (never under `/3`) to seed data, inject faults and read the call
//! log. Each tenant is one Fortnox company, with its own company information.
//!
//! In-process: `Sandbox::start(SandboxConfig::default()).await?` binds
//! `127.0.0.1:0`; `sandbox.handle()` does everything the control endpoints do.
//! Beside it, for tests: [`InMemoryTokenStore`] and [`testkit`], the contract
//! every token store must pass.
//!
//! # The Topics WebSocket
//!
//! `GET /topics-v1` (at the root, outside `/3`'s token check, rate limit and
//! faults; [`Sandbox::ws_url`]) serves Fortnox's real-time API. Frames are
//! JSON text; each command gets exactly one response:
//!
//! - `{"command":"add-tenants-v1","clientSecret":..,"accessTokens":[..]}`:
//!   each token (with or without `Bearer `) must be one the sandbox issued,
//!   unexpired and unrevoked, and the secret the app's; a wrong secret fails
//!   them all. `{"result":"ok","tenantIds":{token as sent: id}}`, or
//!   `"error"` with `invalidTokens` (as sent) and still the `tenantIds` added.
//!   Adding a tenant again is idempotent. The id is the tenant's
//!   `DatabaseNumber` ([`SandboxHandle::tenant_id`]).
//! - `remove-tenants-v1` (`"tenants":[ids]`, unknown ids fine),
//!   `list-tenants-v1` (`"tenantIds":[ids]`).
//! - `add-topics-v1` (`"topics":[{"topic":"orders","offset":".."}]`): unknown
//!   topics and offsets this sandbox did not issue come back in
//!   `invalidTopics`; the others are added. With an offset the topic replays
//!   from that event, inclusive; without, only new events come.
//! - `subscribe-v1`: events flow from here on. Commands may come in any
//!   order, also after subscribing; they take effect at once.
//!
//! Bad JSON or an unknown command gets `{"response":<command|null>,
//! "result":"error"}`; a binary frame closes with 1003. Pings are answered; a
//! connection idle [`SandboxConfig::ws_idle_timeout`] in both directions is
//! closed (1000), and shutdown closes every connection with 1001.
//!
//! Events (`{"topic","offset","type","tenantId","entityId","timestamp"}`)
//! are logged per topic for the sandbox's life, whoever made the change
//! (REST, control endpoint or handle): `orders` (`order-created-v1`,
//! `order-updated-v1` for any order change incl. marking done, warehouse
//! ready and invoicing, `order-cancelled-v1`; a back order is
//! `order-created-v1`), `invoices` (`invoice-created-v1`,
//! `invoice-updated-v1` for a credited invoice), `articles`
//! (`article-created/updated/deleted-v1`). A token receives a topic only with
//! its scope (`order`, `article`, `invoice`; see
//! [`SandboxHandle::issue_tokens_with_scope`]). Offsets are the topic's
//! sequence number in base 62, 8 digits wide.
//!
//! Test switches, on the handle and under `/sandbox/ws`: drop every
//! connection without a close frame, mute a tenant (no events at all), send
//! every event twice, hold `orders` back 300 ms behind other topics, and drop
//! tenants from connections when their token expires. Readings: the open
//! connections, a topic's log and the commands received.

mod api;
mod control;
pub mod demo;
pub mod faults;
mod handle;
mod oauth;
pub mod state;
pub mod testkit;
mod token_store;
mod ws;

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use tokio::time::Instant;

pub use faults::FaultSpec;
pub use handle::{BackOrder, Counters, SandboxHandle};
pub use oauth::{approve, Approval};
pub use state::{CallRecord, CompanySettings, SandboxError, TenantSettings};
pub use token_store::InMemoryTokenStore;
pub use ws::{WsConnectionInfo, WsCounters, REORDER_DELAY};

use fortnox::limiter::RateLimit;
use state::{CallRecord as Record, State};

pub const DEFAULT_CLIENT_ID: &str = "sandbox-client";
pub const DEFAULT_CLIENT_SECRET: &str = "sandbox-secret";

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub bind: SocketAddr,
    pub client_id: String,
    pub client_secret: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub code_ttl: Duration,
    /// Fortnox's 25 per 5 s sliding window per access token (`margin` unused).
    /// `None` turns the limit off.
    pub rate_limit: Option<RateLimit>,
    /// The Topics WebSocket closes a connection on which nothing was sent
    /// or received for this long.
    pub ws_idle_timeout: Duration,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: DEFAULT_CLIENT_SECRET.into(),
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(45 * 24 * 3600),
            code_ttl: Duration::from_secs(600),
            rate_limit: Some(RateLimit::FORTNOX),
            ws_idle_timeout: Duration::from_secs(120),
        }
    }
}

pub(crate) struct Shared {
    pub cfg: SandboxConfig,
    pub base_url: String,
    state: Mutex<State>,
    pub(crate) started: Instant,
    /// Bumped to release every answer held back by injected latency (faults
    /// cleared, sandbox stopping).
    pub release: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    /// No lock is held across an await, so a poisoned lock can only come from
    /// a panic in plain data code; the data is still usable. Releasing the
    /// lock emits the WebSocket events of the changes made under it.
    pub fn lock(&self) -> StateGuard<'_> {
        StateGuard(self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Lets every held-back answer go now.
    pub fn release_held(&self) {
        self.release
            .send_modify(|generation| *generation = generation.saturating_add(1));
    }

    /// Lets every held-back answer go, and holds none from now on.
    fn stop_holding(&self) {
        self.release.send_replace(faults::STOPPED);
    }

    pub fn record(
        &self,
        method: &str,
        path: &str,
        query: &str,
        status: u16,
        tenant: Option<String>,
        note: Option<String>,
    ) {
        let at_ms = self.started.elapsed().as_millis() as u64;
        let mut st = self.lock();
        let seq = st.calls.len() as u64 + 1;
        st.calls.push(Record {
            seq,
            method: method.into(),
            path: path.into(),
            query: query.into(),
            resource: faults::resource(path),
            status,
            tenant,
            note,
            at_ms,
        });
    }
}

/// The state lock. On release, the changes made under it become WebSocket
/// events, so every way of changing data emits, after the change.
pub(crate) struct StateGuard<'a>(MutexGuard<'a, State>);

impl Deref for StateGuard<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}

impl DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.0
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.0.flush_events();
        }
    }
}

/// How long `shutdown` waits for WebSocket connections to close.
const WS_SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

/// A running sandbox. Dropping it does not stop the server; call `shutdown`.
pub struct Sandbox {
    addr: SocketAddr,
    handle: SandboxHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sandbox {
    pub async fn start(cfg: SandboxConfig) -> anyhow::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(cfg.bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cfg,
            base_url: format!("http://{addr}"),
            state: Mutex::new(State::default()),
            started: Instant::now(),
            release: tokio::sync::watch::Sender::new(0),
        });
        let app = router(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "sandbox server stopped");
            }
        });
        Ok(Sandbox {
            addr,
            handle: SandboxHandle { shared },
            stop: Some(stop),
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn handle(&self) -> SandboxHandle {
        self.handle.clone()
    }

    /// `http://127.0.0.1:PORT`: the client's API base.
    pub fn api_base(&self) -> String {
        self.handle.shared.base_url.clone()
    }

    /// `http://127.0.0.1:PORT`: the client's auth base (the same host; the
    /// sandbox serves `/oauth-v1/...` beside `/3/...`).
    pub fn auth_base(&self) -> String {
        self.handle.shared.base_url.clone()
    }

    /// `ws://127.0.0.1:PORT/topics-v1`: the Topics WebSocket.
    pub fn ws_url(&self) -> String {
        self.handle.ws_url()
    }

    /// Stops the server. WebSocket connections are closed with 1001 first
    /// (at most a few seconds, whatever the clients do).
    pub async fn shutdown(mut self) {
        // Graceful shutdown waits for answers in flight: do not make it wait
        // out an injected latency.
        self.handle.shared.stop_holding();
        self.handle.shared.lock().ws.stop_all(ws::Stop::Shutdown);
        let deadline = Instant::now() + WS_SHUTDOWN_WAIT;
        while self.handle.shared.lock().ws.connection_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let api = api::routes().layer(axum::middleware::from_fn_with_state(
        shared.clone(),
        faults::api_gate,
    ));
    Router::new()
        .route("/topics-v1", axum::routing::get(ws::upgrade))
        .nest("/3", api)
        .nest("/oauth-v1", oauth::routes())
        .nest("/sandbox", control::routes())
        .with_state(shared)
}

/// `fortnox-fulfilment sandbox --bind ADDR [--seed demo]`: runs until Ctrl-C.
pub async fn run_standalone(
    bind: SocketAddr,
    client_id: String,
    client_secret: String,
    seed_demo: bool,
) -> anyhow::Result<()> {
    let cfg = SandboxConfig {
        bind,
        client_id,
        client_secret,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(cfg).await?;
    if seed_demo {
        demo::seed(&sandbox.handle())?;
    }
    // Printed, not only traced: this is what a person starting the demo reads.
    println!(
        "Fortnox sandbox on {addr}: FORTNOX_API_URL={base} FORTNOX_AUTH_URL={base} \
         FORTNOX_WS_URL={ws} (API {base}/3, OAuth {base}/oauth-v1, WebSocket {ws}, \
         control {base}/sandbox)",
        addr = sandbox.addr(),
        base = sandbox.api_base(),
        ws = sandbox.ws_url(),
    );
    tokio::signal::ctrl_c().await?;
    sandbox.shutdown().await;
    Ok(())
}
