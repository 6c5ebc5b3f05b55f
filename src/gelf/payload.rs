//! GELF payload compression: a message is sent plain, gzip- or zlib-compressed, told apart by its
//! first bytes (as Graylog does). Decompression stops at a size limit: a payload that would
//! inflate beyond it (a decompression bomb) is refused, never held in memory. Pure: no I/O.

use std::borrow::Cow;
use std::io::Read;

use thiserror::Error;

/// How a payload is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zlib,
}

/// Why a payload could not be decompressed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("{0:?} payload inflates beyond {1} bytes")]
    TooLarge(Compression, usize),
    #[error("corrupt {0:?} payload: {1}")]
    Corrupt(Compression, String),
}

/// The compression of `data`, from its magic bytes.
pub fn sniff(data: &[u8]) -> Compression {
    match data {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        // zlib: CM = 8 (deflate), the header checksum is a multiple of 31.
        [a, b, ..] if a & 0x0f == 8 && (u16::from(*a) << 8 | u16::from(*b)) % 31 == 0 => {
            Compression::Zlib
        }
        _ => Compression::None,
    }
}

/// `data` decompressed (borrowed when it was not compressed), refusing more than `max` bytes.
pub fn decompress(data: &[u8], max: usize) -> Result<Cow<'_, [u8]>, PayloadError> {
    let kind = sniff(data);
    let mut out = Vec::new();
    let limit = max as u64 + 1;
    let read = match kind {
        Compression::None => return Ok(Cow::Borrowed(data)),
        Compression::Gzip => flate2::read::MultiGzDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out),
        Compression::Zlib => flate2::read::ZlibDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out),
    };
    read.map_err(|e| PayloadError::Corrupt(kind, e.to_string()))?;
    if out.len() > max {
        return Err(PayloadError::TooLarge(kind, max));
    }
    Ok(Cow::Owned(out))
}

/// `data` compressed with `kind` (for the GELF sink).
pub fn compress(data: &[u8], kind: Compression) -> Vec<u8> {
    use std::io::Write;
    let level = flate2::Compression::fast();
    let mut out = Vec::with_capacity(data.len() / 2 + 32);
    match kind {
        Compression::None => out.extend_from_slice(data),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(out, level);
            let _ = e.write_all(data);
            out = e.finish().unwrap_or_default();
        }
        Compression::Zlib => {
            let mut e = flate2::write::ZlibEncoder::new(out, level);
            let _ = e.write_all(data);
            out = e.finish().unwrap_or_default();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_bombs() {
        let msg = br#"{"version":"1.1","host":"h","short_message":"m"}"#;
        assert_eq!(sniff(msg), Compression::None);
        for kind in [Compression::Gzip, Compression::Zlib] {
            let c = compress(msg, kind);
            assert_eq!(sniff(&c), kind);
            assert_eq!(&decompress(&c, 1000).unwrap()[..], &msg[..]);
            let bomb = compress(&vec![b' '; 10 << 20], kind);
            assert!(bomb.len() < 100 << 10);
            assert_eq!(
                decompress(&bomb, 1 << 20),
                Err(PayloadError::TooLarge(kind, 1 << 20))
            );
            assert!(matches!(
                decompress(&c[..c.len() / 2], 1000),
                Err(PayloadError::Corrupt(..))
            ));
        }
    }
}
