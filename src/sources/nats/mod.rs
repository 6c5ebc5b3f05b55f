//! The `nats` source: the aggregator side of Quill over NATS JetStream. Aggregators of one
//! `consumer_group` share the stream's partitions (the `nats` sink's `quill.<category>.<N>`
//! subjects, [`crate::transport::nats`]); each partition, and so each transaction id, is read by
//! one aggregator at a time, and every record reaches exactly one aggregator's journal, across
//! aggregator crashes (kill -9) and NATS node failures.
//!
//! # Design
//! - **Consumers**: one durable pull consumer per partition, `<consumer_group>-p<N>` filtering
//!   `quill.*.<N>`, explicit acks. Only the partition's owner pulls it.
//! - **Ownership**: a KV bucket `quill_<stream>_<group>_leases` holds `lease.<N>` = `<owner>
//!   <expiry ms>` and `member.<id>` = `<expiry ms>` per live aggregator. Every `lease_ttl`/3 an
//!   aggregator renews its member key and its leases (compare-and-set on the key's revision),
//!   counts the live members M, keeps at most ceil(P/M) partitions (releasing the rest, after
//!   their worker finished its fetch) and takes free or expired ones up to that share. A dead
//!   aggregator's leases expire after `lease_ttl` and the others take them over.
//! - **Marks**: a KV bucket `quill_<stream>_<group>_marks` holds per (partition, agent journal
//!   stream) the committed high-water mark `mark.<N>.<stream id>` = `agent=<a> done=<seq>
//!   [pending=<owner>:<last>:<since ms>]`. Every record of that stream's partition-N messages up
//!   to `done` is in exactly one aggregator's journal. The marks are shared, so whichever
//!   aggregator owns a partition drops what another one already journaled.
//! - **Commit order** per fetch and key: (1) claim: CAS the mark to `pending=<me>:<last>`;
//!   (2) append the records above `done` to the journal together with this journal's checkpoint
//!   `nats/<stream>/<N>/<stream id>` = `<last>`, and wait until durable; (3) CAS the mark to
//!   `done=<last>`; (4) ack the messages. A message whose range is at or below `done` is a replay:
//!   acked unjournaled. The mark CAS, not the lease, is the fence: two aggregators that both
//!   believe they own a partition cannot both claim the same range.
//! - **Crashes**: killed after (1), (2) or (3), the aggregator's claim stays in the bucket; any
//!   other owner that meets it waits (the messages are offered again every 500 ms). At its next
//!   start, before taking any lease, the aggregator resolves its own claims from its journal: the
//!   checkpoint at or past `last` means the records are journaled (the mark is committed to
//!   `last`), else they are not (the claim is withdrawn); the messages, never acked, are
//!   redelivered to the partition's owner and deduplicated by the mark. So a kill -9 duplicates
//!   and loses nothing.
//! - **The one window**: an aggregator that does not come back within `pending_timeout`
//!   (default 10 min) has its claims withdrawn by the next owner, which journals the range. If
//!   the dead one had journaled them and returns later with its journal, it delivers them too:
//!   counted as `duplicated_ranges` (in its status detail) and logged as an error. An aggregator
//!   whose disk is lost loses what its journal held, as any aggregator does.
//! - **Gaps**: a partition's messages of one agent stream cover contiguous ranges (the sink
//!   sends every partition a message per batch); a message past `done+1` waits for the missing
//!   one (usually later in the stream after a republish) up to `gap_timeout`, then the missing
//!   sequences are skipped and counted (`quill_source_gap_skipped_total`).
//!
//! Partitions come from the stream's description (set by the sink, `quill partitions=N`): the
//! source waits for an agent to create the stream. This module touches its NATS connection, its
//! two KV buckets, its consumers and the journal's append side.

mod kv;
mod leases;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use thiserror::Error;

use crate::component::{ComponentError, Running, SourceContext};
use crate::config::NatsSourceConfig;
use crate::journal::Appender;
use crate::transport::nats as wire;
use kv::{KvError, Mark};

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("NATS: {0}")]
    Nats(String),
    #[error("journal: {0}")]
    Journal(String),
}

impl From<KvError> for SourceError {
    fn from(e: KvError) -> SourceError {
        SourceError::Nats(e.to_string())
    }
}

/// Counters of the source beyond its [`crate::telemetry::SourceStats`] (status detail).
#[derive(Debug, Default)]
pub struct Counters {
    /// Claims of this aggregator another one withdrew after `pending_timeout` (duplicates).
    pub duplicated_ranges: AtomicU64,
    /// Partitions this aggregator owns now.
    pub owned: AtomicU64,
}

impl Counters {
    pub fn summary(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "partitions_owned={} duplicated_ranges={}",
            g(&self.owned),
            g(&self.duplicated_ranges)
        )
    }
}

