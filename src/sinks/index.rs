//! The index sink: reads the journal through its own cursor and indexes every entry.
//!
//! Runs on a dedicated thread ([`run_index_sink`] blocks). Every `commit_interval` it commits the
//! partitions it wrote to, each commit carrying the journal seq it covers (see
//! [`crate::index::writer`]), and then acknowledges the cursor up to that seq. After a crash the
//! cursor replays from its last acknowledgement and the index skips what its commits already
//! cover: nothing is missing and nothing is indexed twice. With `[bytes]` configured, records
//! pass through the byte join ([`JoinStage`]) first and are indexed (and acknowledged) in journal
//! order, HAProxy entries with `_bytes_sent` in their stored GELF.
//!
//! Touches `<data_dir>/index/` (through [`IndexWriterSet`]) and its journal cursor.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::accounting::stream::{JoinStage, Joined};
use crate::component::{ComponentError, SinkContext};
use crate::config::IndexSinkConfig;
use crate::index::{IndexError, IndexSettings, IndexWriterSet};
use crate::journal::Cursor;
use crate::parse::registry::ParserRegistry;
use crate::record::Timestamp;
use crate::telemetry::SinkStats;

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
    cursor: Cursor,
    index_dir: &Path,
    settings: &IndexSettings,
    stop: &AtomicBool,
) -> Result<crate::index::writer::WriterStats, IndexError> {
    run_counted(
        cursor,
        index_dir,
        settings,
        stop,
        &SinkStats::default(),
        Arc::new(ParserRegistry::new(Vec::new())),
        None,
    )
}

/// Starts the index sink of a running pipeline on its own thread; it drains the journal when it
/// closes.
pub fn spawn(
    config: &IndexSinkConfig,
    ctx: SinkContext,
) -> Result<JoinHandle<Result<(), ComponentError>>, ComponentError> {
    let SinkContext {
        name,
        cursor,
        stats,
        parsers,
        data_dir,
        join,
        ..
    } = ctx;
    let settings = IndexSettings {
        commit_interval: config.commit_interval.0,
        max_age_days: config.max_age_days,
        max_total_bytes: config.max_size.map_or(0, |s| s.as_u64()),
        ..IndexSettings::default()
    };
    let index_dir = crate::index::index_root(&data_dir);
    std::thread::Builder::new()
        .name(format!("sink-{name}"))
        .spawn(move || {
            let never = AtomicBool::new(false);
            let join = join.as_ref().map(|j| JoinStage::new(j, parsers.clone()));
            run_counted(cursor, &index_dir, &settings, &never, &stats, parsers, join)
                .map(|_| ())
                .map_err(ComponentError::Index)
        })
        .map_err(ComponentError::Thread)
}

fn run_counted(
    mut cursor: Cursor,
    index_dir: &Path,
    settings: &IndexSettings,
    stop: &AtomicBool,
    stats: &SinkStats,
    parsers: Arc<ParserRegistry>,
    mut join: Option<JoinStage>,
) -> Result<crate::index::writer::WriterStats, IndexError> {
    let mut writer = IndexWriterSet::open(index_dir, settings, parsers)?;
    writer.apply_retention()?;
    let stream = stream_name(&cursor);
    let commit_interval = settings.commit_interval.max(Duration::from_millis(10));
    let mut last_commit = Instant::now();
    let mut last_retention = Instant::now();
    // Highest seq indexed but not yet acknowledged.
    let mut pending: Option<u64> = None;
    let mut ready: Vec<Joined> = Vec::new();
    loop {
        let wait = commit_interval
            .saturating_sub(last_commit.elapsed())
            .clamp(Duration::from_millis(5), Duration::from_millis(200));
        let batch_max = settings.batch_max.max(1);
        let batch = cursor.next_batch_blocking(batch_max, wait)?;
        let read = batch.len();
        let stopping = stop.load(Ordering::Relaxed) || (batch.is_empty() && cursor.is_drained());
        ready.clear();
        match &mut join {
            None => ready.extend(batch.into_iter().map(Joined::plain)),
            Some(join) => {
                for entry in batch {
                    join.push(entry, &mut ready);
                }
                join.tick(Timestamp::now().as_millis(), read < batch_max, &mut ready);
                if stopping {
                    join.drain(&mut ready);
                }
                stats.note_joined(&ready, join.held());
            }
        }
        for j in &ready {
            writer.add_corrected(&stream, j.entry.seq, &j.entry.record, j.correction)?;
            pending = Some(j.entry.seq);
        }
        stats
            .records
            .fetch_add(ready.len() as u64, Ordering::Relaxed);
        stats.bytes.fetch_add(
            ready.iter().map(|j| j.entry.record.raw.len() as u64).sum(),
            Ordering::Relaxed,
        );
        if stopping || (pending.is_some() && last_commit.elapsed() >= commit_interval) {
            writer.commit()?;
            if let Some(seq) = pending {
                // Nothing the byte join may still need to replay is acknowledged.
                let limit = join
                    .as_ref()
                    .and_then(JoinStage::replay_floor)
                    .map_or(seq, |floor| seq.min(floor.saturating_sub(1)));
                if limit > cursor.acked() {
                    cursor.ack(limit, None)?;
                }
                if limit >= seq {
                    pending = None;
                }
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
