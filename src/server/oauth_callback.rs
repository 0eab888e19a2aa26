//! `GET /oauth/fortnox/callback?code&state`: where Fortnox sends the person back after
//! they approved (or declined) the connection.
//!
//! The callback does not connect anything by itself. Whoever opens it holds a consent, but
//! the callback cannot tell who they are: a merchant could have forwarded the link to
//! someone at another company, whose approval would then connect that company's Fortnox.
//! So `code` and `state` go back to the signed-in frontend (`FORTNOX_CONNECT_RETURN_URL`),
//! which completes the connection with `completeFortnoxConnection` under the person's own
//! token; the service accepts that only from the person who called `connectFortnox`.
//! Without a frontend URL, the page shows what to complete the connection with.
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::App;

#[derive(Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"referrer\" content=\"no-referrer\"><title>{t}</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>{t}</h1><p>{x}</p></body></html>",
        t = escape(title),
        x = escape(text)
    );
    (status, Html(body)).into_response()
}

pub async fn callback(State(app): State<App>, Query(params): Query<CallbackParams>) -> Response {
    if let Some(frontend) = &app.connect_return_url {
        let mut url = frontend.clone();
        {
            let mut query = url.query_pairs_mut();
            let pairs = [
                ("code", &params.code),
                ("state", &params.state),
                ("error", &params.error),
                ("error_description", &params.error_description),
            ];
            for (name, value) in pairs {
                if let Some(value) = value {
                    query.append_pair(name, value);
                }
            }
        }
        return Redirect::to(url.as_str()).into_response();
    }
    if let Some(error) = params.error {
        let detail = params.error_description.unwrap_or_default();
        return page(StatusCode::BAD_REQUEST, "Fortnox was not connected", &format!("Fortnox answered `{error}` {detail}. Start the connection again from the integration page."));
    }
    let (Some(code), Some(state)) = (params.code, params.state) else {
        return page(StatusCode::BAD_REQUEST, "Fortnox was not connected", "The link is missing its code or state. Start the connection again from the integration page.");
    };
    page(
        StatusCode::OK,
        "Fortnox approved the connection",
        &format!(
            "One step is left, and only the person who started the connection can take it: \
             within 10 minutes, complete it from the integration page, or call \
             completeFortnoxConnection(merchantId, code: \"{code}\", state: \"{state}\") with your own token. \
             If you did not start this connection yourself, do nothing: nothing was connected."
        ),
    )
}
