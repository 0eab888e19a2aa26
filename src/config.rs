//! Command line and configuration: every setting is a flag with an environment fallback.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

use crate::auth::Role;
use crate::jobs::JobSettings;

#[derive(Parser, Debug)]
#[command(
    name = "fortnox-fulfilment",
    version,
    about = "Connects merchants' Fortnox accounts to a fulfilment warehouse"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the API server and the job workers (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL), as committed in schema.graphql.
    PrintSchema {
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Print a JWT signed with JWT_SECRET, for development and for onboarding a partner tool.
    Token {
        #[arg(long, value_enum)]
        role: Role,
        /// A merchant id the token may see (repeat for several).
        #[arg(long = "merchant")]
        merchants: Vec<i64>,
        /// Lifetime, e.g. `1h`, `30d`.
        #[arg(long, default_value = "24h")]
        ttl: humantime::Duration,
        /// Subject recorded as the actor of the token's changes.
        #[arg(long, default_value = "cli")]
        sub: String,
    },
    /// Create a development merchant with a few orders to try the API on.
    Seed,
    /// The whole flow on this machine: the service on SQLite with an in-process Fortnox
    /// sandbox, a connected demo merchant and a simulated warehouse.
    #[cfg(feature = "sandbox")]
    Demo,
    /// Run the Fortnox sandbox alone: a local stand-in for Fortnox's API and OAuth.
    #[cfg(feature = "sandbox")]
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:8090")]
        bind: SocketAddr,
        /// `demo` seeds a realistic tenant (articles, ways of delivery, orders).
        #[arg(long)]
        seed: Option<SandboxSeed>,
        #[arg(long, default_value = "sandbox-client")]
        client_id: String,
        #[arg(long, default_value = "sandbox-secret")]
        client_secret: String,
    },
}

#[cfg(feature = "sandbox")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxSeed {
    Demo,
}

/// Every setting, grouped by the module that reads it. Each is a flag with an environment
/// variable as fallback, named as in README's Configuration table.
#[derive(Args, Debug, Clone)]
pub struct Config {
    #[command(flatten)]
    pub server: ServerConfig,
    #[command(flatten)]
    pub auth: AuthConfig,
    #[command(flatten)]
    pub fortnox: FortnoxSettings,
    #[command(flatten)]
    pub jobs: JobsConfig,
    #[command(flatten)]
    pub webhooks: WebhookConfig,
}

/// Webhook deliveries.
#[derive(Args, Debug, Clone)]
pub struct WebhookConfig {
    /// Development and tests only: accept http URLs and loopback or private addresses.
    /// Off in production, where it would let anyone who may register a webhook make the
    /// service call into its own network.
    #[arg(long = "webhook-allow-private-urls", env = "WEBHOOK_ALLOW_PRIVATE_URLS",
        default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub allow_private_urls: bool,
    /// Time limit of one delivery attempt, in seconds.
    #[arg(long = "webhook-timeout-secs", env = "WEBHOOK_TIMEOUT_SECS", default_value = "10",
        value_parser = whole(Duration::from_secs), global = true)]
    pub delivery_timeout: Duration,
    /// The first retry's delay in milliseconds; it doubles per attempt up to an hour, less
    /// a random part of up to half.
    #[arg(long = "webhook-retry-base-ms", env = "WEBHOOK_RETRY_BASE_MS", default_value = "5000",
        value_parser = whole(Duration::from_millis), global = true)]
    pub delivery_retry_base: Duration,
    /// How long a failed delivery is retried, and how long an endpoint may fail every
    /// attempt before it is disabled, in seconds.
    #[arg(long = "webhook-retry-for-secs", env = "WEBHOOK_RETRY_FOR_SECS", default_value = "86400",
        value_parser = whole(Duration::from_secs), global = true)]
    pub delivery_retry_for: Duration,
}

/// The database and the HTTP server.
#[derive(Args, Debug, Clone)]
pub struct ServerConfig {
    /// `sqlite://FILE` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "sqlite://fortnox-fulfilment.db",
        global = true
    )]
    pub database_url: String,
    #[arg(
        long = "bind-addr",
        env = "BIND_ADDR",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub bind_addr: SocketAddr,
    /// Where users reach this service; used for the OAuth callback URL.
    #[arg(
        long = "public-url",
        env = "PUBLIC_URL",
        default_value = "http://localhost:8080",
        global = true
    )]
    pub public_url: String,
    /// The largest request body accepted, in bytes; a larger one is refused with 413
    /// while it is read (a GraphQL request is a few kilobytes).
    #[arg(
        long = "max-body-bytes",
        env = "MAX_BODY_BYTES",
        default_value_t = 1024 * 1024,
        global = true
    )]
    pub max_body_bytes: usize,
}

