//! The `forward` source: the aggregator's input. Accepts agents (plain TCP or TLS, optionally
//! mutual), checks their HELLO (protocol version, agent id, shared token), and appends each batch
//! to this journal, acking it only once it is durable.
//!
//! Exactly once: per agent id the source keeps a high-water mark, the last sequence of the agent's
//! journal stream it holds. It is stored as the checkpoint `forward/<agent-id>` =
//! `<stream-id> <seq>` in the same journal append as the records, so it is durable exactly when
//! they are. Records at or below the mark are replays (an agent resending after a lost ack or a
//! restart of either side) and are dropped; a batch that is only a replay is acked once the append
//! that first held it is durable. Appends of one agent are serialized, across its connections too.
//!
//! Identity: with `identities` or `agent_id_from_certificate`, the HELLO's agent id must be one
//! its credential (token, client certificate) may use ([`identity`]), so two agents cannot share
//! one high-water mark.
//!
//! Bad peers: a wrong token, garbage, an unknown version, an oversized frame, a truncated frame, a
//! batch that decompresses past its declared size (a zstd bomb) or an unsafe category gets an
//! ERROR frame (where the stream still allows one), one warning line naming the peer, and a
//! disconnect; other connections are unaffected.
//!
//! Hostile peers: a connection first holds one of `max_unauthenticated` handshake slots and must
//! finish TLS and HELLO within `handshake_timeout`; only then does it take one of
//! `max_connections` agent slots. No IP address holds more than `max_unauthenticated_per_ip`
//! handshake slots, nor more than `max_connections_per_ip` connections in all. After the handshake a frame's payload must arrive within `frame_timeout` of its header
//! and an agent may be silent for `idle_timeout` between frames. Frames being read and batches
//! being decompressed share one byte budget (`memory_budget`, [`ByteBudget`]; HELLOs have their
//! own, `max_unauthenticated` x 64 KiB, so a spent budget never blocks a handshake): a frame holds
//! what its buffer has grown to, a batch its declared decompressed size, so memory stays within
//! the budget whatever the peers declare.
//!
//! This module touches its listening socket, its connections and the journal's append side.

