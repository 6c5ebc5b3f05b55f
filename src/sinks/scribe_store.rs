//! The file sink with `format = "raw"`: Scribe's file store. Each record's payload is written as
//! it came (Scribe's default; with `add_newlines = true` a `\n` follows every message, as Scribe's
//! `add_newlines=1` did) to `<path>/<category>/<category>_NNNNN`, Scribe's naming, with a
//! `<category>_current` symlink to the file being written. A category's file is rotated to the
//! next number when it would grow past `max_size` and, with `rotate_period`, when it has been
//! written for that long. Closed files are compressed (`compress = "gzip" | "zstd"`) on a worker
//! thread to `<category>_NNNNN.gz` / `.zst`.
//!
//! Exactly once, as the GELF file sink: under the sink's `fsync` policy (after every batch, or
//! once per `fsync_interval` for all files together, or never: `file::CommitClock`) the
//! written files are fsynced and what they hold is acknowledged with a sink state naming, per
//! category, the current file number and its length; a new file is registered in that state before its first byte. On start each category's
//! current file is cut back to the acknowledged length and files numbered after it are removed, so
//! what was written but not acknowledged before a crash is written again exactly once. Closed
//! files a crash left uncompressed are compressed on start.
//!
//! Categories that are not safe file names go to `_invalid_category`, with a warning.
//!
//! Like the GELF file sink, it honours its route ([`super::route`]): records it does not take
//! are not written, and acknowledged with the state before them. Stopped on its own
//! (`ctx.shutdown`: removed or changed by a reload) it finishes the batch in hand and returns;
//! once the journal is closed it drains it instead.
//!
//! This module touches files under `path` and its journal cursor, nothing else.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;

use super::file::{
    CommitClock, Output, acknowledged_states, file_states, reopen_acknowledged, sync_dirty,
};
use crate::component::{ComponentError, Shutdown, SinkContext};
use crate::config::{Compression, FileSinkConfig, is_safe_category};
use crate::journal::{Cursor, Entry};
use crate::sinks::route::Route;
use crate::telemetry::SinkStats;

/// Records read from the journal per batch at most.
const BATCH: usize = 4096;
/// Longest wait for journal records (the store checks for a due commit at least this often).
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// Where records with an unsafe category go.
const INVALID_CATEGORY: &str = "_invalid_category";

/// Starts the sink thread.
pub fn spawn(
    config: FileSinkConfig,
    ctx: SinkContext,
) -> Result<JoinHandle<Result<(), ComponentError>>, ComponentError> {
    std::fs::create_dir_all(&config.path)
        .map_err(|e| ComponentError::io(format!("cannot create {}", config.path.display()), e))?;
    let path = config.path.clone();
    let io_error = move |e| ComponentError::io(format!("output {}", path.display()), e);
    let mut store = ScribeStore::open(&config, ctx.cursor, ctx.stats).map_err(&io_error)?;
    store.shutdown = Some(ctx.shutdown);
    std::thread::Builder::new()
        .name(format!("sink-{}", ctx.name))
        .spawn(move || store.run().map_err(io_error))
        .map_err(ComponentError::Thread)
}

pub struct ScribeStore {
    root: PathBuf,
    max_size: u64,
    rotate_period: Option<Duration>,
    add_newlines: bool,
    cursor: Cursor,
    stats: Arc<SinkStats>,
    outputs: BTreeMap<String, Output>,
    compressor: Option<Compressor>,
    /// When what was written is made durable and acknowledged.
    clock: CommitClock,
    /// The last sequence written and the state after it, not yet acknowledged.
    unacked: Option<(u64, Bytes)>,
    route: Route,
    /// Fires when this sink alone is to stop (a reload); `None`: run until the journal closes.
    shutdown: Option<Shutdown>,
}

/// The file name of file `index` of `category`.
pub fn file_name(category: &str, index: u32) -> String {
    format!("{category}_{index:05}")
}

fn file_path(root: &Path, category: &str, index: u32) -> PathBuf {
    root.join(category).join(file_name(category, index))
}

