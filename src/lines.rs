//! The bounded line splitter of the commands that read files or stdin line by line (`quill
//! parse`, `quill bytes`' offline join, `quill cat`, `quill send`, index backfill).
//!
//! [`BoundedLines`] hands out one line at a time from a [`BufRead`], never holding more than
//! `max` bytes of a line: an over-long line is either split into pieces of `max` bytes (each but
//! the last marked [`Cut::Continued`], so no byte is lost: what the file source does) or cut at
//! `max` bytes with the rest up to its newline skipped ([`Cut::Truncated`]); the caller picks
//! with [`Overlong`]. A line ends at `\n`; one `\r` before it is removed (CRLF files read as LF
//! ones) unless [`BoundedLines::keep_cr`] says otherwise. A last line without a newline is handed out too ([`Line::newline`] false).
//!
//! Pure over the reader it is given; imports nothing of the crate.

use std::io::{self, BufRead};

/// What happens to a line longer than the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlong {
    /// Pieces of `max` bytes, every byte kept.
    Split,
    /// The first `max` bytes, the rest of the line skipped.
    Truncate,
}

/// How a line handed out relates to the line in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The whole line.
    Whole,
    /// A `max`-byte piece of a longer line: the next line handed out continues it.
    Continued,
    /// The last piece of a line handed out in pieces.
    LastPiece,
    /// The line's first `max` bytes; the rest was skipped.
    Truncated,
}

/// One line (or piece of one), borrowed until the next call.
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// The bytes, without the `\n` (and a `\r` before it).
    pub bytes: &'a [u8],
    /// The line ended with `\n` in the input (false for a piece, or a last line without one).
    pub newline: bool,
    pub cut: Cut,
}

/// Lines of a reader, each at most `max` bytes.
pub struct BoundedLines<R> {
    reader: R,
    max: usize,
    overlong: Overlong,
    line: Vec<u8>,
    /// The last line handed out was a [`Cut::Continued`] piece.
    continuing: bool,
    /// Remove a `\r` before the `\n`.
    strip_cr: bool,
}

impl<R: BufRead> BoundedLines<R> {
    /// Lines of `reader` of at most `max` (at least 1) bytes, over-long ones treated as `overlong`
    /// says.
    pub fn new(reader: R, max: usize, overlong: Overlong) -> BoundedLines<R> {
        BoundedLines {
            reader,
            max: max.max(1),
            overlong,
            line: Vec::new(),
            continuing: false,
            strip_cr: true,
        }
    }

    /// Keeps a `\r` before the `\n` in the line (for byte-exact forwarding).
    pub fn keep_cr(mut self) -> BoundedLines<R> {
        self.strip_cr = false;
        self
    }

