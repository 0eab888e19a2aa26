//! OAuth with Fortnox: the authorize URL, code exchange, and refresh with
//! rotation under a per-merchant single flight.
//!
//! Refresh tokens are single use and every refresh returns a new one, so two
//! refreshes racing for one merchant make one of them fail with
//! `invalid_grant` and disconnect the merchant. Hence: one in-process mutex per
//! merchant (so 20 callers make one request), and inside it the store's
//! [`RefreshLease`] (a row lock on PostgreSQL) so that other processes wait too.
//! The rotated tokens are saved before the new access token is handed out.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use super::error::{FortnoxError, Result};
use super::keyed_locks::KeyedLocks;
use super::metrics::CallCounters;
use super::types::{decode, OAuthErrorBody, TokenResponse};

/// `companyinformation` lets the service see which Fortnox company a merchant
/// connected (`GET /3/companyinformation`).
pub const DEFAULT_SCOPES: &[&str] = &[
    "order",
    "article",
    "invoice",
    "settings",
    "companyinformation",
];

/// Debug prints the client secret as `[REDACTED]` (a `SecretString`).
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// The OAuth host, e.g. `https://apps.fortnox.se` (`/oauth-v1/auth` and
    /// `/oauth-v1/token` are appended).
    pub auth_base: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
}

/// A fresh OAuth `state`: 32 random alphanumerics (190 bits), unguessable.
pub fn new_state() -> String {
    use rand::Rng;
    rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// Tokens of one merchant. `access_expires_at` is computed from `expires_in`
/// when they were received.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    // Tokens are credentials: never in logs or panic messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_expires_at", &self.access_expires_at)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl TokenSet {
    pub fn from_response(r: TokenResponse, now: DateTime<Utc>) -> Self {
        TokenSet {
            access_token: r.access_token,
            refresh_token: r.refresh_token,
            access_expires_at: now + chrono::Duration::seconds(r.expires_in.max(0)),
            scope: r.scope,
        }
    }

    /// Expired, or expiring within `skew` (we refresh a little early rather
    /// than send a request that will come back 401).
    pub fn expires_within(&self, skew: Duration) -> bool {
        let skew = chrono::Duration::from_std(skew).unwrap_or_else(|_| chrono::Duration::zero());
        self.access_expires_at <= Utc::now() + skew
    }
}

/// What the store holds for a merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenState {
    Missing,
    Active(TokenSet),
    NeedsReauthorization { reason: String },
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

impl From<StoreError> for FortnoxError {
    fn from(e: StoreError) -> Self {
        FortnoxError::Store(e.0)
    }
}

/// Token persistence. Implementations encrypt both tokens at rest with
/// [`crate::crypto::TokenCipher`] and must pass
/// `fortnox_sandbox::testkit::check_token_store`.
///
/// `merchant` is the caller's merchant id as text. The lease of
/// `begin_refresh` is what keeps two *processes* from refreshing at once:
/// on PostgreSQL a transaction holding `SELECT ... FOR UPDATE` on the
/// merchant's token row, on SQLite a `BEGIN IMMEDIATE` transaction (SQLite
/// has one writer anyway). The in-process single flight in [`TokenManager`]
/// makes sure only one task per process waits on that lock.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    async fn load(&self, merchant: &str) -> std::result::Result<TokenState, StoreError>;
    /// Stores tokens from a code exchange (a new or renewed connection).
    async fn save(&self, merchant: &str, tokens: &TokenSet) -> std::result::Result<(), StoreError>;
    /// Takes the merchant's refresh lock (PostgreSQL: `SELECT ... FOR UPDATE`
    /// in a transaction) and returns the tokens as read under it. Dropping the
    /// lease without saving releases the lock and changes nothing.
    async fn begin_refresh(
        &self,
        merchant: &str,
    ) -> std::result::Result<Box<dyn RefreshLease>, StoreError>;
}

