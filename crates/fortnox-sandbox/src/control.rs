//! `/sandbox/...`: seeding, faults and the call log over HTTP, for the demo
//! and for tests in other languages. Each route calls [`SandboxHandle`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::faults::FaultSpec;
use super::handle::SandboxHandle;
use super::state::{CompanySettings, TenantSettings};
use super::Shared;
use fortnox::types::{Article, WayOfDelivery};

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/tenants", post(create_tenant))
        .route("/tenants/{t}/settings", put(set_settings).get(get_settings))
        .route("/tenants/{t}/company", get(get_company))
        .route("/tenants/{t}/articles", post(add_articles))
        .route("/tenants/{t}/wayofdeliveries", post(add_ways))
        .route("/tenants/{t}/orders", post(add_orders).get(list_orders))
        .route("/tenants/{t}/orders/{n}/done", post(mark_done))
        .route("/tenants/{t}/orders/{n}/cancel", post(cancel))
        .route("/tenants/{t}/tokens", post(issue_tokens))
        .route("/tenants/{t}/revoke", post(revoke))
        .route("/tenants/{t}/invoices", get(invoices))
        .route("/authorize-tenant", put(authorize_tenant))
        .route("/expire-access-tokens", post(expire))
        .route("/faults", post(inject).delete(clear_faults))
        .route("/calls", get(calls).delete(clear_calls))
        .route("/counters", get(counters))
        .route("/tenants/{t}/articles/{n}", delete(delete_article))
        .nest("/ws", crate::ws::control_routes())
}

type S = AxState<Arc<Shared>>;

fn handle(sh: Arc<Shared>) -> SandboxHandle {
    SandboxHandle { shared: sh }
}

fn bad(msg: impl ToString) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": msg.to_string() })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct NewTenant {
    id: String,
    #[serde(default)]
    settings: Option<TenantSettings>,
    /// `company_name`, `organization_number`, `database_number`, each optional.
    #[serde(default)]
    company: Option<CompanySettings>,
}

