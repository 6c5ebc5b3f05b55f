//! Per-file metrics of a file source: bytes read, lines, lag (size minus offset), rotations.
//!
//! The source thread publishes a snapshot a few times a second; whoever started the source reads
//! it through the [`FileSourceMetrics`] handle [`super::spawn`] returns, e.g. for the status line.
//!
//! This module holds counters only (and the file source thread's publishing of them); it touches
//! no files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

/// What is known about one tracked file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileMetrics {
    pub path: PathBuf,
    /// Bytes read from the file by this process.
    pub bytes_read: u64,
    /// Records journaled from the file by this process.
    pub lines: u64,
    /// The file's size at the last check.
    pub size: u64,
    /// Offset just past the last journaled line.
    pub offset: u64,
    /// Rotations this file went through while tracked: renamed, replaced, deleted, truncated.
    pub rotations: u64,
    /// The file rotated away and is being drained before release.
    pub draining: bool,
}

impl FileMetrics {
    /// Bytes in the file not yet journaled.
    pub fn lag(&self) -> u64 {
        self.size.saturating_sub(self.offset)
    }
}

/// Totals over files already released.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleasedTotals {
    pub files: u64,
    pub bytes_read: u64,
    pub lines: u64,
    pub rotations: u64,
}

#[derive(Debug, Default)]
struct Snapshot {
    files: BTreeMap<(u64, u64), FileMetrics>,
    released: ReleasedTotals,
}

/// The metrics of one file source.
#[derive(Debug, Default)]
pub struct FileSourceMetrics {
    inner: Mutex<Snapshot>,
}

impl FileSourceMetrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The files tracked now, by path.
    pub fn files(&self) -> Vec<FileMetrics> {
        let mut v: Vec<FileMetrics> = self.lock().files.values().cloned().collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// Totals over released files.
    pub fn released(&self) -> ReleasedTotals {
        self.lock().released.clone()
    }

    /// A compact summary for a status line: `files=3 lag=120B rotations=2 released=1`.
    pub fn summary(&self) -> String {
        let s = self.lock();
        let lag: u64 = s.files.values().map(FileMetrics::lag).sum();
        let rotations: u64 =
            s.files.values().map(|f| f.rotations).sum::<u64>() + s.released.rotations;
        let mut out = String::new();
        let _ = write!(
            out,
            "files={} lag={lag}B rotations={rotations} released={}",
            s.files.len(),
            s.released.files
        );
        out
    }

    pub(super) fn publish(&self, files: impl Iterator<Item = ((u64, u64), FileMetrics)>) {
        let mut s = self.lock();
        s.files.clear();
        s.files.extend(files);
    }

    pub(super) fn add_released(&self, m: &FileMetrics) {
        let mut s = self.lock();
        s.released.files += 1;
        s.released.bytes_read += m.bytes_read;
        s.released.lines += m.lines;
        s.released.rotations += m.rotations;
    }
}

impl super::Tailer {
    pub(super) fn publish_metrics(&self) {
        self.metrics.publish(
            self.files
                .values()
                .map(|f| ((f.key.dev, f.key.ino), f.metrics.clone())),
        );
    }

    pub(super) fn log_totals(&self) {
        for m in self.metrics.files() {
            tracing::info!(
                source = %self.ctx.name,
                path = %m.path.display(),
                bytes_read = m.bytes_read,
                lines = m.lines,
                lag = m.lag(),
                rotations = m.rotations,
                "File source stopped."
            );
        }
    }
}
