//! How fast orders flow and lists answer, each figure beside a reference measured in the
//! same run; prints markdown tables and asserts nothing (figures are not pass/fail).
//!
//! 1. `throughput`: K merchants (10, 40, 100) drain a backlog of done orders in Fortnox
//!    (the sandbox, with Fortnox's real rate limit of 25 calls per 5 s per tenant) while
//!    this benchmark plays the warehouse. Orders INVOICED per second against what
//!    Fortnox's limit allows, import → VALIDATED latency, pipeline jobs per second against
//!    apalis draining no-op tasks on the same database, 429s, and CPU.
//! 2. `lists`: the order lists the API serves with 100,000 stored orders, each against the
//!    same SQL run on a pool, and the resident memory of the server, which this scenario
//!    runs as a process of its own (the binary `fortnox-fulfilment serve`).
//! 3. `idle` (PostgreSQL): transactions per second of an idle server, against the same
//!    server polling every 250 ms.
//!
//! `cargo bench --bench throughput` runs both on SQLite (a temp file), and also on
//! PostgreSQL when `BENCH_DATABASE_URL` points at a server where the user may create
//! databases (each scenario creates its own and drops it). The server (but for `lists`),
//! the Fortnox sandbox and the warehouse all run in this process. Knobs (environment):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BENCH_ONLY` | `throughput,lists,idle` | scenarios to run (`idle`: PostgreSQL only) |
//! | `BENCH_IDLE_SETTLE_SECS` | `40` | idle: wait after start before counting |
//! | `BENCH_IDLE_SECS` | `30` | idle: how long transactions are counted |
//! | `BENCH_DATABASE_URL` | unset | also run on PostgreSQL (`postgres://postgres@127.0.0.1:5432/postgres`) |
//! | `BENCH_SKIP_SQLITE` | unset | `1`: PostgreSQL only |
//! | `BENCH_PG_SYNCHRONOUS_COMMIT` | unset | `off`: a diagnosis of whether commit flushes bound the pipeline |
//! | `BENCH_K` | `10,40,100` | merchant counts of the throughput scenario |
//! | `BENCH_DRAIN_SECS` | `45` | backlog per merchant: what the ideal rate drains in this time |
//! | `BENCH_BACKLOG` | from `BENCH_DRAIN_SECS` | orders per merchant, overriding it |
//! | `BENCH_DRAIN_TIMEOUT_SECS` | `600` | give up on a drain after this long (figures cover what was done) |
//! | `BENCH_NOOP_JOBS` | `20000` | no-op tasks of the apalis reference |
//! | `BENCH_WAREHOUSE_CONCURRENCY` | `4` | shipments the warehouse confirms at a time |
//! | `BENCH_LIST_ORDERS` | `100000` | orders stored for the lists scenario |
//! | `BENCH_LIST_MERCHANTS` | `20` | merchants they are spread over |
//! | `BENCH_LIST_RUNS` | `200` | runs per list query (the p50 is printed) |
//! | `BENCH_LIST_SERIAL` | `0` | `1`: all of a list's GraphQL runs, then all its SQL runs (by default the two take turns) |
//! | `BENCH_LOG` | unset | log filter of the in-process server (e.g. `apalis_core=debug`), to stderr |
//! | `BENCH_SERVER_LOG` | `warn` | `RUST_LOG` of the lists scenario's server process (its log goes to stderr) |
mod drain;
mod harness;
mod idle;
mod lists;
mod noop;

use std::time::Duration;

use harness::{ms, Backend};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Ok(filter) = std::env::var("BENCH_LOG") {
        // The in-process server's log (e.g. `apalis_core=debug`), to stderr.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let only = env_list("BENCH_ONLY", &["throughput", "lists", "idle"]);
    let mut backends = Vec::new();
    if std::env::var("BENCH_SKIP_SQLITE").ok().as_deref() != Some("1") {
        backends.push(Backend::Sqlite);
    }
    if let Some(admin_url) = std::env::var("BENCH_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        backends.push(Backend::Postgres { admin_url });
    }
    for backend in &backends {
        println!("## {}\n", backend.name());
        if only.iter().any(|s| s == "throughput") {
            throughput(backend).await?;
        }
        if only.iter().any(|s| s == "lists") {
            lists(backend).await?;
        }
        if only.iter().any(|s| s == "idle") && matches!(backend, Backend::Postgres { .. }) {
            idle(backend).await?;
        }
    }
    Ok(())
}

