//! The state appenders, the writer thread and cursors share: the queue of encoded frames, the
//! published durable position, segments, checkpoints and cursor positions, behind one mutex; and
//! the operations on it that are not the writer's (encoding an append, deleting acknowledged
//! segments, writing cursor files and the checkpoint snapshot).
//!
//! Touches only the journal directory (cursor files, snapshot, reserve file, segment deletion).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use super::delivered::{self, Delivered, Fence};
use super::format;
use super::prepare::{EncodedFrame, Prepared, prepare};
use super::segment;
use super::{
    AppendBatch, AppendReceipt, Checkpoint, FsyncPolicy, JournalConfig, JournalError,
    TryAppendError, io_err,
};
use crate::record::Record;

/// Longest a writer keeps unsynced data under [`FsyncPolicy::Interval`], in bytes.
pub(super) const FSYNC_BYTES: u64 = 32 << 20;
/// Encoded bytes that may wait in memory for the writer before appends see a full journal.
/// Kept small so that the frames the writer copies into the page cache are still in the CPU
/// cache (measured: large queues made the writer's copy several times slower).
pub(super) const MAX_PENDING_BYTES: u64 = 16 << 20;
/// Frames are queued in chunks of about this size, whose buffers the writer hands back.
pub(super) const CHUNK_BYTES: usize = 1 << 20;
/// Chunk buffers the writer keeps for reuse without a memory limit.
pub(super) const DEFAULT_SPARE_BUFFERS: usize = 48;

#[derive(Debug, Clone)]
pub(super) struct SegmentInfo {
    pub(super) first_seq: u64,
    pub(super) path: PathBuf,
    /// Durable bytes (all of it once sealed).
    pub(super) len: u64,
    pub(super) sealed: bool,
}

/// Encoded frames waiting for the writer, all for one segment.
#[derive(Debug)]
pub(super) struct PendingChunk {
    pub(super) segment: u64,
    pub(super) bytes: Vec<u8>,
    pub(super) last_seq: u64,
    pub(super) checkpoints: Vec<Checkpoint>,
}

#[derive(Debug, Default, Clone)]
pub(super) struct CursorMeta {
    /// The persisted position: the sink's own acknowledgements, or further when the journal
    /// moved it past `max_lag` (a reader that is behind it jumps there).
    pub(super) acked: u64,
    pub(super) sink_state: Option<Bytes>,
    /// Records the cursor's readers passed over because the journal moved it on, not yet
    /// taken by [`super::Journal::take_cursor_skips`].
    pub(super) skipped: u64,
    /// Open [`super::Cursor`]s of this name: with none, what the journal moves the cursor
    /// past is counted as skipped at once; otherwise the reader counts it.
    pub(super) readers: u32,
    /// Per file, the last acknowledged record's end offset (persisted with the cursor).
    pub(super) delivered: Delivered,
    /// Set by recovery when it cut records this cursor had acknowledged: the re-read records
    /// the cursor skips (persisted with the cursor until passed).
    pub(super) fence: Option<Fence>,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) records_appended: u64,
    pub(super) bytes_appended: u64,
    pub(super) fsyncs: u64,
    pub(super) fsync_time_total: Duration,
    pub(super) fsync_time_max: Duration,
    pub(super) write_errors: u64,
    /// Records recovery cut that cursors had acknowledged (at the last open).
    pub(super) recovery_cut_records: u64,
    /// Bytes recovery cut from the tail segment (at the last open).
    pub(super) recovery_cut_bytes: u64,
}

