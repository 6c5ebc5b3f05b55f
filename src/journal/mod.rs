//! The journal: the durable stage between all sources and all sinks.
//!
//! Sources append batches of [`Record`]s through an [`Appender`]; each batch may carry source
//! [`Checkpoint`]s (e.g. a file's identity and byte offset) that become durable atomically with the
//! records they cover. Sinks read through named [`Cursor`]s and acknowledge what they have
//! finished, optionally with an opaque sink state (e.g. an output file's length) stored with the
//! cursor position. Appends wait when the journal is full (backpressure); datagram sources use
//! [`Appender::try_append`] and count what they could not journal.
//!
//! This module owns `<data_dir>/journal/`. It never runs on the async reactor: waiting is either
//! `async` (a notification) or explicitly blocking (`*_blocking`).
//!
//! The implementation here is the in-memory stand-in the foundation ships with; the on-disk
//! segmented log replaces its internals behind the same interface.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;
use tokio::sync::Notify;

use crate::record::Record;

/// When appended records are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Group commit: fsync at most every `fsync_interval` (default).
    #[default]
    Interval,
    /// fsync every batch before it is reported durable.
    Always,
    /// Never fsync (unsafe: a machine crash loses what the page cache held).
    Never,
}

/// Journal settings (the `[journal]` config table).
#[derive(Debug, Clone)]
pub struct JournalConfig {
    pub fsync: FsyncPolicy,
    pub fsync_interval: Duration,
    pub segment_bytes: u64,
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
    fn bytes(&self) -> u64 {
        self.records.iter().map(|r| r.raw.len() as u64 + 64).sum()
    }
}

/// Sequence numbers given to an appended batch: `first_seq..=last_seq` (empty when
/// `first_seq > last_seq`, for a batch of checkpoints only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendReceipt {
    pub first_seq: u64,
    pub last_seq: u64,
}

/// A record as read back, with its sequence number (1-based, gap-free, increasing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub record: Record,
}

/// Counters the rest of Quill reports.
#[derive(Debug, Clone, Default)]
pub struct JournalStats {
    pub records_appended: u64,
    pub bytes_appended: u64,
    pub last_seq: u64,
    pub durable_seq: u64,
    pub bytes_held: u64,
    /// (cursor name, acknowledged seq, lag in records)
    pub cursors: Vec<(String, u64, u64)>,
}

#[derive(Debug, Default)]
struct CursorState {
    acked: u64,
    sink_state: Option<Bytes>,
}

#[derive(Debug, Default)]
struct State {
    entries: VecDeque<Entry>,
    last_seq: u64,
    bytes_held: u64,
    records_appended: u64,
    bytes_appended: u64,
    checkpoints: HashMap<String, Bytes>,
    cursors: HashMap<String, CursorState>,
    closed: bool,
}

struct Inner {
    config: JournalConfig,
    state: Mutex<State>,
    changed: Condvar,
    data_ready: Notify,
    space_ready: Notify,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify_all(&self) {
        self.changed.notify_all();
        self.data_ready.notify_waiters();
        self.space_ready.notify_waiters();
    }

    /// Appends if there is room (a batch always fits into an empty journal).
    fn try_push(&self, batch: AppendBatch) -> Result<AppendReceipt, TryAppendError> {
        let mut st = self.lock();
        if st.closed {
            return Err(JournalError::Closed.into());
        }
        let size = batch.bytes();
        if st.bytes_held > 0 && st.bytes_held + size > self.config.max_bytes {
            return Err(TryAppendError::Full(batch));
        }
        let first_seq = st.last_seq + 1;
        for record in batch.records {
            st.last_seq += 1;
            st.bytes_appended += record.raw.len() as u64;
            let seq = st.last_seq;
            st.entries.push_back(Entry { seq, record });
        }
        st.records_appended += st.last_seq + 1 - first_seq;
        st.bytes_held += size;
        for cp in batch.checkpoints {
            st.checkpoints.insert(cp.key, cp.value);
        }
        let receipt = AppendReceipt {
            first_seq,
            last_seq: st.last_seq,
        };
        drop(st);
        self.notify_all();
        Ok(receipt)
    }

