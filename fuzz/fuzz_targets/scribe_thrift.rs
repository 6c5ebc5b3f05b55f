//! Fuzz target: any bytes as a Scribe Thrift frame body; never a panic, never an allocation
//! beyond the frame's own size (lengths are checked against what is left before allocating), and
//! what decodes re-encodes to a frame that decodes to the same entries.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use quill::wire::thrift::{self, Call, Limits};

fuzz_target!(|data: &[u8]| {
    let frame = Bytes::copy_from_slice(data);
    let Ok(message) = thrift::decode(&frame, Limits::default()) else {
        return;
    };
    let mut reply = Vec::new();
    thrift::encode_reply(&mut reply, &message, thrift::Value::I32(0));
    if let Call::Log(entries) = &message.call {
        let mut out = Vec::new();
        thrift::encode_log_call(&mut out, message.seq_id, entries);
        let again = thrift::decode(&Bytes::copy_from_slice(&out[4..]), Limits::default())
            .expect("re-encoded call decodes");
        assert_eq!(&again.call, &message.call);
    }
});