mod admission;
mod conn;
pub mod identity;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::component::SourceContext;
use crate::config::ForwardSourceConfig;
use crate::journal::Appender;
use crate::transport::budget::{ByteBudget, FrameLimits, ReadError, read_frame_budgeted};
use crate::transport::frame::{
    ErrorCode, Frame, FrameError, Hello, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
use crate::transport::{self, Io, constant_time_eq};
use admission::{IpSlot, PerIp, RefusalLog};
use conn::AckJob;
use identity::Identities;

/// Largest HELLO accepted (its strings are at most 64 KiB each; real ones are tiny).
const MAX_HELLO: usize = 64 * 1024;
/// Acks queued per connection at most (the agent's window is far smaller).
const ACK_QUEUE: usize = 256;

/// One agent stream's state: the last sequence held, and the journal sequence of the append that
/// made it so (a replay is acked once that is durable).
#[derive(Debug, Default)]
struct StreamState {
    stream_id: String,
    high_water: u64,
    journal_seq: u64,
}

struct Shared {
    ctx: SourceContext,
    appender: Appender,
    token: Option<Bytes>,
    /// Which credential may use which agent id.
    identities: Identities,
    tls: Option<tokio_rustls::TlsAcceptor>,
    max_frame: usize,
    max_batch: usize,
    handshake_timeout: Duration,
    frame_timeout: Duration,
    idle_timeout: Duration,
    budget: ByteBudget,
    /// HELLOs being read: their own budget, so a spent `budget` never blocks a handshake.
    hello_budget: ByteBudget,
    /// Agent slots: taken once the HELLO is accepted.
    slots: Arc<Semaphore>,
    agents: Mutex<HashMap<String, Arc<tokio::sync::Mutex<StreamState>>>>,
}

/// The checkpoint key of an agent's high-water mark.
pub fn checkpoint_key(agent_id: &str) -> String {
    format!("forward/{agent_id}")
}

fn parse_checkpoint(value: &[u8]) -> Option<(String, u64)> {
    let text = std::str::from_utf8(value).ok()?;
    let (stream, seq) = text.split_once(' ')?;
    Some((stream.to_string(), seq.parse().ok()?))
}

/// Binds the listener and starts the source task.
pub fn start(
    config: ForwardSourceConfig,
    std_listener: std::net::TcpListener,
    ctx: SourceContext,
    runtime: &tokio::runtime::Runtime,
) -> Result<tokio::task::JoinHandle<Result<(), String>>, String> {
    if let Some((key, message)) = config.check() {
        return Err(format!("{key}: {message}"));
    }
    let token = transport::load_token(config.token.as_deref(), config.token_file.as_deref())?;
    let tls = crate::sources::listen::tls_acceptor(config.tls_keys()).map_err(|e| e.to_string())?;
    let identities = Identities::load(&config)?;
    if token.is_none() && !identities.has_tokens() && config.tls_client_ca.is_none() {
        tracing::warn!(source = %ctx.name, "Forward source on {} accepts any agent: set `token`, `token_file` or `tls_client_ca`.", config.listen);
    }
    std_listener
        .set_nonblocking(true)
        .map_err(|e| format!("{}: {e}", config.listen))?;
    tracing::info!(source = %ctx.name, listen = %config.listen, tls = tls.is_some(), mutual_tls = config.tls_client_ca.is_some(), "Forward source listening.");
    let ctx_name = ctx.name.clone();
    let max_connections =
        crate::limits::clamp_connections(&ctx.name, "max_connections", config.max_connections);
    let shared = Arc::new(Shared {
        appender: ctx.journal.appender(),
        ctx,
        token,
        identities,
        tls,
        max_frame: config.max_frame_size.as_usize(),
        max_batch: config.max_batch_size.as_usize(),
        handshake_timeout: config.handshake_timeout.0,
        frame_timeout: config.frame_timeout.0,
        idle_timeout: config.idle_timeout.0,
        budget: ByteBudget::new(config.memory_budget.as_usize()),
        hello_budget: ByteBudget::new(config.max_unauthenticated.max(1) * MAX_HELLO),
        slots: Arc::new(Semaphore::new(max_connections)),
        agents: Mutex::new(HashMap::new()),
    });
    let handshakes = Arc::new(Semaphore::new(crate::limits::clamp_connections(
        &ctx_name,
        "max_unauthenticated",
        config.max_unauthenticated,
    )));
    let per_ip = PerIp::new(
        config.max_connections_per_ip,
        config.max_unauthenticated_per_ip,
    );
    let _guard = runtime.enter();
    Ok(runtime.spawn(async move {
        let listener = TcpListener::from_std(std_listener).map_err(|e| e.to_string())?;
        accept_loop(listener, shared, handshakes, per_ip).await
    }))
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    handshakes: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
) -> Result<(), String> {
    let mut shutdown = shared.ctx.shutdown.clone();
    let mut connections = JoinSet::new();
    let mut refusals = RefusalLog::new();
    let mut accept_errors = crate::limits::AcceptBackoff::new(&shared.ctx.name);
    loop {
        tokio::select! {
            _ = shutdown.triggered() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let admitted = per_ip.take(peer.ip()).and_then(|ip_slot| {
                        match handshakes.clone().try_acquire_owned() {
                            Ok(handshake) => Ok((ip_slot, handshake)),
                            Err(_) => Err("too many connections in their handshake"),
                        }
                    });
                    let (ip_slot, handshake) = match admitted {
                        Ok(v) => v,
                        Err(why) => {
                            refusals.note(&shared.ctx.name, peer, why);
                            shared.ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                            // No task (nor TLS handshake) is spent on a refused peer.
                            drop(stream);
                            continue;
                        }
                    };
                    let shared = shared.clone();
                    connections.spawn(serve(stream, peer, shared, handshake, ip_slot));
                }
                Err(e) => accept_errors.failed(&e).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Let connections finish the batch they are appending and send its ack, then stop.
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(3), drain)
        .await
        .is_err()
    {
        connections.abort_all();
    }
    Ok(())
}

/// Why a connection ended badly: what to tell the peer and what to log.
struct Refusal {
    code: ErrorCode,
    message: String,
    /// False when the stream is unusable (I/O error, truncated frame): no ERROR frame is sent.
    tell_peer: bool,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            tell_peer: true,
        }
    }
}

