//! GELF UDP chunking: reassembling chunked messages ([`Assembler`]) and splitting a message into
//! chunks ([`split`]).
//!
//! A chunk is `0x1e 0x0f`, an 8-byte message id, a sequence number and a count (one byte each,
//! count 1..=128), then a piece of the message. The assembler keeps incomplete messages within
//! hard budgets — at most `max_incomplete` of them holding at most `max_incomplete_bytes` bytes
//! together, none longer than `max_message_bytes` — and for `timeout` at most after their first
//! chunk: whatever would exceed a budget evicts the oldest incomplete message first (counted), a
//! message that times out is counted as expired. A duplicate chunk, a sequence number outside
//! the count, a count that changes within a message, or a count of 0 or above 128 is counted and
//! ignored; nothing is fatal. Pure: the caller passes the time; no I/O.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// The two bytes that start a chunk.
pub const MAGIC: [u8; 2] = [0x1e, 0x0f];
/// Bytes of a chunk's header.
pub const HEADER: usize = 12;
/// Chunks of one message at most (the GELF specification's limit).
pub const MAX_CHUNKS: usize = 128;

/// Is this datagram a GELF chunk?
pub fn is_chunk(datagram: &[u8]) -> bool {
    datagram.starts_with(&MAGIC)
}

/// The assembler's budgets.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLimits {
    /// Incomplete messages held at once at most.
    pub max_incomplete: usize,
    /// Bytes the incomplete messages hold together at most.
    pub max_incomplete_bytes: usize,
    /// A reassembled message longer than this is refused.
    pub max_message_bytes: usize,
    /// An incomplete message is given up this long after its first chunk.
    pub timeout: Duration,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_incomplete: 1024,
            max_incomplete_bytes: 32 << 20,
            max_message_bytes: 8 << 20,
            timeout: Duration::from_secs(5),
        }
    }
}

/// What happened to chunks and messages, for the source's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ChunkStats {
    /// Messages completed from chunks.
    pub completed: u64,
    /// Chunks seen twice (the second is ignored).
    pub duplicate: u64,
    /// Chunks with a count of 0 or above 128, a sequence number outside the count, a count that
    /// differs from the message's first chunk, or no room for a header.
    pub invalid: u64,
    /// Incomplete messages given up after `timeout`.
    pub expired: u64,
    /// Incomplete messages evicted to stay within the budgets.
    pub evicted: u64,
    /// Messages refused for growing past `max_message_bytes`.
    pub oversized: u64,
}

impl ChunkStats {
    /// Messages lost in reassembly (expired, evicted or refused).
    pub fn lost(&self) -> u64 {
        self.expired + self.evicted + self.oversized
    }
}

struct Partial {
    count: u8,
    received: u8,
    bytes: usize,
    parts: Vec<Option<Box<[u8]>>>,
    /// Key in `by_age`.
    age: (Instant, u64),
}

/// Reassembles chunked GELF messages within [`ChunkLimits`].
pub struct Assembler {
    limits: ChunkLimits,
    partial: HashMap<[u8; 8], Partial>,
    /// Incomplete messages by first-chunk time (and a serial number, for equal times).
    by_age: BTreeMap<(Instant, u64), [u8; 8]>,
    bytes: usize,
    serial: u64,
    pub stats: ChunkStats,
}

impl Assembler {
    pub fn new(limits: ChunkLimits) -> Assembler {
        Assembler {
            limits,
            partial: HashMap::new(),
            by_age: BTreeMap::new(),
            bytes: 0,
            serial: 0,
            stats: ChunkStats::default(),
        }
    }

    /// Incomplete messages held now.
    pub fn incomplete(&self) -> usize {
        self.partial.len()
    }

    /// Bytes the incomplete messages hold now.
    pub fn incomplete_bytes(&self) -> usize {
        self.bytes
    }

