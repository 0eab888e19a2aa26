//! Why a use case failed. The messages of the variants that reach people say what to do;
//! the API layer gives each variant its stable code (`graphql::error`).
use crate::domain::cancel::CancelRefused;
use crate::domain::state_machine::UnknownState;
use crate::fortnox::FortnoxError;
use crate::store::catalog::CatalogError;
use crate::store::transitions::TransitionError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input is malformed or out of range; the message names the field.
    #[error("{0}")]
    InvalidInput(String),
    /// No such thing, or another tenant's (the two read the same).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The order's state does not allow the change; the message says which it allows.
    #[error("{0}")]
    TransitionRefused(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// A catalogue write the store refused (validation, duplicates, unknown codes).
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Article numbers asked for that are no stock article in the merchant's Fortnox.
    #[error("{0}")]
    UnknownArticles(String),
    #[error("this service has no Fortnox app credentials: set FORTNOX_CLIENT_ID and FORTNOX_CLIENT_SECRET")]
    FortnoxNotConfigured,
    #[error("Fortnox is not connected for this merchant: call connectFortnox(merchantId) and approve the access in Fortnox, then try again")]
    FortnoxNotConnected,
    #[error("Fortnox refused our access ({reason}): connect Fortnox again with connectFortnox(merchantId), then try again")]
    FortnoxNeedsReauthorization { reason: String },
    #[error("this connection link is unknown, was already used, or has expired (links live 10 minutes): start again with connectFortnox(merchantId)")]
    ConnectionLinkInvalid,
    /// The OAuth consent came back to someone other than the person who started it.
    #[error("this Fortnox connection was started by someone else, or for another merchant: only the person who called connectFortnox may complete it. If you meant to connect, call connectFortnox(merchantId) yourself")]
    ConnectionNotYours,
    #[error("the Fortnox company {company} is already connected to another merchant; one Fortnox company feeds one merchant: disconnect it there first")]
    FortnoxCompanyTaken { company: String },
    #[error("this merchant is connected to the Fortnox company {connected}, and the access just approved is for {offered}: call disconnectFortnox(merchantId) first if the source of orders should change, then connect again")]
    FortnoxCompanyChanged { connected: String, offered: String },
    /// The detail may come from our token store, so it is for the log only.
    #[error("Fortnox is unavailable right now ({0}): try again in a minute")]
    FortnoxUnavailable(String),
    /// Fortnox's own message about the request, meant for the merchant.
    #[error("Fortnox refused the request: {0}")]
    FortnoxRefused(String),
    /// Our configuration, or an answer we could not read: a fault on our side.
    #[error("Fortnox call failed: {0}")]
    FortnoxInternal(String),
    /// The caller's token expired while a subscription ran; it ends the subscription.
    #[error("token expired: subscribe again with a new token")]
    TokenExpired,
    /// A stored state we cannot read: corrupt data, not the caller's fault.
    #[error("stored order state: {0}")]
    UnknownState(#[from] UnknownState),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CancelRefused> for ServiceError {
    fn from(refused: CancelRefused) -> Self {
        ServiceError::TransitionRefused(refused.to_string())
    }
}

impl From<sea_orm::DbErr> for ServiceError {
    fn from(error: sea_orm::DbErr) -> Self {
        ServiceError::Store(StoreError::Orm(error))
    }
}

/// A failed Fortnox call as the caller should see it: reconnect, retry later, fix what
/// Fortnox says, or (configuration, unreadable answers) an internal fault.
impl From<FortnoxError> for ServiceError {
    fn from(error: FortnoxError) -> Self {
        match error {
            // The client says "not connected" when it holds no tokens for the merchant.
            FortnoxError::NeedsReauthorization { reason } if reason.contains("not connected") => {
                ServiceError::FortnoxNotConnected
            }
            FortnoxError::NeedsReauthorization { reason } => {
                ServiceError::FortnoxNeedsReauthorization { reason }
            }
            FortnoxError::Retryable { .. } | FortnoxError::Store(_) => {
                ServiceError::FortnoxUnavailable(error.to_string())
            }
            FortnoxError::Document { .. } => ServiceError::FortnoxRefused(error.to_string()),
            FortnoxError::Decode(_) | FortnoxError::Config(_) => {
                ServiceError::FortnoxInternal(error.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_and_decode_errors_are_internal() {
        let config = ServiceError::from(FortnoxError::Config("bad base URL".into()));
        assert!(matches!(config, ServiceError::FortnoxInternal(_)));
        let refused = ServiceError::from(FortnoxError::Document {
            status: 400,
            code: Some(2000428),
            message: "Ogiltigt artikelnummer".into(),
        });
        assert!(matches!(refused, ServiceError::FortnoxRefused(m) if m.contains("Ogiltigt")));
        let not_connected = ServiceError::from(FortnoxError::NeedsReauthorization {
            reason: "merchant 3 is not connected".into(),
        });
        assert!(matches!(not_connected, ServiceError::FortnoxNotConnected));
        let busy = ServiceError::from(FortnoxError::Store("pool timed out".into()));
        assert!(matches!(busy, ServiceError::FortnoxUnavailable(_)));
    }
}
