//! The `file` sink: every record as one GELF JSON line in `<path>/<category>/<category>_NNNNN.gelf`,
//! a category's file rotated to the next number when it would grow past `max_size`.
//!
//! Records are parsed and encoded in parallel (`encode_pool::EncodePool`, `workers` threads) and
//! written in journal order, a run of consecutive lines of one category in one `write`.
//!
//! Exactly once across crashes: the sink makes what it wrote durable under its `fsync` policy
//! ([`OutputFsync`]: after every batch, once per `fsync_interval` for all files together, or never),
//! then acknowledges it with a sink state listing, per category, the current file number and its
//! length. On start it truncates each category's current file back to that length and removes
//! files numbered after it, so what was written but not acknowledged before a crash is written
//! again exactly once. A file is registered in the sink state before its first byte is written.
//!
//! With `[bytes]` configured, records pass through the byte join ([`JoinStage`]) on their way:
//! HAProxy entries get `_bytes_sent`, and records are still written in journal order. The
//! acknowledgement then stays below the join's replay floor (an entry still held, or the partner
//! of one): it names an earlier batch's state, so after a crash the files are cut back to it and
//! the held entries meet their partners again in the replay. Categories first written after the
//! acknowledged state are registered in it with length 0, so a crash removes their files too.
//!
//! Records its route ([`super::route`]) does not take are not written; the state after them is
//! the state before, acknowledged like a written batch. Stopped on its own (`ctx.shutdown`: a
//! reload removed or changed it), the sink finishes its batch, acknowledges what it may and
//! returns; entries the byte join still holds are read again by the next start.
//!
//! A category that is not a safe file name (see [`crate::config::is_safe_category`]) is never
//! turned into a path: such records go to the `_invalid_category` directory, with a warning.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::encode_pool::{EncodePool, EncodedChunk};
use crate::accounting::stream::{JoinStage, Joined};
use crate::component::{ComponentError, Shutdown, SinkContext};
use crate::config::{Compression, FileSinkConfig, OutputFsync, default_workers, is_safe_category};
use crate::journal::Cursor;
use crate::pagecache::Release;
use crate::parsers::ParserRegistry;
use crate::sinks::join::{self, Reading};
use crate::sinks::route::Route;
use crate::telemetry::SinkStats;

/// Records read from the journal per batch at most.
const BATCH: usize = 4096;
/// Longest wait for journal records (the sink checks for a due commit at least this often).
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// Where records with an unsafe category go.
const INVALID_CATEGORY: &str = "_invalid_category";
/// zstd level of compressed output (`compress = "zstd"`): the fastest regular level; GELF
/// lines still shrink about tenfold.
const ZSTD_LEVEL: i32 = 1;
/// A compression buffer that grew past this (a huge run) is not kept.
const KEEP_ZBUF_BYTES: usize = 16 << 20;
/// Bytes [`Output::buffer`] gathers into one write.
const WRITE_BYTES: usize = 256 << 10;

/// One category's output file (also the raw store's, [`super::scribe_store`]).
pub(super) struct Output {
    /// Its number: `<category>_<index>`.
    pub(super) index: u32,
    pub(super) len: u64,
    pub(super) file: File,
    /// Written since its last `fdatasync`.
    pub(super) dirty: bool,
    /// When it was started (the raw store rotates by age).
    pub(super) opened: Instant,
    /// Written bytes not yet handed to the file ([`Output::buffer`]).
    pending: Vec<u8>,
    /// What was written leaves the page cache once on disk.
    release: Release,
}

impl Output {
    /// A file the sink writes from `len` on.
    pub(super) fn new(index: u32, len: u64, file: File) -> Output {
        Output {
            index,
            len,
            file,
            dirty: false,
            opened: Instant::now(),
            pending: Vec::new(),
            release: Release::new(len),
        }
    }

