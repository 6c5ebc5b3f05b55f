//! Property tests: any bytes give a result or a parse error (never a panic) and valid GELF;
//! mutated corpus lines likewise; generated HAProxy, Apache, syslog and JSON lines round-trip
//! their field values. The fuzz targets' functions (`quill::parse::fuzzing`, `quill::gelf::fuzzing`) run here too, so
//! they are exercised without a nightly toolchain.

use proptest::prelude::*;
use quill::parse::{FieldList, Format, ParserConfig, fuzzing};

const SEEDS: &[&str] = &[
    r#"<134>Nov 23 01:08:50 haproxy[8425]: 127.0.0.1:51322 [23/Nov/2026:01:08:50.500] fe_cookie be_cookie/apache1 0/0/0/0/0 200 297 SERVERID=s1 - --VN 1/1/0/0/0 0/0 {cookie-0050} "GET /small.txt HTTP/1.1""#,
    r#"<134>1 2026-11-23T01:08:50.486919+00:00 - haproxy 8425 - [exp@32473 tid="plain-0002" fe="fe_plain"] 127.0.0.1:58374 [23/Nov/2026:01:08:50.485] fe_plain be_apache/apache1 0/0/0/0/0 200 297 - - ---- 1/1/0/0/0 0/0 "GET /small.txt HTTP/1.1""#,
    r#"<134>Nov 23 01:08:55 haproxy[8425]: 127.0.0.1:35140 [23/Nov/2026:01:08:55.621] fe_tcp be_tcp/apache1 1/0/0 310 -- 1/1/0/0/0 0/0"#,
    r#"127.0.0.1 - - [23/Nov/2026:01:09:03 +0000] "GET /small.txt HTTP/1.1" 200 297 "" "" 34210 256 "fe_clf" "be_apache" "apache1" 0 0 0 0 0 ---- 1 1 0 0 0 0 0 "" "" "clf-0202" "hexp-client/1.0" "#,
    r#"exp.local:80 127.0.0.1 - - [23/Nov/2026:01:08:50 +0000] "GET /a\"b\xc3 HTTP/1.1" 200 310 "-" "hexp-client/1.0""#,
    r#"[Mon Nov 23 00:59:34.998840 2026] [core:error] [pid 24734:tid 24739] (36)File name too long: [client ::1:50556] AH00036: x, referer: y"#,
    r#"{"version":"1.1","host":"h","short_message":"m\u00e9","timestamp":1.5,"level":"warn","_a":[1,{"b":null}]}"#,
    "<134>Nov 23 01:08:49 haproxy[8425]: Connect from 10.0.1.2:33312 to 10.0.3.31:8012 (www/HTTP)",
];

