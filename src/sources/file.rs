//! The `file` source: tails files matched by `include` globs into the journal.
//!
//! Runs on its own thread (file I/O never blocks the async reactor). Each poll it rescans the globs,
//! reads every tracked file to its end in large chunks, splits lines with `memchr` (a line is a
//! zero-copy slice of the read buffer), and appends them in one journal batch per chunk together
//! with a checkpoint `file/<source>/<dev>:<inode>` = `<offset> <fingerprint length> <fingerprint>`,
//! so the resume point becomes durable with the lines it covers.
//!
//! Identity: a file is tracked by device and inode while open, and a checkpoint is only trusted when
//! the CRC-32C of the file's first bytes still matches (an inode reused by a new file is read from
//! its start). Rotation by rename: the old file stays open and is drained; it is released once its
//! path no longer leads to it and it has not grown for `release_after`. Truncation (copytruncate):
//! a size below the read offset restarts reading at 0. Rotated `*.gz` / `*.zst` files are never read.
//!
//! This module touches the files it tails and the journal's append side, nothing else.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::config::{FileSourceConfig, ReadFrom};
use crate::journal::{AppendBatch, Appender, Checkpoint};
use crate::pipeline::SourceContext;
use crate::record::{Position, Record, RecordFlags, Timestamp};

/// Bytes read per `read` call.
const READ_CHUNK: usize = 256 * 1024;
/// How many leading bytes identify a file.
const FINGERPRINT_BYTES: u64 = 256;
/// How often the globs are expanded again.
const RESCAN_EVERY: Duration = Duration::from_millis(500);
/// A file whose path no longer leads to it is released after this long without growth.
const RELEASE_AFTER: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileKey {
    dev: u64,
    ino: u64,
}

struct TrackedFile {
    path: PathBuf,
    file: File,
    /// Offset just past the last complete line handed to the journal.
    committed: u64,
    /// Offset up to which bytes were read (committed + partial.len()).
    read_to: u64,
    partial: BytesMut,
    fingerprint: (u64, u32),
    last_growth: Instant,
    /// The path glob matched this file on the last rescan.
    seen: bool,
}

/// Starts the source thread.
pub fn spawn(
    config: FileSourceConfig,
    ctx: SourceContext,
) -> Result<JoinHandle<Result<(), String>>, String> {
    let include: Vec<glob::Pattern> = compile(&config.include)?;
    let exclude: Vec<glob::Pattern> = compile(&config.exclude)?;
    std::thread::Builder::new()
        .name(format!("file-{}", ctx.name))
        .spawn(move || {
            let mut tailer = Tailer {
                appender: ctx.journal.appender(),
                checkpoint_prefix: format!("file/{}/", ctx.name),
                config,
                include,
                exclude,
                files: HashMap::new(),
                started: false,
                ctx,
            };
            tailer.run()
        })
        .map_err(|e| format!("cannot start thread: {e}"))
}

fn compile(patterns: &[String]) -> Result<Vec<glob::Pattern>, String> {
    patterns
        .iter()
        .map(|p| glob::Pattern::new(p).map_err(|e| format!("invalid glob `{p}`: {e}")))
        .collect()
}

struct Tailer {
    ctx: SourceContext,
    appender: Appender,
    checkpoint_prefix: String,
    config: FileSourceConfig,
    include: Vec<glob::Pattern>,
    exclude: Vec<glob::Pattern>,
    files: HashMap<FileKey, TrackedFile>,
    /// The first scan has happened (files found later are new and read from their start).
    started: bool,
}

impl Tailer {
    fn run(&mut self) -> Result<(), String> {
        let poll = self.config.poll_interval.0.max(Duration::from_millis(10));
        let mut last_scan = Instant::now() - RESCAN_EVERY;
        loop {
            let stopping = self.ctx.shutdown.is_triggered();
            if last_scan.elapsed() >= RESCAN_EVERY {
                self.rescan();
                last_scan = Instant::now();
            }
            let mut progressed = false;
            let keys: Vec<FileKey> = self.files.keys().copied().collect();
            for key in keys {
                match self.read_available(key) {
                    Ok(p) => progressed |= p,
                    Err(e) => {
                        if let Some(f) = self.files.remove(&key) {
                            tracing::warn!(source = %self.ctx.name, path = %f.path.display(), "Stopped reading file: {e}.");
                        }
                    }
                }
            }
            self.release_finished();
            if stopping {
                return Ok(());
            }
            if !progressed {
                std::thread::sleep(poll);
            }
        }
    }

