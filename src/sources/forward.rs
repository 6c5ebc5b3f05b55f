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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::component::SourceContext;
use crate::config::ForwardSourceConfig;
use crate::journal::{AppendBatch, Appender, Checkpoint};
use crate::transport::batch::{self, BatchError};
use crate::transport::budget::{ByteBudget, FrameLimits, ReadError, read_frame_budgeted};
use crate::transport::frame::{BatchFrame, ErrorCode, Frame, FrameError, Hello, PROTOCOL_VERSION};
use crate::transport::{self, Io, constant_time_eq, tls};

/// Largest HELLO accepted (its strings are at most 64 KiB each; real ones are tiny).
const MAX_HELLO: usize = 64 * 1024;
/// Refusals of the accept loop are logged at most this often (the rest are counted).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);
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

/// Connections per IP address (all, and those still in their handshake), shared by the accept
/// loop and the connections' [`IpSlot`]s.
struct PerIp {
    max: usize,
    max_handshakes: usize,
    counts: Mutex<HashMap<IpAddr, IpCount>>,
}

#[derive(Default)]
struct IpCount {
    all: usize,
    handshakes: usize,
}

/// One connection's place in its IP's counts; freed when dropped.
struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
    in_handshake: bool,
}

impl PerIp {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, IpCount>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new connection from `ip`, or why there is none.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Result<IpSlot, &'static str> {
        let mut counts = self.counts();
        let n = counts.entry(ip).or_default();
        if n.all >= self.max {
            return Err("too many connections from this address");
        }
        if n.handshakes >= self.max_handshakes {
            return Err("too many connections in their handshake from this address");
        }
        n.all += 1;
        n.handshakes += 1;
        Ok(IpSlot {
            per_ip: self.clone(),
            ip,
            in_handshake: true,
        })
    }
}

