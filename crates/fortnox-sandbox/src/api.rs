//! The `/3` resources. The gate (`faults::api_gate`) has already checked the
//! token and the rate limit and put the tenant in the request.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Extension, Router};
use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;
use serde_json::{Map, Value};

use super::faults::{error_response, TenantId};
use super::state::{codes, list_item, now_naive, SResult, SandboxError};
use super::Shared;
use fortnox::types::*;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/orders", get(list_orders).post(create_order))
        .route("/orders/{n}", get(get_order).put(update_order))
        .route("/orders/{n}/createinvoice", put(create_invoice))
        .route("/orders/{n}/cancel", put(cancel_order))
        .route("/orders/{n}/warehouseready", put(warehouse_ready))
        .route("/articles", get(list_articles).post(create_article))
        .route(
            "/articles/{n}",
            get(get_article).put(update_article).delete(delete_article),
        )
        .route("/wayofdeliveries", get(list_ways))
        .route("/wayofdeliveries/{code}", get(get_way))
        .route("/invoices/{n}", get(get_invoice))
        .route("/invoices/{n}/credit", put(credit_invoice))
        .route("/companyinformation", get(company_information))
}

type S = AxState<Arc<Shared>>;
type T = Extension<TenantId>;
type Q = Query<HashMap<String, String>>;

impl IntoResponse for SandboxError {
    fn into_response(self) -> Response {
        error_response(self.status, &self.info, self.casing)
    }
}

/// Serializes like Fortnox: order-row quantities as strings.
fn fortnox_json<V: Serialize>(status: StatusCode, v: &V) -> Response {
    match serde_json::to_value(v) {
        Ok(mut value) => {
            stringify_quantities(&mut value);
            (status, axum::Json(value)).into_response()
        }
        Err(e) => SandboxError {
            status: 500,
            info: ErrorInformation::new(format!("Systemfel: {e}"), 1000003),
            casing: KeyCasing::Pascal,
        }
        .into_response(),
    }
}

fn respond<V: Serialize>(status: StatusCode, r: SResult<V>) -> Response {
    match r {
        Ok(v) => fortnox_json(status, &v),
        Err(e) => e.into_response(),
    }
}

/// The object inside `{"Order":{...}}` (or another wrapper key).
fn unwrap_body(bytes: &Bytes, key: &str) -> SResult<Map<String, Value>> {
    let v: Value = serde_json::from_slice(bytes).map_err(SandboxError::bad_json)?;
    match v.get(key) {
        Some(Value::Object(m)) => Ok(m.clone()),
        _ => Err(SandboxError::bad_json(format!(
            "expected {{\"{key}\":{{...}}}}"
        ))),
    }
}

fn invalid_filter() -> SandboxError {
    SandboxError::bad_request("Ett ogiltigt filter har använts.", codes::INVALID_FILTER)
}

/// `page` (from 1) and `limit` (default 100, at most 500).
fn paginate<I>(items: Vec<I>, q: &HashMap<String, String>) -> SResult<(MetaInformation, Vec<I>)> {
    let page: i64 = match q.get("page") {
        Some(p) => p
            .parse()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(invalid_filter)?,
        None => 1,
    };
    let limit: i64 = match q.get("limit") {
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| *l >= 1)
            .ok_or_else(invalid_filter)?
            .min(500),
        None => 100,
    };
    let total = items.len() as i64;
    let pages = (total + limit - 1) / limit;
    let start = ((page - 1) * limit).min(total) as usize;
    let rows: Vec<I> = items.into_iter().skip(start).take(limit as usize).collect();
    Ok((
        MetaInformation {
            total_resources: total,
            total_pages: pages,
            current_page: page,
        },
        rows,
    ))
}

fn parse_lastmodified(s: &str) -> Option<NaiveDateTime> {
    [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
}

fn parse_bool(s: &str) -> SResult<bool> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid_filter()),
    }
}

async fn list_orders(AxState(sh): S, Extension(TenantId(t)): T, Query(q): Q) -> Response {
    respond(StatusCode::OK, list_orders_inner(&sh, &t, &q))
}

