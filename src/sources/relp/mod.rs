//! The `relp` source: rsyslog's Reliable Event Logging Protocol (`omrelp` sends, Quill receives),
//! over TCP or TLS.
//!
//! A client opens a session (`open`, answered with the offers Quill accepts: `relp_version=0`,
//! `commands=syslog`), sends `syslog` frames, each with its transaction number, and closes it
//! (`close`). Each `syslog` frame becomes one record whose payload is the syslog message (one
//! trailing LF dropped, as rsyslog's receivers do), parsed
//! at the sinks like the syslog source's. `rsp 200 OK` for a frame is sent only once its record is
//! durable in the journal, so what rsyslog saw acknowledged survives a crash; what was in flight is
//! resent by rsyslog and may be journaled twice.
//!
//! Bounded: a frame's data length is checked against `max_frame_size` before it is waited for; at
//! most `window` frames are unacknowledged per connection (more are not read until acks go out:
//! backpressure); `max_connections`; idle connections are closed. A malformed frame closes only
//! its connection, with one warning line.
//!
//! This module touches its listening socket, its connections and the journal's append side.

pub use crate::wire::relp as framing;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::component::{ComponentError, SourceContext};
use crate::config::RelpSourceConfig;
use crate::journal::{AppendBatch, Appender};
use crate::record::Record;
use crate::sources::listen::{self, Handler, Listener, StartError, Stream, connection_limit};
use framing::{RelpDecoder, RelpError, RelpFrame};

