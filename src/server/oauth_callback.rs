//! `GET /oauth/fortnox/callback?code&state`: where Fortnox sends the merchant back after
//! approving the connection. The answer is a small page for a person, not JSON.
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
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
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>{t}</h1><p>{x}</p></body></html>",
        t = escape(title),
        x = escape(text)
    );
    (status, Html(body)).into_response()
}

pub async fn callback(State(app): State<App>, Query(params): Query<CallbackParams>) -> Response {
    if let Some(error) = params.error {
        let detail = params.error_description.unwrap_or_default();
        return page(StatusCode::BAD_REQUEST, "Fortnox was not connected", &format!("Fortnox answered `{error}` {detail}. Start the connection again from the integration page."));
    }
    let (Some(code), Some(state)) = (params.code, params.state) else {
        return page(StatusCode::BAD_REQUEST, "Fortnox was not connected", "The link is missing its code or state. Start the connection again from the integration page.");
    };
    let merchant_id = match app.store.take_oauth_state(&state).await {
        Ok(Some(merchant_id)) => merchant_id,
        Ok(None) => {
            return page(StatusCode::BAD_REQUEST, "Fortnox was not connected", "This connection link was already used or has expired (links live 10 minutes). Start the connection again.");
        }
        Err(error) => {
            tracing::error!(%error, "OAuth callback: cannot read the state");
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The connection could not be saved. Try again in a moment.",
            );
        }
    };
    if let Err(error) = app.fortnox.connect(&merchant_id.to_string(), &code).await {
        tracing::warn!(merchant_id, %error, "OAuth callback: code exchange failed");
        return page(StatusCode::BAD_GATEWAY, "Fortnox was not connected", "Fortnox did not accept the connection. Start the connection again; if it keeps failing, contact support (the details are in the service log).");
    }
    tracing::info!(merchant_id, "Fortnox connected");
    crate::services::fortnox_connection::after_connected(&app.store, merchant_id).await;
    page(StatusCode::OK, "Fortnox connected", "Your Fortnox account is connected. Orders you mark as done in Fortnox will now be imported and fulfilled.")
}