fn list_orders_inner(sh: &Shared, t: &str, q: &HashMap<String, String>) -> SResult<Value> {
    let today = now_naive().date().format("%Y-%m-%d").to_string();
    let filter = q.get("filter").map(String::as_str);
    if !matches!(
        filter,
        None | Some("cancelled" | "expired" | "invoicecreated" | "invoicenotcreated")
    ) {
        return Err(invalid_filter());
    }
    let lastmodified = match q.get("lastmodified") {
        Some(s) => Some(parse_lastmodified(s).ok_or_else(invalid_filter)?),
        None => None,
    };
    let notcompleted = q.get("notcompleted").map(|s| parse_bool(s)).transpose()?;
    let mut st = sh.lock();
    let tenant = st.tenant_mut(t);
    let mut items: Vec<OrderListItem> = tenant
        .orders
        .values()
        .filter(|s| {
            let o = &s.order;
            let date = o.order_date.as_deref().unwrap_or("");
            let invoiced = o.invoice().is_some();
            let by_filter = match filter {
                None => true,
                Some("cancelled") => o.cancelled,
                Some("invoicecreated") => invoiced,
                Some("invoicenotcreated") => !invoiced && !o.cancelled,
                // expired: not delivered in time (delivery date passed, not invoiced)
                _ => {
                    !o.cancelled
                        && !invoiced
                        && o.delivery_date
                            .as_deref()
                            .is_some_and(|d| d < today.as_str())
                }
            };
            by_filter
                && lastmodified.is_none_or(|lm| s.modified >= lm)
                && q.get("fromdate").is_none_or(|f| date >= f.as_str())
                && q.get("todate").is_none_or(|f| date <= f.as_str())
                && notcompleted.is_none_or(|nc| o.not_completed == nc)
                && q.get("documentnumber")
                    .is_none_or(|d| o.document_number.as_str() == d)
                && q.get("customernumber")
                    .is_none_or(|c| o.customer_number.as_deref() == Some(c.as_str()))
                && q.get("ordertype").is_none_or(|ty| {
                    o.order_type
                        .as_deref()
                        .is_some_and(|x| x.eq_ignore_ascii_case(ty))
                })
        })
        .map(|s| list_item(&s.order))
        .collect();
    drop(st);
    if q.get("sortorder").map(String::as_str) == Some("descending") {
        items.reverse();
    }
    let (meta, orders) = paginate(items, q)?;
    serde_json::to_value(OrderList { meta, orders }).map_err(SandboxError::bad_json)
}

async fn create_order(AxState(sh): S, Extension(TenantId(t)): T, body: Bytes) -> Response {
    let r = unwrap_body(&body, "Order")
        .and_then(|m| sh.lock().tenant_mut(&t).create_order(&m, &sh.base_url))
        .map(|order| OrderEnvelope { order });
    respond(StatusCode::CREATED, r)
}

async fn get_order(AxState(sh): S, Extension(TenantId(t)): T, Path(n): Path<String>) -> Response {
    let r = sh.lock().tenant_mut(&t).order(&n).map(|s| OrderEnvelope {
        order: s.order.clone(),
    });
    respond(StatusCode::OK, r)
}

async fn update_order(
    AxState(sh): S,
    Extension(TenantId(t)): T,
    Path(n): Path<String>,
    body: Bytes,
) -> Response {
    let r = unwrap_body(&body, "Order")
        .and_then(|m| sh.lock().tenant_mut(&t).update_order(&n, &m))
        .map(|order| OrderEnvelope { order });
    respond(StatusCode::OK, r)
}

async fn create_invoice(
    AxState(sh): S,
    Extension(TenantId(t)): T,
    Path(n): Path<String>,
) -> Response {
    let r = sh
        .lock()
        .tenant_mut(&t)
        .create_invoice(&n, &sh.base_url)
        .map(|invoice| InvoiceEnvelope { invoice });
    respond(StatusCode::OK, r)
}

async fn cancel_order(
    AxState(sh): S,
    Extension(TenantId(t)): T,
    Path(n): Path<String>,
) -> Response {
    let r = sh
        .lock()
        .tenant_mut(&t)
        .cancel_order(&n)
        .map(|order| OrderEnvelope { order });
    respond(StatusCode::OK, r)
}

