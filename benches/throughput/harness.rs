//! What every scenario shares: a fresh database, the server in this process (or, where its
//! memory is measured, in a process of its own), GraphQL requests, and CPU time and
//! resident memory.
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use fortnox_fulfilment::auth::{Claims, JwtKeys, Role};
use fortnox_fulfilment::config::Config;
use fortnox_fulfilment::server::App;
use fortnox_fulfilment::store::Pool;
use serde_json::{json, Value};

pub const SECRET: &str = "benchmark-secret";

/// Which database a scenario runs on: SQLite in a temp file, or a PostgreSQL server on
/// which each scenario gets a database of its own.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    Postgres { admin_url: String },
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres { .. } => "PostgreSQL",
        }
    }
}

/// One scenario's database; a PostgreSQL one is dropped by `drop_database`.
pub struct BenchDb {
    pub url: String,
    postgres: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl BenchDb {
    pub async fn create(backend: &Backend, label: &str) -> anyhow::Result<BenchDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                Ok(BenchDb {
                    url: format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()),
                    postgres: None,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres { admin_url } => {
                let name = format!("ff_bench_{label}_{}", uuid::Uuid::new_v4().simple());
                let admin = sqlx::PgPool::connect(admin_url)
                    .await
                    .context("connect to BENCH_DATABASE_URL")?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await
                    .context("create the scenario's database")?;
                // A diagnosis, never a setting to run with: does the wait for each
                // commit's flush to disk bound the pipeline?
                if let Ok(value) = std::env::var("BENCH_PG_SYNCHRONOUS_COMMIT") {
                    let value = if value == "off" { "off" } else { "on" };
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "ALTER DATABASE {name} SET synchronous_commit = {value}"
                    )))
                    .execute(&admin)
                    .await
                    .context("set synchronous_commit on the scenario's database")?;
                }
                admin.close().await;
                let base = admin_url.split('?').next().unwrap_or(admin_url);
                let (server, _) = base
                    .rsplit_once('/')
                    .context("BENCH_DATABASE_URL names a database (…/postgres)")?;
                Ok(BenchDb {
                    url: format!("{server}/{name}"),
                    postgres: Some((admin_url.clone(), name)),
                    _dir: None,
                })
            }
        }
    }

    pub async fn drop_database(self) {
        let Some((admin_url, name)) = &self.postgres else {
            return; // the temp dir goes with `self`
        };
        match sqlx::PgPool::connect(admin_url).await {
            Ok(admin) => {
                let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&admin)
                .await;
                if let Err(error) = dropped {
                    eprintln!("could not drop database {name}: {error}");
                }
                admin.close().await;
            }
            Err(error) => eprintln!("could not drop database {name}: {error}"),
        }
    }
}

/// The configuration every scenario starts from: no scheduled imports during a
/// measurement (they are asked for with `syncOrders`), everything else as shipped.
pub fn base_config(database_url: &str) -> Config {
    let mut config = Config::defaults();
    config.server.database_url = database_url.to_owned();
    config.auth.jwt_secret = Some(SECRET.into());
    config.jobs.import_interval = Duration::from_secs(3600);
    config
}

pub fn token(role: Role, merchants: Vec<i64>) -> anyhow::Result<String> {
    let claims = Claims {
        sub: format!("bench-{}", role.as_str()),
        exp: chrono::Utc::now().timestamp() + 6 * 3600,
        role,
        merchants,
    };
    Ok(JwtKeys::new(&SECRET.into()).issue(&claims)?)
}

