//! Random HAProxy log-formats and Apache LogFormats built from the directive tables: a format
//! made of random directives (in random order, separated by spaces), a line written by
//! formatting random values with it, and the parse must give every value back under its field
//! (and the time directives back as the timestamp).

use proptest::prelude::*;
use quill::parse::{FieldList, FieldValue, Format, ParserConfig};

/// A directive, its field and a value generator; `None` field: the value is the timestamp (s).
#[derive(Clone, Copy)]
enum Gen {
    Ip,
    Port,
    Status,
    Count,
    Timer,
    Name,
    Id,
    Method,
    Epoch,
    /// `+X`: a port written as 4 hex digits.
    HexPort,
    /// `+X`: an IPv4 address written as 8 hex digits.
    HexIp,
    /// `+E`: text with `"`, `\` and `]`, written backslash-escaped.
    Escaped,
}

const HAPROXY: &[(&str, Option<&str>, Gen)] = &[
    ("%ci", Some("client_ip"), Gen::Ip),
    ("%cp", Some("client_port"), Gen::Port),
    ("%fi", Some("frontend_ip"), Gen::Ip),
    ("%ST", Some("status"), Gen::Status),
    ("%B", Some("bytes_read"), Gen::Count),
    ("%U", Some("bytes_uploaded"), Gen::Count),
    ("%Tw", Some("time_queue_ms"), Gen::Timer),
    ("%Tc", Some("time_connect_ms"), Gen::Timer),
    ("%b", Some("backend"), Gen::Name),
    ("%s", Some("server"), Gen::Name),
    ("%ID", Some("unique_id"), Gen::Id),
    ("%HM", Some("http_method"), Gen::Method),
    ("%rc", Some("retries"), Gen::Count),
    ("%[var(txn.tag)]", Some("var_txn.tag"), Gen::Name),
    ("%Ts", None, Gen::Epoch),
    ("%{+X}fp", Some("frontend_port"), Gen::HexPort),
    ("%{+X}bi", Some("backend_source_ip"), Gen::HexIp),
    ("%{+E}HQ", Some("http_query"), Gen::Escaped),
];

const APACHE: &[(&str, Option<&str>, Gen)] = &[
    ("%h", Some("client_ip"), Gen::Ip),
    ("%{remote}p", Some("client_port"), Gen::Port),
    ("%>s", Some("status"), Gen::Status),
    ("%O", Some("bytes_sent"), Gen::Count),
    ("%I", Some("bytes_received"), Gen::Count),
    ("%B", Some("response_body_bytes"), Gen::Count),
    ("%D", Some("request_time_us"), Gen::Count),
    ("%k", Some("keepalive_requests"), Gen::Count),
    ("%v", Some("vhost"), Gen::Name),
    ("%L", Some("log_id"), Gen::Id),
    ("%m", Some("http_method"), Gen::Method),
    ("%{X-Trace}i", Some("request_header_x-trace"), Gen::Name),
    ("%{%Y-%m-%dT%H:%M:%S}t", None, Gen::Epoch),
    ("%{c}a", Some("peer_ip"), Gen::Ip),
    ("%{SSL_PROTOCOL}x", Some("ssl_protocol"), Gen::Name),
];

