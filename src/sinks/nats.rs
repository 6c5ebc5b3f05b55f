//! The `nats` sink: the agent's output to a JetStream stream ([`crate::transport::nats`] has the
//! message layout). Each journal batch becomes one message per partition (a record's partition is
//! its transaction id's, found by parsing it with its source's parser, else its origin's), all
//! published with `Nats-Msg-Id` = agent, stream, partition and sequence range, so JetStream's
//! duplicate window drops what a restart publishes again.
//!
//! Exactly once on this side: the cursor advances to a batch's end only when every message of it
//! and of every earlier batch was acknowledged by JetStream (stored on the stream's replicas), in
//! order. A failed or late ack rewinds the cursor and publishes again from there. At most
//! `max_in_flight` messages wait for their acks. The client reconnects across the cluster's nodes
//! by itself; the sink keeps publishing through it.
//!
//! The cursor's sink state is `stream=<hex> base=<seq>`: this journal's stream id, made when the
//! cursor is new, and the cursor position then (receivers start the stream's marks there).
//! Records the sink's route does not take are acknowledged unpublished.
//!
//! The sink runs on its own thread (journal reads, parsing, compression, cursor fsyncs) with a
//! one-worker runtime of its own for the client and the task awaiting acks. It touches only its
//! NATS connection and its cursor.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::component::{ComponentError, SinkContext};
use crate::config::{NatsRetention, NatsSinkConfig};
use crate::index::document::EntryFields;
use crate::journal::{Cursor, Entry};
use crate::parsers::ParserRegistry;
use crate::record::Record;
use crate::sinks::route::Route;
use crate::transport::{self, nats as wire};

/// Journal entries read per cursor call at most.
const READ_MAX: usize = 16384;
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The sink's identity on the stream, kept in its cursor's sink state.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StreamState {
    stream_id: String,
    base: u64,
}

fn encode_state(s: &StreamState) -> Bytes {
    Bytes::from(format!("stream={} base={}", s.stream_id, s.base))
}

fn parse_state(state: &[u8]) -> Option<StreamState> {
    let text = std::str::from_utf8(state).ok()?;
    let (id, base) = text.strip_prefix("stream=")?.split_once(" base=")?;
    if !transport::is_valid_stream_id(id) {
        return None;
    }
    Some(StreamState {
        stream_id: id.to_string(),
        base: base.parse().ok()?,
    })
}

/// The stream's JetStream configuration from the sink's.
pub fn stream_config(config: &NatsSinkConfig) -> jetstream::stream::Config {
    use jetstream::stream::RetentionPolicy;
    jetstream::stream::Config {
        name: config.stream.clone(),
        description: Some(format!("quill partitions={}", config.partitions)),
        subjects: vec!["quill.>".into()],
        num_replicas: config.replicas,
        retention: match config.retention {
            NatsRetention::Limits => RetentionPolicy::Limits,
            NatsRetention::Interest => RetentionPolicy::Interest,
            NatsRetention::Workqueue => RetentionPolicy::WorkQueue,
        },
        max_bytes: config.max_bytes.map_or(-1, |b| b.0 as i64),
        max_age: config.max_age.map_or(Duration::ZERO, |a| a.0),
        duplicate_window: config.duplicate_window.0,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    }
}

/// Creates the stream, or checks that the one there has this sink's partitions and replicas.
pub async fn ensure_stream(
    js: &jetstream::Context,
    config: &NatsSinkConfig,
) -> Result<(), wire::NatsError> {
    let want = stream_config(config);
    let mut stream = js
        .get_or_create_stream(want.clone())
        .await
        .map_err(|e| wire::NatsError::Nats(format!("stream {}: {e}", config.stream)))?;
    let info = stream
        .info()
        .await
        .map_err(|e| wire::NatsError::Nats(format!("stream {}: {e}", config.stream)))?;
    if info.config.description != want.description {
        return Err(wire::NatsError::Nats(format!(
            "stream {} exists with {:?}, this sink has partitions={}: use the stream's partitions or another stream",
            config.stream,
            info.config.description.as_deref().unwrap_or(""),
            config.partitions
        )));
    }
    if info.config.num_replicas != want.num_replicas {
        tracing::warn!(stream = %config.stream, "The stream has {} replicas, the sink's config says {}: the stream is left as it is.", info.config.num_replicas, want.num_replicas);
    }
    Ok(())
}

