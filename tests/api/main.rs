//! The service's integration tests in one binary (one link, one process): the real app
//! serving on random loopback ports, each test with its own database (a SQLite file, or a
//! PostgreSQL database when `TEST_DATABASE_URL` points at a server), against the Fortnox
//! sandbox in-process. Tests run in parallel threads; those that time themselves against
//! Fortnox's rate limit take `common::timing_gate`. The tests that run the real binary
//! are in `tests/process`.

// Shared helpers.
mod common;
mod flow;
mod fortnox_common;

// The Fortnox client and sandbox.
mod fortnox_client;
mod fortnox_connect;
mod fortnox_db_tokens;
mod fortnox_oauth;
mod fortnox_rate;
mod fortnox_sandbox;
mod fortnox_types;

// The service.
mod catalog;
mod exactly_once_invoice;
mod graphql_api;
mod hardening;
mod health;
mod import;
mod jobs;
mod order_events;
mod pipeline;
mod pipeline_rules;
mod product_sync;
mod query_cost;
mod realtime;
mod roles;
mod schema;
mod state_machine;
mod webhooks;
