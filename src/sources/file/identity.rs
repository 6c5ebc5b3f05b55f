//! File identity: a CRC-32C fingerprint of a file's first bytes, with device+inode as a hint.
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
}
