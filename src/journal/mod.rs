//! The journal: the durable stage between all sources and all sinks.
//!
//! Sources append batches of [`Record`]s through an [`Appender`]; each batch may carry source
//! [`Checkpoint`]s (e.g. a file's identity and byte offset) that become durable atomically with the
//! records they cover (one batch is one checksummed frame). Sinks read through named [`Cursor`]s
//! and acknowledge what they have finished, optionally with an opaque sink state (e.g. an output
//! file's length) stored with the cursor position. Appends wait when the journal is full
//! (backpressure); datagram sources use [`Appender::try_append`] (or
//! [`Appender::try_append_or_count`]) and count what they could not journal.
//!
//! On disk (`docs/journal-format.md`): segment files `<first_seq>.qjs` of checksummed frames, one
//! writer thread doing group commit ([`FsyncPolicy`]), `cursors/<name>.cur` and
//! `checkpoints.snap` written atomically. Readers only ever see durable records.
//!
//! This module owns the directory given to [`Journal::open`]. It never runs file I/O on the async
//! reactor: the async methods hand I/O to `spawn_blocking`, the writer thread does all writing and
//! fsyncing, and the `*_blocking` methods are for dedicated threads.

mod cursor;
mod format;
mod recovery;
mod segment;
mod writer;

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;
use tokio::sync::Notify;

use crate::record::Record;
use cursor::CursorIo;

/// When appended records are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Group commit: fsync at most every `fsync_interval` (default), or sooner once 32 MiB are
    /// waiting; an append learns durability through [`Appender::wait_durable`].
    #[default]
    Interval,
    /// fsync every batch the writer takes before it is reported durable.
    Always,
    /// Never fsync (unsafe: a machine crash loses what the page cache held). Records are
    /// reported durable once written to the kernel.
    Never,
}

/// Journal settings (the `[journal]` config table).
#[derive(Debug, Clone)]
pub struct JournalConfig {
    pub fsync: FsyncPolicy,
    pub fsync_interval: Duration,
    /// Segments roll at this size (capped at a quarter of `max_bytes`, so that acknowledged
    /// space can be reclaimed segment by segment).
    pub segment_bytes: u64,
    /// Bytes the journal may hold on disk (plus what waits in memory for the writer).
    pub max_bytes: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            fsync: FsyncPolicy::Interval,
            fsync_interval: Duration::from_millis(10),
            segment_bytes: 128 << 20,
            max_bytes: 4 << 30,
        }
    }
}

#[derive(Debug, Error)]
pub enum JournalError {
    #[error("journal I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("journal is closed")]
    Closed,
    #[error("invalid cursor name `{0}` (use letters, digits, `-` and `_`)")]
    BadCursorName(String),
    #[error("record of {bytes} bytes is larger than the journal's limit of {max} bytes")]
    TooLarge { bytes: u64, max: u64 },
}

fn io_err(path: &Path, source: std::io::Error) -> JournalError {
    JournalError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Why [`Appender::try_append`] did not take a batch.
#[derive(Debug, Error)]
pub enum TryAppendError {
    #[error("journal is full")]
    Full(AppendBatch),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// A source's resume point, made durable together with the records of the same batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub key: String,
    pub value: Bytes,
}

/// What one append carries.
#[derive(Debug, Clone, Default)]
pub struct AppendBatch {
    pub records: Vec<Record>,
    pub checkpoints: Vec<Checkpoint>,
}

impl AppendBatch {
    /// An upper bound of the batch's encoded size.
    fn encoded_size_hint(&self) -> u64 {
        let records: usize = self.records.iter().map(format::record_size_hint).sum();
        let checkpoints: usize = self
            .checkpoints
            .iter()
            .map(|c| c.key.len() + c.value.len() + 20)
            .sum();
        (records + checkpoints + 64) as u64
    }
}

/// Sequence numbers given to an appended batch: `first_seq..=last_seq` (empty when
/// `first_seq > last_seq`, for a batch of checkpoints only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendReceipt {
    pub first_seq: u64,
    pub last_seq: u64,
}

/// A record as read back, with its sequence number (1-based, increasing; gap-free unless
/// corruption made the journal skip a frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub record: Record,
}

