//! GELF 1.1 output: records and parsed fields written straight into a byte buffer as JSON.
//!
//! No I/O here. [`encode_record`] is what sinks call for every record: it writes one GELF JSON
//! object (no trailing newline) into `out`.

pub mod json;

use crate::record::Record;

/// Syslog severity "informational", GELF's default level for access lines.
pub const LEVEL_INFO: u8 = 6;

/// Writes `record` as one GELF 1.1 JSON object into `out`.
///
/// The raw line is the `short_message`; `host`, `timestamp` (receive time, seconds with
/// milliseconds), `_category` and `_source` come from the record's metadata.
pub fn encode_record(record: &Record, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"version\":\"1.1\",\"host\":");
    json::write_str(out, record.origin.host.as_bytes());
    out.extend_from_slice(b",\"short_message\":");
    json::write_str(out, &record.raw);
    out.extend_from_slice(b",\"timestamp\":");
    json::write_millis_as_secs(out, record.received_at.as_millis());
    out.extend_from_slice(b",\"level\":");
    out.extend_from_slice(itoa::Buffer::new().format(LEVEL_INFO).as_bytes());
    out.extend_from_slice(b",\"_category\":");
    json::write_str(out, record.origin.category.as_bytes());
    out.extend_from_slice(b",\"_source\":");
    json::write_str(out, record.origin.source.as_bytes());
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Format, Origin, Timestamp};
    use bytes::Bytes;

    #[test]
    fn minimal_gelf_is_valid_json() {
        let mut r = Record::new(
            Origin::new("web", "lb", Format::Raw, "host1"),
            Bytes::from_static(b"GET \"/x\"\t\xff"),
        );
        r.received_at = Timestamp(1_700_000_000_123_456_789);
        let mut out = Vec::new();
        encode_record(&r, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["version"], "1.1");
        assert_eq!(v["short_message"], "GET \"/x\"\t\u{fffd}");
        assert_eq!(v["timestamp"].as_f64(), Some(1_700_000_000.123));
        assert_eq!(v["_category"], "lb");
        assert_eq!(v["level"], 6);
    }
}
