//! Sinks: where records leave the journal. Each sink runs on its own thread, reads the journal
//! through its own named cursor, and acknowledges what it has finished (with any state it needs to
//! resume exactly, stored atomically with the cursor position).
//!
//! - [`file`](mod@file): GELF JSON lines under `<path>/<category>/`, rotated by size, exactly once.
//! - [`scribe_store`]: the file sink with `format = "raw"`: Scribe's file store, exactly once.
//! - [`index`]: the transaction-id index under `<data_dir>/index`, exactly once via commit payloads.
//! - [`forward`]: ships the journal to aggregators, advancing on their durable acks.
//! - [`gelf_out`]: GELF to Graylog-compatible receivers (UDP chunked, TCP, HTTP; TLS).
//! - [`syslog_out`]: RFC 5424/3164 to syslog receivers (UDP, TCP, TLS); both run the
//!   [`deliver`] loop, advancing on what the receiver took.
//! - [`nats`]: publishes the journal to a JetStream stream, advancing on its acks.
//!
//! The file and index sinks take only the records their route ([`route`]) takes; the others
//! they acknowledge unwritten. A sink touches its own output and its journal cursor, nothing else.

pub mod deliver;
mod encode_pool;
pub mod file;
pub mod forward;
pub mod gelf_http;
pub mod gelf_out;
pub mod index;
pub mod join;
pub mod nats;
mod net_out;
pub mod route;
pub mod scribe_store;
pub mod supervise;
pub mod syslog_out;

use crate::component::{ComponentError, Running, ShutdownTrigger, SinkContext};
use crate::config::SinkConfig;

/// Starts the sink described by `config` with `ctx` under a [`supervise`] supervisor (restarts
/// with backoff when it fails); its stop signal is `stop` (the trigger of `ctx.shutdown`).
pub fn start(
    config: &SinkConfig,
    ctx: SinkContext,
    stop: ShutdownTrigger,
) -> Result<Running, ComponentError> {
    supervise::start(config, ctx, stop, supervise::Backoff::default())
}

/// Starts one attempt of the sink on its own thread (no supervision).
pub fn spawn(
    config: &SinkConfig,
    ctx: SinkContext,
) -> Result<std::thread::JoinHandle<Result<(), ComponentError>>, ComponentError> {
    match config {
        SinkConfig::File(cfg) if cfg.format == crate::config::FileFormat::Raw => {
            scribe_store::spawn(cfg.clone(), ctx)
        }
        SinkConfig::File(cfg) => file::spawn(cfg.clone(), ctx),
        SinkConfig::Forward(cfg) => forward::spawn(cfg.clone(), ctx),
        SinkConfig::Index(cfg) => index::spawn(cfg, ctx),
        SinkConfig::Gelf(cfg) => gelf_out::spawn(cfg.clone(), ctx),
        SinkConfig::Syslog(cfg) => syslog_out::spawn(cfg.clone(), ctx),
        SinkConfig::Nats(cfg) => nats::spawn(cfg.clone(), ctx),
    }
}

/// True for sinks that parse records (and so start with the parser registry and `[bytes]`).
pub fn parses(config: &SinkConfig) -> bool {
    match config {
        SinkConfig::File(_) | SinkConfig::Index(_) | SinkConfig::Gelf(_) | SinkConfig::Nats(_) => {
            true
        }
        SinkConfig::Syslog(c) => c.message == crate::config::SyslogMessage::Gelf,
        SinkConfig::Forward(_) => false,
    }
}

/// The files whose content a sink reads at start (certificates, keys, tokens): a reload
/// restarts the sink when one of them changed.
pub fn watched_files(config: &SinkConfig) -> Vec<&std::path::Path> {
    let paths: Vec<&Option<std::path::PathBuf>> = match config {
        SinkConfig::File(_) | SinkConfig::Index(_) => Vec::new(),
        SinkConfig::Forward(c) => vec![&c.token_file, &c.tls_ca, &c.tls_cert, &c.tls_key],
        SinkConfig::Gelf(c) => vec![&c.tls.tls_ca, &c.tls.tls_cert, &c.tls.tls_key],
        SinkConfig::Syslog(c) => vec![&c.tls.tls_ca, &c.tls.tls_cert, &c.tls.tls_key],
        SinkConfig::Nats(c) => return c.auth.files(),
    };
    paths.into_iter().flatten().map(|p| p.as_path()).collect()
}
