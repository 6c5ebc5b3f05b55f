//! The sending side of the forward protocol, shared by the `forward` sink and `quill send`.
//!
//! [`ship`] reads entries from a [`BatchSource`] (a journal cursor, or lines read by `quill send`),
//! packs them into zstd-compressed batches bounded by size (`batch_bytes`, `batch_records`) and
//! time (`batch_delay`), keeps up to `window` batches in flight, and acknowledges the source as the
//! receiver acks, strictly in order. When a connection fails it rewinds the source to the last
//! ack and reconnects: the next address of `to` (failover), with exponential backoff and jitter
//! once every address has failed in a round. With `load_balance`, each agent starts from an
//! address chosen by its agent id, so a fleet spreads over the aggregators.
//!
//! The receiver's WELCOME says which sequence it already holds durably for this stream: entries up
//! to it are acknowledged without being sent again. A mark above the last sequence the source has
//! ([`BatchSource::newest`]) cannot be true (a fake receiver, a reverted snapshot): it is never
//! used to skip anything. The shipper logs it, counts it (`ShipStats::welcome_refused`), starts a
//! new stream id ([`BatchSource::restream`]) and reconnects, so the receiver takes everything
//! after the last ack as new.
//!
//! Failover and duplicates: aggregators share no state, each knows only its own high-water mark.
//! Before failing over, the shipper hands the source the last ack it received (acks reach the
//! source at most every `source_ack_interval`), so the next aggregator is sent only what no
//! aggregator acknowledged; failing back resumes after the source's ack, never from an older mark.
//! What remains is inherent: a batch an aggregator made durable whose ack was lost (it died, or
//! the network failed, in between) is sent to the next one too, at most the `window` batches in
//! flight per failover. Exactly once across aggregators needs shared state (NATS JetStream).
//!
//! This module owns the connections it opens. Compression runs on the caller's thread: callers run
//! [`ship`] on a dedicated thread's runtime, never on the shared reactor.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::batch::encode_records;
use super::frame::{
    BatchFrame, ErrorCode, Frame, Hello, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, read_frame,
};
use super::{Io, tls};
use crate::journal::Entry;

/// Where the shipper reads entries from and reports acknowledgements to.
pub trait BatchSource {
    /// Up to `max` entries after the read position, waiting for at least one; empty when the
    /// source is finished. Must be cancel safe: dropping the future loses nothing.
    fn next_entries(&mut self, max: usize) -> impl Future<Output = Result<Vec<Entry>, String>>;
    /// Everything up to `seq` is durable on the receiver.
    fn ack(&mut self, seq: u64) -> impl Future<Output = Result<(), String>>;
    /// Read again from the last acknowledgement.
    fn rewind(&mut self);
    /// The last acknowledged sequence.
    fn acked(&self) -> u64;
    /// True when nothing more will come and everything was read.
    fn finished(&self) -> bool;
    /// The last sequence the source holds (read or not): no receiver can hold more of the stream.
    fn newest(&self) -> u64;
    /// The stream continues under a new id (the receiver's mark was impossible): remember it.
    fn restream(&mut self, stream_id: &str) -> impl Future<Output = Result<(), String>>;
    /// True when `entry` is shipped (routing); the others are acknowledged with the batch range
    /// they fall in, unsent (protocol version 2 carries the gaps).
    fn takes(&self, _entry: &Entry) -> bool {
        true
    }
    /// True when every entry is taken (an aggregator speaking only version 1 can be used).
    fn takes_all(&self) -> bool {
        true
    }
}

/// TLS towards the receivers.
#[derive(Clone)]
pub struct ClientTls {
    pub config: Arc<rustls::ClientConfig>,
    /// Name to verify certificates against; default: each address's host.
    pub server_name: Option<String>,
}

