//! Entry points shared by the `fuzz/` targets and the tests, for every decoder that faces the
//! network or the disk: syslog stream framing, forward-protocol frames and batches, journal
//! frames, cursor and snapshot files, and the TOML config. Each takes arbitrary bytes and must
//! not panic, loop or allocate beyond the decoder's own bounds. (The line parsers' entry points
//! are in [`crate::parse::fuzzing`].) Not part of the stable API.
//!
//! Touches nothing: pure decoding of the bytes it is given.

use bytes::{Bytes, BytesMut};

/// Feeds `data` to the syslog stream framer (RFC 6587 octet counting and LF framing) in pieces
/// whose sizes come from the data itself, then flushes what is left; every frame is bounded by
/// the framer's maximum.
pub fn syslog_stream(data: &[u8]) {
    const MAX: usize = 4096;
    let mut decoder = crate::sources::syslog::framing::FrameDecoder::new(MAX);
    let mut buf = BytesMut::new();
    let step = data.first().map_or(1, |&b| usize::from(b % 61) + 1);
    for piece in data.chunks(step) {
        buf.extend_from_slice(piece);
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            assert!(frame.data.len() <= MAX, "frame over the maximum");
        }
        if buf.len() > 2 * MAX + data.len() {
            panic!("the framer buffers without bound");
        }
    }
    let _ = decoder.take_incomplete(&mut buf);
}

/// Decodes `data` as forward-protocol frames: a type byte, then the payload.
pub fn forward_frame(data: &[u8]) {
    let Some((&ty, payload)) = data.split_first() else {
        return;
    };
    if let Ok(frame) = crate::transport::frame::Frame::decode(ty, Bytes::copy_from_slice(payload)) {
        // What decodes must encode again.
        let mut out = Vec::new();
        frame.encode(&mut out);
    }
}

/// Decodes `data` as a forward batch: 4 bytes of record count, then the decompressed batch; and
/// the same bytes as a compressed batch under a 1 MiB bound.
pub fn forward_batch(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let count = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let body = Bytes::copy_from_slice(&data[4..]);
    let _ = crate::transport::batch::decode_records(body, count);
    if let Ok(mut z) = zstd::bulk::Decompressor::new() {
        let _ = crate::transport::batch::decompress(&mut z, &data[4..], count, 1 << 20);
    }
}

/// Decodes `data` as journal bytes: a frame (header check, checkpoints, records), a segment
/// header, a cursor file and a checkpoint snapshot.
pub fn journal_bytes(data: &[u8]) {
    crate::journal::fuzz_decode(data);
}

/// Parses `data` as a config file (as `quill validate` would, without reading the files it
/// names).
pub fn config_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::Config::parse(text, "fuzz.toml");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry point over a few thousand random inputs: the bounded fallback for machines
    /// without a fuzzer, and a check that the entry points run at all.
    #[test]
    fn entry_points_take_random_bytes() {
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        let seeds: [&[u8]; 6] = [
            b"<34>1 2026-01-01T00:00:00Z h app - - - hi\n12 <13>abc def\n",
            b"\x01QUILFWD1\x00\x01\x00\x00",
            b"\x05\x00\x00\x00\x01\x00\x03web\x03web\x01h",
            b"\xd1\x7a\x51\xa9\x10\x00\x00\x00",
            b"data_dir = \"x\"\n[sources.a]\ntype = \"syslog\"\nudp = \"127.0.0.1:1\"\n",
            b"",
        ];
        for i in 0..3000 {
            let mut input = seeds[i % seeds.len()].to_vec();
            for _ in 0..rng.usize(0..8) {
                match rng.u8(0..3) {
                    0 if !input.is_empty() => {
                        let at = rng.usize(0..input.len());
                        input[at] = rng.u8(..);
                    }
                    1 => input.push(rng.u8(..)),
                    _ => input.truncate(rng.usize(0..=input.len())),
                }
            }
            syslog_stream(&input);
            forward_frame(&input);
            forward_batch(&input);
            journal_bytes(&input);
            config_toml(&input);
        }
    }
}
