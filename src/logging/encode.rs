//! Entries to GELF 1.1 JSON lines, written byte by byte into a reused buffer (no I/O).
//!
//! Standard fields: `version`, `host`, `short_message`, `timestamp` (seconds with milliseconds),
//! `level` (syslog severity) and `_facility`. Every entry field becomes an additional field:
//! `_` + the key with characters outside `[A-Za-z0-9_.-]` replaced by `_` (a key `id` becomes
//! `_id_`, as GELF reserves `_id`). Numbers stay numbers, strings stay strings; booleans become
//! `"true"`/`"false"`, nulls are left out, objects are flattened with dotted keys
//! (`_req.path`) down to [`MAX_DEPTH`] levels, and arrays (and deeper objects) are written as
//! JSON text, since GELF values are strings or numbers only. A key that repeats after this
//! mapping keeps its first value, so every line is an object with unique keys.

use std::io::Write as _;
use std::time::UNIX_EPOCH;

use serde_json::Value;

use super::entry::Entry;
use crate::field_name::Case;
use crate::gelf::json::{write_millis_as_secs, write_str};

/// How many levels of nested objects are flattened into dotted keys.
pub const MAX_DEPTH: usize = 4;

/// Reusable GELF encoder for one host.
pub(crate) struct GelfEncoder {
    /// `,"host":"..."` already escaped.
    host_json: Vec<u8>,
    /// The current (dotted, sanitized) key.
    key: Vec<u8>,
    /// All keys written in the current line, concatenated, and their end offsets.
    seen: Vec<u8>,
    seen_ends: Vec<usize>,
    scratch: Vec<u8>,
}

impl GelfEncoder {
    pub(crate) fn new(host: &str) -> GelfEncoder {
        let mut host_json = Vec::with_capacity(host.len() + 10);
        host_json.extend_from_slice(b",\"host\":");
        write_str(&mut host_json, host.as_bytes());
        GelfEncoder {
            host_json,
            key: Vec::with_capacity(64),
            seen: Vec::with_capacity(256),
            seen_ends: Vec::with_capacity(16),
            scratch: Vec::new(),
        }
    }

    /// Appends `entry` as one GELF JSON object (no newline) to `out`.
    pub(crate) fn encode(&mut self, entry: &Entry, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"version\":\"1.1\"");
        out.extend_from_slice(&self.host_json);
        out.extend_from_slice(b",\"short_message\":");
        if entry.message.trim().is_empty() {
            // GELF requires a non-empty short_message.
            out.extend_from_slice(b"\"-\"");
        } else {
            write_str(out, entry.message.as_bytes());
        }
        out.extend_from_slice(b",\"timestamp\":");
        let millis = match entry.time.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        };
        write_millis_as_secs(out, millis);
        out.extend_from_slice(b",\"level\":");
        out.push(b'0' + entry.level.as_u8());
        out.extend_from_slice(b",\"_facility\":");
        write_str(out, entry.facility().as_bytes());

        self.seen.clear();
        self.seen_ends.clear();
        self.seen.extend_from_slice(b"facility");
        self.seen_ends.push(self.seen.len());
        for field in &entry.fields {
            self.key.clear();
            push_sanitized(&mut self.key, field.key.as_bytes());
            self.write_field(&field.value, 0, out);
        }
        out.push(b'}');
    }

    fn write_field(&mut self, value: &Value, depth: usize, out: &mut Vec<u8>) {
        match value {
            Value::Null => {}
            Value::Object(map) if depth < MAX_DEPTH => {
                let base = self.key.len();
                for (k, v) in map {
                    self.key.truncate(base);
                    self.key.push(b'.');
                    push_sanitized(&mut self.key, k.as_bytes());
                    self.write_field(v, depth + 1, out);
                }
                self.key.truncate(base);
            }
            _ => {
                if self.key == b"id" {
                    self.key.push(b'_');
                }
                if !self.claim_key() {
                    return;
                }
                out.extend_from_slice(b",\"_");
                out.extend_from_slice(&self.key);
                out.extend_from_slice(b"\":");
                match value {
                    Value::String(s) => write_str(out, s.as_bytes()),
                    Value::Number(n) => write_number(out, n),
                    Value::Bool(true) => out.extend_from_slice(b"\"true\""),
                    Value::Bool(false) => out.extend_from_slice(b"\"false\""),
                    Value::Null => out.extend_from_slice(b"\"\""),
                    Value::Array(_) | Value::Object(_) => {
                        self.scratch.clear();
                        let _ = serde_json::to_writer(&mut self.scratch, value);
                        write_str(out, &self.scratch);
                    }
                }
            }
        }
    }

    /// Records the current key; false if it was already written in this line.
    fn claim_key(&mut self) -> bool {
        let mut start = 0;
        for &end in &self.seen_ends {
            if self.seen[start..end] == self.key[..] {
                return false;
            }
            start = end;
        }
        self.seen.extend_from_slice(&self.key);
        self.seen_ends.push(self.seen.len());
        true
    }
}

/// Appends a JSON number: integers with `itoa`, floats with `ryu` (finite by construction:
/// `serde_json` turns NaN and infinities into null).
fn write_number(out: &mut Vec<u8>, n: &serde_json::Number) {
    if let Some(u) = n.as_u64() {
        out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes());
    } else if let Some(i) = n.as_i64() {
        out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
    } else if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
        out.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
    } else {
        let _ = write!(out, "{n}");
    }
}

/// Appends `key` with every byte outside `[A-Za-z0-9_.-]` replaced by `_` (an empty key
/// becomes `_`).
fn push_sanitized(out: &mut Vec<u8>, key: &[u8]) {
    if key.is_empty() {
        out.push(b'_');
        return;
    }
    crate::field_name::push(out, key, Case::Keep);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::{Entry, Level};
    use serde_json::json;

    fn encode(entry: &Entry) -> serde_json::Map<String, Value> {
        let mut out = Vec::new();
        GelfEncoder::new("h\"1").encode(entry, &mut out);
        match serde_json::from_slice(&out).unwrap() {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn fields_are_mapped_for_gelf() {
        let mut e = Entry::new("a.b", Level::Warning, "");
        e.set_field("id", json!(5));
        e.set_field("sp ace/é", json!("x"));
        e.set_field("ok", json!(true));
        e.set_field("nothing", Value::Null);
        e.set_field("list", json!([1, "a"]));
        e.set_field(
            "req",
            json!({"path": "/p", "size": 12, "deep": {"a": {"b": {"c": {"d": 1}}}}}),
        );
        e.set_field("facility", json!("spoof"));
        e.set_field("", json!(0.25));
        let m = encode(&e);
        assert_eq!(m["version"], "1.1");
        assert_eq!(m["host"], "h\"1");
        assert_eq!(m["short_message"], "-");
        assert_eq!(m["level"], 4);
        assert_eq!(m["_facility"], "a.b");
        assert_eq!(m["_id_"], 5);
        assert!(!m.contains_key("_id"));
        assert_eq!(m["_sp_ace___"], "x");
        assert_eq!(m["_ok"], "true");
        assert!(!m.contains_key("_nothing"));
        assert_eq!(m["_list"], "[1,\"a\"]");
        assert_eq!(m["_req.path"], "/p");
        assert_eq!(m["_req.size"], 12);
        assert_eq!(m["_req.deep.a.b.c"], "{\"d\":1}");
        assert_eq!(m["__"], 0.25);
    }
}