impl From<ReadError> for Refusal {
    fn from(e: ReadError) -> Refusal {
        match e {
            ReadError::Frame(e) => Refusal::from(e),
            ReadError::Budget(e) => Refusal::new(ErrorCode::Unavailable, e.to_string()),
            e @ (ReadError::Idle(_) | ReadError::Slow { .. }) => {
                Refusal::new(ErrorCode::Unavailable, e.to_string())
            }
        }
    }
}

impl From<FrameError> for Refusal {
    fn from(e: FrameError) -> Refusal {
        let tell_peer = !matches!(e, FrameError::Io(_) | FrameError::Truncated { .. });
        Refusal {
            code: e.error_code(),
            message: e.to_string(),
            tell_peer,
        }
    }
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    handshake: tokio::sync::OwnedSemaphorePermit,
    mut ip_slot: IpSlot,
) {
    let _ = stream.set_nodelay(true);
    let name = shared.ctx.name.clone();
    let deadline = tokio::time::Instant::now() + shared.handshake_timeout;
    let (io, client_cert): (Box<dyn Io>, Option<CertificateDer<'static>>) = match &shared.tls {
        None => (Box::new(stream), None),
        Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
            Ok(Ok(s)) => {
                let cert = s
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| c.clone().into_owned());
                (Box::new(s), cert)
            }
            Ok(Err(e)) => {
                shared.ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(source = %name, %peer, "Refused forward connection: TLS handshake failed: {e}.");
                return;
            }
            Err(_) => {
                shared.ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(source = %name, %peer, "Refused forward connection: TLS handshake timed out.");
                return;
            }
        },
    };
    let (mut rd, mut wr) = tokio::io::split(io);
    let limits = FrameLimits {
        max_len: MAX_HELLO,
        idle: shared.handshake_timeout,
        frame: shared.handshake_timeout,
    };
    let hello = match tokio::time::timeout_at(
        deadline,
        read_frame_budgeted(&mut rd, limits, &shared.hello_budget),
    )
    .await
    {
        Err(_) => Err(Refusal::new(ErrorCode::Malformed, "no HELLO in time")),
        Ok(Ok(Some((Frame::Hello(h), _)))) => Ok(h),
        Ok(Ok(Some((other, _)))) => Err(Refusal::new(
            ErrorCode::Malformed,
            format!("expected HELLO, got {}", other.name()),
        )),
        Ok(Ok(None)) => return, // connected and left: a port probe
        Ok(Err(e)) => Err(Refusal::from(e)),
    };
    let checked = hello
        .and_then(|h| check_hello(&shared, h, client_cert.as_ref()))
        .and_then(|v| {
            // Authenticated: trade the handshake slot for an agent slot.
            let slot = shared
                .slots
                .clone()
                .try_acquire_owned()
                .map_err(|_| Refusal::new(ErrorCode::Unavailable, "too many connections"))?;
            Ok((v, slot))
        });
    drop(handshake);
    ip_slot.handshake_done();
    let ((hello, state), _slot) = match checked {
        Ok(v) => v,
        Err(r) => {
            refuse(&shared, &mut wr, peer, None, r).await;
            return;
        }
    };
    let agent = hello.agent_id.clone();
    // Report only what is durable: the agent acks its own journal up to this mark.
    let high_water = {
        let st = state.lock().await;
        if let Err(e) = shared.appender.wait_durable(st.journal_seq).await {
            drop(st);
            let r = Refusal::new(ErrorCode::Unavailable, format!("journal: {e}"));
            refuse(&shared, &mut wr, peer, Some(&agent), r).await;
            return;
        }
        if st.stream_id == hello.stream_id {
            st.high_water
        } else {
            0
        }
    };
    let mut out = Vec::with_capacity(64);
    Frame::Welcome {
        version: hello.version,
        high_water,
    }
    .encode(&mut out);
    if wr.write_all(&out).await.is_err() || wr.flush().await.is_err() {
        return;
    }
    tracing::info!(source = %name, %peer, agent = %agent, high_water, "Agent connected.");

    let (ack_tx, ack_rx) = mpsc::channel::<AckJob>(ACK_QUEUE);
    let writer = tokio::spawn(conn::write_acks(wr, ack_rx, shared.appender.clone()));
    let result = conn::receive_batches(&shared, &mut rd, &hello, &state, &ack_tx).await;
    match result {
        Ok(()) => {
            drop(ack_tx);
            let _ = writer.await;
            tracing::info!(source = %name, %peer, agent = %agent, "Agent disconnected.");
        }
        Err(r) => {
            shared.ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(source = %name, %peer, agent = %agent, "Closed forward connection: {}.", r.message);
            if r.tell_peer {
                let _ = ack_tx.send(AckJob::Error(r.code, r.message)).await;
            }
            drop(ack_tx);
            let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
        }
    }
}

