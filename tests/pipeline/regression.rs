//! Regression tests: one test per bug found, named after what went wrong, with where it was
//! found. A proptest failure seed (`*.proptest-regressions`) keeps replaying in its property
//! test; the case it shrank to is also written out here, so it stays checked if the property's
//! generators change and the seed stops meaning the same input.

use quill::parse::{FieldList, FieldValue, Format, ParserConfig};

/// Parses `line` with the HAProxy custom `log_format` and returns the fields.
fn haproxy_custom(log_format: &str, line: &str) -> FieldList {
    let parser = ParserConfig {
        format: Format::Haproxy,
        haproxy_log_formats: vec![log_format.to_string()],
        ..ParserConfig::default()
    }
    .compile()
    .expect("log-format compiles");
    let mut fields = FieldList::default();
    parser
        .parse_line(Format::Haproxy, line.as_bytes(), 0, &mut fields)
        .unwrap_or_else(|e| panic!("{line:?}: {e}"));
    fields
}

/// tests/pipeline/parse_format_props.proptest-regressions (`haproxy_log_formats_round_trip`):
/// `%s %rc %b` over `a 0 a` — a name, a retry count and a name, where the server and backend
/// values are equal and short — must give each value back under its own field.
#[test]
fn haproxy_format_server_retries_backend_short_equal_names() {
    let f = haproxy_custom("%s %rc %b", "a 0 a");
    assert_eq!(f.get("server"), Some(&FieldValue::Str("a".into())));
    assert_eq!(f.get("retries"), Some(&FieldValue::Int(0)));
    assert_eq!(f.get("backend"), Some(&FieldValue::Str("a".into())));
}

/// tests/pipeline/logging_agent.rs (the library's `AgentSink`: RFC 5424 with GELF JSON as MSG):
/// the record's short_message was the whole JSON, the JSON's own `short_message` a field
/// `_short_message`. A syslog MSG holding JSON takes the JSON's message, as README documents.
#[test]
fn syslog_msg_holding_json_takes_the_json_short_message() {
    let parser = ParserConfig::default().compile().expect("compiles");
    let line = br#"<134>1 2026-12-03T10:00:00.000Z h app 1 m - {"version":"1.1","host":"h","short_message":"charged","_seq":1}"#;
    let mut fields = FieldList::default();
    let info = parser
        .parse_line(Format::Syslog, line, 0, &mut fields)
        .expect("parses");
    assert_eq!(info.message, Some(quill::parse::Value::Str(b"charged")));
    assert!(fields.get("short_message").is_none());
    assert_eq!(fields.get("seq"), Some(&FieldValue::Int(1)));
    // Without a message in the JSON, the MSG stays the message.
    let line = br#"<134>1 2026-12-03T10:00:00.000Z h app 1 m - {"seq":2}"#;
    let info = parser
        .parse_line(Format::Syslog, line, 0, &mut FieldList::default())
        .expect("parses");
    assert_eq!(
        info.message,
        Some(quill::parse::Value::Str(br#"{"seq":2}"#))
    );
}
