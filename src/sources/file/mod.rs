//! The `file` source: `tail -F` done right. Tails the files matched by `include` globs into the
//! journal and survives every kind of rotation.
//!
//! Runs on its own thread (file I/O never touches the async reactor):
//! - [`discover`]: glob expansion (`include` minus `exclude`, compressed files never), rescanned on
//!   inotify create/rename/remove events and at least every second (every `poll_interval` when
//!   polling), so new files are found within 1 s; data events wake a read pass.
//! - [`identity`]: a file is recognised by a CRC-32C fingerprint of its first `fingerprint_bytes`,
//!   with device+inode as the hint. An open file is followed by inode (its inode cannot be reused
//!   while Quill holds it open), so a renamed file is followed and never re-read; a file found by
//!   name is matched by content to what Quill read before, so a new file reusing an old inode is
//!   not mistaken for it. **Short files**: a file shorter than `fingerprint_bytes` is read at once;
//!   its identity is the CRC of the bytes it has plus its inode, upgraded (atomically with the
//!   checkpoint) as it grows. A short identity is only trusted on the same inode; only a
//!   full-length fingerprint is trusted across inodes.
//! - [`reader`]: chunked `pread`s, `memchr` line splitting, zero-copy lines; LF lines, CRLF
//!   tolerated; partial last lines held until their newline or `partial_line_timeout`; over-long
//!   lines cut into flagged pieces. [`multiline`]: optional joining by a start pattern.
//! - [`checkpoint`]: every journal batch carries the file's checkpoint (keyed by fingerprint and
//!   inode, see there), so the resume point becomes durable atomically with the lines it covers:
//!   after a crash the source resumes exactly after the last durable line.
//!
//! Rotation:
//! - **rename + create** (logrotate `create`, `mv` + reopen, rotatelogs, svlogd): the renamed file
//!   stays open and is read to its end; it is released once it left the globs (or its path leads
//!   to another file) and has not grown for `release_after`. The new file is read from its start.
//! - **copytruncate**: a size below the read offset, or first bytes that changed, mean the file
//!   was truncated: reading restarts at 0. Lines the writer appends between logrotate's copy and
//!   its truncate that Quill had not read yet are lost from the live file (logrotate's own race;
//!   counted as `copytruncate_lost_bytes`).
//!   Quill closes most of that window: if the copy (e.g. `app.log.1`) matches the globs, it has the
//!   truncated file's fingerprint and is read from the offset Quill had reached, so only lines
//!   written after the copy finished and before the truncate (microseconds to milliseconds) can
//!   be lost. While the original is not yet truncated (or truncated, but not yet seen so) the
//!   copy is skipped as a duplicate, then takes over the original's position. A
//!   partial last line held when the truncation is seen is journaled (flagged `NO_NEWLINE`), so if
//!   the copy is read afterwards the rest of that one line arrives as its own record.
//! - **same first bytes**: two files whose first `fingerprint_bytes` are identical are told apart
//!   by an offset marker (the CRC of the 64 bytes before a read offset, kept with the
//!   checkpoint): a file is a copy of a tracked one only if it also has the same bytes before the
//!   end of the shorter of the two, and it takes over a checkpointed identity only if it has the
//!   bytes that were before that checkpoint's offset. Otherwise it is another file, read from
//!   its start.
//! - **deleted while open**: drained to the end, then released; its checkpoint is forgotten.
//! - rotated `*.gz` / `*.zst` / `*.bz2` / `*.xz` (and `.lz4`, `.zip`) files are never matched by the
//!   globs. A file Quill had not read to its end that was rotated **and compressed** while Quill
//!   was down (logrotate `compress` without `delaycompress`) is found as `.gz`/`.zst`/`.bz2`/`.xz` next to
//!   where it was and read on from its checkpoint inside the decompressed data ([`compressed`]);
//!   while Quill runs, the renamed file stays open and is drained before compression matters.
//! - **after a restart**, a file renamed while Quill was down is found again by inode and
//!   fingerprint when it still matches the globs. When it no longer does (e.g. `include =
//!   ["app.log"]` and it is now `app.log.1`), Quill looks for it in the directory it had
//!   (same inode and matching first bytes, or a full-length fingerprint match) and drains it
//!   before releasing it. A file found nowhere (deleted or moved elsewhere) is lost for what was
//!   not read, and its checkpoint is forgotten.
//!
//! Memory: one read chunk (256 KiB) per file being read plus the held partial line; the source
//! lets at most 16 MiB of appended data wait for the journal's group commit before it waits too.
//!
//! This module touches the files it tails, the journal's append side and its own checkpoints.

