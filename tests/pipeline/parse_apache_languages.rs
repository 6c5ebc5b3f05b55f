//! The Apache config language from a config written for it, read as the platform's config
//! below a test root (tests/fixtures/apache_languages/etc/apache2/apache2.conf, found without
//! any `apache_config`): `IncludeOptional` globs relative to ServerRoot (one matching nothing),
//! a LogFormat with `%{c}a`, `%{remote}p`, `%L`, `%{SSL_PROTOCOL}x`, and an `ErrorLogFormat`
//! whose optional fields Apache leaves out. The lines are Debian's Apache 2.4.71 output for it
//! (tests/apache_formats_live.rs produces them live), the second with `TLSv1.3` written in.

use std::path::Path;

use quill::config::ParseOptions;
use quill::parse::{FieldList, Format};

#[test]
fn platform_config_below_a_root_names_every_field() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/apache_languages");
    let opts = ParseOptions {
        format: Format::Apache,
        haproxy_config: None,
        haproxy_format: &[],
        apache_format: &[],
        apache_config: None,
        timezone: Some("UTC"),
        txn_id_fields: &[],
    };
    let p = opts.to_parser_config_in(&root).unwrap().compile().unwrap();
    let log = std::fs::read_to_string(root.join("lines.log")).unwrap();
    let parsed: Vec<(FieldList, _)> = log
        .lines()
        .map(|l| {
            let mut f = FieldList::default();
            let info = p
                .parse_line(Format::Apache, l.as_bytes(), 0, &mut f)
                .unwrap_or_else(|e| panic!("{l}: {e:?}"));
            (f, (info.format, info.timestamp_ms, info.severity))
        })
        .collect();
    let (a, _) = &parsed[0];
    assert_eq!(a.get_str("peer_ip"), Some("127.0.0.1"));
    assert_eq!(a.get_int("client_port"), Some(34316));
    assert_eq!(a.get_str("log_id"), Some("iwrfedS6FJE"));
    assert_eq!(a.get_int("bytes_sent"), Some(412));
    assert_eq!(a.get_str("ssl_protocol"), None);
    let (b, _) = &parsed[1];
    assert_eq!(b.get_str("ssl_protocol"), Some("TLSv1.3"));
    assert_eq!(b.get_str("request_header_x-request-id"), Some("r-1"));
    let (e, (fmt, t, sev)) = &parsed[2];
    assert_eq!(*fmt, "apache-error");
    assert_eq!(*t, Some(1_796_311_986_670));
    assert_eq!(*sev, Some(6));
    assert_eq!(e.get_str("log_id"), Some("iwrfedS6FJE"));
    assert_eq!(e.get_int("client_port"), Some(34316));
    assert_eq!(e.get_str("module"), Some("core"));
    let (s, (fmt, _, sev)) = &parsed[3];
    assert_eq!((*fmt, *sev), ("apache-error", Some(5)));
    assert_eq!(s.get_int("pid"), None);
    assert_eq!(s.get_str("client_ip"), None);
}
