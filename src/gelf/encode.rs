//! Records and parsed fields written as GELF 1.1 JSON straight into a byte buffer (see the
//! module doc of [`crate::gelf`]). No I/O.

use std::cell::RefCell;

use super::json;
use crate::field_name::{self, Case};
use crate::parse::{FieldSink, Format, LineInfo, Outcome, Parser, Value, text};
use crate::record::{Record, RecordFlags};

pub use crate::parse::LEVEL_INFO;

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
    seen: Option<&'o mut SeenFields>,
}

impl<'o> GelfWriter<'o> {
    pub fn new(out: &'o mut Vec<u8>) -> GelfWriter<'o> {
        GelfWriter { out, seen: None }
    }

    /// A writer that also keeps the fields in [`SeenFields`] as they are written.
    pub fn observed(out: &'o mut Vec<u8>, seen: &'o mut SeenFields) -> GelfWriter<'o> {
        GelfWriter {
            out,
            seen: Some(seen),
        }
    }

    /// Hands the field just written under a name sanitized on the way (its key starts at
    /// `key_at`) to the observer, if any.
    fn observe(&mut self, key_at: usize, value: Value<'_>) {
        if let Some(seen) = self.seen.as_deref_mut() {
            // The key sits between `,"_` and `":`.
            let written = &self.out[key_at + 3..];
            if let Some(end) = memchr::memchr(b'"', written) {
                seen.offer(&written[..end], key_at, value);
            }
        }
    }
}

/// The access-log fields the index reads (`_status`, `_http_method`, `_http_path`,
/// `_client_ip`), kept while a record is encoded, so the index need not read them back out of
/// the GELF text. Buffers are reused from record to record.
#[derive(Debug, Default)]
pub struct SeenFields {
    slots: [SeenSlot; 4],
    /// Unescaping buffer.
    scratch: Vec<u8>,
    /// A field came twice, or a value the GELF text spells differently (a number where text is
    /// read): the GELF text must be read instead.
    pub ambiguous: bool,
}

#[derive(Debug, Default)]
struct SeenSlot {
    /// Output position of the first and the last time the field was written.
    first_at: Option<usize>,
    last_at: usize,
    text: String,
    number: Option<f64>,
}

/// Which [`SeenFields`] slot holds a field.
#[derive(Debug, Clone, Copy)]
pub enum SeenField {
    Status = 0,
    Method = 1,
    Path = 2,
    ClientIp = 3,
}

impl SeenFields {
    /// Forgets the previous record.
    pub fn clear(&mut self) {
        for slot in &mut self.slots {
            slot.first_at = None;
        }
        self.ambiguous = false;
    }

    /// The text of a text field, if written.
    pub fn text(&self, field: SeenField) -> Option<&str> {
        let slot = &self.slots[field as usize];
        slot.first_at.map(|_| slot.text.as_str())
    }

    /// The numeric reading of a field (a number, or text holding one), if written.
    pub fn number(&self, field: SeenField) -> Option<f64> {
        let slot = &self.slots[field as usize];
        slot.first_at.and(slot.number)
    }

    fn offer(&mut self, key: &[u8], at: usize, value: Value<'_>) {
        let field = match key {
            b"status" => SeenField::Status,
            b"http_method" => SeenField::Method,
            b"http_path" => SeenField::Path,
            b"client_ip" => SeenField::ClientIp,
            _ => return,
        };
        let slot = &mut self.slots[field as usize];
        if slot.first_at.is_some() {
            self.ambiguous = true;
        } else {
            slot.first_at = Some(at);
        }
        slot.last_at = at;
        slot.text.clear();
        slot.number = None;
        match value {
            Value::Str(s) => slot.text.push_str(&text::utf8_lossy(s)),
            Value::Escaped(s, e) => {
                self.scratch.clear();
                text::unescape(s, e, &mut self.scratch);
                slot.text.push_str(&text::utf8_lossy(&self.scratch));
            }
            Value::Int(i) => {
                slot.number = Some(i as f64);
                // Text fields read a number as text the way a JSON reader spells it.
                if !matches!(field, SeenField::Status) {
                    self.ambiguous = true;
                }
                return;
            }
            Value::Float(f) => {
                slot.number = f.is_finite().then_some(f);
                if !matches!(field, SeenField::Status) {
                    self.ambiguous = true;
                }
                return;
            }
        }
        slot.number = slot.text.trim().parse::<f64>().ok();
    }