/// Why a connection was closed.
#[derive(Debug, Error)]
enum ConnError {
    #[error("bad RELP frame: {0}")]
    Frame(#[from] RelpError),
    #[error("`{0}` before `open`")]
    NotOpen(String),
    #[error("unknown command `{0}`")]
    UnknownCommand(String),
    #[error("connection closed inside a frame")]
    Truncated,
    #[error("idle for {0:?}")]
    Idle(Duration),
    #[error("journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

struct Shared {
    ctx: SourceContext,
    appender: Appender,
    decoder: RelpDecoder,
    window: usize,
    idle_timeout: Duration,
}

/// The source's task.
pub type SourceTask = tokio::task::JoinHandle<Result<(), ComponentError>>;

/// Binds the listener and starts the source task.
pub fn start(
    config: RelpSourceConfig,
    std_listener: std::net::TcpListener,
    ctx: SourceContext,
    runtime: &tokio::runtime::Runtime,
) -> Result<SourceTask, StartError> {
    if let Some((key, message)) = config.check() {
        return Err(StartError::Setting { key, message });
    }
    let tls = listen::tls_acceptor(config.tls_keys()).map_err(|e| StartError::Setting {
        key: "tls_cert",
        message: e.to_string(),
    })?;
    let bind_error = |source| StartError::Bind {
        addr: config.listen.clone(),
        source,
    };
    std_listener.set_nonblocking(true).map_err(bind_error)?;
    tracing::info!(source = %ctx.name, listen = %config.listen, tls = tls.is_some(), "RELP source listening.");
    let shared = Arc::new(Shared {
        appender: ctx.journal.appender(),
        ctx,
        decoder: RelpDecoder {
            max_frame: config.max_frame_size.as_usize(),
        },
        window: config.window,
        idle_timeout: config.idle_timeout.0,
    });
    let listener = Listener {
        slots: connection_limit(&shared.ctx.name, "max_connections", config.max_connections),
        ctx: shared.ctx.clone(),
        protocol: "RELP",
        tls,
    };
    let _guard = runtime.enter();
    let socket = TcpListener::from_std(std_listener).map_err(bind_error)?;
    Ok(runtime.spawn(async move {
        listen::serve(socket, listener, Relp(shared)).await;
        Ok(())
    }))
}

/// The RELP protocol on one connection.
#[derive(Clone)]
struct Relp(Arc<Shared>);

impl Handler for Relp {
    type Error = ConnError;

    async fn serve<S: Stream>(self, stream: S, _peer: String) -> Result<(), ConnError> {
        let shared = &*self.0;
        let (mut rd, wr) = tokio::io::split(stream);
        // Replies in order; each syslog ack waits until its record is durable. The queue's bound
        // is the window: a client past it is not read until acks go out.
        let (tx, rx) = mpsc::channel::<Reply>(shared.window);
        let writer = tokio::spawn(write_replies(wr, rx, shared.appender.clone()));
        let result = receive(shared, &mut rd, &tx).await;
        drop(tx);
        let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
        if let Err(e) = &result
            && matches!(
                e,
                ConnError::Frame(_)
                    | ConnError::NotOpen(_)
                    | ConnError::UnknownCommand(_)
                    | ConnError::Truncated
            )
        {
            shared.ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

enum Reply {
    /// `rsp 200 OK` once journal sequence `seq` is durable.
    Ack { txnr: u32, seq: u64 },
    /// Any reply to send as it is, after those before it.
    Now(Vec<u8>),
}

async fn write_replies<S: Stream>(
    mut wr: WriteHalf<S>,
    mut rx: mpsc::Receiver<Reply>,
    appender: Appender,
) {
    let mut out = Vec::with_capacity(4096);
    while let Some(first) = rx.recv().await {
        out.clear();
        let mut next = Some(first);
        // Batch what is ready into one write.
        while let Some(reply) = next {
            match reply {
                Reply::Ack { txnr, seq } => {
                    if appender.wait_durable(seq).await.is_err() {
                        return;
                    }
                    framing::encode_rsp(&mut out, txnr, b"200 OK");
                }
                Reply::Now(bytes) => out.extend_from_slice(&bytes),
            }
            next = rx.try_recv().ok();
        }
        if wr.write_all(&out).await.is_err() || wr.flush().await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

async fn receive<S: Stream>(
    shared: &Shared,
    rd: &mut ReadHalf<S>,
    tx: &mpsc::Sender<Reply>,
) -> Result<(), ConnError> {
    let mut shutdown = shared.ctx.shutdown.clone();
    let mut buf = BytesMut::with_capacity(16 << 10);
    let mut open = false;
    loop {
        let n = tokio::select! {
            _ = shutdown.triggered() => return Ok(()),
            r = tokio::time::timeout(shared.idle_timeout, rd.read_buf(&mut buf)) => match r {
                Err(_) => return Err(ConnError::Idle(shared.idle_timeout)),
                Ok(r) => r?,
            },
        };
        let mut frames = Vec::new();
        let mut failure = None;
        loop {
            match shared.decoder.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => {
                    failure = Some(ConnError::Frame(e));
                    break;
                }
            }
        }
        let closed = handle(shared, frames, &mut open, tx).await?;
        if let Some(f) = failure {
            return Err(f);
        }
        if closed {
            return Ok(());
        }
        if n == 0 {
            return if buf.is_empty() {
                Ok(())
            } else {
                Err(ConnError::Truncated)
            };
        }
        // Room for the next frame, up to one maximal frame.
        let want = (shared.decoder.max_frame + 64).min(buf.capacity().max(16 << 10) * 2);
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(want.saturating_sub(buf.len()).max(4096));
        }
    }
}

/// Handles the frames of one read: journals the syslog frames together, queues replies in order.
/// True when the client closed the session.
async fn handle(
    shared: &Shared,
    frames: Vec<RelpFrame>,
    open: &mut bool,
    tx: &mpsc::Sender<Reply>,
) -> Result<bool, ConnError> {
    let mut records = Vec::new();
    let mut txnrs = Vec::new();
    let mut bytes = 0;
    let mut closed = false;
    let mut pending: Vec<Reply> = Vec::new();
    for f in frames {
        let command = String::from_utf8_lossy(&f.command).to_string();
        match command.as_str() {
            "open" => {
                *open = true;
                let mut out = Vec::new();
                framing::encode_rsp(
                    &mut out,
                    f.txnr,
                    b"200 OK\nrelp_version=0\nrelp_software=quill\ncommands=syslog",
                );
                pending.push(Reply::Now(out));
            }
            "syslog" if *open => {
                // One trailing LF (templates such as RSYSLOG_SyslogProtocol23Format end with
                // one) is framing, not message, as rsyslog's own receivers drop it.
                let mut data = f.data;
                if data.last() == Some(&b'\n') {
                    data.truncate(data.len() - 1);
                }
                bytes += data.len() as u64;
                records.push(Record::new(shared.ctx.origin.clone(), data));
                txnrs.push(f.txnr);
            }
            "close" => {
                // Acks of what came before go out first; then the close's own rsp.
                let mut out = Vec::new();
                framing::encode_rsp(&mut out, f.txnr, b"");
                pending.push(Reply::Now(out));
                closed = true;
                break;
            }
            _ if !*open => return Err(ConnError::NotOpen(command)),
            "rsp" => {} // a client answering serverclose
            _ => return Err(ConnError::UnknownCommand(command)),
        }
        if !records.is_empty() && !pending.is_empty() {
            // Keep order: journal what came before a non-syslog reply.
            flush(shared, &mut records, &mut txnrs, &mut bytes, tx).await?;
        }
        for p in pending.drain(..) {
            if tx.send(p).await.is_err() {
                return Ok(true);
            }
        }
    }
    flush(shared, &mut records, &mut txnrs, &mut bytes, tx).await?;
    for p in pending.drain(..) {
        let _ = tx.send(p).await;
    }
    Ok(closed)
}

async fn flush(
    shared: &Shared,
    records: &mut Vec<Record>,
    txnrs: &mut Vec<u32>,
    bytes: &mut u64,
    tx: &mpsc::Sender<Reply>,
) -> Result<(), ConnError> {
    if records.is_empty() {
        return Ok(());
    }
    let count = records.len() as u64;
    let receipt = shared
        .appender
        .append(AppendBatch {
            records: std::mem::take(records),
            checkpoints: Vec::new(),
        })
        .await?;
    shared.ctx.stats.add(count, *bytes);
    *bytes = 0;
    for txnr in txnrs.drain(..) {
        if tx
            .send(Reply::Ack {
                txnr,
                seq: receipt.last_seq,
            })
            .await
            .is_err()
        {
            break;
        }
    }
    Ok(())
}