    /// Appends `data` to the file in one write (after what [`Output::buffer`] holds).
    pub(super) fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.flush()?;
        self.file.write_all(data)?;
        self.len += data.len() as u64;
        self.dirty = true;
        self.release.written(&self.file, self.len)
    }

    /// Appends `data`, gathered with what follows into writes of about [`WRITE_BYTES`];
    /// [`sync_dirty`] (and [`Output::write`]) write out what is gathered.
    pub(super) fn buffer(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.pending.extend_from_slice(data);
        self.len += data.len() as u64;
        self.dirty = true;
        if self.pending.len() >= WRITE_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes what [`Output::buffer`] gathered.
    fn flush(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.pending)?;
        self.pending.clear();
        self.release.written(&self.file, self.len)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.release.finish(&self.file);
    }
}

/// Writes out what every output gathered and `fdatasync`s every output written since its last
/// one (`sync`), or only writes out (`!sync`: the `never` policy).
pub(super) fn sync_dirty(
    outputs: &mut BTreeMap<String, Output>,
    sync: bool,
) -> std::io::Result<()> {
    for out in outputs.values_mut() {
        out.flush()?;
        if out.dirty && sync {
            out.file.sync_data()?;
            out.dirty = false;
        }
    }
    Ok(())
}

/// When a file-writing sink (this one, the raw store) makes what it wrote durable and
/// acknowledges it: its `fsync` policy and interval (the journal's when not set) and its last
/// commit.
pub(super) struct CommitClock {
    fsync: OutputFsync,
    interval: Duration,
    last: Instant,
}

impl CommitClock {
    pub(super) fn new(config: &FileSinkConfig, cursor: &Cursor) -> CommitClock {
        let (journal_fsync, journal_interval) = cursor.journal_fsync();
        CommitClock {
            fsync: config
                .fsync
                .unwrap_or_else(|| OutputFsync::following(journal_fsync)),
            interval: config.fsync_interval.map_or(journal_interval, |i| i.0),
            last: Instant::now(),
        }
    }

    /// Whether a commit fdatasyncs (every policy but `never`).
    pub(super) fn syncs(&self) -> bool {
        self.fsync != OutputFsync::Never
    }

    /// A commit is due: after every batch (`batch`), once the interval passed since the last
    /// one (`interval`, `never`), or when `force`d.
    pub(super) fn due(&self, force: bool) -> bool {
        force || self.fsync == OutputFsync::Batch || self.last.elapsed() >= self.interval
    }

    /// Notes a commit made now.
    pub(super) fn committed(&mut self) {
        self.last = Instant::now();
    }

    /// How long to wait for journal records: `idle` with nothing waiting for a commit, else
    /// until the next commit is due (at least 1 ms, at most `idle`).
    pub(super) fn wait(&self, waiting: bool, idle: Duration) -> Duration {
        if !waiting {
            return idle;
        }
        (self.last + self.interval)
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), idle)
    }
}

/// Starts the sink thread.
pub fn spawn(
    config: FileSinkConfig,
    ctx: SinkContext,
) -> Result<JoinHandle<Result<(), ComponentError>>, ComponentError> {
    std::fs::create_dir_all(&config.path)
        .map_err(|e| ComponentError::io(format!("cannot create {}", config.path.display()), e))?;
    let name = ctx.name.clone();
    let path = config.path.clone();
    let route = Route::new(&config.route);
    let io_error = move |e| ComponentError::io(format!("output {}", path.display()), e);
    let mut sink =
        FileSink::open(config, ctx.cursor, ctx.stats, ctx.parsers.clone()).map_err(&io_error)?;
    sink.join = ctx.join.as_ref().map(|j| JoinStage::new(j, ctx.parsers));
    sink.route = route;
    sink.shutdown = Some(ctx.shutdown);
    std::thread::Builder::new()
        .name(format!("sink-{name}"))
        .spawn(move || sink.run().map_err(io_error))
        .map_err(ComponentError::Thread)
}

