//! What each cursor has delivered, by source position, so that recovery cutting the journal's
//! tail never makes a sink write a line twice.
//!
//! A file source's checkpoint travels in the journal frame with the lines it covers. When
//! recovery cuts frames a cursor had already acknowledged (the tail overwritten, or lost with
//! `fsync = "never"`), the surviving checkpoint is older than what that cursor delivered: the
//! source reads those lines again and the journal appends them under new sequence numbers. So
//! every cursor file also records, per file (`Position::File`'s `file_id`), the end offset of the
//! last record the cursor acknowledged ([`Delivered`]). Recovery turns that into a [`Fence`] for
//! each cursor that had acknowledged past the cut; the cursor then skips re-read records at or
//! below the fence's offset for their file. A cursor that had not reached the cut gets the re-read
//! lines (it never had them): nothing is lost and nothing is written twice. A file's fence entry
//! goes once a record past it is acknowledged; the fence goes with its last entry.
//!
//! Pure data and its encoding (the tail of a cursor file); no I/O.

use std::collections::{HashMap, VecDeque};

use super::format::FormatError;
use crate::record::Position;

/// Most files remembered per cursor; beyond it the least recently acknowledged are forgotten
/// (a cut in their frames would then let their re-read lines through).
pub(super) const MAX_FILES: usize = 4096;

/// Per file, the end offset and sequence number of the last record a cursor acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Delivered {
    files: HashMap<u64, (u64, u64)>,
}

impl Delivered {
    pub(super) fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Notes that the record `seq` of `file_id` ending at `end_offset` was acknowledged.
    pub(super) fn note(&mut self, seq: u64, file_id: u64, end_offset: u64) {
        let e = self.files.entry(file_id).or_insert((end_offset, seq));
        if seq >= e.1 {
            *e = (end_offset, seq);
        }
        if self.files.len() > MAX_FILES {
            let mut by_seq: Vec<(u64, u64)> = self.files.iter().map(|(id, v)| (v.1, *id)).collect();
            by_seq.sort_unstable();
            for (_, id) in &by_seq[..self.files.len() - MAX_FILES * 3 / 4] {
                self.files.remove(id);
            }
        }
    }
}

/// Positions of records a cursor handed out and has not acknowledged yet: `(seq, file_id,
/// end_offset)`, one per run of consecutive records of the same file.
#[derive(Debug, Default)]
pub(super) struct Unacked(VecDeque<(u64, u64, u64)>);

impl Unacked {
    pub(super) fn note(&mut self, seq: u64, position: Position) {
        let Position::File {
            file_id,
            end_offset,
        } = position
        else {
            return;
        };
        match self.0.back_mut() {
            Some(last) if last.1 == file_id => *last = (seq, file_id, end_offset),
            _ => self.0.push_back((seq, file_id, end_offset)),
        }
    }

    /// Removes and returns what `seq` acknowledges. A run is split by an acknowledgement inside
    /// it only in position: its last record stands for it, so a partial acknowledgement keeps
    /// the run (its earlier records are then noted at the next one).
    pub(super) fn take_through(&mut self, seq: u64) -> Vec<(u64, u64, u64)> {
        let n = self.0.iter().take_while(|e| e.0 <= seq).count();
        self.0.drain(..n).collect()
    }

    /// Forgets what was handed out after `acked` (it will be handed out again).
    pub(super) fn rewind(&mut self, acked: u64) {
        self.0.retain(|e| e.0 <= acked);
    }
}

/// The re-read records a cursor skips after recovery cut records it had acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fence {
    /// Re-read records have sequence numbers from here on.
    from_seq: u64,
    /// Per file, the end offset this cursor had delivered.
    files: HashMap<u64, u64>,
    /// Files whose re-read went past the fence: the offset and the first sequence number past
    /// it, kept until that record is acknowledged (a restart before it reads them again).
    passed: HashMap<u64, (u64, u64)>,
    /// Records skipped (for the log line when the fence ends).
    pub(super) skipped: u64,
}

impl Fence {
    /// A fence over what `delivered` holds, for records from `from_seq` on (none if empty),
    /// merged with an earlier fence not yet passed.
    pub(super) fn new(
        from_seq: u64,
        delivered: &Delivered,
        earlier: Option<Fence>,
    ) -> Option<Fence> {
        let mut fence = earlier.unwrap_or(Fence {
            from_seq,
            files: HashMap::new(),
            passed: HashMap::new(),
            skipped: 0,
        });
        fence.from_seq = fence.from_seq.min(from_seq);
        for (id, (off, _)) in fence.passed.drain() {
            fence.files.insert(id, off);
        }
        for (&id, &(off, _)) in &delivered.files {
            let e = fence.files.entry(id).or_insert(off);
            *e = (*e).max(off);
        }
        (!fence.files.is_empty()).then_some(fence)
    }

    /// Files still fenced (not passed, or passed and not acknowledged).
    pub(super) fn files(&self) -> usize {
        self.files.len() + self.passed.len()
    }

    /// True if the record `seq` at `position` is one the cursor already delivered.
    pub(super) fn skips(&mut self, seq: u64, position: Position) -> bool {
        let Position::File {
            file_id,
            end_offset,
        } = position
        else {
            return false;
        };
        if seq < self.from_seq {
            return false;
        }
        if let Some(&(off, _)) = self.passed.get(&file_id) {
            let skip = end_offset <= off;
            self.skipped += skip as u64;
            return skip;
        }
        let Some(&off) = self.files.get(&file_id) else {
            return false;
        };
        if end_offset <= off {
            self.skipped += 1;
            return true;
        }
        self.files.remove(&file_id);
        self.passed.insert(file_id, (off, seq));
        false
    }

