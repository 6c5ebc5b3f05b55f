//! One owned partition: pulls its durable consumer, decodes each message (bounded, off the
//! reactor), keeps only records above the committed mark, and commits a fetch in the order
//! claim (KV) → journal (durable) → mark (KV) → ack. It touches its consumer, the marks bucket
//! and the journal's append side.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::pull};
use bytes::Bytes;
use futures_util::StreamExt;

use super::kv::{self, KvError, Mark, Pending, mark_key};
use super::{Fault, Shared, SourceError, checkpoint_key};
use crate::journal::{AppendBatch, Checkpoint};
use crate::record::Record;
use crate::transport::nats::{self as wire, MessageMeta};

/// How long a message waits before it is offered again when it cannot be taken yet.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// What this worker knows of a key: the committed mark and its KV revision (`None`: no key yet).
#[derive(Debug, Clone)]
struct KeyState {
    mark: Mark,
    revision: Option<u64>,
}

/// The records one fetch takes for one key.
struct Plan {
    state: KeyState,
    stream_id: String,
    last: u64,
    records: Vec<Record>,
    messages: Vec<jetstream::Message>,
}

pub(super) struct Worker {
    shared: Arc<Shared>,
    partition: u32,
    stop: Arc<AtomicBool>,
    keys: HashMap<String, KeyState>,
    /// When a gap before (key, first) was first seen.
    gaps: HashMap<(String, u64), Instant>,
}

impl Worker {
    pub(super) fn new(shared: Arc<Shared>, partition: u32, stop: Arc<AtomicBool>) -> Worker {
        Worker {
            shared,
            partition,
            stop,
            keys: HashMap::new(),
            gaps: HashMap::new(),
        }
    }

