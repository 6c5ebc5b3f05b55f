//! Quill over NATS JetStream: the message layout the `nats` sink publishes and the `nats` source
//! reads, the partition of a record, and the client connection both use.
//!
//! One message is one partition's share of one journal batch of one agent: subject
//! `quill.<category>.<partition>` (`_` for the category when the batch's records of that partition
//! have several, or none), headers
//!
//! ```text
//! Nats-Msg-Id   <agent>.<stream>.<partition>.<first>-<last>   (JetStream drops a republished one)
//! Quill-Agent   agent id           Quill-Stream  journal stream id (hex)
//! Quill-Range   <first> <last>     the journal batch's sequence range (the whole batch)
//! Quill-Base    <seq>              where the stream started: its partitions' marks start here
//! Quill-Len     <bytes>            the decompressed payload's length
//! ```
//!
//! and a zstd payload: `count varint`, then per record its sequence as a gap from the previous
//! one (`seq - prev - 1`, `prev` starting at `first - 1`), then the forward protocol's record
//! encoding ([`super::batch`]). Every batch yields a message for every partition, empty ones too,
//! so a partition's messages of one stream cover contiguous ranges: a receiver sees a gap (a
//! batch published again after a later one was stored) and waits for it instead of losing it.
//!
//! Decoding is bounded like the forward protocol's: the declared length is capped before
//! decompressing and every count is checked against the bytes present. No I/O but [`connect`].

use thiserror::Error;

use super::batch::{self, BatchError, get_varint, put_varint};
use crate::config::NatsAuth;
use crate::record::{Origin, Record};

pub const HEADER_AGENT: &str = "Quill-Agent";
pub const HEADER_STREAM: &str = "Quill-Stream";
pub const HEADER_RANGE: &str = "Quill-Range";
pub const HEADER_BASE: &str = "Quill-Base";
pub const HEADER_LEN: &str = "Quill-Len";

#[derive(Debug, Error)]
pub enum NatsError {
    #[error("cannot connect to NATS: {0}")]
    Connect(String),
    #[error("message header {0} missing or malformed")]
    Header(&'static str),
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("NATS: {0}")]
    Nats(String),
}

/// The identity and range of one message (its headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub agent: String,
    pub stream_id: String,
    pub first: u64,
    pub last: u64,
    pub base: u64,
    pub raw_len: u32,
}

impl MessageMeta {
    /// `Nats-Msg-Id` for this meta's message of `partition`.
    pub fn msg_id(&self, partition: u32) -> String {
        format!(
            "{}.{}.{partition}.{}-{}",
            self.agent, self.stream_id, self.first, self.last
        )
    }

    /// The key of the high-water mark this message advances (per partition).
    pub fn mark_key(&self) -> String {
        format!("{}/{}", self.agent, self.stream_id)
    }

    pub fn headers(&self, partition: u32) -> async_nats::HeaderMap {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", self.msg_id(partition).as_str());
        h.insert(HEADER_AGENT, self.agent.as_str());
        h.insert(HEADER_STREAM, self.stream_id.as_str());
        h.insert(
            HEADER_RANGE,
            format!("{} {}", self.first, self.last).as_str(),
        );
        h.insert(HEADER_BASE, self.base.to_string().as_str());
        h.insert(HEADER_LEN, self.raw_len.to_string().as_str());
        h
    }

    /// Reads and checks the headers of a received message.
    pub fn from_headers(h: Option<&async_nats::HeaderMap>) -> Result<MessageMeta, NatsError> {
        let get = |k: &'static str| {
            h.and_then(|h| h.get(k))
                .map(|v| v.as_str().to_string())
                .ok_or(NatsError::Header(k))
        };
        let agent = get(HEADER_AGENT)?;
        if !super::is_valid_agent_id(&agent) {
            return Err(NatsError::Header(HEADER_AGENT));
        }
        let stream_id = get(HEADER_STREAM)?;
        if !super::is_valid_stream_id(&stream_id) {
            return Err(NatsError::Header(HEADER_STREAM));
        }
        let range = get(HEADER_RANGE)?;
        let (first, last) = range
            .split_once(' ')
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
            .filter(|(a, b)| *a >= 1 && a <= b)
            .ok_or(NatsError::Header(HEADER_RANGE))?;
        let base = get(HEADER_BASE)?
            .parse::<u64>()
            .ok()
            .filter(|b| *b < first)
            .ok_or(NatsError::Header(HEADER_BASE))?;
        let raw_len = get(HEADER_LEN)?
            .parse::<u32>()
            .map_err(|_| NatsError::Header(HEADER_LEN))?;
        Ok(MessageMeta {
            agent,
            stream_id,
            first,
            last,
            base,
            raw_len,
        })
    }
}

