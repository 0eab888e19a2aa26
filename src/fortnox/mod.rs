//! Everything about Fortnox: the wire types, the API client (rate limit,
//! retries, OAuth with rotating refresh tokens), token encryption, and the
//! sandbox that plays Fortnox in tests and the demo. fortnox-api.md (shared)
//! is the reference for every shape and rule here.

pub mod client;
pub mod config;
pub mod crypto;
pub mod error;
pub mod limiter;
pub mod metrics;
pub mod oauth;
pub mod sandbox;
pub mod testkit;
pub mod types;

pub use client::{CreditOutcome, FortnoxClient, InvoiceOutcome, TenantClient};
pub use config::{FortnoxConfig, OrderFilter, OrderQuery, RetryPolicy};
pub use error::{ErrorClass, FortnoxError};
pub use oauth::{InMemoryTokenStore, RefreshLease, StoreError, TokenSet, TokenState, TokenStore};