/// One message awaiting its ack, in publish order.
struct Pending {
    /// The ack to await, or why the publish itself failed.
    ack: Result<jetstream::context::PublishAckFuture, String>,
    _permit: OwnedSemaphorePermit,
    /// Set on a batch's last message: the cursor may advance here once it is acked.
    batch_end: Option<u64>,
    generation: u64,
}

/// Starts the sink thread.
pub fn spawn(
    config: NatsSinkConfig,
    ctx: SinkContext,
) -> Result<JoinHandle<Result<(), ComponentError>>, ComponentError> {
    if let Some((key, message)) = config.check() {
        return Err(ComponentError::Setting(format!("{key}: {message}")));
    }
    let SinkContext {
        name,
        mut cursor,
        stats,
        shutdown,
        host,
        parsers,
        ..
    } = ctx;
    let state = match cursor.sink_state().and_then(|s| parse_state(s)) {
        Some(s) => s,
        None => {
            let s = StreamState {
                stream_id: transport::new_stream_id(),
                base: cursor.acked(),
            };
            cursor
                .ack(s.base, Some(encode_state(&s)))
                .map_err(ComponentError::Journal)?;
            s
        }
    };
    let agent = config
        .agent_id
        .clone()
        .unwrap_or_else(|| transport::agent_id_from_host(&host));
    std::thread::Builder::new()
        .name(format!("sink-{name}"))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name(format!("sink-{name}-nats"))
                .enable_all()
                .build()
                .map_err(|e| ComponentError::io("cannot start the sink's runtime", e))?;
            let mut sink = Sink {
                route: Route::new(&config.route),
                config,
                agent,
                state,
                parsers,
                cursor,
                name,
            };
            let result = sink.run(&runtime, shutdown, &stats.records);
            runtime.shutdown_timeout(Duration::from_secs(1));
            result
        })
        .map_err(ComponentError::Thread)
}

struct Sink {
    config: NatsSinkConfig,
    route: Route,
    agent: String,
    state: StreamState,
    parsers: Arc<ParserRegistry>,
    cursor: Cursor,
    name: String,
}

/// What the ack task reports, in order.
enum AckResult {
    Acked(u64),
    Failed(u64, String),
}

