//! The group's state in JetStream KV: the value formats of committed marks, leases and members,
//! and a compare-and-set that survives a NATS node failing mid-request. It touches only the KV
//! buckets it is given.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::kv::{self, Store, UpdateErrorKind};
use bytes::Bytes;
use thiserror::Error;

/// How long one KV operation keeps retrying through a cluster's failover.
const RETRY_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum KvError {
    /// The key holds another revision than expected: someone else wrote it.
    #[error("key {0} was changed by another aggregator")]
    Conflict(String),
    #[error("KV bucket unavailable: {0}")]
    Unavailable(String),
}

/// Milliseconds since the epoch (leases and pending marks carry wall-clock expiries).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The committed high-water mark of one agent stream on one partition: every record of the
/// stream's messages on the partition up to `done` is in exactly one aggregator's journal.
/// `pending` is an owner's claim on `done+1..=last` it is journaling right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub agent: String,
    pub done: u64,
    pub pending: Option<Pending>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub owner: String,
    pub last: u64,
    pub since_ms: u64,
}

impl Mark {
    pub fn encode(&self) -> Bytes {
        let mut s = format!("agent={} done={}", self.agent, self.done);
        if let Some(p) = &self.pending {
            s.push_str(&format!(" pending={}:{}:{}", p.owner, p.last, p.since_ms));
        }
        Bytes::from(s)
    }

    pub fn parse(value: &[u8]) -> Option<Mark> {
        let text = std::str::from_utf8(value).ok()?;
        let mut parts = text.split(' ');
        let agent = parts.next()?.strip_prefix("agent=")?.to_string();
        let done = parts.next()?.strip_prefix("done=")?.parse().ok()?;
        let pending = match parts.next() {
            None => None,
            Some(p) => {
                let mut f = p.strip_prefix("pending=")?.split(':');
                let owner = f.next()?.to_string();
                let last = f.next()?.parse().ok()?;
                let since_ms = f.next()?.parse().ok()?;
                if f.next().is_some() || last <= done {
                    return None;
                }
                Some(Pending {
                    owner,
                    last,
                    since_ms,
                })
            }
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Mark {
            agent,
            done,
            pending,
        })
    }
}

/// The KV key of a mark: per partition and agent journal stream (stream ids are random, 128 bit).
pub fn mark_key(partition: u32, stream_id: &str) -> String {
    format!("mark.{partition}.{stream_id}")
}

pub fn lease_key(partition: u32) -> String {
    format!("lease.{partition}")
}

pub const MEMBER_PREFIX: &str = "member.";

/// A partition's lease: its owner until `expiry_ms` (owner `-`: released).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub expiry_ms: u64,
}

impl Lease {
    pub const FREE: &'static str = "-";

    pub fn encode(&self) -> Bytes {
        Bytes::from(format!("{} {}", self.owner, self.expiry_ms))
    }

    pub fn parse(value: &[u8]) -> Option<Lease> {
        let (owner, expiry) = std::str::from_utf8(value).ok()?.split_once(' ')?;
        Some(Lease {
            owner: owner.to_string(),
            expiry_ms: expiry.parse().ok()?,
        })
    }

    /// Whether another aggregator may take it at `now`.
    pub fn is_free(&self, now: u64) -> bool {
        self.owner == Self::FREE || self.expiry_ms <= now
    }
}

/// A key's current value and revision, retrying through failovers; `None` when absent.
pub async fn get(store: &Store, key: &str) -> Result<Option<(Bytes, u64)>, KvError> {
    let deadline = tokio::time::Instant::now() + RETRY_FOR;
    let mut pause = Duration::from_millis(100);
    loop {
        match store.entry(key).await {
            Ok(Some(e)) if e.operation == kv::Operation::Put => {
                return Ok(Some((e.value, e.revision)));
            }
            Ok(_) => return Ok(None),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(KvError::Unavailable(format!("{key}: {e}")));
            }
            Err(_) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Sets `key` to `value` if it is still at `expected` (`None`: absent), returning the new
/// revision. A request whose answer was lost is resolved by reading the key back: if it holds
/// `value` the write happened. Values written by one aggregator are unique (they carry its id and
/// a time or sequence), so reading our own value back means our write won.
pub async fn cas(
    store: &Store,
    key: &str,
    value: Bytes,
    expected: Option<u64>,
) -> Result<u64, KvError> {
    let deadline = tokio::time::Instant::now() + RETRY_FOR;
    let mut pause = Duration::from_millis(100);
    loop {
        let attempt = match expected {
            Some(rev) => store.update(key, value.clone(), rev).await.map_err(|e| {
                let conflict = e.kind() == UpdateErrorKind::WrongLastRevision;
                (conflict, e.to_string())
            }),
            None => store.create(key, value.clone()).await.map_err(|e| {
                let conflict = e.kind() == kv::CreateErrorKind::AlreadyExists;
                (conflict, e.to_string())
            }),
        };
        let why = match attempt {
            Ok(rev) => return Ok(rev),
            Err((true, _)) => {
                // Perhaps our own earlier attempt, whose answer was lost.
                return match get(store, key).await? {
                    Some((v, rev)) if v == value => Ok(rev),
                    _ => Err(KvError::Conflict(key.to_string())),
                };
            }
            Err((false, why)) => why,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(KvError::Unavailable(format!("{key}: {why}")));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
        // The write may have landed: a read tells.
        match get(store, key).await? {
            Some((v, rev)) if v == value => return Ok(rev),
            Some((_, rev)) if Some(rev) != expected => {
                return Err(KvError::Conflict(key.to_string()));
            }
            None if expected.is_some() => return Err(KvError::Conflict(key.to_string())),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip() {
        let m = Mark {
            agent: "edge-1".into(),
            done: 41,
            pending: None,
        };
        assert_eq!(Mark::parse(&m.encode()), Some(m.clone()));
        let p = Mark {
            pending: Some(Pending {
                owner: "agg-2".into(),
                last: 90,
                since_ms: 1_700_000_000_000,
            }),
            ..m
        };
        assert_eq!(Mark::parse(&p.encode()), Some(p));
        assert_eq!(Mark::parse(b"agent=a done=5 pending=x:5:1"), None);
        assert_eq!(Mark::parse(b"agent=a done=x"), None);
        assert_eq!(Mark::parse(b"agent=a done=5 extra"), None);
    }

    #[test]
    fn leases_round_trip() {
        let l = Lease {
            owner: "agg-1".into(),
            expiry_ms: 100,
        };
        assert_eq!(Lease::parse(&l.encode()), Some(l.clone()));
        assert!(!l.is_free(99) && l.is_free(100));
        assert!(
            Lease {
                owner: Lease::FREE.into(),
                expiry_ms: u64::MAX
            }
            .is_free(0)
        );
        assert_eq!(Lease::parse(b"nospace"), None);
    }
}