async fn throughput(backend: &Backend) -> anyhow::Result<()> {
    let ks: Vec<usize> = env_list("BENCH_K", &["10", "40", "100"])
        .iter()
        .map(|k| k.parse().expect("BENCH_K: merchant counts like 10,40,100"))
        .collect();
    let drain_secs: f64 = env_parse("BENCH_DRAIN_SECS", 45.0);
    // What one merchant's share of Fortnox drains in `drain_secs` at the fixed cost.
    let backlog = env_parse(
        "BENCH_BACKLOG",
        (drain_secs * drain::FORTNOX_CALLS_PER_SECOND / drain::FIXED_CALLS_PER_ORDER).ceil()
            as usize,
    );
    for k in ks {
        let settings = drain::DrainSettings {
            merchants: k,
            orders_per_merchant: backlog,
            timeout: Duration::from_secs(env_parse("BENCH_DRAIN_TIMEOUT_SECS", 600)),
            noop_tasks: env_parse("BENCH_NOOP_JOBS", 20_000),
            warehouse_concurrency: env_parse("BENCH_WAREHOUSE_CONCURRENCY", 4),
        };
        let figures = drain::run(backend, &settings).await?;
        print_drain(backend, &figures);
    }
    Ok(())
}

fn print_drain(backend: &Backend, f: &drain::DrainFigures) {
    println!(
        "### Throughput, {} merchants × {} orders ({} orders), {}\n",
        f.merchants,
        f.orders / f.merchants.max(1),
        f.orders,
        backend.name()
    );
    println!("| figure | value | reference | ratio |");
    println!("|---|---|---|---|");
    let measured = f.calls_per_order();
    let ideal_measured = f.ideal(measured);
    let ideal_fixed = f.ideal(drain::FIXED_CALLS_PER_ORDER);
    let rate = f.invoiced_per_second();
    println!(
        "| orders INVOICED per second | {rate:.2} ({} in {:.1} s) | Fortnox-bound ideal K×5/{measured:.2} (calls per order measured) = {ideal_measured:.2} | {:.2} |",
        f.invoiced,
        f.drain.as_secs_f64(),
        rate / ideal_measured
    );
    println!(
        "| orders INVOICED per second | {rate:.2} | Fortnox-bound ideal K×5/{:.2} (fixed) = {ideal_fixed:.2} | {:.2} |",
        drain::FIXED_CALLS_PER_ORDER,
        rate / ideal_fixed
    );
    println!(
        "| Fortnox API calls per order | {measured:.2} ({} calls) | {:.2} | {:.2} |",
        f.api_calls,
        drain::FIXED_CALLS_PER_ORDER,
        measured / drain::FIXED_CALLS_PER_ORDER
    );
    let or_none = |d: Option<Duration>| d.map(ms).unwrap_or_else(|| "none".into());
    println!(
        "| import → VALIDATED latency p50 | {} | | |",
        or_none(f.validate_p50)
    );
    println!(
        "| import → VALIDATED latency p99 | {} | | |",
        or_none(f.validate_p99)
    );
    let noop_rate = f.noop.per_second();
    println!(
        "| pipeline jobs per second (validate + send + invoice) | {:.1} ({} jobs) | raw apalis no-op jobs per second = {noop_rate:.1} ({} in {:.1} s) | {:.3} |",
        f.pipeline_jobs_per_second(),
        f.pipeline_jobs,
        f.noop.tasks,
        f.noop.elapsed.as_secs_f64(),
        f.pipeline_jobs_per_second() / noop_rate
    );
    println!(
        "| 429 answers from Fortnox | {} | 0 | |",
        f.too_many_requests
    );
    println!(
        "| order jobs that waited for their order's lease | {} | of {} pipeline jobs | {:.3} |",
        f.put_off,
        f.pipeline_jobs,
        f.put_off as f64 / f.pipeline_jobs.max(1) as f64
    );
    println!(
        "| process CPU over the drain (server, sandbox, warehouse) | {:.1} s | 2 cores × {:.1} s | {:.2} |",
        f.cpu_seconds,
        f.drain.as_secs_f64(),
        f.cpu_share_of_two_cores()
    );
    println!();
}

