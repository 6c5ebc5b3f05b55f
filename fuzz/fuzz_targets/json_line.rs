//! Fuzz target: any bytes through the json parser (format = json) into GELF; never a panic,
//! always one valid GELF JSON object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quill::parse::{fuzzing, Format};

fuzz_target!(|data: &[u8]| {
    quill::gelf::fuzzing::encode_line(Format::Json, data);
    fuzzing::parse_line(data);
});
