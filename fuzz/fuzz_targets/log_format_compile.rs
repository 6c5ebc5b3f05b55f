//! Fuzz target: any string as an HAProxy log-format and as an Apache LogFormat; a format that
//! compiles is run on the same bytes as a line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| quill::parse::fuzzing::compile_formats(data));