impl IpSlot {
    /// The handshake is over (its slot is free for the next peer from this address).
    fn handshake_done(&mut self) {
        if std::mem::take(&mut self.in_handshake)
            && let Some(n) = self.per_ip.counts().get_mut(&self.ip)
        {
            n.handshakes -= 1;
        }
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        self.handshake_done();
        let mut counts = self.per_ip.counts();
        if let Some(n) = counts.get_mut(&self.ip) {
            n.all -= 1;
            if n.all == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Refusals at accept, logged at most once per [`REFUSAL_LOG_INTERVAL`] with how many were not.
struct RefusalLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    fn note(&mut self, source: &str, peer: SocketAddr, why: &str) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < REFUSAL_LOG_INTERVAL)
        {
            self.unlogged += 1;
            return;
        }
        let also = std::mem::take(&mut self.unlogged);
        tracing::warn!(source = %source, %peer, "Refused forward connection: {why} ({also} more refusals since the last such line).");
        self.last = Some(Instant::now());
    }
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
    ctx: SourceContext,
    runtime: &tokio::runtime::Runtime,
) -> Result<tokio::task::JoinHandle<Result<(), String>>, String> {
    if let Some((key, message)) = config.check() {
        return Err(format!("{key}: {message}"));
    }
    let token = transport::load_token(config.token.as_deref(), config.token_file.as_deref())?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => {
            let server = tls::server_config(cert, key, config.tls_client_ca.as_deref())
                .map_err(|e| e.to_string())?;
            Some(tokio_rustls::TlsAcceptor::from(server))
        }
        _ => None,
    };
    if token.is_none() && config.tls_client_ca.is_none() {
        tracing::warn!(source = %ctx.name, "Forward source on {} accepts any agent: set `token`, `token_file` or `tls_client_ca`.", config.listen);
    }
    let std_listener = std::net::TcpListener::bind(&config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
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
    let per_ip = Arc::new(PerIp {
        max: config.max_connections_per_ip,
        max_handshakes: config.max_unauthenticated_per_ip,
        counts: Mutex::default(),
    });
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
    let mut refusals = RefusalLog {
        last: None,
        unlogged: 0,
    };
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
    let io: Box<dyn Io> = match &shared.tls {
        None => Box::new(stream),
        Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
            Ok(Ok(s)) => Box::new(s),
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
    let checked = hello.and_then(|h| check_hello(&shared, h)).and_then(|v| {
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
        version: PROTOCOL_VERSION,
        high_water,
    }
    .encode(&mut out);
    if wr.write_all(&out).await.is_err() || wr.flush().await.is_err() {
        return;
    }
    tracing::info!(source = %name, %peer, agent = %agent, high_water, "Agent connected.");

    let (ack_tx, ack_rx) = mpsc::channel::<AckJob>(ACK_QUEUE);
    let writer = tokio::spawn(write_acks(wr, ack_rx, shared.appender.clone()));
    let result = receive_batches(&shared, &mut rd, &hello, &state, &ack_tx).await;
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
) -> Result<(Hello, Arc<tokio::sync::Mutex<StreamState>>), Refusal> {
    if hello.version != PROTOCOL_VERSION {
        return Err(Refusal::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "protocol version {} is not supported (this aggregator speaks {PROTOCOL_VERSION})",
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

enum AckJob {
    /// Ack `ack_seq` once journal sequence `journal_seq` is durable.
    Ack {
        journal_seq: u64,
        ack_seq: u64,
    },
    Error(ErrorCode, String),
}

/// Sends acks in order, each once what it covers is durable; then an ERROR, if any.
async fn write_acks(
    mut wr: WriteHalf<Box<dyn Io>>,
    mut jobs: mpsc::Receiver<AckJob>,
    appender: Appender,
) {
    let mut out = Vec::with_capacity(64);
    while let Some(job) = jobs.recv().await {
        out.clear();
        match job {
            AckJob::Ack {
                journal_seq,
                ack_seq,
            } => {
                if appender.wait_durable(journal_seq).await.is_err() {
                    return;
                }
                Frame::Ack { last_seq: ack_seq }.encode(&mut out);
            }
            AckJob::Error(code, message) => Frame::Error { code, message }.encode(&mut out),
        }
        // Batch acks that are ready together into one write.
        if wr.write_all(&out).await.is_err() || wr.flush().await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

async fn receive_batches(
    shared: &Shared,
    rd: &mut ReadHalf<Box<dyn Io>>,
    hello: &Hello,
    state: &tokio::sync::Mutex<StreamState>,
    acks: &mpsc::Sender<AckJob>,
) -> Result<(), Refusal> {
    let mut shutdown = shared.ctx.shutdown.clone();
    let key = checkpoint_key(&hello.agent_id);
    let limits = FrameLimits {
        max_len: shared.max_frame,
        idle: shared.idle_timeout,
        frame: shared.frame_timeout,
    };
    loop {
        let frame = tokio::select! {
            _ = shutdown.triggered() => return Ok(()),
            f = read_frame_budgeted(rd, limits, &shared.budget) => f?,
        };
        let (batch, frame_held) = match frame {
            None => return Ok(()),
            Some((Frame::Batch(b), held)) => (b, held),
            Some((other, _)) => {
                return Err(Refusal::new(
                    ErrorCode::Malformed,
                    format!("unexpected {} frame", other.name()),
                ));
            }
        };
        check_batch_header(&batch, shared.max_batch)?;
        // The decompressed batch is budgeted at its declared size (decompression stops there).
        let deadline = tokio::time::Instant::now() + shared.frame_timeout;
        let _raw_held = shared
            .budget
            .take(batch.raw_len as usize, deadline)
            .await
            .map_err(|e| Refusal::new(ErrorCode::Unavailable, e.to_string()))?;
        // Decompression and decoding are CPU work: off the reactor. The context is made per batch
        // so that idle connections hold none.
        let max_batch = shared.max_batch;
        let decoded = tokio::task::spawn_blocking(move || {
            let mut dec = zstd::bulk::Decompressor::new().map_err(|e| BatchError::Decompress {
                declared: batch.raw_len,
                reason: e.to_string(),
            })?;
            batch::decompress(&mut dec, &batch.compressed, batch.raw_len, max_batch)
                .and_then(|raw| batch::decode_records(raw, batch.count))
                .map(|records| (batch.first_seq, batch.last_seq, records))
        })
        .await
        .map_err(|e| Refusal::new(ErrorCode::Unavailable, format!("decoder failed: {e}")))?;
        drop(frame_held);
        let (first_seq, last_seq, mut records) = decoded.map_err(|e| match e {
            BatchError::InvalidCategory(_) => {
                Refusal::new(ErrorCode::InvalidCategory, e.to_string())
            }
            BatchError::TooLarge { .. } => Refusal::new(ErrorCode::BatchTooLarge, e.to_string()),
            _ => Refusal::new(ErrorCode::Malformed, e.to_string()),
        })?;

        let mut st = state.lock().await;
        if st.stream_id != hello.stream_id {
            if !st.stream_id.is_empty() {
                tracing::info!(source = %shared.ctx.name, agent = %hello.agent_id, "Agent started a new journal stream {} (its data was reset, or another agent uses the same id); previous stream {} ended at sequence {}.", hello.stream_id, st.stream_id, st.high_water);
            }
            st.stream_id = hello.stream_id.clone();
            st.high_water = 0;
        }
        let job = if last_seq <= st.high_water {
            // A replay: ack once the append that first held it is durable.
            AckJob::Ack {
                journal_seq: st.journal_seq,
                ack_seq: last_seq,
            }
        } else {
            let held = st.high_water.saturating_sub(first_seq - 1) as usize;
            if first_seq > st.high_water + 1 && st.high_water > 0 {
                tracing::info!(source = %shared.ctx.name, agent = %hello.agent_id, "Agent resumes at sequence {first_seq} after {}: the records between went elsewhere.", st.high_water);
            }
            records.drain(..held.min(records.len()));
            let count = records.len() as u64;
            let bytes: u64 = records.iter().map(|r| r.raw.len() as u64).sum();
            let receipt = shared
                .appender
                .append(AppendBatch {
                    records,
                    checkpoints: vec![Checkpoint {
                        key: key.clone(),
                        value: Bytes::from(format!("{} {last_seq}", hello.stream_id)),
                    }],
                })
                .await
                .map_err(|e| Refusal::new(ErrorCode::Unavailable, format!("journal: {e}")))?;
            st.high_water = last_seq;
            st.journal_seq = receipt.last_seq;
            shared.ctx.stats.add(count, bytes);
            AckJob::Ack {
                journal_seq: receipt.last_seq,
                ack_seq: last_seq,
            }
        };
        drop(st);
        if acks.send(job).await.is_err() {
            return Err(Refusal {
                code: ErrorCode::Unavailable,
                message: "connection lost while acking".into(),
                tell_peer: false,
            });
        }
    }
}

fn check_batch_header(b: &BatchFrame, max_batch: usize) -> Result<(), Refusal> {
    if b.first_seq == 0 || b.last_seq < b.first_seq {
        return Err(Refusal::new(
            ErrorCode::Malformed,
            format!("bad sequence range {}..={}", b.first_seq, b.last_seq),
        ));
    }
    if b.last_seq - b.first_seq + 1 != u64::from(b.count) {
        return Err(Refusal::new(
            ErrorCode::Malformed,
            format!(
                "sequence range {}..={} does not match {} records",
                b.first_seq, b.last_seq, b.count
            ),
        ));
    }
    if b.raw_len as usize > max_batch {
        return Err(Refusal::new(
            ErrorCode::BatchTooLarge,
            format!(
                "batch declares {} decompressed bytes, more than the maximum of {max_batch}",
                b.raw_len
            ),
        ));
    }
    Ok(())
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
