//! Chunked reading and line splitting for one file.
//!
//! Bytes are read with `pread` straight into the spare capacity of a `BytesMut` (no zeroing, no
//! copy), lines are found with `memchr`, and each line is a zero-copy `Bytes` slice of the read
//! buffer: no allocation per line. LF ends a line, a CR before it is dropped (CRLF tolerated).
//! A line longer than `max_line` is cut into pieces flagged `TRUNCATED` (every piece) and
//! `CONTINUED` (every piece but the last); bytes after the last newline are held as the partial
//! line until their newline arrives or the caller flushes them (`NO_NEWLINE`).
//!
//! This module reads the file it is handed at the offsets it tracks, nothing else.

use std::fs::File;
use std::os::fd::AsRawFd;

use bytes::{Bytes, BytesMut};

use crate::record::RecordFlags;

/// Reads one file from a byte offset and splits what it reads into lines.
#[derive(Debug)]
pub struct LineReader {
    /// Bytes read but not yet handed out as lines; `buf[0]` is at file offset `buf_start`.
    buf: BytesMut,
    buf_start: u64,
    /// Leading bytes of `buf` already searched for a newline.
    scanned: usize,
    /// Pieces of the current over-long line were already handed out.
    in_long_line: bool,
    max_line: usize,
    chunk: usize,
}

impl LineReader {
    pub fn new(offset: u64, max_line: usize, chunk: usize) -> LineReader {
        LineReader {
            buf: BytesMut::new(),
            buf_start: offset,
            scanned: 0,
            in_long_line: false,
            max_line: max_line.max(1),
            chunk: chunk.max(4096),
        }
    }

    /// The file offset up to which bytes were read.
    pub fn read_to(&self) -> u64 {
        self.buf_start + self.buf.len() as u64
    }

    /// The offset just past the last line handed out (where a restart would resume).
    pub fn line_start(&self) -> u64 {
        self.buf_start
    }

    /// Bytes of the held partial line.
    pub fn partial_len(&self) -> usize {
        self.buf.len()
    }

    /// Forgets everything held and continues at `offset` (after a truncation).
    pub fn reset(&mut self, offset: u64) {
        self.buf = BytesMut::new();
        self.buf_start = offset;
        self.scanned = 0;
        self.in_long_line = false;
    }

    /// Reads up to `want` bytes (at most one chunk) at [`Self::read_to`]. Returns the number of
    /// bytes read, 0 at end of file.
    pub fn fill(&mut self, file: &File, want: u64) -> std::io::Result<usize> {
        let want = (want.min(self.chunk as u64) as usize).max(1);
        self.buf.reserve(want);
        let offset = self.read_to();
        let spare = self.buf.spare_capacity_mut();
        let len = want.min(spare.len());
        let n = loop {
            // SAFETY: `spare` is writable, allocated memory of at least `len` bytes owned by
            // `self.buf`; pread writes at most `len` bytes into it, and only the `n` bytes it
            // reports as written are then marked initialized with `set_len`.
            let r = unsafe {
                libc::pread(
                    file.as_raw_fd(),
                    spare.as_mut_ptr().cast::<libc::c_void>(),
                    len,
                    offset as libc::off_t,
                )
            };
            if r >= 0 {
                break r as usize;
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        // SAFETY: pread initialized exactly `n <= len <= spare.len()` bytes after the current end.
        unsafe { self.buf.set_len(self.buf.len() + n) };
        Ok(n)
    }

    /// Hands out every complete line held: `emit(line, end_offset, flags)` where `end_offset`
    /// is the file offset just past the line's terminator (or past the piece, for pieces cut from
    /// a line that has no newline yet).
    pub fn split(&mut self, emit: &mut impl FnMut(Bytes, u64, RecordFlags)) {
        while let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..]) {
            let i = i + self.scanned;
            let mut line = self.buf.split_to(i + 1).freeze();
            self.buf_start += (i + 1) as u64;
            self.scanned = 0;
            line.truncate(i);
            if line.last() == Some(&b'\r') {
                line.truncate(i - 1);
            }
            let end = self.buf_start;
            if line.len() > self.max_line {
                let total = line.len();
                let mut start = 0;
                while start < total {
                    let stop = (start + self.max_line).min(total);
                    let mut flags = RecordFlags::TRUNCATED;
                    if stop < total {
                        flags.insert(RecordFlags::CONTINUED);
                    }
                    emit(line.slice(start..stop), end, flags);
                    start = stop;
                }
            } else if self.in_long_line {
                emit(line, end, RecordFlags::TRUNCATED);
            } else {
                emit(line, end, RecordFlags::empty());
            }
            self.in_long_line = false;
        }
        self.scanned = self.buf.len();
        // No newline within max_line bytes: cut pieces now so memory stays bounded.
        while self.buf.len() > self.max_line {
            let piece = self.buf.split_to(self.max_line).freeze();
            self.buf_start += self.max_line as u64;
            self.scanned -= self.max_line;
            let mut flags = RecordFlags::TRUNCATED;
            flags.insert(RecordFlags::CONTINUED);
            emit(piece, self.buf_start, flags);
            self.in_long_line = true;
        }
        if self.buf.is_empty() {
            // Let the read buffer go with the records that still point into it.
            self.buf = BytesMut::new();
        }
    }

