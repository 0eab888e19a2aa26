//! Real-time import: one connection to Fortnox's WebSocket API for the whole deployment,
//! carrying every connected merchant as a tenant, subscribed to `orders` and `articles`.
//!
//! - Exactly one process holds the connection ([`leader`]); the others stand by and take
//!   over within seconds when it dies or freezes.
//! - Each event is recorded with its effect in one transaction (`store::realtime`): the
//!   offset marked seen (delivery is at-least-once), the read of the named order queued
//!   (unless one is already waiting), and the topic's offset moved on. A restart resumes
//!   from the stored offsets and so replays what happened while it was down.
//! - Polling stays as the safety net (`jobs::reconciler::schedule_imports`): stretched while
//!   a merchant is live here, at its normal interval otherwise.
//!
//! docs/realtime.md has the protocol, the failure cases and the figures.
mod leader;
mod session;

use std::time::Duration;

use secrecy::SecretString;

use crate::fortnox::FortnoxClient;
use crate::jobs::CatalogCache;
use crate::store::Store;

/// Wakes this process's connection to bring its tenants up to date at once (a merchant
/// connected or disconnected here); other processes' changes are seen by the periodic sync.
pub fn tenants_changed() {
    TENANTS_CHANGED.notify_one();
}

static TENANTS_CHANGED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// How the service uses the WebSocket API.
#[derive(Clone, Debug)]
pub struct RealtimeSettings {
    pub url: String,
    /// The app's client secret: add-tenants-v1 sends it beside the merchants' tokens.
    pub client_secret: SecretString,
    /// How long each command may wait for its reply, and the connection for its handshake.
    pub reply_timeout: Duration,
    /// A WebSocket ping this often; the connection is given up when nothing (not even the
    /// pong) arrives for `silence_limit`.
    pub ping_interval: Duration,
    pub silence_limit: Duration,
    /// How often the tenants are brought up to date: merchants connected or disconnected,
    /// tokens refreshed (re-added, so that a service that drops a tenant when its token
    /// expires keeps sending).
    pub tenant_sync_interval: Duration,
    /// A merchant's token is refreshed before it is added when it expires within this.
    pub token_validity: Duration,
    /// How often the holder says it is alive; the others take over after
    /// `store::realtime::HEARTBEAT_STALE` without it.
    pub heartbeat_interval: Duration,
}

impl RealtimeSettings {
    pub fn new(url: String, client_secret: SecretString) -> RealtimeSettings {
        RealtimeSettings {
            url,
            client_secret,
            reply_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            silence_limit: Duration::from_secs(90),
            tenant_sync_interval: Duration::from_secs(10),
            token_validity: Duration::from_secs(5 * 60),
            heartbeat_interval: Duration::from_secs(5),
        }
    }
}

/// What the connection needs from the rest of the service.
#[derive(Clone)]
pub struct RealtimeContext {
    pub store: Store,
    pub fortnox: FortnoxClient,
    pub catalog: CatalogCache,
    pub settings: RealtimeSettings,
}

/// Holds the connection whenever this process leads, until `shutdown`; reconnects with
/// backoff (1 s doubling to 60 s, jittered) after every failure.
pub async fn run(ctx: RealtimeContext, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let holder = crate::store::instance_id().to_owned();
    let mut failures = 0u32;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let leadership = tokio::select! {
            lead = leader::acquire(&ctx.store, &holder) => lead,
            _ = shutdown.changed() => return,
        };
        let mut leadership = match leadership {
            Ok(leadership) => leadership,
            Err(error) => {
                tracing::warn!(%error, "cannot take part in the choice of the Fortnox WebSocket holder; trying again");
                if wait(&mut shutdown, Duration::from_secs(5)).await {
                    return;
                }
                continue;
            }
        };
        let outcome =
            session::Session::run(&ctx, &holder, &mut leadership, &mut shutdown, &mut failures)
                .await;
        // No heartbeat after this: a late one would claim the row for a process that no
        // longer holds the connection.
        leadership.stop_heartbeat();
        if let Err(error) = ctx.store.ws_disconnected(&holder).await {
            tracing::warn!(%error, "could not record that the Fortnox WebSocket connection is down");
        }
        leadership.release().await;
        match outcome {
            session::Ended::Shutdown => return,
            session::Ended::LostLead => {
                tracing::warn!("no longer the Fortnox WebSocket holder; standing by");
            }
            session::Ended::Failed(error) => {
                let delay = crate::domain::realtime::reconnect_delay(
                    failures,
                    rand::Rng::gen_range(&mut rand::thread_rng(), 0.5..=1.0),
                );
                failures = failures.saturating_add(1);
                tracing::warn!(%error, ?delay, "Fortnox WebSocket connection lost; polling covers the merchants until it is back");
                if wait(&mut shutdown, delay).await {
                    return;
                }
            }
        }
    }
}

/// Sleeps `delay`; true when shutdown came first.
async fn wait(shutdown: &mut tokio::sync::watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = shutdown.changed() => true,
    }
}
