//! Fuzz target: any text as a haproxy.cfg and as an Apache config; what they name is compiled.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| quill::parse::fuzzing::read_configs(data));