impl Sink {
    fn run(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        shutdown: crate::component::Shutdown,
        records: &AtomicU64,
    ) -> Result<(), ComponentError> {
        let client = runtime
            .block_on(wire::connect(
                &self.config.servers,
                &self.config.auth,
                &format!("quill-agent-{}", self.agent),
                false,
            ))
            .map_err(|e| ComponentError::Setting(e.to_string()))?;
        // The context spawns its own ack task: inside the runtime.
        let _enter = runtime.enter();
        let mut js = jetstream::new(client);
        js.set_timeout(self.config.ack_timeout.0);
        let permits = Arc::new(Semaphore::new(self.config.max_in_flight));
        let (pending_tx, pending_rx) = mpsc::unbounded_channel::<Pending>();
        let (result_tx, result_rx) = std::sync::mpsc::channel::<AckResult>();
        let generation = Arc::new(AtomicU64::new(0));
        runtime.spawn(await_acks(
            pending_rx,
            result_tx,
            generation.clone(),
            self.config.ack_timeout.0,
        ));
        let mut stream_ready = false;
        let mut backoff = BACKOFF_MIN;
        let mut drain_deadline: Option<Instant> = None;
        let mut published_to = self.cursor.acked();
        let state_bytes = encode_state(&self.state);
        let mut payload = Vec::new();
        loop {
            // Acks first: they move the cursor, or a failure rewinds it.
            let mut failed = None;
            while let Ok(r) = result_rx.try_recv() {
                match r {
                    AckResult::Acked(seq) => {
                        let before = self.cursor.acked();
                        self.cursor
                            .ack(seq, Some(state_bytes.clone()))
                            .map_err(ComponentError::Journal)?;
                        records.fetch_add(seq.saturating_sub(before), Ordering::Relaxed);
                        backoff = BACKOFF_MIN;
                    }
                    AckResult::Failed(g, e) if g == generation.load(Ordering::Acquire) => {
                        failed = Some(e);
                        break;
                    }
                    AckResult::Failed(..) => {}
                }
            }
            if let Some(e) = failed {
                tracing::warn!(sink = %self.name, "Publish failed ({e}): publishing again from sequence {} in {backoff:?}.", self.cursor.acked() + 1);
                generation.fetch_add(1, Ordering::AcqRel);
                self.cursor.rewind();
                published_to = self.cursor.acked();
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
            let idle = published_to == self.cursor.acked();
            if shutdown.is_triggered() {
                let deadline = *drain_deadline
                    .get_or_insert_with(|| Instant::now() + self.config.drain_timeout.0);
                if Instant::now() >= deadline {
                    tracing::warn!(sink = %self.name, "Shutdown: records not yet acknowledged by JetStream after {:?} stay in the journal for the next start.", self.config.drain_timeout.0);
                    return Ok(());
                }
            }
            if !stream_ready {
                match runtime.block_on(ensure_stream(&js, &self.config)) {
                    Ok(()) => stream_ready = true,
                    Err(e) => {
                        tracing::warn!(sink = %self.name, "{e}; retrying in {backoff:?}.");
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                }
            }
            let wait = if idle {
                Duration::from_millis(200)
            } else {
                Duration::from_millis(5)
            };
            let entries = self
                .cursor
                .next_batch_blocking(READ_MAX, wait)
                .map_err(ComponentError::Journal)?;
            if entries.is_empty() {
                if idle && (self.cursor.is_drained() || shutdown.is_triggered()) {
                    return Ok(());
                }
                continue;
            }
            for chunk in split_by_bytes(&entries, self.config.batch_size.as_usize()) {
                let g = generation.load(Ordering::Acquire);
                let messages = self.messages(chunk, &mut payload)?;
                let last = chunk.last().map_or(0, |e| e.seq);
                let n = messages.len();
                for (i, (subject, headers, body)) in messages.into_iter().enumerate() {
                    let permit = runtime
                        .block_on(permits.clone().acquire_owned())
                        .map_err(|_| ComponentError::Failed("ack task ended".into()))?;
                    let publish = runtime.block_on(js.publish_with_headers(subject, headers, body));
                    let pending = match publish {
                        Ok(ack) => Pending {
                            ack: Ok(ack),
                            _permit: permit,
                            batch_end: (i + 1 == n).then_some(last),
                            generation: g,
                        },
                        Err(e) => {
                            // Reported through the ack task so it comes after the acks before it.
                            let _ = pending_tx.send(failed_pending(permit, g, e.to_string()));
                            break;
                        }
                    };
                    if pending_tx.send(pending).is_err() {
                        return Err(ComponentError::Failed("ack task ended".into()));
                    }
                }
                published_to = last;
            }
        }
    }

    /// One message per partition for `entries` (a contiguous journal range).
    fn messages(
        &self,
        entries: &[Entry],
        payload: &mut Vec<u8>,
    ) -> Result<Vec<(String, async_nats::HeaderMap, Bytes)>, ComponentError> {
        let partitions = self.config.partitions;
        let mut by_partition: Vec<Vec<(u64, &Record)>> = vec![Vec::new(); partitions as usize];
        let mut gelf = Vec::new();
        for e in entries {
            if !self.route.takes(&e.record) {
                continue;
            }
            gelf.clear();
            self.parsers.encode(&e.record, &mut gelf);
            let fields = EntryFields::from_gelf(&gelf, 0);
            let p = wire::partition_of(fields.txn_id.as_deref(), &e.record.origin, partitions);
            by_partition[p as usize].push((e.seq, &e.record));
        }
        let (first, last) = match (entries.first(), entries.last()) {
            (Some(f), Some(l)) => (f.seq, l.seq),
            _ => return Ok(Vec::new()),
        };
        let mut out = Vec::with_capacity(partitions as usize);
        for (p, records) in by_partition.iter().enumerate() {
            wire::encode_payload(first, records, payload);
            let compressed = zstd::bulk::compress(payload, self.config.compression_level)
                .map_err(|e| ComponentError::Failed(format!("cannot compress: {e}")))?;
            let meta = wire::MessageMeta {
                agent: self.agent.clone(),
                stream_id: self.state.stream_id.clone(),
                first,
                last,
                base: self.state.base.min(first - 1),
                raw_len: payload.len() as u32,
            };
            let category = records.first().map(|(_, r)| &*r.origin.category);
            let single = category.filter(|c| {
                records.iter().all(|(_, r)| &*r.origin.category == *c) && is_subject_token(c)
            });
            out.push((
                wire::subject(single, p as u32),
                meta.headers(p as u32),
                Bytes::from(compressed),
            ));
        }
        Ok(out)
    }
}

/// A category usable as one subject token (no `.`, `*`, `>` or whitespace).
fn is_subject_token(c: &str) -> bool {
    !c.is_empty()
        && !c
            .bytes()
            .any(|b| matches!(b, b'.' | b'*' | b'>') || b.is_ascii_whitespace())
}

/// Splits a contiguous run of entries into runs of about `max_bytes` of raw data each.
fn split_by_bytes(entries: &[Entry], max_bytes: usize) -> Vec<&[Entry]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, e) in entries.iter().enumerate() {
        if bytes > 0 && bytes + e.record.raw.len() > max_bytes {
            out.push(&entries[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += e.record.raw.len() + 32;
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    out
}

fn failed_pending(permit: OwnedSemaphorePermit, generation: u64, error: String) -> Pending {
    Pending {
        ack: Err(error),
        _permit: permit,
        batch_end: None,
        generation,
    }
}

/// Awaits acks in publish order; reports each batch end acked, and the first failure of a
/// generation (later messages of that generation are dropped unawaited: they are published again).
async fn await_acks(
    mut pending: mpsc::UnboundedReceiver<Pending>,
    results: std::sync::mpsc::Sender<AckResult>,
    generation: Arc<AtomicU64>,
    timeout: Duration,
) {
    let mut failed_generation: Option<u64> = None;
    let mut queue: VecDeque<Pending> = VecDeque::new();
    while let Some(p) = pending.recv().await {
        queue.push_back(p);
        while let Some(p) = queue.pop_front() {
            if p.generation < generation.load(Ordering::Acquire)
                || failed_generation == Some(p.generation)
            {
                continue;
            }
            let ack = match p.ack {
                Ok(ack) => ack,
                Err(e) => {
                    failed_generation = Some(p.generation);
                    if results.send(AckResult::Failed(p.generation, e)).is_err() {
                        return;
                    }
                    continue;
                }
            };
            let r = match tokio::time::timeout(timeout, ack.into_future()).await {
                Ok(Ok(_ack)) => p.batch_end.map(AckResult::Acked),
                Ok(Err(e)) => Some(AckResult::Failed(p.generation, e.to_string())),
                Err(_) => Some(AckResult::Failed(
                    p.generation,
                    format!("no ack within {timeout:?}"),
                )),
            };
            if let Some(AckResult::Failed(g, _)) = &r {
                failed_generation = Some(*g);
            }
            if let Some(r) = r
                && results.send(r).is_err()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip() {
        let s = StreamState {
            stream_id: transport::new_stream_id(),
            base: 42,
        };
        assert_eq!(parse_state(&encode_state(&s)), Some(s));
        assert_eq!(parse_state(b"stream=../x base=1"), None);
        assert_eq!(parse_state(b"stream=00ff"), None);
    }

    #[test]
    fn subject_tokens() {
        assert!(is_subject_token("web-1"));
        assert!(!is_subject_token("a.b") && !is_subject_token("a b") && !is_subject_token(""));
    }
}
