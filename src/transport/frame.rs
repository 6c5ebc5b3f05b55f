//! Frames of the forward protocol: their byte layout, encoding, and bounded async reading.
//!
//! Every frame is `type: u8 | length: u32 big-endian | payload[length]`. A reader refuses a frame
//! whose declared length exceeds its maximum before allocating anything for it, and tells a frame
//! cut short by the end of the stream ([`FrameError::Truncated`]) from a clean end between frames.
//!
//! Payloads (integers big-endian, `str16` = `u16` length + UTF-8 bytes, `bytes16` likewise):
//!
//! | type | frame   | payload |
//! |------|---------|---------|
//! | 1    | HELLO   | `"QUILLFWD"`, version `u16`, agent id `str16`, stream id `str16`, token `bytes16` |
//! | 2    | WELCOME | version `u16`, high-water mark `u64` (the last sequence held for this stream) |
//! | 3    | BATCH   | first seq `u64`, last seq `u64`, record count `u32`, decompressed length `u32`, zstd data |
//!
//! Versions: a receiver answers WELCOME with the version of the HELLO when it speaks it (1 or 2),
//! else ERROR 1. In version 1 a batch's `count` equals its range's length; in version 2 it may be
//! lower (1 to the length): the records are the taken ones of the range, in order, and the
//! receiver's high-water mark becomes the range's last seq.
//! | 4    | ACK     | last seq `u64`: every batch up to it is durable on the receiver |
//! | 5    | ERROR   | code `u16`, message `str16`; the sender closes the connection after it |
//!
//! This module does no I/O of its own beyond the stream it is handed.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The HELLO magic, so a peer speaking something else is told apart from a bad version.
pub const MAGIC: &[u8; 8] = b"QUILLFWD";
/// The protocol version this build speaks: 2, where a batch's records may leave gaps in its
/// sequence range (a routed forward sink skips records; `count` is then below the range's length).
pub const PROTOCOL_VERSION: u16 = 2;
/// The oldest version this build still speaks (contiguous batches: `count` = the range's length).
pub const MIN_PROTOCOL_VERSION: u16 = 1;
/// Bytes of the frame header.
pub const HEADER_LEN: usize = 5;

const T_HELLO: u8 = 1;
const T_WELCOME: u8 = 2;
const T_BATCH: u8 = 3;
const T_ACK: u8 = 4;
const T_ERROR: u8 = 5;

/// Why a receiver refused a peer (the `code` of an ERROR frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    UnsupportedVersion,
    AuthFailed,
    Malformed,
    FrameTooLarge,
    BatchTooLarge,
    InvalidCategory,
    InvalidAgentId,
    Unavailable,
    /// The agent id is not one its credential (token, client certificate) may use.
    IdentityMismatch,
    Other(u16),
}

impl ErrorCode {
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::UnsupportedVersion => 1,
            ErrorCode::AuthFailed => 2,
            ErrorCode::Malformed => 3,
            ErrorCode::FrameTooLarge => 4,
            ErrorCode::BatchTooLarge => 5,
            ErrorCode::InvalidCategory => 6,
            ErrorCode::InvalidAgentId => 7,
            ErrorCode::Unavailable => 8,
            ErrorCode::IdentityMismatch => 9,
            ErrorCode::Other(c) => c,
        }
    }

    pub fn from_code(code: u16) -> ErrorCode {
        match code {
            1 => ErrorCode::UnsupportedVersion,
            2 => ErrorCode::AuthFailed,
            3 => ErrorCode::Malformed,
            4 => ErrorCode::FrameTooLarge,
            5 => ErrorCode::BatchTooLarge,
            6 => ErrorCode::InvalidCategory,
            7 => ErrorCode::InvalidAgentId,
            8 => ErrorCode::Unavailable,
            9 => ErrorCode::IdentityMismatch,
            c => ErrorCode::Other(c),
        }
    }

    /// True when retrying the same request cannot succeed without a configuration change.
    pub fn is_permanent(self) -> bool {
        matches!(
            self,
            ErrorCode::UnsupportedVersion
                | ErrorCode::AuthFailed
                | ErrorCode::InvalidAgentId
                | ErrorCode::IdentityMismatch
        )
    }
}

/// The agent's opening frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version: u16,
    /// Who is sending (an agent's configured id or hostname).
    pub agent_id: String,
    /// The sender's journal stream: a random id made once per journal, so a wiped agent starts over.
    pub stream_id: String,
    pub token: Bytes,
}

