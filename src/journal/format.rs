//! The journal's on-disk encodings, version 1: segment headers, record frames, cursor files and
//! the checkpoint snapshot (described in ARCHITECTURE.md, "Journal on-disk format").
//!
//! Pure byte functions: this module does no I/O. Every decoder is bounds-checked and returns a
//! [`FormatError`] on malformed input; nothing here panics or allocates more than its input holds.

use std::sync::Arc;

use bytes::Bytes;
use thiserror::Error;

use super::Checkpoint;
use crate::record::{Format, Origin, Position, Record, RecordFlags, Timestamp};

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"QUILLJNL";
/// The on-disk format version written by this code (segments, cursors and snapshots).
pub const FORMAT_VERSION: u32 = 1;
/// Size of the segment header; the first frame starts here.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// Sync marker at the start of every frame: lets a reader find the next frame after corruption.
/// Non-ASCII, so log text rarely contains it (and a false match must also pass the CRC).
pub const FRAME_SYNC: [u8; 4] = [0xD1, 0x7A, 0x51, 0xA9];
/// Size of the fixed frame header.
pub const FRAME_HEADER_LEN: usize = 24;
/// Largest frame body a reader accepts (bounds allocation on a corrupt length).
pub const MAX_FRAME_BODY: usize = 64 << 20;
/// Batches whose encoding grows past this are split into several frames.
pub const SPLIT_FRAME_BODY: usize = 4 << 20;

/// Cursor file magic (`cursors/<name>.cur`).
pub const CURSOR_MAGIC: [u8; 8] = *b"QJCURSOR";
/// Checkpoint snapshot magic (`checkpoints.snap`).
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"QJCKPTS\0";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("bad magic")]
    BadMagic,
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u32),
    #[error("checksum mismatch")]
    BadChecksum,
    #[error("truncated")]
    Truncated,
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

// ---------------------------------------------------------------------------------------------
// Segment header: magic[8] version u32 header_len u32 first_seq u64 crc32c(0..24) u32 zero u32.

pub fn encode_segment_header(first_seq: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(SEGMENT_HEADER_LEN as u32).to_le_bytes());
    h[16..24].copy_from_slice(&first_seq.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Returns the segment's first sequence number.
pub fn decode_segment_header(h: &[u8]) -> Result<u64, FormatError> {
    if h.len() < SEGMENT_HEADER_LEN {
        return Err(FormatError::Truncated);
    }
    if h[0..8] != SEGMENT_MAGIC {
        return Err(FormatError::BadMagic);
    }
    if crc32c::crc32c(&h[0..24]) != u32_at(h, 24) {
        return Err(FormatError::BadChecksum);
    }
    let version = u32_at(h, 8);
    if version != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion(version));
    }
    if u32_at(h, 12) as usize != SEGMENT_HEADER_LEN {
        return Err(FormatError::Malformed("segment header length"));
    }
    Ok(u64_at(h, 16))
}

// ---------------------------------------------------------------------------------------------
// Frames: sync[4] body_len u32 crc32c u32 first_seq u64 record_count u32, then the body.
// The CRC covers bytes 12..24 of the header and the whole body.

/// A frame's fixed header, once its checksum has been verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub first_seq: u64,
    pub count: u32,
    pub body_len: usize,
}

impl FrameHeader {
    /// Bytes the whole frame takes.
    pub fn total_len(&self) -> usize {
        FRAME_HEADER_LEN + self.body_len
    }
    /// The last sequence number in the frame (`first_seq - 1` when it holds no records).
    pub fn last_seq(&self) -> u64 {
        (self.first_seq + self.count as u64).saturating_sub(1)
    }
}

/// What is at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameCheck {
    /// A complete frame with a good checksum.
    Valid(FrameHeader),
    /// The buffer ends before the frame does: it needs this many bytes in total.
    NeedMore(usize),
    /// Not a frame: bad sync marker, impossible length or checksum mismatch.
    Invalid,
}