/// How to ship.
#[derive(Clone)]
pub struct ShipperConfig {
    pub to: Vec<String>,
    pub agent_id: String,
    pub stream_id: String,
    pub token: Option<Bytes>,
    pub tls: Option<ClientTls>,
    /// Batches in flight at most.
    pub window: usize,
    /// A batch is sent once its records' bytes reach this.
    pub batch_bytes: usize,
    pub batch_records: usize,
    /// How long a partial batch waits for more records.
    pub batch_delay: Duration,
    pub compression_level: i32,
    /// The largest frame the receiver is expected to accept.
    pub max_frame: usize,
    pub connect_timeout: Duration,
    /// A connection with batches in flight and no ack for this long is given up.
    pub ack_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub load_balance: bool,
    /// Give up after this many failed connections in a row (`None`: never).
    pub give_up_after: Option<u32>,
    /// Acks are passed to the source at most this often while batches are in flight (a cursor
    /// ack is an fsync; what the receiver acked in between is skipped, not resent, after a crash).
    pub source_ack_interval: Duration,
}

impl ShipperConfig {
    /// Defaults for everything but the addresses and identities.
    pub fn new(to: Vec<String>, agent_id: String, stream_id: String) -> ShipperConfig {
        ShipperConfig {
            to,
            agent_id,
            stream_id,
            token: None,
            tls: None,
            window: 8,
            batch_bytes: 1 << 20,
            batch_records: 16384,
            batch_delay: Duration::from_millis(5),
            compression_level: 1,
            max_frame: super::DEFAULT_MAX_FRAME,
            connect_timeout: Duration::from_secs(10),
            ack_timeout: Duration::from_secs(30),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            load_balance: false,
            give_up_after: None,
            source_ack_interval: Duration::from_millis(100),
        }
    }
}

/// Counters of what was acknowledged (and, for `wire_bytes`, sent).
#[derive(Debug, Default)]
pub struct ShipStats {
    pub batches: AtomicU64,
    pub records: AtomicU64,
    /// Record payload bytes acknowledged.
    pub raw_bytes: AtomicU64,
    /// Frame bytes written to connections, including resends.
    pub wire_bytes: AtomicU64,
    /// Entries the receiver already held (acknowledged without sending).
    pub skipped: AtomicU64,
    pub reconnects: AtomicU64,
    /// WELCOMEs refused because their high-water mark was above the source's newest sequence.
    pub welcome_refused: AtomicU64,
}

#[derive(Debug, Error)]
pub enum ShipError {
    #[error("{addr} refused us: {message} (code {code})")]
    Refused {
        addr: String,
        code: u16,
        message: String,
    },
    #[error("gave up after {attempts} failed connections; last: {last}")]
    GaveUp { attempts: u32, last: String },
    #[error("{0}")]
    Source(String),
}

#[derive(Debug, Error)]
enum SessionError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("refused: {message} (code {})", code.code())]
    Refused { code: ErrorCode, message: String },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("connection lost: {0}")]
    Lost(String),
    #[error("no ack for {0:?}")]
    AckTimeout(Duration),
    #[error("{0}")]
    Source(String),
}

