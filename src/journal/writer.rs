//! The writer thread: the only code that writes segment files, with its helper thread that
//! fsyncs them.
//!
//! The writer takes the frames appenders encoded and writes them at the end of the active segment
//! with positioned writes. Group commit: when an fsync is due (per
//! [`FsyncPolicy`](super::FsyncPolicy)) it hands everything written so far to the sync thread and
//! keeps writing while the `fdatasync` runs; when the fsync returns, the sync thread publishes
//! durability for exactly the bytes written before it started: the durable sequence number, the
//! segment's durable length and the checkpoints of those frames. At most one fsync is in flight.
//!
//! The writer rolls segments (waits for the fsync in flight, fsyncs the old segment, creates the
//! next) and survives failed writes (ENOSPC, EIO): the frames go back to the queue, the partial
//! write is cut off and overwritten by the retry, and appends see a full journal until a write
//! succeeds again. A failed fsync is retried after rewriting the unsynced bytes, which are kept
//! until they are durable.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::format;
use super::segment;
use super::shared::{
    CHUNK_BYTES, FSYNC_BYTES, PendingChunk, SNAPSHOT_EVERY_SEGMENTS, SegmentInfo, Shared, State,
};
use super::{FsyncPolicy, JournalError};

/// Pause between retries of a failed write or fsync.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// On close, give up on a failing disk after this many retries.
const CLOSE_RETRIES: u32 = 20;

/// The segment being appended to.
pub(super) struct ActiveSegment {
    pub first_seq: u64,
    pub path: PathBuf,
    pub file: Arc<File>,
    /// Bytes written (durable or not).
    pub len: u64,
}

/// Written but not yet fsynced: kept to publish (and to rewrite if the fsync fails).
struct Unsynced {
    offset: u64,
    chunk: PendingChunk,
}

/// Everything written to `segment` below `synced_len`, for the sync thread.
struct SyncJob {
    file: Arc<File>,
    segment: u64,
    synced_len: u64,
    chunks: Vec<Unsynced>,
}

enum SyncOutcome {
    Done,
    Failed(Vec<Unsynced>, io::Error),
}

struct Writer {
    shared: Arc<Shared>,
    active: ActiveSegment,
    unsynced: Vec<Unsynced>,
    unsynced_bytes: u64,
    last_sync_request: Instant,
    failures: u32,
    /// To the sync thread (`None`: fsync on this thread).
    jobs: Option<Sender<SyncJob>>,
    outcomes: Receiver<SyncOutcome>,
    sync_in_flight: bool,
    /// The last write or fsync failure: what [`run`] returns when it stops with records it could
    /// not make durable.
    last_failure: Option<(PathBuf, io::Error)>,
}

/// The writer thread's body. Returns the last write or fsync error when it stopped (at close)
/// with appended records that never became durable.
pub(super) fn run(shared: Arc<Shared>, active: ActiveSegment) -> Result<(), JournalError> {
    let (job_tx, job_rx) = crossbeam_channel::bounded::<SyncJob>(1);
    let (outcome_tx, outcome_rx) = crossbeam_channel::unbounded::<SyncOutcome>();
    let syncer = if shared.config.fsync == FsyncPolicy::Never {
        None
    } else {
        let s = shared.clone();
        std::thread::Builder::new()
            .name("quill-journal-sync".into())
            .spawn(move || sync_thread(s, job_rx, outcome_tx))
            .ok()
    };
    let mut w = Writer {
        shared,
        active,
        unsynced: Vec::new(),
        unsynced_bytes: 0,
        last_sync_request: Instant::now(),
        failures: 0,
        jobs: syncer.as_ref().map(|_| job_tx),
        outcomes: outcome_rx,
        sync_in_flight: false,
        last_failure: None,
    };
    w.run();
    let shared = w.shared.clone();
    let last_failure = w.last_failure.take();
    drop(w);
    if let Some(handle) = syncer {
        let _ = handle.join();
    }
    let st = shared.lock();
    let undurable = st.next_seq.saturating_sub(1).saturating_sub(st.durable_seq);
    match last_failure {
        Some((path, source)) if undurable > 0 && !st.crash => Err(JournalError::Io {
            path: path.display().to_string(),
            source,
        }),
        _ => Ok(()),
    }
}

