//! Sources: where records enter Quill. Each source reads its input, makes [`crate::record::Record`]s
//! and appends them to the journal, carrying its resume position where it has one.
//!
//! - [`file`](mod@file): tails files matched by globs (a dedicated thread; file I/O never on the reactor).
//! - [`syslog`]: syslog over UDP, TCP and unix datagram sockets (async tasks).
//! - [`scribe`]: Scribe's Thrift `Log()` (async tasks; a drop-in for Scribe servers).
//! - [`relp`]: rsyslog's RELP, acked once durable (async tasks).
//! - [`forward`]: batches from agents over the forward protocol (async tasks; aggregators).
//! - [`gelf`]: GELF over UDP (chunked, compressed), TCP and HTTP.
//! - [`nats`]: the partitions of a JetStream stream an aggregator owns in its group (async tasks).
//!
//! A source may touch only its own input and the journal's append side.

pub mod file;
pub mod forward;
pub mod gelf;
pub mod listen;
pub mod listeners;
pub mod nats;

pub mod relp;
pub mod scribe;
pub mod syslog;

pub use listeners::Listeners;
pub use syslog::handover::Held;

use crate::component::{ComponentError, Running, SourceContext};
use crate::config::SourceConfig;

/// The listeners of a source, bound before anything starts ([`bind`]).
pub enum Bound {
    Syslog(syslog::Bound),
    /// The sockets of a GELF, RELP, Scribe or forward source.
    Listeners(Listeners),
    /// A source that listens on nothing (file, nats).
    Later,
}

impl Bound {
    /// Duplicates of the bound sockets, for the source's next instance on reload (see
    /// [`syslog::handover`]); `None` when there are none.
    pub fn hold(&self) -> Option<Held> {
        let held = match self {
            Bound::Syslog(b) => b.hold(),
            Bound::Listeners(l) => l.hold(),
            Bound::Later => return None,
        };
        held.inspect_err(|e| tracing::warn!("Cannot keep the source's sockets for a reload: {e}."))
            .ok()
    }

    /// The listeners of a GELF, RELP, Scribe or forward source (bound now if they were not).
    fn listeners(self, config: &SourceConfig, name: &str) -> Result<Listeners, ComponentError> {
        match self {
            Bound::Listeners(l) => Ok(l),
            _ => match bind(config, name, None)? {
                Bound::Listeners(l) => Ok(l),
                _ => Ok(Listeners::default()),
            },
        }
    }
}

