//! The one error type of the GraphQL layer. Every error a client sees carries
//! `extensions.code`, one of a fixed set (see [`ErrorCode`]), so clients can branch on the
//! code and show the message, which says what failed and what to do. Internal failures
//! are logged with their details and reach the client only as a generic message.
//!
//! Resolvers return [`Result`] (this module's, so `?` converts the use cases' errors,
//! and store and Fortnox errors, through the `From` impls below). `ApiError` deliberately does not
//! implement `Display`: async-graphql turns any `Display` type into an error with its text
//! and no code, and that must not happen by accident.
use std::sync::Arc;

use async_graphql::{ErrorExtensions, Response, ServerError, ID};

use crate::auth::AuthError;
use crate::domain::state_machine::UnknownState;
use crate::domain::TransitionRefused;
use crate::fortnox::FortnoxError;
use crate::services::ServiceError;
use crate::store::catalog::CatalogError;
use crate::store::transitions::TransitionError;
use crate::store::StoreError;

/// What resolvers return; named `Result` so that async-graphql's macros recognise it.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// The value of `extensions.code`. The set is part of the API: add to it, never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// No valid token (HTTP 401, or a refused WebSocket `connection_init`).
    Unauthenticated,
    /// The thing does not exist, or belongs to a merchant outside the caller's token.
    NotFound,
    /// The caller's role may not do this.
    Forbidden,
    /// An argument is malformed or out of range; the message names it.
    InvalidInput,
    /// The current data conflicts with the request (a duplicate, a concurrent change, or
    /// Fortnox not connected); `extensions.reason` may say which.
    Conflict,
    /// The order's state does not allow this change.
    TransitionRefused,
    /// Fortnox failed or refused the request.
    Upstream,
    /// A fault on our side; the details are in our log only.
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::Unauthenticated,
        ErrorCode::NotFound,
        ErrorCode::Forbidden,
        ErrorCode::InvalidInput,
        ErrorCode::Conflict,
        ErrorCode::TransitionRefused,
        ErrorCode::Upstream,
        ErrorCode::Internal,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::InvalidInput => "INVALID_INPUT",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::TransitionRefused => "TRANSITION_REFUSED",
            ErrorCode::Upstream => "UPSTREAM",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

/// What an internal error shows: nothing about the cause.
pub const INTERNAL_MESSAGE: &str =
    "internal error: the details were logged on the server; try again, and report it if it persists";

/// An error for a GraphQL client: a code, a message for people, and optionally a finer
/// `reason` (e.g. `DUPLICATE_SKU`) for clients that need to tell cases of one code apart.
#[derive(Debug, Clone)]
#[must_use]
pub struct ApiError {
    code: ErrorCode,
    /// For `Internal`, the details for the log; never sent.
    message: String,
    reason: Option<&'static str>,
}

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            reason: None,
        }
    }

    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Unauthenticated, message)
    }

    /// `what` ("order", "merchant", ...) was not found, or is another tenant's: the two
    /// read the same, so that nothing leaks. Clients (and tests) match this text exactly.
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Forbidden, message)
    }

    pub fn invalid_input(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::InvalidInput, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Conflict, message)
    }

    pub fn transition_refused(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::TransitionRefused, message)
    }

    pub fn upstream(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Upstream, message)
    }

    /// Logged with `details` when it reaches a client, which sees only [`INTERNAL_MESSAGE`].
    pub fn internal(details: impl std::fmt::Display) -> ApiError {
        ApiError::new(ErrorCode::Internal, details.to_string())
    }

    /// An id argument that cannot be one of ours (ids are numbers).
    pub fn invalid_id(what: &str, id: &str) -> ApiError {
        ApiError::invalid_input(format!(
            "`{id}` is not a valid {what} id: use an id this API returned"
        ))
    }

    pub fn with_reason(mut self, reason: &'static str) -> ApiError {
        self.reason = Some(reason);
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn reason(&self) -> Option<&'static str> {
        self.reason
    }

    /// The message the client sees.
    pub fn message(&self) -> &str {
        match self.code {
            ErrorCode::Internal => INTERNAL_MESSAGE,
            _ => &self.message,
        }
    }

    /// For answers built outside a resolver (the HTTP layer): no position in a query.
    pub fn into_server_error(self) -> ServerError {
        let error = async_graphql::Error::from(self);
        let mut server_error = ServerError::new(error.message, None);
        server_error.extensions = error.extensions;
        server_error
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        if error.code == ErrorCode::Internal {
            tracing::error!(details = %error.message, "internal error while answering a GraphQL request");
        }
        let code = error.code.as_str();
        let reason = error.reason;
        async_graphql::Error::new(error.message()).extend_with(|_, e| {
            e.set("code", code);
            if let Some(reason) = reason {
                e.set("reason", reason);
            }
        })
    }
}

