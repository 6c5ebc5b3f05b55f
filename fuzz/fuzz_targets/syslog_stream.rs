//! Fuzz target: arbitrary bytes through `quill::fuzzing::syslog_stream` (see that function for what is
//! decoded and what must hold).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    quill::fuzzing::syslog_stream(data);
});
