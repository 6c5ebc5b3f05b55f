//! Formats read from configuration files (a haproxy.cfg custom `log-format` with quoting and an
//! environment variable, Apache `LogFormat`/`CustomLog`), and the `quill parse` command run as a
//! real process over fixture files.

use std::path::PathBuf;

use assert_cmd::Command;
use quill::parse::apache::config::ApacheConfig;
use quill::parse::haproxy::config::HaproxyConfig;
use quill::parse::{FieldList, Format, ParserConfig};

use crate::support::{json_lines, output_ok};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parse")
        .join(name)
}

fn text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

#[test]
fn haproxy_custom_log_format_from_config() {
    let cfg = HaproxyConfig::parse_with_env(&text("cli/custom-haproxy.cfg"), &|_| None).unwrap();
    let fe = cfg.proxy("fe_custom").unwrap();
    assert_eq!(
        fe.log_format().as_deref(),
        Some(
            r#"%ci:%cp [%tr] %ft %b/%s %ST %B %U %Ta | %ID %{+Q}[var(txn.tid)] %[ssl_fc_sni] %{+Q}r"#
        )
    );
    let p = ParserConfig {
        format: Format::Haproxy,
        haproxy_config: Some(cfg),
        ..ParserConfig::default()
    }
    .compile()
    .unwrap();
    let data = text("cli/custom-haproxy.log");
    let lines: Vec<&str> = data.lines().collect();

    let mut f = FieldList::default();
    let info = p
        .parse_line(
            Format::Haproxy,
            lines[0].as_bytes(),
            1_795_400_000_000,
            &mut f,
        )
        .unwrap();
    assert_eq!(info.format, "haproxy-custom");
    assert_eq!(f.get_str("client_ip"), Some("10.1.2.3"));
    assert_eq!(f.get_int("client_port"), Some(40000));
    assert_eq!(f.get_str("frontend"), Some("fe_custom"));
    assert_eq!(f.get_int("status"), Some(200));
    assert_eq!(f.get_int("bytes_read"), Some(1234));
    assert_eq!(f.get_int("bytes_uploaded"), Some(98));
    assert_eq!(f.get_int("request_time_ms"), Some(17));
    assert_eq!(f.get_str("unique_id"), Some("0A010203:9C40_6A4F1A2B"));
    assert_eq!(f.get_str("var_txn.tid"), Some("abc-1"));
    assert_eq!(f.get_str("ssl_fc_sni"), Some("example.org"));
    assert_eq!(f.get_str("http_path"), Some("/x?y=1"));
    // %ID is the first transaction id source.
    assert!(matches!(info.txn_id, Some((0, _))));
    assert_eq!(info.timestamp_ms, Some(1_795_396_130_100));

    // The other frontend still logs with `option httplog`.
    let mut f = FieldList::default();
    let info = p
        .parse_line(
            Format::Haproxy,
            lines[1].as_bytes(),
            1_795_400_000_000,
            &mut f,
        )
        .unwrap();
    assert_eq!(info.format, "haproxy-httplog");
    assert_eq!(f.get_int("status"), Some(404));

    // A bad log-format in the config is a configuration error, not a panic.
    let bad = HaproxyConfig::parse("frontend x\n log-format \"%ci %nope\"\n").unwrap();
    let err = ParserConfig {
        haproxy_config: Some(bad),
        ..ParserConfig::default()
    }
    .compile()
    .unwrap_err();
    assert!(err.to_string().contains("unknown variable %nope"), "{err}");
}

