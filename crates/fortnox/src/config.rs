//! Configuration of the Fortnox client and the query types of its calls.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{NaiveDate, NaiveDateTime};
use secrecy::SecretString;

use super::limiter::RateLimit;
use super::oauth::DEFAULT_SCOPES;

/// The one retry policy of the service: the Fortnox client's retries and the
/// job re-scheduling both use it. Exponential from `base_delay`, capped at
/// `max_delay`, each delay jittered between half and all of its step
/// (`base_delay * 2^attempt`, capped), built on backon's `ExponentialBuilder`.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// Steps past this change nothing: the cap is reached long before (even 1 ns
/// doubled 64 times exceeds any `max_delay`), and it bounds the work for an
/// attempt number read from stored data.
const MAX_STEPS: u32 = 64;

/// The longest `Retry-After` honoured: a server asking for more gets a minute.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

impl RetryPolicy {
    /// This policy as a backon builder. backon's jitter adds up to the step
    /// itself (`d..2d`), so the builder runs on half the delays: the result
    /// falls between half and all of the step, as the policy says.
    pub fn builder(&self) -> ExponentialBuilder {
        let max = self.max_delay / 2;
        ExponentialBuilder::new()
            .with_factor(2.0)
            .with_min_delay((self.base_delay / 2).min(max))
            .with_max_delay(max)
            .with_jitter()
            .with_max_times(self.max_attempts.saturating_sub(1) as usize)
    }

    /// The delay before retry `attempt` (0: the first retry), at least any
    /// `Retry-After` the server sent (up to a minute). A fresh backoff per call,
    /// stepped to `attempt`: a caller that keeps the attempt number elsewhere
    /// (a job's durable payload) needs no backoff state in memory.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let d = self
            .builder()
            .without_max_times()
            .build()
            .nth(attempt.min(MAX_STEPS) as usize)
            .unwrap_or(self.max_delay);
        match retry_after {
            Some(ra) => d.max(ra.min(MAX_RETRY_AFTER)),
            None => d,
        }
    }
}

/// Debug prints the client secret as `[REDACTED]` (a `SecretString`).
#[derive(Debug, Clone)]
pub struct FortnoxConfig {
    /// e.g. `https://api.fortnox.se` (paths `/3/...` are appended).
    pub api_base: String,
    /// The OAuth host, e.g. `https://apps.fortnox.se` (`/oauth-v1/...` is appended).
    pub auth_base: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub request_timeout: Duration,
    /// `None` disables the client-side limiter.
    pub rate_limit: Option<RateLimit>,
    pub retry: RetryPolicy,
    /// Page size for list calls (Fortnox allows up to 500).
    pub page_size: u32,
}

impl FortnoxConfig {
    pub fn new(
        api_base: impl Into<String>,
        auth_base: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
        redirect_uri: impl Into<String>,
    ) -> Self {
        FortnoxConfig {
            api_base: api_base.into(),
            auth_base: auth_base.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uri: redirect_uri.into(),
            scopes: DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
            request_timeout: Duration::from_secs(30),
            rate_limit: Some(RateLimit::FORTNOX),
            retry: RetryPolicy::default(),
            page_size: 500,
        }
    }
}

/// Filters of `GET /3/orders`. Fortnox takes one `filter` at a time.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    /// Sent with minute precision. Fortnox reads it as its own local time
    /// (the sandbox: UTC), so poll from a little before the last poll: the
    /// overlap is harmless because an order is imported once per merchant and
    /// `DocumentNumber`.
    pub last_modified: Option<NaiveDateTime>,
    pub from_date: Option<NaiveDate>,
    pub filter: Option<OrderFilter>,
    pub not_completed: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderFilter {
    Cancelled,
    Expired,
    InvoiceCreated,
    InvoiceNotCreated,
}

impl OrderFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderFilter::Cancelled => "cancelled",
            OrderFilter::Expired => "expired",
            OrderFilter::InvoiceCreated => "invoicecreated",
            OrderFilter::InvoiceNotCreated => "invoicenotcreated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// backon computes in f32 seconds: allow a microsecond of rounding.
    const ROUNDING: Duration = Duration::from_micros(1);

    #[test]
    fn debug_never_prints_the_client_secret() {
        let cfg = FortnoxConfig::new("a", "b", "id", "very-secret", "r");
        assert!(!format!("{cfg:?}").contains("very-secret"));
    }

    #[test]
    fn backoff_grows_is_capped_jittered_and_honours_retry_after() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for attempt in 0..10 {
            let d = p.delay(attempt, None);
            let full = (Duration::from_millis(100) * (1u32 << attempt.min(16)))
                .min(Duration::from_millis(1000));
            assert!(
                d + ROUNDING >= full / 2 && d <= full + ROUNDING,
                "attempt {attempt}: {d:?}"
            );
        }
        assert!(p.delay(0, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
        assert!(
            p.delay(0, Some(Duration::from_secs(3600))) <= Duration::from_secs(60),
            "capped"
        );
    }
}
