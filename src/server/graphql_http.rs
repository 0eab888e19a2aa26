//! Authentication happens here, once per request or WebSocket connection: a request
//! without a valid token never reaches a resolver.
use async_graphql::http::{GraphiQLSource, ALL_WEBSOCKET_PROTOCOLS};
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse};
use axum::extract::{FromRequest, FromRequestParts, State, WebSocketUpgrade};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
// `AppSchema::execute` (the size check and the error codes around the schema).
use async_graphql::Executor;

use super::App;
use crate::graphql::ApiError;

/// An error answered before the schema runs, in the same shape as the schema's errors.
fn refused(status: StatusCode, error: ApiError) -> Response {
    let response = async_graphql::Response::from_errors(vec![error.into_server_error()]);
    (status, Json(response)).into_response()
}

/// The token is checked before a byte of the body is read, so a request without a valid
/// token costs nothing whatever its body; the body is then read up to `max_body_bytes`
/// and refused with 413 beyond that, while it is read.
pub async fn graphql_post(State(app): State<App>, request: axum::extract::Request) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = match app.jwt.verify_header(header) {
        Ok(principal) => principal,
        Err(error) => return refused(StatusCode::UNAUTHORIZED, error.into()),
    };
    let limit = app.max_body_bytes;
    let too_large = || {
        refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::invalid_input(format!(
                "the request body is larger than {limit} bytes: send one GraphQL operation with its variables"
            )),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    let body = axum::body::Body::new(http_body_util::Limited::new(body, limit));
    let request = axum::extract::Request::from_parts(parts, body);
    let request = match GraphQLRequest::<GraphQLRejection>::from_request(request, &()).await {
        Ok(request) => request,
        Err(GraphQLRejection(error)) => {
            // `Limited` stops the read with "length limit exceeded" (a chunked body).
            if error.to_string().contains("length limit exceeded") {
                return too_large();
            }
            let status = match error {
                async_graphql::ParseRequestError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            let message = format!(
                "the request body is not a GraphQL request ({error}): send JSON with `query` and optionally `variables`"
            );
            return refused(status, ApiError::invalid_input(message));
        }
    };
    let response: GraphQLResponse = app
        .schema
        .execute(request.into_inner().data(principal))
        .await
        .into();
    response.into_response()
}

/// GET serves GraphiQL, or upgrades to a `graphql-transport-ws` WebSocket whose
/// `connection_init` payload carries the token.
pub async fn graphql_get(State(app): State<App>, request: axum::extract::Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let wants_upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !wants_upgrade {
        return Html(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql")
                .finish(),
        )
        .into_response();
    }
    let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &()).await {
        Ok(protocol) => protocol,
        Err(rejection) => return rejection.into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .read_buffer_size(super::websocket::READ_BUFFER)
        .write_buffer_size(super::websocket::WRITE_BUFFER)
        .max_message_size(super::websocket::MAX_CLIENT_MESSAGE)
        .max_frame_size(super::websocket::MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| super::websocket::serve(app, socket, protocol))
        .into_response()
}