#[derive(Debug)]
pub(super) struct State {
    // Append side.
    pub(super) next_seq: u64,
    /// The segment new frames go to, and its length once everything pending is written.
    pub(super) append_segment: u64,
    pub(super) append_segment_len: u64,
    pub(super) pending: VecDeque<PendingChunk>,
    pub(super) pending_bytes: u64,
    // Durable side (published by the writer).
    pub(super) durable_seq: u64,
    pub(super) segments: Vec<SegmentInfo>,
    pub(super) checkpoints: HashMap<String, Bytes>,
    pub(super) snapshot_covers_below: u64,
    pub(super) cursors: HashMap<String, CursorMeta>,
    pub(super) held_bytes: u64,
    // Lifecycle.
    pub(super) closing: bool,
    pub(super) writer_done: bool,
    pub(super) crash: bool,
    pub(super) write_blocked: bool,
    pub(super) inject_write_failures: u32,
    pub(super) counters: Counters,
    /// Buffers the writer is done with, reused for new chunks (no allocation churn).
    pub(super) spare_buffers: Vec<Vec<u8>>,
    /// Encoded bytes that may wait for the writer ([`MAX_PENDING_BYTES`] unless a memory
    /// limit lowered it) and how many spare chunk buffers are kept.
    pub(super) max_pending_bytes: u64,
    pub(super) max_spare_buffers: usize,
}

pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) cursors_dir: PathBuf,
    pub(super) config: JournalConfig,
    pub(super) roll_bytes: u64,
    pub(super) state: Mutex<State>,
    /// Durability, space or lifecycle changed (blocking waiters).
    pub(super) changed: Condvar,
    /// Work for the writer thread.
    pub(super) work: Condvar,
    /// Durability or lifecycle changed (async waiters).
    pub(super) progress: Notify,
    /// Space was freed (async appenders).
    pub(super) space: Notify,
    pub(super) dropped_journal_full: AtomicU64,
    /// Serialises snapshot writes and segment deletion.
    pub(super) snapshot_lock: Mutex<()>,
    /// Serialises cursor file writes, so a position on disk never goes back.
    pub(super) cursor_files: Mutex<()>,
    /// Whether the reserve (ballast) file is in place.
    pub(super) reserve_present: AtomicBool,
}