    /// Takes one chunk (a datagram for which [`is_chunk`] holds) received at `now`; returns the
    /// message it completes, if any.
    pub fn push(&mut self, chunk: &[u8], now: Instant) -> Option<Vec<u8>> {
        self.expire(now);
        if chunk.len() < HEADER || !is_chunk(chunk) {
            self.stats.invalid += 1;
            return None;
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&chunk[2..10]);
        let (seq, count) = (chunk[10], chunk[11]);
        let data = &chunk[HEADER..];
        if count == 0 || count as usize > MAX_CHUNKS || seq >= count {
            self.stats.invalid += 1;
            return None;
        }
        if count == 1 {
            self.stats.completed += 1;
            return Some(data.to_vec());
        }
        if let Some(p) = self.partial.get(&id) {
            if p.count != count {
                self.stats.invalid += 1;
                return None;
            }
            if p.parts[seq as usize].is_some() {
                self.stats.duplicate += 1;
                return None;
            }
            if p.bytes + data.len() > self.limits.max_message_bytes {
                self.stats.oversized += 1;
                self.remove(&id);
                return None;
            }
        } else if data.len() > self.limits.max_message_bytes {
            self.stats.oversized += 1;
            return None;
        }
        self.make_room(&id, data.len());
        let p = match self.partial.get_mut(&id) {
            Some(p) => p,
            None => {
                self.serial += 1;
                let age = (now, self.serial);
                self.by_age.insert(age, id);
                self.partial.entry(id).or_insert(Partial {
                    count,
                    received: 0,
                    bytes: 0,
                    parts: vec![None; count as usize],
                    age,
                })
            }
        };
        p.parts[seq as usize] = Some(data.into());
        p.received += 1;
        p.bytes += data.len();
        self.bytes += data.len();
        if p.received < p.count {
            return None;
        }
        let p = self.remove(&id)?;
        let mut message = Vec::with_capacity(p.bytes);
        for part in p.parts.into_iter().flatten() {
            message.extend_from_slice(&part);
        }
        self.stats.completed += 1;
        Some(message)
    }

    /// Gives up incomplete messages older than the timeout.
    pub fn expire(&mut self, now: Instant) {
        while let Some((&(first, _), &id)) = self.by_age.first_key_value() {
            if now.saturating_duration_since(first) < self.limits.timeout {
                break;
            }
            self.remove(&id);
            self.stats.expired += 1;
        }
    }

    /// Evicts the oldest incomplete messages (other than `keep`) until one more chunk of `len`
    /// bytes, possibly of a new message, fits the budgets.
    fn make_room(&mut self, keep: &[u8; 8], len: usize) {
        let new = !self.partial.contains_key(keep);
        loop {
            let over_count = new && self.partial.len() >= self.limits.max_incomplete.max(1);
            let over_bytes = self.bytes + len > self.limits.max_incomplete_bytes;
            if !over_count && !over_bytes {
                return;
            }
            let oldest = self.by_age.values().find(|id| *id != keep).copied();
            match oldest {
                Some(id) => {
                    self.remove(&id);
                    self.stats.evicted += 1;
                }
                None => return,
            }
        }
    }

    fn remove(&mut self, id: &[u8; 8]) -> Option<Partial> {
        let p = self.partial.remove(id)?;
        self.by_age.remove(&p.age);
        self.bytes -= p.bytes;
        Some(p)
    }
}

