//! Multi-line joining: lines that do not begin with a start pattern are appended to the record
//! before them (stack traces, wrapped messages).
//!
//! The start pattern is the config's [`StartPattern`] (a tiny anchored, byte-oriented matcher, no
//! regex engine on the hot path). A single-line record stays a zero-copy slice of the read
//! buffer; only records that really join lines are copied.
//!
//! This module is pure computation; it touches no files.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use crate::config::StartPattern;
use crate::record::RecordFlags;

/// A record being assembled.
#[derive(Debug)]
struct Pending {
    first: Bytes,
    joined: Option<BytesMut>,
    end_offset: u64,
    flags: RecordFlags,
    since: Instant,
}

impl Pending {
    fn len(&self) -> usize {
        self.joined.as_ref().map_or(self.first.len(), |j| j.len())
    }
    fn into_parts(self) -> (Bytes, u64, RecordFlags) {
        let raw = match self.joined {
            Some(j) => j.freeze(),
            None => self.first,
        };
        (raw, self.end_offset, self.flags)
    }
}

/// Joins lines into records by a start pattern.
#[derive(Debug)]
pub struct Joiner {
    pattern: StartPattern,
    max_bytes: usize,
    pending: Option<Pending>,
}

impl Joiner {
    pub fn new(pattern: StartPattern, max_bytes: usize) -> Joiner {
        Joiner {
            pattern,
            max_bytes: max_bytes.max(1),
            pending: None,
        }
    }

    /// Feeds one line; finished records go to `emit(raw, end_offset, flags)`.
    pub fn push(
        &mut self,
        line: Bytes,
        end_offset: u64,
        flags: RecordFlags,
        emit: &mut impl FnMut(Bytes, u64, RecordFlags),
    ) {
        let now = Instant::now();
        // Pieces of an over-long line pass through on their own.
        if flags.contains(RecordFlags::TRUNCATED) {
            self.flush(emit);
            emit(line, end_offset, flags);
            return;
        }
        let starts = self.pattern.matches(&line);
        match &mut self.pending {
            Some(p) if !starts => {
                if p.len() + 1 + line.len() > self.max_bytes {
                    // Too long to join further: emit what we have as a cut record and carry on.
                    let mut p = self.pending.take().expect("pending checked above");
                    p.flags.insert(RecordFlags::TRUNCATED);
                    p.flags.insert(RecordFlags::CONTINUED);
                    let (raw, end, f) = p.into_parts();
                    emit(raw, end, f);
                    self.pending = Some(Pending {
                        first: line,
                        joined: None,
                        end_offset,
                        flags: RecordFlags::TRUNCATED,
                        since: now,
                    });
                    return;
                }
                let joined = p.joined.get_or_insert_with(|| {
                    let mut j = BytesMut::with_capacity(p.first.len() + 1 + line.len() + 256);
                    j.extend_from_slice(&p.first);
                    j
                });
                joined.extend_from_slice(b"\n");
                joined.extend_from_slice(&line);
                p.end_offset = end_offset;
                p.since = now;
            }
            _ => {
                self.flush(emit);
                self.pending = Some(Pending {
                    first: line,
                    joined: None,
                    end_offset,
                    flags,
                    since: now,
                });
            }
        }
    }

    /// Emits the pending record, if any.
    pub fn flush(&mut self, emit: &mut impl FnMut(Bytes, u64, RecordFlags)) {
        if let Some(p) = self.pending.take() {
            let (raw, end, flags) = p.into_parts();
            emit(raw, end, flags);
        }
    }

    /// When the pending record got its last line.
    pub fn pending_since(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.since)
    }

    /// Drops the pending record (its bytes will be read again after a restart).
    pub fn clear(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str], max: usize) -> Vec<(String, u64, RecordFlags)> {
        let mut j = Joiner::new(StartPattern::parse(r"\d").unwrap(), max);
        let mut out = Vec::new();
        let mut emit = |raw: Bytes, end: u64, flags: RecordFlags| {
            out.push((String::from_utf8(raw.to_vec()).unwrap(), end, flags))
        };
        let mut off = 0;
        for l in lines {
            off += l.len() as u64 + 1;
            j.push(
                Bytes::copy_from_slice(l.as_bytes()),
                off,
                RecordFlags::empty(),
                &mut emit,
            );
        }
        j.flush(&mut emit);
        out
    }

    #[test]
    fn joins_stack_traces() {
        let out = run(
            &["1 boom", "\tat a", "\tat b", "2 ok", "3 again", "  more"],
            1000,
        );
        let texts: Vec<&str> = out.iter().map(|o| o.0.as_str()).collect();
        assert_eq!(texts, ["1 boom\n\tat a\n\tat b", "2 ok", "3 again\n  more"]);
        assert_eq!(out[0].1, 7 + 6 + 6, "end offset of the last joined line");
        assert!(out.iter().all(|o| o.2 == RecordFlags::empty()));
    }

    #[test]
    fn leading_continuations_stand_alone_and_long_joins_are_cut() {
        let out = run(&["orphan", "1 a", "bbbb", "cccc"], 8);
        let texts: Vec<&str> = out.iter().map(|o| o.0.as_str()).collect();
        assert_eq!(texts, ["orphan", "1 a\nbbbb", "cccc"]);
        assert!(out[1].2.contains(RecordFlags::CONTINUED));
        assert!(out[2].2.contains(RecordFlags::TRUNCATED));
        assert!(!out[2].2.contains(RecordFlags::CONTINUED));
    }
}
