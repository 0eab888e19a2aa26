//! Everything the service needs to talk to Fortnox: the wire types, the API
//! client (rate limit, retries, OAuth with rotating refresh tokens) and token
//! encryption. The sandbox that plays Fortnox in tests and the demo is the
//! `fortnox-sandbox` crate, built on the same types. docs/fortnox.md is the
//! reference for every shape and rule here.

pub mod client;
pub mod config;
pub mod crypto;
pub mod error;
pub mod keyed_locks;
pub mod limiter;
pub mod metrics;
pub mod oauth;
pub mod topics;
pub mod types;

pub use client::{CreditOutcome, FortnoxClient, InvoiceOutcome, TenantClient};
pub use config::{FortnoxConfig, OrderFilter, OrderQuery, RetryPolicy};
pub use error::{ErrorClass, FortnoxError};
pub use keyed_locks::{KeyedGuard, KeyedLocks};
pub use limiter::{RateLimit, SharedRateLog};
pub use oauth::{RefreshLease, StoreError, TokenSet, TokenState, TokenStore};
