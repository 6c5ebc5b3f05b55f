//! Entry point of the fuzz targets that run a line through a parser into GELF (the parsers are
//! [`crate::parse::fuzzing`]'s). Not part of the stable API.

use bytes::Bytes;

use crate::parse::{Format, fuzzing::parser};
use crate::record::{Origin, Record, Timestamp};

/// Encodes `data` as one record in `format` and checks the output is a GELF JSON object.
pub fn encode_line(format: Format, data: &[u8]) {
    let mut r = Record::new(
        Origin::new("fuzz", "fuzz", Format::Auto, "fuzzhost"),
        Bytes::copy_from_slice(data),
    );
    r.received_at = Timestamp(1_795_400_000_000_000_000);
    let mut out = Vec::new();
    let _ = super::encode_parsed(parser(format), &r, &mut out);
    let v: serde_json::Value = serde_json::from_slice(&out).expect("GELF output is valid JSON");
    assert!(v.is_object() && v["version"] == "1.1" && v["short_message"].is_string());
}
