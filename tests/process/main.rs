//! The tests that run the real binary (`fortnox-fulfilment`) as child processes: crashes,
//! signals, restarts, and the `demo` command. The helpers of `tests/api/common` are shared
//! with the in-process tests; `harness` starts server processes against the sandbox.

#[path = "../api/common/mod.rs"]
mod common;
mod harness;

mod crash_recovery;
mod event_resume;
// It runs the binary's `demo` command, which needs the `sandbox` feature.
#[cfg(feature = "sandbox")]
mod demo;
mod realtime_handover;
mod restart_rate_limit;
mod shared_budget;
mod sigstop_invoice;