/// The sink state: the file sink's format ([`super::file::encode_state`]), one
/// `category index length` line per category.
fn encode_state(outputs: &BTreeMap<String, Output>) -> Bytes {
    super::file::encode_state(&file_states(outputs))
}

/// The numbers of `<category>_NNNNN` files in `dir` (compressed or not), with whether each is
/// still uncompressed.
fn numbered_files(dir: &Path, category: &str) -> Vec<(u32, bool)> {
    let prefix = format!("{category}_");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let rest = name.strip_prefix(&prefix)?;
            let (num, plain) = match rest.split_once('.') {
                Some((n, "gz" | "zst")) => (n, false),
                Some(_) => return None,
                None => (rest, true),
            };
            (num.len() >= 5 && num.bytes().all(|b| b.is_ascii_digit()))
                .then(|| Some((num.parse().ok()?, plain)))?
        })
        .collect()
}

impl ScribeStore {
    /// Opens the store and rolls its files back to the last acknowledged state.
    pub fn open(
        config: &FileSinkConfig,
        cursor: Cursor,
        stats: Arc<SinkStats>,
    ) -> std::io::Result<ScribeStore> {
        let root = config.path.clone();
        let compressor = Compressor::start(config.compress)?;
        let mut outputs = BTreeMap::new();
        let state = acknowledged_states(&cursor);
        for (category, (index, len)) in state {
            let dir = root.join(&category);
            std::fs::create_dir_all(&dir)?;
            for (n, plain) in numbered_files(&dir, &category) {
                if n > index {
                    // Started after the last acknowledgement.
                    let _ = std::fs::remove_file(file_path(&root, &category, n));
                } else if n < index
                    && plain
                    && let Some(c) = &compressor
                {
                    c.submit(file_path(&root, &category, n));
                }
            }
            let path = file_path(&root, &category, index);
            let file = reopen_acknowledged(&path, len)?;
            point_current(&root, &category, index)?;
            outputs.insert(category, Output::new(index, len, file));
        }
        let clock = CommitClock::new(config, &cursor);
        Ok(ScribeStore {
            root,
            max_size: config.max_size.as_u64(),
            rotate_period: config.rotate_period.map(|d| d.0),
            add_newlines: config.add_newlines,
            cursor,
            stats,
            outputs,
            compressor,
            clock,
            unacked: None,
            route: Route::new(&config.route),
            shutdown: None,
        })
    }

    /// Writes batches until the journal is closed and drained, or the sink's shutdown fires.
    pub fn run(&mut self) -> std::io::Result<()> {
        loop {
            let stopping = self.shutdown.as_ref().is_some_and(Shutdown::is_triggered)
                && !self.cursor.journal_closed();
            let batch = self
                .cursor
                .next_batch_blocking(BATCH, self.wait())
                .map_err(std::io::Error::other)?;
            let drained = batch.is_empty() && self.cursor.is_drained();
            let written_through = batch.first().map_or(self.cursor.acked(), |e| e.seq - 1);
            self.rotate_old(self.unacked.as_ref().map_or(written_through, |u| u.0))?;
            if !batch.is_empty() {
                self.write_batch(&batch)?;
            }
            self.commit_if_due(drained || stopping)?;
            if drained || stopping {
                break;
            }
        }
        if let Some(c) = self.compressor.take() {
            c.finish();
        }
        Ok(())
    }

