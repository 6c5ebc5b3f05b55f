//! Backfill: indexes existing log files (plain, `.gz`, `.zst`) straight into the index.
//!
//! Each file is its own stream `file:<canonical path>`, numbered by line, so an interrupted
//! backfill run again skips what its last commit covered and indexes the rest exactly once.
//! Lines longer than the maximum are cut (and flagged truncated), never buffered without bound.
//! Reads the given files; writes only through [`IndexWriterSet`].

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::writer::{AddOutcome, IndexWriterSet};
use super::{IndexError, IndexSettings};
use crate::lines::{BoundedLines, Cut, Overlong};
use crate::record::{Format, Origin, Record, RecordFlags, Timestamp};

/// How backfilled lines are labelled.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    pub format: Format,
    pub category: String,
    pub source: String,
    pub host: String,
    /// Longer lines are cut to this many bytes.
    pub max_line_bytes: usize,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        BackfillOptions {
            format: Format::Auto,
            category: "backfill".into(),
            source: "backfill".into(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            max_line_bytes: 1 << 20,
        }
    }
}

/// Progress so far, for a progress bar.
#[derive(Debug, Clone, Copy, Default)]
pub struct BackfillProgress {
    /// Bytes read from the files as stored (compressed bytes for compressed files).
    pub file_bytes: u64,
    pub lines: u64,
}

/// What a backfill did.
#[derive(Debug, Clone, Default)]
pub struct BackfillSummary {
    pub files: u64,
    pub file_bytes: u64,
    pub lines: u64,
    pub added: u64,
    pub already_indexed: u64,
    pub expired: u64,
    pub truncated: u64,
    pub elapsed: Duration,
}

/// Reader wrapper counting the bytes taken from the file.
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens `path`, decompressing by its extension (`.gz`, `.zst`).
fn open_decoded(path: &Path, count: Arc<AtomicU64>) -> Result<Box<dyn BufRead>, IndexError> {
    let file = File::open(path).map_err(|e| IndexError::io(path, e))?;
    let raw = CountingReader { inner: file, count };
    let name = path.to_string_lossy();
    let decoded: Box<dyn Read> = if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(raw)))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(raw).map_err(|e| IndexError::io(path, e))?)
    } else {
        Box::new(raw)
    };
    Ok(Box::new(BufReader::with_capacity(256 << 10, decoded)))
}

/// Indexes `files`, each labelled by its options, into the index at `root` in one writer
/// session (with `bulk_load`, one merge at the end), parsing with `parsers` (by each option's
/// source name), calling `progress` now and then.
pub fn backfill_files(
    root: &Path,
    settings: &IndexSettings,
    files: &[(PathBuf, BackfillOptions)],
    parsers: Arc<crate::parsers::ParserRegistry>,
    progress: &mut dyn FnMut(BackfillProgress),
) -> Result<BackfillSummary, IndexError> {
    let started = Instant::now();
    let mut writer = IndexWriterSet::open(root, settings, parsers)?;
    let read_bytes = Arc::new(AtomicU64::new(0));
    let mut summary = BackfillSummary::default();
    let mut last_commit = Instant::now();
    let mut last_report = Instant::now();
    for (path, opts) in files {
        let origin = Origin::new(&opts.source, &opts.category, opts.format, &opts.host);
        let canonical = path.canonicalize().map_err(|e| IndexError::io(path, e))?;
        let stream = format!("file:{}", canonical.display());
        let reader = open_decoded(path, read_bytes.clone())?;
        let mut lines = BoundedLines::new(reader, opts.max_line_bytes, Overlong::Truncate);
        let mut line_no: u64 = 0;
        while let Some(line) = lines.next_line().map_err(|e| IndexError::io(path, e))? {
            line_no += 1;
            summary.lines += 1;
            if line.bytes.is_empty() {
                continue;
            }
            let mut flags = RecordFlags::empty();
            if line.cut == Cut::Truncated {
                flags.insert(RecordFlags::TRUNCATED);
                summary.truncated += 1;
            }
            let record = Record {
                origin: origin.clone(),
                received_at: Timestamp::now(),
                position: crate::record::Position::None,
                flags,
                raw: Bytes::copy_from_slice(line.bytes),
            };
            match writer.add(&stream, line_no, &record)? {
                AddOutcome::Added => summary.added += 1,
                AddOutcome::AlreadyIndexed => summary.already_indexed += 1,
                AddOutcome::Expired => summary.expired += 1,
            }
            if line_no.is_multiple_of(1024) {
                if last_commit.elapsed() >= settings.commit_interval {
                    writer.commit()?;
                    last_commit = Instant::now();
                }
                if last_report.elapsed() >= Duration::from_millis(100) {
                    progress(BackfillProgress {
                        file_bytes: read_bytes.load(Ordering::Relaxed),
                        lines: summary.lines,
                    });
                    last_report = Instant::now();
                }
            }
        }
        summary.files += 1;
    }
    writer.close()?;
    summary.file_bytes = read_bytes.load(Ordering::Relaxed);
    progress(BackfillProgress {
        file_bytes: summary.file_bytes,
        lines: summary.lines,
    });
    summary.elapsed = started.elapsed();
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_lines() {
        // The backfill's reading: lines cut at `max_line_bytes`, the cut flagged.
        let data = b"short\r\nthis one is long\nlast".to_vec();
        let r: Box<dyn BufRead> = Box::new(BufReader::with_capacity(4, &data[..]));
        let mut lines = BoundedLines::new(r, 8, Overlong::Truncate);
        let line = lines.next_line().unwrap().unwrap();
        assert_eq!((line.bytes, line.cut), (&b"short"[..], Cut::Whole));
        let line = lines.next_line().unwrap().unwrap();
        assert_eq!((line.bytes, line.cut), (&b"this one"[..], Cut::Truncated));
        let line = lines.next_line().unwrap().unwrap();
        assert_eq!((line.bytes, line.cut), (&b"last"[..], Cut::Whole));
        assert!(lines.next_line().unwrap().is_none());
    }
}
