//! The `gelf` source: GELF messages over UDP (chunked, compressed), TCP (NUL-delimited, TLS) and
//! HTTP (`POST /gelf`, HTTPS), journaled one record per message in `format = "gelf"`.
//!
//! - [`udp`]: a dedicated `recvmmsg` thread reassembles chunks ([`crate::gelf::chunk`]) and
//!   decompresses ([`crate::gelf::payload`]) within stated budgets; what cannot be kept is
//!   counted, never silently lost.
//! - [`tcp`]: one task per connection splits NUL frames ([`crate::gelf::frame`]) and appends with
//!   backpressure.
//! - [`http`]: hyper HTTP/1.1; a request is answered `202 Accepted` once its record is durable.
//!
//! The record's payload is the message's JSON as sent (decompressed); validation happens when a
//! sink parses it ([`crate::parse::gelf`]): an invalid message is kept raw with a parse error.
//! This module touches its sockets and the journal's append side, nothing else.

pub mod http;
pub mod tcp;
pub mod udp;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::sources::listen::{Handler, Listener};
use crate::sources::listeners::Listeners;

use crate::component::{ComponentError, SourceContext};
use crate::config::GelfSourceConfig;
use crate::gelf::chunk::{ChunkLimits, ChunkStats};

/// Why the gelf source could not start or stopped.
#[derive(Debug, Error)]
pub enum GelfSourceError {
    #[error("{0}")]
    Bind(String),
    #[error("TLS: {0}")]
    Tls(#[from] crate::transport::tls::TlsError),
    #[error("cannot start the UDP thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("UDP receive failed: {0}")]
    Receive(#[source] std::io::Error),
    #[error("cannot journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
}

impl From<GelfSourceError> for ComponentError {
    fn from(e: GelfSourceError) -> ComponentError {
        match e {
            GelfSourceError::Bind(m) => ComponentError::Setting(m),
            GelfSourceError::Tls(e) => ComponentError::Setting(e.to_string()),
            GelfSourceError::Thread(e) => ComponentError::Thread(e),
            GelfSourceError::Journal(e) => ComponentError::Journal(e),
            e => ComponentError::Failed(e.to_string()),
        }
    }
}

/// The source's own counters (besides the [`crate::telemetry::SourceStats`] every source has),
/// shown in the status line.
#[derive(Debug, Default)]
pub struct GelfStats {
    pub chunks_completed: AtomicU64,
    pub chunks_duplicate: AtomicU64,
    pub chunks_invalid: AtomicU64,
    pub chunked_expired: AtomicU64,
    pub chunked_evicted: AtomicU64,
    pub chunked_oversized: AtomicU64,
    /// Payloads refused for inflating beyond `max_message_bytes` (decompression bombs).
    pub inflate_refused: AtomicU64,
    /// Payloads that did not decompress (kept raw).
    pub inflate_corrupt: AtomicU64,
    /// TCP and HTTP connections refused because `max_connections` were open.
    pub refused_connections: AtomicU64,
    /// HTTP requests refused (wrong path or method, body too large).
    pub http_refused: AtomicU64,
}

impl GelfStats {
    fn publish_chunks(&self, s: &ChunkStats) {
        self.chunks_completed.store(s.completed, Ordering::Relaxed);
        self.chunks_duplicate.store(s.duplicate, Ordering::Relaxed);
        self.chunks_invalid.store(s.invalid, Ordering::Relaxed);
        self.chunked_expired.store(s.expired, Ordering::Relaxed);
        self.chunked_evicted.store(s.evicted, Ordering::Relaxed);
        self.chunked_oversized.store(s.oversized, Ordering::Relaxed);
    }

    /// `chunks_completed=.. chunks_duplicate=.. ...` for the status line.
    pub fn summary(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "chunked_completed={} chunks_duplicate={} chunks_invalid={} chunked_expired={} chunked_evicted={} chunked_oversized={} inflate_refused={} inflate_corrupt={} connections_refused={} http_refused={}",
            g(&self.chunks_completed),
            g(&self.chunks_duplicate),
            g(&self.chunks_invalid),
            g(&self.chunked_expired),
            g(&self.chunked_evicted),
            g(&self.chunked_oversized),
            g(&self.inflate_refused),
            g(&self.inflate_corrupt),
            g(&self.refused_connections),
            g(&self.http_refused),
        )
    }
}

/// Limits shared by the source's listeners.
#[derive(Clone)]
pub struct Limits {
    pub max_message: usize,
    pub idle_timeout: Duration,
    pub connections: Arc<Semaphore>,
    /// HTTP bodies are newline-delimited messages.
    pub http_bulk: bool,
}

/// The source's task.
pub type SourceTask = tokio::task::JoinHandle<Result<(), ComponentError>>;

/// Starts the source on its bound sockets; returns its task and its counters.
pub fn start(
    config: &GelfSourceConfig,
    mut listeners: Listeners,
    ctx: SourceContext,
    runtime: &tokio::runtime::Runtime,
) -> Result<(SourceTask, Arc<GelfStats>), GelfSourceError> {
    let stats = Arc::new(GelfStats::default());
    let limits = Limits {
        max_message: config.max_message_bytes.as_usize(),
        idle_timeout: config.tcp_idle_timeout.0,
        connections: crate::sources::listen::connection_limit(
            &ctx.name,
            "max_connections",
            config.max_connections,
        ),
        http_bulk: config.http_bulk,
    };
    let udp_thread = match listeners.take_udp("udp") {
        Some((sock, drops)) => {
            let chunks = ChunkLimits {
                max_incomplete: config.max_incomplete_messages,
                max_incomplete_bytes: config.max_incomplete_bytes.as_usize(),
                max_message_bytes: limits.max_message,
                timeout: config.chunk_timeout.0,
            };
            Some(udp::spawn(
                sock,
                drops,
                ctx.clone(),
                stats.clone(),
                chunks,
                limits.max_message,
            )?)
        }
        None => None,
    };
    let tls = crate::sources::listen::tls_acceptor(config.tls_keys())?;
    let _guard = runtime.enter();
    let mut serve = |key: &'static str| {
        listeners
            .take_stream(key)
            .map(|l| {
                l.set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpListener::from_std(l))
                    .map_err(|e| GelfSourceError::Bind(format!("{key}: {e}")))
            })
            .transpose()
    };
    let tcp = serve("tcp")?;
    let http = serve("http")?;
    let task_stats = stats.clone();
    let handle = runtime.spawn(async move {
        let mut tasks: JoinSet<Result<(), GelfSourceError>> = JoinSet::new();
        if let Some(l) = tcp {
            tasks.spawn(tcp::accept(
                l,
                tls.clone(),
                ctx.clone(),
                limits.clone(),
                task_stats.clone(),
            ));
        }
        if let Some(l) = http {
            tasks.spawn(http::accept(
                l,
                tls.clone(),
                ctx.clone(),
                limits.clone(),
                task_stats.clone(),
            ));
        }
        if let Some(t) = udp_thread {
            tasks.spawn(async move {
                tokio::task::spawn_blocking(move || {
                    t.join().unwrap_or_else(|_| {
                        Err(GelfSourceError::Receive(std::io::Error::other(
                            "UDP thread panicked",
                        )))
                    })
                })
                .await
                .unwrap_or_else(|e| Err(GelfSourceError::Receive(std::io::Error::other(e))))
            });
        }
        let mut result = Ok(());
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(ComponentError::from(e)),
                Err(_) => result = Err(ComponentError::Panicked),
            }
        }
        result
    });
    Ok((handle, stats))
}

/// A message without the NULs and newlines some clients put after it.
pub(crate) fn trim_end(message: &[u8]) -> &[u8] {
    let end = message
        .iter()
        .rposition(|&c| !matches!(c, 0 | b'\n' | b'\r'))
        .map_or(0, |i| i + 1);
    &message[..end]
}

/// Serves one stream listener of the source (`protocol`: `GELF tcp` or `GELF http`) with `handler`.
pub(crate) async fn listen<H: Handler>(
    socket: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ctx: SourceContext,
    limits: &Limits,
    protocol: &'static str,
    handler: H,
) -> Result<(), GelfSourceError> {
    let listener = Listener {
        ctx,
        protocol,
        tls,
        slots: limits.connections.clone(),
    };
    crate::sources::listen::serve(socket, listener, handler).await;
    Ok(())
}
