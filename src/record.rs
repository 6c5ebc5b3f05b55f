//! The record model: one log entry as raw bytes plus where it came from.
//!
//! A [`Record`] is what flows through Quill: sources make them, the journal stores them, sinks
//! consume them. The payload is the entry's raw bytes ([`bytes::Bytes`], so slicing a read buffer
//! into lines copies nothing). Metadata that is the same for every record of a source (its name,
//! category, format hint and origin host) lives once in a shared [`Origin`]; per-record metadata is
//! the receive time, the source position and a few flags. Parsing into GELF fields happens later,
//! at the sinks that need it.
//!
//! This module owns only data types; it does no I/O.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

pub use crate::parse::Format;

/// What is common to every record of one source: shared, never copied per record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The source's name in the config (`[sources.NAME]`).
    pub source: Arc<str>,
    /// Scribe's notion: which stream of logs this is (`web`, `lb`, ...).
    pub category: Arc<str>,
    /// Parsing hint for the payload.
    pub format: Format,
    /// The host the record was first received on.
    pub host: Arc<str>,
}

impl Origin {
    pub fn new(source: &str, category: &str, format: Format, host: &str) -> Arc<Origin> {
        Arc::new(Origin {
            source: source.into(),
            category: category.into(),
            format,
            host: host.into(),
        })
    }
}

/// Where in its source a record came from, so a source can resume after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Position {
    /// No resumable position (datagrams, stream peers).
    #[default]
    None,
    /// A byte range end in a file: `file_id` is the source's identity for the file (a fingerprint),
    /// `end_offset` the offset just past this record's line terminator.
    File { file_id: u64, end_offset: u64 },
}

/// Per-record flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordFlags(u8);

impl RecordFlags {
    /// The entry was longer than the source's maximum and was cut; the rest was discarded
    /// (datagram/stream sources) or follows as further pieces (file source).
    pub const TRUNCATED: RecordFlags = RecordFlags(1);
    /// This record is a piece of a longer line that continues in the next record.
    pub const CONTINUED: RecordFlags = RecordFlags(2);
    /// A partial last line flushed by timeout, without its terminator.
    pub const NO_NEWLINE: RecordFlags = RecordFlags(4);

    pub const fn empty() -> RecordFlags {
        RecordFlags(0)
    }
    pub const fn bits(self) -> u8 {
        self.0
    }
    pub const fn from_bits(bits: u8) -> RecordFlags {
        RecordFlags(bits)
    }
    pub const fn contains(self, other: RecordFlags) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn insert(&mut self, other: RecordFlags) {
        self.0 |= other.0;
    }
}

/// Nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_nanos() as i64)
    }
    pub fn from_secs_f64(secs: f64) -> Timestamp {
        Timestamp((secs * 1e9) as i64)
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
    /// Whole milliseconds since the epoch.
    pub fn as_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub origin: Arc<Origin>,
    pub received_at: Timestamp,
    pub position: Position,
    pub flags: RecordFlags,
    /// The entry's bytes, without the line terminator.
    pub raw: Bytes,
}

impl Record {
    pub fn new(origin: Arc<Origin>, raw: Bytes) -> Record {
        Record {
            origin,
            received_at: Timestamp::now(),
            position: Position::None,
            flags: RecordFlags::empty(),
            raw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_combine() {
        let mut f = RecordFlags::empty();
        assert!(!f.contains(RecordFlags::TRUNCATED));
        f.insert(RecordFlags::TRUNCATED);
        f.insert(RecordFlags::CONTINUED);
        assert!(f.contains(RecordFlags::TRUNCATED) && f.contains(RecordFlags::CONTINUED));
        assert_eq!(RecordFlags::from_bits(f.bits()), f);
    }
}