/// Parses an id argument; anything but a number is invalid input.
pub fn parse_id(id: &ID, what: &str) -> Result<i64> {
    id.parse::<i64>()
        .map_err(|_| ApiError::invalid_id(what, id.as_str()))
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::internal(error)
    }
}

/// The DataLoaders share one error between the fields of a batch.
impl From<Arc<StoreError>> for ApiError {
    fn from(error: Arc<StoreError>) -> Self {
        ApiError::internal(error)
    }
}

/// A stored state we cannot read is corrupt data, not the caller's fault.
impl From<UnknownState> for ApiError {
    fn from(error: UnknownState) -> Self {
        ApiError::internal(format!("stored order state: {error}"))
    }
}

impl From<TransitionRefused> for ApiError {
    fn from(refused: TransitionRefused) -> Self {
        ApiError::transition_refused(refused.to_string())
    }
}

impl From<TransitionError> for ApiError {
    fn from(error: TransitionError) -> Self {
        match error {
            TransitionError::NotFound => ApiError::not_found("order"),
            TransitionError::Refused(refused) => refused.into(),
            conflict @ TransitionError::Conflict { .. } => ApiError::conflict(conflict.to_string()),
            TransitionError::Store(e) => e.into(),
        }
    }
}

/// The catalogue's messages are written for API users and kept; the finer kinds it had as
/// codes before live on as `reason`.
impl From<CatalogError> for ApiError {
    fn from(error: CatalogError) -> Self {
        let message = error.to_string();
        match error {
            CatalogError::Invalid(_) => ApiError::invalid_input(message),
            CatalogError::NotFound(what) => ApiError::not_found(what),
            CatalogError::DuplicateSku { .. } => {
                ApiError::conflict(message).with_reason("DUPLICATE_SKU")
            }
            CatalogError::DuplicateRule { .. } => {
                ApiError::conflict(message).with_reason("DUPLICATE_SHIPPING_RULE")
            }
            CatalogError::UnknownShippingMethod { .. } => {
                ApiError::invalid_input(message).with_reason("UNKNOWN_SHIPPING_METHOD")
            }
            CatalogError::UnknownSkus(_) => {
                ApiError::invalid_input(message).with_reason("UNKNOWN_SKU")
            }
            CatalogError::Store(e) => e.into(),
        }
    }
}

