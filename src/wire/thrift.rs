//! A small, bounded Thrift binary-protocol codec for exactly the calls a Scribe server answers:
//! `scribe.Log(list<LogEntry>)` and the fb303 `FacebookService` calls.
//!
//! Decoding works on one complete frame (framed transport: the caller read the 4-byte length and
//! enforced `max_frame_size` before reading the body). Every length the peer declares — a string,
//! a list, a map — is checked against the bytes left in the frame and against [`Limits`] before
//! anything is allocated, so a list claiming 2^31 entries costs nothing. Fields the codec does not
//! know are skipped whatever their type, nested at most [`Limits::max_depth`] deep. Strict
//! (`0x8001` version word) and non-strict (old-style, name length first) message headers are both
//! read; replies use the style of the call. Entries are slices of the frame: no copies.
//!
//! Pure functions on byte buffers: no I/O.

use bytes::{BufMut, Bytes};
use thiserror::Error;

/// Thrift type codes (binary protocol).
pub mod ttype {
    pub const STOP: u8 = 0;
    pub const VOID: u8 = 1;
    pub const BOOL: u8 = 2;
    pub const BYTE: u8 = 3;
    pub const DOUBLE: u8 = 4;
    pub const I16: u8 = 6;
    pub const I32: u8 = 8;
    pub const I64: u8 = 10;
    pub const STRING: u8 = 11;
    pub const STRUCT: u8 = 12;
    pub const MAP: u8 = 13;
    pub const SET: u8 = 14;
    pub const LIST: u8 = 15;
    pub const UUID: u8 = 16;
}

/// Message types.
pub const CALL: u8 = 1;
pub const REPLY: u8 = 2;
pub const EXCEPTION: u8 = 3;
pub const ONEWAY: u8 = 4;

const VERSION_1: u32 = 0x8001_0000;
const VERSION_MASK: u32 = 0xffff_0000;

/// `ResultCode` values.
pub const RESULT_OK: i32 = 0;
pub const RESULT_TRY_LATER: i32 = 1;

/// `TApplicationException` types.
pub const UNKNOWN_METHOD: i32 = 1;

/// What the decoder accepts at most.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Entries in one `Log` call.
    pub max_entries: usize,
    /// Bytes of one string (category, message, method name).
    pub max_string: usize,
    /// Nesting of skipped unknown fields.
    pub max_depth: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_entries: 1 << 20,
            max_string: 16 << 20,
            max_depth: 16,
        }
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ThriftError {
    #[error("frame ends inside a value (at byte {0})")]
    Truncated(usize),
    #[error("bad protocol version {0:#010x}")]
    BadVersion(u32),
    #[error("negative length {0}")]
    NegativeLength(i32),
    #[error("{what} of {len} exceeds the limit of {limit}")]
    TooLong {
        what: &'static str,
        len: usize,
        limit: usize,
    },
    #[error("{what} claims {len} elements but only {left} bytes remain")]
    CountExceedsFrame {
        what: &'static str,
        len: usize,
        left: usize,
    },
    #[error("unknown field type {0}")]
    BadType(u8),
    #[error("fields nested deeper than {0}")]
    TooDeep(u32),
    #[error("`Log` expects list<struct>, got list of type {0}")]
    NotEntries(u8),
    #[error("unexpected message type {0}")]
    BadMessageType(u8),
    #[error("{0} bytes after the message")]
    TrailingBytes(usize),
}

/// One Scribe log entry: slices of the frame it came in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogEntry {
    pub category: Bytes,
    pub message: Bytes,
}

/// A call the server understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Log(Vec<LogEntry>),
    GetName,
    GetVersion,
    GetStatus,
    GetStatusDetails,
    GetCounters,
    GetCounter(Bytes),
    GetOption(Bytes),
    GetOptions,
    SetOption,
    GetCpuProfile,
    AliveSince,
    Reinitialize,
    Shutdown,
    /// A method this server does not have: answered with a `TApplicationException`.
    Unknown,
}

/// A decoded message header and its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub name: Bytes,
    pub kind: u8,
    pub seq_id: i32,
    /// The header was strict (version word first); the reply uses the same style.
    pub strict: bool,
    pub call: Call,
}

