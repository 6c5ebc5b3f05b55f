//! Unit tests of the entry view, the GELF scanner and the document builder.

use super::*;

#[test]
fn reads_parsed_gelf_fields() {
    let g = br#"{"version":"1.1","host":"lb1","short_message":"GET /x","timestamp":1700000000.123,"level":3,"_txn_id":"abc-1","_status":503,"_http_method":"GET","_http_path":"/api/pay","_client_ip":"10.0.0.1","_category":"lb","_source":"haproxy"}"#;
    let e = EntryFields::from_gelf(g, 0);
    assert_eq!(e.txn_id.as_deref(), Some("abc-1"));
    assert_eq!(e.timestamp_ms, 1_700_000_000_123);
    assert_eq!((e.level, e.status), (Some(3), Some(503)));
    assert_eq!(e.method.as_deref(), Some("GET"));
    assert_eq!(e.path.as_deref(), Some("/api/pay"));
    assert_eq!(e.client_ip.as_deref(), Some("10.0.0.1"));
    assert_eq!(e.category.as_deref(), Some("lb"));
}

#[test]
fn tolerates_odd_types_and_garbage() {
    let g = br#"{"host":5,"short_message":null,"timestamp":"x","_status":"-","_txn_id":42,"level":[1]}"#;
    let e = EntryFields::from_gelf(g, 77);
    assert_eq!(e.host.as_deref(), Some("5"));
    assert_eq!(e.txn_id.as_deref(), Some("42"));
    assert_eq!((e.status, e.level, e.timestamp_ms), (None, None, 77));
    let e = EntryFields::from_gelf(b"not json \xff", 5);
    assert_eq!((e.timestamp_ms, e.txn_id), (5, None));
}

