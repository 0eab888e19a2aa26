//! The HTTP server: GraphQL (POST, GraphiQL on GET, WebSocket subscriptions on the same
//! path), health probes, and the job workers running beside it until shutdown.
mod graphql_http;
mod http;
mod metrics;
mod oauth_callback;
pub mod websocket;
pub use http::HEADER_READ_TIMEOUT;

use std::future::Future;
use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;

use crate::auth::JwtKeys;
use crate::config::Config;
use crate::events::EventFeed;
use crate::fortnox::crypto::TokenCipher;
use crate::fortnox::limiter::{RateLimit, SharedRateLog};
use crate::fortnox::{FortnoxClient, FortnoxConfig};
use crate::graphql::{build_schema, AppSchema};
#[cfg(feature = "test-faults")]
use crate::jobs::faults::FaultPoints;
use crate::jobs::{self, JobContext, JobSettings};
use crate::store::fortnox_rate::PgRateLog;
use crate::store::fortnox_tokens::DbTokenStore;
use crate::store::{Pool, Store};
use crate::webhooks::{WebhookSender, Webhooks};

/// Everything a running service holds; cheap to clone.
#[derive(Clone)]
pub struct App {
    /// The HTTP API's store.
    pub store: Store,
    /// The same database through a pool of its own, for the jobs and the other background
    /// work: a backlog of jobs then never makes an API request wait for a connection.
    pub job_store: Store,
    /// Fans the order event log out to this process's subscribers (runs in `serve`).
    pub feed: EventFeed,
    pub jwt: JwtKeys,
    pub schema: AppSchema,
    pub job_settings: JobSettings,
    /// Test-only fault points of the jobs (feature `test-faults`).
    #[cfg(feature = "test-faults")]
    pub faults: FaultPoints,
    pub fortnox: FortnoxClient,
    pub warehouse: std::sync::Arc<dyn crate::warehouse::Warehouse>,
    pub catalog: crate::jobs::CatalogCache,
    pub import_locks: crate::jobs::ImportLocks,
    /// Request bodies larger than this are refused while they are read.
    pub max_body_bytes: usize,
    /// Where the OAuth callback hands `code` and `state` on to, when set.
    pub connect_return_url: Option<reqwest::Url>,
    /// The bearer token `/metrics` asks for, when set.
    pub metrics_token: Option<SecretString>,
    /// Open subscription connections per token.
    pub websockets: websocket::SocketCounts,
    pub webhooks: Webhooks,
    /// The connection to Fortnox's WebSocket API, when real-time import is on.
    pub realtime: Option<crate::realtime::RealtimeSettings>,
}

/// The OAuth callback Fortnox redirects the merchant to.
pub const OAUTH_CALLBACK_PATH: &str = "/oauth/fortnox/callback";

fn token_cipher(config: &Config) -> anyhow::Result<TokenCipher> {
    match &config.auth.token_encryption_key {
        Some(key) => TokenCipher::from_key_text(key.expose_secret()).map_err(|e| {
            anyhow::anyhow!(
                "TOKEN_ENCRYPTION_KEY is unusable ({e}): give 32 bytes as base64 or 64 hex digits"
            )
        }),
        None => {
            tracing::warn!(
                "TOKEN_ENCRYPTION_KEY is not set: Fortnox tokens and webhook secrets are encrypted with a key generated for this run only, \
                 so merchants must reconnect and webhook secrets be rotated after a restart (and other processes cannot read them). \
                 Set TOKEN_ENCRYPTION_KEY in production."
            );
            Ok(TokenCipher::new(rand::random()))
        }
    }
}

pub fn fortnox_client(config: &Config, store: &Store) -> anyhow::Result<FortnoxClient> {
    fortnox_client_with(config, store, token_cipher(config)?)
}

fn fortnox_client_with(
    config: &Config,
    store: &Store,
    cipher: TokenCipher,
) -> anyhow::Result<FortnoxClient> {
    let redirect_uri = format!(
        "{}{OAUTH_CALLBACK_PATH}",
        config.server.public_url.trim_end_matches('/')
    );
    let mut fortnox = FortnoxConfig::new(
        config.fortnox.api_url.trim_end_matches('/'),
        config.fortnox.auth_url.trim_end_matches('/'),
        config.fortnox.client_id.clone().unwrap_or_default(),
        config.fortnox.client_secret.clone().unwrap_or_default(),
        redirect_uri,
    );
    fortnox.rate_limit = Some(RateLimit::FORTNOX);
    let tokens = DbTokenStore::new(store.pool.clone(), cipher);
    // Several processes may share a PostgreSQL database, so there the merchants' rate-limit
    // logs live in it; SQLite has one process, which keeps them in memory.
    let rate_log: Option<std::sync::Arc<dyn SharedRateLog>> = match &store.pool {
        Pool::Postgres(pool) => Some(std::sync::Arc::new(PgRateLog::new(pool.clone()))),
        Pool::Sqlite(_) => None,
    };
    Ok(FortnoxClient::with_rate_log(
        fortnox,
        std::sync::Arc::new(tokens),
        rate_log,
    )?)
}