/// Checks the frame at the start of `buf`.
pub fn check_frame(buf: &[u8]) -> FrameCheck {
    if buf.len() >= 4 && buf[0..4] != FRAME_SYNC {
        return FrameCheck::Invalid;
    }
    if buf.len() < FRAME_HEADER_LEN {
        return FrameCheck::NeedMore(FRAME_HEADER_LEN);
    }
    let body_len = u32_at(buf, 4) as usize;
    if body_len > MAX_FRAME_BODY {
        return FrameCheck::Invalid;
    }
    let total = FRAME_HEADER_LEN + body_len;
    if buf.len() < total {
        return FrameCheck::NeedMore(total);
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[12..24]), &buf[24..total]);
    if crc != u32_at(buf, 8) {
        return FrameCheck::Invalid;
    }
    FrameCheck::Valid(FrameHeader {
        first_seq: u64_at(buf, 12),
        count: u32_at(buf, 20),
        body_len,
    })
}

/// Appends one frame holding `records` (numbered from `first_seq`) and `checkpoints` to `out`.
///
/// Body layout: varint origin count, then each origin (format u8, source, category, host as
/// varint-length strings); varint checkpoint count, then each (key, value); then each record:
/// varint origin index, received_at i64, flags u8, position kind u8 (0 none, 1 file: file_id u64 +
/// varint end_offset), varint raw length, raw bytes. Integers are little-endian.
pub fn encode_frame(
    out: &mut Vec<u8>,
    first_seq: u64,
    records: &[Record],
    checkpoints: &[Checkpoint],
) {
    let start = out.len();
    out.extend_from_slice(&FRAME_SYNC);
    out.extend_from_slice(&[0u8; 8]); // body_len + crc, filled in below
    out.extend_from_slice(&first_seq.to_le_bytes());
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());

    // The origin table: usually one entry per batch.
    let mut origins: Vec<&Arc<Origin>> = Vec::new();
    for r in records {
        if origin_index(&origins, &r.origin).is_none() {
            origins.push(&r.origin);
        }
    }
    put_varint(out, origins.len() as u64);
    for o in &origins {
        out.push(o.format.code());
        put_bytes(out, o.source.as_bytes());
        put_bytes(out, o.category.as_bytes());
        put_bytes(out, o.host.as_bytes());
    }
    put_varint(out, checkpoints.len() as u64);
    for cp in checkpoints {
        put_bytes(out, cp.key.as_bytes());
        put_bytes(out, &cp.value);
    }
    for r in records {
        put_varint(out, origin_index(&origins, &r.origin).unwrap_or(0) as u64);
        out.extend_from_slice(&r.received_at.0.to_le_bytes());
        out.push(r.flags.bits());
        match r.position {
            Position::None => out.push(0),
            Position::File {
                file_id,
                end_offset,
            } => {
                out.push(1);
                out.extend_from_slice(&file_id.to_le_bytes());
                put_varint(out, end_offset);
            }
        }
        put_bytes(out, &r.raw);
    }
    let body_len = (out.len() - start - FRAME_HEADER_LEN) as u32;
    out[start + 4..start + 8].copy_from_slice(&body_len.to_le_bytes());
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&out[start + 12..start + 24]),
        &out[start + 24..],
    );
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

/// The checksum of the body of the frame `frame` (one frame, as [`encode_frame`] wrote it).
pub fn frame_body_crc(frame: &[u8]) -> u32 {
    crc32c::crc32c(&frame[FRAME_HEADER_LEN..])
}

/// Sets the first sequence number of the frame `frame` (one frame whose body checksum is
/// `body_crc`) and its checksum, without reading the body again.
pub fn set_first_seq(frame: &mut [u8], body_crc: u32, first_seq: u64) {
    frame[12..20].copy_from_slice(&first_seq.to_le_bytes());
    let body_len = frame.len() - FRAME_HEADER_LEN;
    let crc = crc32c::crc32c_combine(crc32c::crc32c(&frame[12..24]), body_crc, body_len);
    frame[8..12].copy_from_slice(&crc.to_le_bytes());
}

