//! GELF 1.1 messages (`format = "gelf"`): validated, then kept field for field.
//!
//! Unlike free-form JSON ([`super::json`]), a GELF message is not normalised: additional field
//! names keep their case, numbers keep their type (integers stay integers, floats stay floats
//! and are written in their shortest round-trip form), and the `timestamp` is written back as
//! the number that was sent. What Graylog would refuse is a [`ParseError`] (the caller keeps the
//! raw message with `_parse_error`): not a JSON object, a `version` other than `1.1` (or the
//! legacy `1.0` that graypy still sends), no `host` or an empty one, no `short_message` or an
//! empty one, a `timestamp` that is not a number, a `level` outside 0..7, the forbidden `_id`,
//! or a field name outside `[\w.\-]`.
//!
//! Like Graylog, a field is named by its key without the leading `_`: the legacy top-level
//! `facility`, `file` and `line` (graypy) come out as `_facility`, `_file`, `_line`. Fields that
//! Quill's envelope writes itself (`_source`, `_category`, `_txn_id`, ...) get a trailing `_`;
//! nulls are dropped and booleans become the strings `true`/`false` (GELF values are strings or
//! numbers). Pure: no I/O.

use super::json::{entries, value};
use super::{Context, FieldSink, LineInfo, ParseError, Value};

/// Field names Quill's GELF envelope writes; a message's own field of that name gets a `_` suffix.
const ENVELOPE: [&str; 9] = [
    "txn_id",
    "category",
    "source",
    "log_format",
    "truncated",
    "record_truncated",
    "parse_error",
    "parse_error_column",
    "format_tried",
];

/// Checks that `line` is a valid GELF message (see the module doc), without keeping any field.
pub fn validate(line: &[u8]) -> Result<(), ParseError> {
    let txn = super::TxnIdSources::default();
    let cx = Context {
        zone: &super::LogZone::UTC,
        received_ms: 0,
        txn: &txn,
        sd: None,
    };
    parse(line, &cx, &mut super::Discard, &mut LineInfo::default())
}

/// Parses one GELF message, reporting its additional fields to `sink` and its standard fields
/// to `info`.
pub fn parse<'a, S: FieldSink>(
    line: &'a [u8],
    cx: &Context<'_>,
    sink: &mut S,
    info: &mut LineInfo<'a>,
) -> Result<(), ParseError> {
    info.format = "gelf";
    let members = entries(line)?.0;
    // Validate before reporting any field: a sink (and its observers) sees a message whole or
    // not at all.
    let mut scratch = LineInfo::default();
    apply(line, &members, cx, &mut super::Discard, &mut scratch)?;
    apply(line, &members, cx, sink, info)
}

type Members<'a> = [(std::borrow::Cow<'a, str>, &'a serde_json::value::RawValue)];

