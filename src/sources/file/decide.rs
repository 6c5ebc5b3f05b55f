//! Where a file found by the globs starts: which checkpointed identity it is (if any) and from
//! which offset. [`choose_identity`] is the decision itself, a pure function of what was read
//! (candidates whose marker matched, the file's key, fingerprint and size); the [`Tailer`]
//! methods here do the reads (fingerprint markers) around it.

use super::*;

/// How a newly found file will be read.
#[derive(Debug)]
pub(super) enum Decision {
    /// Already handled (tracked, or a duplicate of a tracked file).
    Skip,
    /// Read from `offset`; `adopted` is a checkpoint identity this file takes over.
    Read { offset: u64, adopted: Option<Known> },
}

/// Steps 1 and 2 of the identity decision, pure. `candidates` are the checkpointed identities
/// whose fingerprint matches the file's first bytes and whose marker (the bytes before their
/// offset) matched the file's. `held_now(k)` says whether a tracked file holds `k`'s content
/// right now (then a copy of it is a duplicate, not a move). Returns the identity the file takes
/// over and the offset to read from:
/// 1. the same inode with the content known (a file read before, maybe renamed), the longest
///    fingerprint first;
/// 2. else the same full-length content on another inode (a copy, a move, a new device number)
///    not held by a tracked file now, the furthest offset first.
///
/// A same-inode identity past the file's size was truncated while Quill was away: read from 0.
/// A copy shorter than what was read was read whole: read from its end.
pub(super) fn choose_identity(
    key: FileKey,
    fp: Fingerprint,
    full: bool,
    size: u64,
    candidates: &[&Known],
    held_now: impl Fn(&Known) -> bool,
) -> Option<(Known, u64)> {
    let same_inode = candidates
        .iter()
        .filter(|k| k.key == key)
        .max_by_key(|k| k.fingerprint.len);
    let moved = || {
        candidates
            .iter()
            .filter(|k| full && k.fingerprint == fp)
            .filter(|k| !held_now(k))
            .max_by_key(|k| k.offset)
    };
    let k = same_inode.or_else(moved)?;
    let offset = match (k.offset <= size, k.key == key) {
        (true, _) => k.offset,
        (false, true) => 0,
        (false, false) => size,
    };
    Some(((*k).clone(), offset))
}

impl Tailer {
    /// Where to start a file found by the globs.
    pub(super) fn decide(
        &mut self,
        key: FileKey,
        fp: Fingerprint,
        size: u64,
        file: &File,
    ) -> Decision {
        let full = fp.is_full(self.fingerprint_bytes);
        let mut buf = std::mem::take(&mut self.marker_buf);
        // A known identity is this file only if the bytes before its offset are this file's
        // too (two files that start the same way are two files).
        let candidates: Vec<&Known> = self
            .known
            .candidates(&self.head, fp)
            .into_iter()
            .filter(|k| {
                k.offset > size || identity::marker_matches(file, k.offset, k.marker, &mut buf)
            })
            .collect();
        let files = &self.files;
        let chosen = choose_identity(key, fp, full, size, &candidates, |k| {
            files
                .get(&k.key)
                .is_some_and(|t| t.fingerprint == k.fingerprint)
        });
        if let Some((k, offset)) = chosen {
            self.marker_buf = buf;
            self.known.remove(k.fingerprint, k.key);
            self.settle_adopted(&k, size);
            return Decision::Read {
                offset,
                adopted: Some(k),
            };
        }
        // 3. Content a tracked file has right now (the same bytes before the end of the shorter
        //    one): a copy (copytruncate before the truncate). Equal first bytes alone do not
        //    make a copy. A tracked file that has been truncated since it was last read
        //    (copytruncate's truncate, not seen yet) has this file's first bytes no more: this
        //    file is its copy if it holds what was journaled of it. Either way the copy waits:
        //    once the truncation is seen, the tracked file's identity is released and the copy
        //    takes it over at the next rescan (a move, step 2), so nothing is read twice.
        if full
            && self.files.values().any(|t| {
                if t.fingerprint != fp {
                    return false;
                }
                let at = size.min(t.size);
                match identity::marker(&t.file, at, &mut buf) {
                    Ok(Some(a)) => {
                        matches!(identity::marker(file, at, &mut buf), Ok(Some(b)) if a == b)
                    }
                    Ok(None) => {
                        t.file.metadata().is_ok_and(|m| m.len() < at)
                            && size >= t.committed
                            && identity::marker_matches(file, t.committed, t.marker, &mut buf)
                    }
                    Err(_) => false,
                }
            })
        {
            self.marker_buf = buf;
            return Decision::Skip;
        }
        self.marker_buf = buf;
        // 4. A file never seen.
        let offset = if self.first_scan && self.config.read_from == ReadFrom::End {
            size
        } else {
            0
        };
        Decision::Read {
            offset,
            adopted: None,
        }
    }