async fn idle(backend: &Backend) -> anyhow::Result<()> {
    let settle = Duration::from_secs(env_parse("BENCH_IDLE_SETTLE_SECS", 40));
    let window = Duration::from_secs(env_parse("BENCH_IDLE_SECS", 30));
    let f = idle::run(backend, settle, window).await?;
    println!(
        "### An idle server, {} (transactions per second over {} s, after {} s to settle)\n",
        backend.name(),
        window.as_secs(),
        settle.as_secs()
    );
    println!("| figure | value | reference | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| transactions per second, idle poll as shipped | {:.2} | polling every 250 ms: {:.2} | {:.2} |",
        f.shipped,
        f.fixed_poll,
        f.shipped / f.fixed_poll.max(f64::EPSILON)
    );
    println!();
    Ok(())
}

async fn lists(backend: &Backend) -> anyhow::Result<()> {
    let settings = lists::ListSettings {
        orders: env_parse("BENCH_LIST_ORDERS", 100_000),
        merchants: env_parse("BENCH_LIST_MERCHANTS", 20),
        runs: env_parse("BENCH_LIST_RUNS", 200),
        serial: env_parse("BENCH_LIST_SERIAL", 0) != 0,
    };
    let f = lists::run(backend, &settings).await?;
    println!(
        "### Lists at {} stored orders, {} (inserted in {:.1} s, server quiet {:.0} s later; p50 of {} runs, {}; page of 50)\n",
        f.orders,
        backend.name(),
        f.insert.as_secs_f64(),
        f.settled.as_secs_f64(),
        settings.runs,
        if settings.serial {
            "GraphQL's in a row, then the SQL's"
        } else {
            "GraphQL and SQL taking turns"
        }
    );
    println!("| list | GraphQL p50 | same SQL on the pool p50 (rows) | ratio |");
    println!("|---|---|---|---|");
    for row in &f.rows {
        println!(
            "| {} | {} | {} ({}) | {:.1} |",
            row.name,
            ms(row.graphql),
            ms(row.sql),
            row.sql_rows,
            row.graphql.as_secs_f64() / row.sql.as_secs_f64()
        );
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "| server process RSS after the queries | {:.1} MiB | at idle, empty database, after one request: {:.1} MiB | {:.2} |",
        mib(f.rss_after_kib),
        mib(f.rss_idle_kib),
        f.rss_after_kib as f64 / f.rss_idle_kib.max(1) as f64
    );
    println!(
        "| server process RSS with the orders stored, before the queries | {:.1} MiB | at idle: {:.1} MiB | {:.2} |",
        mib(f.rss_stored_kib),
        mib(f.rss_idle_kib),
        f.rss_stored_kib as f64 / f.rss_idle_kib.max(1) as f64
    );
    println!(
        "| server process peak RSS (VmHWM) | {:.1} MiB | at idle: {:.1} MiB | {:.2} |",
        mib(f.rss_peak_kib),
        mib(f.rss_idle_kib),
        f.rss_peak_kib as f64 / f.rss_idle_kib.max(1) as f64
    );
    println!();
    Ok(())
}

/// A comma-separated list from the environment, or the default.
fn env_list(name: &str, default: &[&str]) -> Vec<String> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        _ => default.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// A number from the environment, or the default; a value that does not parse stops
/// the benchmark with the variable's name rather than being ignored.
fn env_parse<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}: cannot read `{value}` as a number")),
        _ => default,
    }
}