/// Ships until the source is finished and everything is acknowledged.
pub async fn ship<S: BatchSource>(
    cfg: &ShipperConfig,
    source: &mut S,
    stats: &ShipStats,
) -> Result<(), ShipError> {
    if cfg.to.is_empty() {
        return Err(ShipError::Source("no address to ship to".into()));
    }
    let n = cfg.to.len();
    let mut index = if cfg.load_balance {
        first_address(&cfg.agent_id, n)
    } else {
        0
    };
    let mut failures = 0u32;
    let mut stream_id = cfg.stream_id.clone();
    let mut version = PROTOCOL_VERSION;
    loop {
        let addr = &cfg.to[index % n];
        let acked_before = source.acked();
        let mut pending = None;
        let result = session(
            cfg,
            &mut stream_id,
            addr,
            source,
            stats,
            (failures, version),
            &mut pending,
        )
        .await;
        let err = match result {
            Ok(()) => return Ok(()),
            Err(SessionError::Source(e)) => return Err(ShipError::Source(e)),
            Err(e) => e,
        };
        // What the receiver acked but the source was not yet told (acks are passed on at most
        // every `source_ack_interval`): acknowledge it now, so the next aggregator is not sent
        // what this one already holds.
        if let Some(seq) = pending.take() {
            source.ack(seq).await.map_err(ShipError::Source)?;
        }
        source.rewind();
        stats.reconnects.fetch_add(1, Ordering::Relaxed);
        // An aggregator of an older release speaks version 1 (contiguous batches): fine for a
        // sink that takes every record. A routed sink keeps being refused, with the reason logged.
        if let SessionError::Refused {
            code: ErrorCode::UnsupportedVersion,
            ..
        } = &err
            && version > MIN_PROTOCOL_VERSION
            && source.takes_all()
        {
            tracing::info!(agent = %cfg.agent_id, "{addr} speaks an older forward protocol: using version {MIN_PROTOCOL_VERSION} (a routed forward sink needs aggregators of this release).");
            version = MIN_PROTOCOL_VERSION;
            continue;
        }
        if source.acked() > acked_before {
            failures = 0;
        }
        failures += 1;
        if let SessionError::Refused { code, message } = &err
            && code.is_permanent()
            && cfg.give_up_after.is_some()
        {
            return Err(ShipError::Refused {
                addr: addr.clone(),
                code: code.code(),
                message: message.clone(),
            });
        }
        if let Some(max) = cfg.give_up_after
            && failures >= max
        {
            return Err(ShipError::GaveUp {
                attempts: failures,
                last: format!("{addr}: {err}"),
            });
        }
        let round = (failures - 1) / n as u32;
        let base = cfg
            .backoff_min
            .saturating_mul(1u32 << round.min(20))
            .min(cfg.backoff_max);
        // Jitter: somewhere in [base/2, base].
        let delay = base / 2 + base.mul_f64(fastrand::f64() / 2.0);
        if failures == 1 || failures.is_multiple_of(10) {
            tracing::warn!(agent = %cfg.agent_id, "Forwarding to {addr} failed: {err}; retrying in {delay:?} (attempt {failures}).");
        } else {
            tracing::debug!(agent = %cfg.agent_id, "Forwarding to {addr} failed: {err}; retrying in {delay:?} (attempt {failures}).");
        }
        index += 1;
        tokio::time::sleep(delay).await;
    }
}

struct InFlight {
    last_seq: u64,
    records: u64,
    raw_bytes: u64,
    /// A range none of whose entries is taken: not sent, done once everything before it is.
    local: bool,
}

/// Pops the ranges at the front that were never sent; returns the last sequence they cover.
fn pop_local(inflight: &mut VecDeque<InFlight>) -> Option<u64> {
    let mut last = None;
    while inflight.front().is_some_and(|b| b.local) {
        last = inflight.pop_front().map(|b| b.last_seq);
    }
    last
}