    /// Writes the records of `batch` its route takes; the whole batch is acknowledged with the
    /// next commit.
    fn write_batch(&mut self, batch: &[Entry]) -> std::io::Result<()> {
        let mut bytes = 0u64;
        let mut written = 0u64;
        for entry in batch {
            if self.route.takes(&entry.record) {
                bytes += self.write_entry(entry)?;
                written += 1;
            }
        }
        let last = batch.last().map_or(0, |e| e.seq);
        self.unacked = Some((last, encode_state(&self.outputs)));
        self.stats.records.fetch_add(written, Ordering::Relaxed);
        self.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Appends one record to its category's file; returns the bytes written.
    fn write_entry(&mut self, entry: &Entry) -> std::io::Result<u64> {
        let record = &entry.record;
        let category: &str = if is_safe_category(&record.origin.category) {
            &record.origin.category
        } else {
            tracing::warn!(category = ?record.origin.category, "Record with an unsafe category written to {INVALID_CATEGORY}.");
            INVALID_CATEGORY
        };
        let add_newlines = self.add_newlines;
        let len = record.raw.len() as u64 + u64::from(add_newlines);
        let out = self.output_for(category, len, entry.seq - 1)?;
        out.buffer(&record.raw)?;
        if add_newlines {
            out.buffer(b"\n")?;
        }
        Ok(len)
    }

    /// How long to wait for records: until the next commit is due when written data waits.
    fn wait(&self) -> Duration {
        self.clock.wait(self.unacked.is_some(), IDLE_WAIT)
    }

    /// Makes what was written durable (none with `never`) and acknowledges it: after every
    /// batch (`batch`), once `fsync_interval` passed since the last commit, or when `force`d.
    fn commit_if_due(&mut self, force: bool) -> std::io::Result<()> {
        if !self.clock.due(force) || self.unacked.is_none() {
            return Ok(());
        }
        self.sync_dirty()?;
        self.clock.committed();
        if let Some((seq, state)) = self.unacked.take() {
            self.cursor
                .ack(seq, Some(state))
                .map_err(std::io::Error::other)?;
        }
        Ok(())
    }

    /// Rotates the non-empty files older than `rotate_period` (everything before journal
    /// sequence `written_through` is written).
    fn rotate_old(&mut self, written_through: u64) -> std::io::Result<()> {
        let Some(period) = self.rotate_period else {
            return Ok(());
        };
        let old: Vec<String> = self
            .outputs
            .iter()
            .filter(|(_, o)| o.len > 0 && o.opened.elapsed() >= period)
            .map(|(c, _)| c.clone())
            .collect();
        for category in old {
            let next = self.outputs.get(&category).map_or(0, |o| o.index + 1);
            self.start_file(&category, next, written_through)?;
        }
        Ok(())
    }

    /// The open file of `category` with room for `incoming` bytes (a message larger than
    /// `max_size` gets a file of its own).
    fn output_for(
        &mut self,
        category: &str,
        incoming: u64,
        written_through: u64,
    ) -> std::io::Result<&mut Output> {
        let next = match self.outputs.get(category) {
            Some(o) if o.len == 0 || o.len + incoming <= self.max_size => None,
            Some(o) => Some(o.index + 1),
            None => {
                let dir = self.root.join(category);
                std::fs::create_dir_all(&dir)?;
                // Files of this category never registered belong to someone else: start after them.
                let high = numbered_files(&dir, category)
                    .into_iter()
                    .map(|(n, _)| n)
                    .max();
                Some(high.map_or(0, |h| h + 1))
            }
        };
        if let Some(index) = next {
            self.start_file(category, index, written_through)?;
        }
        self.outputs
            .get_mut(category)
            .ok_or_else(|| std::io::Error::other("output vanished"))
    }

    /// Makes everything written durable, opens file `index` of `category`, registers it in an
    /// acknowledgement up to `written_through` before anything is written to it, points the
    /// `_current` symlink at it and hands the file it replaces to the compressor.
    fn start_file(
        &mut self,
        category: &str,
        index: u32,
        written_through: u64,
    ) -> std::io::Result<()> {
        self.sync_dirty()?;
        // The acknowledgement below covers everything written so far.
        self.unacked = None;
        self.clock.committed();
        let path = file_path(&self.root, category, index);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        file.set_len(0)?;
        let previous = self
            .outputs
            .insert(category.to_string(), Output::new(index, 0, file));
        self.cursor
            .ack(written_through, Some(encode_state(&self.outputs)))
            .map_err(std::io::Error::other)?;
        point_current(&self.root, category, index)?;
        if let (Some(prev), Some(c)) = (previous, &self.compressor) {
            c.submit(file_path(&self.root, category, prev.index));
        }
        Ok(())
    }

    fn sync_dirty(&mut self) -> std::io::Result<()> {
        sync_dirty(&mut self.outputs, self.clock.syncs())
    }
}

/// Points `<category>_current` at file `index` (atomically: a new link renamed over the old).
fn point_current(root: &Path, category: &str, index: u32) -> std::io::Result<()> {
    let dir = root.join(category);
    let link = dir.join(format!("{category}_current"));
    let tmp = dir.join(format!(".{category}_current.tmp"));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(file_name(category, index), &tmp)?;
    std::fs::rename(&tmp, &link)
}

/// Compresses closed files on its own thread.
struct Compressor {
    tx: crossbeam_channel::Sender<PathBuf>,
    thread: JoinHandle<()>,
}

impl Compressor {
    fn start(kind: Compression) -> std::io::Result<Option<Compressor>> {
        if kind == Compression::None {
            return Ok(None);
        }
        let (tx, rx) = crossbeam_channel::unbounded::<PathBuf>();
        let thread = std::thread::Builder::new()
            .name("scribe-store-compress".into())
            .spawn(move || {
                for path in rx {
                    if let Err(e) = compress_file(&path, kind) {
                        tracing::warn!(path = %path.display(), "Cannot compress closed file: {e}.");
                    }
                }
            })?;
        Ok(Some(Compressor { tx, thread }))
    }