/// The use cases' errors: their messages are written for API users, except the internal
/// ones, which are logged.
impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        let message = error.to_string();
        match error {
            ServiceError::InvalidInput(_) => ApiError::invalid_input(message),
            ServiceError::NotFound(what) => ApiError::not_found(what),
            ServiceError::TransitionRefused(_) => ApiError::transition_refused(message),
            ServiceError::Transition(e) => e.into(),
            ServiceError::Catalog(e) => e.into(),
            ServiceError::UnknownArticles(_) => {
                ApiError::invalid_input(message).with_reason("UNKNOWN_ARTICLE")
            }
            // Fortnox cannot be reached until the operator sets the app up; the message
            // names no secret, and tells the operator what to do.
            ServiceError::FortnoxNotConfigured => {
                ApiError::upstream(message).with_reason("FORTNOX_NOT_CONFIGURED")
            }
            // Not a fault of Fortnox nor of the request: the merchant must (re)connect.
            ServiceError::FortnoxNotConnected => {
                ApiError::conflict(message).with_reason("FORTNOX_NOT_CONNECTED")
            }
            ServiceError::FortnoxNeedsReauthorization { .. } => {
                ApiError::conflict(message).with_reason("FORTNOX_NEEDS_REAUTHORIZATION")
            }
            ServiceError::ConnectionLinkInvalid => {
                ApiError::invalid_input(message).with_reason("OAUTH_STATE_INVALID")
            }
            ServiceError::ConnectionNotYours => {
                ApiError::forbidden(message).with_reason("OAUTH_STARTED_BY_ANOTHER")
            }
            ServiceError::FortnoxCompanyTaken { .. } => {
                ApiError::conflict(message).with_reason("FORTNOX_COMPANY_TAKEN")
            }
            ServiceError::FortnoxCompanyChanged { .. } => {
                ApiError::conflict(message).with_reason("FORTNOX_COMPANY_CHANGED")
            }
            // The detail may come from our token store (the database), so it stays in the log.
            ServiceError::FortnoxUnavailable(detail) => {
                tracing::warn!(%detail, "Fortnox unavailable while answering a GraphQL request");
                fortnox_unavailable()
            }
            ServiceError::FortnoxRefused(_) => {
                ApiError::upstream(message).with_reason("FORTNOX_ERROR")
            }
            ServiceError::FortnoxInternal(_) => ApiError::internal(message),
            ServiceError::TokenExpired => {
                ApiError::unauthenticated(message).with_reason("TOKEN_EXPIRED")
            }
            ServiceError::UnknownState(e) => e.into(),
            ServiceError::Store(e) => e.into(),
        }
    }
}

fn fortnox_unavailable() -> ApiError {
    ApiError::upstream("Fortnox is unavailable right now: try again in a minute")
        .with_reason("FORTNOX_UNAVAILABLE")
}

