//! The index sink: reads the journal through its own cursor and indexes every entry.
//!
//! Runs on a dedicated thread ([`run_index_sink`] blocks). Every `commit_interval` it commits the
//! partitions it wrote to, each commit carrying the journal seq it covers (see
//! [`crate::index::writer`]), and then acknowledges the cursor up to that seq. After a crash the
//! cursor replays from its last acknowledgement and the index skips what its commits already
//! cover: nothing is missing and nothing is indexed twice.
//!
//! Touches `<data_dir>/index/` (through [`IndexWriterSet`]) and its journal cursor.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::index::{IndexError, IndexSettings, IndexWriterSet};
use crate::journal::Cursor;

/// The name the pipeline should give the index sink's journal cursor.
pub const DEFAULT_CURSOR_NAME: &str = "index";

/// The stream name under which the journal's coverage is stored in commit payloads.
pub fn stream_name(cursor: &Cursor) -> String {
    format!("journal:{}", cursor.name())
}

/// Indexes journal entries from `cursor` into the index at `index_dir` until `stop` is set or
/// the journal is closed and drained; commits and acknowledges before returning.
///
/// Blocking: run it on its own thread (`std::thread::spawn` or `spawn_blocking`). Errors are
/// returned, not retried: the caller decides whether to restart the sink.
pub fn run_index_sink(
    mut cursor: Cursor,
    index_dir: &Path,
    settings: &IndexSettings,
    stop: &AtomicBool,
) -> Result<crate::index::writer::WriterStats, IndexError> {
    let mut writer = IndexWriterSet::open(index_dir, settings)?;
    writer.apply_retention()?;
    let stream = stream_name(&cursor);
    let commit_interval = settings.commit_interval.max(Duration::from_millis(10));
    let mut last_commit = Instant::now();
    let mut last_retention = Instant::now();
    // Highest seq read but not yet acknowledged.
    let mut pending: Option<u64> = None;
    loop {
        let wait = commit_interval
            .saturating_sub(last_commit.elapsed())
            .clamp(Duration::from_millis(5), Duration::from_millis(200));
        let batch = cursor.next_batch_blocking(settings.batch_max.max(1), wait)?;
        for entry in &batch {
            writer.add(&stream, entry.seq, &entry.record)?;
            pending = Some(entry.seq);
        }
        let stopping = stop.load(Ordering::Relaxed) || (batch.is_empty() && cursor.is_drained());
        if stopping || (pending.is_some() && last_commit.elapsed() >= commit_interval) {
            writer.commit()?;
            if let Some(seq) = pending.take() {
                cursor.ack(seq, None)?;
            }
            last_commit = Instant::now();
        }
        if stopping {
            break;
        }
        if last_retention.elapsed() >= settings.retention_check_interval {
            writer.apply_retention()?;
            last_retention = Instant::now();
        }
    }
    writer.close()
}
