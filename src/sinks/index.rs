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
//! Records its route ([`super::route`]) does not take are acknowledged without being indexed.
//! Stopped on its own (`ctx.shutdown`), it commits, acknowledges and returns; entries the byte
//! join still holds are read again by the next start.
//!
//! Touches `<data_dir>/index/` (through [`IndexWriterSet`]) and its journal cursor.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::accounting::stream::{JoinStage, Joined};
use crate::component::{ComponentError, Shutdown, SinkContext};
use crate::config::IndexSinkConfig;
use crate::index::{IndexError, IndexSettings, IndexWriterSet};
use crate::journal::Cursor;
use crate::parsers::ParserRegistry;
use crate::sinks::join::{self, Reading};
use crate::sinks::route::Route;
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
        Stop {
            flag: stop,
            shutdown: None,
        },
        &SinkStats::default(),
        Arc::new(ParserRegistry::new(Vec::new())),
        None,
        &Route::default(),
    )
}

/// Starts the index sink of a running pipeline on its own thread; it drains the journal when it
/// closes, or stops when its shutdown fires.
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
        shutdown,
        ..
    } = ctx;
    let route = Route::new(&config.route);
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
            let stop = Stop {
                flag: &never,
                shutdown: Some(&shutdown),
            };
            run_counted(
                cursor, &index_dir, &settings, stop, &stats, parsers, join, &route,
            )
            .map(|_| ())
            .map_err(ComponentError::Index)
        })
        .map_err(ComponentError::Thread)
}

/// What stops the sink: `flag` (drains the join, like the journal closing) or `shutdown` (the
/// sink alone stops: the join's held entries are read again by the next start).
struct Stop<'a> {
    flag: &'a AtomicBool,
    shutdown: Option<&'a Shutdown>,
}

#[allow(clippy::too_many_arguments)] // one private entry point with everything the loop needs
fn run_counted(
    mut cursor: Cursor,
    index_dir: &Path,
    settings: &IndexSettings,
    stop: Stop<'_>,
    stats: &SinkStats,
    parsers: Arc<ParserRegistry>,
    mut join_stage: Option<JoinStage>,
    route: &Route,
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
        let read_through = batch.last().map(|e| e.seq);
        let draining =
            stop.flag.load(Ordering::Relaxed) || (batch.is_empty() && cursor.is_drained());
        // Stopped on its own; once the journal is closed the sink drains it instead.
        let stopping = draining
            || (stop.shutdown.is_some_and(Shutdown::is_triggered) && !cursor.journal_closed());
        ready.clear();
        let reading = Reading {
            caught_up: read < batch_max,
            drained: draining,
        };
        join::release(
            batch,
            route,
            join_stage.as_mut(),
            reading,
            stats,
            &mut ready,
        );
        for j in &ready {
            writer.add_corrected(&stream, j.entry.seq, &j.entry.record, j.correction)?;
            pending = Some(j.entry.seq);
        }
        // Records read and not taken are done too (the ack below stays under the join's floor).
        if let Some(seq) = read_through
            && pending.is_none_or(|p| p < seq)
            && (pending.is_some() || seq > cursor.acked())
        {
            pending = Some(seq);
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
                let limit = join::ack_limit(join_stage.as_ref(), seq);
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