pub mod checkpoint;
pub mod compressed;
mod decide;
pub mod discover;
pub mod identity;
pub mod metrics;
pub mod multiline;
pub mod reader;
mod rotation;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::component::{ComponentError, SourceContext};
use crate::config::{FileSourceConfig, ReadFrom, WatchMode};
use crate::journal::{AppendBatch, Appender, Checkpoint, JournalError};
use crate::record::{Position, Record, RecordFlags, Timestamp};

use checkpoint::{Known, KnownFiles};
use decide::Decision;
use discover::{ChangeWatcher, Globs};
use identity::{FileKey, Fingerprint};
pub use metrics::{FileMetrics, FileSourceMetrics, ReleasedTotals};
use multiline::Joiner;
use reader::LineReader;

/// Bytes read per `pread`; each chunk's lines go to the journal as one batch.
const READ_CHUNK: usize = 256 * 1024;
/// At most this much is read from one file per pass, so many busy files are served fairly.
const MAX_READ_PER_PASS: u64 = 16 << 20;
/// Glob rescans happen at least this often (new files are found within 1 s).
const MAX_RESCAN_INTERVAL: Duration = Duration::from_secs(1);
/// Rescans triggered by events are at most this frequent.
const MIN_RESCAN_INTERVAL: Duration = Duration::from_millis(50);
/// A new file shorter than the fingerprint is read once it has not grown for this long...
const SHORT_FILE_SETTLE: Duration = Duration::from_millis(250);
/// ...or was found this long ago, whichever comes first (or once it reaches the fingerprint length).
const SHORT_FILE_MAX_WAIT: Duration = Duration::from_secs(1);
/// Appended bytes the source lets wait for durability before it waits for the group commit.
const MAX_UNDURABLE_BYTES: u64 = 16 << 20;
/// How often per-file metrics are published.
const METRICS_EVERY: Duration = Duration::from_millis(250);

/// A started file source: its thread and its per-file metrics.
pub type Started = (
    JoinHandle<Result<(), ComponentError>>,
    std::sync::Arc<FileSourceMetrics>,
);

/// Starts the source thread; returns it with the source's per-file metrics.
pub fn spawn(config: FileSourceConfig, ctx: SourceContext) -> Result<Started, ComponentError> {
    let name = ctx.name.clone();
    let mut tailer = Tailer::new(config, ctx).map_err(ComponentError::Setting)?;
    let metrics = tailer.metrics.clone();
    let handle = std::thread::Builder::new()
        .name(format!("file-{name}"))
        .spawn(move || {
            tailer.run().map_err(|e| match e {
                TailError::Journal(e) => ComponentError::Journal(e),
                TailError::Io(e) => ComponentError::io(format!("file source `{name}`"), e),
            })
        })
        .map_err(ComponentError::Thread)?;
    Ok((handle, metrics))
}

/// Why reading stopped: a file's I/O error stops that file only; a journal error stops the source.
#[derive(Debug, thiserror::Error)]
enum TailError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// One file being read.
struct Tracked {
    key: FileKey,
    path: PathBuf,
    file: File,
    fingerprint: Fingerprint,
    reader: LineReader,
    joiner: Option<Joiner>,
    /// Offset just past the last journaled record.
    committed: u64,
    /// The offset marker at `committed` (stored with the checkpoint).
    marker: Option<Fingerprint>,
    size: u64,
    last_growth: Instant,
    /// Matched the globs on the last rescan.
    seen: bool,
    /// Rotated away (left the globs, replaced by another file, or deleted): drain, then release.
    draining: bool,
    /// Checkpoint keys this file had before its identity was upgraded, to forget in the next batch.
    stale_keys: Vec<String>,
    /// A new file shorter than the fingerprint: when it was found. Nothing is read until it
    /// reaches the fingerprint length (then its identity is decided again: it may be a copy
    /// being written, e.g. by copytruncate), stops growing for [`SHORT_FILE_SETTLE`], or was
    /// found [`SHORT_FILE_MAX_WAIT`] ago.
    undecided_since: Option<Instant>,
    /// Stop tracking this file (it turned out to duplicate a tracked one).
    untrack: bool,
    metrics: FileMetrics,
}

impl Tracked {
    /// This file's identity and how far it is journaled, to remember once it is released.
    fn known(&self) -> Known {
        Known {
            fingerprint: self.fingerprint,
            key: self.key,
            offset: self.committed,
            marker: self.marker,
            path: self.path.clone(),
        }
    }
}

