//! Entry points shared by the `fuzz/` targets (cargo fuzz) and the property tests, so both
//! exercise exactly the same code. Each takes arbitrary bytes, must never panic, and checks the
//! invariants that hold for any input (the GELF output is one valid JSON object, errors point
//! inside the line). Not part of the stable API.

use std::sync::OnceLock;

use super::apache::config::ApacheConfig;
use super::haproxy::config::HaproxyConfig;
use super::{Format, Parser, ParserConfig, apache, haproxy};

const CFG: &str = "frontend fe_cookie\n capture request header X-Test-Id len 40\n capture response header Server len 40\nfrontend fe_custom\n log-format \"%ci:%cp [%t] %ft %ID %{+Q}[var(txn.tid)] %Ts %HM %HU %HV %U %{+Q}r\"\nfrontend fe_enc\n log-format \"%{+json}o %(ci)ci %(st)ST %(id)ID %(r)r\"\n error-log-format \"%{+X}o %ci:%cp [%tr] %ft %{+E}[fc_err]\"\n log-format-sd \"[q@1 b=\\\"%B\\\" t=\\\"%tr\\\"]\"\nfrontend fe_cbor\n log-format \"%{+cbor}o %(ci)ci %(st)ST %(t)tr\"\n";

/// The parser for `format` every target uses (built once, with captures and log-formats of
/// every kind configured).
pub fn parser(format: Format) -> &'static Parser {
    static P: OnceLock<Vec<Parser>> = OnceLock::new();
    let all = P.get_or_init(|| {
        Format::ALL
            .iter()
            .map(|&f| {
                ParserConfig {
                    format: f,
                    haproxy_config: HaproxyConfig::parse_with_env(CFG, &|_| None).ok(),
                    ..ParserConfig::default()
                }
                .compile()
                .expect("built-in configuration compiles")
            })
            .collect()
    });
    &all[Format::ALL.iter().position(|&f| f == format).unwrap_or(0)]
}

/// Runs every parser directly (so errors are seen, not turned into GELF) and checks columns.
pub fn parse_line(data: &[u8]) {
    for f in Format::ALL {
        let mut sink = super::FieldList::default();
        if let Err(e) = parser(f).parse_line(f, data, 1_795_400_000_000, &mut sink) {
            assert!(
                e.column >= 1 && e.column <= data.len() + 1,
                "column {} for a {}-byte line",
                e.column,
                data.len()
            );
        }
    }
}

/// Compiles `data` as an HAProxy log-format and as an Apache LogFormat; a format that compiles
/// is then run on a line made of the same bytes.
pub fn compile_formats(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let txn = super::TxnIdSources::default();
    let cx = super::Context {
        zone: &crate::parse::LogZone::UTC,
        received_ms: 0,
        txn: &txn,
        sd: None,
    };
    if let Ok(f) = haproxy::logformat::LogFormat::compile(s) {
        let mut sink = super::FieldList::default();
        let mut info = super::LineInfo::default();
        let _ = f.parse(
            data,
            &cx,
            &haproxy::Captures::default(),
            &mut sink,
            &mut info,
        );
    }
    if let Ok(f) = apache::logformat::LogFormat::compile(s) {
        let mut sink = super::FieldList::default();
        let mut info = super::LineInfo::default();
        let _ = f.parse(data, &cx, &mut sink, &mut info);
    }
    if let Ok(f) = apache::errorformat::ErrorLogFormat::compile(s) {
        let mut sink = super::FieldList::default();
        let mut info = super::LineInfo::default();
        let _ = f.parse(data, &cx, &mut sink, &mut info);
    }
}

/// Reads `data` as a haproxy.cfg and as an Apache config, and compiles what they name.
pub fn read_configs(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = HaproxyConfig::parse_with_env(s, &|_| Some("x".to_owned())) {
        let _ = ParserConfig {
            haproxy_config: Some(cfg),
            ..ParserConfig::default()
        }
        .compile();
    }
    if let Ok(cfg) = ApacheConfig::parse(s) {
        let _ = ParserConfig {
            apache_log_formats: cfg.formats(),
            apache_error_log_formats: cfg.error_log_formats,
            ..ParserConfig::default()
        }
        .compile();
    }
}
