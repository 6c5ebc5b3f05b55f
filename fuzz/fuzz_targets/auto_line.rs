//! Fuzz target: any bytes through the auto parser (format = auto) into GELF; never a panic,
//! always one valid GELF JSON object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quill::parse::{fuzzing, Format};

fuzz_target!(|data: &[u8]| {
    quill::gelf::fuzzing::encode_line(Format::Auto, data);
    fuzzing::parse_line(data);
});