fn value(g: Gen) -> BoxedStrategy<(String, FieldValue)> {
    let int = |r: std::ops::RangeInclusive<i64>| {
        r.prop_map(|n| (n.to_string(), FieldValue::Int(n))).boxed()
    };
    let text = |re: &'static str| {
        re.prop_map(|s: String| (s.clone(), FieldValue::Str(s)))
            .boxed()
    };
    match g {
        Gen::Ip => (0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c)| {
                let s = format!("10.{a}.{b}.{c}");
                (s.clone(), FieldValue::Str(s))
            })
            .boxed(),
        Gen::Port => int(1..=65535),
        Gen::Status => int(100..=599),
        Gen::Count => int(0..=10_000_000_000),
        Gen::Timer => int(-1..=100_000),
        Gen::Name => text("[a-z][a-z_]{0,11}"),
        Gen::Id => text("[A-F0-9]{8}:[A-F0-9]{4}_[0-9]{1,6}"),
        Gen::Method => text("(GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH)"),
        // 2000-01-01 .. 2037
        Gen::Epoch => int(946_684_800..=2_100_000_000),
        Gen::HexPort => (1i64..=65535)
            .prop_map(|n| (format!("{n:04X}"), FieldValue::Int(n)))
            .boxed(),
        Gen::HexIp => (0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c)| {
                (
                    format!("0A{a:02X}{b:02X}{c:02X}"),
                    FieldValue::Str(format!("10.{a}.{b}.{c}")),
                )
            })
            .boxed(),
        Gen::Escaped => "[a-z?=\\]\"\\\\]{1,10}"
            .prop_map(|raw: String| {
                let mut text = String::new();
                for c in raw.chars() {
                    if matches!(c, '"' | '\\' | ']') {
                        text.push('\\');
                    }
                    text.push(c);
                }
                (text, FieldValue::Str(raw))
            })
            .boxed(),
    }
}

type Case = (String, Vec<(Option<&'static str>, String, FieldValue)>);

fn case(
    table: &'static [(&'static str, Option<&'static str>, Gen)],
) -> impl Strategy<Value = Case> {
    proptest::sample::subsequence((0..table.len()).collect::<Vec<_>>(), 1..=table.len())
        .prop_shuffle()
        .prop_flat_map(move |idx| {
            let vals: Vec<_> = idx.iter().map(|&i| value(table[i].2)).collect();
            (Just(idx), vals)
        })
        .prop_map(move |(idx, vals)| {
            let format = idx
                .iter()
                .map(|&i| table[i].0)
                .collect::<Vec<_>>()
                .join(" ");
            let items = idx
                .iter()
                .zip(vals)
                .map(|(&i, (text, v))| (table[i].1, text, v))
                .collect();
            (format, items)
        })
}

/// Formats epoch seconds as `%Y-%m-%dT%H:%M:%S` (UTC).
fn iso(secs: i64) -> String {
    let t = jiff::Timestamp::from_second(secs).unwrap();
    t.strftime("%Y-%m-%dT%H:%M:%S").to_string()
}

fn check(
    parser_format: Format,
    cfg: ParserConfig,
    items: &[(Option<&str>, String, FieldValue)],
    apache: bool,
) -> Result<(), TestCaseError> {
    let p = cfg.compile().unwrap();
    let line = items
        .iter()
        .map(|(field, text, v)| match (field, v) {
            (None, FieldValue::Int(s)) if apache => iso(*s),
            _ => text.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut f = FieldList::default();
    let info = p
        .parse_line(parser_format, line.as_bytes(), 0, &mut f)
        .map_err(|e| TestCaseError::fail(format!("{line:?}: {e}")))?;
    for (field, _, v) in items {
        match (field, v) {
            (Some(name), v) => prop_assert_eq!(f.get(name), Some(v), "{} in {:?}", name, line),
            (None, FieldValue::Int(s)) => {
                prop_assert_eq!(info.timestamp_ms, Some(s * 1000), "{:?}", line)
            }
            _ => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn haproxy_log_formats_round_trip((format, items) in case(HAPROXY)) {
        let cfg = ParserConfig {
            format: Format::Haproxy,
            haproxy_log_formats: vec![format],
            ..ParserConfig::default()
        };
        check(Format::Haproxy, cfg, &items, false)?;
    }

    #[test]
    fn apache_log_formats_round_trip((format, items) in case(APACHE)) {
        let cfg = ParserConfig {
            format: Format::Apache,
            apache_log_formats: vec![format],
            ..ParserConfig::default()
        };
        check(Format::Apache, cfg, &items, true)?;
    }
}