    fn submit(&self, path: PathBuf) {
        let _ = self.tx.send(path);
    }

    /// Compresses what was submitted, then stops.
    fn finish(self) {
        drop(self.tx);
        let _ = self.thread.join();
    }
}

/// Compresses `path` to `path.gz` / `path.zst` (written to a temporary name, fsynced, renamed),
/// then removes `path`.
pub fn compress_file(path: &Path, kind: Compression) -> std::io::Result<()> {
    let ext = match kind {
        Compression::None => return Ok(()),
        Compression::Gzip => "gz",
        Compression::Zstd => "zst",
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::other("bad file name"))?;
    let target = path.with_file_name(format!("{name}.{ext}"));
    let tmp = path.with_file_name(format!(".{name}.{ext}.tmp"));
    let mut input = File::open(path)?;
    let output = File::create(&tmp)?;
    let output = match kind {
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(output, flate2::Compression::default());
            std::io::copy(&mut input, &mut enc)?;
            enc.finish()?
        }
        _ => {
            let mut enc = zstd::stream::write::Encoder::new(output, 3)?;
            std::io::copy(&mut input, &mut enc)?;
            enc.finish()?
        }
    };
    output.sync_all()?;
    std::fs::rename(&tmp, &target)?;
    std::fs::remove_file(path)
}

#[cfg(test)]
mod tests {
    use super::super::file::decode_state;
    use super::*;
    use std::time::Instant;

