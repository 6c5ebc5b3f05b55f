//! The payload of a BATCH frame: journal records, encoded compactly and zstd-compressed.
//!
//! Decompressed layout (integers little-endian, `varint` = LEB128):
//!
//! ```text
//! origin count: u16
//!   per origin: source str16, category str16, format u8, host str16
//! per record (count from the frame header):
//!   origin index varint, received_at i64 (ns), flags u8, raw length varint, raw bytes
//! ```
//!
//! Origins are written once per batch. The decoder checks every length against the data it has,
//! refuses a category that is not a safe file name, and decompresses into a buffer no larger than
//! the frame's declared length, itself capped by the receiver: a zstd bomb fails, it never
//! allocates. This module is pure computation: no I/O.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use thiserror::Error;

use crate::config::is_safe_category;
use crate::record::{Format, Origin, Position, Record, RecordFlags, Timestamp};

#[derive(Debug, Error)]
pub enum BatchError {
    #[error("batch declares {declared} decompressed bytes, more than the maximum of {max}")]
    TooLarge { declared: u64, max: u64 },
    #[error("batch data does not decompress to its declared {declared} bytes: {reason}")]
    Decompress { declared: u32, reason: String },
    #[error("malformed batch: {0}")]
    Malformed(&'static str),
    #[error("invalid category {0:?}: {rule}", rule = crate::config::CATEGORY_RULE)]
    InvalidCategory(String),
    #[error("cannot compress batch: {0}")]
    Compress(String),
}

/// Encodes records into the decompressed batch layout, reusing `out`.
pub fn encode_records<'a>(records: impl Iterator<Item = &'a Record>, out: &mut Vec<u8>) {
    let mut origins: Vec<&'a Arc<Origin>> = Vec::new();
    let mut body: Vec<u8> = Vec::with_capacity(out.capacity());
    for r in records {
        let idx = match origins
            .iter()
            .position(|o| Arc::ptr_eq(o, &r.origin) || ***o == *r.origin)
        {
            Some(i) => i,
            None => {
                origins.push(&r.origin);
                origins.len() - 1
            }
        };
        put_varint(&mut body, idx as u64);
        body.extend_from_slice(&r.received_at.0.to_le_bytes());
        body.push(r.flags.bits());
        put_varint(&mut body, r.raw.len() as u64);
        body.extend_from_slice(&r.raw);
    }
    out.clear();
    out.extend_from_slice(&(origins.len().min(u16::MAX as usize) as u16).to_le_bytes());
    for o in &origins {
        put_str16(out, &o.source);
        put_str16(out, &o.category);
        out.push(o.format.code());
        put_str16(out, &o.host);
    }
    out.extend_from_slice(&body);
}

/// Decodes `count` records from a decompressed batch. Positions are not carried: they belong to
/// the sender's inputs.
pub fn decode_records(mut p: Bytes, count: u32) -> Result<Vec<Record>, BatchError> {
    let m = BatchError::Malformed;
    let n_origins = get_u16(&mut p).ok_or(m("no origin table"))? as usize;
    let mut origins = Vec::with_capacity(n_origins.min(1024));
    for _ in 0..n_origins {
        let source = get_str16(&mut p).ok_or(m("bad origin source"))?;
        let category = get_str16(&mut p).ok_or(m("bad origin category"))?;
        if !is_safe_category(&category) {
            return Err(BatchError::InvalidCategory(category));
        }
        if p.is_empty() {
            return Err(m("bad origin format"));
        }
        let format = Format::from_code(p.get_u8());
        let host = get_str16(&mut p).ok_or(m("bad origin host"))?;
        origins.push(Origin::new(&source, &category, format, &host));
    }
    // Each record takes at least 11 bytes: never pre-allocate more than the data can hold.
    let mut records = Vec::with_capacity((count as usize).min(p.len() / 11 + 1));
    for _ in 0..count {
        let idx = get_varint(&mut p).ok_or(m("bad origin index"))? as usize;
        let origin = origins
            .get(idx)
            .ok_or(m("origin index out of range"))?
            .clone();
        if p.len() < 9 {
            return Err(m("short record"));
        }
        let received_at = Timestamp(p.get_i64_le());
        let flags = RecordFlags::from_bits(p.get_u8());
        let len = get_varint(&mut p).ok_or(m("bad record length"))?;
        if len > p.len() as u64 {
            return Err(m("record longer than the batch"));
        }
        let raw = p.split_to(len as usize);
        records.push(Record {
            origin,
            received_at,
            position: Position::None,
            flags,
            raw,
        });
    }
    if !p.is_empty() {
        return Err(m("trailing bytes after the last record"));
    }
    Ok(records)
}

/// Decompresses a batch, refusing anything larger than `max` or than its declared length.
pub fn decompress(
    decompressor: &mut zstd::bulk::Decompressor<'static>,
    data: &[u8],
    declared: u32,
    max: usize,
) -> Result<Bytes, BatchError> {
    if declared as u64 > max as u64 {
        return Err(BatchError::TooLarge {
            declared: declared as u64,
            max: max as u64,
        });
    }
    // The frame header may state the content size: refuse a lie before doing any work.
    if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(data)
        && size != declared as u64
    {
        return Err(BatchError::Decompress {
            declared,
            reason: format!("the zstd frame says {size} bytes"),
        });
    }
    let out = decompressor
        .decompress(data, declared as usize)
        .map_err(|e| BatchError::Decompress {
            declared,
            reason: e.to_string(),
        })?;
    if out.len() != declared as usize {
        return Err(BatchError::Decompress {
            declared,
            reason: format!("got {} bytes", out.len()),
        });
    }
    Ok(Bytes::from(out))
}

