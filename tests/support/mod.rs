//! What the integration tests share: child processes ([`Proc`], the `quill run` [`Daemon`],
//! one-shot `quill` commands), free ports and waiting, reading a file sink, exactly-once checks,
//! the missing-program rule ([`require`]), the crash children ([`child_command`]), a GELF 1.1
//! validator, and the fixtures of the file, forward, live HAProxy/Apache and search tests.
//! Everything is re-exported here: a test module writes `use crate::support::*;`.
//!
//! # The test binaries
//! - `tests/pipeline/main.rs`: every test of the daemon (`--features pipeline`, the default),
//!   one module per former `tests/<name>.rs`: `cargo test --test pipeline [FILTER]`.
//! - `tests/logging/main.rs`: the logging library alone (`cargo test --no-default-features
//!   --features logging --test logging`); also part of a default `cargo test`.
//! - Own binaries, on purpose: `tests/parse_alloc.rs` (a counting `#[global_allocator]` sees
//!   every thread of its process) and `tests/logging_global.rs` (`quill::logging::init` is
//!   once per process).
//! - `quill-test-child` (`tests/support/bin/`): the crash children, see [`child`].
//!
//! # How to add a test
//! Write `tests/pipeline/<topic>.rs` (or `tests/logging/<topic>.rs`) starting with a `//!` doc
//! that says what real software it talks to and what it asserts, add `mod <topic>;` to that
//! binary's `main.rs`, and `use crate::support::*;` for the helpers (no `#![cfg]` line: the
//! binary's `main.rs` carries it). Needs a program? Call [`require`] first (a skip outside CI, a
//! failure under CI). Needs the machine to itself (a memory budget, a crash loop, timing under
//! load)? Hold [`alone`] for the test's body. Needs a process to kill? Add a mode to
//! [`child`], never re-run the test binary. A bug fixed? Its test goes in
//! `tests/pipeline/regression.rs`. A helper two tests need goes here, not in a test file.
//! (A top-level `tests/<name>.rs` in the old style still works: it is its own binary and can
//! use these helpers with `#[path = "support/mod.rs"] mod support;`.)
#![allow(dead_code, unused_imports)]

pub mod child;
#[cfg(feature = "logging")]
mod dispatch;
mod exactly_once;
pub mod gelf;
mod programs;
mod serial;
mod wait;

#[cfg(feature = "logging")]
pub use dispatch::*;
pub use exactly_once::*;
pub use gelf::*;
pub use programs::*;
pub use serial::*;
pub use wait::*;

#[cfg(feature = "pipeline")]
mod forward;
#[cfg(feature = "pipeline")]
mod journal;
#[cfg(feature = "pipeline")]
mod lines;
#[cfg(feature = "pipeline")]
mod live;
#[cfg(feature = "pipeline")]
mod nats;
#[cfg(feature = "pipeline")]
mod pki;
#[cfg(feature = "pipeline")]
mod process;
#[cfg(feature = "pipeline")]
mod search;
#[cfg(feature = "pipeline")]
mod sink;
#[cfg(feature = "pipeline")]
mod tmpfs;

#[cfg(feature = "pipeline")]
pub use {
    forward::*, journal::*, lines::*, live::*, nats::*, pki::*, process::*, search::*, sink::*,
    tmpfs::*,
};

/// The crash child in `mode` (see [`child`]) as a command; add the mode's arguments.
pub fn child_command(mode: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_quill-test-child"));
    cmd.arg(mode);
    cmd
}
