//! The sandbox's OAuth: an authorize page that approves at once, and the token
//! endpoint with Fortnox's recorded error bodies and (odd) content types.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State as AxState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine;
use tokio::time::Instant;

use super::handle::{issue_tokens, random_token, DEFAULT_SCOPE};
use super::state::AuthCode;
use super::Shared;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/auth", get(authorize))
        .route("/token", post(token))
}

/// `GET /oauth-v1/auth`: approves at once and redirects to
/// `redirect_uri?code=..&state=..`. The sandbox-only `tenant` parameter picks
/// the Fortnox account; without it, the control-set default or `default`.
async fn authorize(
    AxState(shared): AxState<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let query = serde_json::to_string(&q).unwrap_or_default();
    if q.get("client_id") != Some(&shared.cfg.client_id) {
        shared.record(
            "GET",
            "/oauth-v1/auth",
            &query,
            400,
            None,
            Some("invalid_client".into()),
        );
        return (StatusCode::BAD_REQUEST, "invalid_client").into_response();
    }
    let (Some(redirect), Some(_scope)) = (q.get("redirect_uri"), q.get("scope")) else {
        shared.record(
            "GET",
            "/oauth-v1/auth",
            &query,
            400,
            None,
            Some("invalid_request".into()),
        );
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri and scope are required",
        )
            .into_response();
    };
    let Ok(mut url) = reqwest::Url::parse(redirect) else {
        return (StatusCode::BAD_REQUEST, "invalid redirect_uri").into_response();
    };
    let code = random_token(32);
    let tenant = {
        let mut st = shared.lock();
        let tenant = q
            .get("tenant")
            .cloned()
            .or_else(|| st.authorize_tenant.clone())
            .unwrap_or_else(|| "default".into());
        st.tenant_mut(&tenant);
        st.codes.insert(
            code.clone(),
            AuthCode {
                tenant: tenant.clone(),
                redirect_uri: redirect.clone(),
                expires_at: Instant::now() + shared.cfg.code_ttl,
                used: false,
            },
        );
        tenant
    };
    url.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = q.get("state") {
        url.query_pairs_mut().append_pair("state", state);
    }
    shared.record(
        "GET",
        "/oauth-v1/auth",
        &query,
        303,
        Some(tenant),
        Some("approved".into()),
    );
    Redirect::to(url.as_str()).into_response()
}

fn oauth_error(status: StatusCode, content_type: &str, error: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description }).to_string();
    (
        status,
        [(header::CONTENT_TYPE, content_type.to_string())],
        body,
    )
        .into_response()
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// `POST /oauth-v1/token`.
async fn token(
    AxState(shared): AxState<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    let (resp, tenant, outcome) = token_inner(&shared, &headers, &form, &grant);
    shared.record(
        "POST",
        "/oauth-v1/token",
        "",
        resp.status().as_u16(),
        tenant,
        Some(format!("{grant} {outcome}")),
    );
    resp
}

fn token_inner(
    shared: &Shared,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    grant: &str,
) -> (Response, Option<String>, &'static str) {
    let creds_ok = basic_credentials(headers).is_some_and(|(id, secret)| {
        id == shared.cfg.client_id && secret == shared.cfg.client_secret
    });
    if !creds_ok {
        let r = oauth_error(
            StatusCode::UNAUTHORIZED,
            "text/plain",
            "invalid_client",
            "The client credentials are invalid",
        );
        return (r, None, "invalid_client");
    }
    let now = Instant::now();
    let mut st = shared.lock();
    let tenant = match grant {
        "authorization_code" => {
            let code = form.get("code").map(String::as_str).unwrap_or("");
            let redirect = form.get("redirect_uri").map(String::as_str).unwrap_or("");
            match st.codes.get_mut(code) {
                Some(c) if !c.used && c.expires_at > now && c.redirect_uri == redirect => {
                    c.used = true;
                    Some((c.tenant.clone(), DEFAULT_SCOPE.to_string()))
                }
                _ => None,
            }
        }
        "refresh_token" => {
            let rt = form.get("refresh_token").map(String::as_str).unwrap_or("");
            match st.refresh.get_mut(rt) {
                Some(r) if !r.used && r.expires_at > now => {
                    // Single use: this token is spent whatever happens next.
                    r.used = true;
                    Some((r.tenant.clone(), r.scope.clone()))
                }
                _ => None,
            }
        }
        _ => {
            let r = oauth_error(
                StatusCode::BAD_REQUEST,
                "text/html",
                "unsupported_grant_type",
                "Unsupported grant type",
            );
            return (r, None, "unsupported_grant_type");
        }
    };
    match tenant {
        Some((t, scope)) => {
            let body = issue_tokens(shared, &mut st, &t, &scope);
            (axum::Json(body).into_response(), Some(t), "ok")
        }
        None => {
            let desc = if grant == "refresh_token" {
                "Invalid refresh token"
            } else {
                "Invalid authorization code"
            };
            // Fortnox sends this JSON labelled text/html.
            let r = oauth_error(StatusCode::BAD_REQUEST, "text/html", "invalid_grant", desc);
            (r, None, "invalid_grant")
        }
    }
}

/// What the sandbox's authorize page sends the browser back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub code: String,
    pub state: String,
}

/// Opens an authorize URL of the sandbox as a browser would, without following the
/// redirect back to the app, and returns the `code` and `state` it carries (for the demo
/// and tests, which complete the connection themselves).
pub async fn approve(authorize_url: &str) -> anyhow::Result<Approval> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let answer = http.get(authorize_url).send().await?;
    let back = answer
        .headers()
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| reqwest::Url::parse(l).ok())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the authorize page did not send the browser back: HTTP {}",
                answer.status()
            )
        })?;
    let param = |name: &str| {
        back.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| anyhow::anyhow!("sent back without `{name}`: {back}"))
    };
    Ok(Approval {
        code: param("code")?,
        state: param("state")?,
    })
}