/// Splits `message` into GELF chunks of at most `chunk_size` bytes each (header included),
/// appending each to `out`; `None` when it would take more than [`MAX_CHUNKS`] chunks. A message
/// that fits in one datagram is returned unchunked.
pub fn split(message: &[u8], chunk_size: usize, id: [u8; 8]) -> Option<Vec<Vec<u8>>> {
    if message.len() <= chunk_size {
        return Some(vec![message.to_vec()]);
    }
    let piece = chunk_size.saturating_sub(HEADER).max(1);
    let count = message.len().div_ceil(piece);
    if count > MAX_CHUNKS {
        return None;
    }
    Some(
        message
            .chunks(piece)
            .enumerate()
            .map(|(seq, data)| {
                let mut c = Vec::with_capacity(HEADER + data.len());
                c.extend_from_slice(&MAGIC);
                c.extend_from_slice(&id);
                c.push(seq as u8);
                c.push(count as u8);
                c.extend_from_slice(data);
                c
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: u8, seq: u8, count: u8, data: &[u8]) -> Vec<u8> {
        let mut c = MAGIC.to_vec();
        c.extend_from_slice(&[id; 8]);
        c.extend_from_slice(&[seq, count]);
        c.extend_from_slice(data);
        c
    }

    #[test]
    fn reassembles_out_of_order_and_counts_duplicates() {
        let now = Instant::now();
        let mut a = Assembler::new(ChunkLimits::default());
        assert_eq!(a.push(&chunk(1, 2, 3, b"c"), now), None);
        assert_eq!(a.push(&chunk(1, 0, 3, b"a"), now), None);
        assert_eq!(a.push(&chunk(1, 0, 3, b"a"), now), None);
        assert_eq!(a.push(&chunk(1, 1, 4, b"b"), now), None);
        assert_eq!(a.push(&chunk(1, 1, 3, b"b"), now), Some(b"abc".to_vec()));
        assert_eq!(a.push(&chunk(2, 0, 1, b"x"), now), Some(b"x".to_vec()));
        assert_eq!(a.stats.duplicate, 1);
        assert_eq!(a.stats.invalid, 1);
        assert_eq!(a.stats.completed, 2);
        assert_eq!((a.incomplete(), a.incomplete_bytes()), (0, 0));
    }

    #[test]
    fn refuses_bad_counts() {
        let now = Instant::now();
        let mut a = Assembler::new(ChunkLimits::default());
        assert_eq!(a.push(&chunk(1, 0, 129, b"a"), now), None);
        assert_eq!(a.push(&chunk(1, 0, 0, b"a"), now), None);
        assert_eq!(a.push(&chunk(1, 5, 5, b"a"), now), None);
        assert_eq!(a.push(&[0x1e, 0x0f, 1], now), None);
        assert_eq!(a.stats.invalid, 4);
        assert_eq!(a.incomplete(), 0);
    }

    #[test]
    fn expires_and_evicts_within_budgets() {
        let t0 = Instant::now();
        let limits = ChunkLimits {
            max_incomplete: 2,
            max_incomplete_bytes: 10,
            max_message_bytes: 8,
            timeout: Duration::from_secs(5),
        };
        let mut a = Assembler::new(limits);
        a.push(&chunk(1, 0, 2, b"aaaa"), t0);
        a.push(&chunk(2, 0, 2, b"bbbb"), t0);
        a.push(&chunk(3, 0, 2, b"cc"), t0); // evicts 1 (count budget)
        assert_eq!((a.stats.evicted, a.incomplete()), (1, 2));
        a.push(&chunk(3, 1, 2, b"cccc"), t0); // 4+2+4 = 10 fits
        assert_eq!(a.stats.completed, 1);
        a.push(&chunk(4, 0, 2, b"dddd"), t0);
        a.push(&chunk(4, 1, 2, b"ddddd"), t0); // 9 > max_message_bytes
        assert_eq!(a.stats.oversized, 1);
        a.push(&chunk(5, 0, 2, b"e"), t0 + Duration::from_secs(6)); // 2 expires
        assert_eq!(a.stats.expired, 1);
        assert_eq!(a.incomplete(), 1);
        assert!(a.incomplete_bytes() <= limits.max_incomplete_bytes);
    }

    #[test]
    fn split_then_reassemble() {
        let msg: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let chunks = split(&msg, 1000, [7; 8]).unwrap();
        assert_eq!(chunks.len(), 6);
        assert!(chunks.iter().all(|c| c.len() <= 1000));
        let mut a = Assembler::new(ChunkLimits::default());
        let now = Instant::now();
        let mut out = None;
        for c in chunks.iter().rev() {
            out = out.or(a.push(c, now));
        }
        assert_eq!(out, Some(msg.clone()));
        assert!(split(&msg, 20, [7; 8]).is_none());
        assert_eq!(
            split(b"small", 1000, [7; 8]).unwrap(),
            vec![b"small".to_vec()]
        );
    }
}