impl Message {
    /// True when the caller expects a reply (`CALL`, not `ONEWAY`).
    pub fn wants_reply(&self) -> bool {
        self.kind == CALL
    }
}

struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    limits: Limits,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ThriftError> {
        if self.left() < n {
            return Err(ThriftError::Truncated(self.buf.len()));
        }
        let buf: &'a Bytes = self.buf;
        let s = &buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, ThriftError> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> Result<i16, ThriftError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, ThriftError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A declared length: not negative, within `limit`, and (each element at least `min_size`
    /// bytes) within what is left of the frame.
    fn length(
        &mut self,
        what: &'static str,
        limit: usize,
        min_size: usize,
    ) -> Result<usize, ThriftError> {
        let n = self.i32()?;
        if n < 0 {
            return Err(ThriftError::NegativeLength(n));
        }
        let len = n as usize;
        if len > limit {
            return Err(ThriftError::TooLong { what, len, limit });
        }
        if len.saturating_mul(min_size) > self.left() {
            return Err(ThriftError::CountExceedsFrame {
                what,
                len,
                left: self.left(),
            });
        }
        Ok(len)
    }

    fn binary(&mut self) -> Result<Bytes, ThriftError> {
        let len = self.length("string", self.limits.max_string, 1)?;
        let start = self.pos;
        self.take(len)?;
        Ok(self.buf.slice(start..start + len))
    }

    /// Skips one value of type `ty`.
    fn skip(&mut self, ty: u8, depth: u32) -> Result<(), ThriftError> {
        if depth > self.limits.max_depth {
            return Err(ThriftError::TooDeep(self.limits.max_depth));
        }
        match ty {
            ttype::BOOL | ttype::BYTE => drop(self.take(1)?),
            ttype::I16 => drop(self.take(2)?),
            ttype::I32 => drop(self.take(4)?),
            ttype::I64 | ttype::DOUBLE => drop(self.take(8)?),
            ttype::UUID => drop(self.take(16)?),
            ttype::STRING => {
                let len = self.length("string", usize::MAX, 1)?;
                self.take(len)?;
            }
            ttype::STRUCT => loop {
                let fty = self.u8()?;
                if fty == ttype::STOP {
                    break;
                }
                self.i16()?;
                self.skip(fty, depth + 1)?;
            },
            ttype::MAP => {
                let (k, v) = (self.u8()?, self.u8()?);
                let min = min_size(k)? + min_size(v)?;
                let n = self.length("map", usize::MAX, min)?;
                for _ in 0..n {
                    self.skip(k, depth + 1)?;
                    self.skip(v, depth + 1)?;
                }
            }
            ttype::SET | ttype::LIST => {
                let e = self.u8()?;
                let n = self.length("list", usize::MAX, min_size(e)?)?;
                for _ in 0..n {
                    self.skip(e, depth + 1)?;
                }
            }
            other => return Err(ThriftError::BadType(other)),
        }
        Ok(())
    }

    /// Reads a struct's fields, handing known ones to `field` (which returns false to skip).
    fn read_struct(
        &mut self,
        mut field: impl FnMut(&mut Self, i16, u8) -> Result<bool, ThriftError>,
    ) -> Result<(), ThriftError> {
        loop {
            let ty = self.u8()?;
            if ty == ttype::STOP {
                return Ok(());
            }
            let id = self.i16()?;
            if !field(self, id, ty)? {
                self.skip(ty, 1)?;
            }
        }
    }

    fn entries(&mut self) -> Result<Vec<LogEntry>, ThriftError> {
        let ety = self.u8()?;
        if ety != ttype::STRUCT {
            return Err(ThriftError::NotEntries(ety));
        }
        let n = self.length("list of entries", self.limits.max_entries, 1)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let mut entry = LogEntry::default();
            self.read_struct(|r, id, ty| match (id, ty) {
                (1, ttype::STRING) => {
                    entry.category = r.binary()?;
                    Ok(true)
                }
                (2, ttype::STRING) => {
                    entry.message = r.binary()?;
                    Ok(true)
                }
                _ => Ok(false),
            })?;
            entries.push(entry);
        }
        Ok(entries)
    }
}