    /// Drops entries every cursor has acknowledged.
    fn trim(st: &mut State) {
        let Some(min_acked) = st.cursors.values().map(|c| c.acked).min() else {
            return;
        };
        while st.entries.front().is_some_and(|e| e.seq <= min_acked) {
            if let Some(e) = st.entries.pop_front() {
                st.bytes_held = st.bytes_held.saturating_sub(e.record.raw.len() as u64 + 64);
            }
        }
    }
}

/// The journal handle; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

impl Journal {
    /// Opens (or creates) the journal under `dir`.
    pub fn open(dir: &Path, config: JournalConfig) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(dir).map_err(|source| JournalError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(Journal::memory(config))
    }

    /// A journal that lives in memory only (tests, and the foundation's stand-in).
    pub fn memory(config: JournalConfig) -> Journal {
        Journal {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
                data_ready: Notify::new(),
                space_ready: Notify::new(),
            }),
        }
    }

    pub fn appender(&self) -> Appender {
        Appender {
            inner: self.inner.clone(),
        }
    }

    /// Opens the named cursor, creating it at the journal's start if it is new.
    pub fn cursor(&self, name: &str) -> Result<Cursor, JournalError> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(JournalError::BadCursorName(name.to_string()));
        }
        let mut st = self.inner.lock();
        let cs = st.cursors.entry(name.to_string()).or_default();
        let acked = cs.acked;
        let sink_state = cs.sink_state.clone();
        Ok(Cursor {
            inner: self.inner.clone(),
            name: name.to_string(),
            read_pos: acked,
            acked,
            sink_state,
        })
    }

    /// The latest durable checkpoint stored under `key`.
    pub fn checkpoint(&self, key: &str) -> Option<Bytes> {
        self.inner.lock().checkpoints.get(key).cloned()
    }

    /// Checkpoints whose key starts with `prefix` (a source lists its files this way).
    pub fn checkpoints_with_prefix(&self, prefix: &str) -> Vec<Checkpoint> {
        let st = self.inner.lock();
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
        self.inner.lock().last_seq
    }

    pub fn stats(&self) -> JournalStats {
        let st = self.inner.lock();
        let mut cursors: Vec<(String, u64, u64)> = st
            .cursors
            .iter()
            .map(|(n, c)| (n.clone(), c.acked, st.last_seq.saturating_sub(c.acked)))
            .collect();
        cursors.sort();
        JournalStats {
            records_appended: st.records_appended,
            bytes_appended: st.bytes_appended,
            last_seq: st.last_seq,
            durable_seq: st.last_seq,
            bytes_held: st.bytes_held,
            cursors,
        }
    }

    /// Flushes and stops accepting appends; readers drain what is there and then see the end.
    pub fn close(&self) -> Result<(), JournalError> {
        self.inner.lock().closed = true;
        self.inner.notify_all();
        Ok(())
    }
}

/// The writing side, held by sources; cheap to clone.
#[derive(Clone)]
pub struct Appender {
    inner: Arc<Inner>,
}

