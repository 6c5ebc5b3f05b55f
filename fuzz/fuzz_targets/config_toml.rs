//! Fuzz target: arbitrary bytes through `quill::fuzzing::config_toml` (see that function for what is
//! decoded and what must hold).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    quill::fuzzing::config_toml(data);
});
