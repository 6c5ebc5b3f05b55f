//! Fuzz target: any bytes through the syslog parser (format = syslog) into GELF; never a panic,
//! always one valid GELF JSON object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quill::parse::{fuzzing, Format};

fuzz_target!(|data: &[u8]| {
    quill::gelf::fuzzing::encode_line(Format::Syslog, data);
    fuzzing::parse_line(data);
});
