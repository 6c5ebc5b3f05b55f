//! JSON lines (GELF or free-form application logs), validated and normalised into GELF fields.
//!
//! The object is validated by serde_json with values kept as borrowed raw JSON text, so string
//! values are written without a decode/encode round trip. Normalisation: `host`/`hostname` become
//! the GELF host; `short_message`/`message`/`msg` the message; `full_message` stays;
//! `timestamp`/`time`/`@timestamp`/`ts` (seconds, milliseconds or RFC 3339) the timestamp; `level`
//! (syslog number or name) the level; `version` is dropped (output is 1.1); every other key
//! becomes an additional field (a leading `_` is not doubled, `id` becomes `id_`), booleans
//! become the strings `true`/`false` (Graylog drops booleans), nulls are dropped, and nested
//! objects and arrays are kept as their JSON text.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::text::{Escaping, parse_rfc3339};
use super::{Context, FieldSink, LineInfo, ParseError, Value};

/// A JSON object's members in order, values as their raw JSON text.
pub(super) struct Entries<'a>(pub(super) Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some((k, val)) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
                    v.push((k, val));
                }
                Ok(Entries(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// Does the line look like a JSON object?
pub fn looks_like_json(line: &[u8]) -> bool {
    line.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{')
}

pub(super) fn level_from_name(s: &[u8]) -> Option<u8> {
    let mut buf = [0u8; 9];
    if s.len() > buf.len() {
        return None;
    }
    for (d, c) in buf.iter_mut().zip(s) {
        *d = c.to_ascii_lowercase();
    }
    Some(match &buf[..s.len()] {
        b"emerg" | b"emergency" | b"panic" => 0,
        b"alert" => 1,
        b"crit" | b"critical" | b"fatal" => 2,
        b"err" | b"error" => 3,
        b"warn" | b"warning" => 4,
        b"notice" => 5,
        b"info" | b"information" => 6,
        b"debug" | b"trace" => 7,
        _ => return None,
    })
}

/// The members of the JSON object `line`, or where it is not one.
pub(super) fn entries(line: &[u8]) -> Result<Entries<'_>, ParseError> {
    serde_json::from_slice(line).map_err(|e| {
        let what = if e.is_eof() {
            "truncated JSON"
        } else {
            "invalid JSON"
        };
        ParseError {
            what,
            column: e.column().max(1),
        }
    })
}

/// A member's value as a field value: strings borrowed (escapes decoded when written), numbers
/// as integers or floats, booleans as the strings `true`/`false`, objects and arrays as their
/// JSON text; `None` for null.
pub(super) fn value(raw: &RawValue) -> Option<Value<'_>> {
    let text = raw.get().as_bytes();
    Some(match text.first() {
        Some(b'"') => {
            let inner = &text[1..text.len() - 1];
            if memchr::memchr(b'\\', inner).is_some() {
                Value::Escaped(inner, Escaping::Json)
            } else {
                Value::Str(inner)
            }
        }
        Some(b't') => Value::Str(b"true"),
        Some(b'f') => Value::Str(b"false"),
        Some(b'n') => return None,
        Some(b'-' | b'0'..=b'9') => match raw.get().parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::Float(raw.get().parse::<f64>().unwrap_or(0.0)),
        },
        _ => Value::Str(text),
    })
}

pub fn parse<'a, S: FieldSink>(
    line: &'a [u8],
    cx: &Context<'_>,
    sink: &mut S,
    info: &mut LineInfo<'a>,
) -> Result<(), ParseError> {
    info.format = "json";
    for (key, raw) in entries(line)?.0 {
        let Some(value) = value(raw) else { continue };
        let k = key.as_ref();
        match k {
            "version" => {}
            "host" | "hostname" if matches!(value, Value::Str(_)) => {
                if let Value::Str(h) = value {
                    info.host = Some(h);
                }
            }
            "short_message" | "message" | "msg" if info.message.is_none() => {
                info.message = Some(value)
            }
            "full_message" => info.full_message = Some(value),
            "timestamp" | "time" | "@timestamp" | "ts" if !info.own_time => {
                let t = match value {
                    Value::Int(i) if i > 100_000_000_000 => Some(i),
                    Value::Int(i) => Some(i.saturating_mul(1000)),
                    Value::Float(f) if f > 1e11 => Some(f as i64),
                    Value::Float(f) => Some((f * 1000.0).round() as i64),
                    Value::Str(s) => parse_rfc3339(s),
                    _ => None,
                };
                match t {
                    Some(t) => {
                        info.timestamp_ms = Some(t);
                        info.own_time = true;
                    }
                    None => sink.dynamic_field("", k.as_bytes(), value),
                }
            }
            "level" => match value {
                Value::Int(l @ 0..=7) => info.severity = Some(l as u8),
                Value::Str(s) if level_from_name(s).is_some() => {
                    info.severity = level_from_name(s);
                    sink.field("level_name", value);
                }
                _ => sink.field("level_name", value),
            },
            _ => {
                let name = k.strip_prefix('_').unwrap_or(k);
                sink.dynamic_field("", name.as_bytes(), value);
                info.offer_txn_id(cx.txn, name.as_bytes(), value);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{FieldList, TxnIdSources};

    #[test]
    fn normalises() {
        let txn = TxnIdSources::default();
        let cx = Context {
            zone: &crate::parse::LogZone::UTC,
            received_ms: 0,
            txn: &txn,
            sd: None,
        };
        let mut f = FieldList::default();
        let mut info = LineInfo::default();
        let line = br#"{"version":"1.1","host":"h","short_message":"a \"b\"","timestamp":1700000000.5,"level":3,"_user":"u","ok":true,"n":null,"txnId":"t1","obj":{"a":1},"_id":"x"}"#;
        parse(line, &cx, &mut f, &mut info).unwrap();
        assert_eq!(info.host, Some(&b"h"[..]));
        assert_eq!(info.timestamp_ms, Some(1_700_000_000_500));
        assert_eq!(info.severity, Some(3));
        assert_eq!(f.get_str("user"), Some("u"));
        assert_eq!(f.get_str("ok"), Some("true"));
        assert_eq!(f.get_str("obj"), Some(r#"{"a":1}"#));
        assert_eq!(f.get_str("id_"), Some("x"));
        assert!(f.get("n").is_none());
        assert_eq!(info.txn_id.map(|(_, v)| v), Some(Value::Str(b"t1")));
        let err = parse(b"{\"a\":", &cx, &mut f, &mut info).unwrap_err();
        assert_eq!(err.what, "truncated JSON");
        assert!(parse(b"[1]", &cx, &mut f, &mut info).is_err());
    }
}