struct Tailer {
    ctx: SourceContext,
    appender: Appender,
    prefix: String,
    config: FileSourceConfig,
    max_line: usize,
    fingerprint_bytes: u32,
    pattern: Option<crate::config::StartPattern>,
    globs: Globs,
    files: HashMap<FileKey, Tracked>,
    /// Identities read before and not tracked now (from checkpoints, truncations, releases).
    known: KnownFiles,
    /// Files skipped because their content duplicates a tracked file (size, mtime when skipped).
    skipped: HashMap<FileKey, (u64, Option<std::time::SystemTime>)>,
    first_scan: bool,
    /// A truncation was seen: rescan soon (its copy may now be adoptable).
    rescan_requested: bool,
    /// Truncations that lost bytes, settled at the next rescan.
    truncations: Vec<rotation::TruncationLoss>,
    /// Appended batches not known durable yet: (last seq, bytes).
    undurable: std::collections::VecDeque<(u64, u64)>,
    undurable_bytes: u64,
    head: Vec<u8>,
    /// Scratch for offset markers.
    marker_buf: Vec<u8>,
    metrics: std::sync::Arc<FileSourceMetrics>,
}

impl Tailer {
    fn new(config: FileSourceConfig, ctx: SourceContext) -> Result<Tailer, String> {
        let globs = Globs::new(&config.include, &config.exclude)?.with_symlinks(
            discover::SymlinkPolicy::new(config.follow_symlinks, &config.symlink_roots),
        );
        let pattern = config.multiline_start.clone();
        let fingerprint_bytes = u32::try_from(
            config
                .fingerprint_bytes
                .0
                .clamp(1, crate::config::MAX_FINGERPRINT_BYTES),
        )
        .unwrap_or(256);
        let prefix = format!("file/{}/", ctx.name);
        let known = KnownFiles::load(&prefix, &ctx.journal.checkpoints_with_prefix(&prefix));
        Ok(Tailer {
            appender: ctx.journal.appender(),
            prefix,
            max_line: config.max_line_bytes.as_usize().max(1),
            fingerprint_bytes,
            pattern,
            config,
            globs,
            files: HashMap::new(),
            known,
            skipped: HashMap::new(),
            first_scan: true,
            rescan_requested: false,
            truncations: Vec::new(),
            undurable: std::collections::VecDeque::new(),
            undurable_bytes: 0,
            head: Vec::new(),
            marker_buf: Vec::new(),
            metrics: Default::default(),
            ctx,
        })
    }

    fn run(&mut self) -> Result<(), TailError> {
        let poll = self.config.poll_interval.0.max(Duration::from_millis(10));
        let mut watcher = ChangeWatcher::new(
            &self.globs,
            self.config.watch == WatchMode::Notify,
            &self.ctx.name,
        );
        let rescan_every = if watcher.is_active() {
            MAX_RESCAN_INTERVAL
        } else {
            poll.min(MAX_RESCAN_INTERVAL)
        };
        self.rescan()?;
        self.adopt_orphans()?;
        let mut last_scan = Instant::now();
        let mut last_metrics = Instant::now() - METRICS_EVERY;
        let mut wake = watcher.take();
        loop {
            if self.ctx.shutdown.is_triggered() {
                self.publish_metrics();
                self.log_totals();
                return Ok(());
            }
            let since_scan = last_scan.elapsed();
            if since_scan >= rescan_every || (wake.rescan && since_scan >= MIN_RESCAN_INTERVAL) {
                watcher.add_missing_watches();
                self.rescan()?;
                last_scan = Instant::now();
                wake.rescan = false;
            }
            let progressed = self.read_pass()?;
            wake.rescan |= std::mem::take(&mut self.rescan_requested);
            self.release_finished()?;
            if last_metrics.elapsed() >= METRICS_EVERY {
                self.publish_metrics();
                last_metrics = Instant::now();
            }
            if progressed {
                let w = watcher.take();
                wake.rescan |= w.rescan;
            } else {
                let timeout = if wake.rescan {
                    MIN_RESCAN_INTERVAL.saturating_sub(last_scan.elapsed())
                } else {
                    poll.min(rescan_every.saturating_sub(last_scan.elapsed()))
                };
                let w = watcher.wait(timeout.max(Duration::from_millis(1)));
                wake.rescan |= w.rescan;
            }
        }
    }