/// Counters the rest of Quill reports.
#[derive(Debug, Clone, Default)]
pub struct JournalStats {
    pub records_appended: u64,
    /// Payload bytes appended (the records' raw bytes).
    pub bytes_appended: u64,
    pub last_seq: u64,
    pub durable_seq: u64,
    /// Bytes on disk plus bytes waiting for the writer (what `max_bytes` limits).
    pub bytes_held: u64,
    /// (cursor name, acknowledged seq, lag in records)
    pub cursors: Vec<(String, u64, u64)>,
    /// Segment files currently held.
    pub segments: u64,
    pub fsyncs: u64,
    pub fsync_time_total: Duration,
    pub fsync_time_max: Duration,
    /// Failed writes or fsyncs (ENOSPC, EIO): the writer retries them.
    pub write_errors: u64,
    /// True while the last write failed: appends see a full journal until it succeeds.
    pub write_blocked: bool,
    /// Records datagram sources could not journal because it was full.
    pub dropped_journal_full: u64,
}

/// Longest a writer keeps unsynced data under [`FsyncPolicy::Interval`], in bytes.
const FSYNC_BYTES: u64 = 32 << 20;
/// Encoded bytes that may wait in memory for the writer before appends see a full journal.
/// Kept small so that the frames the writer copies into the page cache are still in the CPU
/// cache (measured: large queues made the writer's copy several times slower).
const MAX_PENDING_BYTES: u64 = 32 << 20;
/// Frames are queued in chunks of about this size, whose buffers the writer hands back.
const CHUNK_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
struct SegmentInfo {
    first_seq: u64,
    path: PathBuf,
    /// Durable bytes (all of it once sealed).
    len: u64,
    sealed: bool,
}

/// Encoded frames waiting for the writer, all for one segment.
#[derive(Debug)]
struct PendingChunk {
    segment: u64,
    bytes: Vec<u8>,
    last_seq: u64,
    checkpoints: Vec<Checkpoint>,
}

#[derive(Debug, Default, Clone)]
struct CursorMeta {
    acked: u64,
    sink_state: Option<Bytes>,
}

#[derive(Debug, Default)]
struct Counters {
    records_appended: u64,
    bytes_appended: u64,
    fsyncs: u64,
    fsync_time_total: Duration,
    fsync_time_max: Duration,
    write_errors: u64,
}

#[derive(Debug)]
struct State {
    // Append side.
    next_seq: u64,
    /// The segment new frames go to, and its length once everything pending is written.
    append_segment: u64,
    append_segment_len: u64,
    pending: VecDeque<PendingChunk>,
    pending_bytes: u64,
    // Durable side (published by the writer).
    durable_seq: u64,
    segments: Vec<SegmentInfo>,
    checkpoints: HashMap<String, Bytes>,
    snapshot_covers_below: u64,
    cursors: HashMap<String, CursorMeta>,
    held_bytes: u64,
    // Lifecycle.
    closing: bool,
    writer_done: bool,
    crash: bool,
    write_blocked: bool,
    inject_write_failures: u32,
    counters: Counters,
    /// Buffers the writer is done with, reused for new chunks (no allocation churn).
    spare_buffers: Vec<Vec<u8>>,
}

struct Shared {
    dir: PathBuf,
    cursors_dir: PathBuf,
    config: JournalConfig,
    roll_bytes: u64,
    state: Mutex<State>,
    /// Durability, space or lifecycle changed (blocking waiters).
    changed: Condvar,
    /// Work for the writer thread.
    work: Condvar,
    /// Durability or lifecycle changed (async waiters).
    progress: Notify,
    /// Space was freed (async appenders).
    space: Notify,
    dropped_journal_full: AtomicU64,
    /// Serialises snapshot writes and segment deletion.
    snapshot_lock: Mutex<()>,
}