/// Appends `v` as a LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Takes a LEB128 varint of at most 10 bytes off the front of `p`.
pub(crate) fn get_varint(p: &mut Bytes) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        if p.is_empty() {
            return None;
        }
        let b = p.get_u8();
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn get_u16(p: &mut Bytes) -> Option<u16> {
    (p.len() >= 2).then(|| p.get_u16_le())
}

fn get_str16(p: &mut Bytes) -> Option<String> {
    let len = get_u16(p)? as usize;
    if p.len() < len {
        return None;
    }
    String::from_utf8(p.split_to(len).to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<Record> {
        let a = Origin::new("lb", "haproxy", Format::Haproxy, "edge-1");
        let b = Origin::new("sys", "syslog", Format::Syslog, "edge-1");
        let mut v = Vec::new();
        for i in 0..100 {
            let mut r = Record::new(
                if i % 3 == 0 { b.clone() } else { a.clone() },
                Bytes::from([format!("line {i} \u{e9}\0").as_bytes(), b"\xff"].concat()),
            );
            r.received_at = Timestamp(1_700_000_000_000_000_000 + i);
            if i == 7 {
                r.flags = RecordFlags::TRUNCATED;
            }
            r.position = Position::File {
                file_id: 1,
                end_offset: i as u64,
            };
            v.push(r);
        }
        v.push(Record::new(a.clone(), Bytes::new()));
        v
    }

    #[test]
    fn records_round_trip_through_zstd() {
        let recs = records();
        let mut raw = Vec::new();
        encode_records(recs.iter(), &mut raw);
        let compressed = zstd::bulk::compress(&raw, 1).unwrap();
        let mut d = zstd::bulk::Decompressor::new().unwrap();
        let back = decompress(&mut d, &compressed, raw.len() as u32, 1 << 20).unwrap();
        let decoded = decode_records(back, recs.len() as u32).unwrap();
        assert_eq!(decoded.len(), recs.len());
        for (a, b) in recs.iter().zip(&decoded) {
            assert_eq!(a.origin, b.origin);
            assert_eq!(a.raw, b.raw);
            assert_eq!(a.received_at, b.received_at);
            assert_eq!(a.flags, b.flags);
            assert_eq!(b.position, Position::None);
        }
    }

    #[test]
    fn zstd_bomb_and_lies_are_refused() {
        let zeros = vec![0u8; 64 << 20];
        let bomb = zstd::bulk::compress(&zeros, 3).unwrap();
        assert!(bomb.len() < 64 << 10);
        let mut d = zstd::bulk::Decompressor::new().unwrap();
        // Declares its true size, which is over the cap.
        assert!(matches!(
            decompress(&mut d, &bomb, zeros.len() as u32, 16 << 20),
            Err(BatchError::TooLarge { .. })
        ));
        // Declares a small size: refused without inflating.
        assert!(matches!(
            decompress(&mut d, &bomb, 1000, 16 << 20),
            Err(BatchError::Decompress { .. })
        ));
        // A stream without a content size in its header, lying about it.
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut enc, &zeros[..8 << 20]).unwrap();
        let unsized_bomb = enc.finish().unwrap();
        assert!(matches!(
            decompress(&mut d, &unsized_bomb, 1000, 16 << 20),
            Err(BatchError::Decompress { .. })
        ));
        // Garbage.
        assert!(decompress(&mut d, b"not zstd at all", 10, 1 << 20).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data: Vec<u8>, count in 0u32..1000, ty in 0u8..8) {
            let _ = decode_records(Bytes::from(data.clone()), count);
            let _ = crate::transport::frame::Frame::decode(ty, Bytes::from(data.clone()));
            let mut d = zstd::bulk::Decompressor::new().unwrap();
            let _ = decompress(&mut d, &data, count, 1 << 16);
        }
    }

    #[test]
    fn malformed_payloads_are_errors() {
        let recs = records();
        let mut raw = Vec::new();
        encode_records(recs.iter(), &mut raw);
        // Every truncation is an error, never a panic.
        for cut in 0..raw.len() {
            let r = decode_records(Bytes::copy_from_slice(&raw[..cut]), recs.len() as u32);
            assert!(r.is_err(), "cut at {cut}");
        }
        // Count larger than the records present.
        assert!(decode_records(Bytes::from(raw.clone()), u32::MAX).is_err());
        // Unsafe category.
        let evil = [Record::new(
            Origin::new("x", "../etc", Format::Raw, "h"),
            Bytes::from_static(b"x"),
        )];
        let mut raw = Vec::new();
        encode_records(evil.iter(), &mut raw);
        assert!(matches!(
            decode_records(Bytes::from(raw), 1),
            Err(BatchError::InvalidCategory(c)) if c == "../etc"
        ));
    }
}