fn apply<'a, S: FieldSink>(
    line: &'a [u8],
    members: &Members<'a>,
    cx: &Context<'_>,
    sink: &mut S,
    info: &mut LineInfo<'a>,
) -> Result<(), ParseError> {
    let mut version = false;
    for &(ref key, raw) in members {
        let at = raw.get().as_ptr() as usize - line.as_ptr() as usize;
        let err = |what| Err(ParseError::at(what, at));
        let Some(v) = value(raw) else { continue };
        match key.as_ref() {
            "version" => match v {
                Value::Str(b"1.1" | b"1.0") => version = true,
                _ => return err("GELF version is not 1.1"),
            },
            "host" => match v {
                Value::Str(h) if !h.is_empty() => info.host = Some(h),
                Value::Escaped(..) => return err("GELF host with escape sequences"),
                _ => return err("GELF host is not a non-empty string"),
            },
            "short_message" => match v {
                Value::Str(s) | Value::Escaped(s, _) if !s.is_empty() => info.message = Some(v),
                _ => return err("GELF short_message is not a non-empty string"),
            },
            "full_message" => match v {
                Value::Str(_) | Value::Escaped(..) => info.full_message = Some(v),
                _ => return err("GELF full_message is not a string"),
            },
            "timestamp" => {
                let ms = match v {
                    Value::Int(i) => i.saturating_mul(1000),
                    Value::Float(f) if f.is_finite() => (f * 1000.0).round() as i64,
                    _ => return err("GELF timestamp is not a number"),
                };
                info.timestamp_ms = Some(ms);
                info.timestamp_text = Some(raw.get().as_bytes());
                info.own_time = true;
            }
            "level" => match v {
                Value::Int(l @ 0..=7) => info.severity = Some(l as u8),
                _ => return err("GELF level is not a number from 0 to 7"),
            },
            "_id" => return err("GELF forbids the field _id"),
            k => {
                let name = k.strip_prefix('_').unwrap_or(k);
                if !crate::field_name::is_valid(name.as_bytes()) {
                    return err("invalid GELF field name");
                }
                if ENVELOPE.contains(&name) {
                    sink.dynamic_field("", name.as_bytes(), v);
                } else {
                    sink.field(name, v);
                }
                info.offer_txn_id(cx.txn, name.as_bytes(), v);
            }
        }
    }
    if !version {
        return Err(ParseError::at("GELF without version", 0));
    }
    if info.host.is_none() {
        return Err(ParseError::at("GELF without host", 0));
    }
    if info.message.is_none() {
        return Err(ParseError::at("GELF without short_message", 0));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{FieldList, TxnIdSources};

    fn run(line: &[u8]) -> Result<(FieldList, LineInfo<'_>), ParseError> {
        let txn = TxnIdSources::default();
        let cx = Context {
            zone: &crate::parse::LogZone::UTC,
            received_ms: 0,
            txn: &txn,
            sd: None,
        };
        let mut f = FieldList::default();
        let mut info = LineInfo::default();
        parse(line, &cx, &mut f, &mut info).map(|()| (f, info))
    }

    #[test]
    fn keeps_fields_as_sent() {
        let line = br#"{"version":"1.1","host":"h","short_message":"m","timestamp":1700000000.123456,"level":3,"_UserId":42,"_ratio":0.5,"_a.b-c":"x","facility":"app","_source":"s"}"#;
        let (f, info) = run(line).unwrap();
        assert_eq!(info.host, Some(&b"h"[..]));
        assert_eq!(info.severity, Some(3));
        assert_eq!(info.timestamp_text, Some(&b"1700000000.123456"[..]));
        assert_eq!(info.timestamp_ms, Some(1_700_000_000_123));
        assert_eq!(f.get_int("UserId"), Some(42));
        assert_eq!(f.get_str("a.b-c"), Some("x"));
        assert_eq!(f.get_str("facility"), Some("app"));
        assert!(matches!(f.get("ratio"), Some(crate::parse::FieldValue::Float(x)) if *x == 0.5));
    }

    #[test]
    fn encodes_exactly() {
        use crate::record::{Format, Origin, Record};
        let parser = crate::parse::ParserConfig {
            format: Format::Gelf,
            ..Default::default()
        }
        .compile()
        .unwrap();
        let line = r#"{"version":"1.1","host":"h","short_message":"m \"q\"","full_message":"f","timestamp":1700000000.123456,"level":3,"_UserId":42,"_ratio":0.1,"_big":1e300,"_a.b-c":"x","facility":"app","_source":"s"}"#;
        let r = Record::new(Origin::new("g", "g", Format::Gelf, "origin"), line.into());
        let mut out = Vec::new();
        crate::gelf::encode_parsed(&parser, &r, &mut out);
        let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let sent: serde_json::Value = serde_json::from_str(line).unwrap();
        for (k, v) in sent.as_object().unwrap() {
            let key = match k.as_str() {
                "version" | "_source" => continue,
                "facility" => "_facility",
                k => k,
            };
            assert_eq!(&got[key], v, "{key} in {got}");
        }
        assert_eq!(got["_source_"], "s");
        assert_eq!(got["_source"], "g");
        assert_eq!(got["_log_format"], "gelf");
        let bad = Record::new(
            Origin::new("g", "g", Format::Gelf, "o"),
            "{\"_id\":1}".into(),
        );
        out.clear();
        assert!(crate::gelf::encode_parsed(&parser, &bad, &mut out).is_error());
        let got: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(got["short_message"], "{\"_id\":1}");
        assert!(got["_parse_error"].as_str().unwrap().contains("_id"));
    }

    #[test]
    fn refuses_what_graylog_refuses() {
        let cases: [(&[u8], &str); 10] = [
            (b"[1]", "invalid JSON"),
            (b"{\"version\":\"1.1\",", "truncated JSON"),
            (
                br#"{"version":"2","host":"h","short_message":"m"}"#,
                "version",
            ),
            (br#"{"host":"h","short_message":"m"}"#, "without version"),
            (br#"{"version":"1.1","short_message":"m"}"#, "without host"),
            (br#"{"version":"1.1","host":"h"}"#, "without short_message"),
            (
                br#"{"version":"1.1","host":"h","short_message":""}"#,
                "short_message",
            ),
            (
                br#"{"version":"1.1","host":"h","short_message":"m","_id":1}"#,
                "_id",
            ),
            (
                br#"{"version":"1.1","host":"h","short_message":"m","_a b":1}"#,
                "field name",
            ),
            (
                br#"{"version":"1.1","host":"h","short_message":"m","level":9}"#,
                "level",
            ),
        ];
        for (line, what) in cases {
            let e = run(line)
                .err()
                .unwrap_or_else(|| panic!("accepted {line:?}"));
            assert!(e.what.contains(what), "{line:?}: {}", e.what);
            assert!(e.column <= line.len() + 1);
        }
        assert!(validate(br#"{"version":"1.0","host":"h","short_message":"m"}"#).is_ok());
    }
}
