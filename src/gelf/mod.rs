//! GELF 1.1 output: records and parsed fields written straight into a byte buffer as JSON.
//!
//! No I/O here. [`encode_record`] writes a record unparsed (the raw line as `short_message`);
//! [`encode_parsed`] (what [`crate::parse::Parser::encode`] calls) runs the parser with a
//! [`GelfWriter`] as its field sink, so each field goes straight into `out`, then adds the
//! envelope (`host`, `short_message`, `timestamp`, `level`, `_txn_id`, `_category`, `_source`).
//! A line that does not parse is written raw with `_parse_error` and `_format_tried`.

pub mod json;

use std::cell::RefCell;

use crate::parse::{FieldSink, Format, Outcome, Parser, Value, text};
use crate::record::{Record, RecordFlags};

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

/// A [`FieldSink`] that appends `,"_name":value` pairs to a GELF object being written.
pub struct GelfWriter<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> GelfWriter<'o> {
    pub fn new(out: &'o mut Vec<u8>) -> GelfWriter<'o> {
        GelfWriter { out }
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Writes a field value as JSON (escaped values are decoded first, in a reused buffer).
#[inline]
pub fn write_value(out: &mut Vec<u8>, v: Value<'_>) {
    match v {
        Value::Str(s) => json::write_str(out, s),
        Value::Escaped(s, e) => SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                text::unescape(s, e, &mut buf);
                json::write_str(out, &buf);
                if buf.capacity() > 1 << 20 {
                    *buf = Vec::new();
                }
            }
            Err(_) => {
                let mut buf = Vec::new();
                text::unescape(s, e, &mut buf);
                json::write_str(out, &buf);
            }
        }),
        Value::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        Value::Float(f) if f.is_finite() => {
            out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes())
        }
        Value::Float(_) => json::write_str(out, b"NaN"),
    }
}

impl FieldSink for GelfWriter<'_> {
    #[inline]
    fn field(&mut self, name: &str, value: Value<'_>) {
        self.out.extend_from_slice(b",\"_");
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        write_value(self.out, value);
    }

    fn dynamic_field(&mut self, prefix: &str, name: &[u8], value: Value<'_>) {
        self.out.extend_from_slice(b",\"_");
        self.out.extend_from_slice(prefix.as_bytes());
        let start = self.out.len();
        for &c in name {
            let c = c.to_ascii_lowercase();
            self.out.push(
                if c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_' {
                    c
                } else {
                    b'_'
                },
            );
        }
        if prefix.is_empty() {
            match &self.out[start..] {
                // `_id` is forbidden by GELF; the others are written by the envelope, and a JSON
                // key must not duplicate them.
                b"id"
                | b"txn_id"
                | b"category"
                | b"source"
                | b"log_format"
                | b"truncated"
                | b"record_truncated"
                | b"parse_error"
                | b"parse_error_column"
                | b"format_tried" => self.out.push(b'_'),
                b"" => self.out.extend_from_slice(b"empty"),
                _ => {}
            }
        }
        self.out.extend_from_slice(b"\":");
        write_value(self.out, value);
    }

    fn mark(&self) -> usize {
        self.out.len()
    }

    fn rollback(&mut self, mark: usize) {
        self.out.truncate(mark);
    }
}

fn write_envelope_end(record: &Record, out: &mut Vec<u8>) {
    if record.flags.contains(RecordFlags::TRUNCATED) {
        out.extend_from_slice(b",\"_record_truncated\":1");
    }
    out.extend_from_slice(b",\"_category\":");
    json::write_str(out, record.origin.category.as_bytes());
    out.extend_from_slice(b",\"_source\":");
    json::write_str(out, record.origin.source.as_bytes());
    out.push(b'}');
}

fn non_empty<'a>(m: Value<'a>, raw: &'a [u8]) -> Value<'a> {
    match m {
        Value::Str(s) | Value::Escaped(s, _) if s.is_empty() => {
            Value::Str(if raw.is_empty() { b"-" } else { raw })
        }
        other => other,
    }
}

/// Parses `record` with `parser` in `format` and writes it as one GELF object into `out`.
pub fn encode_parsed(
    parser: &Parser,
    format: Format,
    record: &Record,
    out: &mut Vec<u8>,
) -> Outcome {
    let received_ms = record.received_at.as_millis();
    out.reserve(record.raw.len() * 2 + 768);
    out.extend_from_slice(b"{\"version\":\"1.1\"");
    let fields_start = out.len();
    let raw: &[u8] = &record.raw;
    let result = parser.parse_line(format, raw, received_ms, &mut GelfWriter::new(out));
    match result {
        Ok(info) => {
            if let Some((_, id)) = info.txn_id {
                out.extend_from_slice(b",\"_txn_id\":");
                write_value(out, id);
            }
            if info.truncated {
                out.extend_from_slice(b",\"_truncated\":1");
            }
            out.extend_from_slice(b",\"_log_format\":\"");
            out.extend_from_slice(info.format.as_bytes());
            out.extend_from_slice(b"\",\"host\":");
            json::write_str(out, info.host.unwrap_or(record.origin.host.as_bytes()));
            out.extend_from_slice(b",\"short_message\":");
            write_value(out, non_empty(info.message.unwrap_or(Value::Str(raw)), raw));
            if let Some(full) = info.full_message {
                out.extend_from_slice(b",\"full_message\":");
                write_value(out, full);
            }
            out.extend_from_slice(b",\"timestamp\":");
            json::write_millis_as_secs(out, info.timestamp_ms.unwrap_or(received_ms));
            out.extend_from_slice(b",\"level\":");
            out.extend_from_slice(
                itoa::Buffer::new()
                    .format(parser.level_for(&info))
                    .as_bytes(),
            );
            write_envelope_end(record, out);
            if format == Format::Raw {
                Outcome::Raw
            } else {
                Outcome::Parsed(info.format)
            }
        }
        Err(e) => {
            out.truncate(fields_start);
            out.extend_from_slice(b",\"host\":");
            json::write_str(out, record.origin.host.as_bytes());
            out.extend_from_slice(b",\"short_message\":");
            write_value(out, non_empty(Value::Str(b""), raw));
            out.extend_from_slice(b",\"timestamp\":");
            json::write_millis_as_secs(out, received_ms);
            out.extend_from_slice(b",\"level\":");
            out.extend_from_slice(itoa::Buffer::new().format(LEVEL_INFO).as_bytes());
            out.extend_from_slice(b",\"_parse_error\":");
            json::write_str(out, e.to_string().as_bytes());
            out.extend_from_slice(b",\"_parse_error_column\":");
            out.extend_from_slice(itoa::Buffer::new().format(e.column).as_bytes());
            out.extend_from_slice(b",\"_format_tried\":\"");
            out.extend_from_slice(format.as_str().as_bytes());
            out.push(b'"');
            write_envelope_end(record, out);
            Outcome::Failed
        }
    }
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
