//! The HAProxy 3.x config language, from a haproxy.cfg written for it (no Debian package runs
//! 3.x here; the 2.6 mechanisms run live in tests/haproxy_formats_live.rs): `log-profile`
//! sections and the `log … profile NAME` lines that use them, `%{+json}o` and `%{+cbor}o`
//! encoded lines with `%(name)` nodes, a profile's `sd` format, and `defaults … from` chains.
//! Also, offline, the lines Debian's HAProxy 2.6.12 wrote in tests/haproxy_formats_live.rs with
//! the config written for it (tests/fixtures/haproxy_languages/): `+X`, `+E`, `log-format-sd`,
//! `error-log-format`, a log-format inherited through `defaults web from base`.

use quill::parse::haproxy::config::HaproxyConfig;
use quill::parse::{FieldList, Format, Parser, ParserConfig};

const CFG: &str = r#"
log-profile json
    log-tag "haproxy"
    on close format "%{+json}o %(client_ip)ci %(client_port)cp %(request_date)tr %(frontend_name)ft %(status_code)ST %(bytes_read)B %(uid)ID %(request_line)r"

log-profile cbor
    on any format "%{+cbor}o %(client_ip)ci %(status)ST %(uid)ID %(port)cp"

log-profile sd
    on close format "%ci:%cp %ST" sd "[p@1 b=\"%B\" id=\"%ID\"]"

defaults base
    mode http
    log-format "%ci:%cp [%tr] %ft %ST %B base"

defaults mid from base
    timeout client 5s

frontend fe_json from mid
    log 127.0.0.1:514 format raw profile json local0
    unique-id-format %{+X}o%ci%cp

frontend fe_cbor from mid
    log 127.0.0.1:514 format raw profile cbor local0

frontend fe_plain from mid

frontend fe_sd from mid
    log 127.0.0.1:514 format rfc5424 profile sd local0
"#;

fn parser() -> Parser {
    ParserConfig {
        format: Format::Haproxy,
        haproxy_config: Some(HaproxyConfig::parse_with_env(CFG, &|_| None).unwrap()),
        ..ParserConfig::default()
    }
    .compile()
    .unwrap()
}

fn parse(p: &Parser, f: Format, line: &str) -> (FieldList, Option<String>) {
    let mut fl = FieldList::default();
    let info = p
        .parse_line(f, line.as_bytes(), 1_796_299_393_000, &mut fl)
        .unwrap_or_else(|e| panic!("{line}: {e:?}"));
    let txn = info.txn_id.map(|(_, v)| v.text().unwrap().into_owned());
    (fl, txn)
}

#[test]
fn defaults_chain_gives_the_log_format() {
    let cfg = HaproxyConfig::parse_with_env(CFG, &|_| None).unwrap();
    let p = cfg.proxy("fe_plain").unwrap();
    assert_eq!(
        p.log_format().as_deref(),
        Some("%ci:%cp [%tr] %ft %ST %B base")
    );
    assert_eq!(p.inherited().count(), 2);
    let (f, _) = parse(
        &parser(),
        Format::Haproxy,
        "10.0.0.1:4000 [03/Dec/2026:10:00:00.000] fe_plain 200 12 base",
    );
    assert_eq!(f.get_int("bytes_read"), Some(12));
}

#[test]
fn json_profile_lines_are_fields() {
    let (f, txn) = parse(
        &parser(),
        Format::Haproxy,
        r#"{"client_ip": "10.1.2.3", "client_port": 41000, "request_date": "03/Dec/2026:10:00:00.250", "frontend_name": "fe_json", "status_code": 404, "bytes_read": 379, "uid": "0A0102039FB8", "request_line": "GET /a\"b HTTP/1.1", "extra": 7}"#,
    );
    assert_eq!(f.get_str("client_ip"), Some("10.1.2.3"));
    assert_eq!(f.get_int("client_port"), Some(41000));
    assert_eq!(f.get_str("frontend"), Some("fe_json"));
    assert_eq!(f.get_int("status"), Some(404));
    assert_eq!(f.get_int("bytes_read"), Some(379));
    assert_eq!(f.get_str("http_method"), Some("GET"));
    assert_eq!(f.get_str("http_path"), Some("/a\"b"));
    assert_eq!(f.get_int("json_extra"), Some(7));
    assert_eq!(txn.as_deref(), Some("0A0102039FB8"));
}

