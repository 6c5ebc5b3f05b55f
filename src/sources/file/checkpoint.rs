//! Checkpoints of the file source: what was read of which file, committed with the journal.
//!
//! Key: `file/<source>/<fingerprint length>-<crc32c hex>/<dev>:<ino>`; value:
//! `<offset> m=<len>-<crc32c hex> <path>` (the offset just past the last journaled line, the
//! offset marker: CRC of the bytes before that offset, then the path the file had then; values
//! without the marker, written by older versions, still parse). Keying by
//! content lets a restarted agent find a file again after it was renamed (same inode) or moved
//! (new inode, same content); the device+inode part keeps two live files that happen to share
//! their first bytes apart. An empty value is a tombstone: the identity is forgotten (the file
//! was deleted after being read, or it moved to another key).
//!
//! This module is pure encoding plus the in-memory index of known identities; it does no I/O.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::identity::{FileKey, Fingerprint};
use crate::journal::Checkpoint;

/// A remembered identity and how far it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub fingerprint: Fingerprint,
    pub key: FileKey,
    pub offset: u64,
    /// CRC of the bytes just before `offset` ([`super::identity::marker`]), if known.
    pub marker: Option<Fingerprint>,
    pub path: PathBuf,
}

/// The checkpoint key of an identity.
pub fn key(prefix: &str, fp: Fingerprint, key: FileKey) -> String {
    format!("{prefix}{}-{:08x}/{}:{}", fp.len, fp.crc, key.dev, key.ino)
}

/// The checkpoint value: `<offset> [m=<len>-<crc> ]<path>`.
pub fn value(offset: u64, marker: Option<Fingerprint>, path: &Path) -> Bytes {
    let mut v = Vec::with_capacity(40 + path.as_os_str().len());
    v.extend_from_slice(itoa::Buffer::new().format(offset).as_bytes());
    v.push(b' ');
    if let Some(m) = marker {
        v.extend_from_slice(format!("m={}-{:08x} ", m.len, m.crc).as_bytes());
    }
    v.extend_from_slice(path.as_os_str().as_bytes());
    Bytes::from(v)
}

/// A checkpoint that forgets `fp`/`key`.
pub fn tombstone(prefix: &str, fp: Fingerprint, file: FileKey) -> Checkpoint {
    Checkpoint {
        key: key(prefix, fp, file),
        value: Bytes::new(),
    }
}

/// Parses a stored checkpoint; `None` for tombstones and anything malformed (which is ignored:
/// the file is then treated as never seen).
pub fn parse(prefix: &str, cp: &Checkpoint) -> Option<Known> {
    let rest = cp.key.strip_prefix(prefix)?;
    let (fp, file) = rest.split_once('/')?;
    let (len, crc) = fp.split_once('-')?;
    let (dev, ino) = file.split_once(':')?;
    let fingerprint = Fingerprint {
        len: len.parse().ok()?,
        crc: u32::from_str_radix(crc, 16).ok()?,
    };
    let key = FileKey {
        dev: dev.parse().ok()?,
        ino: ino.parse().ok()?,
    };
    let v: &[u8] = &cp.value;
    let sp = memchr::memchr(b' ', v)?;
    let offset = std::str::from_utf8(&v[..sp]).ok()?.parse().ok()?;
    let mut rest = &v[sp + 1..];
    let mut marker = None;
    if let Some(m) = rest.strip_prefix(b"m=") {
        let end = memchr::memchr(b' ', m)?;
        let (len, crc) = std::str::from_utf8(&m[..end]).ok()?.split_once('-')?;
        marker = Some(Fingerprint {
            len: len.parse().ok()?,
            crc: u32::from_str_radix(crc, 16).ok()?,
        });
        rest = &m[end + 1..];
    }
    let path = PathBuf::from(OsStr::from_bytes(rest));
    Some(Known {
        fingerprint,
        key,
        offset,
        marker,
        path,
    })
}

/// Identities known from checkpoints (at start) and from files released or rewritten while
/// running, indexed by fingerprint.
#[derive(Debug, Default)]
pub struct KnownFiles {
    by_fingerprint: HashMap<Fingerprint, Vec<Known>>,
    /// Distinct lengths of short fingerprints held (to prefix-match files that grew since).
    short_lengths: Vec<u32>,
}