/// Binds the listeners of the source described by `config` (named `name`), taking over the
/// sockets `held` from its previous instance where the address is the same.
pub fn bind(
    config: &SourceConfig,
    name: &str,
    held: Option<Held>,
) -> Result<Bound, ComponentError> {
    use listeners::Kind::{Stream, Udp};
    let listen = |addresses: &[(&'static str, Option<&str>, listeners::Kind)], held| {
        Listeners::bind(name, addresses, held)
            .map(Bound::Listeners)
            .map_err(ComponentError::from)
    };
    match config {
        SourceConfig::Syslog(cfg) => Ok(Bound::Syslog(syslog::bind(
            cfg,
            name,
            held.unwrap_or_default(),
        )?)),
        SourceConfig::Gelf(cfg) => {
            let receive_buffer = cfg.udp_receive_buffer.as_usize();
            listen(
                &[
                    ("udp", cfg.udp.as_deref(), Udp { receive_buffer }),
                    ("tcp", cfg.tcp.as_deref(), Stream),
                    ("http", cfg.http.as_deref(), Stream),
                ],
                held,
            )
        }
        SourceConfig::Relp(cfg) => listen(&[("listen", Some(&cfg.listen), Stream)], held),
        SourceConfig::Scribe(cfg) => listen(&[("listen", Some(&cfg.listen), Stream)], held),
        SourceConfig::Forward(cfg) => listen(&[("listen", Some(&cfg.listen), Stream)], held),
        SourceConfig::File(_) | SourceConfig::Nats(_) => Ok(Bound::Later),
    }
}

/// The files whose content a source reads at start (certificates, keys, tokens, parser
/// configs): a reload restarts the source when one of them changed.
pub fn watched_files(config: &SourceConfig) -> Vec<&std::path::Path> {
    let paths: Vec<&Option<std::path::PathBuf>> = match config {
        SourceConfig::File(c) => vec![&c.parse.haproxy_config, &c.parse.apache_config],
        SourceConfig::Syslog(c) => vec![
            &c.tls_cert,
            &c.tls_key,
            &c.tls_client_ca,
            &c.parse.haproxy_config,
            &c.parse.apache_config,
        ],
        SourceConfig::Forward(c) => vec![&c.token_file, &c.tls_cert, &c.tls_key, &c.tls_client_ca],
        SourceConfig::Scribe(_) => Vec::new(),
        SourceConfig::Gelf(c) => vec![&c.tls_cert, &c.tls_key, &c.tls_client_ca],
        SourceConfig::Relp(c) => vec![&c.tls_cert, &c.tls_key, &c.tls_client_ca],
        SourceConfig::Nats(c) => return c.auth.files(),
    };
    paths.into_iter().flatten().map(|p| p.as_path()).collect()
}

/// Starts the source described by `config` with `ctx`; its stop signal is `stop` (the trigger of
/// `ctx.shutdown`).
pub fn start(
    config: &SourceConfig,
    ctx: SourceContext,
    stop: crate::component::ShutdownTrigger,
    runtime: &tokio::runtime::Runtime,
) -> Result<Running, ComponentError> {
    let bound = bind(config, &ctx.name, None)?;
    start_bound(config, bound, ctx, stop, runtime)
}

/// [`start`] with the listeners [`bind`] bound.
pub fn start_bound(
    config: &SourceConfig,
    bound: Bound,
    ctx: SourceContext,
    stop: crate::component::ShutdownTrigger,
    runtime: &tokio::runtime::Runtime,
) -> Result<Running, ComponentError> {
    let running = match (config, bound) {
        (SourceConfig::File(cfg), _) => {
            let (handle, files) = file::spawn(cfg.clone(), ctx)?;
            Running::thread(handle).with_detail(move || files.summary())
        }
        (SourceConfig::Syslog(cfg), bound) => {
            let bound = match bound {
                Bound::Syslog(b) => b,
                Bound::Listeners(_) | Bound::Later => {
                    syslog::bind(cfg, &ctx.name, Default::default())?
                }
            };
            let _guard = runtime.enter();
            Running::task(syslog::start(bound, cfg, ctx, runtime)?)
        }
        (SourceConfig::Forward(cfg), bound) => {
            let listener = stream(bound.listeners(config, &ctx.name)?, "listen", &cfg.listen)?;
            let handle = forward::start(cfg.clone(), listener, ctx, runtime)
                .map_err(ComponentError::Failed)?;
            Running::task(runtime.spawn(legacy(handle)))
        }
        (SourceConfig::Scribe(cfg), bound) => {
            let listener = stream(bound.listeners(config, &ctx.name)?, "listen", &cfg.listen)?;
            let (handle, counters) = scribe::start(cfg.clone(), listener, ctx, runtime)?;
            Running::task(handle).with_detail(move || counters.summary())
        }
        (SourceConfig::Relp(cfg), bound) => {
            let listener = stream(bound.listeners(config, &ctx.name)?, "listen", &cfg.listen)?;
            Running::task(relp::start(cfg.clone(), listener, ctx, runtime)?)
        }
        (SourceConfig::Nats(cfg), _) => nats::start(cfg.clone(), ctx, runtime)?,
        (SourceConfig::Gelf(cfg), bound) => {
            let listeners = bound.listeners(config, &ctx.name)?;
            let (handle, stats) = gelf::start(cfg, listeners, ctx, runtime)?;
            Running::task(handle).with_detail(move || stats.summary())
        }
    };
    Ok(running.with_stop(stop))
}

/// The one listening socket of a RELP, Scribe or forward source.
fn stream(
    mut listeners: Listeners,
    key: &str,
    addr: &str,
) -> Result<std::net::TcpListener, ComponentError> {
    listeners
        .take_stream(key)
        .ok_or_else(|| ComponentError::Setting(format!("`{key}` {addr} is not bound")))
}

/// A task that reports its error as text, as a component task.
async fn legacy(handle: tokio::task::JoinHandle<Result<(), String>>) -> Result<(), ComponentError> {
    handle
        .await
        .map_err(|_| ComponentError::Panicked)?
        .map_err(ComponentError::Failed)
}