#[async_trait]
pub trait RefreshLease: Send {
    fn tokens(&self) -> &TokenState;
    /// Persists the rotated tokens and releases the lock (commit).
    async fn save_rotated(
        self: Box<Self>,
        tokens: &TokenSet,
    ) -> std::result::Result<(), StoreError>;
    /// `invalid_grant`: the merchant must reconnect; its jobs pause.
    async fn mark_needs_reauthorization(
        self: Box<Self>,
        reason: &str,
    ) -> std::result::Result<(), StoreError>;
}

/// Talks to the token endpoint. No retries of a refresh that may have reached
/// Fortnox: a lost response means the old refresh token is already spent.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    cfg: OAuthConfig,
    counters: Arc<CallCounters>,
}

impl OAuthClient {
    pub fn new(http: reqwest::Client, cfg: OAuthConfig, counters: Arc<CallCounters>) -> Self {
        OAuthClient {
            http,
            cfg,
            counters,
        }
    }

    /// The URL to send the merchant to. `state` must be single use, bound to
    /// the merchant and expiring; the caller makes it with [`new_state`] and
    /// stores it with the merchant and an expiry.
    pub fn authorize_url(&self, state: &str) -> Result<String> {
        let base = format!("{}/oauth-v1/auth", self.cfg.auth_base.trim_end_matches('/'));
        let scope = self.cfg.scopes.join(" ");
        let url = reqwest::Url::parse_with_params(
            &base,
            &[
                ("client_id", self.cfg.client_id.as_str()),
                ("redirect_uri", self.cfg.redirect_uri.as_str()),
                ("scope", scope.as_str()),
                ("state", state),
                ("access_type", "offline"),
                ("response_type", "code"),
            ],
        )
        .map_err(|e| FortnoxError::Config(format!("auth base {base:?}: {e}")))?;
        Ok(url.to_string())
    }

    pub async fn exchange_code(&self, code: &str) -> Result<TokenSet> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.cfg.redirect_uri.as_str()),
        ])
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet> {
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenSet> {
        let url = format!(
            "{}/oauth-v1/token",
            self.cfg.auth_base.trim_end_matches('/')
        );
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.cfg.client_id,
            self.cfg.client_secret.expose_secret()
        ));
        let started = std::time::Instant::now();
        let sent = self
            .http
            .post(&url)
            .header(reqwest::header::AUTHORIZATION, format!("Basic {basic}"))
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(Duration::from_secs(30))
            .form(form)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                self.counters.record("oauth/token", 0);
                tracing::warn!(target: "fortnox", method = "POST", path = "/oauth-v1/token", error = %e, "fortnox token call failed");
                return Err(FortnoxError::Retryable {
                    status: None,
                    message: e.to_string(),
                });
            }
        };
        let status = resp.status().as_u16();
        self.counters.record("oauth/token", status);
        tracing::info!(target: "fortnox", method = "POST", path = "/oauth-v1/token", status,
            latency_ms = started.elapsed().as_millis() as u64, "fortnox call");
        let body = resp.bytes().await.map_err(|e| FortnoxError::Retryable {
            status: Some(status),
            message: e.to_string(),
        })?;
        if (200..300).contains(&status) {
            let r: TokenResponse = decode(&body)?;
            return Ok(TokenSet::from_response(r, Utc::now()));
        }
        // Fortnox labels these bodies text/html or text/plain: ignore the
        // content type and read the JSON.
        let err: Option<OAuthErrorBody> = decode(&body).ok();
        let (code, desc) = match &err {
            Some(e) => (
                e.error.as_str(),
                e.error_description.clone().unwrap_or_default(),
            ),
            None => ("", String::from_utf8_lossy(&body).into_owned()),
        };
        match (status, code) {
            (_, "invalid_grant") => Err(FortnoxError::NeedsReauthorization {
                reason: format!("invalid_grant: {desc}"),
            }),
            (_, "invalid_client") => Err(FortnoxError::Config(format!(
                "Fortnox rejected the client credentials: {desc}"
            ))),
            (429 | 500..=599, _) => Err(FortnoxError::Retryable {
                status: Some(status),
                message: desc,
            }),
            _ => Err(FortnoxError::Document {
                status,
                code: None,
                message: format!("{code} {desc}"),
            }),
        }
    }
}

