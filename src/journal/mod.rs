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
//! On disk (ARCHITECTURE.md, "Journal on-disk format"): segment files `<first_seq>.qjs` of checksummed frames, one
//! writer thread doing group commit ([`FsyncPolicy`]), `cursors/<name>.cur` and
//! `checkpoints.snap` written atomically. Readers only ever see durable records.
//!
//! This module owns the directory given to [`Journal::open`]. It never runs file I/O on the async
//! reactor: the async methods hand I/O to `spawn_blocking`, the writer thread does all writing and
//! fsyncing, and the `*_blocking` methods are for dedicated threads.

mod appender;
mod cursor;
mod delivered;
mod format;
mod prepare;
mod recovery;
mod segment;
mod shared;
mod writer;

pub use appender::Appender;
pub use cursor::Cursor;
use shared::{CursorMeta, Lifecycle, Shared};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;
use tokio::sync::Notify;

use crate::record::Record;

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
    /// Records opening the journal cut that cursors had acknowledged (the tail was damaged or
    /// lost): file sources read theirs again, cursors skip what they had delivered; others are
    /// lost for the cursors that had not delivered them.
    pub recovery_cut_records: u64,
    /// Bytes opening the journal cut from the tail segment (a torn or damaged tail).
    pub recovery_cut_bytes: u64,
}

/// The records a segment holds (`first..=last`) and its length on disk.
struct SegmentSpan {
    first: u64,
    last: u64,
    len: u64,
}

impl SegmentSpan {
    /// Bytes of the records after `seq`, in proportion to their number.
    fn bytes_after(&self, seq: u64) -> u64 {
        let count = self.last - self.first + 1;
        let after = self.last - seq.max(self.first - 1);
        (self.len as u128 * after as u128 / count as u128) as u64
    }
}