/// The checkpoint snapshot's file name.
const SNAPSHOT_FILE: &str = "checkpoints.snap";
/// The writer refreshes the snapshot once this many sealed segments are not covered, so that
/// recovery never replays more than these.
const SNAPSHOT_EVERY_SEGMENTS: usize = 4;

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify_all(&self) {
        self.changed.notify_all();
        self.progress.notify_waiters();
        self.space.notify_waiters();
    }

    /// Encodes and queues a batch if there is room (a batch always fits into an empty journal).
    fn try_push(&self, batch: AppendBatch) -> Result<AppendReceipt, TryAppendError> {
        let mut st = self.lock();
        if st.closing || st.writer_done {
            return Err(JournalError::Closed.into());
        }
        let first_seq = st.next_seq;
        if batch.records.is_empty() && batch.checkpoints.is_empty() {
            return Ok(AppendReceipt {
                first_seq,
                last_seq: first_seq - 1,
            });
        }
        let size = batch.encoded_size_hint();
        let fixed: usize = 256
            + batch
                .checkpoints
                .iter()
                .map(|c| c.key.len() + c.value.len() + 20)
                .sum::<usize>();
        if let Some(r) = batch.records.iter().find(|r| {
            format::record_size_hint(r)
                + r.origin.source.len()
                + r.origin.category.len()
                + r.origin.host.len()
                + fixed
                > format::MAX_FRAME_BODY
        }) {
            return Err(JournalError::TooLarge {
                bytes: r.raw.len() as u64,
                max: (format::MAX_FRAME_BODY - fixed) as u64,
            }
            .into());
        }
        let holds_records = st
            .segments
            .first()
            .is_some_and(|s| s.first_seq < st.next_seq);
        if st.write_blocked
            || (holds_records && st.held_bytes + size > self.config.max_bytes)
            || st.pending_bytes > MAX_PENDING_BYTES
        {
            return Err(TryAppendError::Full(batch));
        }
        let pending_before = st.pending_bytes;
        let mut rest: &[Record] = &batch.records;
        loop {
            // Take records up to the split size (at least one).
            let mut n = 0;
            let mut hint = 64;
            while n < rest.len() {
                let h = format::record_size_hint(&rest[n]);
                if n > 0 && hint + h > format::SPLIT_FRAME_BODY {
                    break;
                }
                hint += h;
                n += 1;
            }
            let (part, tail) = rest.split_at(n);
            let checkpoints: &[Checkpoint] = if tail.is_empty() {
                &batch.checkpoints
            } else {
                &[]
            };
            self.push_frame(&mut st, part, checkpoints, hint as u64);
            rest = tail;
            if rest.is_empty() {
                break;
            }
        }
        st.counters.records_appended += batch.records.len() as u64;
        st.counters.bytes_appended += batch
            .records
            .iter()
            .map(|r| r.raw.len() as u64)
            .sum::<u64>();
        let receipt = AppendReceipt {
            first_seq,
            last_seq: st.next_seq - 1,
        };
        // Wake the writer when there is something new to do, not for every batch: under
        // group commit it writes when a chunk is full or an fsync is due.
        let chunk = CHUNK_BYTES as u64;
        let wake = pending_before == 0
            || (pending_before < chunk && st.pending_bytes >= chunk)
            || self.config.fsync != FsyncPolicy::Interval;
        drop(st);
        if wake {
            self.work.notify_one();
        }
        Ok(receipt)
    }

    fn push_frame(
        &self,
        st: &mut State,
        records: &[Record],
        checkpoints: &[Checkpoint],
        hint: u64,
    ) {
        let header = format::SEGMENT_HEADER_LEN as u64;
        if st.append_segment_len > header && st.append_segment_len + hint > self.roll_bytes {
            st.append_segment = st.next_seq;
            st.append_segment_len = header;
            st.held_bytes += header;
            st.pending_bytes += header;
        }
        let segment = st.append_segment;
        let first_seq = st.next_seq;
        let last_seq = (first_seq + records.len() as u64).saturating_sub(1);
        let reuse = matches!(st.pending.back(), Some(c) if c.segment == segment && c.bytes.len() < CHUNK_BYTES);
        if !reuse {
            let bytes = st
                .spare_buffers
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(CHUNK_BYTES + hint as usize));
            st.pending.push_back(PendingChunk {
                segment,
                bytes,
                last_seq: first_seq.saturating_sub(1),
                checkpoints: Vec::new(),
            });
        }
        let Some(chunk) = st.pending.back_mut() else {
            return;
        };
        let before = chunk.bytes.len();
        format::encode_frame(&mut chunk.bytes, first_seq, records, checkpoints);
        let written = (chunk.bytes.len() - before) as u64;
        if !records.is_empty() {
            chunk.last_seq = last_seq;
        }
        chunk.checkpoints.extend_from_slice(checkpoints);
        st.next_seq = first_seq + records.len() as u64;
        st.append_segment_len += written;
        st.held_bytes += written;
        st.pending_bytes += written;
    }

    /// Writes `checkpoints.snap` with the durable checkpoints, covering every sealed segment (they
    /// are durable in full). The caller holds `snapshot_lock`. False when the write failed.
    fn write_snapshot_locked(&self) -> bool {
        let (covers, bytes) = {
            let st = self.lock();
            let covers = st
                .segments
                .iter()
                .find(|s| !s.sealed)
                .map_or(st.next_seq, |s| s.first_seq);
            if covers <= st.snapshot_covers_below {
                return true;
            }
            let bytes = format::encode_snapshot(
                covers,
                st.checkpoints
                    .iter()
                    .map(|(k, v)| (k.as_str(), &v[..]))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            (covers, bytes)
        };
        match segment::write_atomic(&self.dir, SNAPSHOT_FILE, &bytes) {
            Ok(()) => {
                let mut st = self.lock();
                st.snapshot_covers_below = st.snapshot_covers_below.max(covers);
                true
            }
            Err(e) => {
                tracing::warn!(
                    dir = %self.dir.display(),
                    error = %e,
                    "cannot write the journal checkpoint snapshot; segments are kept until it succeeds"
                );
                false
            }
        }
    }

    /// Deletes sealed segments every cursor has passed, first writing the checkpoint snapshot if
    /// it does not cover them yet.
    fn trim(&self) {
        let _serial = self.snapshot_lock.lock().unwrap_or_else(|p| p.into_inner());
        let (needed, covered) = {
            let st = self.lock();
            let Some(min_acked) = st.cursors.values().map(|c| c.acked).min() else {
                return;
            };
            let mut n = 0;
            while n + 1 < st.segments.len()
                && st.segments[n].sealed
                && st.segments[n + 1].first_seq - 1 <= min_acked
            {
                n += 1;
            }
            if n == 0 {
                return;
            }
            (st.segments[n].first_seq, st.snapshot_covers_below)
        };
        if covered < needed && !self.write_snapshot_locked() {
            return;
        }
        let doomed = {
            let mut st = self.lock();
            let mut doomed = Vec::new();
            while st.segments.len() > 1
                && st.segments[1].first_seq <= needed
                && st.segments[1].first_seq <= st.snapshot_covers_below
            {
                let seg = st.segments.remove(0);
                st.held_bytes = st.held_bytes.saturating_sub(seg.len);
                doomed.push(seg.path);
            }
            doomed
        };
        if doomed.is_empty() {
            return;
        }
        for path in &doomed {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(segment = %path.display(), error = %e, "cannot delete journal segment");
            }
        }
        self.notify_all();
    }

    fn persist_cursor(
        &self,
        name: &str,
        acked: u64,
        sink_state: Option<&Bytes>,
    ) -> Result<(), JournalError> {
        let bytes = format::encode_cursor(acked, sink_state.map(|b| &b[..]));
        segment::write_atomic(&self.cursors_dir, &format!("{name}.cur"), &bytes)
            .map_err(|e| io_err(&self.cursors_dir.join(format!("{name}.cur")), e))
    }

    fn record_ack(&self, name: &str, acked: u64, sink_state: Option<Bytes>) {
        let mut st = self.lock();
        let meta = st.cursors.entry(name.to_string()).or_default();
        meta.acked = meta.acked.max(acked);
        meta.sink_state = sink_state;
    }
}