impl Appender {
    /// Appends, waiting while the journal is full.
    pub async fn append(&self, mut batch: AppendBatch) -> Result<AppendReceipt, JournalError> {
        loop {
            let notified = self.inner.space_ready.notified();
            match self.inner.try_push(batch) {
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
        loop {
            match self.inner.try_push(batch) {
                Ok(r) => return Ok(r),
                Err(TryAppendError::Journal(e)) => return Err(e),
                Err(TryAppendError::Full(b)) => batch = b,
            }
            let st = self.inner.lock();
            let _ = self
                .inner
                .changed
                .wait_timeout(st, Duration::from_millis(100));
        }
    }

    /// Appends without waiting; a full journal hands the batch back.
    pub fn try_append(&self, batch: AppendBatch) -> Result<AppendReceipt, TryAppendError> {
        self.inner.try_push(batch)
    }

    /// Waits until `seq` is durable.
    pub async fn wait_durable(&self, _seq: u64) -> Result<(), JournalError> {
        Ok(())
    }

    /// Waits from a blocking thread until `seq` is durable.
    pub fn wait_durable_blocking(&self, _seq: u64) -> Result<(), JournalError> {
        Ok(())
    }
}

/// A named reader with a persisted, acknowledged position.
pub struct Cursor {
    inner: Arc<Inner>,
    name: String,
    read_pos: u64,
    acked: u64,
    sink_state: Option<Bytes>,
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

    fn take_ready(read_pos: &mut u64, st: &State, max: usize) -> Vec<Entry> {
        let Some(first) = st.entries.front().map(|e| e.seq) else {
            return Vec::new();
        };
        let start = (*read_pos + 1).max(first);
        let skip = (start - first) as usize;
        let out: Vec<Entry> = st.entries.iter().skip(skip).take(max).cloned().collect();
        if let Some(last) = out.last() {
            *read_pos = last.seq;
        }
        out
    }

    /// Returns up to `max` durable entries after the read position, waiting for at least one.
    /// An empty result means the journal was closed and everything was read.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<Entry>, JournalError> {
        let inner = self.inner.clone();
        loop {
            let notified = inner.data_ready.notified();
            {
                let st = inner.lock();
                let out = Self::take_ready(&mut self.read_pos, &st, max);
                if !out.is_empty() || st.closed {
                    return Ok(out);
                }
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
        let deadline = Instant::now() + timeout;
        let inner = self.inner.clone();
        let mut st = inner.lock();
        loop {
            let out = Self::take_ready(&mut self.read_pos, &st, max);
            let now = Instant::now();
            if !out.is_empty() || st.closed || now >= deadline {
                return Ok(out);
            }
            st = inner
                .changed
                .wait_timeout(st, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    /// True when the journal is closed and this cursor has read everything.
    pub fn is_drained(&self) -> bool {
        let st = self.inner.lock();
        st.closed && self.read_pos >= st.last_seq
    }

    /// Acknowledges everything up to `seq`, with an optional sink state stored alongside; durable
    /// when this returns.
    pub fn ack(&mut self, seq: u64, sink_state: Option<Bytes>) -> Result<(), JournalError> {
        let mut st = self.inner.lock();
        let cs = st.cursors.entry(self.name.clone()).or_default();
        cs.acked = seq.max(cs.acked);
        cs.sink_state = sink_state.clone();
        self.acked = cs.acked;
        self.sink_state = sink_state;
        self.read_pos = self.read_pos.max(self.acked);
        Inner::trim(&mut st);
        drop(st);
        self.inner.notify_all();
        Ok(())
    }

    /// Moves the read position back to the last acknowledgement (e.g. after a failed send).
    pub fn rewind(&mut self) {
        self.read_pos = self.acked;
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
        assert_eq!(j.checkpoint("file:1").as_deref(), Some(&b"10"[..]));
        let b = c
            .next_batch_blocking(10, Duration::from_millis(10))
            .unwrap();
        assert_eq!(b.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
        c.rewind();
        assert_eq!(
            c.next_batch_blocking(1, Duration::from_millis(10))
                .unwrap()
                .len(),
            1
        );
        c.ack(2, Some(Bytes::from_static(b"len=5"))).unwrap();
        assert_eq!(j.stats().bytes_held, 0);
        let again = j.cursor("sink").unwrap();
        assert_eq!(again.acked(), 2);
        assert!(j.cursor("../x").is_err());
    }

    #[test]
    fn full_journal_hands_batch_back() {
        let j = Journal::memory(JournalConfig {
            max_bytes: 100,
            ..JournalConfig::default()
        });
        let _c = j.cursor("s").unwrap();
        let a = j.appender();
        a.try_append(AppendBatch {
            records: vec![rec("x")],
            checkpoints: vec![],
        })
        .unwrap();
        assert!(matches!(
            a.try_append(AppendBatch {
                records: vec![rec("y")],
                checkpoints: vec![]
            }),
            Err(TryAppendError::Full(_))
        ));
    }
}
