//! Wire codecs of the protocols Quill speaks for other software's clients, as pure functions on
//! byte buffers (no I/O, no runtime), so they build without the pipeline and can be fuzzed:
//!
//! - [`thrift`]: Scribe's Thrift `Log()` and fb303 calls (framed transport, binary protocol).
//! - [`relp`]: rsyslog's RELP frames.

pub mod relp;
pub mod thrift;