    fn is_candidate(&self, path: &Path) -> bool {
        let name = path.to_string_lossy();
        if name.ends_with(".gz")
            || name.ends_with(".zst")
            || name.ends_with(".bz2")
            || name.ends_with(".xz")
        {
            return false;
        }
        !self.exclude.iter().any(|p| p.matches_path(path))
    }

    /// Expands the globs and starts tracking new files.
    fn rescan(&mut self) {
        for f in self.files.values_mut() {
            f.seen = false;
        }
        let first_scan = !self.started;
        self.started = true;
        let mut paths = Vec::new();
        for pattern in &self.include {
            match glob::glob(pattern.as_str()) {
                Ok(iter) => paths.extend(iter.flatten()),
                Err(e) => {
                    tracing::warn!(source = %self.ctx.name, "Bad glob {}: {e}", pattern.as_str())
                }
            }
        }
        paths.sort();
        paths.dedup();
        for path in paths {
            if !self.is_candidate(&path) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let key = FileKey {
                dev: meta.dev(),
                ino: meta.ino(),
            };
            if let Some(f) = self.files.get_mut(&key) {
                f.seen = true;
                f.path = path;
                continue;
            }
            match self.open(&path, key, first_scan) {
                Ok(tracked) => {
                    tracing::info!(source = %self.ctx.name, path = %path.display(), offset = tracked.committed, "Tailing file.");
                    self.files.insert(key, tracked);
                }
                Err(e) => {
                    tracing::warn!(source = %self.ctx.name, path = %path.display(), "Cannot open file: {e}.")
                }
            }
        }
    }

    fn checkpoint_key(&self, key: FileKey) -> String {
        format!("{}{}:{}", self.checkpoint_prefix, key.dev, key.ino)
    }

    fn open(&self, path: &Path, key: FileKey, first_scan: bool) -> std::io::Result<TrackedFile> {
        let mut file = File::open(path)?;
        let size = file.metadata()?.len();
        let mut start = 0;
        let mut resumed = false;
        if let Some(cp) = self.ctx.journal.checkpoint(&self.checkpoint_key(key))
            && let Some((offset, fp_len, fp)) = parse_checkpoint(&cp)
            && fingerprint(&mut file, fp_len)? == (fp_len, fp)
            && offset <= size
        {
            start = offset;
            resumed = true;
        }
        if !resumed && first_scan && self.config.read_from == ReadFrom::End {
            start = size;
        }
        let fp = fingerprint(&mut file, FINGERPRINT_BYTES.min(size))?;
        file.seek(SeekFrom::Start(start))?;
        Ok(TrackedFile {
            path: path.to_path_buf(),
            file,
            committed: start,
            read_to: start,
            partial: BytesMut::new(),
            fingerprint: fp,
            last_growth: Instant::now(),
            seen: true,
        })
    }

