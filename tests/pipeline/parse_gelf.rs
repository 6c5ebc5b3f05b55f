//! GELF output: insta snapshots of a representative set of lines, and GELF 1.1 validity of the
//! output for every corpus line (mandatory fields, allowed field names, no `_id`, no duplicate
//! keys, typed numbers) and for lines that do not parse.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;
use quill::parse::haproxy::config::HaproxyConfig;
use quill::parse::{Format, Outcome, Parser, ParserConfig, TxnIdSources};
use quill::record::{Origin, Record, Timestamp};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/parse")
            .join(name),
    )
    .unwrap()
}

fn parser(format: Format) -> Parser {
    let cfg = String::from_utf8(fixture("haproxy-2.6.cfg")).unwrap();
    ParserConfig {
        format,
        haproxy_config: Some(HaproxyConfig::parse(&cfg).unwrap()),
        apache_log_formats: vec![
            "combined".into(),
            r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" tid=%{X-Test-Id}i I=%I O=%O b=%b B=%B uid=%{UNIQUE_ID}e xrid=%{X-Request-ID}i xff=%{X-Forwarded-For}i X=%X k=%k D=%D cp=%{remote}p"#.into(),
            "vhost_combined".into(),
            "combinedio".into(),
        ],
        txn_id_sources: TxnIdSources::new(&["unique-id", "X-Request-ID", "X-Test-Id", "tid", "UNIQUE_ID", "txnId"]),
        ..ParserConfig::default()
    }
    .compile()
    .unwrap()
}

fn encode(p: &Parser, line: &[u8]) -> (String, Outcome) {
    let mut r = Record::new(
        Origin::new("test-src", "lb", Format::Auto, "collector1"),
        Bytes::copy_from_slice(line),
    );
    r.received_at = Timestamp(1_795_400_000_000_000_000);
    let mut out = Vec::new();
    let outcome = quill::gelf::encode_parsed(p, &r, &mut out);
    (String::from_utf8(out).unwrap(), outcome)
}