    /// Appends one batch. The source keeps at most [`MAX_UNDURABLE_BYTES`] appended but not yet
    /// durable: beyond that it waits for the journal's group commit, so the journal's write
    /// queue (and the agent's memory) stays small however far behind the source is.
    fn append(
        &mut self,
        records: Vec<Record>,
        checkpoints: Vec<Checkpoint>,
    ) -> Result<(), TailError> {
        let count = records.len() as u64;
        let bytes: u64 = records.iter().map(|r| r.raw.len() as u64).sum();
        let receipt = self.appender.append_blocking(AppendBatch {
            records,
            checkpoints,
        })?;
        self.ctx.stats.add(count, bytes);
        if count > 0 {
            self.undurable.push_back((receipt.last_seq, bytes));
            self.undurable_bytes += bytes;
            while self.undurable_bytes > MAX_UNDURABLE_BYTES {
                let Some((seq, b)) = self.undurable.pop_front() else {
                    break;
                };
                self.undurable_bytes -= b;
                self.appender.wait_durable_blocking(seq)?;
            }
        }
        Ok(())
    }

    /// Expands the globs: marks tracked files seen, follows renames, starts new files.
    fn rescan(&mut self) -> Result<(), TailError> {
        for f in self.files.values_mut() {
            f.seen = false;
        }
        for (path, meta) in self.globs.expand() {
            let key = FileKey::of(&meta);
            if let Some(f) = self.files.get_mut(&key) {
                f.seen = true;
                if f.draining && meta.nlink() > 0 {
                    // Back under the globs (renamed back): no longer rotated away.
                    f.draining = false;
                    f.metrics.draining = false;
                }
                let alias = f.path != path
                    && std::fs::metadata(&f.path).is_ok_and(|m| FileKey::of(&m) == key);
                if f.path != path && !alias {
                    tracing::info!(source = %self.ctx.name, from = %f.path.display(), to = %path.display(), "File was renamed; following it.");
                    f.metrics.rotations += 1;
                    f.path = path.clone();
                    f.metrics.path = path;
                }
                continue;
            }
            if self.skipped.get(&key) == Some(&(meta.len(), meta.modified().ok())) {
                continue;
            }
            let started = self.start_file(&path, key, false);
            self.skip_unreadable(started, &path, "Cannot open file")?;
        }
        for f in self.files.values_mut() {
            if !f.seen && !f.draining {
                f.draining = true;
                f.metrics.rotations += 1;
                f.metrics.draining = true;
                tracing::info!(source = %self.ctx.name, path = %f.path.display(), "File rotated away; reading it to its end.");
            }
        }
        self.first_scan = false;
        self.settle_truncations();
        Ok(())
    }

    /// Opens a file found by name (or by the orphan search) and decides where to read from.
    fn start_file(&mut self, path: &Path, key: FileKey, orphan: bool) -> Result<(), TailError> {
        let file = File::open(path)?;
        self.start_opened(file, path, key, orphan)
    }

    /// [`Self::start_file`] for a file already open (`path` is the name it is known by).
    fn start_opened(
        &mut self,
        file: File,
        path: &Path,
        key: FileKey,
        orphan: bool,
    ) -> Result<(), TailError> {
        let meta = file.metadata()?;
        let key_now = FileKey::of(&meta);
        if key_now != key || self.files.contains_key(&key_now) {
            return Ok(()); // replaced between the listing and the open; the next rescan sees it
        }
        let size = meta.len();
        identity::read_head(&file, self.fingerprint_bytes, &mut self.head)?;
        let fp = Fingerprint::of(&self.head);
        let decision = if orphan {
            self.orphan_decision(key, fp, size, &file)
        } else {
            self.decide(key, fp, size, &file)
        };
        let (offset, adopted) = match decision {
            Decision::Skip => {
                self.ctx
                    .stats
                    .files_skipped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.skipped.insert(key, (size, meta.modified().ok()));
                return Ok(());
            }
            Decision::Read { offset, adopted } => (offset, adopted),
        };
        self.skipped.remove(&key);
        let marker = identity::marker(&file, offset, &mut self.marker_buf)?;
        let mut tracked = Tracked {
            key,
            path: path.to_path_buf(),
            file,
            fingerprint: fp,
            reader: LineReader::new(offset, self.max_line, READ_CHUNK),
            joiner: self.pattern.clone().map(|p| Joiner::new(p, self.max_line)),
            committed: offset,
            marker,
            size,
            last_growth: Instant::now(),
            seen: !orphan,
            draining: orphan,
            stale_keys: Vec::new(),
            undecided_since: None,
            untrack: false,
            metrics: FileMetrics {
                path: path.to_path_buf(),
                size,
                offset,
                draining: orphan,
                ..FileMetrics::default()
            },
        };
        if adopted.is_none() && offset == 0 && !fp.is_full(self.fingerprint_bytes) {
            tracked.undecided_since = Some(Instant::now());
        }
        if let Some(old) = adopted {
            let old_key = checkpoint::key(&self.prefix, old.fingerprint, old.key);
            let new_key = checkpoint::key(&self.prefix, fp, key);
            if old_key != new_key {
                // Move the identity atomically: the new key with the offset, the old one forgotten.
                let cps = vec![
                    Checkpoint {
                        key: new_key,
                        value: checkpoint::value(offset, marker, path),
                    },
                    checkpoint::tombstone(&self.prefix, old.fingerprint, old.key),
                ];
                self.append(Vec::new(), cps)?;
            }
            if old.key != key || old.path != path {
                tracked.metrics.rotations += 1;
            }
            tracing::info!(source = %self.ctx.name, path = %path.display(), offset, was = %old.path.display(), "Resuming file.");
        } else {
            tracing::info!(source = %self.ctx.name, path = %path.display(), offset, "Tailing file.");
        }
        self.files.insert(key, tracked);
        Ok(())
    }