    #[test]
    fn names_and_state() {
        assert_eq!(file_name("web", 3), "web_00003");
        let s = decode_state(b"web 3 120\n../x 1 1\nbad\n");
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            vec![("web".to_string(), (3, 120))]
        );
    }

    #[test]
    fn numbered_files_sees_compressed() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "web_00000.gz",
            "web_00001.zst",
            "web_00002",
            "web_current",
            "web_x",
            "db_00009",
        ] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        let mut v = numbered_files(dir.path(), "web");
        v.sort();
        assert_eq!(v, vec![(0, false), (1, false), (2, true)]);
    }

    #[test]
    fn compresses_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("web_00000");
        std::fs::write(&p, b"hello\n").unwrap();
        compress_file(&p, Compression::Zstd).unwrap();
        assert!(!p.exists());
        let data = std::fs::read(dir.path().join("web_00000.zst")).unwrap();
        assert_eq!(zstd::decode_all(&data[..]).unwrap(), b"hello\n");
    }

    fn store_config(path: &Path, inputs: &[&str]) -> FileSinkConfig {
        FileSinkConfig {
            path: path.to_path_buf(),
            max_size: crate::config::ByteSize::mib(100),
            fsync: None,
            fsync_interval: None,
            workers: None,
            max_lag: None,
            route: crate::config::RouteConfig {
                inputs: inputs.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            format: crate::config::FileFormat::Raw,
            rotate_period: None,
            compress: Default::default(),
            add_newlines: true,
        }
    }

    fn journal_with(records: &[(&str, &str)]) -> crate::journal::Journal {
        use crate::journal::{AppendBatch, Journal, JournalConfig};
        use crate::record::{Format, Origin, Record};
        let journal = Journal::memory(JournalConfig::default());
        let appender = journal.appender();
        let records = records
            .iter()
            .map(|(source, msg)| {
                Record::new(
                    Origin::new(source, "web", Format::Raw, "h"),
                    Bytes::from(msg.to_string()),
                )
            })
            .collect();
        let receipt = appender
            .append_blocking(AppendBatch {
                records,
                checkpoints: vec![],
            })
            .unwrap();
        appender.wait_durable_blocking(receipt.last_seq).unwrap();
        journal
    }

    /// Records the route does not take are not written, and acknowledged all the same.
    #[test]
    fn writes_only_what_its_route_takes() {
        let dir = tempfile::tempdir().unwrap();
        let journal = journal_with(&[("a", "one"), ("b", "two"), ("a", "three"), ("b", "four")]);
        let stats = Arc::new(SinkStats::default());
        let config = store_config(dir.path(), &["a"]);
        let mut store =
            ScribeStore::open(&config, journal.cursor("raw").unwrap(), stats.clone()).unwrap();
        journal.close().unwrap();
        store.run().unwrap();
        let text = std::fs::read_to_string(dir.path().join("web/web_00000")).unwrap();
        assert_eq!(text, "one\nthree\n");
        assert_eq!(stats.records.load(Ordering::Relaxed), 2);
        assert_eq!(journal.stats().cursors, vec![("raw".to_string(), 4, 0)]);
    }

    /// Its own shutdown (a reload removing it) ends it while the journal stays open.
    #[test]
    fn stops_on_its_shutdown_while_the_journal_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let journal = journal_with(&[("a", "one")]);
        let config = store_config(dir.path(), &[]);
        let mut store =
            ScribeStore::open(&config, journal.cursor("raw").unwrap(), Arc::default()).unwrap();
        let (trigger, shutdown) = Shutdown::new();
        store.shutdown = Some(shutdown);
        trigger.trigger();
        let started = Instant::now();
        store.run().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!store.cursor.journal_closed());
        assert_eq!(store.cursor.acked(), 1, "the batch in hand was written");
    }

    /// Between commits (`fsync = "interval"`) written records are not acknowledged: a crash
    /// there cuts the file back and the records are written again, once.
    #[test]
    fn what_a_crash_left_unacknowledged_is_cut_back_and_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let journal = journal_with(&[("a", "one"), ("a", "two")]);
        let mut config = store_config(dir.path(), &[]);
        config.fsync = Some(crate::config::OutputFsync::Interval);
        config.fsync_interval = Some(crate::config::HumanDuration(Duration::from_secs(3600)));
        let mut store =
            ScribeStore::open(&config, journal.cursor("raw").unwrap(), Arc::default()).unwrap();
        let batch = store
            .cursor
            .next_batch_blocking(BATCH, Duration::from_secs(1))
            .unwrap();
        store.write_batch(&batch).unwrap();
        store.commit_if_due(false).unwrap();
        assert_eq!(store.cursor.acked(), 0, "not due: nothing acknowledged");
        // On disk (as a full write buffer would be), not acknowledged; then the crash.
        sync_dirty(&mut store.outputs, false).unwrap();
        drop(store);
        let path = dir.path().join("web/web_00000");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");

        let mut store =
            ScribeStore::open(&config, journal.cursor("raw").unwrap(), Arc::default()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "",
            "cut back on open"
        );
        journal.close().unwrap();
        store.run().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        assert_eq!(journal.stats().cursors, vec![("raw".to_string(), 2, 0)]);
    }
}