#[test]
fn cbor_profile_lines_are_fields() {
    // {_ "client_ip": "127.0.0.1", "status": 200, "uid": "ab-1", "port": 12345}, hex-encoded.
    let (f, txn) = parse(
        &parser(),
        Format::Haproxy,
        "BF69636C69656E745F6970693132372E302E302E316673746174757318C8637569646461622D3164706F7274193039FF",
    );
    assert_eq!(f.get_str("client_ip"), Some("127.0.0.1"));
    assert_eq!(f.get_int("status"), Some(200));
    assert_eq!(f.get_int("client_port"), Some(12345));
    assert_eq!(txn.as_deref(), Some("ab-1"));
    // Truncated CBOR does not parse as CBOR (it is kept as an admin message), no panic.
    let mut fl = FieldList::default();
    let info = parser()
        .parse_line(Format::Haproxy, b"BF69636C69656E74", 0, &mut fl)
        .unwrap();
    assert_eq!(info.format, "haproxy-admin");
    assert_eq!(fl.get_str("client_ip"), None);
}

#[test]
fn profile_sd_names_the_structured_data() {
    let (f, txn) = parse(
        &parser(),
        Format::Syslog,
        r#"<134>1 2026-12-03T10:00:00.000Z h haproxy 1 - [p@1 b="512" id="rid-9"] 10.0.0.9:5000 200"#,
    );
    assert_eq!(f.get_int("sd_bytes_read"), Some(512));
    assert_eq!(f.get_str("sd_unique_id"), Some("rid-9"));
    assert_eq!(f.get_int("status"), Some(200));
    assert_eq!(txn.as_deref(), Some("rid-9"));
}

#[test]
fn haproxy_26_lines_from_the_live_config() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/haproxy_languages");
    let cfg = std::fs::read_to_string(dir.join("haproxy-2.6.cfg")).unwrap();
    let p = ParserConfig {
        format: Format::Syslog,
        haproxy_config: Some(HaproxyConfig::parse_with_env(&cfg, &|_| None).unwrap()),
        ..ParserConfig::default()
    }
    .compile()
    .unwrap();
    let log = std::fs::read_to_string(dir.join("haproxy-2.6.log")).unwrap();
    let lines: Vec<_> = log.lines().map(|l| parse(&p, Format::Syslog, l)).collect();
    // fe_hex: `%{+X}o` addresses and ports, then `%{-X}o`, a sample and `+Q,+E` (with `#22`).
    let (a, _) = &lines[0];
    assert_eq!(a.get_str("client_ip"), Some("127.0.0.1"));
    assert_eq!(a.get_int("client_port"), Some(0x84A6));
    assert_eq!(a.get_int("status"), Some(200));
    assert_eq!(a.get_int("bytes_read"), Some(297));
    assert_eq!(a.get_str("var_txn.tag"), Some("tag-1"));
    assert_eq!(a.get_str("http_query"), Some("?a=%5Bb%5D\"c"));
    // fe_sd: the SD parameters named for what they hold; %ID is the txn id.
    let (b, txn) = &lines[1];
    assert_eq!(b.get_str("sd_unique_id"), Some("7F000001BE9A-0001"));
    assert_eq!(txn.as_deref(), Some("7F000001BE9A-0001"));
    assert_eq!(b.get_int("sd_bytes_read"), Some(297));
    assert_eq!(b.get_int("sd_status"), Some(200));
    assert_eq!(b.get_str("sd_http_query"), Some("?x=]\"\\"));
    assert_eq!(b.get_int("client_port"), Some(48794));
    // fe_err: error-log-format.
    let (c, _) = &lines[2];
    assert_eq!(c.get_int("fc_err"), Some(15));
    assert_eq!(c.get_int("feconn"), Some(1));
    assert_eq!(c.get_int("client_port"), Some(55816));
}