fn any_format() -> impl Strategy<Value = Format> {
    proptest::sample::select(Format::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_encode_to_valid_gelf(data in proptest::collection::vec(any::<u8>(), 0..300), f in any_format()) {
        quill::gelf::fuzzing::encode_line(f, &data);
        fuzzing::parse_line(&data);
    }

    #[test]
    fn mutated_corpus_lines_never_panic(
        seed in proptest::sample::select(SEEDS.to_vec()),
        cut in 0usize..400,
        flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..6),
        f in any_format(),
    ) {
        let mut line = seed.as_bytes().to_vec();
        for (at, b) in flips {
            if !line.is_empty() {
                let i = at % line.len();
                line[i] = b;
            }
        }
        line.truncate(cut.min(line.len()).max(line.len().saturating_sub(cut)));
        quill::gelf::fuzzing::encode_line(f, &line);
        fuzzing::parse_line(&line);
    }

    #[test]
    fn any_format_string_compiles_or_errors(s in "[%{}\\[\\]a-zA-Z0-9+\\-,<>!^ \"\\\\:/.]{0,60}") {
        fuzzing::compile_formats(s.as_bytes());
    }

    #[test]
    fn any_config_text_reads_or_errors(s in "(frontend [a-z]{1,3}|defaults|listen x|  log-format [%a-zA-Z{}+ \"'$\\\\]{0,30}|  option (httplog|tcplog|httplog clf)|  capture (request|response) header [A-Za-z-]{1,8} len 9|LogFormat \"[%a-z{}> \\\\\"]{0,20}\" n|CustomLog /a/b.log n|#c|[ \"'\\\\$]{0,4})(\n(frontend [a-z]{1,3}|  log-format [%a-zA-Z ]{0,20}|  option httplog|CustomLog x \"%h %b\"|  capture request header X len 1)){0,8}") {
        fuzzing::read_configs(s.as_bytes());
    }

    #[test]
    fn haproxy_httplog_round_trips(
        v6 in any::<bool>(),
        octets in any::<[u8; 4]>(),
        port in 1u16..,
        timers in proptest::collection::vec(-1i64..100_000, 5),
        status in 100i64..600,
        bytes in 0i64..1_000_000_000_000,
        term in "[-CSPLRIDUKcs][-RQCHDLT][-NIDVEOU][-NIUPRD]",
        conns in proptest::collection::vec(0i64..100_000, 7),
        capture in proptest::option::of("[a-zA-Z0-9._-]{1,20}"),
        method in "[A-Z]{3,7}",
        path in "/[a-zA-Z0-9/._?=&%-]{0,60}",
        quote_in_path in any::<bool>(),
    ) {
        let ip = if v6 { format!("2001:db8::{:x}", octets[0]) } else { format!("{}.{}.{}.{}", octets[0], octets[1], octets[2], octets[3]) };
        let logged_path = if quote_in_path { format!("{path}#22q") } else { path.clone() };
        let cap = capture.as_ref().map(|c| format!("{{{c}}} ")).unwrap_or_default();
        let line = format!(
            "<134>Nov 23 01:08:50 haproxy[1]: {ip}:{port} [23/Nov/2026:01:08:50.485] fe be/srv {}/{}/{}/{}/{} {status} {bytes} - - {term} {}/{}/{}/{}/{} {}/{} {cap}\"{method} {logged_path} HTTP/1.1\"",
            timers[0], timers[1], timers[2], timers[3], timers[4], conns[0], conns[1], conns[2], conns[3], conns[4], conns[5], conns[6]
        );
        let p = ParserConfig::default().compile().unwrap();
        let mut f = FieldList::default();
        let info = p.parse_line(Format::Auto, line.as_bytes(), 1_795_400_000_000, &mut f).unwrap();
        prop_assert_eq!(info.format, "haproxy-httplog");
        prop_assert_eq!(f.get_str("client_ip"), Some(ip.as_str()));
        prop_assert_eq!(f.get_int("client_port"), Some(i64::from(port)));
        prop_assert_eq!(f.get_int("time_request_ms"), Some(timers[0]));
        prop_assert_eq!(f.get_int("time_active_ms"), Some(timers[4]));
        prop_assert_eq!(f.get_int("status"), Some(status));
        prop_assert_eq!(f.get_int("bytes_read"), Some(bytes));
        prop_assert_eq!(f.get_str("termination_state"), Some(term.as_str()));
        prop_assert_eq!(f.get_int("backend_queue"), Some(conns[6]));
        prop_assert_eq!(f.get_str("captured_request_headers"), capture.as_deref());
        prop_assert_eq!(f.get_str("http_method"), Some(method.as_str()));
        let expect_path = if quote_in_path { format!("{path}\"q") } else { path };
        prop_assert_eq!(f.get_str("http_path"), Some(expect_path.as_str()));
        prop_assert_eq!(info.timestamp_ms, Some(1_795_396_130_485));
    }

    #[test]
    fn apache_combined_round_trips_escaped_values(
        path in proptest::collection::vec(any::<u8>(), 1..40),
        ua in "[ -~]{0,40}",
        status in 100i64..600,
        size in proptest::option::of(0i64..10_000_000),
        user in "[a-z]{1,8}|-",
    ) {
        // Apache's escaping: `"` and `\` get a backslash, other non-printables \xhh.
        let esc = |b: &[u8]| -> String {
            b.iter().map(|&c| match c {
                b'"' => "\\\"".to_owned(),
                b'\\' => "\\\\".to_owned(),
                0x20..=0x7e => (c as char).to_string(),
                _ => format!("\\x{c:02x}"),
            }).collect()
        };
        let mut target = b"/".to_vec();
        target.extend(path.iter().map(|&c| if c == b' ' { b'_' } else { c }));
        let size_s = size.map_or("-".to_owned(), |s| s.to_string());
        let line = format!(
            "::1 - {user} [23/Nov/2026:01:08:50 +0000] \"GET {} HTTP/1.1\" {status} {size_s} \"-\" \"{}\"",
            esc(&target), esc(ua.as_bytes())
        );
        let p = ParserConfig { format: Format::Apache, ..ParserConfig::default() }.compile().unwrap();
        let mut f = FieldList::default();
        let info = p.parse_line(Format::Apache, line.as_bytes(), 0, &mut f).unwrap();
        prop_assert_eq!(info.format, "apache-combined");
        let expect_path = String::from_utf8_lossy(&target).into_owned();
        prop_assert_eq!(f.get_str("http_path"), Some(expect_path.as_str()));
        prop_assert_eq!(f.get_int("status"), Some(status));
        // The nickname alone does not say upstream `%b` or Debian `%O`.
        prop_assert_eq!(f.get_int("response_body_or_sent_bytes"), Some(size.unwrap_or(0)));
        prop_assert_eq!(f.get_str("user"), if user == "-" { None } else { Some(user.as_str()) });
        prop_assert_eq!(f.get_str("user_agent"), if ua.is_empty() || ua == "-" { None } else { Some(ua.as_str()) });
    }

    #[test]
    fn rfc5424_sd_round_trips(value in "[ -~]{0,30}", msg in "[ -~]{0,30}", host in "[a-z0-9.]{1,20}") {
        let esc: String = value.chars().map(|c| match c { '"' | '\\' | ']' => format!("\\{c}"), c => c.to_string() }).collect();
        let line = format!("<165>1 2026-11-23T01:08:50.1Z {host} app 42 ID7 [x@1 k=\"{esc}\"][y k2=\"v\"] {msg}");
        let p = ParserConfig { format: Format::Syslog, ..ParserConfig::default() }.compile().unwrap();
        let mut f = FieldList::default();
        let info = p.parse_line(Format::Syslog, line.as_bytes(), 0, &mut f).unwrap();
        prop_assert_eq!(info.host, Some(host.as_bytes()));
        prop_assert_eq!(info.severity, Some(5));
        prop_assert_eq!(info.timestamp_ms, Some(1_795_396_130_100));
        let got = match f.get("sd_k") {
            Some(quill::parse::FieldValue::Str(s)) => s.clone(),
            Some(quill::parse::FieldValue::Int(i)) => i.to_string(),
            other => panic!("{other:?}"),
        };
        prop_assert_eq!(got, value);
        prop_assert_eq!(f.get_str("msgid"), Some("ID7"));
    }

    #[test]
    fn json_round_trips(key in "[a-z]{1,10}", s in "\\PC{0,20}", n in any::<i64>()) {
        let obj = serde_json::json!({ "message": s, "n": n, key.clone(): s });
        let line = serde_json::to_vec(&obj).unwrap();
        let p = ParserConfig::default().compile().unwrap();
        let mut f = FieldList::default();
        let info = p.parse_line(Format::Auto, &line, 0, &mut f).unwrap();
        prop_assert_eq!(info.format, "json");
        if key != "n" && key != "message" && key != "msg" && key != "level" && key != "host" && key != "time" && key != "ts" && key != "version" && key != "hostname" {
            let k = if key == "id" { "id_".to_owned() } else { key.clone() };
            prop_assert_eq!(f.get_str(&k), Some(s.as_str()));
        }
        if key != "n" {
            prop_assert_eq!(f.get_int("n"), Some(n));
        }
    }
}