/// The subject of a partition's message: `quill.<category>.<partition>`.
pub fn subject(category: Option<&str>, partition: u32) -> String {
    format!("quill.{}.{partition}", category.unwrap_or("_"))
}

/// The subject filter of one partition, over all categories.
pub fn partition_filter(partition: u32) -> String {
    format!("quill.*.{partition}")
}

/// The partition of a record: its transaction id's, else its origin's (FNV-1a, stable across
/// versions and machines).
pub fn partition_of(txn_id: Option<&str>, origin: &Origin, partitions: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    match txn_id {
        Some(t) => eat(t.as_bytes()),
        None => {
            eat(origin.host.as_bytes());
            eat(b"\0");
            eat(origin.source.as_bytes());
        }
    }
    (h % u64::from(partitions.max(1))) as u32
}

/// Encodes `(seq, record)` pairs (increasing seqs within `first..`) into a decompressed payload.
pub fn encode_payload(first: u64, records: &[(u64, &Record)], out: &mut Vec<u8>) {
    let mut seqs = Vec::with_capacity(records.len() * 2 + 10);
    put_varint(&mut seqs, records.len() as u64);
    let mut prev = first - 1;
    for (seq, _) in records {
        put_varint(&mut seqs, seq - prev - 1);
        prev = *seq;
    }
    let mut body = Vec::new();
    batch::encode_records(records.iter().map(|(_, r)| *r), &mut body);
    out.clear();
    out.extend_from_slice(&seqs);
    out.extend_from_slice(&body);
}

/// Decompresses and decodes a message payload, refusing more than `max` decompressed bytes.
pub fn decode_payload(
    meta: &MessageMeta,
    compressed: &[u8],
    max: usize,
) -> Result<Vec<(u64, Record)>, BatchError> {
    let m = BatchError::Malformed;
    let mut dec = zstd::bulk::Decompressor::new().map_err(|e| BatchError::Decompress {
        declared: meta.raw_len,
        reason: e.to_string(),
    })?;
    let mut p = batch::decompress(&mut dec, compressed, meta.raw_len, max)?;
    let count = get_varint(&mut p).ok_or(m("bad record count"))?;
    if count > p.len() as u64 || count > meta.last - meta.first + 1 {
        return Err(m("more records than the message can hold"));
    }
    let mut seqs = Vec::with_capacity(count as usize);
    let mut prev = meta.first - 1;
    for _ in 0..count {
        let gap = get_varint(&mut p).ok_or(m("bad record sequence"))?;
        let seq = prev
            .checked_add(gap)
            .and_then(|s| s.checked_add(1))
            .filter(|s| *s <= meta.last)
            .ok_or(m("record sequence outside the message's range"))?;
        seqs.push(seq);
        prev = seq;
    }
    let records = batch::decode_records(p, count as u32)?;
    Ok(seqs.into_iter().zip(records).collect())
}

/// Connects to the cluster (any of `servers`; the client reconnects and fails over by itself).
/// With `wait = false` the client connects in the background (an agent starts while the cluster
/// is down and publishes once it is up).
pub async fn connect(
    servers: &[String],
    auth: &NatsAuth,
    name: &str,
    wait: bool,
) -> Result<async_nats::Client, NatsError> {
    let mut opts = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(std::time::Duration::from_secs(5))
        .max_reconnects(None::<usize>);
    if !wait {
        opts = opts.retry_on_initial_connect();
    }
    if let Some(path) = &auth.creds_file {
        opts = opts
            .credentials_file(path)
            .await
            .map_err(|e| NatsError::Connect(format!("{}: {e}", path.display())))?;
    }
    if let (Some(u), Some(p)) = (&auth.user, &auth.password) {
        opts = opts.user_and_password(u.clone(), p.clone());
    }
    if let Some(t) = &auth.token {
        opts = opts.token(t.clone());
    }
    if let Some(ca) = &auth.tls_ca {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
        if let (Some(c), Some(k)) = (&auth.tls_cert, &auth.tls_key) {
            opts = opts.add_client_certificate(c.clone(), k.clone());
        }
    }
    async_nats::connect_with_options(servers, opts)
        .await
        .map_err(|e| NatsError::Connect(e.to_string()))
}