/// Stops the writer when the last handle goes away.
struct Lifecycle {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    lock_file: Mutex<Option<File>>,
    remove_dir_on_drop: Option<PathBuf>,
}

impl Lifecycle {
    fn shutdown(&self, crash: bool) {
        {
            let mut st = self.shared.lock();
            st.closing = true;
            st.crash |= crash;
        }
        self.shared.work.notify_all();
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        {
            let mut st = self.shared.lock();
            st.writer_done = true;
        }
        self.lock_file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.shared.notify_all();
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        self.shutdown(false);
        if let Some(dir) = &self.remove_dir_on_drop {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The journal handle; cheap to clone. The journal closes (flushing everything) when the last
/// handle, appender or cursor is dropped.
#[derive(Clone)]
pub struct Journal {
    life: Arc<Lifecycle>,
}

impl Journal {
    /// Opens (or creates) the journal under `dir`, recovering from a crash if needed: a torn tail
    /// is truncated, corrupt frames in sealed segments are reported and skipped when read.
    pub fn open(dir: &Path, config: JournalConfig) -> Result<Journal, JournalError> {
        Journal::open_inner(dir, config, None)
    }

    fn open_inner(
        dir: &Path,
        config: JournalConfig,
        remove_dir_on_drop: Option<PathBuf>,
    ) -> Result<Journal, JournalError> {
        let recovered = recovery::recover(dir, &config)?;
        let roll_bytes = config.segment_bytes.min(config.max_bytes / 4).max(4096);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            cursors_dir: dir.join("cursors"),
            config,
            roll_bytes,
            state: Mutex::new(recovered.state),
            changed: Condvar::new(),
            work: Condvar::new(),
            progress: Notify::new(),
            space: Notify::new(),
            dropped_journal_full: AtomicU64::new(0),
            snapshot_lock: Mutex::new(()),
        });
        let writer_shared = shared.clone();
        let active = recovered.active;
        let handle = std::thread::Builder::new()
            .name("quill-journal-writer".into())
            .spawn(move || writer::run(writer_shared, active))
            .map_err(|e| io_err(dir, e))?;
        Ok(Journal {
            life: Arc::new(Lifecycle {
                shared,
                writer: Mutex::new(Some(handle)),
                lock_file: Mutex::new(Some(recovered.lock_file)),
                remove_dir_on_drop,
            }),
        })
    }

    /// A journal in a fresh temporary directory, removed when the journal is dropped (tests).
    ///
    /// # Panics
    /// When the temporary directory cannot be created or opened.
    pub fn memory(config: JournalConfig) -> Journal {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "quill-journal-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            crate::record::Timestamp::now().0
        ));
        #[allow(clippy::expect_used)]
        Journal::open_inner(&dir, config, Some(dir.clone()))
            .expect("cannot create a temporary journal")
    }

    fn shared(&self) -> &Shared {
        &self.life.shared
    }

    /// The directory the journal lives in.
    pub fn dir(&self) -> &Path {
        &self.shared().dir
    }

    pub fn appender(&self) -> Appender {
        Appender {
            life: self.life.clone(),
        }
    }

    /// Opens the named cursor, creating (and persisting) it at the journal's oldest retained
    /// record if it is new.
    pub fn cursor(&self, name: &str) -> Result<Cursor, JournalError> {
        if name.is_empty()
            || name.len() > 128
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(JournalError::BadCursorName(name.to_string()));
        }
        let shared = self.shared();
        let existing = {
            let st = shared.lock();
            st.cursors.get(name).cloned().ok_or_else(|| {
                st.segments
                    .first()
                    .map_or(st.next_seq, |s| s.first_seq)
                    .saturating_sub(1)
            })
        };
        let meta = match existing {
            Ok(meta) => meta,
            Err(start) => {
                shared.persist_cursor(name, start, None)?;
                let mut st = shared.lock();
                st.cursors
                    .entry(name.to_string())
                    .or_insert(CursorMeta {
                        acked: start,
                        sink_state: None,
                    })
                    .clone()
            }
        };
        Ok(Cursor {
            life: self.life.clone(),
            name: name.to_string(),
            read_pos: meta.acked,
            acked: meta.acked,
            sink_state: meta.sink_state,
            io: Some(Box::default()),
        })
    }

    /// Forgets a cursor (e.g. a sink removed from the configuration), so it no longer holds
    /// segments.
    pub fn remove_cursor(&self, name: &str) -> Result<(), JournalError> {
        let shared = self.shared();
        shared.lock().cursors.remove(name);
        let path = shared.cursors_dir.join(format!("{name}.cur"));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path, e)),
        }
        shared.trim();
        Ok(())
    }

    /// The latest durable checkpoint stored under `key`.
    pub fn checkpoint(&self, key: &str) -> Option<Bytes> {
        self.shared().lock().checkpoints.get(key).cloned()
    }

    /// Checkpoints whose key starts with `prefix` (a source lists its files this way).
    pub fn checkpoints_with_prefix(&self, prefix: &str) -> Vec<Checkpoint> {
        let st = self.shared().lock();
        let mut v: Vec<Checkpoint> = st
            .checkpoints
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| Checkpoint {
                key: k.clone(),
                value: v.clone(),
            })
            .collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    /// The highest durable sequence number.
    pub fn durable_seq(&self) -> u64 {
        self.shared().lock().durable_seq
    }

    pub fn stats(&self) -> JournalStats {
        let shared = self.shared();
        let st = shared.lock();
        let mut cursors: Vec<(String, u64, u64)> = st
            .cursors
            .iter()
            .map(|(n, c)| (n.clone(), c.acked, st.durable_seq.saturating_sub(c.acked)))
            .collect();
        cursors.sort();
        JournalStats {
            records_appended: st.counters.records_appended,
            bytes_appended: st.counters.bytes_appended,
            last_seq: st.next_seq - 1,
            durable_seq: st.durable_seq,
            bytes_held: st.held_bytes,
            cursors,
            segments: st.segments.len() as u64,
            fsyncs: st.counters.fsyncs,
            fsync_time_total: st.counters.fsync_time_total,
            fsync_time_max: st.counters.fsync_time_max,
            write_errors: st.counters.write_errors,
            write_blocked: st.write_blocked,
            dropped_journal_full: shared.dropped_journal_full.load(Ordering::Relaxed),
        }
    }

    /// Writes everything appended (and fsyncs it unless `fsync = "never"`), then stops accepting
    /// appends; readers drain what is there and then see the end. Blocks until the writer thread
    /// has finished (also what dropping the last handle does): call it from a blocking context.
    pub fn close(&self) -> Result<(), JournalError> {
        self.life.shutdown(false);
        Ok(())
    }

    /// Test support: stops the writer at once, as if the process had been killed: nothing
    /// pending is written and nothing more is fsynced. Files stay as they are.
    #[doc(hidden)]
    pub fn simulate_crash(&self) {
        self.life.shutdown(true);
    }

    /// Test support: the next `n` segment writes fail with ENOSPC after writing half their
    /// bytes, as a full disk does.
    #[doc(hidden)]
    pub fn inject_write_failures(&self, n: u32) {
        self.shared().lock().inject_write_failures = n;
    }
}