/// The checkpoint snapshot's file name.
pub(super) const SNAPSHOT_FILE: &str = "checkpoints.snap";
/// The writer refreshes the snapshot once this many sealed segments are not covered, so that
/// recovery never replays more than these.
pub(super) const SNAPSHOT_EVERY_SEGMENTS: usize = 4;

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn notify_all(&self) {
        self.changed.notify_all();
        self.progress.notify_waiters();
        self.space.notify_waiters();
    }

    /// Encodes and queues a batch if there is room (a batch always fits into an empty journal).
    pub(super) fn try_push(&self, batch: AppendBatch) -> Result<AppendReceipt, TryAppendError> {
        let mut prepared = prepare(&batch)?;
        self.push_prepared(batch, &mut prepared)
    }

    /// Queues a batch [`prepare`]d outside the lock if there is room; a full journal hands the
    /// batch back with `prepared` kept for the next try.
    pub(super) fn push_prepared(
        &self,
        batch: AppendBatch,
        prepared: &mut Prepared,
    ) -> Result<AppendReceipt, TryAppendError> {
        let size = prepared.size;
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
        let holds_records = st
            .segments
            .first()
            .is_some_and(|s| s.first_seq < st.next_seq);
        if st.write_blocked
            || (holds_records && st.held_bytes + size > self.config.max_bytes)
            || st.pending_bytes > st.max_pending_bytes
        {
            return Err(TryAppendError::Full(batch));
        }
        let pending_before = st.pending_bytes;
        if let Some(frames) = prepared.encoded.take() {
            for frame in frames {
                self.push_encoded(&mut st, frame);
            }
        } else {
            let last = prepared.parts.len().saturating_sub(1);
            for (i, p) in prepared.parts.iter().enumerate() {
                let checkpoints: &[Checkpoint] = if i == last { &batch.checkpoints } else { &[] };
                self.push_frame(&mut st, &batch.records[p.start..p.end], checkpoints, p.hint);
            }
        }
        st.counters.records_appended += batch.records.len() as u64;
        st.counters.bytes_appended += prepared.raw_bytes;
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

    /// The segment a frame of `len` bytes goes to: the next one when it would overflow this one.
    fn segment_for(&self, st: &mut State, len: u64) -> u64 {
        let header = format::SEGMENT_HEADER_LEN as u64;
        if st.append_segment_len > header && st.append_segment_len + len > self.roll_bytes {
            st.append_segment = st.next_seq;
            st.append_segment_len = header;
            st.held_bytes += header;
            st.pending_bytes += header;
        }
        st.append_segment
    }

    /// Queues a frame encoded outside the lock as its own chunk, numbered from `next_seq`.
    fn push_encoded(&self, st: &mut State, mut frame: EncodedFrame) {
        let len = frame.bytes.len() as u64;
        let segment = self.segment_for(st, len);
        let first_seq = st.next_seq;
        frame.number(first_seq);
        st.pending.push_back(PendingChunk {
            segment,
            bytes: frame.bytes,
            last_seq: (first_seq + frame.records).saturating_sub(1),
            checkpoints: frame.checkpoints,
        });
        st.next_seq = first_seq + frame.records;
        st.append_segment_len += len;
        st.held_bytes += len;
        st.pending_bytes += len;
    }

    pub(super) fn push_frame(
        &self,
        st: &mut State,
        records: &[Record],
        checkpoints: &[Checkpoint],
        hint: u64,
    ) {
        let segment = self.segment_for(st, hint);
        let first_seq = st.next_seq;
        let last_seq = (first_seq + records.len() as u64).saturating_sub(1);
        // A chunk takes frames while they fit its capacity (`hint` bounds the frame's size), so
        // buffers keep their size and the writer can hand them back for reuse.
        let fits = |c: &PendingChunk| c.bytes.capacity() - c.bytes.len() >= hint as usize;
        let reuse = matches!(st.pending.back(), Some(c) if c.segment == segment && fits(c));
        if !reuse {
            let mut bytes = st.spare_buffers.pop().unwrap_or_default();
            bytes.reserve(CHUNK_BYTES.max(hint as usize));
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
        chunk.bytes.reserve(hint as usize);
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

    /// Writes a cursor file or the snapshot atomically; on a full disk, releases the reserve file
    /// once to make room (acknowledgements are what free journal space).
    pub(super) fn write_small_file(
        &self,
        dir: &Path,
        name: &str,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        match segment::write_atomic(dir, name, bytes) {
            Err(e)
                if segment::is_no_space(&e)
                    && self.reserve_present.swap(false, Ordering::SeqCst) =>
            {
                tracing::warn!(
                    dir = %self.dir.display(),
                    "journal disk full: releasing the reserve file to write {name}"
                );
                let _ = std::fs::remove_file(self.dir.join(segment::RESERVE_FILE));
                segment::write_atomic(dir, name, bytes)
            }
            other => other,
        }
    }

    /// Puts the reserve file back if it is missing; true when it is in place.
    pub(super) fn restore_reserve(&self) -> bool {
        if self.reserve_present.load(Ordering::SeqCst) {
            return true;
        }
        let ok = segment::create_reserve(&self.dir).is_ok();
        self.reserve_present.store(ok, Ordering::SeqCst);
        ok
    }

    /// Writes `checkpoints.snap` with the durable checkpoints, covering every sealed segment (they
    /// are durable in full). The caller holds `snapshot_lock`. False when the write failed.
    pub(super) fn write_snapshot_locked(&self) -> bool {
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
        match self.write_small_file(&self.dir, SNAPSHOT_FILE, &bytes) {
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

    /// Deletes sealed segments every cursor has passed. Those the checkpoint snapshot covers go
    /// first (freeing space on a full disk); then the snapshot is rewritten to cover the rest.
    pub(super) fn trim(&self) {
        let _serial = self.snapshot_lock.lock().unwrap_or_else(|p| p.into_inner());
        let needed = {
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
            st.segments[n].first_seq
        };
        let mut deleted = self.delete_segments_below(needed);
        if self.lock().snapshot_covers_below < needed && self.write_snapshot_locked() {
            deleted |= self.delete_segments_below(needed);
        }
        if deleted {
            self.restore_reserve();
            self.notify_all();
        }
    }

    /// Deletes the segments that end before `needed` and that the snapshot covers.
    pub(super) fn delete_segments_below(&self, needed: u64) -> bool {
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
        for path in &doomed {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(segment = %path.display(), error = %e, "cannot delete journal segment");
            }
        }
        !doomed.is_empty()
    }

    pub(super) fn persist_cursor(
        &self,
        name: &str,
        acked: u64,
        sink_state: Option<&Bytes>,
    ) -> Result<(), JournalError> {
        let positions = {
            let st = self.lock();
            st.cursors.get(name).map_or_else(Vec::new, |m| {
                delivered::encode(&m.delivered, m.fence.as_ref())
            })
        };
        let bytes = format::encode_cursor(acked, sink_state.map(|b| &b[..]), &positions);
        self.write_small_file(&self.cursors_dir, &format!("{name}.cur"), &bytes)
            .map_err(|e| io_err(&self.cursors_dir.join(format!("{name}.cur")), e))
    }

    /// Persists `acked` (or the cursor's position, if the journal moved it further) with
    /// `sink_state` and the positions of the records it acknowledges (`(seq, file_id,
    /// end_offset)`), and records it; returns the position persisted.
    pub(super) fn persist_ack(
        &self,
        name: &str,
        acked: u64,
        sink_state: Option<Bytes>,
        positions: &[(u64, u64, u64)],
    ) -> Result<u64, JournalError> {
        let _serial = self.cursor_files.lock().unwrap_or_else(|p| p.into_inner());
        let at = {
            let mut st = self.lock();
            let meta = st.cursors.entry(name.to_string()).or_default();
            for &(seq, file_id, end_offset) in positions {
                meta.delivered.note(seq, file_id, end_offset);
            }
            if let Some(fence) = meta.fence.as_mut()
                && fence.acked(acked)
            {
                tracing::info!(
                    cursor = name,
                    skipped = fence.skipped,
                    "every line read again after the journal's tail was cut is past what this cursor had delivered; it no longer skips re-read lines"
                );
                meta.fence = None;
            }
            meta.acked.max(acked)
        };
        self.persist_cursor(name, at, sink_state.as_ref())?;
        self.record_ack(name, at, sink_state);
        Ok(at)
    }

    pub(super) fn record_ack(&self, name: &str, acked: u64, sink_state: Option<Bytes>) {
        let mut st = self.lock();
        let meta = st.cursors.entry(name.to_string()).or_default();
        meta.acked = meta.acked.max(acked);
        meta.sink_state = sink_state;
    }
}

/// Stops the writer when the last handle goes away.
pub(super) struct Lifecycle {
    pub(super) shared: Arc<Shared>,
    pub(super) writer: Mutex<Option<JoinHandle<Result<(), JournalError>>>>,
    pub(super) lock_file: Mutex<Option<File>>,
    pub(super) remove_dir_on_drop: Option<PathBuf>,
}

impl Lifecycle {
    /// Stops the writer (writing everything pending first unless `crash`); the writer's error
    /// when it stopped with records it could not make durable, or panicked. Only the first call
    /// reports it.
    pub(super) fn shutdown(&self, crash: bool) -> Result<(), JournalError> {
        {
            let mut st = self.shared.lock();
            st.closing = true;
            st.crash |= crash;
        }
        self.shared.work.notify_all();
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        let result = match handle.map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(JournalError::Io {
                path: self.shared.dir.display().to_string(),
                source: std::io::Error::other("the journal writer thread panicked"),
            }),
        };
        {
            let mut st = self.shared.lock();
            st.writer_done = true;
        }
        self.lock_file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        self.shared.notify_all();
        result
    }
}

impl Drop for Lifecycle {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown(false) {
            tracing::error!(dir = %self.shared.dir.display(), "Journal closed with records it could not make durable: {e}.");
        }
        if let Some(dir) = &self.remove_dir_on_drop {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
