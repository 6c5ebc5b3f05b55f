//! Fuzz target: arbitrary bytes through `quill::fuzzing::forward_batch` (see that function for what is
//! decoded and what must hold).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    quill::fuzzing::forward_batch(data);
});