/// A batch of records with the sender's sequence range `first_seq..=last_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFrame {
    pub first_seq: u64,
    pub last_seq: u64,
    pub count: u32,
    pub raw_len: u32,
    pub compressed: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Hello(Hello),
    Welcome { version: u16, high_water: u64 },
    Batch(BatchFrame),
    Ack { last_seq: u64 },
    Error { code: ErrorCode, message: String },
}

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: u64, max: u64 },
    #[error("truncated frame: the stream ended {got} bytes into a {expected}-byte frame")]
    Truncated { expected: usize, got: usize },
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    #[error("malformed {frame} frame: {reason}")]
    Malformed {
        frame: &'static str,
        reason: &'static str,
    },
    #[error("not a Quill forward peer (bad magic)")]
    BadMagic,
}

impl FrameError {
    /// The ERROR code a receiver answers this with.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            _ => ErrorCode::Malformed,
        }
    }
}

impl Frame {
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Hello(_) => "HELLO",
            Frame::Welcome { .. } => "WELCOME",
            Frame::Batch(_) => "BATCH",
            Frame::Ack { .. } => "ACK",
            Frame::Error { .. } => "ERROR",
        }
    }

    /// Appends the encoded frame (header and payload) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        let ty = match self {
            Frame::Hello(h) => {
                out.extend_from_slice(MAGIC);
                out.put_u16(h.version);
                put_bytes16(out, h.agent_id.as_bytes());
                put_bytes16(out, h.stream_id.as_bytes());
                put_bytes16(out, &h.token);
                T_HELLO
            }
            Frame::Welcome {
                version,
                high_water,
            } => {
                out.put_u16(*version);
                out.put_u64(*high_water);
                T_WELCOME
            }
            Frame::Batch(b) => {
                out.put_u64(b.first_seq);
                out.put_u64(b.last_seq);
                out.put_u32(b.count);
                out.put_u32(b.raw_len);
                out.extend_from_slice(&b.compressed);
                T_BATCH
            }
            Frame::Ack { last_seq } => {
                out.put_u64(*last_seq);
                T_ACK
            }
            Frame::Error { code, message } => {
                out.put_u16(code.code());
                put_bytes16(out, truncate_utf8(message, u16::MAX as usize).as_bytes());
                T_ERROR
            }
        };
        let len = (out.len() - start - HEADER_LEN) as u32;
        out[start] = ty;
        out[start + 1..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    }

    /// Decodes one frame's payload.
    pub fn decode(ty: u8, mut p: Bytes) -> Result<Frame, FrameError> {
        let frame = match ty {
            T_HELLO => {
                let m = |reason| FrameError::Malformed {
                    frame: "HELLO",
                    reason,
                };
                if p.len() < MAGIC.len() || &p[..MAGIC.len()] != MAGIC {
                    return Err(FrameError::BadMagic);
                }
                p.advance(MAGIC.len());
                let version = get_u16(&mut p).ok_or(m("short"))?;
                let agent_id = get_str16(&mut p).ok_or(m("bad agent id"))?;
                let stream_id = get_str16(&mut p).ok_or(m("bad stream id"))?;
                let token = get_bytes16(&mut p).ok_or(m("bad token"))?;
                Frame::Hello(Hello {
                    version,
                    agent_id,
                    stream_id,
                    token,
                })
            }
            T_WELCOME => {
                let m = FrameError::Malformed {
                    frame: "WELCOME",
                    reason: "short",
                };
                let version = get_u16(&mut p).ok_or(m)?;
                let high_water = get_u64(&mut p).ok_or(FrameError::Malformed {
                    frame: "WELCOME",
                    reason: "short",
                })?;
                Frame::Welcome {
                    version,
                    high_water,
                }
            }
            T_BATCH => {
                if p.len() < 24 {
                    return Err(FrameError::Malformed {
                        frame: "BATCH",
                        reason: "short header",
                    });
                }
                let first_seq = p.get_u64();
                let last_seq = p.get_u64();
                let count = p.get_u32();
                let raw_len = p.get_u32();
                Frame::Batch(BatchFrame {
                    first_seq,
                    last_seq,
                    count,
                    raw_len,
                    compressed: p,
                })
            }
            T_ACK => Frame::Ack {
                last_seq: get_u64(&mut p).ok_or(FrameError::Malformed {
                    frame: "ACK",
                    reason: "short",
                })?,
            },
            T_ERROR => {
                let m = |reason| FrameError::Malformed {
                    frame: "ERROR",
                    reason,
                };
                let code = get_u16(&mut p).ok_or(m("short"))?;
                let message = get_bytes16(&mut p).ok_or(m("short message"))?;
                Frame::Error {
                    code: ErrorCode::from_code(code),
                    message: String::from_utf8_lossy(&message).into_owned(),
                }
            }
            other => return Err(FrameError::UnknownType(other)),
        };
        Ok(frame)
    }
}