/// The durable records of each segment, oldest first (empty segments left out).
fn segment_spans(st: &shared::State) -> impl Iterator<Item = SegmentSpan> + '_ {
    st.segments.iter().enumerate().filter_map(|(i, seg)| {
        let last = st
            .segments
            .get(i + 1)
            .map_or(st.durable_seq, |next| next.first_seq.saturating_sub(1));
        (last >= seg.first_seq && seg.first_seq > 0).then_some(SegmentSpan {
            first: seg.first_seq,
            last,
            len: seg.len,
        })
    })
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
            cursor_files: Mutex::new(()),
            reserve_present: AtomicBool::new(false),
        });
        shared.restore_reserve();
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
                        ..CursorMeta::default()
                    })
                    .clone()
            }
        };
        if let Some(m) = shared.lock().cursors.get_mut(name) {
            m.readers += 1;
        }
        Ok(Cursor {
            life: self.life.clone(),
            name: name.to_string(),
            read_pos: meta.acked,
            acked: meta.acked,
            sink_state: meta.sink_state,
            io: Some(Box::default()),
            jumped: Vec::new(),
            unacked: Default::default(),
            fenced: meta.fence.is_some(),
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

    /// Bounds what waits in memory for the writer to `queue_bytes` (appends wait beyond it, as
    /// for a full journal) and keeps only as many spare chunk buffers as that queue needs: a
    /// share of the daemon's `memory_limit`.
    pub fn limit_memory(&self, queue_bytes: u64) {
        let chunk = shared::CHUNK_BYTES as u64;
        let queue = queue_bytes.max(2 * chunk);
        let mut st = self.life.shared.lock();
        st.max_pending_bytes = queue;
        let spares = (queue / chunk) as usize + 1;
        st.max_spare_buffers = spares;
        st.spare_buffers.truncate(spares);
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
            recovery_cut_records: st.counters.recovery_cut_records,
            recovery_cut_bytes: st.counters.recovery_cut_bytes,
        }
    }

    /// How far the named cursor's acknowledgement is behind the durable end: (records, bytes).
    /// Bytes are the journal's on-disk bytes of the unacknowledged records, estimated per
    /// segment (a segment partly acknowledged counts in proportion to its records).
    pub fn cursor_lag(&self, name: &str) -> Option<(u64, u64)> {
        let st = self.shared().lock();
        let acked = st.cursors.get(name)?.acked;
        let bytes = segment_spans(&st)
            .filter(|s| s.last > acked)
            .map(|s| s.bytes_after(acked))
            .sum();
        Some((st.durable_seq.saturating_sub(acked), bytes))
    }

    /// Moves the named cursor forward so that at most `max_bytes` of journal lie behind it,
    /// keeping its sink state: the records it passes over are never read through it. Returns
    /// how many records the position moved. What is skipped is counted for
    /// [`Journal::take_cursor_skips`]: with no open [`Cursor`] of this name, all of it at once;
    /// otherwise the reader counts it as it jumps (what it never read) and when it rewinds or
    /// is dropped (what it read but never acknowledged).
    pub fn skip_cursor_to_lag(&self, name: &str, max_bytes: u64) -> Result<u64, JournalError> {
        let shared = self.shared();
        let _serial = shared
            .cursor_files
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (acked, state, target) = {
            let st = shared.lock();
            let Some(meta) = st.cursors.get(name) else {
                return Ok(0);
            };
            let mut room = max_bytes;
            let mut target = meta.acked;
            let spans: Vec<SegmentSpan> = segment_spans(&st).collect();
            for span in spans.iter().rev() {
                if span.last <= meta.acked {
                    break;
                }
                let len = span.bytes_after(meta.acked);
                if len <= room {
                    room -= len;
                    continue;
                }
                // Keep the newest records of this segment that fit.
                let count = span.last - span.first + 1;
                let fit = (room as u128 * count as u128 / span.len.max(1) as u128) as u64;
                target = span.last - fit;
                break;
            }
            (meta.acked, meta.sink_state.clone(), target)
        };
        if target <= acked {
            return Ok(0);
        }
        shared.persist_cursor(name, target, state.as_ref())?;
        {
            let mut st = shared.lock();
            let meta = st.cursors.entry(name.to_string()).or_default();
            meta.acked = meta.acked.max(target);
            meta.sink_state = state;
            if meta.readers == 0 {
                meta.skipped += target - acked;
            }
        }
        shared.notify_all();
        drop(_serial);
        shared.trim();
        Ok(target - acked)
    }

    /// Takes the count of records the named cursor's readers passed over because
    /// [`Journal::skip_cursor_to_lag`] moved it while they held it (0 when none).
    pub fn take_cursor_skips(&self, name: &str) -> u64 {
        let mut st = self.shared().lock();
        st.cursors
            .get_mut(name)
            .map_or(0, |m| std::mem::take(&mut m.skipped))
    }

    /// Writes everything appended (and fsyncs it unless `fsync = "never"`), then stops accepting
    /// appends; readers drain what is there and then see the end. Blocks until the writer thread
    /// has finished (also what dropping the last handle does): call it from a blocking context.
    ///
    /// # Errors
    /// The writer's last write or fsync error when it gave up (a disk still failing after its
    /// close retries) with appended records that are not durable, or an error when the writer
    /// thread panicked. Only the first `close` reports it.
    pub fn close(&self) -> Result<(), JournalError> {
        self.life.shutdown(false)
    }

    /// Test support: stops the writer at once, as if the process had been killed: nothing
    /// pending is written and nothing more is fsynced. Files stay as they are.
    #[doc(hidden)]
    pub fn simulate_crash(&self) {
        let _ = self.life.shutdown(true);
    }

    /// Test support: the next `n` segment writes fail with ENOSPC after writing half their
    /// bytes, as a full disk does.
    #[doc(hidden)]
    pub fn inject_write_failures(&self, n: u32) {
        self.shared().lock().inject_write_failures = n;
    }
}

/// Decodes arbitrary bytes the way recovery and cursors read the journal's files: a frame
/// (header and CRC check, checkpoints, records), a segment header, a cursor file and a checkpoint
/// snapshot. For [`crate::fuzzing`].
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) {
    let _ = format::decode_segment_header(data);
    let _ = format::decode_cursor(data);
    let _ = delivered::decode(data);
    let _ = format::decode_snapshot(data);
    if let format::FrameCheck::Valid(header) = format::check_frame(data) {
        let body = Bytes::copy_from_slice(&data[format::FRAME_HEADER_LEN..header.total_len()]);
        let _ = format::decode_checkpoints(&body);
        let _ = format::decode_records(&header, &body, &mut format::OriginCache::default());
    }
    // The same bytes as a frame body whose header was good.
    let body = Bytes::copy_from_slice(data);
    let header = format::FrameHeader {
        first_seq: 1,
        count: data.first().map_or(0, |&b| u32::from(b)),
        body_len: data.len(),
    };
    let _ = format::decode_checkpoints(&body);
    let _ = format::decode_records(&header, &body, &mut format::OriginCache::default());
}

/// Internals the benchmark measures (frame walks over segment files).
#[doc(hidden)]
pub mod internals {
    pub use super::segment::{list_segments, scan_file, scan_slice};
}

#[cfg(test)]
mod tests;