const REPRESENTATIVE: &[&str] = &[
    // HAProxy httplog in RFC 3164 "local" syslog, no captures
    r#"<134>Nov 23 01:08:50 haproxy[8425]: 127.0.0.1:58374 [23/Nov/2026:01:08:50.485] fe_plain be_apache/apache1 0/0/0/0/0 200 297 - - ---- 1/1/0/0/0 0/0 "GET /small.txt HTTP/1.1""#,
    // cookie capture + request header capture (named from haproxy.cfg)
    r#"<134>Nov 23 01:08:50 haproxy[8425]: 127.0.0.1:51322 [23/Nov/2026:01:08:50.500] fe_cookie be_cookie/apache1 0/0/0/0/0 200 297 SERVERID=s1 - --VN 1/1/0/0/0 0/0 {cookie-0050} "GET /small.txt HTTP/1.1""#,
    // request + response captures, IPv6, 5xx
    r#"<134>Nov 23 01:09:08 haproxy[8425]: ::1:41000 [23/Nov/2026:01:09:08.100] fe_err be_down/refused1 0/0/-1/-1/1002 503 217 - - SC-- 1/1/0/0/1 0/0 {errors-0300|hexp-client/1.0} {text/html|} "GET /down/x HTTP/1.1""#,
    // <BADREQ> / <NOSRV>
    r#"<134>Nov 23 01:09:08 haproxy[8425]: 127.0.0.1:41896 [23/Nov/2026:01:09:08.276] fe_err fe_err/<NOSRV> -1/-1/-1/-1/0 400 0 - - PR-- 2/2/0/0/0 0/0 "<BADREQ>""#,
    // #22 escape in the request
    r#"127.0.0.1:60524 [23/Nov/2026:01:09:08.200] fe_plain be_apache/apache1 0/0/0/0/0 404 396 - - ---- 1/1/0/0/0 0/0 "GET /a%20b#22c.html HTTP/1.1""#,
    // tcplog
    r#"<134>Nov 23 01:08:55 haproxy[8425]: 127.0.0.1:35178 [23/Nov/2026:01:08:55.634] fe_tcp be_tcp/apache1 1/0/4 856064 CD 2/2/1/1/0 0/0"#,
    // httpslog
    r#"<134>Nov 23 01:08:55 haproxy[8425]: 127.0.0.1:43826 [23/Nov/2026:01:08:55.526] fe_https~ be_apache/apache1 0/0/0/0/0 200 297 - - ---- 1/1/0/0/0 0/0 "GET /small.txt HTTP/1.1" 0/0000000000000000/0/0/0 -/TLSv1.3/TLS_AES_256_GCM_SHA384"#,
    // clf with %hrl captures and the trailing space
    r#"<134>Nov 23 01:09:03 haproxy[8425]: 127.0.0.1 - - [23/Nov/2026:01:09:03 +0000] "GET /small.txt HTTP/1.1" 200 297 "" "" 34210 256 "fe_clf" "be_apache" "apache1" 0 0 0 0 0 ---- 1 1 0 0 0 0 0 "" "" "clf-0202" "hexp-client/1.0" "#,
    // RFC 5424 with structured data
    r#"<134>1 2026-11-23T01:08:50.486919+00:00 lb1 haproxy 8425 - [exp@32473 tid="uid-0086" fe="fe_uid" cp="58374" B="297" U="108" st="200" ts="----" ID="7F000001:8C04_7F000001:4A3C_6B039222_002A:20E9"] 127.0.0.1:58374 [23/Nov/2026:01:08:50.485] fe_uid be_apache/apache1 0/0/0/0/0 200 297 - - ---- 1/1/0/0/0 0/0 {uid-0086} "POST /echo HTTP/1.1""#,
    // default format, admin lines
    "<134>Nov 23 01:08:49 haproxy[8425]: Connect from 10.0.1.2:33312 to 10.0.3.31:8012 (www/HTTP)",
    r#"<129>Nov 23 01:08:49 haproxy[8425]: Server be_checked/chk1 is DOWN, reason: Layer4 connection problem, info: "Connection refused", check duration: 0ms. 0 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue."#,
    "<132>Nov 23 01:09:22 haproxy[8425]: Proxy be_tcpdown stopped (cumulated conns: FE: 0, BE: 1).",
    // Apache combined with escapes, exp with UNIQUE_ID, vhost_combined
    r#"127.0.0.1 - - [23/Nov/2026:01:09:08 +0000] "GET /a\"b HTTP/1.1" 404 236 "http://ref.example/?q=\"x\"" "-""#,
    r#"127.0.0.1 - - [23/Nov/2026:01:08:50 +0000] "POST /echo HTTP/1.1" 200 5000 "-" "hexp-client/1.0" tid=uid-0086 I=5215 O=5178 b=5000 B=5000 uid=awOSIlTNjAdTPtiktMn70QAAAA8 xrid=7F000001:8C04_7F000001:4A3C_6B039222_002A:20E9 xff=127.0.0.1 X=+ k=0 D=74 cp=52534"#,
    r#"exp.local:80 ::1 - bob [23/Nov/2026:01:08:50 +0000] "GET /\xc3\xa9t\xe9 HTTP/1.1" 404 397 "-" "hexp-client/1.0""#,
    // Apache error log
    r#"[Mon Nov 23 00:59:34.998840 2026] [core:error] [pid 24734:tid 24739] (36)File name too long: [client 127.0.0.1:50556] AH00036: access to /LLLL failed, referer: http://ref.example/?q="x""#,
    // JSON / GELF passthrough
    r#"{"version":"1.1","host":"app7","short_message":"payment \"ok\"","timestamp":1795396130.25,"level":4,"_txnId":"t-77","_amount":12.5,"_id":"dropped?","nested":{"a":[1,2]},"flag":false}"#,
    // syslog of some other program: plain message
    "<30>Nov 23 01:08:50 web1 cron[77]: (root) CMD (run-parts /etc/cron.hourly)",
    // does not parse
    r#"127.0.0.1:58374 [23/Nov/2026:01:08:50.485] fe_plain be_apache/apache1 0/0/x/0/0 200 297 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1""#,
    "just some text",
];

#[test]
fn gelf_snapshots_of_representative_lines() {
    let p = parser(Format::Auto);
    let mut all = String::new();
    for line in REPRESENTATIVE {
        let (json, outcome) = encode(&p, line.as_bytes());
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        all.push_str(&format!(
            "# {outcome}\n{}\n\n",
            serde_json::to_string_pretty(&v).unwrap()
        ));
    }
    insta::assert_snapshot!(all);
}