    /// Whether a file found next to where a checkpointed file was is that file.
    pub(super) fn orphan_decision(
        &mut self,
        key: FileKey,
        fp: Fingerprint,
        size: u64,
        file: &File,
    ) -> Decision {
        let full = fp.is_full(self.fingerprint_bytes);
        let buf = &mut self.marker_buf;
        let chosen = self
            .known
            .candidates(&self.head, fp)
            .into_iter()
            .filter(|k| k.offset <= size)
            .filter(|k| identity::marker_matches(file, k.offset, k.marker, buf))
            .filter(|k| k.key == key || (full && k.fingerprint == fp))
            .max_by_key(|k| (k.key == key, k.fingerprint.len))
            .cloned();
        match chosen {
            Some(k) => {
                self.known.remove(k.fingerprint, k.key);
                self.settle_adopted(&k, size);
                Decision::Read {
                    offset: k.offset,
                    adopted: Some(k),
                }
            }
            None => Decision::Skip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(len: u32, crc: u32, ino: u64, offset: u64) -> Known {
        Known {
            fingerprint: Fingerprint { len, crc },
            key: FileKey { dev: 1, ino },
            offset,
            marker: None,
            path: PathBuf::from(format!("/log/{ino}")),
        }
    }

    #[test]
    fn identity_decision_table() {
        let fp = Fingerprint { len: 256, crc: 7 };
        let short = Fingerprint { len: 100, crc: 7 };
        let key = FileKey { dev: 1, ino: 10 };
        // (case, fingerprint, full, size, candidates, held now (by ino), expected (ino, offset))
        type Case = (
            &'static str,
            Fingerprint,
            bool,
            u64,
            Vec<Known>,
            Vec<u64>,
            Option<(u64, u64)>,
        );
        let cases: Vec<Case> = vec![
            ("never seen", fp, true, 500, vec![], vec![], None),
            (
                "same inode resumes",
                fp,
                true,
                500,
                vec![known(256, 7, 10, 300)],
                vec![],
                Some((10, 300)),
            ),
            (
                "same inode, truncated while away",
                fp,
                true,
                200,
                vec![known(256, 7, 10, 300)],
                vec![],
                Some((10, 0)),
            ),
            (
                "same inode, longest fingerprint wins",
                fp,
                true,
                500,
                vec![known(100, 7, 10, 50), known(256, 7, 10, 300)],
                vec![],
                Some((10, 300)),
            ),
            (
                "same inode before a move",
                fp,
                true,
                500,
                vec![known(256, 7, 11, 400), known(256, 7, 10, 300)],
                vec![],
                Some((10, 300)),
            ),
            (
                "moved: full content on another inode",
                fp,
                true,
                500,
                vec![known(256, 7, 11, 300)],
                vec![],
                Some((11, 300)),
            ),
            (
                "moved copy shorter than what was read",
                fp,
                true,
                200,
                vec![known(256, 7, 11, 300)],
                vec![],
                Some((11, 200)),
            ),
            (
                "moved: the furthest offset wins",
                fp,
                true,
                500,
                vec![known(256, 7, 11, 100), known(256, 7, 12, 400)],
                vec![],
                Some((12, 400)),
            ),
            (
                "content a tracked file holds now is no move",
                fp,
                true,
                500,
                vec![known(256, 7, 11, 300)],
                vec![11],
                None,
            ),
            (
                "a short fingerprint is trusted on its inode only",
                short,
                false,
                100,
                vec![known(100, 7, 11, 80)],
                vec![],
                None,
            ),
            (
                "a short fingerprint on the same inode",
                short,
                false,
                100,
                vec![known(100, 7, 10, 80)],
                vec![],
                Some((10, 80)),
            ),
        ];
        for (case, fp, full, size, candidates, held, expected) in cases {
            let refs: Vec<&Known> = candidates.iter().collect();
            let got = choose_identity(key, fp, full, size, &refs, |k| held.contains(&k.key.ino))
                .map(|(k, offset)| (k.key.ino, offset));
            assert_eq!(got, expected, "{case}");
        }
    }
}