    /// A file that could not be started (`what` it was: "Cannot open file") is skipped with a
    /// warning; a journal error stops the source.
    fn skip_unreadable(
        &self,
        started: Result<(), TailError>,
        path: &Path,
        what: &str,
    ) -> Result<(), TailError> {
        match started {
            Err(TailError::Io(e)) => {
                tracing::warn!(source = %self.ctx.name, path = %path.display(), "{what}: {e}.");
                Ok(())
            }
            other => other,
        }
    }

    /// Reads what every tracked file has beyond its offset. Returns whether anything was read.
    fn read_pass(&mut self) -> Result<bool, TailError> {
        let keys: Vec<FileKey> = self.files.keys().copied().collect();
        let mut progressed = false;
        for key in keys {
            if self.ctx.shutdown.is_triggered() {
                break;
            }
            match self.service(key) {
                Ok(p) => progressed |= p,
                Err(TailError::Journal(e)) => return Err(e.into()),
                Err(TailError::Io(e)) => {
                    if let Some(f) = self.files.remove(&key) {
                        tracing::warn!(source = %self.ctx.name, path = %f.path.display(), "Stopped reading file: {e}.");
                        // If the globs find it again, it resumes where it stopped.
                        self.known.insert(f.known());
                    }
                }
            }
        }
        Ok(progressed)
    }

    fn service(&mut self, key: FileKey) -> Result<bool, TailError> {
        let Some(mut f) = self.files.remove(&key) else {
            return Ok(false);
        };
        let result = self.service_file(&mut f);
        if f.untrack {
            self.skipped.insert(
                key,
                (
                    f.size,
                    f.file.metadata().ok().and_then(|m| m.modified().ok()),
                ),
            );
        } else {
            // Also on error: the caller decides (an I/O error stops this file only).
            self.files.insert(key, f);
        }
        result
    }

