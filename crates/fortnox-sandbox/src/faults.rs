//! The gate in front of `/3`: access tokens, the sliding-window rate limit,
//! injected faults, and the call log.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{OriginalUri, Request, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use super::state::codes;
use super::Shared;
use fortnox::limiter::{RateLimit, SlidingWindow};
use fortnox::metrics::resource_of;
use fortnox::types::{ErrorInformation, KeyCasing};

/// What to inject. Every field is optional; see the README's sandbox section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FaultSpec {
    /// Fail the next N API calls with `status` (default 500), before they
    /// take effect.
    #[serde(default)]
    pub fail_next: Option<u32>,
    #[serde(default)]
    pub status: Option<u16>,
    /// Answer the next N API calls with 429.
    #[serde(default)]
    pub burst_429: Option<u32>,
    /// Answer the next N API calls with 200 and an HTML page instead of JSON (a proxy or
    /// maintenance page in front of Fortnox), before they take effect.
    #[serde(default)]
    pub html_next: Option<u32>,
    /// Hold the answer of API calls back this long, *after* the call took
    /// effect (a slow or lost answer: the client times out, Fortnox acted).
    /// Held answers wait without blocking any other request, and clearing the
    /// faults (or stopping the sandbox) releases them at once.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// How many calls get the latency (unset: until cleared).
    #[serde(default)]
    pub latency_calls: Option<u32>,
    /// Only calls whose full request path (e.g. `/3/orders/7/createinvoice`)
    /// contains this are affected.
    #[serde(default)]
    pub path_contains: Option<String>,
    /// Only calls with this HTTP method (`PUT`, `GET`, ...; any case) are
    /// affected, so a rule can hit `PUT /3/orders/7` and spare `GET /3/orders/7`.
    #[serde(default)]
    pub method: Option<String>,
}

/// Which calls a rule applies to.
#[derive(Debug, Clone, Default)]
struct Scope {
    path_contains: Option<String>,
    method: Option<String>,
}

impl Scope {
    fn of(spec: &FaultSpec) -> Scope {
        Scope {
            path_contains: spec.path_contains.clone(),
            method: spec.method.as_deref().map(str::trim).map(str::to_owned),
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.path_contains
            .as_deref()
            .is_none_or(|f| path.contains(f))
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

#[derive(Debug, Default)]
pub struct Faults {
    fail: Vec<(u32, u16, Scope)>,
    burst_429: Vec<(u32, Scope)>,
    html: Vec<(u32, Scope)>,
    latency: Vec<(Duration, Option<u32>, Scope)>,
}

enum Injected {
    Fail(u16),
    TooMany,
    Html,
}

impl Faults {
    pub fn add(&mut self, spec: FaultSpec) {
        let scope = Scope::of(&spec);
        if let Some(n) = spec.fail_next {
            self.fail
                .push((n, spec.status.unwrap_or(500), scope.clone()));
        }
        if let Some(n) = spec.burst_429 {
            self.burst_429.push((n, scope.clone()));
        }
        if let Some(n) = spec.html_next {
            self.html.push((n, scope.clone()));
        }
        if let Some(ms) = spec.latency_ms {
            self.latency
                .push((Duration::from_millis(ms), spec.latency_calls, scope));
        }
    }

    pub fn clear(&mut self) {
        *self = Faults::default();
    }

    fn before(&mut self, method: &str, path: &str) -> Option<Injected> {
        if let Some(f) = self
            .fail
            .iter_mut()
            .find(|f| f.0 > 0 && f.2.matches(method, path))
        {
            f.0 -= 1;
            return Some(Injected::Fail(f.1));
        }
        if let Some(b) = self
            .burst_429
            .iter_mut()
            .find(|b| b.0 > 0 && b.1.matches(method, path))
        {
            b.0 -= 1;
            return Some(Injected::TooMany);
        }
        if let Some(h) = self
            .html
            .iter_mut()
            .find(|h| h.0 > 0 && h.1.matches(method, path))
        {
            h.0 -= 1;
            return Some(Injected::Html);
        }
        None
    }

    fn latency(&mut self, method: &str, path: &str) -> Option<Duration> {
        let l = self
            .latency
            .iter_mut()
            .find(|l| l.1 != Some(0) && l.2.matches(method, path))?;
        if let Some(n) = l.1.as_mut() {
            *n -= 1;
        }
        Some(l.0)
    }
}

pub fn message_response(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "message": message })),
    )
        .into_response()
}

pub fn error_response(status: u16, info: &ErrorInformation, casing: KeyCasing) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(info.to_json(casing))).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?;
    Some(t.trim().to_string())
}

/// The tenant an API request acts for, put in the request's extensions.
#[derive(Debug, Clone)]
pub struct TenantId(pub String);

/// A refusal: the response and, when known, the tenant (for the call log); boxed, as a
/// response is large beside the admitted case.
type Refusal = Box<(Response, Option<String>)>;

