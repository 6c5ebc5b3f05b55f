//! One accept loop for the stream sources (syslog TCP/TLS/unix, GELF TCP/HTTP, RELP, Scribe):
//! each source supplies only its per-connection protocol [`Handler`].
//!
//! The loop accepts until the source's shutdown, pausing on `EMFILE` ([`AcceptBackoff`]); holds at
//! most `max_connections` at once (clamped to the descriptor limit: [`connection_limit`]) and
//! refuses the rest at once, counted in `refused_connections` and logged at most once per 10 s;
//! runs the TLS handshake (within [`TLS_HANDSHAKE_TIMEOUT`]) inside the connection's own task, so
//! a slow handshake holds only its own slot; and logs one `Closed <protocol> connection: <reason>.`
//! line per connection that ends in an error. Idle and frame timeouts are the handler's (they
//! belong to its protocol); it watches the source's shutdown itself, so that it can journal what
//! it already read before it returns. At shutdown the loop lets connections finish for
//! [`DRAIN`], then stops the rest.
//!
//! [`tls_acceptor`] builds the TLS side from a source's keys, for every listening source;
//! [`append_counted`] journals a connection's records and counts them.
//!
//! This module touches the listening sockets it is given, the connections it accepts, the journal
//! appends of their records and the PEM files a source names.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use tokio_rustls::TlsAcceptor;

use crate::component::{ComponentError, SourceContext};
use crate::config::ServerTlsKeys;
use crate::journal::{AppendBatch, Appender, JournalError};
use crate::limits::AcceptBackoff;
use crate::record::Record;
use crate::transport::tls::TlsError;

/// Journals what a connection read (waiting while the journal is full) and counts it in the
/// source's stats; nothing to do for no records.
pub async fn append_counted(
    appender: &Appender,
    ctx: &SourceContext,
    records: Vec<Record>,
    bytes: u64,
) -> Result<(), JournalError> {
    if records.is_empty() {
        return Ok(());
    }
    let count = records.len() as u64;
    appender
        .append(AppendBatch {
            records,
            checkpoints: Vec::new(),
        })
        .await?;
    ctx.stats.add(count, bytes);
    Ok(())
}

/// A TLS client must finish its handshake within this.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// At shutdown, connections get this long to journal what they read and reply.
pub const DRAIN: Duration = Duration::from_secs(3);
/// Refusals at `max_connections` are logged at most this often.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A byte stream a handler serves: TCP, TLS over TCP, or a unix stream.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for S {}

/// A listening stream socket: TCP or unix.
pub trait Accept: Send + Sync + 'static {
    type Stream: Stream;
    /// The next connection and a description of its peer for log lines.
    fn accept_peer(&self) -> impl Future<Output = std::io::Result<(Self::Stream, String)>> + Send;
}

impl Accept for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_peer(&self) -> std::io::Result<(Self::Stream, String)> {
        let (stream, peer) = self.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, peer.to_string()))
    }
}

impl Accept for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_peer(&self) -> std::io::Result<(Self::Stream, String)> {
        let (stream, _) = self.accept().await?;
        let peer = match stream.peer_cred() {
            Ok(c) => format!("unix pid={} uid={}", c.pid().unwrap_or(0), c.uid()),
            Err(_) => "unix peer".to_string(),
        };
        Ok((stream, peer))
    }
}

/// A source's protocol on one accepted connection.
pub trait Handler: Clone + Send + Sync + 'static {
    /// Why a connection ended early: logged once as the close reason.
    type Error: Display + Send;

    /// Serves `stream` from `peer` until it closes, fails or the source shuts down (then it
    /// journals what it already read and returns). An error is the close reason; the handler has
    /// already counted it where its protocol counts bad input.
    fn serve<S: Stream>(
        self,
        stream: S,
        peer: String,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// A connection was refused at `max_connections`: count it in the source's own counters
    /// (`refused_connections` is already counted).
    fn refused(&self) {}
}

/// What one listener's connections share.
pub struct Listener {
    pub ctx: SourceContext,
    /// The protocol as the log lines name it (`RELP`, `GELF tcp`, `syslog`).
    pub protocol: &'static str,
    /// TLS on every connection when set.
    pub tls: Option<TlsAcceptor>,
    /// Connection slots ([`connection_limit`]); one semaphore may serve several listeners.
    pub slots: Arc<Semaphore>,
}