    fn service_file(&mut self, f: &mut Tracked) -> Result<bool, TailError> {
        let meta = f.file.metadata()?;
        let size = meta.len();
        let seen_size = f.size.max(f.reader.read_to());
        if meta.nlink() == 0 && !f.draining {
            f.draining = true;
            f.metrics.draining = true;
            f.metrics.rotations += 1;
            tracing::info!(source = %self.ctx.name, path = %f.path.display(), "File was deleted; reading it to its end.");
        }
        let grew = size != f.size;
        if let Some(found) = f.undecided_since {
            if grew {
                f.last_growth = Instant::now();
            }
            f.size = size;
            f.metrics.size = size;
            if size >= u64::from(self.fingerprint_bytes) {
                f.undecided_since = None;
                if !self.redecide(f)? {
                    return Ok(false);
                }
            } else if f.last_growth.elapsed() >= SHORT_FILE_SETTLE
                || found.elapsed() >= SHORT_FILE_MAX_WAIT
            {
                f.undecided_since = None;
                f.fingerprint =
                    identity::fingerprint(&f.file, self.fingerprint_bytes, &mut self.head)?;
            } else {
                return Ok(false);
            }
        }
        let truncated = size < f.reader.read_to()
            || (grew
                && f.fingerprint.is_full(self.fingerprint_bytes)
                && !self.head_unchanged(f)?);
        f.size = size;
        f.metrics.size = size;
        if truncated {
            self.on_truncated(f, seen_size)?;
        }
        if !f.fingerprint.is_full(self.fingerprint_bytes) && size > u64::from(f.fingerprint.len) {
            let fp = identity::fingerprint(&f.file, self.fingerprint_bytes, &mut self.head)?;
            if fp != f.fingerprint {
                f.stale_keys
                    .push(checkpoint::key(&self.prefix, f.fingerprint, f.key));
                f.fingerprint = fp;
            }
        }
        let mut progressed = false;
        let mut budget = MAX_READ_PER_PASS;
        let mut at_eof = false;
        while budget > 0 {
            if budget < MAX_READ_PER_PASS && self.truncated_while_reading(f)? {
                break; // the next pass handles it
            }
            let want = size.saturating_sub(f.reader.read_to());
            if want == 0 {
                at_eof = true;
                break;
            }
            let n = f.reader.fill(&f.file, want)?;
            if n == 0 {
                at_eof = true;
                break;
            }
            budget = budget.saturating_sub(n as u64);
            progressed = true;
            f.last_growth = Instant::now();
            f.metrics.bytes_read += n as u64;
            let mut records = Vec::with_capacity(n / 64 + 1);
            let mut emit = self.emitter(f.fingerprint, &mut records);
            match f.joiner.as_mut() {
                Some(j) => f.reader.split(&mut |l, e, fl| j.push(l, e, fl, &mut emit)),
                None => f.reader.split(&mut emit),
            }
            drop(emit);
            self.commit(f, records)?;
        }
        if at_eof {
            f.reader.compact();
            self.flush_timeouts(f)?;
        }
        Ok(progressed)
    }

    /// Journals a partial line or joined record that waited longer than `partial_line_timeout`.
    fn flush_timeouts(&mut self, f: &mut Tracked) -> Result<(), TailError> {
        let timeout = self.config.partial_line_timeout.0;
        let partial_due = f.reader.partial_len() > 0 && f.last_growth.elapsed() >= timeout;
        let joined_due = f
            .joiner
            .as_ref()
            .and_then(Joiner::pending_since)
            .is_some_and(|t| t.elapsed() >= timeout);
        if partial_due || joined_due {
            self.flush_held(f)?;
        }
        Ok(())
    }

    /// Journals everything held for `f`: the pending joined record and the partial line.
    fn flush_held(&mut self, f: &mut Tracked) -> Result<(), TailError> {
        let mut records = Vec::new();
        let mut emit = self.emitter(f.fingerprint, &mut records);
        if let Some(j) = f.joiner.as_mut() {
            j.flush(&mut emit);
        }
        f.reader.take_partial(&mut emit);
        drop(emit);
        self.commit(f, records)?;
        Ok(())
    }

    fn emitter<'a>(
        &self,
        fp: Fingerprint,
        records: &'a mut Vec<Record>,
    ) -> impl FnMut(Bytes, u64, RecordFlags) + use<'a> {
        let origin = self.ctx.origin.clone();
        let now = Timestamp::now();
        let file_id = fp.file_id();
        move |raw, end_offset, flags| {
            records.push(Record {
                origin: origin.clone(),
                received_at: now,
                position: Position::File {
                    file_id,
                    end_offset,
                },
                flags,
                raw,
            })
        }
    }

    /// Appends `records` with `f`'s checkpoint.
    fn commit(&mut self, f: &mut Tracked, records: Vec<Record>) -> Result<(), TailError> {
        if records.is_empty() {
            return Ok(());
        }
        if let Some(Record {
            position: Position::File { end_offset, .. },
            ..
        }) = records.last()
        {
            f.committed = *end_offset;
            f.marker = identity::marker(&f.file, f.committed, &mut self.marker_buf)?;
        }
        f.metrics.lines += records.len() as u64;
        f.metrics.offset = f.committed;
        let mut cps = Vec::with_capacity(1 + f.stale_keys.len());
        cps.push(Checkpoint {
            key: checkpoint::key(&self.prefix, f.fingerprint, f.key),
            value: checkpoint::value(f.committed, f.marker, &f.path),
        });
        for k in f.stale_keys.drain(..) {
            cps.push(Checkpoint {
                key: k,
                value: Bytes::new(),
            });
        }
        self.append(records, cps)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