pub struct FileSink {
    root: PathBuf,
    max_size: u64,
    cursor: Cursor,
    stats: Arc<SinkStats>,
    outputs: BTreeMap<String, Output>,
    /// Parses and encodes batches on `workers` threads.
    pool: EncodePool,
    /// When written states become durable (are committed).
    clock: CommitClock,
    /// States after each written batch not yet durable under `fsync`, oldest first.
    pending: Vec<(u64, FileStates)>,
    /// The byte join, when configured.
    join: Option<JoinStage>,
    /// Records the join released, to be written.
    ready: Vec<Joined>,
    /// Durable states after each written batch, oldest first, not yet acknowledged: (last seq
    /// written, category → (file number, length)).
    snapshots: VecDeque<(u64, FileStates)>,
    /// The state last acknowledged.
    acked_state: FileStates,
    /// The first file number of every category this process started.
    started_at: BTreeMap<String, u32>,
    /// Which records this sink takes.
    route: Route,
    /// Stops the sink on its own (without the journal closing).
    shutdown: Option<Shutdown>,
    /// Output file name extension: `gelf`, or `gelf.zst` with `compress = "zstd"`.
    ext: &'static str,
    /// With `compress = "zstd"`: the frame of the last write the encode workers had not
    /// compressed (reused).
    zbuf: Vec<u8>,
}

/// A batch encoded and not yet written: its records and their lines, and the last record read
/// with it when records after the last one written were not taken (see [`FileSink::run`]).
struct EncodedBatch {
    lines: Option<(Vec<Joined>, Vec<EncodedChunk>)>,
    skipped_after: Option<u64>,
}

/// Category → (file number, length).
pub(super) type FileStates = BTreeMap<String, (u32, u64)>;

fn file_path(root: &Path, category: &str, index: u32, ext: &str) -> PathBuf {
    root.join(category)
        .join(format!("{category}_{index:05}.{ext}"))
}

/// Sink state: one `category index length` line per category (also the raw store's, see
/// [`super::scribe_store`]).
pub(super) fn encode_state(states: &FileStates) -> Bytes {
    let mut s = String::new();
    for (cat, (index, len)) in states {
        s.push_str(&format!("{cat} {index} {len}\n"));
    }
    Bytes::from(s)
}

pub(super) fn file_states(outputs: &BTreeMap<String, Output>) -> FileStates {
    outputs
        .iter()
        .map(|(cat, o)| (cat.clone(), (o.index, o.len)))
        .collect()
}

/// Reads [`encode_state`]'s text back, dropping lines that are malformed or name an unsafe
/// category.
pub(super) fn decode_state(state: &[u8]) -> FileStates {
    String::from_utf8_lossy(state)
        .lines()
        .filter_map(|l| {
            let mut it = l.split(' ');
            let cat = it.next()?;
            let index = it.next()?.parse().ok()?;
            let len = it.next()?.parse().ok()?;
            is_safe_category(cat).then(|| (cat.to_string(), (index, len)))
        })
        .collect()
}

/// The files' state at the sink's last acknowledgement (empty for a new sink).
pub(super) fn acknowledged_states(cursor: &Cursor) -> FileStates {
    cursor
        .sink_state()
        .map(|b| decode_state(b))
        .unwrap_or_default()
}

/// Opens an output file for appending, cut back to the `len` it had at the last
/// acknowledgement (what was written after it is written again).
pub(super) fn reopen_acknowledged(path: &Path, len: u64) -> std::io::Result<File> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    if file.metadata()?.len() != len {
        file.set_len(len)?;
        file.sync_data()?;
    }
    Ok(file)
}

/// Highest `NNNNN` among `<category>_NNNNN.<ext>` files in `dir`.
fn highest_index(dir: &Path, category: &str, ext: &str) -> Option<u32> {
    let suffix = format!(".{ext}");
    let prefix = format!("{category}_");
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix(&prefix)?
                .strip_suffix(suffix.as_str())?
                .parse::<u32>()
                .ok()
        })
        .max()
}