/// A crash point for tests: `QUILL_NATS_FAULT=<point>:<n>` aborts the process (no cleanup, as a
/// kill -9) the n-th time a worker passes `point` (`after-claim`: the claim is in the bucket, the
/// records not journaled; `after-journal`: journaled and durable, the mark not committed), so a
/// test can crash an aggregator inside its commit window rather than near it.
#[derive(Debug)]
struct Fault {
    point: String,
    at: u64,
    seen: AtomicU64,
}

impl Fault {
    fn from_env() -> Option<Fault> {
        let v = std::env::var("QUILL_NATS_FAULT").ok()?;
        let (point, at) = v.split_once(':')?;
        Some(Fault {
            point: point.to_string(),
            at: at.parse().ok()?,
            seen: AtomicU64::new(0),
        })
    }

    fn pass(fault: &Option<Fault>, point: &str) {
        if let Some(f) = fault
            && f.point == point
            && f.seen.fetch_add(1, Ordering::Relaxed) + 1 == f.at
        {
            tracing::error!("QUILL_NATS_FAULT: aborting {point}.");
            std::process::abort();
        }
    }
}

/// What the lease manager and the partition workers share.
struct Shared {
    ctx: SourceContext,
    appender: Appender,
    js: jetstream::Context,
    marks: jetstream::kv::Store,
    leases: jetstream::kv::Store,
    counters: Arc<Counters>,
    /// This aggregator's id in the group.
    me: String,
    stream: String,
    group: String,
    partitions: u32,
    lease_ttl: Duration,
    ack_wait: Duration,
    fetch_batch: usize,
    gap_timeout: Duration,
    pending_timeout: Duration,
    max_batch: usize,
    fault: Option<Fault>,
}

/// This journal's checkpoint of what it holds of one agent stream's partition.
pub fn checkpoint_key(stream: &str, partition: u32, stream_id: &str) -> String {
    format!("nats/{stream}/{partition}/{stream_id}")
}

/// Starts the source task (connecting, waiting for the stream, then owning partitions).
pub fn start(
    config: NatsSourceConfig,
    ctx: SourceContext,
    runtime: &tokio::runtime::Runtime,
) -> Result<Running, ComponentError> {
    if let Some((key, message)) = config.check() {
        return Err(ComponentError::Setting(format!("{key}: {message}")));
    }
    let me = config
        .aggregator_id
        .clone()
        .unwrap_or_else(|| crate::transport::agent_id_from_host(&ctx.host).replace('.', "_"));
    let counters = Arc::new(Counters::default());
    let detail = counters.clone();
    let handle = runtime.spawn(async move {
        let Some(shared) = setup(config, ctx, me, counters).await? else {
            return Ok(());
        };
        let shared = Arc::new(shared);
        let name = shared.ctx.name.clone();
        let result = match resolve_own_claims(&shared).await {
            Ok(()) => leases::run(shared).await,
            Err(e) => Err(e),
        };
        result.map_err(|e| {
            tracing::error!(source = %name, "NATS source stopped: {e}.");
            ComponentError::Failed(e.to_string())
        })
    });
    Ok(Running::task(handle).with_detail(move || detail.summary()))
}