/// The sync thread: fsyncs what the writer hands it and publishes it as durable.
fn sync_thread(shared: Arc<Shared>, jobs: Receiver<SyncJob>, outcomes: Sender<SyncOutcome>) {
    for job in jobs {
        let outcome = match timed_sync(&shared, &job.file) {
            Ok(()) => {
                publish_chunks(&shared, job.segment, job.synced_len, job.chunks);
                SyncOutcome::Done
            }
            Err(e) => SyncOutcome::Failed(job.chunks, e),
        };
        let _ = outcomes.send(outcome);
        // Wake the writer under the lock it waits with, so the wakeup cannot be lost.
        let _st = shared.lock();
        shared.work.notify_all();
    }
}

fn timed_sync(shared: &Shared, file: &File) -> io::Result<()> {
    let start = Instant::now();
    file.sync_data()?;
    let took = start.elapsed();
    let mut st = shared.lock();
    st.counters.fsyncs += 1;
    st.counters.fsync_time_total += took;
    st.counters.fsync_time_max = st.counters.fsync_time_max.max(took);
    Ok(())
}

/// Makes `chunks` (written to `segment` below `synced_len`) visible as durable.
fn publish_chunks(shared: &Shared, segment: u64, synced_len: u64, chunks: Vec<Unsynced>) {
    {
        let mut st = shared.lock();
        for u in chunks {
            let PendingChunk {
                mut bytes,
                last_seq,
                checkpoints,
                ..
            } = u.chunk;
            st.durable_seq = st.durable_seq.max(last_seq);
            for cp in checkpoints {
                st.checkpoints.insert(cp.key, cp.value);
            }
            if st.spare_buffers.len() < st.max_spare_buffers && bytes.capacity() <= 2 * CHUNK_BYTES
            {
                bytes.clear();
                st.spare_buffers.push(bytes);
            }
        }
        if let Some(seg) = st
            .segments
            .iter_mut()
            .rev()
            .find(|s| s.first_seq == segment)
        {
            seg.len = seg.len.max(synced_len);
        }
    }
    shared.notify_all();
}

enum Work {
    Write(Vec<PendingChunk>, bool),
    SyncDue,
    SyncFinished(SyncOutcome),
    Exit { flush: bool },
}

impl Writer {
    fn policy(&self) -> FsyncPolicy {
        self.shared.config.fsync
    }

    fn run(&mut self) {
        loop {
            match self.next_work() {
                Work::Exit { flush } => {
                    if flush {
                        self.wait_sync_idle();
                        self.sync_until_done(true);
                    }
                    return;
                }
                Work::SyncDue => self.request_sync(),
                Work::SyncFinished(outcome) => self.sync_finished(outcome),
                Work::Write(chunks, inject) => {
                    if self.blocked_without_reserve() {
                        // The disk is full: do not take the space acknowledgements need.
                        self.requeue(chunks);
                        self.failures += 1;
                        std::thread::sleep(RETRY_PAUSE);
                        continue;
                    }
                    if self.write_chunks(chunks, inject) {
                        self.note_success();
                        match self.policy() {
                            FsyncPolicy::Never => self.publish(),
                            FsyncPolicy::Always => {
                                if !self.sync_in_flight {
                                    self.request_sync();
                                }
                            }
                            FsyncPolicy::Interval => {
                                if !self.sync_in_flight
                                    && (self.unsynced_bytes >= FSYNC_BYTES
                                        || self.last_sync_request.elapsed()
                                            >= self.shared.config.fsync_interval)
                                {
                                    self.request_sync();
                                }
                            }
                        }
                    } else {
                        std::thread::sleep(RETRY_PAUSE);
                    }
                }
            }
        }
    }

    /// Hands everything written so far to the sync thread (or fsyncs it here without one).
    fn request_sync(&mut self) {
        if self.unsynced.is_empty() {
            return;
        }
        let Some(jobs) = &self.jobs else {
            self.sync_until_done(false);
            return;
        };
        let job = SyncJob {
            file: self.active.file.clone(),
            segment: self.active.first_seq,
            synced_len: self.active.len,
            chunks: std::mem::take(&mut self.unsynced),
        };
        self.unsynced_bytes = 0;
        self.last_sync_request = Instant::now();
        match jobs.send(job) {
            Ok(()) => self.sync_in_flight = true,
            Err(e) => {
                // The sync thread is gone: fsync here from now on.
                self.jobs = None;
                self.unsynced = e.into_inner().chunks;
                self.sync_until_done(false);
            }
        }
    }