impl FileSink {
    /// Opens the sink and rolls its output back to the last acknowledged state.
    pub fn open(
        config: FileSinkConfig,
        cursor: Cursor,
        stats: Arc<SinkStats>,
        parsers: Arc<ParserRegistry>,
    ) -> std::io::Result<FileSink> {
        let root = config.path.clone();
        let (ext, zstd) = match config.compress {
            Compression::Zstd => ("gelf.zst", true),
            // Refused by the config check for GELF output.
            Compression::None | Compression::Gzip => ("gelf", false),
        };
        let mut outputs = BTreeMap::new();
        let state = acknowledged_states(&cursor);
        for (category, (index, len)) in state {
            let dir = root.join(&category);
            std::fs::create_dir_all(&dir)?;
            // Files numbered after the acknowledged one were started after the last ack.
            if let Some(high) = highest_index(&dir, &category, ext) {
                for i in (index + 1)..=high {
                    let _ = std::fs::remove_file(file_path(&root, &category, i, ext));
                }
            }
            let path = file_path(&root, &category, index, ext);
            let file = reopen_acknowledged(&path, len)?;
            outputs.insert(category, Output::new(index, len, file));
        }
        let acked_state = file_states(&outputs);
        let workers = config.workers.unwrap_or_else(default_workers);
        Ok(FileSink {
            root,
            max_size: config.max_size.as_u64(),
            pool: if zstd {
                EncodePool::compressing(cursor.name(), workers, parsers, ZSTD_LEVEL)?
            } else {
                EncodePool::new(cursor.name(), workers, parsers)?
            },
            clock: CommitClock::new(&config, &cursor),
            pending: Vec::new(),
            cursor,
            stats,
            outputs,
            join: None,
            ready: Vec::new(),
            snapshots: VecDeque::new(),
            acked_state,
            started_at: BTreeMap::new(),
            route: Route::default(),
            shutdown: None,
            ext,
            zbuf: Vec::new(),
        })
    }

    /// Writes batches until the journal is closed and drained, or the sink's shutdown fires.
    ///
    /// While the journal holds more than a batch, a batch's lines are written after the next
    /// batch was read and handed to the encoders, so that writing one overlaps encoding the
    /// next; writes stay in journal order. Not with the byte join: what it releases while a
    /// batch waits could be acknowledged before it is written.
    pub fn run(&mut self) -> std::io::Result<()> {
        let mut encoded: Option<EncodedBatch> = None;
        loop {
            // Stopped on its own; once the journal is closed a sink drains it instead.
            let stopping = self.shutdown.as_ref().is_some_and(Shutdown::is_triggered)
                && !self.cursor.journal_closed();
            let wait = if encoded.is_some() {
                Duration::ZERO
            } else {
                self.wait()
            };
            let batch = self
                .cursor
                .next_batch_blocking(BATCH, wait)
                .map_err(std::io::Error::other)?;
            let drained = batch.is_empty() && self.cursor.is_drained();
            let caught_up = batch.len() < BATCH;
            let read_through = batch.last().map(|e| e.seq);
            let mut ready = std::mem::take(&mut self.ready);
            let reading = Reading { caught_up, drained };
            join::release(
                batch,
                &self.route,
                self.join.as_mut(),
                reading,
                &self.stats,
                &mut ready,
            );
            let written_through = ready.last().map(|j| j.entry.seq);
            // Records read after the last one written were not taken: done for this sink (once
            // the join holds nothing older, so the state is the one after them).
            let skipped_after = read_through.filter(|&seq| {
                written_through.is_none_or(|w| w < seq) && join::holds_nothing(self.join.as_ref())
            });
            let flight = if ready.is_empty() {
                self.ready = ready;
                None
            } else {
                Some(self.pool.start(ready))
            };
            if let Some(previous) = encoded.take() {
                self.write_encoded(previous)?;
            }
            let this = EncodedBatch {
                lines: flight.map(|f| self.pool.finish(f)),
                skipped_after,
            };
            if caught_up || drained || stopping || self.join.is_some() {
                self.write_encoded(this)?;
            } else {
                encoded = Some(this);
            }
            self.commit_if_due(drained || stopping)?;
            if drained || stopping {
                return Ok(());
            }
        }
    }