/// Connects, waits for the stream and opens the buckets; `None` on shutdown meanwhile.
async fn setup(
    config: NatsSourceConfig,
    ctx: SourceContext,
    me: String,
    counters: Arc<Counters>,
) -> Result<Option<Shared>, ComponentError> {
    let client = wire::connect(
        &config.servers,
        &config.auth,
        &format!("quill-aggregator-{me}"),
        false,
    )
    .await
    .map_err(|e| ComponentError::Setting(e.to_string()))?;
    let js = jetstream::new(client);
    let mut shutdown = ctx.shutdown.clone();
    let mut last_error = String::new();
    let (partitions, marks, leases) = loop {
        match open(&js, &config).await {
            Ok(v) => break v,
            Err(e) => {
                if e != last_error {
                    tracing::info!(source = %ctx.name, "Not ready ({e}): retrying every second (agents create stream {}).", config.stream);
                    last_error = e;
                }
            }
        }
        tokio::select! {
            _ = shutdown.triggered() => return Ok(None),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    };
    tracing::info!(source = %ctx.name, aggregator = %me, stream = %config.stream, group = %config.consumer_group, partitions, "NATS source joined its group.");
    Ok(Some(Shared {
        appender: ctx.journal.appender(),
        ctx,
        js,
        marks,
        leases,
        counters,
        me,
        stream: config.stream,
        group: config.consumer_group,
        partitions,
        lease_ttl: config.lease_ttl.0,
        ack_wait: config.ack_wait.0,
        fetch_batch: config.fetch_batch,
        gap_timeout: config.gap_timeout.0,
        pending_timeout: config.pending_timeout.0,
        max_batch: config.max_batch_size.as_usize(),
        fault: Fault::from_env(),
    }))
}

/// The stream's partitions (from the description the sink gives it) and replicas.
async fn stream_partitions(js: &jetstream::Context, name: &str) -> Result<(u32, usize), String> {
    let mut stream = js.get_stream(name).await.map_err(|e| e.to_string())?;
    let info = stream.info().await.map_err(|e| e.to_string())?;
    let partitions = info
        .config
        .description
        .as_deref()
        .and_then(|d| d.strip_prefix("quill partitions="))
        .and_then(|p| p.parse::<u32>().ok())
        .filter(|p| (1..=1024).contains(p))
        .ok_or_else(|| format!("stream {name} was not made by a Quill nats sink"))?;
    Ok((partitions, info.config.num_replicas.max(1)))
}

/// The stream's partitions and the group's two buckets (made with the stream's replicas).
async fn open(
    js: &jetstream::Context,
    config: &NatsSourceConfig,
) -> Result<(u32, jetstream::kv::Store, jetstream::kv::Store), String> {
    let (partitions, replicas) = stream_partitions(js, &config.stream).await?;
    let bucket = |kind: &str| format!("quill_{}_{}_{kind}", config.stream, config.consumer_group);
    let marks = open_bucket(js, bucket("marks"), replicas).await?;
    let leases = open_bucket(js, bucket("leases"), replicas).await?;
    Ok((partitions, marks, leases))
}

async fn open_bucket(
    js: &jetstream::Context,
    bucket: String,
    replicas: usize,
) -> Result<jetstream::kv::Store, String> {
    if let Ok(store) = js.get_key_value(&bucket).await {
        return Ok(store);
    }
    // The bucket's stream as `create_key_value` makes it; made directly because that asks for
    // account info first, whose answer nats-server 2.9 words in a way the client cannot read.
    use jetstream::stream::{Config, DiscardPolicy, StorageType};
    js.get_or_create_stream(Config {
        name: format!("KV_{bucket}"),
        description: Some("quill nats source group state".into()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_bytes: -1,
        max_messages: -1,
        max_message_size: -1,
        storage: StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: replicas,
        discard: DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("KV bucket {bucket}: {e}"))?;
    js.get_key_value(&bucket)
        .await
        .map_err(|e| format!("KV bucket {bucket}: {e}"))
}

/// Resolves every claim this aggregator left in the marks bucket (a crash between claim and
/// commit), before it takes any partition.
async fn resolve_own_claims(shared: &Shared) -> Result<(), SourceError> {
    use futures_util::StreamExt;
    let mut keys = shared
        .marks
        .keys()
        .await
        .map_err(|e| SourceError::Nats(format!("marks: {e}")))?;
    let mut own = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| SourceError::Nats(format!("marks: {e}")))?;
        if let Some((value, rev)) = kv::get(&shared.marks, &key).await?
            && let Some(mark) = Mark::parse(&value)
            && mark.pending.as_ref().is_some_and(|p| p.owner == shared.me)
        {
            own.push((key, mark, rev));
        }
    }
    for (key, mark, rev) in own {
        resolve(shared, &key, mark, rev).await?;
    }
    Ok(())
}

/// A mark read from the bucket, with any claim on it settled: `Some((mark, revision))` without a
/// claim, or `None` while another aggregator's claim is open. Our own claim is committed when
/// this journal holds the range, else withdrawn; another's is withdrawn after `pending_timeout`.
async fn resolve(
    shared: &Shared,
    key: &str,
    mark: Mark,
    rev: u64,
) -> Result<Option<(Mark, u64)>, SourceError> {
    let Some(pending) = mark.pending.clone() else {
        return Ok(Some((mark, rev)));
    };
    let done = if pending.owner == shared.me {
        let journaled = key
            .strip_prefix("mark.")
            .and_then(|k| k.split_once('.'))
            .and_then(|(p, id)| Some((p.parse::<u32>().ok()?, id)))
            .and_then(|(p, id)| {
                shared
                    .ctx
                    .journal
                    .checkpoint(&checkpoint_key(&shared.stream, p, id))
            })
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok())
            .is_some_and(|held| held >= pending.last);
        tracing::info!(source = %shared.ctx.name, key, "Own claim up to {} {}.", pending.last, if journaled { "is journaled: committing it" } else { "was never journaled: withdrawing it" });
        if journaled { pending.last } else { mark.done }
    } else if kv::now_ms().saturating_sub(pending.since_ms)
        < shared.pending_timeout.as_millis() as u64
    {
        return Ok(None);
    } else {
        tracing::warn!(source = %shared.ctx.name, key, "Aggregator {} left a claim up to {} open for more than pending_timeout: withdrawing it (if it journaled them and comes back, those records are delivered twice).", pending.owner, pending.last);
        mark.done
    };
    let settled = Mark {
        agent: mark.agent,
        done,
        pending: None,
    };
    match kv::cas(&shared.marks, key, settled.encode(), Some(rev)).await {
        Ok(rev) => Ok(Some((settled, rev))),
        // Someone settled it first: read again.
        Err(KvError::Conflict(_)) => match kv::get(&shared.marks, key).await? {
            Some((v, rev)) => match Mark::parse(&v) {
                Some(m) if m.pending.is_none() => Ok(Some((m, rev))),
                _ => Ok(None),
            },
            None => Ok(None),
        },
        Err(e) => Err(e.into()),
    }
}