impl From<FortnoxError> for ApiError {
    fn from(error: FortnoxError) -> Self {
        match error {
            FortnoxError::NeedsReauthorization { reason } => ApiError::conflict(format!(
                "Fortnox refused our access ({reason}): connect Fortnox again with connectFortnox(merchantId), then try again"
            ))
            .with_reason("FORTNOX_NEEDS_REAUTHORIZATION"),
            // Fortnox's own message about the document is meant for the merchant.
            FortnoxError::Document { message, .. } => {
                ApiError::upstream(format!("Fortnox refused the request: {message}"))
                    .with_reason("FORTNOX_ERROR")
            }
            FortnoxError::Retryable { .. } => {
                tracing::warn!(%error, "Fortnox unavailable while answering a GraphQL request");
                fortnox_unavailable()
            }
            FortnoxError::Decode(_) => {
                tracing::warn!(%error, "unreadable Fortnox answer while answering a GraphQL request");
                ApiError::upstream(
                    "Fortnox sent an answer we could not read: try again later, and report it if it persists",
                )
                .with_reason("FORTNOX_ERROR")
            }
            // Our database or our configuration: internal.
            FortnoxError::Store(_) | FortnoxError::Config(_) => ApiError::internal(error),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        ApiError::unauthenticated(error.to_string())
    }
}

/// Gives every error without a code one. Resolver errors all have codes (they go through
/// `ApiError`); what is left comes from async-graphql checking the request itself (syntax,
/// unknown fields, argument types, depth and complexity limits): the client's input.
pub(super) fn with_codes(mut response: Response) -> Response {
    for error in &mut response.errors {
        // async-graphql's words for its own limits say neither the limit nor the way out.
        if error.message == "Query is too complex." {
            error.message = format!(
                "the query is too complex: its cost exceeds {}. Each field costs 1, a list its element's cost times its size (a page's `first`, {} for an order's lines, {} for other lists), a field read live from Fortnox {} more: ask for smaller pages, fewer aliases or fewer fields",
                super::cost::MAX_COMPLEXITY,
                super::cost::LONG_LIST,
                super::cost::LIST,
                super::cost::LIVE_FORTNOX
            );
        }
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", ErrorCode::InvalidInput.as_str());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(error: ApiError) -> serde_json::Value {
        let body = serde_json::to_value(error.into_server_error()).expect("serialize");
        assert!(body.get("locations").is_none(), "{body}");
        body
    }

    #[test]
    fn every_code_renders_with_its_name() {
        let names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "UNAUTHENTICATED",
                "NOT_FOUND",
                "FORBIDDEN",
                "INVALID_INPUT",
                "CONFLICT",
                "TRANSITION_REFUSED",
                "UPSTREAM",
                "INTERNAL"
            ]
        );
        let body = rendered(ApiError::not_found("order"));
        assert_eq!(body["extensions"]["code"], "NOT_FOUND");
        assert!(body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("order not found")));
    }

    #[test]
    fn internal_details_stay_in_the_log() {
        let body = rendered(ApiError::internal(
            "password authentication failed for user x",
        ));
        assert_eq!(body["extensions"]["code"], "INTERNAL");
        assert_eq!(body["message"], INTERNAL_MESSAGE);
        let body = rendered(FortnoxError::Store("pool timed out".into()).into());
        assert_eq!(body["message"], INTERNAL_MESSAGE);
        let body =
            rendered(ServiceError::FortnoxUnavailable("token store: pool timed out".into()).into());
        assert_eq!(body["extensions"]["code"], "UPSTREAM");
        assert!(!body.to_string().contains("pool"), "{body}");
    }

    #[test]
    fn fortnox_configuration_and_decode_errors_are_internal() {
        let body =
            rendered(ServiceError::from(FortnoxError::Config("auth base \"x\"".into())).into());
        assert_eq!(body["extensions"]["code"], "INTERNAL");
        assert_eq!(body["message"], INTERNAL_MESSAGE);
        let body = rendered(ServiceError::FortnoxInternal("missing field `Code`".into()).into());
        assert_eq!(body["message"], INTERNAL_MESSAGE);
        let body = rendered(
            ServiceError::from(FortnoxError::Document {
                status: 400,
                code: Some(2000428),
                message: "Ogiltigt artikelnummer".into(),
            })
            .into(),
        );
        assert_eq!(body["extensions"]["code"], "UPSTREAM");
        assert_eq!(body["extensions"]["reason"], "FORTNOX_ERROR");
    }

    #[test]
    fn transition_errors_map_to_their_codes() {
        use crate::domain::OrderState;
        let code = |e: TransitionError| ApiError::from(e).code();
        assert_eq!(code(TransitionError::NotFound), ErrorCode::NotFound);
        assert_eq!(
            code(TransitionError::Refused(TransitionRefused::SameState(
                OrderState::Sent
            ))),
            ErrorCode::TransitionRefused
        );
        assert_eq!(
            code(TransitionError::Conflict {
                expected: OrderState::Sent,
                actual: None
            }),
            ErrorCode::Conflict
        );
        assert_eq!(
            code(TransitionError::Store(StoreError::Queue("x".into()))),
            ErrorCode::Internal
        );
    }

    #[test]
    fn finer_kinds_are_kept_as_reason() {
        let body = rendered(ServiceError::FortnoxNotConnected.into());
        assert_eq!(body["extensions"]["code"], "CONFLICT");
        assert_eq!(body["extensions"]["reason"], "FORTNOX_NOT_CONNECTED");
        let body = rendered(ApiError::forbidden("no"));
        assert!(body["extensions"].get("reason").is_none(), "{body}");
    }
}