/// The smallest encoding of a value of type `ty`.
fn min_size(ty: u8) -> Result<usize, ThriftError> {
    Ok(match ty {
        ttype::BOOL | ttype::BYTE | ttype::STRUCT => 1,
        ttype::I16 => 2,
        ttype::I32 | ttype::STRING => 4,
        ttype::I64 | ttype::DOUBLE => 8,
        ttype::MAP => 6,
        ttype::SET | ttype::LIST => 5,
        ttype::UUID => 16,
        other => return Err(ThriftError::BadType(other)),
    })
}

/// Decodes one message (the frame body, without its length prefix).
pub fn decode(frame: &Bytes, limits: Limits) -> Result<Message, ThriftError> {
    let mut r = Reader {
        buf: frame,
        pos: 0,
        limits,
    };
    let first = r.i32()?;
    let (name, kind, strict) = if first < 0 {
        let word = first as u32;
        if word & VERSION_MASK != VERSION_1 {
            return Err(ThriftError::BadVersion(word));
        }
        let name = r.binary()?;
        (name, (word & 0xff) as u8, true)
    } else {
        // Old style: the name's length came first.
        let len = first as usize;
        if len > limits.max_string.min(r.left()) {
            return Err(ThriftError::TooLong {
                what: "method name",
                len,
                limit: limits.max_string.min(r.left()),
            });
        }
        let start = r.pos;
        r.take(len)?;
        let name = frame.slice(start..start + len);
        (name, r.u8()?, false)
    };
    if kind != CALL && kind != ONEWAY {
        return Err(ThriftError::BadMessageType(kind));
    }
    let seq_id = r.i32()?;
    let mut call = match &name[..] {
        b"Log" => Call::Log(Vec::new()),
        b"getName" => Call::GetName,
        b"getVersion" => Call::GetVersion,
        b"getStatus" => Call::GetStatus,
        b"getStatusDetails" => Call::GetStatusDetails,
        b"getCounters" => Call::GetCounters,
        b"getCounter" => Call::GetCounter(Bytes::new()),
        b"getOption" => Call::GetOption(Bytes::new()),
        b"getOptions" => Call::GetOptions,
        b"setOption" => Call::SetOption,
        b"getCpuProfile" => Call::GetCpuProfile,
        b"aliveSince" => Call::AliveSince,
        b"reinitialize" => Call::Reinitialize,
        b"shutdown" => Call::Shutdown,
        _ => Call::Unknown,
    };
    // The arguments struct.
    r.read_struct(|r, id, ty| match (&mut call, id, ty) {
        (Call::Log(entries), 1, ttype::LIST) => {
            *entries = r.entries()?;
            Ok(true)
        }
        (Call::GetCounter(key) | Call::GetOption(key), 1, ttype::STRING) => {
            *key = r.binary()?;
            Ok(true)
        }
        _ => Ok(false),
    })?;
    if r.left() != 0 {
        return Err(ThriftError::TrailingBytes(r.left()));
    }
    Ok(Message {
        name,
        kind,
        seq_id,
        strict,
        call,
    })
}