async fn warehouse_ready(
    AxState(sh): S,
    Extension(TenantId(t)): T,
    Path(n): Path<String>,
) -> Response {
    let r = sh
        .lock()
        .tenant_mut(&t)
        .set_warehouse_ready(&n)
        .map(|order| OrderEnvelope { order });
    respond(StatusCode::OK, r)
}

async fn list_articles(
    AxState(sh): S,
    Extension(TenantId(t)): T,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let r = (|| {
        let active = match q.get("filter").map(String::as_str) {
            None => None,
            Some("active") => Some(true),
            Some("inactive") => Some(false),
            Some(_) => return Err(invalid_filter()),
        };
        let items: Vec<Article> = sh
            .lock()
            .tenant_mut(&t)
            .articles
            .values()
            .filter(|a| active.is_none_or(|want| a.active.unwrap_or(true) == want))
            .map(|a| Article {
                default_stock_point: None,
                default_stock_location: None,
                ..a.clone()
            })
            .collect();
        let (meta, articles) = paginate(items, &q)?;
        Ok(ArticleList { meta, articles })
    })();
    respond(StatusCode::OK, r)
}

async fn get_article(AxState(sh): S, Extension(TenantId(t)): T, Path(n): Path<String>) -> Response {
    let r = sh
        .lock()
        .tenant_mut(&t)
        .article(&n)
        .map(|a| ArticleEnvelope { article: a.clone() });
    respond(StatusCode::OK, r)
}

async fn update_article(
    AxState(sh): S,
    Extension(TenantId(t)): T,
    Path(n): Path<String>,
    body: Bytes,
) -> Response {
    let r = unwrap_body(&body, "Article")
        .and_then(|m| {
            sh.lock()
                .tenant_mut(&t)
                .update_article(&n, &m, &sh.base_url)
        })
        .map(|article| ArticleEnvelope { article });
    respond(StatusCode::OK, r)
}

async fn create_article(AxState(sh): S, Extension(TenantId(t)): T, body: Bytes) -> Response {
    let r = unwrap_body(&body, "Article")
        .and_then(|m| sh.lock().tenant_mut(&t).create_article(&m, &sh.base_url))
        .map(|article| ArticleEnvelope { article });
    respond(StatusCode::CREATED, r)
}

async fn delete_article(
    AxState(sh): S,
    Extension(TenantId(t)): T,
    Path(n): Path<String>,
) -> Response {
    match sh.lock().tenant_mut(&t).delete_article(&n) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn list_ways(
    AxState(sh): S,
    Extension(TenantId(t)): T,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let ways = sh.lock().tenant_mut(&t).ways.clone();
    let r = paginate(ways, &q).map(|(meta, way_of_deliveries)| WayOfDeliveryList {
        meta: Some(meta),
        way_of_deliveries,
    });
    respond(StatusCode::OK, r)
}

async fn get_way(AxState(sh): S, Extension(TenantId(t)): T, Path(code): Path<String>) -> Response {
    let way = sh
        .lock()
        .tenant_mut(&t)
        .ways
        .iter()
        .find(|w| w.code == code)
        .cloned();
    match way {
        Some(w) => fortnox_json(StatusCode::OK, &serde_json::json!({ "WayOfDelivery": w })),
        None => SandboxError::not_found("Kan inte hitta leveranssättet.", codes::WAY_NOT_FOUND)
            .into_response(),
    }
}

async fn get_invoice(AxState(sh): S, Extension(TenantId(t)): T, Path(n): Path<String>) -> Response {
    let r = sh
        .lock()
        .tenant_mut(&t)
        .invoice(&n)
        .map(|invoice| InvoiceEnvelope {
            invoice: invoice.clone(),
        });
    respond(StatusCode::OK, r)
}

async fn credit_invoice(
    AxState(sh): S,
    Extension(TenantId(t)): T,
    Path(n): Path<String>,
) -> Response {
    let r = sh
        .lock()
        .tenant_mut(&t)
        .credit_invoice(&n, &sh.base_url)
        .map(|invoice| InvoiceEnvelope { invoice });
    respond(StatusCode::OK, r)
}

async fn company_information(AxState(sh): S, Extension(TenantId(t)): T) -> Response {
    let company_information = sh.lock().tenant_mut(&t).company.clone();
    fortnox_json(
        StatusCode::OK,
        &CompanyInformationEnvelope {
            company_information,
        },
    )
}