/// Validates a HELLO and finds the agent's state.
fn check_hello(
    shared: &Shared,
    hello: Hello,
    client_cert: Option<&CertificateDer<'_>>,
) -> Result<(Hello, Arc<tokio::sync::Mutex<StreamState>>), Refusal> {
    if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&hello.version) {
        return Err(Refusal::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "protocol version {} is not supported (this aggregator speaks {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION})",
                hello.version
            ),
        ));
    }
    if let Some(token) = &shared.token
        && !constant_time_eq(token, &hello.token)
    {
        return Err(Refusal::new(
            ErrorCode::AuthFailed,
            format!("wrong token from agent {:?}", hello.agent_id),
        ));
    }
    if !transport::is_valid_agent_id(&hello.agent_id) {
        return Err(Refusal::new(
            ErrorCode::InvalidAgentId,
            format!("invalid agent id {:?}", hello.agent_id),
        ));
    }
    if let Err(e) = shared
        .identities
        .check(&hello.agent_id, &hello.token, client_cert)
    {
        shared
            .ctx
            .stats
            .identity_refused
            .fetch_add(1, Ordering::Relaxed);
        let code = match e {
            identity::IdentityError::UnknownCredential { .. } => ErrorCode::AuthFailed,
            identity::IdentityError::Mismatch { .. } => ErrorCode::IdentityMismatch,
        };
        return Err(Refusal::new(code, e.to_string()));
    }
    if !transport::is_valid_stream_id(&hello.stream_id) {
        return Err(Refusal::new(
            ErrorCode::Malformed,
            format!("invalid stream id {:?}", hello.stream_id),
        ));
    }
    let mut agents = shared.agents.lock().unwrap_or_else(|p| p.into_inner());
    let state = agents
        .entry(hello.agent_id.clone())
        .or_insert_with(|| {
            let (stream_id, high_water) = shared
                .ctx
                .journal
                .checkpoint(&checkpoint_key(&hello.agent_id))
                .and_then(|v| parse_checkpoint(&v))
                .unwrap_or_default();
            Arc::new(tokio::sync::Mutex::new(StreamState {
                stream_id,
                high_water,
                journal_seq: 0,
            }))
        })
        .clone();
    Ok((hello, state))
}

async fn refuse(
    shared: &Shared,
    wr: &mut WriteHalf<Box<dyn Io>>,
    peer: SocketAddr,
    agent: Option<&str>,
    r: Refusal,
) {
    shared.ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(source = %shared.ctx.name, %peer, agent = agent.unwrap_or("?"), "Refused forward connection: {}.", r.message);
    if r.tell_peer {
        let mut out = Vec::new();
        Frame::Error {
            code: r.code,
            message: r.message,
        }
        .encode(&mut out);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = wr.write_all(&out).await;
            let _ = wr.shutdown().await;
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_values() {
        assert_eq!(parse_checkpoint(b"00ff 42"), Some(("00ff".to_string(), 42)));
        assert_eq!(parse_checkpoint(b"00ff"), None);
        assert_eq!(parse_checkpoint(b"00ff x"), None);
    }
}