#[test]
fn apache_logformat_from_config() {
    let cfg = ApacheConfig::parse(&text("cli/custom-apache.conf")).unwrap();
    let fmt = cfg
        .format_for_file(&fixture("cli/custom-apache.log"))
        .unwrap()
        .to_owned();
    let p = ParserConfig {
        format: Format::Apache,
        apache_log_formats: vec![fmt],
        ..ParserConfig::default()
    }
    .compile()
    .unwrap();
    let line = text("cli/custom-apache.log");
    let mut f = FieldList::default();
    let info = p
        .parse_line(Format::Apache, line.trim_end().as_bytes(), 0, &mut f)
        .unwrap();
    assert_eq!(info.format, "apache-custom");
    assert_eq!(f.get_str("client_ip"), Some("192.0.2.7"));
    assert_eq!(f.get_int("client_port"), Some(51000));
    assert_eq!(f.get_str("user"), Some("alice"));
    assert_eq!(f.get_str("http_method"), Some("PUT"));
    assert_eq!(f.get_str("http_version"), Some("HTTP/2.0"));
    assert_eq!(f.get_int("status"), Some(201));
    assert_eq!(f.get_int("bytes_sent"), Some(512));
    assert_eq!(f.get_int("bytes_received"), Some(2048));
    assert_eq!(f.get_int("request_time_us"), Some(1500));
    assert_eq!(f.get_int("request_time_ms"), Some(1));
    assert_eq!(f.get_str("unique_id"), Some("awOSIrYOLmE-gW6894ucDgAAAEA"));
    assert_eq!(f.get_str("vhost"), Some("shop.example"));
    // X-Request-ID outranks UNIQUE_ID in the default sources.
    assert_eq!(info.txn_id.map(|(p, _)| p), Some(1));
    // +0100 in the line
    assert_eq!(info.timestamp_ms, Some(1_795_392_530_000));
}

fn quill() -> Command {
    Command::cargo_bin("quill").unwrap()
}

#[test]
fn quill_parse_command_with_configs() {
    let out = output_ok(
        crate::support::quill()
            .args([
                "parse",
                "--format",
                "haproxy",
                "--host",
                "h1",
                "--haproxy-config",
            ])
            .arg(fixture("cli/custom-haproxy.cfg"))
            .arg(fixture("cli/custom-haproxy.log")),
    );
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["_txn_id"], "0A010203:9C40_6A4F1A2B");
    assert_eq!(lines[0]["host"], "h1");
    assert_eq!(lines[0]["_log_format"], "haproxy-custom");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 lines, 0 parse errors"));

    let out = output_ok(
        crate::support::quill()
            .args([
                "parse",
                "--format",
                "apache",
                "--tz",
                "+01:00",
                "--apache-config",
            ])
            .arg(fixture("cli/custom-apache.conf"))
            .arg(fixture("cli/custom-apache.log")),
    );
    // The first line is the entry (every line must be JSON).
    let v = &json_lines(&out.stdout)[0];
    assert_eq!(v["_txn_id"], "req-77");
    assert_eq!(v["_status"], 201);
}

#[test]
fn quill_parse_auto_detects_per_line_and_reports_errors() {
    let out = quill()
        .args(["parse", "--txn-id", "request_id", "--apache-root"])
        // A root without a platform Apache config: the nicknames stay ambiguous.
        .arg(fixture("cli"))
        .arg(fixture("cli/mixed.log"))
        .output()
        .unwrap();
    // One line does not parse: exit status 1, the line kept raw.
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out.stdout);
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["_log_format"], "haproxy-httplog");
    assert_eq!(lines[1]["_log_format"], "apache-combined");
    assert_eq!(lines[2]["_log_format"], "json");
    assert_eq!(lines[2]["level"], 3);
    assert_eq!(lines[2]["_txn_id"], "r-1");
    assert_eq!(lines[3]["_parse_error"], "expected a number at column 111");
    assert_eq!(lines[3]["_format_tried"], "auto");
    assert!(String::from_utf8_lossy(&out.stderr).contains("4 lines, 1 parse errors"));

    // stdin, and a bad option value
    let out = quill()
        .args(["parse", "--format", "json"])
        .write_stdin("{\"msg\":\"x\"}\n")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""short_message":"x""#));
    let out = quill()
        .args(["parse", "--tz", "Mars/Base"])
        .write_stdin("")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("time zone"));
}
