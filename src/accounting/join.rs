//! The byte join: pairs HAProxy entries with the backend's access-log line by transaction id,
//! in a bounded table with a bounded wait.
//!
//! Pure (no I/O, no clock): the caller says what time it is. [`ByteJoin::push`] offers an
//! entry; [`ByteJoin::poll_expired`] releases entries whose partner did not come within the
//! window; [`ByteJoin::drain`] releases everything (end of input). Every pushed entry comes out
//! exactly once, HAProxy entries with their [`Correction`]. When the table is full the oldest
//! entry goes out early with its best estimate. The same struct serves `quill parse` (offline,
//! log time) and can serve the aggregator (receive time).

use std::collections::{HashMap, VecDeque};

use super::{BackendLine, Correction, HaproxyEntry, HeaderModel, LearnedCounts};

/// What an entry is, for the join.
#[derive(Debug, Clone)]
pub enum JoinItem {
    Haproxy(Box<HaproxyEntry>),
    Backend(BackendLine),
    /// Anything else: passes straight through.
    Other,
}

/// An entry released by the join: its payload and, for HAProxy entries, the correction.
#[derive(Debug)]
pub struct Released<P> {
    pub payload: P,
    pub correction: Option<Correction>,
    /// Released as one of a completed pair: pairs come out as two consecutive items, the HAProxy
    /// entry first.
    pub paired: bool,
}

struct Waiting<P> {
    item: JoinItem,
    payload: P,
    deadline_ms: i64,
    seq: u64,
}

/// The HAProxy side and the backend side waiting under one key.
type Slot<P> = (Option<Waiting<P>>, Option<Waiting<P>>);

/// Bounded join table keyed by transaction id.
pub struct ByteJoin<P> {
    model: HeaderModel,
    learned: LearnedCounts,
    window_ms: i64,
    capacity: usize,
    /// key → (haproxy side, backend side)
    table: HashMap<String, Slot<P>>,
    /// (deadline, key, seq) in push order; stale records are skipped.
    order: VecDeque<(i64, String, u64)>,
    next_seq: u64,
    waiting: usize,
}

impl<P> ByteJoin<P> {
    /// `window_ms`: how long an entry waits for its partner; `capacity`: most entries waiting.
    pub fn new(model: HeaderModel, window_ms: i64, capacity: usize) -> ByteJoin<P> {
        ByteJoin {
            model,
            learned: LearnedCounts::new(4096),
            window_ms,
            capacity: capacity.max(1),
            table: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
            waiting: 0,
        }
    }

    pub fn model(&self) -> &HeaderModel {
        &self.model
    }

