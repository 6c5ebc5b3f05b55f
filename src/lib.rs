//! Quill: a durable log pipeline.
//!
//! Sources (files, syslog sockets, forwarded batches) append [`record::Record`]s to a write-ahead
//! journal (`journal`); sinks read the journal through their own cursors and write files, forward to
//! aggregators, or index by transaction id. Parsers ([`parse`]) turn HAProxy, Apache, syslog and
//! JSON lines into GELF 1.1 ([`gelf`]). The [`logging`] module is a structured-logging library for
//! Rust programs, usable on its own with `default-features = false, features = ["logging"]`.
//!
//! See `ARCHITECTURE.md` for the modules and the path of a record.

// The docs are written for the full build; the `logging`-only build lacks most items they link.
#![cfg_attr(not(feature = "pipeline"), allow(rustdoc::broken_intra_doc_links))]

pub mod field_name;
pub mod gelf;

#[cfg(feature = "pipeline")]
pub mod accounting;
#[cfg(feature = "pipeline")]
pub mod parse;
#[cfg(feature = "pipeline")]
pub mod record;
#[cfg(feature = "pipeline")]
pub mod wire;

#[cfg(feature = "logging")]
pub mod logging;

#[cfg(feature = "pipeline")]
pub mod cli;
#[cfg(feature = "pipeline")]
pub mod component;
#[cfg(feature = "pipeline")]
pub mod config;
#[cfg(feature = "pipeline")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "pipeline")]
pub mod host;
#[cfg(feature = "pipeline")]
pub mod index;
#[cfg(feature = "pipeline")]
pub mod journal;
#[cfg(feature = "pipeline")]
pub mod limits;
#[cfg(feature = "pipeline")]
pub mod lines;
#[cfg(feature = "pipeline")]
pub mod memory;
#[cfg(feature = "pipeline")]
pub mod ops;
#[cfg(feature = "pipeline")]
pub mod pagecache;
#[cfg(feature = "pipeline")]
pub mod parsers;
#[cfg(feature = "pipeline")]
pub mod pipeline;
#[cfg(feature = "pipeline")]
pub mod sinks;
#[cfg(feature = "pipeline")]
pub mod sources;
#[cfg(feature = "pipeline")]
pub mod status;
#[cfg(feature = "pipeline")]
pub mod telemetry;
#[cfg(feature = "pipeline")]
pub mod transport;
