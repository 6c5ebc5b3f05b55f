//! GELF over TCP: messages delimited by a NUL byte ([`NulDecoder`]).
//!
//! Empty frames (consecutive NULs) are skipped. A frame longer than the maximum is cut: its
//! first `max` bytes come out flagged truncated and the rest, up to the next NUL, is discarded,
//! so the buffer never holds more than `max` bytes of one frame. Pure: no I/O.

use bytes::{Bytes, BytesMut};

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NulFrame {
    pub data: Bytes,
    /// The frame was longer than the maximum and `data` is its beginning.
    pub truncated: bool,
}

/// Splits a byte stream into NUL-delimited frames of at most `max` bytes.
#[derive(Debug)]
pub struct NulDecoder {
    max: usize,
    /// Discarding the rest of a frame that was cut.
    skipping: bool,
    /// Bytes of the buffer already searched for a NUL.
    scanned: usize,
}

impl NulDecoder {
    pub fn new(max: usize) -> NulDecoder {
        NulDecoder {
            max: max.max(1),
            skipping: false,
            scanned: 0,
        }
    }

    /// The next complete frame in `buf`, removing it (and what was discarded) from `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Option<NulFrame> {
        loop {
            if self.skipping {
                match memchr::memchr(0, buf) {
                    Some(i) => {
                        let _ = buf.split_to(i + 1);
                        self.skipping = false;
                    }
                    None => {
                        buf.clear();
                        return None;
                    }
                }
            }
            match memchr::memchr(0, &buf[self.scanned..]) {
                Some(i) => {
                    let end = self.scanned + i;
                    self.scanned = 0;
                    let data = buf.split_to(end).freeze();
                    let _ = buf.split_to(1);
                    if data.is_empty() {
                        continue;
                    }
                    // One read may bring a whole long frame with its NUL.
                    let truncated = data.len() > self.max;
                    return Some(NulFrame {
                        data: if truncated {
                            data.slice(..self.max)
                        } else {
                            data
                        },
                        truncated,
                    });
                }
                None if buf.len() > self.max => {
                    self.scanned = 0;
                    self.skipping = true;
                    return Some(NulFrame {
                        data: buf.split_to(self.max).freeze(),
                        truncated: true,
                    });
                }
                None => {
                    self.scanned = buf.len();
                    return None;
                }
            }
        }
    }

    /// At the end of the stream: what is left after the last NUL, if anything but whitespace.
    pub fn finish(&mut self, buf: &mut BytesMut) -> Option<NulFrame> {
        self.scanned = 0;
        let rest = buf.split().freeze();
        if self.skipping || rest.iter().all(u8::is_ascii_whitespace) {
            self.skipping = false;
            return None;
        }
        Some(NulFrame {
            data: rest,
            truncated: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(d: &mut NulDecoder, buf: &mut BytesMut) -> Vec<NulFrame> {
        std::iter::from_fn(|| d.decode(buf)).collect()
    }

    #[test]
    fn splits_on_nul_across_reads() {
        let mut d = NulDecoder::new(100);
        let mut buf = BytesMut::from(&b"{\"a\":1}\0\0{\"b\""[..]);
        let f = all(&mut d, &mut buf);
        assert_eq!(f.len(), 1);
        assert_eq!(&f[0].data[..], b"{\"a\":1}");
        buf.extend_from_slice(b":2}\0tail");
        let f = all(&mut d, &mut buf);
        assert_eq!(&f[0].data[..], b"{\"b\":2}");
        assert_eq!(
            d.finish(&mut buf).unwrap().data,
            Bytes::from_static(b"tail")
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn cuts_long_frames_and_resyncs() {
        let mut d = NulDecoder::new(4);
        let mut buf = BytesMut::from(&b"abcdefgh"[..]);
        let f = all(&mut d, &mut buf);
        assert_eq!(
            f,
            vec![NulFrame {
                data: Bytes::from_static(b"abcd"),
                truncated: true
            }]
        );
        assert!(buf.is_empty());
        buf.extend_from_slice(b"ij\0ok\0");
        let f = all(&mut d, &mut buf);
        assert_eq!(
            f,
            vec![NulFrame {
                data: Bytes::from_static(b"ok"),
                truncated: false
            }]
        );
        assert_eq!(d.finish(&mut buf), None);
        let mut buf = BytesMut::from(&b"abcdefgh\0"[..]);
        let f = all(&mut d, &mut buf);
        assert_eq!(
            f,
            vec![NulFrame {
                data: Bytes::from_static(b"abcd"),
                truncated: true
            }]
        );
    }
}
