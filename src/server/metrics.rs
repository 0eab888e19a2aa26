//! `GET /metrics`: OpenMetrics text (prometheus-client). Counts only, no tenant data, but
//! counts across all merchants: with `METRICS_TOKEN` set it answers only that bearer
//! token; without, anyone (keep it on an internal network then).
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::App;
use crate::fortnox::metrics::Listed;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub async fn metrics(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(expected) = &app.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Constant time, so the answer's timing tells nothing about the token.
        let matches: bool = given
            .as_bytes()
            .ct_eq(expected.expose_secret().as_bytes())
            .into();
        if !matches {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "send the metrics token: Authorization: Bearer <METRICS_TOKEN>\n",
            )
                .into_response();
        }
    }
    // Kept per state by triggers on `orders` (store::order_counts): a scrape reads a few
    // dozen rows however many orders there are.
    let counts = crate::store::order_counts::per_state(&app.store.pool).await;
    let counts = match counts {
        Ok(counts) => counts,
        Err(error) => {
            tracing::warn!(%error, "metrics: cannot count orders");
            return (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response();
        }
    };
    // A registry per scrape: the counters live in this app's Fortnox client and the jobs,
    // the order gauge is read from the database just now.
    let mut registry = Registry::default();
    app.fortnox.counters().register(&mut registry);
    crate::jobs::counters::register(&mut registry);
    let orders = Family::<Vec<(&'static str, String)>, Gauge>::default();
    for (state, count) in counts {
        orders.get_or_create(&vec![("state", state)]).set(count);
    }
    registry.register("orders", "Orders by state", Listed(orders));
    let mut out = String::new();
    if let Err(error) = encode(&mut out, &registry) {
        tracing::warn!(%error, "metrics: cannot encode");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], out).into_response()
}