/// API tokens and the encryption of Fortnox tokens at rest.
#[derive(Args, Debug, Clone)]
pub struct AuthConfig {
    /// HS256 secret for API tokens. Unset: a random one is generated and logged (development only).
    #[arg(
        long = "jwt-secret",
        env = "JWT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub jwt_secret: Option<SecretString>,
    /// 32 bytes, base64 or hex, encrypting Fortnox tokens at rest.
    #[arg(
        long = "token-encryption-key",
        env = "TOKEN_ENCRYPTION_KEY",
        hide_env_values = true,
        global = true
    )]
    pub token_encryption_key: Option<SecretString>,
    /// When set, `/metrics` answers only `Authorization: Bearer <this>`; unset, it answers
    /// anyone (keep it on an internal network then).
    #[arg(
        long = "metrics-token",
        env = "METRICS_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub metrics_token: Option<SecretString>,
}

/// The Fortnox app and API.
#[derive(Args, Debug, Clone)]
pub struct FortnoxSettings {
    #[arg(long = "fortnox-client-id", env = "FORTNOX_CLIENT_ID", global = true)]
    pub client_id: Option<String>,
    #[arg(
        long = "fortnox-client-secret",
        env = "FORTNOX_CLIENT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub client_secret: Option<SecretString>,
    #[arg(
        long = "fortnox-api-url",
        env = "FORTNOX_API_URL",
        default_value = "https://api.fortnox.se",
        global = true
    )]
    pub api_url: String,
    #[arg(
        long = "fortnox-auth-url",
        env = "FORTNOX_AUTH_URL",
        default_value = "https://apps.fortnox.se",
        global = true
    )]
    pub auth_url: String,
    /// How long the API may show a merchant's ways of delivery and stock articles as read
    /// from Fortnox before reading them again (0: every request reads, concurrent requests
    /// still share one read). Keeps aliases and refreshes from spending the merchant's
    /// Fortnox budget, which imports and invoicing need.
    #[arg(long = "fortnox-live-read-cache-secs", env = "FORTNOX_LIVE_READ_CACHE_SECS",
        default_value = "20", value_parser = whole(Duration::from_secs), global = true)]
    pub live_read_cache: Duration,
    /// Fortnox's real-time WebSocket API: orders are imported within seconds of being
    /// marked done, and polling stretches to `IMPORT_INTERVAL_REALTIME_SECS` while it works.
    #[arg(
        long = "fortnox-ws-url",
        env = "FORTNOX_WS_URL",
        default_value = crate::fortnox::topics::DEFAULT_URL,
        global = true
    )]
    pub ws_url: String,
    /// `false` turns real-time import off: orders are imported by polling alone.
    #[arg(long = "fortnox-ws-enabled", env = "FORTNOX_WS_ENABLED", default_value_t = true,
        action = clap::ArgAction::Set, global = true)]
    pub ws_enabled: bool,
    /// The frontend page Fortnox's OAuth callback hands `code` and `state` on to (as query
    /// parameters), where the person who started the connection completes it with
    /// `completeFortnoxConnection`. Unset: the callback shows them on a page instead.
    #[arg(
        long = "fortnox-connect-return-url",
        env = "FORTNOX_CONNECT_RETURN_URL",
        global = true
    )]
    pub connect_return_url: Option<String>,
}

/// The durable jobs. Durations are `Duration`s, read as whole seconds or milliseconds as
/// each variable's name says (`_SECS`, `_MS`).
#[derive(Args, Debug, Clone)]
pub struct JobsConfig {
    /// Attempts per job before the order is stopped with an error event.
    #[arg(
        long = "job-max-attempts",
        env = "JOB_MAX_ATTEMPTS",
        default_value_t = 12,
        global = true
    )]
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles per attempt (capped at 15 minutes).
    #[arg(long = "job-retry-base-ms", env = "JOB_RETRY_BASE_MS", default_value = "5000",
        value_parser = whole(Duration::from_millis), global = true)]
    pub retry_base: Duration,
    /// Worker heartbeat in seconds; tasks of a worker silent for 3 heartbeats are re-run.
    #[arg(long = "job-heartbeat-secs", env = "JOB_HEARTBEAT_SECS", default_value = "15",
        value_parser = whole(Duration::from_secs), global = true)]
    pub heartbeat: Duration,
    /// Longest wait between two looks for due tasks while a queue is idle. Queued tasks wake
    /// their workers at once (on PostgreSQL in every process); this is the safety net (a
    /// retry queued by a process that stopped comes due). 0 keeps polling every 250 ms.
    #[arg(long = "job-idle-poll-secs", env = "JOB_IDLE_POLL_SECS", default_value = "30",
        value_parser = whole(Duration::from_secs), global = true)]
    pub idle_poll: Duration,
    /// Tasks each queue's worker takes per look. apalis lets about twice this many of a
    /// queue's jobs run at once (it records their start and end through a buffer of four
    /// times this size), so this is each queue's concurrency: 10 kept validation to ~20
    /// jobs at a time and it fell tens of seconds behind the import at 100 merchants.
    #[arg(
        long = "job-batch-size",
        env = "JOB_BATCH_SIZE",
        default_value_t = 50,
        global = true
    )]
    pub batch_size: usize,
    /// How long one job may hold an order; after a crash the order waits this long.
    #[arg(long = "job-lease-secs", env = "JOB_LEASE_SECS", default_value = "600",
        value_parser = whole(Duration::from_secs), global = true)]
    pub lease: Duration,
    #[arg(long = "reconcile-interval-secs", env = "RECONCILE_INTERVAL_SECS", default_value = "60",
        value_parser = whole(Duration::from_secs), global = true)]
    pub reconcile_interval: Duration,
    /// How often each connected merchant's Fortnox is polled for done orders.
    #[arg(long = "import-interval-secs", env = "IMPORT_INTERVAL_SECS", default_value = "120",
        value_parser = whole(Duration::from_secs), global = true)]
    pub import_interval: Duration,
    /// How often a merchant whose real-time import is live is polled anyway, to catch
    /// changes Fortnox sends no event for. Polling falls back to `IMPORT_INTERVAL_SECS`
    /// while the connection is down.
    #[arg(long = "import-interval-realtime-secs", env = "IMPORT_INTERVAL_REALTIME_SECS", default_value = "900",
        value_parser = whole(Duration::from_secs), global = true)]
    pub realtime_import_interval: Duration,
    /// An order idle this long in a state that needs a job, with no live job, is re-enqueued.
    #[arg(long = "reconcile-idle-secs", env = "RECONCILE_IDLE_SECS", default_value = "60",
        value_parser = whole(Duration::from_secs), global = true)]
    pub reconcile_idle: Duration,
}

