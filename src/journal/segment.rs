//! Segment files: naming, listing, reading frames with positioned reads, resynchronising after
//! corruption, and the atomic small-file write used for cursors and the checkpoint snapshot.
//!
//! Touches only files under the journal directory it is given.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::format::{self, FRAME_HEADER_LEN, FRAME_SYNC, FrameCheck, FrameHeader};

/// Segment file suffix.
pub const SEGMENT_SUFFIX: &str = ".qjs";
/// How much a reader fetches per positioned read.
const READ_CHUNK: usize = 1 << 20;
/// A mapped reader gives the pages it read back to the kernel in steps of this size, so a map
/// over a 128 MiB segment adds at most about this much to the resident set.
const RELEASE_STEP: u64 = 8 << 20;

/// `<first_seq, 20 digits>.qjs`: names sort in sequence order.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The segment files in `dir`, sorted by first sequence number.
pub fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_segment_file_name) {
            out.push((seq, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Creates (or empties) the segment starting at `first_seq` in `dir` and writes its header,
/// without syncing anything: callers decide when the file and the directory entry are durable.
pub fn create_segment_file(dir: &Path, first_seq: u64) -> io::Result<(PathBuf, File)> {
    let path = dir.join(segment_file_name(first_seq));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    file.write_all_at(&format::encode_segment_header(first_seq), 0)?;
    Ok((path, file))
}

pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `dir/name` with `bytes` atomically: temporary file, fsync, rename, directory fsync.
/// A failed attempt leaves no temporary file behind (it would hold space on a full disk).
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all_at(bytes, 0)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, dir.join(name))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    fsync_dir(dir)
}

/// The ballast file: space held back so that cursor acknowledgements and the checkpoint snapshot
/// can still be written when the disk is full (acknowledging is what frees journal space).
pub const RESERVE_FILE: &str = "RESERVE";
pub const RESERVE_BYTES: usize = 1 << 20;

/// Creates the reserve file if it is missing or short.
pub fn create_reserve(dir: &Path) -> io::Result<()> {
    let path = dir.join(RESERVE_FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() >= RESERVE_BYTES as u64) {
        return Ok(());
    }
    write_atomic(dir, RESERVE_FILE, &vec![0u8; RESERVE_BYTES])
}

/// True for "no space left" errors (ENOSPC, EDQUOT).
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// What [`FrameReader::frame_at`] found.
#[derive(Debug)]
pub enum FrameAt {
    /// A valid frame: its header, its body (sharing the read buffer) and the next frame's offset.
    Frame {
        header: FrameHeader,
        body: Bytes,
        next: u64,
    },
    /// `offset` is the readable end.
    End,
    /// Something that is not a valid frame starts here (corruption or a torn write).
    Invalid,
}

/// Reads frames from one segment file, either with positioned reads into shared buffers or
/// through a memory map of the whole (sealed) file. Record payloads are slices of those buffers
/// or of the map, never copies.
pub struct FrameReader {
    file: File,
    /// The buffered bytes (or the whole map) and the file offset of their first byte.
    buf: Bytes,
    buf_start: u64,
    /// The map `buf` views, for a sealed segment.
    map: Option<Arc<memmap2::Mmap>>,
    /// Bytes of the map before this offset were released (`MADV_DONTNEED`).
    released: u64,
}

/// A shared map as the owner of [`Bytes`] views.
struct SharedMap(Arc<memmap2::Mmap>);

impl AsRef<[u8]> for SharedMap {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl FrameReader {
    /// A reader with positioned reads: for the active segment, which grows while it is read.
    pub fn open(path: &Path) -> io::Result<FrameReader> {
        Ok(FrameReader {
            file: File::open(path)?,
            buf: Bytes::new(),
            buf_start: 0,
            map: None,
            released: 0,
        })
    }

    /// A reader over a memory map: for sealed segments (faster; see `benches/journal.rs`).
    ///
    /// Sealed segments are never written or truncated again, only deleted, which leaves an
    /// existing map valid; so the map cannot fault (SIGBUS) unless someone else truncates a
    /// journal file. Records read this way keep the map alive.
    pub fn open_mapped(path: &Path) -> io::Result<FrameReader> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            return FrameReader::open(path);
        }
        // SAFETY: see above: a sealed segment's bytes do not change while the journal runs.
        let map = Arc::new(unsafe { memmap2::Mmap::map(&file)? });
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(FrameReader {
            file,
            buf: Bytes::from_owner(SharedMap(map.clone())),
            buf_start: 0,
            map: Some(map),
            released: 0,
        })
    }

    /// Gives the mapped pages before `offset` back to the kernel once a [`RELEASE_STEP`] of them
    /// was read. Records still viewing them read them again from the page cache on access: a
    /// sealed segment's bytes never change (see [`FrameReader::open_mapped`]), so the contents
    /// are the same.
    fn release_before(&mut self, offset: u64) {
        let Some(map) = &self.map else {
            return;
        };
        let end = offset.min(map.len() as u64) & !(RELEASE_STEP - 1);
        if end <= self.released {
            return;
        }
        // SAFETY: MADV_DONTNEED on a read-only file mapping drops the pages; the next access
        // faults them in from the (unchanged) file, so every view keeps reading the same bytes.
        let _ = unsafe {
            map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                self.released as usize,
                (end - self.released) as usize,
            )
        };
        self.released = end;
    }

    pub fn file_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Returns the bytes `[offset, offset + want)`, or fewer when `limit` (the readable end)
    /// comes first.
    fn window(&mut self, offset: u64, want: usize, limit: u64) -> io::Result<Bytes> {
        let want = want.min(limit.saturating_sub(offset) as usize);
        if self.map.is_some() {
            self.release_before(offset);
            let len = self.buf.len() as u64;
            let start = offset.min(len) as usize;
            let end = (offset + want as u64).min(len) as usize;
            return Ok(self.buf.slice(start..end));
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if offset >= self.buf_start && offset + want as u64 <= buf_end {
            let at = (offset - self.buf_start) as usize;
            return Ok(self.buf.slice(at..at + want));
        }
        let len = want
            .max(READ_CHUNK)
            .min(limit.saturating_sub(offset) as usize);
        let mut chunk = BytesMut::zeroed(len);
        let mut filled = 0;
        while filled < len {
            match self
                .file
                .read_at(&mut chunk[filled..], offset + filled as u64)
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        chunk.truncate(filled);
        self.buf = chunk.freeze();
        self.buf_start = offset;
        Ok(self.buf.slice(0..want.min(filled)))
    }

    /// The frame at `offset`, reading no further than `limit`.
    pub fn frame_at(&mut self, offset: u64, limit: u64) -> io::Result<FrameAt> {
        if offset >= limit {
            return Ok(FrameAt::End);
        }
        let mut want = FRAME_HEADER_LEN;
        loop {
            let w = self.window(offset, want.max(4096), limit)?;
            match format::check_frame(&w) {
                FrameCheck::Valid(header) => {
                    let total = header.total_len();
                    return Ok(FrameAt::Frame {
                        header,
                        body: w.slice(FRAME_HEADER_LEN..total),
                        next: offset + total as u64,
                    });
                }
                FrameCheck::Invalid => return Ok(FrameAt::Invalid),
                FrameCheck::NeedMore(n) => {
                    if n <= w.len() || offset + n as u64 > limit {
                        // The frame would run past the readable end.
                        return Ok(FrameAt::Invalid);
                    }
                    want = n;
                }
            }
        }
    }

    /// After corruption at `from - 1`: the offset of the next valid frame whose first sequence
    /// number is at least `min_seq`, searching up to `limit`.
    pub fn resync(&mut self, from: u64, limit: u64, min_seq: u64) -> io::Result<Option<u64>> {
        let mut pos = from;
        while pos < limit {
            let w = self.window(pos, READ_CHUNK, limit)?;
            if w.is_empty() {
                return Ok(None);
            }
            match memchr::memmem::find(&w, &FRAME_SYNC) {
                Some(i) => {
                    let at = pos + i as u64;
                    if let FrameAt::Frame { header, .. } = self.frame_at(at, limit)? {
                        if header.first_seq >= min_seq {
                            return Ok(Some(at));
                        }
                    }
                    pos = at + 1;
                }
                None => {
                    let end = pos + w.len() as u64;
                    if end >= limit {
                        return Ok(None);
                    }
                    // Keep the last bytes: a marker may straddle two windows.
                    pos = end - (FRAME_SYNC.len() as u64 - 1);
                }
            }
        }
        Ok(None)
    }
}

/// Frame walk over an in-memory segment image (used to compare `mmap` with positioned reads).
/// Returns (frames, records, payload bytes of the frame bodies).
pub fn scan_slice(data: &[u8]) -> (u64, u64, u64) {
    let mut pos = format::SEGMENT_HEADER_LEN.min(data.len());
    let (mut frames, mut records, mut bytes) = (0, 0, 0);
    while pos < data.len() {
        match format::check_frame(&data[pos..]) {
            FrameCheck::Valid(h) => {
                frames += 1;
                records += h.count as u64;
                bytes += h.body_len as u64;
                pos += h.total_len();
            }
            _ => match memchr::memmem::find(&data[pos + 1..], &FRAME_SYNC) {
                Some(i) => pos += 1 + i,
                None => break,
            },
        }
    }
    (frames, records, bytes)
}

/// The same walk with positioned reads (the way the active segment is read).
pub fn scan_file(path: &Path) -> io::Result<(u64, u64, u64)> {
    let mut reader = FrameReader::open(path)?;
    let limit = reader.file_len()?;
    let mut pos = format::SEGMENT_HEADER_LEN as u64;
    let (mut frames, mut records, mut bytes) = (0, 0, 0);
    loop {
        match reader.frame_at(pos, limit)? {
            FrameAt::Frame { header, next, .. } => {
                frames += 1;
                records += header.count as u64;
                bytes += header.body_len as u64;
                pos = next;
            }
            FrameAt::End => break,
            FrameAt::Invalid => match reader.resync(pos + 1, limit, 0)? {
                Some(p) => pos = p,
                None => break,
            },
        }
    }
    Ok((frames, records, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_and_parse() {
        assert_eq!(segment_file_name(12), "00000000000000000012.qjs");
        assert_eq!(
            parse_segment_file_name("00000000000000000012.qjs"),
            Some(12)
        );
        assert_eq!(parse_segment_file_name("12.qjs"), None);
        assert_eq!(parse_segment_file_name("0000000000000000001x.qjs"), None);
    }

    /// A mapped reader releases what it read in [`RELEASE_STEP`]s, and the records it handed
    /// out before still read the same bytes afterwards (they fault back in from the file).
    #[test]
    fn released_map_pages_still_read_the_same_bytes() {
        use crate::journal::{AppendBatch, Journal, JournalConfig};
        use crate::record::{Format, Origin, Record};
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(
            dir.path(),
            JournalConfig {
                segment_bytes: 24 << 20,
                ..JournalConfig::default()
            },
        )
        .unwrap();
        let appender = journal.appender();
        let origin = Origin::new("t", "c", Format::Raw, "h");
        let mut last = 0;
        for b in 0..40u32 {
            let records = (0..1000u32)
                .map(|i| Record::new(origin.clone(), Bytes::from(format!("{b}-{i}-{:0>1000}", i))))
                .collect();
            let batch = AppendBatch {
                records,
                checkpoints: Vec::new(),
            };
            last = appender.append_blocking(batch).unwrap().last_seq;
        }
        appender.wait_durable_blocking(last).unwrap();
        journal.close().unwrap();
        let (_, first) = list_segments(dir.path()).unwrap().remove(0);
        let len = std::fs::metadata(&first).unwrap().len();
        assert!(len > 2 * RELEASE_STEP, "{len}");
        let mut reader = FrameReader::open_mapped(&first).unwrap();
        let mut fresh = FrameReader::open(&first).unwrap();
        let mut bodies = Vec::new();
        let mut at = format::SEGMENT_HEADER_LEN as u64;
        while let FrameAt::Frame { body, next, .. } = reader.frame_at(at, len).unwrap() {
            bodies.push((at, body));
            at = next;
        }
        assert!(reader.released >= 2 * RELEASE_STEP, "{}", reader.released);
        for (at, body) in &bodies {
            let FrameAt::Frame { body: again, .. } = fresh.frame_at(*at, len).unwrap() else {
                panic!("no frame at {at}");
            };
            assert!(
                body[..] == again[..],
                "frame at {at} changed after its pages were released"
            );
        }
    }
}
