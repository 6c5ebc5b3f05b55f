//! Fuzz target: any bytes as the search API's query text (checked, parsed, run on a small index).
//! Needs the index: `cargo fuzz run search_query --features pipeline`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| quill::index::fuzzing::search_query(data));