/// The one parser of durations: a whole number of `unit`s (the unit the variable names).
fn whole(
    unit: fn(u64) -> Duration,
) -> impl Fn(&str) -> Result<Duration, std::num::ParseIntError> + Clone + Send + Sync + 'static {
    move |text| text.parse().map(unit)
}

impl JobsConfig {
    pub fn settings(&self) -> JobSettings {
        // Intervals and the lease are at least a second: zero would spin or never hold.
        let at_least_a_second = |d: Duration| d.max(Duration::from_secs(1));
        JobSettings {
            retry: crate::fortnox::RetryPolicy {
                max_attempts: self.max_attempts.max(1),
                base_delay: self.retry_base,
                ..JobSettings::default().retry
            },
            heartbeat: at_least_a_second(self.heartbeat),
            // 0: never stretch, poll every `poll_interval` as when there is work.
            idle_poll_interval: self.idle_poll.max(JobSettings::default().poll_interval),
            reconcile_interval: at_least_a_second(self.reconcile_interval),
            reconcile_idle: self.reconcile_idle,
            import_interval: at_least_a_second(self.import_interval),
            realtime_import_interval: at_least_a_second(self.realtime_import_interval),
            lease: at_least_a_second(self.lease),
            batch_size: self.batch_size.clamp(1, 1000),
            ..JobSettings::default()
        }
    }
}

impl Config {
    pub fn job_settings(&self) -> JobSettings {
        JobSettings {
            realtime_enabled: self.fortnox.ws_enabled && self.fortnox.client_secret.is_some(),
            ..self.jobs.settings()
        }
    }

    /// Defaults for tests and embedding: every value as if no flag or variable were set.
    pub fn defaults() -> Config {
        Cli::parse_from(["fortnox-fulfilment"]).config
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::{Cli, Config};

    #[test]
    fn duration_flags_keep_their_units() {
        let cli = Cli::parse_from([
            "fortnox-fulfilment",
            "--job-retry-base-ms",
            "250",
            "--job-lease-secs",
            "7",
            "--job-heartbeat-secs",
            "0",
            "--import-interval-secs",
            "30",
            "--reconcile-idle-secs",
            "0",
        ]);
        let jobs = &cli.config.jobs;
        assert_eq!(jobs.retry_base, Duration::from_millis(250));
        assert_eq!(jobs.lease, Duration::from_secs(7));
        assert_eq!(jobs.import_interval, Duration::from_secs(30));
        let settings = cli.config.job_settings();
        assert_eq!(settings.retry.base_delay, Duration::from_millis(250));
        assert_eq!(
            settings.heartbeat,
            Duration::from_secs(1),
            "at least a second"
        );
        assert_eq!(settings.reconcile_idle, Duration::ZERO);
        assert!(Cli::try_parse_from(["fortnox-fulfilment", "--job-lease-secs", "1.5"]).is_err());
    }

    #[test]
    fn debug_never_prints_secrets() {
        let mut config = Config::defaults();
        config.auth.jwt_secret = Some("jwt-very-secret".into());
        config.auth.token_encryption_key = Some("key-very-secret".into());
        config.fortnox.client_secret = Some("client-very-secret".into());
        let debug = format!("{config:?}");
        assert!(!debug.contains("very-secret"), "{debug}");
    }
}