    /// Writes an encoded batch and records the states to acknowledge with the next commit.
    fn write_encoded(&mut self, encoded: EncodedBatch) -> std::io::Result<()> {
        if let Some((mut batch, chunks)) = encoded.lines {
            let result = self.write_chunks(&batch, &chunks);
            self.pool.recycle(chunks);
            result?;
            let last = batch.last().map_or(0, |j| j.entry.seq);
            self.pending.push((last, file_states(&self.outputs)));
            batch.clear();
            self.ready = batch;
        }
        if let Some(seq) = encoded.skipped_after {
            self.pending.push((seq, file_states(&self.outputs)));
        }
        Ok(())
    }

    /// How long to wait for records: until the next commit is due when written data waits for it.
    fn wait(&self) -> Duration {
        self.clock.wait(!self.pending.is_empty(), IDLE_WAIT)
    }

    /// Encodes `batch` in parallel and writes it in order; hands the batch back.
    #[cfg(test)]
    fn write_batch(&mut self, batch: Vec<Joined>) -> std::io::Result<Vec<Joined>> {
        let flight = self.pool.start(batch);
        let (batch, chunks) = self.pool.finish(flight);
        let result = self.write_chunks(&batch, &chunks);
        self.pool.recycle(chunks);
        result?;
        let last = batch.last().map_or(0, |j| j.entry.seq);
        self.pending.push((last, file_states(&self.outputs)));
        Ok(batch)
    }

    /// Writes the encoded lines of `batch`, each run of consecutive lines of one category (within
    /// a chunk) in one write.
    fn write_chunks(&mut self, batch: &[Joined], chunks: &[EncodedChunk]) -> std::io::Result<()> {
        let mut bytes = 0u64;
        for chunk in chunks {
            // The pending run: (category, start, end) in `chunk.buf`.
            let mut run: Option<(&str, usize, usize)> = None;
            for (i, Joined { entry, .. }) in
                batch[chunk.first..][..chunk.ends.len()].iter().enumerate()
            {
                let record = &entry.record;
                let category: &str = if is_safe_category(&record.origin.category) {
                    &record.origin.category
                } else {
                    tracing::warn!(category = ?record.origin.category, "Record with an unsafe category written to {INVALID_CATEGORY}.");
                    INVALID_CATEGORY
                };
                let range = chunk.line_range(i);
                let line_len = range.len() as u64;
                bytes += line_len;
                // Bytes of the pending run of this category, not yet written.
                let pending = match run {
                    Some((c, start, end)) if c == category => Some((end - start) as u64),
                    _ => None,
                };
                if pending.is_none_or(|p| self.needs_file(category, p, line_len)) {
                    if let Some((c, start, end)) = run.take() {
                        self.write_run(c, chunk, start, end)?;
                    }
                    if self.needs_file(category, 0, line_len) {
                        self.output_for(category, entry.seq - 1)?;
                    }
                    run = Some((category, range.start, range.start));
                }
                if let Some((_, _, end)) = run.as_mut() {
                    *end = range.end;
                }
            }
            if let Some((c, start, end)) = run {
                self.write_run(c, chunk, start, end)?;
            }
        }
        self.stats
            .records
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Writes the run `chunk.buf[start..end]` of lines to `category`'s file in one write: as
    /// they are, or as one complete zstd frame (so every acknowledged length is a frame
    /// boundary): the one the encode workers made for exactly these lines, else compressed here
    /// (a run cut by a file rotation, or of categories the workers told apart).
    fn write_run(
        &mut self,
        category: &str,
        chunk: &EncodedChunk,
        start: usize,
        end: usize,
    ) -> std::io::Result<()> {
        let Some(out) = self.outputs.get_mut(category) else {
            return Ok(());
        };
        let data = match chunk.frame(start, end) {
            Some(frame) => frame,
            None => self
                .pool
                .frame_into(&chunk.buf[start..end], &mut self.zbuf)?,
        };
        out.write(data)?;
        if self.zbuf.capacity() > KEEP_ZBUF_BYTES {
            self.zbuf = Vec::new();
        }
        Ok(())
    }

    /// True when `category` has no open file, or no room in it for `incoming` bytes after the
    /// `pending` bytes of the run being gathered (a line larger than `max_size` gets a file of its
    /// own). Compressed output compares uncompressed bytes with the room left: files rotate early,
    /// never late.
    fn needs_file(&self, category: &str, pending: u64, incoming: u64) -> bool {
        !matches!(self.outputs.get(category),
            Some(o) if o.len + pending == 0 || o.len + pending + incoming <= self.max_size)
    }

    /// Makes what was written durable under the policy and acknowledges it when the policy says
    /// so now: after every batch (`batch`), once `fsync_interval` passed since the last commit
    /// (`interval`, `never`), or when `force`d.
    fn commit_if_due(&mut self, force: bool) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.clock.due(force) {
            self.commit()?;
            self.acknowledge(false)?;
        }
        Ok(())
    }

