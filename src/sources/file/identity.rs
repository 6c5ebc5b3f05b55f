//! File identity: a CRC-32C fingerprint of a file's first bytes, with device+inode as a hint,
//! and an offset marker (the CRC of the bytes just before a read offset).
//!
//! A file is the same file when its content starts the same way, whatever its name or inode.
//! While a file is open its inode cannot be reused, so an open file is followed by device+inode;
//! a file found by name is matched to what Quill knew by fingerprint (see `checkpoint.rs`).
//!
//! This module reads the first bytes of files it is handed (with `pread`, leaving file positions
//! alone) and touches nothing else.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};

/// Device and inode: a file's identity while it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

impl FileKey {
    pub fn of(meta: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// CRC-32C of a file's first `len` bytes. `len` is below the configured fingerprint length only
/// while the file is shorter than that ("short" fingerprint, upgraded as the file grows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint {
    pub len: u32,
    pub crc: u32,
}

impl Fingerprint {
    pub fn of(bytes: &[u8]) -> Fingerprint {
        Fingerprint {
            len: bytes.len() as u32,
            crc: crc32c::crc32c(bytes),
        }
    }

    /// Whether this fingerprint covers the full configured length.
    pub fn is_full(&self, fingerprint_bytes: u32) -> bool {
        self.len >= fingerprint_bytes
    }

    /// A 64-bit id for [`crate::record::Position::File`].
    pub fn file_id(&self) -> u64 {
        (u64::from(self.len) << 32) | u64::from(self.crc)
    }
}

/// Reads up to `max` leading bytes of `file` into `buf` (cleared first).
pub fn read_head(file: &File, max: u32, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    buf.resize(max as usize, 0);
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(())
}

/// The fingerprint of `file`'s first `max` bytes (fewer if the file is shorter).
pub fn fingerprint(file: &File, max: u32, buf: &mut Vec<u8>) -> std::io::Result<Fingerprint> {
    read_head(file, max, buf)?;
    Ok(Fingerprint::of(buf))
}

/// Whether `head` (a file's leading bytes) starts with the content `fp` describes.
pub fn head_matches(head: &[u8], fp: Fingerprint) -> bool {
    let len = fp.len as usize;
    head.len() >= len && crc32c::crc32c(&head[..len]) == fp.crc
}

/// How many bytes before a read offset its marker covers.
pub const MARKER_BYTES: u64 = 64;

/// The offset marker of `file` at `offset`: the CRC-32C of the (up to [`MARKER_BYTES`]) bytes
/// just before it (`None` at offset 0, or if the file is shorter than `offset`). Two files that
/// start the same way are the same content at `offset` only if their markers agree too.
pub fn marker(file: &File, offset: u64, buf: &mut Vec<u8>) -> std::io::Result<Option<Fingerprint>> {
    let len = offset.min(MARKER_BYTES);
    if len == 0 {
        return Ok(None);
    }
    buf.clear();
    buf.resize(len as usize, 0);
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset - len + got as u64) {
            Ok(0) => return Ok(None),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Some(Fingerprint::of(buf)))
}

/// Whether `file` has the bytes `expected` (a [`marker`] taken at `offset`) before `offset`;
/// true when there is no marker to check (checkpoints written before markers existed).
pub fn marker_matches(
    file: &File,
    offset: u64,
    expected: Option<Fingerprint>,
    buf: &mut Vec<u8>,
) -> bool {
    match expected {
        None => true,
        Some(m) => matches!(marker(file, offset, buf), Ok(Some(got)) if got == m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn short_files_have_short_fingerprints_that_prefix_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(b"hello\n").unwrap();
        let file = File::open(&path).unwrap();
        let mut buf = Vec::new();
        let short = fingerprint(&file, 256, &mut buf).unwrap();
        assert_eq!(short.len, 6);
        assert!(!short.is_full(256));
        f.write_all(&[b'x'; 300]).unwrap();
        let full = fingerprint(&file, 256, &mut buf).unwrap();
        assert_eq!(full.len, 256);
        assert!(full.is_full(256));
        assert!(
            head_matches(&buf, short),
            "the short fingerprint is a prefix"
        );
        assert!(!head_matches(b"hellO\n", short));
        assert!(!head_matches(b"hel", short), "too short to match");
    }

    #[test]
    fn markers_tell_files_with_equal_heads_apart() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let head = "same header line\n".repeat(40);
        std::fs::write(&a, format!("{head}a's own line\n")).unwrap();
        std::fs::write(&b, format!("{head}b's own line\n")).unwrap();
        let (fa, fb) = (File::open(&a).unwrap(), File::open(&b).unwrap());
        let mut buf = Vec::new();
        let end = head.len() as u64 + 13;
        let ma = marker(&fa, end, &mut buf).unwrap();
        assert!(ma.is_some());
        assert!(marker_matches(&fa, end, ma, &mut buf));
        assert!(!marker_matches(&fb, end, ma, &mut buf));
        // Inside the common part they agree.
        let mh = marker(&fa, 100, &mut buf).unwrap();
        assert!(marker_matches(&fb, 100, mh, &mut buf));
        assert_eq!(marker(&fa, 0, &mut buf).unwrap(), None);
        assert!(
            !marker_matches(&fa, end + 1000, ma, &mut buf),
            "shorter than the offset"
        );
    }
}