    fn sync_finished(&mut self, outcome: SyncOutcome) {
        self.sync_in_flight = false;
        match outcome {
            SyncOutcome::Done => self.note_success(),
            SyncOutcome::Failed(mut chunks, e) => {
                {
                    let shared = self.shared.clone();
                    let mut st = shared.lock();
                    self.note_failure(&mut st, "fsync", &e);
                }
                // Retry here, rewriting those bytes first (they precede everything unsynced).
                chunks.append(&mut self.unsynced);
                self.unsynced = chunks;
                self.rewrite_unsynced();
                self.sync_until_done(false);
            }
        }
    }

    /// Waits for the fsync in flight, if any, and handles its outcome.
    fn wait_sync_idle(&mut self) {
        while self.sync_in_flight {
            match self.outcomes.recv() {
                Ok(outcome) => self.sync_finished(outcome),
                Err(_) => self.sync_in_flight = false,
            }
        }
    }

    fn rewrite_unsynced(&self) {
        for u in &self.unsynced {
            let _ = self.active.file.write_all_at(&u.chunk.bytes, u.offset);
        }
    }

    /// Waits for something to do.
    fn next_work(&mut self) -> Work {
        let shared = self.shared.clone();
        let mut st = shared.lock();
        loop {
            if st.crash {
                return Work::Exit { flush: false };
            }
            if let Ok(outcome) = self.outcomes.try_recv() {
                return Work::SyncFinished(outcome);
            }
            let interval = self.shared.config.fsync_interval;
            let sync_due =
                !self.sync_in_flight && Instant::now() >= self.last_sync_request + interval;
            let ready = st.pending_bytes >= CHUNK_BYTES as u64
                || sync_due
                || st.closing
                || self.policy() != FsyncPolicy::Interval;
            if !st.pending.is_empty() && ready {
                if st.closing && self.failures > CLOSE_RETRIES {
                    return Work::Exit { flush: false };
                }
                let chunks: Vec<PendingChunk> = st.pending.drain(..).collect();
                st.pending_bytes = 0;
                let inject = st.inject_write_failures > 0;
                if inject {
                    st.inject_write_failures -= 1;
                }
                drop(st);
                shared.notify_all();
                return Work::Write(chunks, inject);
            }
            if st.closing {
                return Work::Exit { flush: true };
            }
            let mut wait = Duration::from_secs(1);
            if (!self.unsynced.is_empty() || !st.pending.is_empty()) && !self.sync_in_flight {
                let due = match self.policy() {
                    FsyncPolicy::Interval => {
                        self.last_sync_request + self.shared.config.fsync_interval
                    }
                    _ => self.last_sync_request,
                };
                let now = Instant::now();
                if now >= due {
                    return Work::SyncDue;
                }
                wait = due - now;
            }
            st = shared
                .work
                .wait_timeout(st, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// Writes the chunks in order; on failure puts the unwritten ones back at the queue's front
    /// and returns false.
    fn write_chunks(&mut self, chunks: Vec<PendingChunk>, mut inject: bool) -> bool {
        let mut iter = chunks.into_iter();
        while let Some(chunk) = iter.next() {
            let result = if chunk.segment != self.active.first_seq {
                self.roll(chunk.segment)
            } else {
                Ok(())
            }
            .and_then(|()| {
                if inject {
                    inject = false;
                    let half = &chunk.bytes[..chunk.bytes.len() / 2];
                    self.active.file.write_all_at(half, self.active.len)?;
                    return Err(io::Error::from_raw_os_error(libc::ENOSPC));
                }
                self.active.file.write_all_at(&chunk.bytes, self.active.len)
            });
            match result {
                Ok(()) => {
                    let offset = self.active.len;
                    self.active.len += chunk.bytes.len() as u64;
                    self.unsynced_bytes += chunk.bytes.len() as u64;
                    self.unsynced.push(Unsynced { offset, chunk });
                }
                Err(e) => {
                    // Cut off what a partial write left; the retry overwrites it anyway.
                    let _ = self.active.file.set_len(self.active.len);
                    self.requeue(std::iter::once(chunk).chain(iter).collect());
                    let shared = self.shared.clone();
                    let mut st = shared.lock();
                    self.note_failure(&mut st, "write", &e);
                    return false;
                }
            }
        }
        true
    }

    /// Puts chunks the writer took back at the front of the queue, in order.
    fn requeue(&self, chunks: Vec<PendingChunk>) {
        let mut st = self.shared.lock();
        for c in chunks.into_iter().rev() {
            st.pending_bytes += c.bytes.len() as u64;
            st.pending.push_front(c);
        }
    }

    /// After a failed write, and while the reserve file had to be released: true until the
    /// reserve can be put back (then there is space again).
    fn blocked_without_reserve(&self) -> bool {
        let blocked = self.shared.lock().write_blocked;
        blocked && !self.shared.restore_reserve()
    }

    fn note_failure(&mut self, st: &mut State, what: &str, e: &io::Error) {
        st.counters.write_errors += 1;
        self.last_failure = Some((
            self.active.path.clone(),
            io::Error::new(e.kind(), format!("{what}: {e}")),
        ));
        if !st.write_blocked {
            tracing::warn!(
                segment = %self.active.path.display(),
                offset = self.active.len,
                error = %e,
                "journal {what} failed; appends wait until it succeeds"
            );
        }
        st.write_blocked = true;
        self.failures += 1;
    }

    fn note_success(&mut self) {
        self.failures = 0;
        let mut st = self.shared.lock();
        if st.write_blocked {
            st.write_blocked = false;
            tracing::info!("journal writes succeed again");
            drop(st);
            self.shared.notify_all();
        }
    }

    /// fsyncs (per policy) and publishes; retries a failing fsync by rewriting the unsynced
    /// bytes first. With `closing`, always fsyncs and gives up after a few attempts.
    fn sync_until_done(&mut self, closing: bool) {
        if self.unsynced.is_empty() {
            return;
        }
        loop {
            match self.sync() {
                Ok(()) => {
                    self.note_success();
                    self.publish();
                    return;
                }
                Err(e) => {
                    {
                        let shared = self.shared.clone();
                        let mut st = shared.lock();
                        self.note_failure(&mut st, "fsync", &e);
                        if st.crash || (closing && self.failures > CLOSE_RETRIES) {
                            return;
                        }
                    }
                    std::thread::sleep(RETRY_PAUSE);
                    // The kernel may have dropped the dirty pages: write them again.
                    self.rewrite_unsynced();
                }
            }
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        if self.policy() == FsyncPolicy::Never {
            return Ok(());
        }
        self.last_sync_request = Instant::now();
        timed_sync(&self.shared, &self.active.file)
    }

    /// Makes everything written so far visible as durable.
    fn publish(&mut self) {
        if self.unsynced.is_empty() {
            return;
        }
        let chunks = std::mem::take(&mut self.unsynced);
        publish_chunks(&self.shared, self.active.first_seq, self.active.len, chunks);
        self.unsynced_bytes = 0;
    }

    /// Seals the active segment and starts the one beginning at `first_seq`.
    fn roll(&mut self, first_seq: u64) -> io::Result<()> {
        self.wait_sync_idle();
        if !self.unsynced.is_empty() {
            self.sync()?;
            self.publish();
        }
        let dir = self.shared.dir.clone();
        // The header becomes durable with the segment's first fdatasync, before anything in it is
        // reported durable; a crash before that leaves a torn tail header, which recovery
        // recreates. The directory entry is made durable now.
        let (path, file) = segment::create_segment_file(&dir, first_seq)?;
        if self.policy() != FsyncPolicy::Never {
            segment::fsync_dir(&dir)?;
        }
        let old = std::mem::replace(
            &mut self.active,
            ActiveSegment {
                first_seq,
                path: path.clone(),
                file: Arc::new(file),
                len: format::SEGMENT_HEADER_LEN as u64,
            },
        );
        let uncovered = {
            let mut st = self.shared.lock();
            if let Some(seg) = st
                .segments
                .iter_mut()
                .find(|s| s.first_seq == old.first_seq)
            {
                seg.sealed = true;
                seg.len = old.len;
            }
            st.segments.push(SegmentInfo {
                first_seq,
                path,
                len: format::SEGMENT_HEADER_LEN as u64,
                sealed: false,
            });
            let covers = st.snapshot_covers_below;
            st.segments
                .iter()
                .filter(|s| s.sealed && s.first_seq >= covers)
                .count()
        };
        if uncovered >= SNAPSHOT_EVERY_SEGMENTS {
            let _serial = self
                .shared
                .snapshot_lock
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            self.shared.write_snapshot_locked();
        }
        self.shared.trim();
        Ok(())
    }
}
