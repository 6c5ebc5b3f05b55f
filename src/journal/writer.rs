//! The writer thread: the only code that writes or fsyncs segment files.
//!
//! It takes the frames appenders encoded, writes them at the end of the active segment with
//! positioned writes, fsyncs according to the [`FsyncPolicy`](super::FsyncPolicy) (group commit),
//! then publishes durability: the durable sequence number, the segment's durable length and the
//! checkpoints of the synced frames. It rolls segments (fsync the old one, create the next, write
//! the checkpoint snapshot) and survives failed writes (ENOSPC, EIO): the frames go back to the
//! queue, the partial write is cut off and overwritten by the retry, and appends see a full
//! journal until a write succeeds again.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::format;
use super::segment;
use super::{FSYNC_BYTES, FsyncPolicy, PendingChunk, SegmentInfo, Shared, State};

/// Pause between retries of a failed write or fsync.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// On close, give up on a failing disk after this many retries.
const CLOSE_RETRIES: u32 = 20;

/// The segment being appended to.
pub(super) struct ActiveSegment {
    pub first_seq: u64,
    pub path: PathBuf,
    pub file: File,
    /// Bytes written (durable or not).
    pub len: u64,
}

/// Written but not yet fsynced: kept to publish (and to rewrite if the fsync fails).
struct Unsynced {
    offset: u64,
    chunk: PendingChunk,
}

struct Writer {
    shared: Arc<Shared>,
    active: ActiveSegment,
    unsynced: Vec<Unsynced>,
    unsynced_bytes: u64,
    last_sync: Instant,
    failures: u32,
}

pub(super) fn run(shared: Arc<Shared>, active: ActiveSegment) {
    let mut w = Writer {
        shared,
        active,
        unsynced: Vec::new(),
        unsynced_bytes: 0,
        last_sync: Instant::now(),
        failures: 0,
    };
    w.run();
}

enum Work {
    Write(Vec<PendingChunk>, bool),
    Sync,
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
                        self.sync_until_done(true);
                    }
                    return;
                }
                Work::Sync => {
                    self.sync_until_done(false);
                }
                Work::Write(chunks, inject) => {
                    if self.write_chunks(chunks, inject) {
                        self.note_success();
                        match self.policy() {
                            FsyncPolicy::Always => self.sync_until_done(false),
                            FsyncPolicy::Never => self.publish(),
                            FsyncPolicy::Interval => {
                                if self.unsynced_bytes >= FSYNC_BYTES
                                    || self.last_sync.elapsed() >= self.shared.config.fsync_interval
                                {
                                    self.sync_until_done(false);
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

    /// Waits for something to do.
    fn next_work(&mut self) -> Work {
        let shared = self.shared.clone();
        let mut st = shared.lock();
        loop {
            if st.crash {
                return Work::Exit { flush: false };
            }
            if !st.pending.is_empty() {
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
            if !self.unsynced.is_empty() {
                let due = self.last_sync + self.shared.config.fsync_interval;
                let now = Instant::now();
                if now >= due {
                    return Work::Sync;
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
                    let shared = self.shared.clone();
                    let mut st = shared.lock();
                    let rest: Vec<PendingChunk> = std::iter::once(chunk).chain(iter).collect();
                    for c in rest.into_iter().rev() {
                        st.pending_bytes += c.bytes.len() as u64;
                        st.pending.push_front(c);
                    }
                    self.note_failure(&mut st, "write", &e);
                    return false;
                }
            }
        }
        true
    }

    fn note_failure(&mut self, st: &mut State, what: &str, e: &io::Error) {
        st.counters.write_errors += 1;
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
                    for u in &self.unsynced {
                        let _ = self.active.file.write_all_at(&u.chunk.bytes, u.offset);
                    }
                }
            }
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        if self.policy() == FsyncPolicy::Never {
            return Ok(());
        }
        let start = Instant::now();
        self.active.file.sync_data()?;
        let took = start.elapsed();
        self.last_sync = Instant::now();
        let mut st = self.shared.lock();
        st.counters.fsyncs += 1;
        st.counters.fsync_time_total += took;
        st.counters.fsync_time_max = st.counters.fsync_time_max.max(took);
        Ok(())
    }

    /// Makes everything written so far visible as durable.
    fn publish(&mut self) {
        if self.unsynced.is_empty() {
            return;
        }
        self.last_sync = Instant::now();
        {
            let mut st = self.shared.lock();
            for u in self.unsynced.drain(..) {
                st.durable_seq = st.durable_seq.max(u.chunk.last_seq);
                for cp in u.chunk.checkpoints {
                    st.checkpoints.insert(cp.key, cp.value);
                }
            }
            if let Some(seg) = st
                .segments
                .iter_mut()
                .rev()
                .find(|s| s.first_seq == self.active.first_seq)
            {
                seg.len = self.active.len;
            }
        }
        self.unsynced_bytes = 0;
        self.shared.notify_all();
    }

    /// Seals the active segment and starts the one beginning at `first_seq`.
    fn roll(&mut self, first_seq: u64) -> io::Result<()> {
        if !self.unsynced.is_empty() {
            self.sync()?;
            self.publish();
        }
        let dir = self.shared.dir.clone();
        let path = dir.join(segment::segment_file_name(first_seq));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        file.write_all_at(&format::encode_segment_header(first_seq), 0)?;
        if self.policy() != FsyncPolicy::Never {
            file.sync_all()?;
            segment::fsync_dir(&dir)?;
        }
        let old = std::mem::replace(
            &mut self.active,
            ActiveSegment {
                first_seq,
                path: path.clone(),
                file,
                len: format::SEGMENT_HEADER_LEN as u64,
            },
        );
        let snapshot = {
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
            format::encode_snapshot(
                first_seq,
                st.checkpoints
                    .iter()
                    .map(|(k, v)| (k.as_str(), &v[..]))
                    .collect::<Vec<_>>()
                    .into_iter(),
            )
        };
        match segment::write_atomic(&dir, "checkpoints.snap", &snapshot) {
            Ok(()) => {
                self.shared.lock().snapshot_covers_below = first_seq;
                self.shared.trim();
            }
            Err(e) => tracing::warn!(
                dir = %dir.display(),
                error = %e,
                "cannot write the journal checkpoint snapshot; segments are kept until it succeeds"
            ),
        }
        Ok(())
    }
}