#[test]
fn fast_scan_reads_what_the_json_reader_reads() {
    let docs: [&[u8]; 12] = [
        br#"{"version":"1.1","host":"lb1","short_message":"GET /x","timestamp":1700000000.123,"level":3,"_txn_id":"abc-1","_status":503,"_http_method":"GET","_http_path":"/api/pay","_client_ip":"10.0.0.1","_category":"lb","_source":"haproxy","_bytes":-12,"_ok":true,"_n":null}"#,
        br#"{"host":5,"short_message":null,"timestamp":"x","_status":"-","_txn_id":42,"level":[1]}"#,
        br#" { "host" : "h\u00e9\"q" , "short_message":"a\\b\nc txn_id=zz","timestamp":1.5e9,"_status":" 404 "} "#,
        br#"{"host":"a","host":"b"}"#,
        br#"{"_x":{"host":"nested"},"host":"top"}"#,
        br#"{"_x":01,"host":"a"}"#,
        br#"{"_x":1e3,"timestamp":2e9,"host":"a"}"#,
        br#"{"host":"a",}"#,
        br#"{"host":"a"} trailing"#,
        br#"{}"#,
        br#"{"host":"a","short_message":"unterminated}"#,
        br#"{"level":true,"timestamp":null,"_status":false,"_http_path":null}"#,
    ];
    for d in docs {
        assert_eq!(
            EntryFields::from_gelf(d, 9),
            EntryFields::from_gelf_general(d, 9),
            "{}",
            String::from_utf8_lossy(d)
        );
    }
    // Real encoder output: access logs and JSON lines with odd values.
    use crate::record::{Format, Origin};
    let lines: [(Format, &str); 4] = [
        (
            Format::Haproxy,
            r#"<134>Nov 23 01:08:50 haproxy[8425]: 10.0.0.1:5000 [23/Nov/2026:01:08:50.123] fe be/web1 0/0/1/2/3 503 10 - - ---- 1/1/1/1/0 0/0 "GET /a?b=%22c HTTP/1.1" request_id=r-1"#,
        ),
        (
            Format::Apache,
            r#"10.0.0.2 - - [23/Nov/2026:01:08:50 +0000] "POST /p\"q HTTP/1.1" 200 5 "-" "UA \x01" request_id=r-2"#,
        ),
        (
            Format::Json,
            r#"{"msg":"h\u00e9 \"x\"","txn_id":7,"status":"500","host":"j1","nested":{"a":[1,2]}}"#,
        ),
        (Format::Auto, "not a log line txn_id=t-3"),
    ];
    for (format, line) in lines {
        let r = Record::new(
            Origin::new("s", "c", format, "h"),
            bytes::Bytes::from(line.as_bytes().to_vec()),
        );
        let mut out = Vec::new();
        crate::parsers::ParserRegistry::new(Vec::new()).encode(&r, &mut out);
        // The encoder's output takes the fast path, except a numeric txn id (read as text by
        // the general reader).
        let text = std::str::from_utf8(&out).unwrap();
        let numeric_id = text.contains(r#""_txn_id":7"#);
        assert_eq!(scan_flat_gelf(text).is_some(), !numeric_id, "{text}");
        let fast = EntryFields::from_gelf(&out, 1);
        assert_eq!(fast, EntryFields::from_gelf_general(&out, 1), "{line}");
        assert!(fast.host.is_some() && fast.message.is_some(), "{line}");
    }
}

/// The fields taken from what the parser saw equal the fields read back from the GELF
/// text, over every fixture log in every format plus odd lines.
#[test]
fn fields_seen_while_encoding_equal_fields_read_back() {
    use crate::record::{Format, Origin};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for sub in ["parse", "index", "file"] {
        let mut files: Vec<_> = std::fs::read_dir(format!("{dir}/{sub}"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap();
            lines.extend(data.split(|&b| b == b'\n').take(400).map(<[u8]>::to_vec));
        }
    }
    lines.extend([
        b"".to_vec(),
        b"\xff\xfe bad utf8 txn_id=t-9".to_vec(),
        br#"{"status":503,"http_method":5,"txn_id":12,"msg":"x"}"#.to_vec(),
        br#"{"status":"404","msg":"","host":"h\u00e9","full_message":""}"#.to_vec(),
        br#"{"msg":7,"client_ip":"1.2.3.4"}"#.to_vec(),
        br#"{"time":"2026-11-23T01:02:03Z","message":"m","request_id":"r1"}"#.to_vec(),
    ]);
    let haproxy_custom = crate::parse::ParserConfig {
        haproxy_log_formats: vec![format!("{} %ID", crate::parse::haproxy::logformat::HTTPLOG)],
        ..crate::parse::ParserConfig::default()
    }
    .compile()
    .unwrap();
    let registry =
        crate::parsers::ParserRegistry::new(vec![("custom".to_string(), haproxy_custom)]);
    let (mut direct, mut fallback) = (0, 0);
    let mut seen = SeenFields::default();
    for format in Format::ALL {
        for source in ["s", "custom"] {
            for line in &lines {
                let record = Record::new(
                    Origin::new(source, "c", format, "h"),
                    bytes::Bytes::from(line.clone()),
                );
                let mut out = Vec::new();
                let encoded = registry.encode_observed(&record, &mut out, Some(&mut seen));
                let text = std::str::from_utf8(&out).unwrap();
                let back = EntryFields::from_gelf_text(text, record.received_at.as_millis());
                match EntryFields::from_encoded(&record, &encoded, &seen) {
                    Some(fields) => {
                        direct += 1;
                        assert_eq!(fields, back, "{format:?} {text}");
                    }
                    None => fallback += 1,
                }
            }
        }
    }
    assert!(
        direct > 10 * fallback.max(1),
        "{direct} direct, {fallback} read back"
    );
}

#[test]
fn finds_ids_in_unparsed_lines() {
    let id = |l: &str| txn_id_in_line(l).map(|c| c.into_owned());
    assert_eq!(
        id(r#"{"level":"info","txnId":"t-9","msg":"x"}"#).as_deref(),
        Some("t-9")
    );
    assert_eq!(
        id(r#"{"request_id":"r1","txn_id":"t\u002d1"}"#).as_deref(),
        Some("t-1")
    );
    assert_eq!(
        id(r#"1.2.3.4 - - "GET / HTTP/1.1" 200 5 request_id=ab12 x"#).as_deref(),
        Some("ab12")
    );
    assert_eq!(id("xtxn_id=no request_id=-"), None);
    assert_eq!(id("{broken json txn_id=zz").as_deref(), Some("zz"));
    assert_eq!(id(r#"{"msg":"no id"}"#), None);
    assert_eq!(id("plain line"), None);
}
