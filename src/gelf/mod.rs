//! GELF 1.1 output: records and parsed fields written straight into a byte buffer as JSON.
//!
//! No I/O here. [`encode_record`] writes a record unparsed (the raw line as `short_message`);
//! [`encode_parsed`] runs a [`crate::parse::Parser`] with a [`GelfWriter`] as its field sink, so
//! each field goes straight into `out`, then adds the envelope (`host`, `short_message`, `timestamp`, `level`, `_txn_id`, `_category`, `_source`).
//! A line that does not parse is written raw with `_parse_error` and `_format_tried`.
//!
//! The GELF wire protocol's pure parts live here too: UDP chunking ([`chunk`]), NUL-delimited
//! TCP framing ([`frame`]) and payload compression ([`payload`]). The `logging`-only build compiles
//! [`json`] alone (what the logging library's encoder writes with): no parser, no record.

pub mod json;

#[cfg(feature = "pipeline")]
pub mod chunk;
#[cfg(feature = "pipeline")]
mod encode;
#[cfg(feature = "pipeline")]
pub mod frame;
#[cfg(feature = "pipeline")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "pipeline")]
pub mod payload;

#[cfg(feature = "pipeline")]
pub use encode::{
    Encoded, GelfWriter, LEVEL_INFO, SeenField, SeenFields, encode_parsed, encode_parsed_observed,
    encode_record, write_value,
};