/// Token, rate limit and injected failures, in Fortnox's order. On success:
/// the tenant and any latency to add after the call took effect.
fn admit(
    shared: &Shared,
    token: Option<&str>,
    method: &str,
    path: &str,
    now: Instant,
) -> Result<(String, Option<Duration>), Refusal> {
    let mut st = shared.lock();
    let Some(token) = token else {
        let info = ErrorInformation::new(
            "Kan inte logga in, access-token saknas.",
            codes::MISSING_TOKEN,
        );
        return Err(Box::new((
            error_response(401, &info, KeyCasing::Lower),
            None,
        )));
    };
    let tenant = match st.access.get(token) {
        Some(a) if a.expires_at > now => a.tenant.clone(),
        _ => {
            return Err(Box::new((
                message_response(StatusCode::UNAUTHORIZED, "unauthorized"),
                None,
            )))
        }
    };
    if let Some(limit) = shared.cfg.rate_limit {
        // The sliding window: accepted requests of the last `window`. Fortnox
        // counts arrivals exactly, so no margin (that is the client's slack).
        let w = st.windows.entry(token.to_string()).or_insert_with(|| {
            SlidingWindow::new(RateLimit {
                margin: Duration::ZERO,
                ..limit
            })
        });
        if !w.try_acquire(now) {
            return Err(Box::new((too_many(), Some(tenant))));
        }
    }
    match st.faults.before(method, path) {
        Some(Injected::Fail(status)) => {
            let info = ErrorInformation::new("Ett systemfel har uppstått.", 1000003);
            Err(Box::new((
                error_response(status, &info, KeyCasing::Pascal),
                Some(tenant),
            )))
        }
        Some(Injected::TooMany) => Err(Box::new((too_many(), Some(tenant)))),
        Some(Injected::Html) => Err(Box::new((html_page(), Some(tenant)))),
        None => Ok((tenant, st.faults.latency(method, path))),
    }
}

fn html_page() -> Response {
    axum::response::Html(
        "<!doctype html><html><head><title>Fortnox</title></head><body><h1>Service temporarily unavailable</h1></body></html>",
    )
    .into_response()
}

fn too_many() -> Response {
    message_response(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests")
}

pub(crate) async fn api_gate(
    AxState(shared): AxState<Arc<Shared>>,
    mut req: Request,
    next: Next,
) -> Response {
    let method = req.method().to_string();
    // The API router is nested under `/3`, which strips the prefix from
    // `req.uri()`; rules and the call log want the path the client sent.
    let uri = req
        .extensions()
        .get::<OriginalUri>()
        .map(|o| o.0.clone())
        .unwrap_or_else(|| req.uri().clone());
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let token = bearer(req.headers());
    let now = Instant::now();
    // Subscribed before admission, so a release that comes while the call
    // runs still frees its held answer.
    let released = shared.release.subscribe();

    let decision = admit(&shared, token.as_deref(), &method, &path, now);

    match decision {
        Err(refusal) => {
            let (resp, tenant) = *refusal;
            shared.record(&method, &path, &query, resp.status().as_u16(), tenant, None);
            resp
        }
        Ok((tenant, latency)) => {
            req.extensions_mut().insert(TenantId(tenant.clone()));
            let resp = next.run(req).await;
            // Logged when the effect happened, before any injected delay.
            shared.record(
                &method,
                &path,
                &query,
                resp.status().as_u16(),
                Some(tenant),
                None,
            );
            if let Some(d) = latency {
                hold(d, released).await;
            }
            resp
        }
    }
}

/// The release generation that means "the sandbox is stopping".
pub(crate) const STOPPED: u64 = u64::MAX;

/// Waits `d`, or less if the faults are cleared or the sandbox stops. Only
/// this request's task waits: no lock is held, other requests go on.
async fn hold(d: Duration, mut released: watch::Receiver<u64>) {
    // Released while the call ran, or stopping: answer now.
    if released.has_changed().unwrap_or(true) || *released.borrow() == STOPPED {
        return;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        // An error means the sandbox is gone: stop holding as well.
        _ = released.changed() => {}
    }
}

pub fn resource(path: &str) -> String {
    resource_of(path)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::state::{AccessToken, State};
    use crate::SandboxConfig;

    /// A sandbox's shared state without a server, with one access token.
    fn shared(limit: RateLimit) -> Shared {
        let mut state = State::default();
        state.access.insert(
            "tok".into(),
            AccessToken {
                tenant: "t1".into(),
                expires_at: Instant::now() + Duration::from_secs(3600),
                scope: String::new(),
            },
        );
        Shared {
            cfg: SandboxConfig {
                rate_limit: Some(limit),
                ..SandboxConfig::default()
            },
            base_url: String::new(),
            state: Mutex::new(state),
            started: Instant::now(),
            release: watch::Sender::new(0),
        }
    }

    fn admitted(shared: &Shared, now: Instant) -> bool {
        admit(shared, Some("tok"), "GET", "/3/orders", now).is_ok()
    }

    #[test]
    fn the_window_counts_accepted_arrivals_with_no_margin() {
        // The margin is the client's slack; Fortnox, and so the sandbox, has none.
        let limit = RateLimit {
            max: 2,
            window: Duration::from_millis(200),
            margin: Duration::from_millis(100),
        };
        let shared = shared(limit);
        let t0 = Instant::now();
        assert!(admitted(&shared, t0));
        assert!(admitted(&shared, t0));
        assert!(!admitted(&shared, t0 + Duration::from_millis(199)));
        // The 429 was not counted: one window on, two pass again.
        assert!(admitted(&shared, t0 + limit.window));
        assert!(admitted(&shared, t0 + limit.window));
        assert!(!admitted(&shared, t0 + limit.window));
    }
}