/// The server (API and job workers) serving on a loopback port in this process.
pub struct Server {
    pub app: App,
    pub api: Api,
    /// Before the app was built: its Fortnox client (and so its rate-limit logs) is younger.
    pub started: std::time::Instant,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// The server binary (`fortnox-fulfilment serve`) in a process of its own, so that its
/// resident memory is the server's alone; killed when dropped.
pub struct ServerProcess {
    child: std::process::Child,
    pub api: Api,
}

impl ServerProcess {
    /// Starts the server on `database_url` with `env` on top of the bench's settings
    /// (no scheduled imports, a token secret), and waits until `/healthz` answers.
    pub async fn start(database_url: &str, env: &[(&str, &str)]) -> anyhow::Result<ServerProcess> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_fortnox-fulfilment"));
        command
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("BIND_ADDR", addr.to_string())
            .env("PUBLIC_URL", format!("http://{addr}"))
            .env("JWT_SECRET", SECRET)
            .env("TOKEN_ENCRYPTION_KEY", "00".repeat(32))
            .env("IMPORT_INTERVAL_SECS", "3600")
            .env("FORTNOX_WS_ENABLED", "false")
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().context("start the server binary")?;
        let server = ServerProcess {
            child,
            api: Api {
                http: reqwest::Client::new(),
                url: format!("http://{addr}/graphql"),
            },
        };
        let health = format!("http://{addr}/healthz");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = server.api.http.get(&health).send().await {
                if response.status().is_success() {
                    return Ok(server);
                }
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the server process did not answer /healthz within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the server has used less than 1% of a core in each of `quiet` seconds
    /// in a row (at most `limit`); returns how long that took. `quiet` must outlast the
    /// server's slowest poll (the event feed's, 5 s on SQLite) to see it at work.
    pub async fn settle(&self, quiet: u32, limit: Duration) -> Duration {
        let started = std::time::Instant::now();
        let stat = format!("/proc/{}/stat", self.child.id());
        let mut before = cpu_seconds_of(&stat);
        let mut quiet_seconds = 0;
        while quiet_seconds < quiet && started.elapsed() < limit {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = cpu_seconds_of(&stat);
            quiet_seconds = if now - before < 0.01 {
                quiet_seconds + 1
            } else {
                0
            };
            before = now;
        }
        started.elapsed()
    }

    /// A value of the server process's /proc status in KiB (VmRSS, VmHWM, ...).
    pub fn status_kib(&self, field: &str) -> u64 {
        status_kib_of(&format!("/proc/{}/status", self.child.id()), field)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A GraphQL client of the server, cheap to clone into tasks.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    url: String,
}

impl Server {
    pub async fn start(mut config: Config) -> anyhow::Result<Server> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        config.server.public_url = format!("http://{addr}");
        let started = std::time::Instant::now();
        let app = App::build(&config, &SECRET.into()).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.clone().serve(listener, async move {
            let _ = stopped.await;
        }));
        let api = Api {
            http: reqwest::Client::new(),
            url: format!("http://{addr}/graphql"),
        };
        Ok(Server {
            app,
            api,
            started,
            stop,
            task,
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.app.store.pool
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        match tokio::time::timeout(Duration::from_secs(40), self.task).await {
            Ok(Ok(Err(error))) => eprintln!("server stopped with an error: {error}"),
            Ok(Err(error)) => eprintln!("server task failed: {error}"),
            Err(_) => eprintln!("server did not stop within 40 s"),
            Ok(Ok(Ok(()))) => {}
        }
    }
}

impl Api {
    /// A GraphQL request; an answer with `errors` is returned as it is, for the caller
    /// to judge.
    pub async fn graphql(
        &self,
        token: &str,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .context("GraphQL request")?;
        response.json().await.context("GraphQL answer is JSON")
    }

    /// Like `graphql`, but an answer with errors is an error.
    pub async fn graphql_ok(
        &self,
        token: &str,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Value> {
        let body = self.graphql(token, query, variables).await?;
        anyhow::ensure!(body["errors"].is_null(), "GraphQL errors: {body}");
        Ok(body)
    }
}

/// A value of a /proc status file in KiB (VmRSS, VmHWM, ...); 0 where there is no /proc.
fn status_kib_of(path: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(path).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) this process has used, in seconds; 0 where there is no /proc.
pub fn cpu_seconds() -> f64 {
    cpu_seconds_of("/proc/self/stat")
}

fn cpu_seconds_of(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The command name (field 2) may hold spaces: count fields after its closing ')'.
    // There field 3 (state) comes first, so utime (14) and stime (15) are at 11 and 12.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / clock_ticks_per_second()
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`, 100 on every usual Linux).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The value at quantile `q` (0..=1) of sorted values (nearest rank).
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