/// Why a listening source (RELP, Scribe) could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{key}: {message}")]
    Setting { key: &'static str, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<StartError> for ComponentError {
    fn from(e: StartError) -> ComponentError {
        match e {
            StartError::Bind { addr, source } => ComponentError::Bind { addr, source },
            other => ComponentError::Setting(other.to_string()),
        }
    }
}

/// The TLS acceptor of a source's keys (`None` without a certificate). No TLS 1.3 session
/// tickets: fire-and-forget clients (pygelf, graypy, syslog senders) never read them, and a socket
/// closed with unread data sends a reset that makes the kernel discard the last messages it had not
/// yet handed to Quill.
pub fn tls_acceptor(keys: ServerTlsKeys<'_>) -> Result<Option<TlsAcceptor>, TlsError> {
    let Some((cert, key)) = keys.pair() else {
        return Ok(None);
    };
    let mut server = (*crate::transport::tls::server_config(cert, key, keys.client_ca)?).clone();
    server.send_tls13_tickets = 0;
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

/// The slots of `max_connections` (key `key` of source `source`), lowered so that the journal,
/// sinks and index keep their descriptors ([`crate::limits::clamp_connections`]); at least 1.
pub fn connection_limit(source: &str, key: &str, max_connections: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(crate::limits::clamp_connections(
        source,
        key,
        max_connections.max(1),
    )))
}

/// Accepts connections from `socket` until shutdown, each served by `handler` in its own task;
/// then drains them ([`DRAIN`]).
pub async fn serve<A: Accept, H: Handler>(socket: A, listener: Listener, handler: H) {
    let Listener {
        ctx,
        protocol,
        tls,
        slots,
    } = listener;
    let mut shutdown = ctx.shutdown.clone();
    let mut connections = JoinSet::new();
    let mut refusals = Refusals::default();
    let mut accept_errors = AcceptBackoff::new(&ctx.name);
    loop {
        tokio::select! {
            _ = shutdown.triggered() => break,
            accepted = socket.accept_peer() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        handler.refused();
                        refusals.refused(&ctx, protocol, &peer);
                        continue;
                    };
                    let (ctx, tls, handler) = (ctx.clone(), tls.clone(), handler.clone());
                    connections.spawn(async move {
                        connection(stream, peer, &ctx, protocol, tls, handler).await;
                        drop(permit);
                    });
                }
                Err(e) => accept_errors.failed(&e).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let all = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, all).await.is_err() {
        connections.abort_all();
    }
}

/// One connection: the TLS handshake when set, then the handler; one log line if it failed.
async fn connection<S: Stream, H: Handler>(
    stream: S,
    peer: String,
    ctx: &SourceContext,
    protocol: &'static str,
    tls: Option<TlsAcceptor>,
    handler: H,
) {
    let reason = match tls {
        None => handler
            .serve(stream, peer.clone())
            .await
            .err()
            .map(|e| e.to_string()),
        Some(acceptor) => {
            let mut shutdown = ctx.shutdown.clone();
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let done = tokio::select! {
                _ = shutdown.triggered() => return,
                done = handshake => done,
            };
            match done {
                Ok(Ok(s)) => handler
                    .serve(s, peer.clone())
                    .await
                    .err()
                    .map(|e| e.to_string()),
                Ok(Err(e)) => {
                    ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                    Some(format!("TLS handshake failed: {e}"))
                }
                Err(_) => {
                    ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                    Some("TLS handshake timed out".to_string())
                }
            }
        }
    };
    if let Some(reason) = reason {
        tracing::warn!(source = %ctx.name, %peer, "Closed {protocol} connection: {reason}.");
    }
}

/// Counts refusals and logs them at most once per [`REFUSAL_LOG_INTERVAL`].
#[derive(Default)]
struct Refusals {
    last_log: Option<Instant>,
}

impl Refusals {
    fn refused(&mut self, ctx: &SourceContext, protocol: &str, peer: &str) {
        let total = ctx
            .stats
            .refused_connections
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        if self
            .last_log
            .is_none_or(|t| t.elapsed() >= REFUSAL_LOG_INTERVAL)
        {
            self.last_log = Some(Instant::now());
            tracing::warn!(source = %ctx.name, %peer, refused_total = total, "Refused {protocol} connection: connection limit reached, refusing new connections until some close.");
        }
    }
}