/// Hands out access tokens, refreshing at most once at a time per merchant.
pub struct TokenManager {
    oauth: OAuthClient,
    store: Arc<dyn TokenStore>,
    flights: KeyedLocks<String>,
    skew: Duration,
}

impl TokenManager {
    pub fn new(oauth: OAuthClient, store: Arc<dyn TokenStore>) -> Self {
        TokenManager {
            oauth,
            store,
            flights: KeyedLocks::new(),
            skew: Duration::from_secs(30),
        }
    }

    pub fn oauth(&self) -> &OAuthClient {
        &self.oauth
    }

    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.store
    }

    /// A usable access token, refreshed first if it is (about to be) expired.
    pub async fn access_token(&self, merchant: &str) -> Result<String> {
        match self.store.load(merchant).await? {
            TokenState::Active(t) if !t.expires_within(self.skew) => Ok(t.access_token),
            TokenState::Active(_) => self.refresh(merchant, None).await,
            TokenState::Missing => Err(not_connected()),
            TokenState::NeedsReauthorization { reason } => {
                Err(FortnoxError::NeedsReauthorization { reason })
            }
        }
    }

    /// An access token still valid for at least `validity` (refreshed first otherwise):
    /// for a holder that keeps the token for a while, like the WebSocket connection.
    pub async fn access_token_valid_for(
        &self,
        merchant: &str,
        validity: Duration,
    ) -> Result<String> {
        match self.store.load(merchant).await? {
            TokenState::Active(t) if !t.expires_within(validity.max(self.skew)) => {
                Ok(t.access_token)
            }
            TokenState::Active(t) => {
                // `stale` forces the refresh unless another caller refreshed meanwhile.
                let fresh = self.refresh(merchant, Some(&t.access_token)).await?;
                Ok(fresh)
            }
            TokenState::Missing => Err(not_connected()),
            TokenState::NeedsReauthorization { reason } => {
                Err(FortnoxError::NeedsReauthorization { reason })
            }
        }
    }

    /// Fortnox answered 401 to `stale`: refresh unless someone already did.
    pub async fn refresh_after_unauthorized(&self, merchant: &str, stale: &str) -> Result<String> {
        self.refresh(merchant, Some(stale)).await
    }

    async fn refresh(&self, merchant: &str, stale: Option<&str>) -> Result<String> {
        let _one_at_a_time = self.flights.lock(merchant.to_string()).await;
        let lease = self.store.begin_refresh(merchant).await?;
        let current = match lease.tokens() {
            TokenState::Active(t) => t.clone(),
            TokenState::Missing => return Err(not_connected()),
            TokenState::NeedsReauthorization { reason } => {
                return Err(FortnoxError::NeedsReauthorization {
                    reason: reason.clone(),
                })
            }
        };
        // Whoever held the lock before us may have refreshed already.
        let rejected = stale == Some(current.access_token.as_str());
        if !rejected && !current.expires_within(self.skew) {
            return Ok(current.access_token);
        }
        match self.oauth.refresh(&current.refresh_token).await {
            Ok(new) => {
                lease.save_rotated(&new).await?;
                Ok(new.access_token)
            }
            Err(FortnoxError::NeedsReauthorization { reason }) => {
                lease.mark_needs_reauthorization(&reason).await?;
                Err(FortnoxError::NeedsReauthorization { reason })
            }
            Err(e) => Err(e),
        }
    }
}

fn not_connected() -> FortnoxError {
    FortnoxError::NeedsReauthorization {
        reason: "Fortnox is not connected".into(),
    }
}
