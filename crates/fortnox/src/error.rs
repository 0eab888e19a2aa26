//! The one error type of the Fortnox layer, and how callers should react to it.

use super::types::DecodeError;

/// What a caller (a job) should do about a failed Fortnox call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient (429, 5xx, timeouts) and still failing after our retries:
    /// run the job again later.
    Retryable,
    /// The merchant must reconnect Fortnox (refresh token refused, no tokens).
    /// Pause the merchant's jobs; retrying cannot help.
    NeedsReauthorization,
    /// Fortnox refused this document (or sent one we cannot read): keep the
    /// message and code as the order's reason; retrying cannot help.
    Document,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum FortnoxError {
    #[error("Fortnox is unavailable ({}): {message}", status.map(|s| format!("HTTP {s}")).unwrap_or_else(|| "no answer".into()))]
    Retryable {
        status: Option<u16>,
        message: String,
    },

    #[error("Fortnox needs re-authorization: {reason}")]
    NeedsReauthorization { reason: String },

    /// Fortnox's own `ErrorInformation` (message, code) for this document.
    #[error("{message} (Fortnox answered HTTP {status}{})", code.map(|c| format!(", error code {c}")).unwrap_or_default())]
    Document {
        status: u16,
        code: Option<i64>,
        message: String,
    },

    #[error(transparent)]
    Decode(#[from] DecodeError),

    /// The token store failed (database down): transient from the job's view.
    #[error("token store: {0}")]
    Store(String),

    /// Our own misconfiguration (bad base URL, ...).
    #[error("configuration: {0}")]
    Config(String),
}

impl FortnoxError {
    pub fn class(&self) -> ErrorClass {
        match self {
            FortnoxError::Retryable { .. } | FortnoxError::Store(_) => ErrorClass::Retryable,
            FortnoxError::NeedsReauthorization { .. } => ErrorClass::NeedsReauthorization,
            FortnoxError::Document { .. } | FortnoxError::Decode(_) | FortnoxError::Config(_) => {
                ErrorClass::Document
            }
        }
    }

    /// Fortnox's error code, when it sent one.
    pub fn fortnox_code(&self) -> Option<i64> {
        match self {
            FortnoxError::Document { code, .. } => *code,
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, FortnoxError::Document { status: 404, .. })
    }
}

pub type Result<T, E = FortnoxError> = std::result::Result<T, E>;
