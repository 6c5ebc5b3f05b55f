//! The structured-logging library for Rust programs (GELF/JSON out, transaction ids, a `tracing`
//! layer). Light to depend on: it uses none of the pipeline's heavy dependencies.