    /// Hands out the held partial line (flagged `NO_NEWLINE`), if any.
    pub fn take_partial(&mut self, emit: &mut impl FnMut(Bytes, u64, RecordFlags)) {
        if self.buf.is_empty() {
            return;
        }
        let piece = std::mem::take(&mut self.buf).freeze();
        self.buf_start += piece.len() as u64;
        self.scanned = 0;
        let mut flags = RecordFlags::NO_NEWLINE;
        if self.in_long_line {
            flags.insert(RecordFlags::TRUNCATED);
        }
        self.in_long_line = false;
        emit(piece, self.buf_start, flags);
    }

    /// Copies a small held partial line out of a large read buffer, so an idle file does not pin
    /// a whole chunk.
    pub fn compact(&mut self) {
        if !self.buf.is_empty() && self.buf.capacity() > 4 * self.buf.len() + 4096 {
            self.buf = BytesMut::from(&self.buf[..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(r: &mut LineReader, file: &File) -> Vec<(String, u64, RecordFlags)> {
        let mut out = Vec::new();
        while r.fill(file, u64::MAX).unwrap() > 0 {
            r.split(&mut |l: Bytes, e, f| {
                out.push((String::from_utf8_lossy(&l).into_owned(), e, f))
            });
        }
        out
    }

    #[test]
    fn lines_crlf_partials_and_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut w = std::fs::File::create(&path).unwrap();
        w.write_all(b"one\r\ntwo\n\nabcdefghij\nxyz").unwrap();
        let file = File::open(&path).unwrap();
        let mut r = LineReader::new(0, 4, 4096);
        let out = collect(&mut r, &file);
        let none = RecordFlags::empty();
        let t = RecordFlags::TRUNCATED;
        let mut tc = t;
        tc.insert(RecordFlags::CONTINUED);
        assert_eq!(
            out,
            vec![
                ("one".into(), 5, none),
                ("two".into(), 9, none),
                ("".into(), 10, none),
                ("abcd".into(), 21, tc),
                ("efgh".into(), 21, tc),
                ("ij".into(), 21, t),
            ]
        );
        assert_eq!(r.partial_len(), 3);
        assert_eq!(r.line_start(), 21);
        // The partial line completes later.
        w.write_all(b"\n").unwrap();
        let out = collect(&mut r, &file);
        assert_eq!(out, vec![("xyz".into(), 25, none)]);
        // A partial flushed by timeout.
        w.write_all(b"tail").unwrap();
        assert!(collect(&mut r, &file).is_empty());
        let mut flushed = Vec::new();
        r.take_partial(&mut |l: Bytes, e, f| flushed.push((l, e, f)));
        assert_eq!(flushed.len(), 1);
        assert_eq!(&flushed[0].0[..], b"tail");
        assert_eq!(flushed[0].1, 29);
        assert_eq!(flushed[0].2, RecordFlags::NO_NEWLINE);
    }

    #[test]
    fn a_long_line_without_newline_is_cut_as_it_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let mut w = std::fs::File::create(&path).unwrap();
        w.write_all(b"0123456789").unwrap();
        let file = File::open(&path).unwrap();
        let mut r = LineReader::new(0, 4, 4096);
        let out = collect(&mut r, &file);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out.iter().all(|o| o.2.contains(RecordFlags::CONTINUED)));
        w.write_all(b"ab\n").unwrap();
        let out = collect(&mut r, &file);
        assert_eq!(out, vec![("89ab".into(), 13, RecordFlags::TRUNCATED)]);
    }

    #[test]
    fn reads_in_chunks_from_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let text: String = (0..2000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let file = File::open(&path).unwrap();
        let mut r = LineReader::new(7, 1 << 20, 4096);
        let out = collect(&mut r, &file);
        assert_eq!(out.len(), 1999);
        assert_eq!(out[0].0, "line 1");
        assert_eq!(out.last().unwrap().1, text.len() as u64);
    }
}
