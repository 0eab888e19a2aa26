//! `/sandbox/ws/...`: the WebSocket switches and readings over HTTP, for
//! tests that drive a sandbox in another process. Each calls [`SandboxHandle`].

use std::sync::Arc;

use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::handle::SandboxHandle;
use crate::Shared;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/drop", post(drop_connections))
        .route("/mute", put(mute))
        .route("/duplicate", put(duplicate))
        .route("/reorder", put(reorder))
        .route("/expire-tenants-with-token", put(expire_with_token))
        .route("/connections", get(connections))
        .route("/events/{topic}", get(events))
        .route("/counters", get(counters))
        .route("/tenant-id/{t}", get(tenant_id))
}

type S = AxState<Arc<Shared>>;

fn handle(sh: Arc<Shared>) -> SandboxHandle {
    SandboxHandle { shared: sh }
}

async fn drop_connections(AxState(sh): S) -> Response {
    let dropped = handle(sh).ws_drop_connections();
    Json(serde_json::json!({ "dropped": dropped })).into_response()
}

#[derive(Deserialize)]
struct Mute {
    tenant: String,
    #[serde(default = "yes")]
    muted: bool,
}

fn yes() -> bool {
    true
}

async fn mute(AxState(sh): S, Json(m): Json<Mute>) -> Response {
    handle(sh).ws_mute_tenant(&m.tenant, m.muted);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct Switch {
    on: bool,
}

async fn duplicate(AxState(sh): S, Json(s): Json<Switch>) -> Response {
    handle(sh).ws_duplicate_events(s.on);
    StatusCode::NO_CONTENT.into_response()
}

async fn reorder(AxState(sh): S, Json(s): Json<Switch>) -> Response {
    handle(sh).ws_reorder_topics(s.on);
    StatusCode::NO_CONTENT.into_response()
}

async fn expire_with_token(AxState(sh): S, Json(s): Json<Switch>) -> Response {
    handle(sh).ws_expire_tenants_with_token(s.on);
    StatusCode::NO_CONTENT.into_response()
}

async fn connections(AxState(sh): S) -> Response {
    Json(handle(sh).ws_connections()).into_response()
}

async fn events(AxState(sh): S, Path(topic): Path<String>) -> Response {
    Json(handle(sh).ws_events(&topic)).into_response()
}

async fn counters(AxState(sh): S) -> Response {
    Json(handle(sh).ws_counters()).into_response()
}

async fn tenant_id(AxState(sh): S, Path(t): Path<String>) -> Response {
    match handle(sh).tenant_id(&t) {
        Some(id) => Json(serde_json::json!({ "tenant": t, "tenant_id": id })).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": format!("no tenant {t}") })),
        )
            .into_response(),
    }
}