/// The keys of a JSON object in order (duplicates kept).
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Keys, A::Error> {
                let mut k = Vec::new();
                while let Some((key, _)) = m.next_entry::<Cow<'de, str>, serde::de::IgnoredAny>()? {
                    k.push(key.into_owned());
                }
                Ok(Keys(k))
            }
        }
        d.deserialize_map(V)
    }
}

/// Checks one GELF object against GELF 1.1; returns what is wrong.
fn gelf_problems(json: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let keys: Keys = match serde_json::from_str(json) {
        Ok(k) => k,
        Err(e) => return vec![format!("invalid JSON: {e}")],
    };
    let mut sorted = keys.0.clone();
    sorted.sort();
    for w in sorted.windows(2) {
        if w[0] == w[1] {
            bad.push(format!("duplicate key {}", w[0]));
        }
    }
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    if v["version"] != "1.1" {
        bad.push("version".into());
    }
    if v["host"].as_str().is_none_or(str::is_empty) {
        bad.push("host".into());
    }
    if v["short_message"].as_str().is_none_or(str::is_empty) {
        bad.push("short_message".into());
    }
    if !v["timestamp"].is_number() {
        bad.push("timestamp".into());
    }
    if v["level"].as_u64().is_none_or(|l| l > 7) {
        bad.push("level".into());
    }
    for k in &keys.0 {
        match k.as_str() {
            "version" | "host" | "short_message" | "full_message" | "timestamp" | "level" => {}
            _ if k == "_id" => bad.push("_id".into()),
            _ if k.starts_with('_')
                && k.len() > 1
                && k[1..]
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c)) => {}
            _ => bad.push(format!("bad field name {k}")),
        }
    }
    for n in [
        "_status",
        "_bytes_read",
        "_client_port",
        "_time_active_ms",
        "_bytes_sent",
        "_response_body_bytes",
        "_response_body_or_sent_bytes",
        "_actconn",
        "_retries",
    ] {
        if let Some(x) = v.get(n) {
            if !x.is_i64() {
                bad.push(format!("{n} is not a number"));
            }
        }
    }
    bad
}

#[test]
fn every_corpus_line_becomes_valid_gelf() {
    let p = parser(Format::Auto);
    for file in [
        "haproxy-httplog.log",
        "haproxy-tcplog.log",
        "haproxy-clf.log",
        "haproxy-httpslog.log",
        "haproxy-rfc5424.log",
        "haproxy-admin.log",
        "apache-combined.log",
        "apache-combinedio.log",
        "apache-vhost_combined.log",
        "apache-exp.log",
        "apache-error.log",
    ] {
        let data = fixture(file);
        for (i, line) in data
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let (json, outcome) = encode(&p, line);
            assert!(!outcome.is_error(), "{file}:{}: {json}", i + 1);
            let problems = gelf_problems(&json);
            assert!(
                problems.is_empty(),
                "{file}:{}: {problems:?}\n{json}",
                i + 1
            );
        }
    }
}

#[test]
fn unparseable_lines_are_kept_raw_with_the_error() {
    let p = parser(Format::Haproxy);
    let line = br#"127.0.0.1:58374 [23/Nov/2026:01:08:50.485] fe_plain be_apache/apache1 0/0/x/0/0 200 297 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1""#;
    let (json, outcome) = encode(&p, line);
    assert_eq!(outcome, Outcome::Failed);
    assert!(gelf_problems(&json).is_empty(), "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["short_message"].as_str().unwrap().as_bytes(), &line[..]);
    assert_eq!(v["_format_tried"], "haproxy");
    assert_eq!(v["_parse_error_column"], 75);
    assert_eq!(v["_parse_error"], "expected a number at column 75");
    assert_eq!(v["timestamp"].as_f64(), Some(1_795_400_000.0));
    assert!(v.get("_client_ip").is_none(), "no partial fields");

    // The source's explicit format wins over detection: a JSON line given to the Apache parser.
    let p = parser(Format::Apache);
    let (json, outcome) = encode(&p, br#"{"a":1}"#);
    assert_eq!(outcome, Outcome::Failed);
    assert!(json.contains(r#""_format_tried":"apache""#));
    // An empty line.
    let (json, outcome) = encode(&parser(Format::Auto), b"");
    assert_eq!(outcome, Outcome::Failed);
    assert!(gelf_problems(&json).is_empty(), "{json}");
}