    /// Group commit: one fdatasync per file written since the last commit (none with `never`),
    /// after which every written state is durable and may be acknowledged.
    fn commit(&mut self) -> std::io::Result<()> {
        sync_dirty(&mut self.outputs, self.clock.syncs())?;
        self.snapshots.extend(self.pending.drain(..));
        self.clock.committed();
        Ok(())
    }

    /// Opens the next file of `category` (see [`FileSink::needs_file`]). Opening a file first
    /// commits everything written so far and acknowledges it up to `written_through`,
    /// registering the new file in the same acknowledgement.
    fn output_for(&mut self, category: &str, written_through: u64) -> std::io::Result<()> {
        let next_index = match self.outputs.get(category) {
            Some(o) => o.index + 1,
            None => {
                let dir = self.root.join(category);
                std::fs::create_dir_all(&dir)?;
                // Files of this category we never registered belong to someone else: start after them.
                highest_index(&dir, category, self.ext).map_or(0, |h| h + 1)
            }
        };
        self.commit()?;
        let path = file_path(&self.root, category, next_index, self.ext);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        file.set_len(0)?;
        self.started_at
            .entry(category.to_string())
            .or_insert(next_index);
        self.outputs
            .insert(category.to_string(), Output::new(next_index, 0, file));
        // Register the new file before writing to it, so a crash can roll it back.
        self.snapshots
            .push_back((written_through, file_states(&self.outputs)));
        self.acknowledge(true)
    }

    /// Acknowledges the newest written state the byte join allows (all of them without a
    /// join), with every category started since registered. `register`: persist the state even
    /// when the acknowledged position does not move (a category was just started).
    fn acknowledge(&mut self, register: bool) -> std::io::Result<()> {
        let limit = self
            .join
            .as_ref()
            .and_then(JoinStage::replay_floor)
            .map_or(u64::MAX, |floor| floor.saturating_sub(1));
        let mut newest = None;
        while self.snapshots.front().is_some_and(|(seq, _)| *seq <= limit) {
            newest = self.snapshots.pop_front();
        }
        let seq = match newest {
            Some((seq, state)) => {
                self.acked_state = state;
                seq
            }
            None if register => self.cursor.acked(),
            None => return Ok(()),
        };
        let mut state = self.acked_state.clone();
        for (category, first) in &self.started_at {
            state.entry(category.clone()).or_insert((*first, 0));
        }
        self.cursor
            .ack(seq, Some(encode_state(&state)))
            .map_err(std::io::Error::other)
    }
}

#[cfg(test)]
mod tests;
