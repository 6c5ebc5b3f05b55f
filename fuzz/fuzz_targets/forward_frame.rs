//! Fuzz target: any bytes as a stream of forward-protocol frames (header, payload, HELLO, BATCH
//! fields), and any BATCH payload through the bounded decompressor and the record decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quill::transport::batch;
use quill::transport::frame::{Frame, read_frame};

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut reader = data;
    let mut buf = bytes::BytesMut::new();
    // Frames until the input ends or one is refused; each BATCH goes through the decoder.
    while let Ok(Some(frame)) = rt.block_on(read_frame(&mut reader, &mut buf, 1 << 20)) {
        if let Frame::Batch(b) = frame {
            let mut d = zstd::bulk::Decompressor::new().expect("zstd");
            if let Ok(raw) = batch::decompress(&mut d, &b.compressed, b.raw_len, 1 << 20) {
                let _ = batch::decode_records(raw, b.count);
            }
        }
    }
    // The whole input as a decompressed batch payload, too.
    let _ = batch::decode_records(bytes::Bytes::copy_from_slice(data), 1 << 16);
});
