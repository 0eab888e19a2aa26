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

mod api;
mod control;
pub mod demo;
pub mod faults;
mod handle;
mod oauth;
pub mod state;
pub mod testkit;
mod token_store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use tokio::time::Instant;

pub use faults::FaultSpec;
pub use handle::{BackOrder, Counters, SandboxHandle};
pub use oauth::{approve, Approval};
pub use state::{CallRecord, CompanySettings, SandboxError, TenantSettings};
pub use token_store::InMemoryTokenStore;

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
    /// a panic in plain data code; the data is still usable.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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

    pub async fn shutdown(mut self) {
        // Graceful shutdown waits for answers in flight: do not make it wait
        // out an injected latency.
        self.handle.shared.stop_holding();
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
         (API {base}/3, OAuth {base}/oauth-v1, control {base}/sandbox)",
        addr = sandbox.addr(),
        base = sandbox.api_base(),
    );
    tokio::signal::ctrl_c().await?;
    sandbox.shutdown().await;
    Ok(())
}