/// Reads the next frame, refusing any longer than `max_len` bytes of payload. `Ok(None)` is a
/// clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    max_len: usize,
) -> Result<Option<Frame>, FrameError> {
    let Some((ty, len)) = read_header(reader, max_len).await? else {
        return Ok(None);
    };
    buf.clear();
    buf.reserve(len);
    while buf.len() < len {
        // Read into the spare capacity without ever growing past `len`.
        let want = len - buf.len();
        let n = (&mut *reader).take(want as u64).read_buf(buf).await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                expected: HEADER_LEN + len,
                got: HEADER_LEN + buf.len(),
            });
        }
    }
    Frame::decode(ty, buf.split_to(len).freeze()).map(Some)
}

/// Reads a frame header: its type and payload length, refusing a type this protocol does not
/// know and a length above `max_len`. `Ok(None)` is a clean end of stream between frames.
pub async fn read_header<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_len: usize,
) -> Result<Option<(u8, usize)>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = reader.read(&mut header[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated {
                expected: HEADER_LEN,
                got,
            });
        }
        got += n;
    }
    let ty = header[0];
    if !(T_HELLO..=T_ERROR).contains(&ty) {
        return Err(FrameError::UnknownType(ty));
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > max_len {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max: max_len as u64,
        });
    }
    Ok(Some((ty, len)))
}

fn put_bytes16(out: &mut Vec<u8>, b: &[u8]) {
    let b = &b[..b.len().min(u16::MAX as usize)];
    out.put_u16(b.len() as u16);
    out.extend_from_slice(b);
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn get_u16(p: &mut Bytes) -> Option<u16> {
    (p.len() >= 2).then(|| p.get_u16())
}

fn get_u64(p: &mut Bytes) -> Option<u64> {
    (p.len() >= 8).then(|| p.get_u64())
}

fn get_bytes16(p: &mut Bytes) -> Option<Bytes> {
    let len = get_u16(p)? as usize;
    (p.len() >= len).then(|| p.split_to(len))
}

fn get_str16(p: &mut Bytes) -> Option<String> {
    let b = get_bytes16(p)?;
    String::from_utf8(b.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(f: Frame) {
        let mut out = Vec::new();
        f.encode(&mut out);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut r = &out[..];
        let mut buf = BytesMut::new();
        let back = rt
            .block_on(read_frame(&mut r, &mut buf, 1 << 20))
            .unwrap()
            .unwrap();
        assert_eq!(back, f);
        assert!(
            rt.block_on(read_frame(&mut r, &mut buf, 1 << 20))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn frames_round_trip() {
        round_trip(Frame::Hello(Hello {
            version: PROTOCOL_VERSION,
            agent_id: "web-1".into(),
            stream_id: "00ff".into(),
            token: Bytes::from_static(b"s3cret"),
        }));
        round_trip(Frame::Welcome {
            version: 1,
            high_water: 42,
        });
        round_trip(Frame::Batch(BatchFrame {
            first_seq: 5,
            last_seq: 9,
            count: 5,
            raw_len: 100,
            compressed: Bytes::from_static(b"\x28\xb5\x2f\xfd"),
        }));
        round_trip(Frame::Ack { last_seq: u64::MAX });
        round_trip(Frame::Error {
            code: ErrorCode::AuthFailed,
            message: "wrong token".into(),
        });
    }

    #[test]
    fn bounds_and_truncation_are_errors() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut buf = BytesMut::new();
        // Oversized: refused from the header alone.
        let mut r: &[u8] = &[T_BATCH, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            rt.block_on(read_frame(&mut r, &mut buf, 1024)),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(buf.capacity() < 1 << 20);
        // Truncated header and payload.
        let mut r: &[u8] = &[T_ACK, 0, 0];
        assert!(matches!(
            rt.block_on(read_frame(&mut r, &mut buf, 1024)),
            Err(FrameError::Truncated { .. })
        ));
        let mut r: &[u8] = &[T_ACK, 0, 0, 0, 8, 1, 2];
        assert!(matches!(
            rt.block_on(read_frame(&mut r, &mut buf, 1024)),
            Err(FrameError::Truncated { .. })
        ));
        // Garbage.
        let mut r: &[u8] = b"GET / HTTP/1.1\r\n\r\n";
        assert!(matches!(
            rt.block_on(read_frame(&mut r, &mut buf, 1024)),
            Err(FrameError::UnknownType(b'G'))
        ));
        // A short HELLO.
        let mut r: &[u8] = &[T_HELLO, 0, 0, 0, 3, b'Q', b'U', b'I'];
        assert!(matches!(
            rt.block_on(read_frame(&mut r, &mut buf, 1024)),
            Err(FrameError::BadMagic)
        ));
    }
}
