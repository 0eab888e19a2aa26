//! The Fortnox fulfilment service: imports orders merchants mark as done in Fortnox, sends
//! them to the warehouse, writes shipments back and invoices them.
pub mod auth;
pub mod config;
#[cfg(feature = "sandbox")]
pub mod demo;
pub mod domain;
pub mod events;
pub mod graphql;
pub mod jobs;
pub mod realtime;
pub mod server;
pub mod services;
pub mod store;
pub mod warehouse;
pub mod webhooks;

// The client crate under its old path, so `crate::fortnox::...` still resolves.
pub use fortnox;