/// Fuzz entry: arbitrary headers' worth of range and payload bytes never panic the decoder.
pub fn fuzz_decode(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let meta = MessageMeta {
        agent: "a".into(),
        stream_id: "00".into(),
        first: 1 + u64::from(data[0]),
        last: 1 + u64::from(data[0]) + u64::from(data[1]),
        base: 0,
        raw_len: u32::from(u16::from_le_bytes([data[2], data[3]])),
    };
    let _ = decode_payload(&meta, &data[4..], 1 << 16);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Format;
    use bytes::Bytes;

    fn meta(first: u64, last: u64, raw_len: u32) -> MessageMeta {
        MessageMeta {
            agent: "edge-1".into(),
            stream_id: "00ff".into(),
            first,
            last,
            base: 0,
            raw_len,
        }
    }

    #[test]
    fn payload_round_trip_keeps_sequences() {
        let o = Origin::new("lb", "haproxy", Format::Haproxy, "edge-1");
        let recs: Vec<Record> = (0..5)
            .map(|i| Record::new(o.clone(), Bytes::from(format!("line {i}"))))
            .collect();
        let pairs: Vec<(u64, &Record)> = [11u64, 12, 15, 16, 20].into_iter().zip(&recs).collect();
        let mut raw = Vec::new();
        encode_payload(10, &pairs, &mut raw);
        let z = zstd::bulk::compress(&raw, 3).unwrap();
        let back = decode_payload(&meta(10, 20, raw.len() as u32), &z, 1 << 20).unwrap();
        let seqs: Vec<u64> = back.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, [11, 12, 15, 16, 20]);
        assert_eq!(back[2].1.raw, "line 2");
        // A range that cannot hold the sequences is refused.
        assert!(decode_payload(&meta(10, 19, raw.len() as u32), &z, 1 << 20).is_err());
        // Every truncation is an error.
        for cut in 0..raw.len() {
            let z = zstd::bulk::compress(&raw[..cut], 1).unwrap();
            assert!(decode_payload(&meta(10, 20, cut as u32), &z, 1 << 20).is_err());
        }
        // An empty partition's message.
        encode_payload(10, &[], &mut raw);
        let z = zstd::bulk::compress(&raw, 3).unwrap();
        assert!(
            decode_payload(&meta(10, 20, raw.len() as u32), &z, 1 << 20)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn headers_round_trip_and_are_checked() {
        let m = MessageMeta {
            base: 4,
            ..meta(10, 20, 99)
        };
        let h = m.headers(3);
        assert_eq!(MessageMeta::from_headers(Some(&h)).unwrap(), m);
        assert_eq!(m.msg_id(3), "edge-1.00ff.3.10-20");
        let mut bad = h.clone();
        bad.insert(HEADER_RANGE, "20 10");
        assert!(MessageMeta::from_headers(Some(&bad)).is_err());
        let mut bad = h.clone();
        bad.insert(HEADER_AGENT, "../x");
        assert!(MessageMeta::from_headers(Some(&bad)).is_err());
        assert!(MessageMeta::from_headers(None).is_err());
    }

    #[test]
    fn partitions_are_stable() {
        let o = Origin::new("lb", "haproxy", Format::Haproxy, "edge-1");
        let p = partition_of(Some("txn-42"), &o, 8);
        assert_eq!(p, partition_of(Some("txn-42"), &o, 8));
        assert!(p < 8);
        let spread: std::collections::HashSet<u32> = (0..100)
            .map(|i| partition_of(Some(&format!("t{i}")), &o, 8))
            .collect();
        assert_eq!(spread.len(), 8);
        assert_eq!(subject(Some("web"), 2), "quill.web.2");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_payloads_never_panic(data: Vec<u8>) {
            fuzz_decode(&data);
        }
    }
}
