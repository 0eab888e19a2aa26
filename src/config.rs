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

#[derive(Args, Debug, Clone)]
pub struct Config {
    /// `sqlite://FILE` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://fortnox-fulfilment.db",
        global = true
    )]
    pub database_url: String,
    #[arg(
        long,
        env = "BIND_ADDR",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub bind_addr: SocketAddr,
    /// HS256 secret for API tokens. Unset: a random one is generated and logged (development only).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<SecretString>,
    /// 32 bytes, base64 or hex, encrypting Fortnox tokens at rest.
    #[arg(
        long,
        env = "TOKEN_ENCRYPTION_KEY",
        hide_env_values = true,
        global = true
    )]
    pub token_encryption_key: Option<SecretString>,
    #[arg(long, env = "FORTNOX_CLIENT_ID", global = true)]
    pub fortnox_client_id: Option<String>,
    #[arg(
        long,
        env = "FORTNOX_CLIENT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub fortnox_client_secret: Option<SecretString>,
    #[arg(
        long,
        env = "FORTNOX_API_URL",
        default_value = "https://api.fortnox.se",
        global = true
    )]
    pub fortnox_api_url: String,
    #[arg(
        long,
        env = "FORTNOX_AUTH_URL",
        default_value = "https://apps.fortnox.se",
        global = true
    )]
    pub fortnox_auth_url: String,
    /// Where users reach this service; used for the OAuth callback URL.
    #[arg(
        long,
        env = "PUBLIC_URL",
        default_value = "http://localhost:8080",
        global = true
    )]
    pub public_url: String,
    /// Server processes sharing the database; each keeps 1/N of Fortnox's rate limit.
    #[arg(long, env = "FORTNOX_PROCESSES", default_value_t = 1, global = true)]
    pub fortnox_processes: u32,
    /// Attempts per job before the order is stopped with an error event.
    #[arg(long, env = "JOB_MAX_ATTEMPTS", default_value_t = 12, global = true)]
    pub job_max_attempts: u32,
    /// First retry delay in milliseconds; doubles per attempt (capped at 15 minutes).
    #[arg(long, env = "JOB_RETRY_BASE_MS", default_value_t = 5000, global = true)]
    pub job_retry_base_ms: u64,
    /// Worker heartbeat in seconds; tasks of a worker silent for 3 heartbeats are re-run.
    #[arg(long, env = "JOB_HEARTBEAT_SECS", default_value_t = 10, global = true)]
    pub job_heartbeat_secs: u64,
    /// How long one job may hold an order; after a crash the order waits this long.
    #[arg(long, env = "JOB_LEASE_SECS", default_value_t = 600, global = true)]
    pub job_lease_secs: u64,
    #[arg(
        long,
        env = "RECONCILE_INTERVAL_SECS",
        default_value_t = 60,
        global = true
    )]
    pub reconcile_interval_secs: u64,
    /// How often each connected merchant's Fortnox is polled for done orders.
    #[arg(
        long,
        env = "IMPORT_INTERVAL_SECS",
        default_value_t = 120,
        global = true
    )]
    pub import_interval_secs: u64,
    /// An order idle this long in a state that needs a job, with no live job, is re-enqueued.
    #[arg(long, env = "RECONCILE_IDLE_SECS", default_value_t = 60, global = true)]
    pub reconcile_idle_secs: u64,
}

impl Config {
    pub fn job_settings(&self) -> JobSettings {
        JobSettings {
            retry: crate::fortnox::RetryPolicy {
                max_attempts: self.job_max_attempts.max(1),
                base_delay: Duration::from_millis(self.job_retry_base_ms),
                ..JobSettings::default().retry
            },
            heartbeat: Duration::from_secs(self.job_heartbeat_secs.max(1)),
            reconcile_interval: Duration::from_secs(self.reconcile_interval_secs.max(1)),
            reconcile_idle: Duration::from_secs(self.reconcile_idle_secs),
            import_interval: Duration::from_secs(self.import_interval_secs.max(1)),
            lease: Duration::from_secs(self.job_lease_secs.max(1)),
            ..JobSettings::default()
        }
    }

    /// Defaults for tests and embedding: every value as if no flag or variable were set.
    pub fn defaults() -> Config {
        Cli::parse_from(["fortnox-fulfilment"]).config
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn debug_never_prints_secrets() {
        let mut config = Config::defaults();
        config.jwt_secret = Some("jwt-very-secret".into());
        config.token_encryption_key = Some("key-very-secret".into());
        config.fortnox_client_secret = Some("client-very-secret".into());
        let debug = format!("{config:?}");
        assert!(!debug.contains("very-secret"), "{debug}");
    }
}