    /// `seq` was acknowledged: files passed at or below it are done. True when the fence is.
    pub(super) fn acked(&mut self, seq: u64) -> bool {
        self.passed.retain(|_, &mut (_, at)| at > seq);
        self.files.is_empty() && self.passed.is_empty()
    }

    /// The cursor went back to `acked`: files passed after it are fenced again.
    pub(super) fn rewind(&mut self, acked: u64) {
        let back: Vec<u64> = self
            .passed
            .iter()
            .filter(|(_, v)| v.1 > acked)
            .map(|(id, _)| *id)
            .collect();
        for id in back {
            if let Some((off, _)) = self.passed.remove(&id) {
                self.files.insert(id, off);
            }
        }
    }
}

/// The tail of a cursor file: `count u32, (file_id u64, end_offset u64, seq u64)*`, then
/// `has_fence u8` and, if set, `from_seq u64, count u32, (file_id u64, end_offset u64)*`.
pub(super) fn encode(delivered: &Delivered, fence: Option<&Fence>) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + delivered.files.len() * 24);
    out.extend_from_slice(&(delivered.files.len() as u32).to_le_bytes());
    for (id, (off, seq)) in &delivered.files {
        for v in [*id, *off, *seq] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    match fence {
        None => out.push(0),
        Some(f) => {
            out.push(1);
            out.extend_from_slice(&f.from_seq.to_le_bytes());
            let all: Vec<(u64, u64)> = f
                .files
                .iter()
                .map(|(id, off)| (*id, *off))
                .chain(f.passed.iter().map(|(id, (off, _))| (*id, *off)))
                .collect();
            out.extend_from_slice(&(all.len() as u32).to_le_bytes());
            for (id, off) in all {
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(&off.to_le_bytes());
            }
        }
    }
    out
}

/// Decodes [`encode`]'s bytes; empty bytes (a cursor file written before positions were kept)
/// are nothing delivered and no fence.
pub(super) fn decode(buf: &[u8]) -> Result<(Delivered, Option<Fence>), FormatError> {
    let mut delivered = Delivered::default();
    if buf.is_empty() {
        return Ok((delivered, None));
    }
    let mut r = Reader(buf);
    let n = r.u32()? as usize;
    if n > r.0.len() / 24 {
        return Err(FormatError::Malformed("delivered positions count"));
    }
    for _ in 0..n {
        let (id, off, seq) = (r.u64()?, r.u64()?, r.u64()?);
        delivered.files.insert(id, (off, seq));
    }
    let fence = match r.u8()? {
        0 => None,
        _ => {
            let from_seq = r.u64()?;
            let n = r.u32()? as usize;
            if n > r.0.len() / 16 {
                return Err(FormatError::Malformed("fence count"));
            }
            let mut files = HashMap::with_capacity(n);
            for _ in 0..n {
                let (id, off) = (r.u64()?, r.u64()?);
                files.insert(id, off);
            }
            Some(Fence {
                from_seq,
                files,
                passed: HashMap::new(),
                skipped: 0,
            })
        }
    };
    Ok((delivered, fence))
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(FormatError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }
    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.take()?))
    }
    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(file_id: u64, end_offset: u64) -> Position {
        Position::File {
            file_id,
            end_offset,
        }
    }

    #[test]
    fn a_fence_skips_what_was_delivered_until_passed_and_acknowledged() {
        let mut d = Delivered::default();
        let mut u = Unacked::default();
        for (seq, off) in [(1, 100), (2, 200), (3, 300)] {
            u.note(seq, at(7, off));
        }
        u.note(4, at(9, 50));
        u.note(5, Position::None);
        for (seq, id, off) in u.take_through(4) {
            d.note(seq, id, off);
        }
        assert_eq!(d.files[&7], (300, 3));
        assert_eq!(d.files[&9], (50, 4));
        // Recovery cut after seq 1; re-reads come from 11 on.
        let mut f = Fence::new(11, &d, None).unwrap();
        assert!(!f.skips(10, at(7, 200)), "before the cut: not a re-read");
        assert!(f.skips(11, at(7, 200)));
        assert!(f.skips(12, at(7, 300)));
        assert!(!f.skips(13, Position::None));
        assert!(!f.skips(14, at(7, 400)), "past what was delivered");
        assert!(f.skips(15, at(9, 50)));
        assert!(!f.skips(16, at(8, 10)), "a file never delivered");
        // A restart before 14 is acknowledged fences file 7 again.
        let back = decode(&encode(&d, Some(&f))).unwrap();
        assert_eq!(back.0, d);
        assert_eq!(back.1.as_ref().map(Fence::files), Some(2));
        assert!(!f.acked(13));
        f.rewind(13);
        assert!(f.skips(17, at(7, 300)));
        assert!(!f.skips(18, at(7, 400)));
        assert!(!f.acked(18), "file 9 not passed yet");
        assert!(!f.skips(19, at(9, 60)));
        assert!(f.acked(19));
        assert_eq!(f.skipped, 4);
    }

    #[test]
    fn delivered_positions_are_bounded_and_decode_rejects_garbage() {
        let mut d = Delivered::default();
        for i in 0..(MAX_FILES as u64 + 10) {
            d.note(i + 1, i, 10);
        }
        assert!(d.files.len() <= MAX_FILES);
        assert!(d.files.contains_key(&(MAX_FILES as u64 + 9)), "newest kept");
        assert!(!d.files.contains_key(&0), "oldest forgotten");
        assert_eq!(decode(&[]).unwrap(), (Delivered::default(), None));
        assert!(decode(&[0xff, 0xff, 0xff, 0xff]).is_err());
        let mut bytes = encode(&d, None);
        bytes.truncate(bytes.len() - 3);
        assert!(decode(&bytes).is_err());
    }
}