    /// Reads what the file has beyond our offset and journals complete lines. Returns whether
    /// anything was read.
    fn read_available(&mut self, key: FileKey) -> std::io::Result<bool> {
        let max_line = self.config.max_line_bytes.as_usize().max(1);
        let ck_key = self.checkpoint_key(key);
        let Some(f) = self.files.get_mut(&key) else {
            return Ok(false);
        };
        let size = f.file.metadata()?.len();
        if size < f.read_to {
            tracing::info!(source = %self.ctx.name, path = %f.path.display(), "File was truncated; reading from its start.");
            f.file.seek(SeekFrom::Start(0))?;
            f.committed = 0;
            f.read_to = 0;
            f.partial.clear();
        }
        if f.fingerprint.0 < FINGERPRINT_BYTES && size > f.fingerprint.0 {
            let at = f.read_to;
            f.fingerprint = fingerprint(&mut f.file, FINGERPRINT_BYTES.min(size))?;
            f.file.seek(SeekFrom::Start(at))?;
        }
        let mut progressed = false;
        loop {
            f.partial.reserve(READ_CHUNK);
            let n = read_into(&mut f.file, &mut f.partial, READ_CHUNK)?;
            if n == 0 {
                break;
            }
            progressed = true;
            f.read_to += n as u64;
            f.last_growth = Instant::now();
            let mut records = Vec::new();
            let mut bytes = 0u64;
            let now = Timestamp::now();
            let mut push = |line: Bytes, end: u64, flags: RecordFlags| {
                bytes += line.len() as u64;
                records.push(Record {
                    origin: self.ctx.origin.clone(),
                    received_at: now,
                    position: Position::File {
                        file_id: f.fingerprint.1 as u64,
                        end_offset: end,
                    },
                    flags,
                    raw: line,
                });
            };
            loop {
                match memchr::memchr(b'\n', &f.partial) {
                    Some(i) => {
                        let mut line = f.partial.split_to(i + 1).freeze();
                        f.committed += line.len() as u64;
                        line.truncate(i);
                        if line.last() == Some(&b'\r') {
                            line.truncate(i - 1);
                        }
                        if line.len() > max_line {
                            // Cut an over-long line into flagged pieces.
                            let end = f.committed;
                            let total = line.len();
                            let mut start = 0;
                            while start < total {
                                let stop = (start + max_line).min(total);
                                let mut flags = RecordFlags::TRUNCATED;
                                if stop < total {
                                    flags.insert(RecordFlags::CONTINUED);
                                }
                                push(line.slice(start..stop), end, flags);
                                start = stop;
                            }
                        } else {
                            push(line, f.committed, RecordFlags::empty());
                        }
                    }
                    None if f.partial.len() >= max_line => {
                        let piece = f.partial.split_to(max_line).freeze();
                        f.committed += piece.len() as u64;
                        let mut flags = RecordFlags::TRUNCATED;
                        flags.insert(RecordFlags::CONTINUED);
                        push(piece, f.committed, flags);
                    }
                    None => break,
                }
            }
            if records.is_empty() {
                continue;
            }
            let count = records.len() as u64;
            let value = format!("{} {} {}", f.committed, f.fingerprint.0, f.fingerprint.1);
            self.appender
                .append_blocking(AppendBatch {
                    records,
                    checkpoints: vec![Checkpoint {
                        key: ck_key.clone(),
                        value: Bytes::from(value),
                    }],
                })
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            self.ctx.stats.add(count, bytes);
        }
        Ok(progressed)
    }

    /// Releases files that rotated away (or were deleted) and are fully read.
    fn release_finished(&mut self) {
        let name = &self.ctx.name;
        self.files.retain(|_, f| {
            let keep = f.seen || f.last_growth.elapsed() < RELEASE_AFTER;
            if !keep {
                tracing::info!(source = %name, path = %f.path.display(), "Released rotated file after reading it to its end.");
            }
            keep
        });
    }
}

fn read_into(file: &mut File, buf: &mut BytesMut, max: usize) -> std::io::Result<usize> {
    let len = buf.len();
    buf.resize(len + max, 0);
    let res = loop {
        match file.read(&mut buf[len..]) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    let n = *res.as_ref().unwrap_or(&0);
    buf.truncate(len + n);
    res
}

/// CRC-32C of the first `len` bytes (the file's position is left changed).
fn fingerprint(file: &mut File, len: u64) -> std::io::Result<(u64, u32)> {
    let mut buf = vec![0u8; len as usize];
    file.seek(SeekFrom::Start(0))?;
    let mut got = 0;
    while got < buf.len() {
        let n = file.read(&mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok((got as u64, crc32c::crc32c(&buf)))
}

fn parse_checkpoint(value: &[u8]) -> Option<(u64, u64, u32)> {
    let s = std::str::from_utf8(value).ok()?;
    let mut it = s.split(' ');
    let offset = it.next()?.parse().ok()?;
    let fp_len = it.next()?.parse().ok()?;
    let fp = it.next()?.parse().ok()?;
    Some((offset, fp_len, fp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_values() {
        assert_eq!(parse_checkpoint(b"120 256 77"), Some((120, 256, 77)));
        assert_eq!(parse_checkpoint(b"x"), None);
        assert_eq!(parse_checkpoint(b"1 2"), None);
    }
}
