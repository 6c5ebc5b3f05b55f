//! Fuzz target: any byte stream, fed in pieces, through the NUL frame decoder; never a panic, no
//! frame longer than the maximum or containing a NUL, and the buffer never holds more than one
//! maximal frame plus the piece just fed.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use quill::gelf::frame::NulDecoder;

fuzz_target!(|data: &[u8]| {
    const MAX: usize = 64;
    let mut d = NulDecoder::new(MAX);
    let mut buf = BytesMut::new();
    for piece in data.chunks(7) {
        buf.extend_from_slice(piece);
        while let Some(f) = d.decode(&mut buf) {
            assert!(f.data.len() <= MAX);
            assert!(!f.data.contains(&0));
        }
        assert!(buf.len() <= MAX + 7);
    }
    if let Some(f) = d.finish(&mut buf) {
        assert!(!f.data.contains(&0));
    }
    assert!(buf.is_empty());
});
