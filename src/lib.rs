//! The Fortnox fulfilment service: imports orders merchants mark as done in Fortnox, sends
//! them to the warehouse, writes shipments back and invoices them.
pub mod auth;
pub mod config;
pub mod demo;
pub mod domain;
pub mod events;
pub mod fortnox;
pub mod graphql;
pub mod jobs;
pub mod server;
pub mod services;
pub mod store;
pub mod warehouse;