/// Aborts the reader task when the session ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn connect(cfg: &ShipperConfig, addr: &str) -> Result<Box<dyn Io>, SessionError> {
    let stream = tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| SessionError::Connect(format!("timed out after {:?}", cfg.connect_timeout)))?
        .map_err(|e| SessionError::Connect(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    match &cfg.tls {
        None => Ok(Box::new(stream)),
        Some(t) => {
            let name = tls::server_name(t.server_name.as_deref(), addr)
                .map_err(|e| SessionError::Connect(e.to_string()))?;
            let connector = tokio_rustls::TlsConnector::from(t.config.clone());
            let tls = tokio::time::timeout(cfg.connect_timeout, connector.connect(name, stream))
                .await
                .map_err(|_| SessionError::Connect("TLS handshake timed out".into()))?
                .map_err(|e| SessionError::Connect(format!("TLS: {e}")))?;
            Ok(Box::new(tls))
        }
    }
}

async fn session<S: BatchSource>(
    cfg: &ShipperConfig,
    stream_id: &mut String,
    addr: &str,
    source: &mut S,
    stats: &ShipStats,
    (failures, version): (u32, u16),
    unacked_at_source: &mut Option<u64>,
) -> Result<(), SessionError> {
    let io = connect(cfg, addr).await?;
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut out = Vec::with_capacity(cfg.batch_bytes / 2 + 1024);
    Frame::Hello(Hello {
        version,
        agent_id: cfg.agent_id.clone(),
        stream_id: stream_id.clone(),
        token: cfg.token.clone().unwrap_or_default(),
    })
    .encode(&mut out);
    let lost = |e: std::io::Error| SessionError::Lost(e.to_string());
    wr.write_all(&out).await.map_err(lost)?;
    wr.flush().await.map_err(lost)?;
    let mut buf = BytesMut::new();
    let welcome = tokio::time::timeout(
        cfg.connect_timeout,
        read_frame(&mut rd, &mut buf, cfg.max_frame),
    )
    .await
    .map_err(|_| SessionError::Protocol("no WELCOME in time".into()))?
    .map_err(|e| SessionError::Lost(e.to_string()))?;
    let high_water = match welcome {
        Some(Frame::Welcome {
            high_water,
            version: theirs,
        }) if theirs == version => high_water,
        Some(Frame::Welcome {
            version: theirs, ..
        }) => {
            return Err(SessionError::Protocol(format!(
                "receiver answered protocol version {theirs} to our {version}"
            )));
        }
        Some(Frame::Error { code, message }) => {
            return Err(SessionError::Refused { code, message });
        }
        Some(other) => {
            return Err(SessionError::Protocol(format!(
                "expected WELCOME, got {}",
                other.name()
            )));
        }
        None => return Err(SessionError::Lost("closed during handshake".into())),
    };
    let newest = source.newest();
    if high_water > newest {
        stats.welcome_refused.fetch_add(1, Ordering::Relaxed);
        let fresh = super::new_stream_id();
        tracing::warn!(agent = %cfg.agent_id, "{addr} claims to hold sequence {high_water} of stream {stream_id}, but this stream ends at {newest}: refusing the claim (nothing is skipped); continuing as new stream {fresh} from sequence {}.", source.acked() + 1);
        source
            .restream(&fresh)
            .await
            .map_err(SessionError::Source)?;
        *stream_id = fresh;
        return Err(SessionError::Protocol(format!(
            "impossible high-water mark {high_water} (newest {newest})"
        )));
    }
    if failures > 0 {
        tracing::info!(agent = %cfg.agent_id, "Connected to {addr} after {failures} failed attempts; resuming after sequence {}.", source.acked().max(high_water));
    } else {
        tracing::info!(agent = %cfg.agent_id, "Connected to {addr}; resuming after sequence {}.", source.acked().max(high_water));
    }

    // Frames from the receiver arrive through a channel, so waiting for them is cancel safe.
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<Frame, String>>();
    let max_frame = cfg.max_frame;
    let _reader = AbortOnDrop(tokio::spawn(async move {
        loop {
            let r = match read_frame(&mut rd, &mut buf, max_frame).await {
                Ok(Some(f)) => Ok(f),
                Ok(None) => Err("closed by the receiver".to_string()),
                Err(e) => Err(e.to_string()),
            };
            let end = r.is_err();
            if tx.send(r).is_err() || end {
                return;
            }
        }
    }));

    let mut compressor = zstd::bulk::Compressor::new(cfg.compression_level)
        .map_err(|e| SessionError::Source(format!("zstd: {e}")))?;
    let mut raw = Vec::with_capacity(cfg.batch_bytes + 4096);
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let mut ack_deadline = Instant::now() + cfg.ack_timeout;
    let mut source_acked_at = Instant::now();
    loop {
        if inflight.is_empty() && source.finished() {
            let _ = wr.shutdown().await;
            return Ok(());
        }
        let can_send = inflight.len() < cfg.window.max(1) && !source.finished();
        tokio::select! {
            biased;
            msg = rx.recv() => {
                // Take every frame already received, so one cursor ack covers them all.
                let mut next = Some(msg);
                let mut acked = None;
                while let Some(msg) = next.take() {
                    let frame = match msg {
                        Some(Ok(f)) => f,
                        Some(Err(e)) => return Err(SessionError::Lost(e)),
                        None => return Err(SessionError::Lost("reader ended".into())),
                    };
                    match frame {
                        Frame::Ack { last_seq } => {
                            let before = acked;
                            while inflight.front().is_some_and(|b| b.last_seq <= last_seq) {
                                if let Some(b) = inflight.pop_front() {
                                    stats.batches.fetch_add(1, Ordering::Relaxed);
                                    stats.records.fetch_add(b.records, Ordering::Relaxed);
                                    stats.raw_bytes.fetch_add(b.raw_bytes, Ordering::Relaxed);
                                    acked = Some(b.last_seq);
                                }
                            }
                            if acked == before {
                                return Err(SessionError::Protocol(format!("ACK {last_seq} for no batch in flight")));
                            }
                            if let Some(seq) = pop_local(&mut inflight) {
                                acked = Some(seq);
                            }
                        }
                        Frame::Error { code, message } => return Err(SessionError::Refused { code, message }),
                        other => return Err(SessionError::Protocol(format!("unexpected {} frame", other.name()))),
                    }
                    if let Ok(more) = rx.try_recv() {
                        next = Some(Some(more));
                    }
                }
                if acked.is_some() {
                    ack_deadline = Instant::now() + cfg.ack_timeout;
                    *unacked_at_source = acked;
                }
                if let Some(seq) = *unacked_at_source
                    && (inflight.is_empty() || source_acked_at.elapsed() >= cfg.source_ack_interval)
                {
                    source.ack(seq).await.map_err(SessionError::Source)?;
                    *unacked_at_source = None;
                    source_acked_at = Instant::now();
                }
            }
            r = source.next_entries(cfg.batch_records), if can_send => {
                let mut entries = r.map_err(SessionError::Source)?;
                gather_more(cfg, source, &mut entries).await?;
                // Entries the receiver already holds durably: acknowledge without sending.
                let held = entries.iter().take_while(|e| e.seq <= high_water).count();
                if held > 0 {
                    let seq = entries[held - 1].seq;
                    entries.drain(..held);
                    if inflight.is_empty() {
                        source.ack(seq).await.map_err(SessionError::Source)?;
                        stats.skipped.fetch_add(held as u64, Ordering::Relaxed);
                    }
                }
                if inflight.is_empty() {
                    ack_deadline = Instant::now() + cfg.ack_timeout;
                }
                for chunk in split_by_bytes(&entries, cfg.batch_bytes) {
                    let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else { continue };
                    let taken: Vec<&Entry> = chunk.iter().filter(|e| source.takes(e)).collect();
                    if taken.is_empty() {
                        inflight.push_back(InFlight { last_seq: last.seq, records: 0, raw_bytes: 0, local: true });
                        continue;
                    }
                    encode_records(taken.iter().map(|e| &e.record), &mut raw);
                    let compressed = compressor
                        .compress(&raw)
                        .map_err(|e| SessionError::Source(format!("zstd: {e}")))?;
                    out.clear();
                    Frame::Batch(BatchFrame {
                        first_seq: first.seq,
                        last_seq: last.seq,
                        count: taken.len() as u32,
                        raw_len: raw.len() as u32,
                        compressed: Bytes::from(compressed),
                    })
                    .encode(&mut out);
                    if out.len() > cfg.max_frame {
                        return Err(SessionError::Source(format!(
                            "a batch of {} bytes exceeds the maximum frame of {} bytes (lower batch_size)",
                            out.len(), cfg.max_frame
                        )));
                    }
                    tokio::time::timeout(cfg.ack_timeout, wr.write_all(&out))
                        .await
                        .map_err(|_| SessionError::AckTimeout(cfg.ack_timeout))?
                        .map_err(lost)?;
                    stats.wire_bytes.fetch_add(out.len() as u64, Ordering::Relaxed);
                    inflight.push_back(InFlight {
                        last_seq: last.seq,
                        records: taken.len() as u64,
                        raw_bytes: taken.iter().map(|e| e.record.raw.len() as u64).sum(),
                        local: false,
                    });
                }
                // Ranges with nothing taken, nothing before them in flight: done now.
                if let Some(seq) = pop_local(&mut inflight) {
                    if inflight.is_empty() {
                        source.ack(seq).await.map_err(SessionError::Source)?;
                        *unacked_at_source = None;
                    } else {
                        *unacked_at_source = Some(seq);
                    }
                }
                tokio::time::timeout(cfg.ack_timeout, wr.flush())
                    .await
                    .map_err(|_| SessionError::AckTimeout(cfg.ack_timeout))?
                    .map_err(lost)?;
            }
            _ = tokio::time::sleep_until(ack_deadline), if !inflight.is_empty() => {
                return Err(SessionError::AckTimeout(cfg.ack_timeout));
            }
        }
    }
}

/// Waits up to `batch_delay` for more entries while the batch is small.
async fn gather_more<S: BatchSource>(
    cfg: &ShipperConfig,
    source: &mut S,
    entries: &mut Vec<Entry>,
) -> Result<(), SessionError> {
    if entries.is_empty() || cfg.batch_delay.is_zero() {
        return Ok(());
    }
    let deadline = Instant::now() + cfg.batch_delay;
    let mut bytes: usize = entries.iter().map(|e| e.record.raw.len()).sum();
    while bytes < cfg.batch_bytes && entries.len() < cfg.batch_records && !source.finished() {
        match tokio::time::timeout_at(
            deadline,
            source.next_entries(cfg.batch_records - entries.len()),
        )
        .await
        {
            Ok(Ok(more)) if !more.is_empty() => {
                bytes += more.iter().map(|e| e.record.raw.len()).sum::<usize>();
                entries.extend(more);
            }
            Ok(Ok(_)) | Err(_) => break,
            Ok(Err(e)) => return Err(SessionError::Source(e)),
        }
    }
    Ok(())
}

/// Splits entries into runs of consecutive sequence numbers (a batch covers one range; the
/// journal may have moved the cursor past `max_lag`) whose payload reaches `max_bytes` at most
/// by one record.
fn split_by_bytes(entries: &[Entry], max_bytes: usize) -> Vec<&[Entry]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0usize;
    for (i, e) in entries.iter().enumerate() {
        if i > start && entries[i - 1].seq + 1 != e.seq {
            out.push(&entries[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += e.record.raw.len() + 16;
        if bytes >= max_bytes {
            out.push(&entries[start..=i]);
            start = i + 1;
            bytes = 0;
        }
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    out
}

/// With `load_balance`, the index in `to` (of `n` addresses) where `agent_id` starts.
pub fn first_address(agent_id: &str, n: usize) -> usize {
    (fnv1a(agent_id.as_bytes()) % n.max(1) as u64) as usize
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Format, Origin, Record};

    #[test]
    fn load_balance_spreads_agents() {
        let mut per_address = [0usize; 3];
        for i in 0..300 {
            per_address[first_address(&format!("edge-{i}"), 3)] += 1;
        }
        assert!(per_address.iter().all(|&c| c > 60), "{per_address:?}");
        assert_eq!(first_address("x", 1), 0);
        assert_eq!(first_address("edge-7", 3), first_address("edge-7", 3));
    }

    #[test]
    fn split_respects_the_byte_bound() {
        let o = Origin::new("s", "c", Format::Raw, "h");
        let entries: Vec<Entry> = (1..=100)
            .map(|seq| Entry {
                seq,
                record: Record::new(o.clone(), Bytes::from(vec![b'x'; 84])),
            })
            .collect();
        let chunks = split_by_bytes(&entries, 1000);
        assert_eq!(chunks.len(), 10);
        assert!(chunks.iter().all(|c| c.len() == 10));
        assert_eq!(chunks.concat().len(), 100);
        assert_eq!(split_by_bytes(&entries[..0], 1000).len(), 0);
    }
}
