//! Time zones of times that carry no offset: IANA zones with DST in `quill parse --tz`, the
//! host's local zone as the default (`TZ`), per-source and `[parse]` `timezone` keys (a bad one is
//! a config error naming file, line and key), and RFC 3164 years across New Year.

use std::path::PathBuf;

use assert_cmd::Command;
use quill::parse::{FieldList, Format, LogZone, ParserConfig};

use crate::support::{output_ok, quill};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tz")
        .join(name)
}

/// The GELF `timestamp` of each output line, in milliseconds.
fn timestamps(stdout: &[u8]) -> Vec<i64> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["timestamp"].as_f64().unwrap() * 1000.0).round() as i64
        })
        .collect()
}

// 2026-03-08 09:59:59Z, 10:00:00Z; 2026-11-01 07:59:59Z, 10:00:00Z.
const LA_UTC: [i64; 4] = [
    1_772_963_999_000,
    1_772_964_000_000,
    1_793_519_999_000,
    1_793_527_200_000,
];

#[test]
fn quill_parse_tz_names_an_iana_zone_across_both_dst_transitions() {
    let out = output_ok(
        quill()
            .args([
                "parse",
                "--format",
                "haproxy",
                "--tz",
                "America/Los_Angeles",
            ])
            .arg(fixture("haproxy-la.log")),
    );
    // One second before the spring gap is 1 s before the first second after it (PST -> PDT);
    // one second before the fall fold and the first hour after it are 2 h apart (PDT -> PST).
    assert_eq!(timestamps(&out.stdout), LA_UTC);
}

#[test]
fn quill_parse_defaults_to_the_hosts_zone_from_tz() {
    let out = output_ok(
        quill()
            .env("TZ", "America/Los_Angeles")
            .args(["parse", "--format", "haproxy"])
            .arg(fixture("haproxy-la.log")),
    );
    assert_eq!(timestamps(&out.stdout), LA_UTC);
    // UTC and offsets still work.
    for (tz, shift) in [("UTC", 0), ("-08:00", 8 * 3_600_000)] {
        let out = Command::cargo_bin("quill")
            .unwrap()
            .env("TZ", "America/Los_Angeles")
            .args(["parse", "--format", "haproxy", &format!("--tz={tz}")])
            .arg(fixture("haproxy-la.log"))
            .output()
            .unwrap();
        let ts = timestamps(&out.stdout);
        assert_eq!(ts[0], 1_772_935_199_000 + shift, "{tz}");
    }
}

#[test]
fn quill_parse_refuses_an_unknown_zone() {
    let out = Command::cargo_bin("quill")
        .unwrap()
        .args(["parse", "--tz", "America/Atlantis"])
        .arg(fixture("haproxy-la.log"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("America/Atlantis"), "{err}");
}

#[test]
fn a_bad_timezone_key_names_file_line_and_key() {
    let text = "data_dir = \"/tmp/q\"\n\n[sources.web]\ntype = \"file\"\ninclude = [\"/var/log/*.log\"]\ntimezone = \"Europe/Atlantis\"\n";
    let e = quill::config::Config::parse(text, "quill.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("quill.toml"), "{e}");
    assert!(e.contains(":6"), "{e}");
    assert!(e.contains("sources.web.timezone"), "{e}");
    assert!(e.contains("Europe/Atlantis"), "{e}");

    let text = "data_dir = \"/tmp/q\"\n[parse]\ntimezone = \"+99:00\"\n";
    let e = quill::config::Config::parse(text, "q.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("q.toml:3") && e.contains("parse.timezone"),
        "{e}"
    );

    let ok = "data_dir = \"/tmp/q\"\n[parse]\ntimezone = \"America/Los_Angeles\"\n[sources.web]\ntype = \"file\"\ninclude = [\"/x\"]\ntimezone = \"-05:00\"\n";
    quill::config::Config::parse(ok, "q.toml").unwrap();
}

#[test]
fn rfc3164_year_is_the_one_nearest_the_receive_time() {
    let p = ParserConfig {
        format: Format::Syslog,
        timezone: LogZone::parse("America/New_York").unwrap(),
        ..ParserConfig::default()
    }
    .compile()
    .unwrap();
    let parse = |line: &str, received_ms: i64| {
        let mut f = FieldList::default();
        p.parse_line(Format::Syslog, line.as_bytes(), received_ms, &mut f)
            .unwrap()
            .timestamp_ms
    };
    // Read on 2027-01-01 05:30Z (00:30 EST): a December line is from 2026 (23:59:58 EST = 04:59:58Z).
    assert_eq!(
        parse("<13>Dec 31 23:59:58 host app: x", 1_798_781_400_000),
        Some(1_798_779_598_000)
    );
    // The same line read in July 2026 is 2026's December, still in the future of the reader's
    // year but nearer than 2025's.
    assert_eq!(
        parse("<13>Dec 31 23:59:58 host app: x", 1_785_000_000_000),
        Some(1_798_779_598_000)
    );
    // A summer line gets daylight time (EDT, -4).
    assert_eq!(
        parse("<13>Jul  4 12:00:00 host app: x", 1_783_000_000_000),
        Some(1_783_180_800_000)
    );
}

#[test]
fn apache_strftime_times_are_the_timestamp() {
    let p = |fmt: &str, tz: &str| {
        ParserConfig {
            format: Format::Apache,
            apache_log_formats: vec![fmt.to_owned()],
            timezone: LogZone::parse(tz).unwrap(),
            ..ParserConfig::default()
        }
        .compile()
        .unwrap()
    };
    let ts = |parser: &quill::parse::Parser, line: &str| {
        let mut f = FieldList::default();
        parser
            .parse_line(Format::Apache, line.as_bytes(), 0, &mut f)
            .unwrap()
            .timestamp_ms
    };
    // Apache's documented composite: strftime without zone, milliseconds, then the zone.
    let docs = p(
        r#"%h [%{%d/%b/%Y:%H:%M:%S}t.%{msec_frac}t %{%z}t] "%r" %>s %b"#,
        "UTC",
    );
    assert_eq!(
        ts(
            &docs,
            r#"10.0.0.1 [08/Mar/2026:01:59:59.250 -0800] "GET / HTTP/1.1" 200 5"#
        ),
        Some(1_772_963_999_250)
    );
    // A strftime time with spaces and no zone, in an IANA zone, `end:` prefix.
    let la = p(
        r#"%h %{end:%Y-%m-%d %H:%M:%S}t "%r" %>s %b"#,
        "America/Los_Angeles",
    );
    assert_eq!(
        ts(
            &la,
            r#"10.0.0.1 2026-11-01 02:00:00 "GET / HTTP/1.1" 200 5"#
        ),
        Some(1_793_527_200_000)
    );
    // Epoch seconds.
    let s = p(r#"%h %{%s}t "%r" %>s %b"#, "UTC");
    assert_eq!(
        ts(&s, r#"10.0.0.1 1772963999 "GET / HTTP/1.1" 200 5"#),
        Some(1_772_963_999_000)
    );
}