impl KnownFiles {
    pub fn load(prefix: &str, checkpoints: &[Checkpoint]) -> KnownFiles {
        let mut known = KnownFiles::default();
        for cp in checkpoints {
            if let Some(k) = parse(prefix, cp) {
                known.insert(k);
            }
        }
        known
    }

    pub fn insert(&mut self, k: Known) {
        let list = self.by_fingerprint.entry(k.fingerprint).or_default();
        list.retain(|o| o.key != k.key);
        if !self.short_lengths.contains(&k.fingerprint.len) {
            self.short_lengths.push(k.fingerprint.len);
        }
        list.push(k);
    }

    pub fn remove(&mut self, fp: Fingerprint, key: FileKey) -> Option<Known> {
        let list = self.by_fingerprint.get_mut(&fp)?;
        let i = list.iter().position(|k| k.key == key)?;
        let k = list.swap_remove(i);
        if list.is_empty() {
            self.by_fingerprint.remove(&fp);
        }
        Some(k)
    }

    pub fn is_empty(&self) -> bool {
        self.by_fingerprint.is_empty()
    }

    pub fn all(&self) -> impl Iterator<Item = &Known> {
        self.by_fingerprint.values().flatten()
    }

    /// Known identities whose content is a prefix of `head` (a file's first bytes, as many as
    /// the fingerprint length or the whole file if shorter): an exact fingerprint match, or a
    /// short fingerprint of a file that has grown since.
    pub fn candidates(&self, head: &[u8], full_fp: Fingerprint) -> Vec<&Known> {
        let mut out: Vec<&Known> = Vec::new();
        if let Some(list) = self.by_fingerprint.get(&full_fp) {
            out.extend(list);
        }
        for &len in &self.short_lengths {
            if len >= full_fp.len || len as usize > head.len() {
                continue;
            }
            let fp = Fingerprint::of(&head[..len as usize]);
            if let Some(list) = self.by_fingerprint.get(&fp) {
                out.extend(list);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let fp = Fingerprint {
            len: 256,
            crc: 0xdead_beef,
        };
        let file = FileKey { dev: 2049, ino: 77 };
        let cp = Checkpoint {
            key: key("file/web/", fp, file),
            value: value(
                1234,
                Some(Fingerprint { len: 64, crc: 7 }),
                Path::new("/var/log/a b.log"),
            ),
        };
        assert_eq!(cp.key, "file/web/256-deadbeef/2049:77");
        let k = parse("file/web/", &cp).unwrap();
        assert_eq!(k.fingerprint, fp);
        assert_eq!(k.key, file);
        assert_eq!(k.offset, 1234);
        assert_eq!(k.path, Path::new("/var/log/a b.log"));
        assert_eq!(k.marker, Some(Fingerprint { len: 64, crc: 7 }));
        // A value of an older version (no marker) still parses.
        let old = Checkpoint {
            key: key("file/web/", fp, file),
            value: value(99, None, Path::new("/var/log/x.log")),
        };
        let k = parse("file/web/", &old).unwrap();
        assert_eq!((k.offset, k.marker), (99, None));
        assert_eq!(k.path, Path::new("/var/log/x.log"));
        assert!(parse("file/web/", &tombstone("file/web/", fp, file)).is_none());
        let bad = Checkpoint {
            key: "file/web/x-y/1:2".into(),
            value: Bytes::from_static(b"1 /a"),
        };
        assert!(parse("file/web/", &bad).is_none());
    }

    #[test]
    fn short_fingerprints_match_grown_files() {
        let mut known = KnownFiles::default();
        let short = Fingerprint::of(b"abc\n");
        known.insert(Known {
            fingerprint: short,
            key: FileKey { dev: 1, ino: 2 },
            offset: 4,
            marker: None,
            path: "/x".into(),
        });
        let head = b"abc\ndef\n";
        let c = known.candidates(head, Fingerprint::of(head));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].offset, 4);
        assert!(
            known
                .candidates(b"abd\n", Fingerprint::of(b"abd\n"))
                .is_empty()
        );
    }
}