    /// Pulls and commits until told to stop (a fetch under way is finished first).
    pub(super) async fn run(mut self) -> Result<(), SourceError> {
        let consumer = self.consumer().await?;
        let mut pause = Duration::from_millis(100);
        let mut shutdown = self.shared.ctx.shutdown.clone();
        while !self.stop.load(Ordering::Acquire) && !self.shared.ctx.shutdown.is_triggered() {
            let fetched = consumer
                .fetch()
                .max_messages(self.shared.fetch_batch)
                .expires(Duration::from_millis(500))
                .messages()
                .await;
            let mut batch = match fetched {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(source = %self.shared.ctx.name, partition = self.partition, "fetch: {e}");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.triggered() => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            pause = Duration::from_millis(100);
            let mut messages = Vec::new();
            while let Some(m) = batch.next().await {
                match m {
                    Ok(m) => messages.push(m),
                    Err(e) => {
                        tracing::debug!(source = %self.shared.ctx.name, partition = self.partition, "fetch: {e}");
                        break;
                    }
                }
            }
            if !messages.is_empty() {
                self.commit(messages).await?;
            }
        }
        Ok(())
    }

    async fn consumer(&self) -> Result<jetstream::consumer::Consumer<pull::Config>, SourceError> {
        let s = &self.shared;
        let name = format!("{}-p{}", s.group, self.partition);
        let config = pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: wire::partition_filter(self.partition),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: s.ack_wait,
            max_ack_pending: (s.fetch_batch * 8) as i64,
            ..Default::default()
        };
        let mut pause = Duration::from_millis(200);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = async {
                let stream =
                    s.js.get_stream(&s.stream)
                        .await
                        .map_err(|e| e.to_string())?;
                stream
                    .get_or_create_consumer(&name, config.clone())
                    .await
                    .map_err(|e| e.to_string())
            }
            .await;
            match r {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() >= deadline => {
                    return Err(SourceError::Nats(format!("consumer {name}: {e}")));
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Takes what a fetch brought: replays are acked, records above the marks journaled once.
    async fn commit(&mut self, messages: Vec<jetstream::Message>) -> Result<(), SourceError> {
        let mut plans: HashMap<String, Plan> = HashMap::new();
        let mut replays = Vec::new();
        for m in messages {
            let meta = match MessageMeta::from_headers(m.headers.as_ref()) {
                Ok(meta) => meta,
                Err(e) => {
                    self.refuse(&m, &e.to_string()).await;
                    continue;
                }
            };
            let payload = m.payload.clone();
            let max = self.shared.max_batch;
            let meta_copy = meta.clone();
            let decoded = tokio::task::spawn_blocking(move || {
                wire::decode_payload(&meta_copy, &payload, max)
            })
            .await
            .map_err(|e| SourceError::Nats(format!("decoder failed: {e}")))?;
            let records = match decoded {
                Ok(r) => r,
                Err(e) => {
                    self.refuse(&m, &e.to_string()).await;
                    continue;
                }
            };
            let key = mark_key(self.partition, &meta.stream_id);
            let done = match plans.get(&key) {
                Some(p) => p.last,
                None => match self.state(&key, &meta).await? {
                    Some(st) => st.mark.done,
                    None => {
                        // Another aggregator is journaling this key: offered again later.
                        nak(&m, RETRY_DELAY).await;
                        continue;
                    }
                },
            };
            if meta.last <= done {
                replays.push(m);
                continue;
            }
            if meta.first > done + 1 && !self.gap_expired(&key, &meta, done) {
                nak(&m, RETRY_DELAY).await;
                continue;
            }
            let plan = match plans.entry(key.clone()) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let Some(state) = self.keys.get(&key).cloned() else {
                        continue;
                    };
                    v.insert(Plan {
                        state,
                        stream_id: meta.stream_id.clone(),
                        last: done,
                        records: Vec::new(),
                        messages: Vec::new(),
                    })
                }
            };
            plan.records.extend(
                records
                    .into_iter()
                    .filter(|(seq, _)| *seq > done)
                    .map(|(_, r)| r),
            );
            plan.last = meta.last;
            plan.messages.push(m);
        }
        let mut committed = Vec::new();
        for (key, plan) in plans {
            if let Some(messages) = self.commit_key(&key, plan).await? {
                committed.extend(messages);
            }
        }
        for m in committed.iter().chain(&replays) {
            // A lost ack is a redelivery, and that is a replay below the mark.
            let _ = m.ack().await;
        }
        Ok(())
    }

    /// Claims, journals and commits one key's records; the messages to ack, or `None` when
    /// another aggregator holds the key now (its messages are offered again).
    async fn commit_key(
        &mut self,
        key: &str,
        plan: Plan,
    ) -> Result<Option<Vec<jetstream::Message>>, SourceError> {
        let s = self.shared.clone();
        let Plan {
            state,
            stream_id,
            last,
            records,
            messages,
        } = plan;
        let mut revision = state.revision;
        if !records.is_empty() {
            // 1. Claim: from here until the mark moves, no other owner journals this range.
            let claim = Mark {
                pending: Some(Pending {
                    owner: s.me.clone(),
                    last,
                    since_ms: kv::now_ms(),
                }),
                ..state.mark.clone()
            };
            match kv::cas(&s.marks, key, claim.encode(), revision).await {
                Ok(rev) => revision = Some(rev),
                Err(e) => return self.lost_key(key, e, messages).await,
            }
            Fault::pass(&s.fault, "after-claim");
            // 2. Journal: the records and this journal's own mark, durable together.
            let count = records.len() as u64;
            let bytes: u64 = records.iter().map(|r| r.raw.len() as u64).sum();
            let receipt = s
                .appender
                .append(AppendBatch {
                    records,
                    checkpoints: vec![Checkpoint {
                        key: checkpoint_key(&s.stream, self.partition, &stream_id),
                        value: Bytes::from(last.to_string()),
                    }],
                })
                .await
                .map_err(|e| SourceError::Journal(e.to_string()))?;
            s.appender
                .wait_durable(receipt.last_seq)
                .await
                .map_err(|e| SourceError::Journal(e.to_string()))?;
            s.ctx.stats.add(count, bytes);
            Fault::pass(&s.fault, "after-journal");
        }
        // 3. Commit the mark (an empty range needs no claim: nothing is journaled for it).
        let done = Mark {
            agent: state.mark.agent.clone(),
            done: last,
            pending: None,
        };
        match kv::cas(&s.marks, key, done.encode(), revision).await {
            Ok(rev) => {
                self.keys.insert(
                    key.to_string(),
                    KeyState {
                        mark: done,
                        revision: Some(rev),
                    },
                );
                Ok(Some(messages))
            }
            Err(KvError::Conflict(_)) if revision != state.revision => {
                // Our claim was taken away after `pending_timeout`: the other owner journals
                // this range too.
                s.counters.duplicated_ranges.fetch_add(1, Ordering::Relaxed);
                tracing::error!(source = %s.ctx.name, key, "Claim on {key} up to {last} was cleared by another aggregator after pending_timeout while this one journaled it: those records may be delivered twice.");
                self.keys.remove(key);
                Ok(Some(messages))
            }
            Err(e) => self.lost_key(key, e, messages).await,
        }
    }

    async fn lost_key(
        &mut self,
        key: &str,
        e: KvError,
        messages: Vec<jetstream::Message>,
    ) -> Result<Option<Vec<jetstream::Message>>, SourceError> {
        self.keys.remove(key);
        match e {
            KvError::Conflict(_) => {
                tracing::info!(source = %self.shared.ctx.name, partition = self.partition, "{e}: leaving it to its owner.");
                for m in &messages {
                    nak(m, RETRY_DELAY).await;
                }
                Ok(None)
            }
            KvError::Unavailable(why) => Err(SourceError::Nats(why)),
        }
    }

    /// The key's committed state (read once per ownership, then kept), resolving a claim left
    /// by this aggregator or one abandoned past `pending_timeout`. `None`: another aggregator's
    /// claim is open.
    async fn state(
        &mut self,
        key: &str,
        meta: &MessageMeta,
    ) -> Result<Option<&KeyState>, SourceError> {
        if !self.keys.contains_key(key) {
            let s = &self.shared;
            let found = kv::get(&s.marks, key)
                .await
                .map_err(|e| SourceError::Nats(e.to_string()))?;
            let state = match found {
                None => KeyState {
                    mark: Mark {
                        agent: meta.agent.clone(),
                        done: meta.base,
                        pending: None,
                    },
                    revision: None,
                },
                Some((value, rev)) => {
                    let Some(mark) = Mark::parse(&value) else {
                        return Err(SourceError::Nats(format!("unreadable mark {key}")));
                    };
                    match super::resolve(s, key, mark, rev).await? {
                        Some(st) => KeyState {
                            mark: st.0,
                            revision: Some(st.1),
                        },
                        None => return Ok(None),
                    }
                }
            };
            self.keys.insert(key.to_string(), state);
        }
        Ok(self.keys.get(key))
    }

    /// Whether a gap before this message has been waited for long enough (then it is lost and
    /// counted); the earlier batch is usually just later in the stream.
    fn gap_expired(&mut self, key: &str, meta: &MessageMeta, done: u64) -> bool {
        let since = *self
            .gaps
            .entry((key.to_string(), meta.first))
            .or_insert_with(Instant::now);
        if since.elapsed() < self.shared.gap_timeout {
            return false;
        }
        self.gaps.remove(&(key.to_string(), meta.first));
        let lost = meta.first - done - 1;
        self.shared
            .ctx
            .stats
            .gap_skipped
            .fetch_add(lost, Ordering::Relaxed);
        tracing::warn!(source = %self.shared.ctx.name, agent = %meta.agent, partition = self.partition, "Sequences {}..={} of agent {} never arrived within gap_timeout: skipped (counted in gap_skipped).", done + 1, meta.first - 1, meta.agent);
        true
    }

    /// A message that cannot be read: counted, logged, and never offered again.
    async fn refuse(&self, m: &jetstream::Message, why: &str) {
        self.shared.ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(source = %self.shared.ctx.name, partition = self.partition, subject = %m.subject, "Dropped malformed message: {why}.");
        let _ = m.ack_with(AckKind::Term).await;
    }
}

async fn nak(m: &jetstream::Message, delay: Duration) {
    let _ = m.ack_with(AckKind::Nak(Some(delay))).await;
}