    /// Entries waiting for a partner.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Offers an entry seen at `now_ms` with transaction id `key`; returns what it releases
    /// (the entry itself when it cannot wait, the pair when it completes one, the oldest entry
    /// when the table is full).
    pub fn push(
        &mut self,
        key: Option<&str>,
        item: JoinItem,
        payload: P,
        now_ms: i64,
    ) -> Vec<Released<P>> {
        let mut out = Vec::new();
        let key = match (key, &item) {
            (_, JoinItem::Other) | (None, _) => {
                out.push(self.release(item, payload, None));
                return out;
            }
            (Some(k), _) => k,
        };
        let is_haproxy = matches!(item, JoinItem::Haproxy(_));
        let slot = self.table.entry(key.to_owned()).or_insert((None, None));
        let partner = if is_haproxy {
            slot.1.take()
        } else {
            slot.0.take()
        };
        if let Some(p) = partner {
            self.waiting -= 1;
            let (hap, back) = if is_haproxy {
                ((item, payload), (p.item, p.payload))
            } else {
                ((p.item, p.payload), (item, payload))
            };
            let backend_line = match &back.0 {
                JoinItem::Backend(b) => Some(b.clone()),
                _ => None,
            };
            let mut hap = self.release(hap.0, hap.1, backend_line.as_ref());
            let mut back = self.release(back.0, back.1, None);
            hap.paired = true;
            back.paired = true;
            out.push(hap);
            out.push(back);
            self.remove_if_empty(key);
            return out;
        }
        // Same side already waiting under this key (duplicate id): release the older one.
        let old = if is_haproxy {
            slot.0.take()
        } else {
            slot.1.take()
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let w = Waiting {
            item,
            payload,
            deadline_ms: now_ms.saturating_add(self.window_ms),
            seq,
        };
        let deadline = w.deadline_ms;
        if is_haproxy {
            slot.0 = Some(w);
        } else {
            slot.1 = Some(w);
        }
        if let Some(old) = old {
            out.push(self.release(old.item, old.payload, None));
        } else {
            self.waiting += 1;
        }
        self.order.push_back((deadline, key.to_owned(), seq));
        while self.waiting > self.capacity {
            if !self.pop_oldest(&mut out) {
                break;
            }
        }
        out
    }

    /// Releases every entry whose window ended at or before `now_ms`.
    pub fn poll_expired(&mut self, now_ms: i64) -> Vec<Released<P>> {
        let mut out = Vec::new();
        while let Some((deadline, _, _)) = self.order.front() {
            if *deadline > now_ms {
                break;
            }
            self.pop_oldest(&mut out);
        }
        out
    }

    /// Releases the entry that has waited longest (empty if none waits): the way out when
    /// whatever holds the released entries must stay bounded.
    pub fn release_oldest(&mut self) -> Vec<Released<P>> {
        let mut out = Vec::new();
        self.pop_oldest(&mut out);
        out
    }

    /// Releases everything (end of input).
    pub fn drain(&mut self) -> Vec<Released<P>> {
        let mut out = Vec::new();
        while self.pop_oldest(&mut out) {}
        out
    }

    /// Releases the oldest waiting entry; false if none.
    fn pop_oldest(&mut self, out: &mut Vec<Released<P>>) -> bool {
        while let Some((_, key, seq)) = self.order.pop_front() {
            let Some(slot) = self.table.get_mut(&key) else {
                continue;
            };
            let w = if slot.0.as_ref().is_some_and(|w| w.seq == seq) {
                slot.0.take()
            } else if slot.1.as_ref().is_some_and(|w| w.seq == seq) {
                slot.1.take()
            } else {
                None
            };
            let Some(w) = w else { continue };
            self.waiting -= 1;
            self.remove_if_empty(&key);
            out.push(self.release(w.item, w.payload, None));
            return true;
        }
        false
    }

    fn remove_if_empty(&mut self, key: &str) {
        if self
            .table
            .get(key)
            .is_some_and(|s| s.0.is_none() && s.1.is_none())
        {
            self.table.remove(key);
        }
    }

    fn release(
        &mut self,
        item: JoinItem,
        payload: P,
        backend: Option<&BackendLine>,
    ) -> Released<P> {
        let correction = match &item {
            JoinItem::Haproxy(e) => Some(self.model.correct(e, backend, &mut self.learned)),
            _ => None,
        };
        Released {
            payload,
            correction,
            paired: false,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn hap(b: i64) -> JoinItem {
        JoinItem::Haproxy(Box::new(HaproxyEntry {
            frontend: "f".into(),
            backend: "b".into(),
            server: "s".into(),
            status: Some(200),
            bytes_read: Some(b),
            termination_state: "----".into(),
            http_version: "HTTP/1.1".into(),
            http_method: "GET".into(),
            ..HaproxyEntry::default()
        }))
    }

    /// Frontend `f` → backend `b` (server `s`); HTTP/1.1 entries may be exact.
    pub(crate) fn model() -> HeaderModel {
        let cfg = crate::parse::haproxy::config::HaproxyConfig::parse(
            "defaults\n mode http\nfrontend f\n default_backend b\nbackend b\n server s 127.0.0.1:1\n",
        )
        .unwrap();
        // The join's mechanics, not the keep-alive question: HTTP/1.1 entries may be exact.
        let mut model = HeaderModel::from_config(&cfg);
        model.assume_clients_keep_alive = true;
        model
    }

    #[test]
    fn pairs_expires_and_bounds() {
        let mut j: ByteJoin<u32> = ByteJoin::new(model(), 1000, 2);
        assert!(j.push(Some("a"), hap(297), 1, 0).is_empty());
        let back = JoinItem::Backend(BackendLine {
            bytes_out: Some(310),
            aborted: false,
            request_id: None,
        });
        let out = j.push(Some("a"), back, 2, 10);
        assert_eq!(out.len(), 2);
        let c = out[0].correction.unwrap();
        assert_eq!(
            (c.bytes_sent, c.basis),
            (Some(310), super::super::Basis::Exact)
        );
        // learned N = 7 → estimate for an unjoined entry
        assert!(j.push(Some("b"), hap(297), 3, 20).is_empty());
        assert!(j.poll_expired(500).is_empty());
        let out = j.poll_expired(1020);
        assert_eq!(out.len(), 1);
        let c = out[0].correction.unwrap();
        assert_eq!(c.bytes_sent, Some(310));
        assert_eq!(c.basis, super::super::Basis::Estimate);
        // capacity 2: the third waiting entry pushes the oldest out
        assert!(j.push(Some("c"), hap(1), 4, 30).is_empty());
        assert!(j.push(Some("d"), hap(1), 5, 30).is_empty());
        let out = j.push(Some("e"), hap(1), 6, 30);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload, 4);
        assert_eq!(j.waiting(), 2);
        assert_eq!(j.drain().len(), 2);
        assert_eq!(j.waiting(), 0);
    }
}
