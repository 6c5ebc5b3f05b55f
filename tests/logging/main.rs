//! The logging library's integration tests, one binary, built for the library alone:
//! `cargo test --no-default-features --features logging --test logging`. Helpers live in
//! `tests/support/` (see its module doc).

#![cfg(feature = "logging")]

#[path = "../support/mod.rs"]
mod support;

mod logging_example;
mod logging_exit;
mod logging_gelf;
mod logging_sinks;
mod logging_tracing;
mod logging_txn;