fn origin_index(table: &[&Arc<Origin>], origin: &Arc<Origin>) -> Option<usize> {
    table
        .iter()
        .position(|o| Arc::ptr_eq(o, origin))
        .or_else(|| table.iter().position(|o| ***o == **origin))
}

/// Upper bound of the encoded size of one record (for splitting batches).
pub fn record_size_hint(r: &Record) -> usize {
    r.raw.len() + 32
}

/// Reuses `Arc<Origin>`s across frames so a reader allocates an origin once, not per frame.
#[derive(Debug, Default)]
pub struct OriginCache {
    known: Vec<Arc<Origin>>,
}

impl OriginCache {
    fn get(&mut self, format: Format, source: &[u8], category: &[u8], host: &[u8]) -> Arc<Origin> {
        if let Some(o) = self.known.iter().find(|o| {
            o.format == format
                && o.source.as_bytes() == source
                && o.category.as_bytes() == category
                && o.host.as_bytes() == host
        }) {
            return o.clone();
        }
        let o = Arc::new(Origin {
            source: String::from_utf8_lossy(source).as_ref().into(),
            category: String::from_utf8_lossy(category).as_ref().into(),
            format,
            host: String::from_utf8_lossy(host).as_ref().into(),
        });
        if self.known.len() >= 64 {
            self.known.remove(0);
        }
        self.known.push(o.clone());
        o
    }
}

/// Decodes the checkpoints of a frame body (they precede the records, so this is cheap).
pub fn decode_checkpoints(body: &[u8]) -> Result<Vec<Checkpoint>, FormatError> {
    let mut r = ByteReader { buf: body, pos: 0 };
    skip_origins(&mut r)?;
    read_checkpoints(&mut r)
}

/// Decodes a frame's records, slicing their payloads out of `body` without copying.
pub fn decode_records(
    header: &FrameHeader,
    body: &Bytes,
    cache: &mut OriginCache,
) -> Result<Vec<Record>, FormatError> {
    let mut r = ByteReader { buf: body, pos: 0 };
    let n_origins = r.varint()?;
    if n_origins > body.len() as u64 {
        return Err(FormatError::Malformed("origin count"));
    }
    let mut origins = Vec::with_capacity(n_origins as usize);
    for _ in 0..n_origins {
        let format = Format::from_code(r.u8()?);
        let source = r.bytes()?;
        let category = r.bytes()?;
        let host = r.bytes()?;
        origins.push(cache.get(format, source, category, host));
    }
    read_checkpoints(&mut r)?;
    let count = header.count as usize;
    // Each record takes at least 11 bytes: never trust the count for the allocation.
    let mut records = Vec::with_capacity(count.min(body.len() / 11 + 1));
    for _ in 0..count {
        let origin_idx = r.varint()? as usize;
        let origin = origins
            .get(origin_idx)
            .ok_or(FormatError::Malformed("origin index"))?
            .clone();
        let received_at = Timestamp(r.u64()? as i64);
        let flags = RecordFlags::from_bits(r.u8()?);
        let position = match r.u8()? {
            0 => Position::None,
            1 => {
                let file_id = r.u64()?;
                let end_offset = r.varint()?;
                Position::File {
                    file_id,
                    end_offset,
                }
            }
            _ => return Err(FormatError::Malformed("position kind")),
        };
        let len = r.varint()?;
        let start = r.pos;
        r.skip(len)?;
        records.push(Record {
            origin,
            received_at,
            position,
            flags,
            raw: body.slice(start..r.pos),
        });
    }
    if r.pos != body.len() {
        return Err(FormatError::Malformed("trailing bytes in frame"));
    }
    Ok(records)
}

fn skip_origins(r: &mut ByteReader<'_>) -> Result<(), FormatError> {
    let n = r.varint()?;
    for _ in 0..n {
        r.u8()?;
        r.bytes()?;
        r.bytes()?;
        r.bytes()?;
    }
    Ok(())
}