/// Internals the benchmark measures (frame walks over segment files).
#[doc(hidden)]
pub mod internals {
    pub use super::segment::{list_segments, scan_file, scan_slice};
}

/// The writing side, held by sources; cheap to clone.
#[derive(Clone)]
pub struct Appender {
    life: Arc<Lifecycle>,
}

impl Appender {
    fn shared(&self) -> &Shared {
        &self.life.shared
    }

    /// Appends, waiting while the journal is full.
    pub async fn append(&self, mut batch: AppendBatch) -> Result<AppendReceipt, JournalError> {
        let shared = self.shared();
        loop {
            let notified = shared.space.notified();
            match shared.try_push(batch) {
                Ok(r) => return Ok(r),
                Err(TryAppendError::Journal(e)) => return Err(e),
                Err(TryAppendError::Full(b)) => batch = b,
            }
            // Re-check periodically as well: a notification may race with the check above.
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }

    /// Appends from a blocking thread, waiting while the journal is full.
    pub fn append_blocking(&self, mut batch: AppendBatch) -> Result<AppendReceipt, JournalError> {
        let shared = self.shared();
        loop {
            match shared.try_push(batch) {
                Ok(r) => return Ok(r),
                Err(TryAppendError::Journal(e)) => return Err(e),
                Err(TryAppendError::Full(b)) => batch = b,
            }
            let st = shared.lock();
            let _ = shared.changed.wait_timeout(st, Duration::from_millis(100));
        }
    }

    /// Appends without waiting; a full journal hands the batch back.
    pub fn try_append(&self, batch: AppendBatch) -> Result<AppendReceipt, TryAppendError> {
        self.shared().try_push(batch)
    }

    /// For sources that cannot wait (UDP, unix datagrams): appends, or counts the batch's
    /// records in `dropped_journal_full` and returns `None` when the journal is full.
    pub fn try_append_or_count(
        &self,
        batch: AppendBatch,
    ) -> Result<Option<AppendReceipt>, JournalError> {
        match self.shared().try_push(batch) {
            Ok(r) => Ok(Some(r)),
            Err(TryAppendError::Full(b)) => {
                self.note_dropped(b.records.len() as u64);
                Ok(None)
            }
            Err(TryAppendError::Journal(e)) => Err(e),
        }
    }

    /// Counts records a source dropped because the journal was full.
    pub fn note_dropped(&self, records: u64) {
        self.shared()
            .dropped_journal_full
            .fetch_add(records, Ordering::Relaxed);
    }

    /// The highest durable sequence number.
    pub fn durable_seq(&self) -> u64 {
        self.shared().lock().durable_seq
    }

    fn durable_or_closed(st: &State, seq: u64) -> Option<Result<(), JournalError>> {
        if st.durable_seq >= seq {
            Some(Ok(()))
        } else if st.writer_done {
            Some(Err(JournalError::Closed))
        } else {
            None
        }
    }

    /// Waits until `seq` is durable (`Closed` if the journal stopped before it became durable).
    pub async fn wait_durable(&self, seq: u64) -> Result<(), JournalError> {
        let shared = self.shared();
        loop {
            let notified = shared.progress.notified();
            if let Some(r) = Self::durable_or_closed(&shared.lock(), seq) {
                return r;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }

    /// Waits from a blocking thread until `seq` is durable.
    pub fn wait_durable_blocking(&self, seq: u64) -> Result<(), JournalError> {
        let shared = self.shared();
        let mut st = shared.lock();
        loop {
            if let Some(r) = Self::durable_or_closed(&st, seq) {
                return r;
            }
            st = shared
                .changed
                .wait_timeout(st, Duration::from_millis(100))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

/// A named reader with a persisted, acknowledged position.
pub struct Cursor {
    life: Arc<Lifecycle>,
    name: String,
    /// The last sequence number handed out.
    read_pos: u64,
    acked: u64,
    sink_state: Option<Bytes>,
    /// Read state; `None` only while a read runs on a blocking thread (or after one was
    /// cancelled, in which case reading restarts from `read_pos`).
    io: Option<Box<CursorIo>>,
}

impl Cursor {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The last acknowledged sequence number (0: nothing yet).
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// The sink state stored with the last acknowledgement.
    pub fn sink_state(&self) -> Option<&Bytes> {
        self.sink_state.as_ref()
    }

    fn writer_done(&self) -> bool {
        self.life.shared.lock().writer_done
    }

    /// Reads what is readable now, without waiting.
    fn fill_now(&mut self, max: usize) -> Result<Vec<Entry>, JournalError> {
        let mut io = self.io.take().unwrap_or_default();
        let mut out = Vec::new();
        let r = io.fill(&self.life.shared, &mut self.read_pos, max, &mut out);
        self.io = Some(io);
        r.map(|()| out)
    }

    /// Returns up to `max` durable entries after the read position, waiting for at least one.
    /// An empty result means the journal was closed and everything was read.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Entry>, JournalError> {
        let max = max.max(1);
        loop {
            let notified = self.life.shared.progress.notified();
            let done_before = self.writer_done();
            let mut io = self.io.take().unwrap_or_default();
            let out = if io.buffered_len() >= max {
                let mut out = Vec::new();
                io.take_buffered(&mut self.read_pos, max, &mut out);
                self.io = Some(io);
                out
            } else {
                let life = self.life.clone();
                let mut read_pos = self.read_pos;
                let (io, read_pos, r) = tokio::task::spawn_blocking(move || {
                    let mut out = Vec::new();
                    let r = io.fill(&life.shared, &mut read_pos, max, &mut out);
                    (io, read_pos, r.map(|()| out))
                })
                .await
                .map_err(|_| JournalError::Closed)?;
                self.io = Some(io);
                self.read_pos = read_pos;
                r?
            };
            if !out.is_empty() || done_before {
                return Ok(out);
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }

    /// Blocking variant of [`Cursor::next_batch`]; returns an empty batch after `timeout` too.
    pub fn next_batch_blocking(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<Entry>, JournalError> {
        let max = max.max(1);
        let deadline = Instant::now() + timeout;
        let life = self.life.clone();
        loop {
            let done_before = self.writer_done();
            let seen_durable = life.shared.lock().durable_seq;
            let out = self.fill_now(max)?;
            let now = Instant::now();
            if !out.is_empty() || done_before || now >= deadline {
                return Ok(out);
            }
            let st = life.shared.lock();
            if st.durable_seq == seen_durable && !st.writer_done {
                let _ = life
                    .shared
                    .changed
                    .wait_timeout(st, (deadline - now).min(Duration::from_millis(100)));
            }
        }
    }

    /// True when the journal is closed and this cursor has read everything.
    pub fn is_drained(&self) -> bool {
        let st = self.life.shared.lock();
        st.writer_done
            && self.read_pos >= st.durable_seq
            && self.io.as_ref().is_none_or(|io| io.buffered_len() == 0)
    }

    /// Acknowledges everything up to `seq`, with an optional sink state stored alongside; durable
    /// when this returns (it writes and fsyncs the cursor file: call it from a blocking thread, or
    /// use [`Cursor::ack_async`]).
    pub fn ack(&mut self, seq: u64, sink_state: Option<Bytes>) -> Result<(), JournalError> {
        let seq = seq.max(self.acked);
        self.life
            .shared
            .persist_cursor(&self.name, seq, sink_state.as_ref())?;
        self.after_ack(seq, sink_state);
        self.life.shared.trim();
        Ok(())
    }

    /// [`Cursor::ack`] with the file write and fsync on a blocking thread.
    pub async fn ack_async(
        &mut self,
        seq: u64,
        sink_state: Option<Bytes>,
    ) -> Result<(), JournalError> {
        let seq = seq.max(self.acked);
        let life = self.life.clone();
        let name = self.name.clone();
        let state = sink_state.clone();
        tokio::task::spawn_blocking(move || -> Result<(), JournalError> {
            life.shared.persist_cursor(&name, seq, state.as_ref())?;
            Ok(())
        })
        .await
        .map_err(|_| JournalError::Closed)??;
        self.after_ack(seq, sink_state);
        let life = self.life.clone();
        let _ = tokio::task::spawn_blocking(move || life.shared.trim()).await;
        Ok(())
    }

    fn after_ack(&mut self, seq: u64, sink_state: Option<Bytes>) {
        self.life
            .shared
            .record_ack(&self.name, seq, sink_state.clone());
        self.acked = seq;
        self.sink_state = sink_state;
        self.read_pos = self.read_pos.max(seq);
        if let Some(io) = self.io.as_mut() {
            io.acked(seq);
        }
    }

    /// Moves the read position back to the last acknowledgement (e.g. after a failed send).
    pub fn rewind(&mut self) {
        self.read_pos = self.acked;
        if let Some(io) = self.io.as_mut() {
            io.rewind(self.acked);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Format, Origin};

    fn rec(s: &str) -> Record {
        Record::new(
            Origin::new("t", "c", Format::Raw, "h"),
            Bytes::copy_from_slice(s.as_bytes()),
        )
    }

    fn batch(records: Vec<Record>) -> AppendBatch {
        AppendBatch {
            records,
            checkpoints: vec![],
        }
    }

    #[test]
    fn append_read_ack() {
        let j = Journal::memory(JournalConfig::default());
        let a = j.appender();
        let mut c = j.cursor("sink").unwrap();
        let r = a
            .append_blocking(AppendBatch {
                records: vec![rec("a"), rec("b")],
                checkpoints: vec![Checkpoint {
                    key: "file:1".into(),
                    value: Bytes::from_static(b"10"),
                }],
            })
            .unwrap();
        assert_eq!((r.first_seq, r.last_seq), (1, 2));
        a.wait_durable_blocking(2).unwrap();
        assert_eq!(j.checkpoint("file:1").as_deref(), Some(&b"10"[..]));
        let b = c
            .next_batch_blocking(10, Duration::from_millis(500))
            .unwrap();
        assert_eq!(b.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(&b[1].record.raw[..], b"b");
        c.rewind();
        let again = c.next_batch_blocking(1, Duration::from_millis(10)).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].seq, 1);
        c.ack(2, Some(Bytes::from_static(b"len=5"))).unwrap();
        let reopened = j.cursor("sink").unwrap();
        assert_eq!(reopened.acked(), 2);
        assert_eq!(reopened.sink_state().map(|b| &b[..]), Some(&b"len=5"[..]));
        assert!(j.cursor("../x").is_err());
    }

    #[test]
    fn oversized_records_are_refused_not_journaled() {
        let j = Journal::memory(JournalConfig::default());
        let huge = Record::new(
            Origin::new("t", "c", Format::Raw, "h"),
            Bytes::from(vec![b'x'; format::MAX_FRAME_BODY]),
        );
        let err = j.appender().append_blocking(batch(vec![huge])).unwrap_err();
        assert!(matches!(err, JournalError::TooLarge { .. }), "{err}");
        assert_eq!(j.stats().last_seq, 0);
    }

    #[test]
    fn full_journal_hands_batch_back() {
        let j = Journal::memory(JournalConfig {
            max_bytes: 100,
            ..JournalConfig::default()
        });
        let _c = j.cursor("s").unwrap();
        let a = j.appender();
        a.try_append(batch(vec![rec("x")])).unwrap();
        let Err(TryAppendError::Full(back)) = a.try_append(batch(vec![rec("y")])) else {
            panic!("expected Full");
        };
        assert_eq!(&back.records[0].raw[..], b"y");
        assert_eq!(a.try_append_or_count(back).unwrap(), None);
        assert_eq!(j.stats().dropped_journal_full, 1);
    }

    #[test]
    fn acked_segments_are_deleted_and_space_returns() {
        let j = Journal::memory(JournalConfig {
            segment_bytes: 4096,
            max_bytes: 64 << 10,
            fsync: FsyncPolicy::Always,
            ..JournalConfig::default()
        });
        let a = j.appender();
        let mut c = j.cursor("s").unwrap();
        let line = "x".repeat(200);
        let mut last = 0;
        for _ in 0..100 {
            last = a.append_blocking(batch(vec![rec(&line)])).unwrap().last_seq;
        }
        a.wait_durable_blocking(last).unwrap();
        assert!(j.stats().segments > 3, "{:?}", j.stats());
        let held = j.stats().bytes_held;
        let mut n = 0;
        while n < 100 {
            let b = c.next_batch_blocking(7, Duration::from_secs(1)).unwrap();
            assert!(!b.is_empty());
            n += b.len();
            c.ack(b[b.len() - 1].seq, None).unwrap();
        }
        let st = j.stats();
        assert!(st.segments <= 2 && st.bytes_held < held / 4, "{st:?}");
        assert_eq!(st.cursors, vec![("s".to_string(), 100, 0)]);
    }

    #[tokio::test]
    async fn async_append_wait_and_read() {
        let j = Journal::memory(JournalConfig::default());
        let a = j.appender();
        let mut c = j.cursor("s").unwrap();
        let r = a.append(batch(vec![rec("1"), rec("2")])).await.unwrap();
        a.wait_durable(r.last_seq).await.unwrap();
        let got = c.next_batch(10).await.unwrap();
        assert_eq!(got.len(), 2);
        c.ack_async(2, None).await.unwrap();
        j.close().unwrap();
        assert!(c.next_batch(10).await.unwrap().is_empty());
        assert!(c.is_drained());
        assert!(matches!(
            a.append(batch(vec![rec("3")])).await,
            Err(JournalError::Closed)
        ));
    }
}