/// A result value of a reply.
pub enum Value<'a> {
    Void,
    I32(i32),
    I64(i64),
    String(&'a [u8]),
    /// `map<string, i64>`.
    Counters(&'a [(String, i64)]),
    /// `map<string, string>` (always empty here).
    EmptyStringMap,
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.put_i32(s.len() as i32);
    out.put_slice(s);
}

fn put_header(out: &mut Vec<u8>, name: &[u8], kind: u8, seq_id: i32, strict: bool) {
    if strict {
        out.put_u32(VERSION_1 | u32::from(kind));
        put_string(out, name);
    } else {
        put_string(out, name);
        out.put_u8(kind);
    }
    out.put_i32(seq_id);
}

/// Appends a framed reply to `call` carrying `value` as its result (field 0, `success`).
pub fn encode_reply(out: &mut Vec<u8>, call: &Message, value: Value<'_>) {
    let start = out.len();
    out.put_u32(0);
    put_header(out, &call.name, REPLY, call.seq_id, call.strict);
    match value {
        Value::Void => {}
        Value::I32(v) => {
            out.put_u8(ttype::I32);
            out.put_i16(0);
            out.put_i32(v);
        }
        Value::I64(v) => {
            out.put_u8(ttype::I64);
            out.put_i16(0);
            out.put_i64(v);
        }
        Value::String(s) => {
            out.put_u8(ttype::STRING);
            out.put_i16(0);
            put_string(out, s);
        }
        Value::Counters(map) => {
            out.put_u8(ttype::MAP);
            out.put_i16(0);
            out.put_u8(ttype::STRING);
            out.put_u8(ttype::I64);
            out.put_i32(map.len() as i32);
            for (k, v) in map {
                put_string(out, k.as_bytes());
                out.put_i64(*v);
            }
        }
        Value::EmptyStringMap => {
            out.put_u8(ttype::MAP);
            out.put_i16(0);
            out.put_u8(ttype::STRING);
            out.put_u8(ttype::STRING);
            out.put_i32(0);
        }
    }
    out.put_u8(ttype::STOP);
    finish_frame(out, start);
}

/// Appends a framed `TApplicationException` answering `call`.
pub fn encode_exception(out: &mut Vec<u8>, call: &Message, kind: i32, message: &str) {
    let start = out.len();
    out.put_u32(0);
    put_header(out, &call.name, EXCEPTION, call.seq_id, call.strict);
    out.put_u8(ttype::STRING);
    out.put_i16(1);
    put_string(out, message.as_bytes());
    out.put_u8(ttype::I32);
    out.put_i16(2);
    out.put_i32(kind);
    out.put_u8(ttype::STOP);
    finish_frame(out, start);
}

fn finish_frame(out: &mut [u8], start: usize) {
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Appends a framed, strict `Log(entries)` call (for `quill send --protocol scribe` and tests).
pub fn encode_log_call(out: &mut Vec<u8>, seq_id: i32, entries: &[LogEntry]) {
    let start = out.len();
    out.put_u32(0);
    put_header(out, b"Log", CALL, seq_id, true);
    out.put_u8(ttype::LIST);
    out.put_i16(1);
    out.put_u8(ttype::STRUCT);
    out.put_i32(entries.len() as i32);
    for e in entries {
        out.put_u8(ttype::STRING);
        out.put_i16(1);
        put_string(out, &e.category);
        out.put_u8(ttype::STRING);
        out.put_i16(2);
        put_string(out, &e.message);
        out.put_u8(ttype::STOP);
    }
    out.put_u8(ttype::STOP);
    finish_frame(out, start);
}

/// Decodes the `ResultCode` of a framed-body reply to `Log` (for the Scribe client side).
pub fn decode_log_reply(frame: &Bytes) -> Result<i32, ThriftError> {
    let mut r = Reader {
        buf: frame,
        pos: 0,
        limits: Limits::default(),
    };
    let first = r.i32()?;
    let kind = if first < 0 {
        let word = first as u32;
        if word & VERSION_MASK != VERSION_1 {
            return Err(ThriftError::BadVersion(word));
        }
        r.binary()?;
        (word & 0xff) as u8
    } else {
        r.take(first as usize)?;
        r.u8()?
    };
    r.i32()?;
    if kind != REPLY {
        return Err(ThriftError::BadMessageType(kind));
    }
    let mut code = None;
    r.read_struct(|r, id, ty| {
        if id == 0 && ty == ttype::I32 {
            code = Some(r.i32()?);
            return Ok(true);
        }
        Ok(false)
    })?;
    code.ok_or(ThriftError::Truncated(frame.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(c: &str, m: &str) -> LogEntry {
        LogEntry {
            category: Bytes::copy_from_slice(c.as_bytes()),
            message: Bytes::copy_from_slice(m.as_bytes()),
        }
    }

    fn body(framed: &[u8]) -> Bytes {
        Bytes::copy_from_slice(&framed[4..])
    }

    #[test]
    fn log_round_trip() {
        let entries = vec![entry("web", "a\nb\n"), entry("db", "")];
        let mut out = Vec::new();
        encode_log_call(&mut out, 7, &entries);
        let m = decode(&body(&out), Limits::default()).unwrap();
        assert_eq!(m.seq_id, 7);
        assert!(m.strict);
        assert_eq!(m.call, Call::Log(entries));
    }

    #[test]
    fn non_strict_header_and_unknown_fields() {
        let mut b = Vec::new();
        put_string(&mut b, b"Log");
        b.put_u8(CALL);
        b.put_i32(3);
        // unknown field 9: a map<string, list<i32>>
        b.put_u8(ttype::MAP);
        b.put_i16(9);
        b.put_u8(ttype::STRING);
        b.put_u8(ttype::LIST);
        b.put_i32(1);
        put_string(&mut b, b"k");
        b.put_u8(ttype::I32);
        b.put_i32(2);
        b.put_i32(1);
        b.put_i32(2);
        b.put_u8(ttype::LIST);
        b.put_i16(1);
        b.put_u8(ttype::STRUCT);
        b.put_i32(1);
        b.put_u8(ttype::I64); // unknown field inside the entry
        b.put_i16(5);
        b.put_i64(1);
        b.put_u8(ttype::STRING);
        b.put_i16(2);
        put_string(&mut b, b"msg");
        b.put_u8(ttype::STRING);
        b.put_i16(1);
        put_string(&mut b, b"cat");
        b.put_u8(ttype::STOP);
        b.put_u8(ttype::STOP);
        let m = decode(&Bytes::from(b), Limits::default()).unwrap();
        assert!(!m.strict);
        assert_eq!(m.call, Call::Log(vec![entry("cat", "msg")]));
        let mut reply = Vec::new();
        encode_reply(&mut reply, &m, Value::I32(0));
        assert_eq!(decode_log_reply(&body(&reply)), Ok(0));
    }

    fn log_header() -> Vec<u8> {
        let mut b = Vec::new();
        b.put_u32(VERSION_1 | u32::from(CALL));
        put_string(&mut b, b"Log");
        b.put_i32(1);
        b
    }

    #[test]
    fn huge_counts_refused_before_allocating() {
        let mut b = log_header();
        b.put_u8(ttype::LIST);
        b.put_i16(1);
        b.put_u8(ttype::STRUCT);
        b.put_i32(i32::MAX);
        let limits = Limits {
            max_entries: usize::MAX,
            ..Limits::default()
        };
        assert!(matches!(
            decode(&Bytes::from(b.clone()), limits),
            Err(ThriftError::CountExceedsFrame { .. })
        ));
        assert!(matches!(
            decode(&Bytes::from(b), Limits::default()),
            Err(ThriftError::TooLong { .. })
        ));
        let mut s = log_header();
        s.put_u8(ttype::STRING);
        s.put_i16(4);
        s.put_i32(i32::MAX);
        assert!(decode(&Bytes::from(s), Limits::default()).is_err());
        let mut n = log_header();
        n.put_u8(ttype::LIST);
        n.put_i16(1);
        n.put_u8(ttype::STRUCT);
        n.put_i32(-1);
        assert_eq!(
            decode(&Bytes::from(n), Limits::default()),
            Err(ThriftError::NegativeLength(-1))
        );
    }

    #[test]
    fn depth_limited() {
        let mut b = log_header();
        for _ in 0..100 {
            b.put_u8(ttype::STRUCT);
            b.put_i16(9);
        }
        assert_eq!(
            decode(&Bytes::from(b), Limits::default()),
            Err(ThriftError::TooDeep(16))
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let mut out = Vec::new();
        encode_log_call(&mut out, 1, &[entry("web", "hello")]);
        let full = body(&out);
        for n in 0..full.len() {
            assert!(decode(&full.slice(..n), Limits::default()).is_err(), "{n}");
        }
    }

    #[test]
    fn fb303_calls() {
        let mut b = Vec::new();
        b.put_u32(VERSION_1 | u32::from(CALL));
        put_string(&mut b, b"getCounter");
        b.put_i32(2);
        b.put_u8(ttype::STRING);
        b.put_i16(1);
        put_string(&mut b, b"received good");
        b.put_u8(ttype::STOP);
        let m = decode(&Bytes::from(b), Limits::default()).unwrap();
        assert_eq!(
            m.call,
            Call::GetCounter(Bytes::from_static(b"received good"))
        );
        let mut e = Vec::new();
        encode_exception(&mut e, &m, UNKNOWN_METHOD, "nope");
        assert_eq!(
            u32::from_be_bytes([e[0], e[1], e[2], e[3]]) as usize,
            e.len() - 4
        );
    }
}
