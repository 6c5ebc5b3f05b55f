//! Fuzz target: any datagrams through the GELF chunk assembler (first byte of each piece picks
//! the clock step); never a panic, the budgets always hold, a completed message never exceeds
//! `max_message_bytes`.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use quill::gelf::chunk::{Assembler, ChunkLimits};

fuzz_target!(|data: &[u8]| {
    let limits = ChunkLimits {
        max_incomplete: 8,
        max_incomplete_bytes: 4096,
        max_message_bytes: 2048,
        timeout: Duration::from_secs(5),
    };
    let mut a = Assembler::new(limits);
    let mut now = Instant::now();
    // Datagrams separated by 0xff 0xff.
    for piece in data.split(|&b| b == 0xff) {
        if let Some((&step, datagram)) = piece.split_first() {
            now += Duration::from_millis(u64::from(step) * 40);
            if let Some(m) = a.push(datagram, now) {
                assert!(m.len() <= limits.max_message_bytes);
            }
        }
        assert!(a.incomplete() <= limits.max_incomplete);
        assert!(a.incomplete_bytes() <= limits.max_incomplete_bytes);
    }
});
