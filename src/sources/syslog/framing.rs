//! RFC 6587 framing of syslog over a byte stream: octet counting (`LEN SP MSG`) and LF-delimited
//! (non-transparent) framing, detected per message. Pure: no I/O.

use bytes::{Buf, Bytes, BytesMut};

/// Longest octet-count prefix accepted (digits).
const MAX_COUNT_DIGITS: usize = 10;

/// Splits syslog frames out of a TCP byte stream (RFC 6587), detected per message.
#[derive(Debug)]
pub struct FrameDecoder {
    max_message: usize,
    /// Bytes of an over-long frame still to discard.
    skip: usize,
    /// Discarding the rest of an over-long LF-framed message.
    skip_to_lf: bool,
}

/// A frame split out of the stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub data: Bytes,
    pub truncated: bool,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("malformed octet count {0:?}")]
    BadOctetCount(String),
}

impl FrameDecoder {
    pub fn new(max_message: usize) -> FrameDecoder {
        FrameDecoder {
            max_message,
            skip: 0,
            skip_to_lf: false,
        }
    }

    /// Takes the next complete frame out of `buf`, if there is one.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if self.skip > 0 {
            let n = self.skip.min(buf.len());
            buf.advance(n);
            self.skip -= n;
            if self.skip > 0 {
                return Ok(None);
            }
        }
        if self.skip_to_lf {
            match memchr::memchr(b'\n', buf) {
                Some(i) => {
                    buf.advance(i + 1);
                    self.skip_to_lf = false;
                }
                None => {
                    buf.clear();
                    return Ok(None);
                }
            }
        }
        // Tolerate stray line terminators between frames.
        while matches!(buf.first(), Some(b'\n' | b'\r')) {
            buf.advance(1);
        }
        match buf.first() {
            None => Ok(None),
            Some(b) if b.is_ascii_digit() => self.decode_octet_counted(buf),
            Some(_) => Ok(self.decode_lf(buf)),
        }
    }

    /// What is left of an incomplete frame when the peer closed: the message bytes received so
    /// far, without an octet-count prefix. `None` when nothing is pending.
    pub fn take_incomplete(&mut self, buf: &mut BytesMut) -> Option<Bytes> {
        if self.skip > 0 || self.skip_to_lf {
            buf.clear();
            return None;
        }
        let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 && digits <= MAX_COUNT_DIGITS && buf.get(digits) == Some(&b' ') {
            buf.advance(digits + 1);
        }
        (!buf.is_empty()).then(|| buf.split().freeze())
    }

    fn decode_octet_counted(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > MAX_COUNT_DIGITS {
            return Err(FrameError::BadOctetCount(
                String::from_utf8_lossy(&buf[..digits.min(20)]).into_owned(),
            ));
        }
        if digits == buf.len() {
            return Ok(None);
        }
        if buf[digits] != b' ' {
            return Err(FrameError::BadOctetCount(
                String::from_utf8_lossy(&buf[..(digits + 1).min(buf.len())]).into_owned(),
            ));
        }
        let len: usize = std::str::from_utf8(&buf[..digits])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                FrameError::BadOctetCount(String::from_utf8_lossy(&buf[..digits]).into_owned())
            })?;
        let keep = len.min(self.max_message);
        if buf.len() < digits + 1 + keep {
            return Ok(None);
        }
        buf.advance(digits + 1);
        let data = buf.split_to(keep).freeze();
        let truncated = len > keep;
        if truncated {
            self.skip = len - keep;
        }
        // The counted bytes are the message, byte-exact (a sender's trailing LF included).
        Ok(Some(Frame { data, truncated }))
    }

    fn decode_lf(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        let limit = buf.len().min(self.max_message + 1);
        match memchr::memchr(b'\n', &buf[..limit]) {
            Some(i) => {
                let mut data = buf.split_to(i + 1).freeze();
                data.truncate(i);
                if data.last() == Some(&b'\r') {
                    data.truncate(i - 1);
                }
                Some(Frame {
                    data,
                    truncated: false,
                })
            }
            None if buf.len() > self.max_message => {
                let data = buf.split_to(self.max_message).freeze();
                self.skip_to_lf = true;
                Some(Frame {
                    data,
                    truncated: true,
                })
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8], max: usize) -> (Vec<(String, bool)>, Option<FrameError>) {
        let mut d = FrameDecoder::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        // Feed one byte at a time: framing must not depend on read boundaries.
        for &b in input {
            buf.extend_from_slice(&[b]);
            loop {
                match d.decode(&mut buf) {
                    Ok(Some(f)) => {
                        out.push((String::from_utf8_lossy(&f.data).into_owned(), f.truncated))
                    }
                    Ok(None) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        (out, None)
    }

    #[test]
    fn mixed_framing() {
        let (f, e) = frames(b"<13>hello\n10 <13>world!<14>crlf\r\n", 1024);
        assert_eq!(e, None);
        assert_eq!(
            f,
            vec![
                ("<13>hello".into(), false),
                ("<13>world!".into(), false),
                ("<14>crlf".into(), false)
            ]
        );
    }

    #[test]
    fn oversize_is_truncated_and_flagged() {
        let (f, e) = frames(
            b"20 <13>0123456789abcdef<13>x\n<13>aaaaaaaaaaaaaaaaaaaa\n<1>ok\n",
            8,
        );
        assert_eq!(e, None);
        assert_eq!(
            f,
            vec![
                ("<13>0123".into(), true),
                ("<13>x".into(), false),
                ("<13>aaaa".into(), true),
                ("<1>ok".into(), false)
            ]
        );
    }

    #[test]
    fn huge_octet_count_is_an_error() {
        let (_, e) = frames(b"1099511627776 <13>x", 1024);
        assert!(matches!(e, Some(FrameError::BadOctetCount(_))));
        let (_, e) = frames(b"12x<13>", 1024);
        assert!(matches!(e, Some(FrameError::BadOctetCount(_))));
    }
}
