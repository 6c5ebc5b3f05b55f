//! Fuzz target: any bytes, split at an arbitrary point, through the RELP framer; never a panic,
//! the same frames whether the bytes arrive at once or in two reads, and a buffer that never holds
//! more than one frame's worth when the framer asks for more.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use quill::wire::relp::RelpDecoder;

fn frames(parts: &[&[u8]], dec: RelpDecoder) -> Vec<(u32, Vec<u8>, Vec<u8>)> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for p in parts {
        buf.extend_from_slice(p);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(f)) => out.push((f.txnr, f.command.to_vec(), f.data.to_vec())),
                Ok(None) => {
                    assert!(buf.len() <= dec.max_frame + 64);
                    break;
                }
                Err(_) => return out,
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let dec = RelpDecoder { max_frame: 4096 };
    let cut = data.first().map_or(0, |b| usize::from(*b) % (data.len() + 1));
    let (a, b) = data.split_at(cut);
    assert_eq!(frames(&[data], dec), frames(&[a, b], dec));
});