fn read_checkpoints(r: &mut ByteReader<'_>) -> Result<Vec<Checkpoint>, FormatError> {
    let n = r.varint()?;
    if n > r.buf.len() as u64 {
        return Err(FormatError::Malformed("checkpoint count"));
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let key = String::from_utf8_lossy(r.bytes()?).into_owned();
        let value = Bytes::copy_from_slice(r.bytes()?);
        out.push(Checkpoint { key, value });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Cursor file: magic[8] version u32 acked u64 has_state u8 state_len u32 state, then the
// delivered positions (`delivered::encode`; absent in files written before them), crc32c u32.

/// A cursor file's contents: the acknowledged sequence number, the sink's state and the
/// delivered-positions tail (`delivered::decode` reads it).
pub type CursorFile = (u64, Option<Bytes>, Bytes);

pub fn encode_cursor(acked: u64, sink_state: Option<&[u8]>, positions: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + sink_state.map_or(0, |s| s.len()) + positions.len());
    out.extend_from_slice(&CURSOR_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&acked.to_le_bytes());
    out.push(sink_state.is_some() as u8);
    let state = sink_state.unwrap_or(&[]);
    out.extend_from_slice(&(state.len() as u32).to_le_bytes());
    out.extend_from_slice(state);
    out.extend_from_slice(positions);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub fn decode_cursor(buf: &[u8]) -> Result<CursorFile, FormatError> {
    let body = verify_trailing_crc(buf, &CURSOR_MAGIC)?;
    let mut r = ByteReader { buf: body, pos: 12 };
    let acked = r.u64()?;
    let has_state = r.u8()? != 0;
    let len = r.u32()? as u64;
    let start = r.pos;
    r.skip(len)?;
    let state = has_state.then(|| Bytes::copy_from_slice(&body[start..r.pos]));
    Ok((acked, state, Bytes::copy_from_slice(&body[r.pos..])))
}

// ---------------------------------------------------------------------------------------------
// Checkpoint snapshot: magic[8] version u32 covers_below u64 count u32, then (key, value) pairs
// as u32-length strings, then crc32c u32. `covers_below`: the snapshot holds every checkpoint
// from segments whose first sequence number is below it.

pub fn encode_snapshot<'a>(
    covers_below: u64,
    checkpoints: impl ExactSizeIterator<Item = (&'a str, &'a [u8])>,
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&covers_below.to_le_bytes());
    out.extend_from_slice(&(checkpoints.len() as u32).to_le_bytes());
    for (k, v) in checkpoints {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub fn decode_snapshot(buf: &[u8]) -> Result<(u64, Vec<Checkpoint>), FormatError> {
    let body = verify_trailing_crc(buf, &SNAPSHOT_MAGIC)?;
    let mut r = ByteReader { buf: body, pos: 12 };
    let covers_below = r.u64()?;
    let n = r.u32()? as u64;
    if n > body.len() as u64 {
        return Err(FormatError::Malformed("checkpoint count"));
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let klen = r.u32()? as u64;
        let kstart = r.pos;
        r.skip(klen)?;
        let key = String::from_utf8_lossy(&body[kstart..r.pos]).into_owned();
        let vlen = r.u32()? as u64;
        let vstart = r.pos;
        r.skip(vlen)?;
        out.push(Checkpoint {
            key,
            value: Bytes::copy_from_slice(&body[vstart..r.pos]),
        });
    }
    Ok((covers_below, out))
}

/// Checks magic, version and the trailing CRC; returns the bytes before the CRC.
fn verify_trailing_crc<'a>(buf: &'a [u8], magic: &[u8; 8]) -> Result<&'a [u8], FormatError> {
    if buf.len() < 16 {
        return Err(FormatError::Truncated);
    }
    if buf[0..8] != *magic {
        return Err(FormatError::BadMagic);
    }
    let (body, crc) = buf.split_at(buf.len() - 4);
    if crc32c::crc32c(body) != u32_at(crc, 0) {
        return Err(FormatError::BadChecksum);
    }
    let version = u32_at(body, 8);
    if version != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion(version));
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------------------
// Primitive helpers.

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    fn u8(&mut self) -> Result<u8, FormatError> {
        let b = *self.buf.get(self.pos).ok_or(FormatError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, FormatError> {
        if self.buf.len() - self.pos < 4 {
            return Err(FormatError::Truncated);
        }
        let v = u32_at(self.buf, self.pos);
        self.pos += 4;
        Ok(v)
    }
    fn u64(&mut self) -> Result<u64, FormatError> {
        if self.buf.len() - self.pos < 8 {
            return Err(FormatError::Truncated);
        }
        let v = u64_at(self.buf, self.pos);
        self.pos += 8;
        Ok(v)
    }
    fn varint(&mut self) -> Result<u64, FormatError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(FormatError::Malformed("varint too long"))
    }
    fn skip(&mut self, len: u64) -> Result<(), FormatError> {
        if len > (self.buf.len() - self.pos) as u64 {
            return Err(FormatError::Truncated);
        }
        self.pos += len as usize;
        Ok(())
    }
    fn bytes(&mut self) -> Result<&'a [u8], FormatError> {
        let len = self.varint()?;
        let start = self.pos;
        self.skip(len)?;
        Ok(&self.buf[start..self.pos])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(src: &str, raw: &[u8], pos: Position) -> Record {
        Record {
            origin: Origin::new(src, "cat", Format::Haproxy, "host-1"),
            received_at: Timestamp(-1_234_567),
            position: pos,
            flags: RecordFlags::TRUNCATED,
            raw: Bytes::copy_from_slice(raw),
        }
    }

    #[test]
    fn frame_round_trips_every_field() {
        let records = vec![
            rec("a", b"first line", Position::None),
            rec(
                "b",
                b"",
                Position::File {
                    file_id: u64::MAX,
                    end_offset: 1 << 40,
                },
            ),
            rec("a", &[0xD1, 0x7A, 0x51, 0xA9, 0], Position::None),
        ];
        let cps = vec![Checkpoint {
            key: "file:7".into(),
            value: Bytes::from_static(b"\x00\x01"),
        }];
        let mut buf = vec![9u8; 3];
        encode_frame(&mut buf, 42, &records, &cps);
        let FrameCheck::Valid(h) = check_frame(&buf[3..]) else {
            panic!("invalid frame");
        };
        assert_eq!((h.first_seq, h.count, h.last_seq()), (42, 3, 44));
        assert_eq!(h.total_len(), buf.len() - 3);
        let body = Bytes::copy_from_slice(&buf[3 + FRAME_HEADER_LEN..]);
        let mut cache = OriginCache::default();
        assert_eq!(decode_records(&h, &body, &mut cache).unwrap(), records);
        assert_eq!(decode_checkpoints(&body).unwrap(), cps);
        for cut in 0..buf.len() - 3 {
            assert!(!matches!(
                check_frame(&buf[3..3 + cut]),
                FrameCheck::Valid(_)
            ));
        }
        for i in 3..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert!(!matches!(check_frame(&bad[3..]), FrameCheck::Valid(_)));
        }
    }

    #[test]
    fn headers_cursor_and_snapshot_round_trip() {
        let h = encode_segment_header(77);
        assert_eq!(decode_segment_header(&h), Ok(77));
        let mut bad = h;
        bad[17] ^= 1;
        assert_eq!(decode_segment_header(&bad), Err(FormatError::BadChecksum));
        let c = encode_cursor(9, Some(b"len=3"), b"pos");
        assert_eq!(
            decode_cursor(&c).unwrap(),
            (
                9,
                Some(Bytes::from_static(b"len=3")),
                Bytes::from_static(b"pos")
            )
        );
        assert_eq!(
            decode_cursor(&encode_cursor(0, None, &[])).unwrap(),
            (0, None, Bytes::new())
        );
        assert!(decode_cursor(&c[..c.len() - 1]).is_err());
        let s = encode_snapshot(5, [("k", &b"v"[..])].into_iter());
        let (covers, cps) = decode_snapshot(&s).unwrap();
        assert_eq!(
            (covers, cps[0].key.as_str(), &cps[0].value[..]),
            (5, "k", &b"v"[..])
        );
    }
}