async fn create_tenant(AxState(sh): S, Json(t): Json<NewTenant>) -> Response {
    let company =
        handle(sh).create_tenant_with_company(&t.id, t.settings, t.company.unwrap_or_default());
    match company {
        Ok(c) => (
            StatusCode::CREATED,
            Json(serde_json::json!({ "id": t.id, "CompanyInformation": c })),
        )
            .into_response(),
        Err(e) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

async fn get_company(AxState(sh): S, Path(t): Path<String>) -> Response {
    Json(serde_json::json!({ "CompanyInformation": handle(sh).company(&t) })).into_response()
}

async fn set_settings(
    AxState(sh): S,
    Path(t): Path<String>,
    Json(s): Json<TenantSettings>,
) -> Response {
    handle(sh).set_settings(&t, s);
    Json(s).into_response()
}

async fn get_settings(AxState(sh): S, Path(t): Path<String>) -> Response {
    Json(handle(sh).settings(&t)).into_response()
}

/// Accepts one object or an array of them.
fn many<I: serde::de::DeserializeOwned>(v: Value) -> Result<Vec<I>, serde_json::Error> {
    match v {
        Value::Array(_) => serde_json::from_value(v),
        other => serde_json::from_value(other).map(|one| vec![one]),
    }
}

async fn add_articles(AxState(sh): S, Path(t): Path<String>, Json(v): Json<Value>) -> Response {
    match many::<Article>(v) {
        Ok(a) => {
            let n = a.len();
            handle(sh).add_articles(&t, a);
            (StatusCode::CREATED, Json(serde_json::json!({ "added": n }))).into_response()
        }
        Err(e) => bad(e),
    }
}

async fn add_ways(AxState(sh): S, Path(t): Path<String>, Json(v): Json<Value>) -> Response {
    match many::<WayOfDelivery>(v) {
        Ok(w) => {
            let n = w.len();
            handle(sh).add_ways_of_delivery(&t, w);
            (StatusCode::CREATED, Json(serde_json::json!({ "added": n }))).into_response()
        }
        Err(e) => bad(e),
    }
}

async fn add_orders(AxState(sh): S, Path(t): Path<String>, Json(v): Json<Value>) -> Response {
    let items = match v {
        Value::Array(items) => items,
        other => vec![other],
    };
    let h = handle(sh);
    let mut created = Vec::new();
    for item in items {
        match h.create_order(&t, item) {
            Ok(o) => created.push(o),
            Err(e) => return e.into_response(),
        }
    }
    (
        StatusCode::CREATED,
        Json(serde_json::json!({ "Orders": created })),
    )
        .into_response()
}

async fn list_orders(AxState(sh): S, Path(t): Path<String>) -> Response {
    Json(serde_json::json!({ "Orders": handle(sh).orders(&t) })).into_response()
}

async fn mark_done(AxState(sh): S, Path((t, n)): Path<(String, String)>) -> Response {
    match handle(sh).mark_done(&t, &n) {
        Ok(o) => Json(serde_json::json!({ "Order": o })).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn cancel(AxState(sh): S, Path((t, n)): Path<(String, String)>) -> Response {
    match handle(sh).cancel_order(&t, &n) {
        Ok(o) => Json(serde_json::json!({ "Order": o })).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct TokenRequest {
    /// Space-separated scopes; the default is every scope.
    #[serde(default)]
    scope: Option<String>,
}

/// The body is optional: none or `{"scope":"article order"}`.
async fn issue_tokens(AxState(sh): S, Path(t): Path<String>, body: Bytes) -> Response {
    let scope = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<TokenRequest>(&body) {
            Ok(r) => r.scope,
            Err(e) => return bad(format!("expected no body or {{\"scope\":\"...\"}}: {e}")),
        }
    };
    let h = handle(sh);
    let tokens = match scope {
        Some(scope) => h.issue_tokens_with_scope(&t, &scope),
        None => h.issue_tokens(&t),
    };
    Json(tokens).into_response()
}

async fn delete_article(AxState(sh): S, Path((t, n)): Path<(String, String)>) -> Response {
    match handle(sh).delete_article(&t, &n) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn revoke(AxState(sh): S, Path(t): Path<String>) -> Response {
    handle(sh).revoke_tokens(&t);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct InvoiceFilter {
    /// Only the invoices of this order (`OrderReference`), credits included.
    #[serde(default)]
    order: Option<String>,
}

async fn invoices(
    AxState(sh): S,
    Path(t): Path<String>,
    Query(f): Query<InvoiceFilter>,
) -> Response {
    let h = handle(sh);
    let invoices = match f.order {
        Some(order) => h.invoices_of_order(&t, &order),
        None => h.invoices(&t),
    };
    Json(serde_json::json!({ "Invoices": invoices })).into_response()
}

#[derive(Deserialize)]
struct TenantRef {
    #[serde(default)]
    tenant: Option<String>,
}

async fn authorize_tenant(AxState(sh): S, Json(r): Json<TenantRef>) -> Response {
    match r.tenant {
        Some(t) => {
            handle(sh).set_authorize_tenant(&t);
            StatusCode::NO_CONTENT.into_response()
        }
        None => bad("tenant is required"),
    }
}

/// The body is optional: none, an empty one (whatever the content type says)
/// or `{}` expires every tenant's access tokens.
async fn expire(AxState(sh): S, body: Bytes) -> Response {
    let tenant = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<TenantRef>(&body) {
            Ok(r) => r.tenant,
            Err(e) => return bad(format!("expected no body or {{\"tenant\":\"...\"}}: {e}")),
        }
    };
    handle(sh).expire_access_tokens(tenant.as_deref());
    StatusCode::NO_CONTENT.into_response()
}

async fn inject(AxState(sh): S, Json(spec): Json<FaultSpec>) -> Response {
    handle(sh).inject(spec);
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_faults(AxState(sh): S) -> Response {
    handle(sh).clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

async fn calls(AxState(sh): S) -> Response {
    Json(handle(sh).calls()).into_response()
}

async fn clear_calls(AxState(sh): S) -> Response {
    handle(sh).clear_calls();
    StatusCode::NO_CONTENT.into_response()
}

async fn counters(AxState(sh): S) -> Response {
    Json(handle(sh).counters()).into_response()
}