    /// The next line, `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.line.clear();
        let mut read_any = false;
        let mut truncated = false;
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                if !read_any {
                    return Ok(None);
                }
                let cut = if truncated {
                    Cut::Truncated
                } else {
                    Cut::Whole
                };
                return Ok(Some(self.line(false, cut)));
            }
            read_any = true;
            let (take, complete) = match memchr::memchr(b'\n', buf) {
                Some(i) => (i, true),
                None => (buf.len(), false),
            };
            let room = self.max - self.line.len();
            let used = take.min(room);
            if !truncated {
                self.line.extend_from_slice(&buf[..used]);
            }
            match self.overlong {
                Overlong::Split if take > room || (!complete && used == room && room > 0) => {
                    // A full piece and more of the line to come (or not known yet: the piece
                    // goes out now, as it may not grow).
                    self.reader.consume(used);
                    if take > room || self.more_of_line()? {
                        return Ok(Some(self.line(false, Cut::Continued)));
                    }
                    continue;
                }
                Overlong::Truncate if take > room => truncated = true,
                _ => {}
            }
            if complete {
                self.reader.consume(take + 1);
                if self.strip_cr && !truncated && self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                let cut = if truncated {
                    Cut::Truncated
                } else {
                    Cut::Whole
                };
                return Ok(Some(self.line(true, cut)));
            }
            self.reader.consume(take);
        }
    }

    /// After a full piece: whether the line goes on (its newline, or `\r\n`, is not next).
    fn more_of_line(&mut self) -> io::Result<bool> {
        let buf = self.reader.fill_buf()?;
        Ok(!matches!(buf, [] | [b'\n', ..]))
    }

    fn line(&mut self, newline: bool, cut: Cut) -> Line<'_> {
        let cut = match cut {
            Cut::Whole if self.continuing => Cut::LastPiece,
            other => other,
        };
        self.continuing = cut == Cut::Continued;
        Line {
            bytes: &self.line,
            newline,
            cut,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line of `input` read through a reader that hands out `chunk` bytes at a time.
    fn read(
        input: &[u8],
        max: usize,
        overlong: Overlong,
        chunk: usize,
    ) -> Vec<(String, bool, Cut)> {
        let reader = io::BufReader::with_capacity(chunk, input);
        let mut lines = BoundedLines::new(reader, max, overlong);
        let mut out = Vec::new();
        while let Some(l) = lines.next_line().unwrap() {
            out.push((
                String::from_utf8(l.bytes.to_vec()).unwrap(),
                l.newline,
                l.cut,
            ));
        }
        out
    }

    fn whole(s: &str, newline: bool) -> (String, bool, Cut) {
        (s.to_owned(), newline, Cut::Whole)
    }

    #[test]
    fn lines_crlf_and_a_last_line_without_newline() {
        for chunk in [1, 2, 3, 64] {
            for mode in [Overlong::Split, Overlong::Truncate] {
                assert_eq!(
                    read(b"a\r\nbc\n\nd", 8, mode, chunk),
                    vec![
                        whole("a", true),
                        whole("bc", true),
                        whole("", true),
                        whole("d", false)
                    ],
                    "chunk {chunk}"
                );
            }
        }
        assert!(read(b"", 8, Overlong::Split, 4).is_empty());
    }

    #[test]
    fn split_keeps_every_byte_in_bounded_pieces() {
        for chunk in [1, 2, 3, 5, 64] {
            let got = read(b"abcdefgh\nxy\nabcd\n", 3, Overlong::Split, chunk);
            let c = |s: &str| (s.to_owned(), false, Cut::Continued);
            let last = |s: &str| (s.to_owned(), true, Cut::LastPiece);
            assert_eq!(
                got,
                vec![
                    c("abc"),
                    c("def"),
                    last("gh"),
                    whole("xy", true),
                    c("abc"),
                    last("d")
                ],
                "chunk {chunk}"
            );
            // A line of exactly `max` bytes is whole, with or without its newline; with CRLF the
            // `\r` is one byte over: an empty last piece follows.
            assert_eq!(
                read(b"abc\nabc\r\nabc", 3, Overlong::Split, chunk),
                vec![whole("abc", true), c("abc"), last(""), whole("abc", false)],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn keep_cr_keeps_the_bytes_of_crlf_lines() {
        let mut lines =
            BoundedLines::new(io::BufReader::new(&b"a\r\nb\n"[..]), 8, Overlong::Split).keep_cr();
        assert_eq!(lines.next_line().unwrap().unwrap().bytes, b"a\r");
        assert_eq!(lines.next_line().unwrap().unwrap().bytes, b"b");
    }

    #[test]
    fn truncate_keeps_the_start_and_skips_the_rest() {
        for chunk in [1, 2, 3, 64] {
            assert_eq!(
                read(b"abcdefgh\nxy\nabcdef", 3, Overlong::Truncate, chunk),
                vec![
                    ("abc".to_owned(), true, Cut::Truncated),
                    whole("xy", true),
                    ("abc".to_owned(), false, Cut::Truncated),
                ],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn memory_stays_bounded_on_a_line_without_end() {
        let long = vec![b'x'; 1 << 20];
        let mut lines = BoundedLines::new(io::BufReader::new(&long[..]), 4096, Overlong::Truncate);
        let l = lines.next_line().unwrap().unwrap();
        assert_eq!((l.bytes.len(), l.cut), (4096, Cut::Truncated));
        assert!(lines.line.capacity() <= 8192);
        assert!(lines.next_line().unwrap().is_none());
    }
}
