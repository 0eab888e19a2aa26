//! `GET /metrics`: Prometheus text format. Counts only, no tenant data, so it is served
//! without a token like the health probes; keep it on the internal network.
use std::fmt::Write;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::App;
use crate::store::Pool;

pub async fn metrics(State(app): State<App>) -> Response {
    let mut out = String::new();
    let _ = writeln!(out, "# HELP fortnox_calls_total Fortnox API calls by resource and HTTP status (0: no response).");
    let _ = writeln!(out, "# TYPE fortnox_calls_total counter");
    for ((resource, status), count) in app.fortnox.counters().snapshot() {
        let _ = writeln!(
            out,
            "fortnox_calls_total{{resource=\"{resource}\",status=\"{status}\"}} {count}"
        );
    }
    for (name, help, value) in crate::jobs::counters::snapshot() {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {value}");
    }
    let counts: Result<Vec<(String, i64)>, sqlx::Error> = match &app.store.pool {
        Pool::Sqlite(pool) => {
            sqlx::query_as("SELECT state, COUNT(*) FROM orders GROUP BY state")
                .fetch_all(pool)
                .await
        }
        Pool::Postgres(pool) => {
            sqlx::query_as("SELECT state, COUNT(*) FROM orders GROUP BY state")
                .fetch_all(pool)
                .await
        }
    };
    match counts {
        Ok(counts) => {
            let _ = writeln!(out, "# HELP orders Orders by state.");
            let _ = writeln!(out, "# TYPE orders gauge");
            for (state, count) in counts {
                let _ = writeln!(out, "orders{{state=\"{state}\"}} {count}");
            }
        }
        Err(error) => {
            tracing::warn!(%error, "metrics: cannot count orders");
            return (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response();
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