impl App {
    /// Connects, migrates, and assembles the service. `jwt_secret` must already be resolved.
    pub async fn build(config: &Config, jwt_secret: &SecretString) -> anyhow::Result<App> {
        let url = &config.server.database_url;
        let (api_connections, job_connections) = crate::store::pool_sizes(url);
        let store = Store::connect_with(url, api_connections).await?;
        store.migrate().await?;
        let job_store = Store::connect_with(url, job_connections).await?;
        let feed = EventFeed::new(&store).await?;
        // One cipher for the Fortnox tokens and the webhook secrets: without
        // TOKEN_ENCRYPTION_KEY, one key made for this run.
        let cipher = token_cipher(config)?;
        // Nearly all Fortnox calls (and their rate-limit statements) are the jobs'.
        let fortnox = fortnox_client_with(config, &job_store, cipher.clone())?;
        let webhooks = Webhooks {
            sender: WebhookSender::new(
                config.webhooks.delivery_timeout,
                config.webhooks.allow_private_urls,
            )
            .map_err(|e| anyhow::anyhow!("cannot build the webhook HTTP client: {e}"))?,
            cipher,
            retry_base: config.webhooks.delivery_retry_base,
            retry_for: config.webhooks.delivery_retry_for,
        };
        if config.webhooks.allow_private_urls {
            tracing::warn!("WEBHOOK_ALLOW_PRIVATE_URLS is on: webhooks may call http and private addresses; never in production");
        }
        let schema = build_schema(
            store.clone(),
            feed.clone(),
            fortnox.clone(),
            webhooks.clone(),
            &config.fortnox,
        );
        let connect_return_url = config
            .fortnox
            .connect_return_url
            .as_deref()
            .map(|url| {
                reqwest::Url::parse(url).map_err(|e| {
                    anyhow::anyhow!("FORTNOX_CONNECT_RETURN_URL `{url}` is not a URL ({e}): give the full address of the frontend page, e.g. https://app.example.com/fortnox/connected")
                })
            })
            .transpose()?;
        let realtime = match (&config.fortnox.client_secret, config.fortnox.ws_enabled) {
            (Some(secret), true) => Some(crate::realtime::RealtimeSettings::new(
                config.fortnox.ws_url.clone(),
                secret.clone(),
            )),
            (None, true) => {
                tracing::warn!("FORTNOX_CLIENT_SECRET is not set, so real-time import from Fortnox's WebSocket API is off; orders are imported by polling");
                None
            }
            (_, false) => None,
        };
        Ok(App {
            realtime,
            connect_return_url,
            fortnox,
            warehouse: std::sync::Arc::new(crate::warehouse::BuiltinWarehouse),
            catalog: crate::jobs::CatalogCache::default(),
            import_locks: crate::jobs::ImportLocks::default(),
            webhooks,
            store,
            job_store,
            feed,
            jwt: JwtKeys::new(jwt_secret),
            schema,
            job_settings: config.job_settings(),
            max_body_bytes: config.server.max_body_bytes,
            metrics_token: config.auth.metrics_token.clone(),
            websockets: Default::default(),
            #[cfg(feature = "test-faults")]
            faults: FaultPoints::default(),
        })
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/graphql",
                get(graphql_http::graphql_get).post(graphql_http::graphql_post),
            )
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics::metrics))
            .route(OAUTH_CALLBACK_PATH, get(oauth_callback::callback))
            .with_state(self.clone())
    }

    pub fn job_context(&self) -> JobContext {
        JobContext {
            store: self.job_store.clone(),
            settings: self.job_settings.clone(),
            #[cfg(feature = "test-faults")]
            faults: self.faults.clone(),
            fortnox: self.fortnox.clone(),
            warehouse: self.warehouse.clone(),
            catalog: self.catalog.clone(),
            import_locks: self.import_locks.clone(),
            webhooks: self.webhooks.clone(),
        }
    }

    /// Serves HTTP and runs the workers until `shutdown` resolves; in-flight requests and
    /// jobs are given time to finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr: SocketAddr = listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        };
        let workers = tokio::spawn(jobs::run_workers(self.job_context(), wait(stop_rx.clone())));
        // The feed serves subscribers: on the API's pool, so a job backlog does not delay it.
        tokio::spawn(self.feed.clone().run(self.store.clone(), stop_rx.clone()));
        tokio::spawn(jobs::fan_out_webhooks(
            self.job_store.clone(),
            self.feed.clone(),
            stop_rx.clone(),
        ));
        if let Some(settings) = &self.realtime {
            tokio::spawn(crate::realtime::run(
                crate::realtime::RealtimeContext {
                    store: self.job_store.clone(),
                    fortnox: self.fortnox.clone(),
                    catalog: self.catalog.clone(),
                    settings: settings.clone(),
                },
                stop_rx.clone(),
            ));
        }
        if let crate::store::Pool::Postgres(pool) = &self.job_store.pool {
            tokio::spawn(crate::events::listen_postgres(
                pool.clone(),
                stop_rx.clone(),
            ));
            tokio::spawn(crate::store::job_wakeups::listen_postgres(
                pool.clone(),
                stop_rx.clone(),
            ));
            let mut events = self.feed.subscribe();
            let changed = move || {
                use tokio::sync::broadcast::error::TryRecvError;
                let mut any = false;
                loop {
                    match events.try_recv() {
                        Ok(_) | Err(TryRecvError::Lagged(_)) => any = true,
                        Err(TryRecvError::Empty | TryRecvError::Closed) => return any,
                    }
                }
            };
            tokio::spawn(crate::store::order_counts::run_folding(
                pool.clone(),
                changed,
                stop_rx.clone(),
            ));
        }
        tracing::info!(%addr, "listening; GraphiQL at http://{addr}/graphql");
        http::serve(listener, self.router(), wait(stop_rx)).await?;
        tracing::info!("HTTP server stopped; waiting for running jobs");
        workers.await??;
        self.store.close().await;
        Ok(())
    }
}

async fn readyz(
    axum::extract::State(app): axum::extract::State<App>,
) -> (axum::http::StatusCode, &'static str) {
    match app.store.ping().await {
        Ok(()) => (axum::http::StatusCode::OK, "ready"),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "database unreachable",
            )
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
