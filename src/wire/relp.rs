//! RELP frames (rsyslog's Reliable Event Logging Protocol, as librelp speaks it):
//! `TXNR SP COMMAND SP DATALEN [SP DATA] TRAILER`, the trailer a `\n`. TXNR and DATALEN are at
//! most 9 digits, COMMAND at most 32 letters; DATALEN is checked against the maximum frame size
//! before the data is waited for, so memory per connection is bounded by one frame.
//!
//! Pure functions on byte buffers: no I/O.

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// Digits of TXNR and DATALEN at most.
pub const MAX_DIGITS: usize = 9;
/// Letters of a command at most.
pub const MAX_COMMAND: usize = 32;
/// The longest header: `TXNR SP COMMAND SP DATALEN SP`.
const MAX_HEADER: usize = MAX_DIGITS + 1 + MAX_COMMAND + 1 + MAX_DIGITS + 1;

/// Why a stream is not RELP.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RelpError {
    #[error("bad transaction number")]
    BadTxnr,
    #[error("bad command")]
    BadCommand,
    #[error("bad data length")]
    BadLength,
    #[error("frame data of {len} bytes exceeds max_frame_size {max}")]
    TooLarge { len: usize, max: usize },
    #[error("frame does not end with a newline")]
    BadTrailer,
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelpFrame {
    pub txnr: u32,
    pub command: Bytes,
    pub data: Bytes,
}

/// Splits RELP frames out of a connection's buffer.
#[derive(Debug, Clone, Copy)]
pub struct RelpDecoder {
    pub max_frame: usize,
}

/// Parses `digits` ending at `end` in `b`, starting at `start`: (value, index of the byte after).
fn number(b: &[u8], start: usize) -> Option<Result<(usize, usize), ()>> {
    let mut i = start;
    let mut v = 0usize;
    while i < b.len() && b[i].is_ascii_digit() {
        if i - start == MAX_DIGITS {
            return Some(Err(()));
        }
        v = v * 10 + usize::from(b[i] - b'0');
        i += 1;
    }
    if i == b.len() {
        return None; // more digits may follow
    }
    if i == start {
        return Some(Err(()));
    }
    Some(Ok((v, i)))
}

impl RelpDecoder {
    /// The next complete frame, `None` if more bytes are needed.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<RelpFrame>, RelpError> {
        let b = &buf[..];
        let (txnr, i) = match number(b, 0) {
            None => return self.need_more(b),
            Some(Err(())) => return Err(RelpError::BadTxnr),
            Some(Ok(v)) => v,
        };
        if b[i] != b' ' || txnr == 0 {
            return Err(RelpError::BadTxnr);
        }
        let cmd_start = i + 1;
        let mut j = cmd_start;
        while j < b.len() && b[j].is_ascii_alphabetic() {
            if j - cmd_start == MAX_COMMAND {
                return Err(RelpError::BadCommand);
            }
            j += 1;
        }
        if j == b.len() {
            return self.need_more(b);
        }
        if j == cmd_start || b[j] != b' ' {
            return Err(RelpError::BadCommand);
        }
        let (len, k) = match number(b, j + 1) {
            None => return self.need_more(b),
            Some(Err(())) => return Err(RelpError::BadLength),
            Some(Ok(v)) => v,
        };
        if len > self.max_frame {
            return Err(RelpError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        // `k` is the separator (space before the data) or, with no data, the trailer.
        let data_start = if len == 0 {
            k
        } else {
            if b[k] != b' ' {
                return Err(RelpError::BadLength);
            }
            k + 1
        };
        // Some senders put a space before the trailer of an empty frame.
        let mut trailer = data_start + len;
        if len == 0 && b[k] == b' ' {
            trailer += 1;
        }
        if b.len() <= trailer {
            return Ok(None);
        }
        if b[trailer] != b'\n' {
            return Err(RelpError::BadTrailer);
        }
        let mut frame = buf.split_to(trailer + 1).freeze();
        let command = frame.slice(cmd_start..j);
        frame.advance(data_start);
        frame.truncate(len);
        Ok(Some(RelpFrame {
            txnr: txnr as u32,
            command,
            data: frame,
        }))
    }

    fn need_more(&self, b: &[u8]) -> Result<Option<RelpFrame>, RelpError> {
        if b.len() > MAX_HEADER {
            return Err(RelpError::BadCommand);
        }
        Ok(None)
    }
}

/// Appends a `rsp` frame: `TXNR rsp LEN DATA\n`.
pub fn encode_rsp(out: &mut Vec<u8>, txnr: u32, data: &[u8]) {
    out.extend_from_slice(format!("{txnr} rsp {}", data.len()).as_bytes());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

/// Appends a frame with any command (the client side, tests).
pub fn encode_frame(out: &mut Vec<u8>, txnr: u32, command: &str, data: &[u8]) {
    out.extend_from_slice(format!("{txnr} {command} {}", data.len()).as_bytes());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec() -> RelpDecoder {
        RelpDecoder { max_frame: 1024 }
    }

    #[test]
    fn frames_in_pieces() {
        let mut all = Vec::new();
        encode_frame(&mut all, 1, "open", b"relp_version=0\ncommands=syslog");
        encode_frame(&mut all, 2, "syslog", b"<13>hello\nworld");
        encode_frame(&mut all, 3, "close", b"");
        let mut got = Vec::new();
        let mut buf = BytesMut::new();
        for b in &all {
            buf.extend_from_slice(&[*b]);
            while let Some(f) = dec().decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 3);
        assert_eq!(&got[1].data[..], b"<13>hello\nworld");
        assert_eq!(&got[2].command[..], b"close");
        assert!(got[2].data.is_empty());
        assert!(buf.is_empty());
    }

    #[test]
    fn bounds() {
        let cases: [(&[u8], RelpError); 6] = [
            (b"1234567890 syslog 1 x\n", RelpError::BadTxnr),
            (b"0 syslog 1 x\n", RelpError::BadTxnr),
            (b"1 syslog 9999999999 x", RelpError::BadLength),
            (
                b"1 syslog 2000 x",
                RelpError::TooLarge {
                    len: 2000,
                    max: 1024,
                },
            ),
            (b"1 syslog 1 xy", RelpError::BadTrailer),
            (b"GET / HTTP/1.1\r\n", RelpError::BadTxnr),
        ];
        for (input, want) in cases {
            let mut buf = BytesMut::from(input);
            assert_eq!(dec().decode(&mut buf), Err(want), "{input:?}");
        }
        let mut long = BytesMut::from(&b"1 "[..]);
        long.extend_from_slice(&[b'a'; 40]);
        assert_eq!(dec().decode(&mut long), Err(RelpError::BadCommand));
        let mut partial = BytesMut::from(&b"12 sys"[..]);
        assert_eq!(dec().decode(&mut partial), Ok(None));
    }

    #[test]
    fn rsp_format() {
        let mut out = Vec::new();
        encode_rsp(&mut out, 7, b"200 OK");
        assert_eq!(out, b"7 rsp 6 200 OK\n");
    }
}