    fn rollback(&mut self, mark: usize) {
        for slot in &mut self.slots {
            match slot.first_at {
                Some(first) if first >= mark => slot.first_at = None,
                Some(_) if slot.last_at >= mark => self.ambiguous = true,
                _ => {}
            }
        }
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
        let key_at = self.out.len();
        self.out.extend_from_slice(b",\"_");
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        write_value(self.out, value);
        if let Some(seen) = self.seen.as_deref_mut() {
            seen.offer(name.as_bytes(), key_at, value);
        }
    }

    fn dynamic_field(&mut self, prefix: &str, name: &[u8], value: Value<'_>) {
        let key_at = self.out.len();
        self.out.extend_from_slice(b",\"_");
        self.out.extend_from_slice(prefix.as_bytes());
        let start = self.out.len();
        field_name::push(self.out, name, Case::Lower);
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
        self.observe(key_at, value);
    }

    fn mark(&self) -> usize {
        self.out.len()
    }

    fn rollback(&mut self, mark: usize) {
        self.out.truncate(mark);
        if let Some(seen) = self.seen.as_deref_mut() {
            seen.rollback(mark);
        }
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

/// Parses `record` with `parser` (in the parser's format, or the record's own hint when that is
/// `auto`) and writes it as one GELF 1.1 object into `out` (no trailing newline); says whether it
/// parsed. A line that does not parse is written with `short_message` = the raw line,
/// `_parse_error` and `_format_tried`.
pub fn encode_parsed(parser: &Parser, record: &Record, out: &mut Vec<u8>) -> Outcome {
    encode_parsed_observed(parser, record, out, None).outcome
}

/// What [`encode_parsed_observed`] saw of a record besides the GELF text.
pub struct Encoded<'r> {
    pub outcome: Outcome,
    /// What the parser found in the line (`None` when it did not parse).
    pub info: Option<LineInfo<'r>>,
    /// The GELF `level` written.
    pub level: u8,
}

/// [`encode_parsed`] that also keeps the parser's [`LineInfo`] and, with `seen`, the fields the
/// index reads (cleared first).
pub fn encode_parsed_observed<'r>(
    parser: &Parser,
    record: &'r Record,
    out: &mut Vec<u8>,
    seen: Option<&mut SeenFields>,
) -> Encoded<'r> {
    let format = parser.format_for(record.origin.format);
    let received_ms = record.received_at.as_millis();
    out.reserve(record.raw.len() * 2 + 768);
    out.extend_from_slice(b"{\"version\":\"1.1\"");
    let fields_start = out.len();
    let raw: &'r [u8] = &record.raw;
    let result = match seen {
        Some(seen) => {
            seen.clear();
            parser.parse_line(
                format,
                raw,
                received_ms,
                &mut GelfWriter::observed(out, seen),
            )
        }
        None => parser.parse_line(format, raw, received_ms, &mut GelfWriter::new(out)),
    };
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
            match info.timestamp_text {
                Some(text) => out.extend_from_slice(text),
                None => json::write_millis_as_secs(out, info.timestamp_ms.unwrap_or(received_ms)),
            }
            out.extend_from_slice(b",\"level\":");
            let level = parser.level_for(&info);
            out.extend_from_slice(itoa::Buffer::new().format(level).as_bytes());
            write_envelope_end(record, out);
            Encoded {
                outcome: if format == Format::Raw {
                    Outcome::Raw
                } else {
                    Outcome::Parsed(info.format)
                },
                info: Some(info),
                level,
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
            Encoded {
                outcome: Outcome::Failed,
                info: None,
                level: LEVEL_INFO,
            }
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
