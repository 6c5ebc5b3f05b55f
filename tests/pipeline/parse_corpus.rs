//! Every line of the real HAProxy 2.6 / 3.4 and Apache 2.4 corpus (tests/fixtures/parse, copied
//! from the shared corpus) must parse, and the parsed method, path, status, client address and
//! frontend must match the client-side ground truth (ground-truth.csv), joined by the test id the
//! client sent (captured header, RFC 5424 SD `tid`, Apache's `%{X-Test-Id}i`) or, for lines that
//! carry none, by frontend and client port.

use std::collections::HashMap;
use std::path::PathBuf;

use quill::parse::apache::config::ApacheConfig;
use quill::parse::haproxy::config::HaproxyConfig;
use quill::parse::{FieldList, Format, Parser, ParserConfig, TxnIdSources};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parse")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn lines(data: &[u8]) -> Vec<&[u8]> {
    data.split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}

const RECEIVED_MS: i64 = 1_795_396_000_000; // 2026-11-23, the day of the run

fn parser(format: Format) -> Parser {
    let cfg_text = String::from_utf8(read("haproxy-2.6.cfg")).unwrap();
    let apache_text = String::from_utf8(read("apache-httpd.conf")).unwrap();
    let apache = ApacheConfig::parse(&apache_text).unwrap();
    ParserConfig {
        format,
        haproxy_config: Some(HaproxyConfig::parse(&cfg_text).unwrap()),
        apache_log_formats: apache.formats(),
        txn_id_sources: TxnIdSources::new(&["X-Test-Id", "tid"]),
        ..ParserConfig::default()
    }
    .compile()
    .unwrap()
}

struct Parsed {
    fields: FieldList,
    format: &'static str,
    txn: Option<String>,
    timestamp_ms: Option<i64>,
}

/// Parses every line of a fixture; panics with the line if one fails.
fn parse_all(p: &Parser, format: Format, name: &str) -> Vec<Parsed> {
    let data = read(name);
    let mut out = Vec::new();
    for (i, line) in lines(&data).into_iter().enumerate() {
        let mut fields = FieldList::default();
        match p.parse_line(format, line, RECEIVED_MS, &mut fields) {
            Ok(info) => {
                let txn = info.txn_id.map(|(_, v)| {
                    let mut l = FieldList::default();
                    quill::parse::FieldSink::field(&mut l, "t", v);
                    l.get_str("t").unwrap().to_owned()
                });
                out.push(Parsed {
                    fields,
                    format: info.format,
                    txn,
                    timestamp_ms: info.timestamp_ms,
                });
            }
            Err(e) => panic!("{name}:{}: {e}\n{}", i + 1, String::from_utf8_lossy(line)),
        }
    }
    out
}

#[derive(Debug, Clone)]
struct Truth {
    tid: String,
    /// The client sent the id in a header (false for raw requests, joined by port instead).
    sent_tid: bool,
    fe: String,
    via: String,
    client_ip: String,
    cport: i64,
    method: String,
    path: String,
    status: Option<i64>,
}

fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut q = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if q && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => q = !q,
            ',' if !q => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn ground_truth() -> Vec<Truth> {
    let text = String::from_utf8(read("ground-truth.csv")).unwrap();
    let mut rows = text.lines();
    let header = csv_fields(rows.next().unwrap());
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    let (tid, sent, fe, via, ip, cport, method, path, status) = (
        col("tid"),
        col("sent_tid"),
        col("fe"),
        col("via"),
        col("client_ip"),
        col("cport"),
        col("method"),
        col("path"),
        col("status"),
    );
    rows.map(csv_fields)
        .map(|r| {
            let (mut m, mut p) = (r[method].clone(), r[path].clone());
            if m == "RAW" {
                // A raw request (written with \r\n and \xHH escapes): its first line says what
                // was sent: METHOD SP target [SP HTTP/x].
                let first = p.split("\\r\\n").next().unwrap_or("").to_owned();
                let (meth, rest) = first.split_once(' ').unwrap_or((&first, ""));
                let target = match rest.rfind(" HTTP/") {
                    Some(i) => &rest[..i],
                    None => rest,
                };
                m = meth.to_owned();
                p = unescape_hex(target);
            }
            Truth {
                tid: r[tid].clone(),
                sent_tid: r[sent] == "1",
                fe: r[fe].clone(),
                via: r[via].clone(),
                client_ip: r[ip].clone(),
                cport: r[cport].parse().unwrap_or(-1),
                method: m,
                path: p,
                status: r[status].parse().ok(),
            }
        })
        .collect()
}

/// `\xHH` → byte, then lossy UTF-8 (as the parsers' fields are).
fn unescape_hex(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') && i + 3 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn short(s: &str) -> String {
    if s.len() > 60 {
        format!(
            "{}…({} bytes)",
            &s[..s.char_indices().nth(60).map_or(s.len(), |(i, _)| i)],
            s.len()
        )
    } else {
        s.to_owned()
    }
}

/// Compares one parsed line with its ground-truth row; returns a description of any mismatch.
fn compare(p: &Parsed, t: &Truth, check_port: bool, http: bool) -> Vec<String> {
    let mut bad = Vec::new();
    let f = &p.fields;
    if let Some(fe) = f.get_str("frontend") {
        if fe != t.fe {
            bad.push(format!("frontend {fe} != {}", t.fe));
        }
    }
    if f.get_str("client_ip") != Some(t.client_ip.as_str()) {
        bad.push(format!(
            "client_ip {:?} != {}",
            f.get_str("client_ip"),
            t.client_ip
        ));
    }
    // The ground truth has no client port for curl and TLS clients (-1).
    if check_port && t.cport >= 0 && f.get_int("client_port") != Some(t.cport) {
        bad.push(format!(
            "client_port {:?} != {}",
            f.get_int("client_port"),
            t.cport
        ));
    }
    // `<BADREQ>`: HAProxy logs no request for requests it could not parse (garbage, a space in
    // the target, slowloris timeouts, raw 8-bit bytes): only the frontend and client compare.
    // A request line without spaces (Apache logs `"GARBAGE"`) is kept whole as http_request.
    if let Some(r) = f.get_str("http_request").filter(|r| *r != "<BADREQ>") {
        if r != t.method {
            bad.push(format!("request {r:?} != {}", t.method));
        }
        return bad;
    }
    if http && f.get_str("http_request") != Some("<BADREQ>") {
        if f.get_str("http_method") != Some(t.method.as_str()) {
            bad.push(format!(
                "method {:?} != {}",
                f.get_str("http_method"),
                t.method
            ));
        }
        let path = f.get_str("http_path").unwrap_or("");
        // HAProxy cuts the request at 1024 bytes and the ground truth keeps a prefix of very
        // long targets: for long paths one must be a prefix of the other.
        let long = path.len() >= 100 && t.path.len() >= 100;
        let ok = path == t.path
            || (long && (t.path.starts_with(path) || path.starts_with(t.path.as_str())));
        if !ok {
            bad.push(format!("path {:?} != {:?}", short(path), short(&t.path)));
        }
        if f.get_int("status") != t.status {
            bad.push(format!(
                "status {:?} != {:?}",
                f.get_int("status"),
                t.status
            ));
        }
    }
    bad
}

fn by_tid(truth: &[Truth]) -> HashMap<&str, &Truth> {
    truth
        .iter()
        .filter(|t| !t.tid.is_empty())
        .map(|t| (t.tid.as_str(), t))
        .collect()
}

/// The ground-truth row of a line that carries no test id: same client port, a request that
/// could not carry an id (raw requests, tcp mode), and the only such row.
fn by_port<'t>(truth: &'t [Truth], fe: &str, port: i64) -> Option<&'t Truth> {
    if port < 0 {
        return None;
    }
    let mut found = truth.iter().filter(|t| {
        t.cport == port
            && (fe.is_empty() || t.fe == fe)
            && (!t.sent_tid || t.fe.starts_with("fe_tcp"))
    });
    let first = found.next()?;
    if found.next().is_some() {
        None
    } else {
        Some(first)
    }
}

#[test]
fn haproxy_rfc5424_matches_ground_truth_by_sd_tid() {
    let p = parser(Format::Auto);
    let truth = ground_truth();
    let tids = by_tid(&truth);
    let parsed = parse_all(&p, Format::Auto, "haproxy-rfc5424.log");
    assert_eq!(parsed.len(), 1413);
    let (mut joined, mut mismatches) = (0, Vec::new());
    for (i, x) in parsed.iter().enumerate() {
        let f = &x.fields;
        let tid = f.get_str("sd_var_txn.tid").unwrap_or("-");
        let cp = f.get_int("client_port").unwrap_or(-1);
        let fe = f.get_str("frontend").unwrap_or("");
        // HTTP lines carry the tid; tcp ones and bad requests are joined by port.
        let t = match tids.get(tid) {
            Some(t) => Some(*t),
            None => by_port(&truth, fe, cp),
        };
        let Some(t) = t else { continue };
        joined += 1;
        let http = x.format != "haproxy-tcplog";
        for m in compare(x, t, true, http && t.method != "PRI") {
            mismatches.push(format!("line {}: {} ({m})", i + 1, t.tid));
        }
        assert_eq!(
            f.get_str("sd_frontend"),
            f.get_str("frontend"),
            "SD fe vs parsed frontend, line {}",
            i + 1
        );
    }
    // 1413 lines: 16 are not joined: the shutdown "Proxy … stopped" lines, errors-0259 (a tid
    // the ground truth does not have) and tcp connections that reused a client port.
    assert!(joined >= 1395, "joined only {joined}");
    assert_eq!(mismatches, Vec::<String>::new());
}

#[test]
fn haproxy_local_logs_match_ground_truth_by_capture_or_port() {
    let p = parser(Format::Haproxy);
    let truth = ground_truth();
    let tids = by_tid(&truth);
    let mut mismatches = Vec::new();
    let mut joined = 0;
    for (file, expect) in [
        ("haproxy-httplog.log", "haproxy-httplog"),
        ("haproxy-clf.log", "haproxy-clf"),
        ("haproxy-httpslog.log", "haproxy-httpslog"),
        ("haproxy-tcplog.log", "haproxy-tcplog"),
    ] {
        let parsed = parse_all(&p, Format::Haproxy, file);
        for (i, x) in parsed.iter().enumerate() {
            if x.format == "haproxy-admin" {
                continue; // "Proxy … stopped" at shutdown
            }
            assert_eq!(x.format, expect, "{file}:{}", i + 1);
            let f = &x.fields;
            let cp = f.get_int("client_port").unwrap_or(-1);
            let fe = f.get_str("frontend").unwrap_or("");
            let t = match x.txn.as_deref().and_then(|id| tids.get(id)) {
                Some(t) => Some(*t),
                None => by_port(&truth, fe, cp),
            };
            let Some(t) = t else { continue };
            joined += 1;
            for m in compare(x, t, true, expect != "haproxy-tcplog") {
                mismatches.push(format!("{file}:{}: {} ({m})", i + 1, t.tid));
            }
        }
    }
    // Lines of frontends without an X-Test-Id capture (fe_plain, fe_https) are joined by client
    // port only where that port is unambiguous; the rfc5424 test covers them by tid.
    assert!(joined >= 1100, "joined only {joined}");
    assert_eq!(mismatches, Vec::<String>::new());
}

#[test]
fn apache_exp_matches_ground_truth_and_other_apache_logs_agree_line_by_line() {
    let p = parser(Format::Apache);
    let truth = ground_truth();
    let tids = by_tid(&truth);
    let exp = parse_all(&p, Format::Apache, "apache-exp.log");
    let mut mismatches = Vec::new();
    let mut joined = 0;
    for (i, x) in exp.iter().enumerate() {
        assert_eq!(x.format, "apache-custom");
        let f = &x.fields;
        let t = match x.txn.as_deref().and_then(|id| tids.get(id)) {
            Some(t) => Some(*t),
            // requests that carried no usable id: the client port (%{remote}p) of a direct one
            None => by_port(&truth, "", f.get_int("client_port").unwrap_or(-1))
                .filter(|t| t.via == "apache"),
        };
        let Some(t) = t else { continue };
        joined += 1;
        // Behind HAProxy, Apache's client is HAProxy: compare addresses for direct requests only.
        let direct = t.via == "apache";
        let mut bad = compare(x, t, direct, true);
        if !direct {
            bad.retain(|m| !m.starts_with("client_ip"));
        }
        for m in bad {
            mismatches.push(format!("apache-exp.log:{}: {} ({m})", i + 1, t.tid));
        }
    }
    assert!(joined > 1500, "joined only {joined}");
    assert_eq!(mismatches, Vec::<String>::new());

    // The same requests in every access log (the order differs slightly: concurrent writers).
    let key = |x: &Parsed| {
        [
            "client_ip",
            "http_method",
            "http_path",
            "http_version",
            "status",
            "user_agent",
            "referer",
        ]
        .map(|k| format!("{:?}", x.fields.get(k)))
        .join("|")
            + &format!("|{:?}", x.timestamp_ms)
    };
    let mut exp_keys: Vec<String> = exp.iter().map(key).collect();
    exp_keys.sort();
    for (file, expect) in [
        ("apache-combined.log", "apache-combined"),
        ("apache-combinedio.log", "apache-combinedio"),
        ("apache-vhost_combined.log", "apache-vhost_combined"),
    ] {
        let other = parse_all(&parser(Format::Apache), Format::Apache, file);
        for (i, b) in other.iter().enumerate() {
            // The config's combinedio spells `User-agent`, so it is not the built-in string.
            assert!(
                b.format == expect
                    || (expect == "apache-combinedio" && b.format == "apache-custom"),
                "{file}:{}: {}",
                i + 1,
                b.format
            );
        }
        let mut keys: Vec<String> = other.iter().map(key).collect();
        keys.sort();
        assert_eq!(keys, exp_keys, "{file}");
    }
}

#[test]
fn apache_error_log_every_line() {
    let p = parser(Format::Apache);
    let parsed = parse_all(&p, Format::Apache, "apache-error.log");
    assert_eq!(parsed.len(), 338);
    let mut with_client = 0;
    for x in &parsed {
        assert_eq!(x.format, "apache-error");
        assert!(x.timestamp_ms.is_some());
        assert!(x.fields.get_str("apache_level").is_some());
        if x.fields.get_str("client_ip").is_some() {
            with_client += 1;
            assert!(x.fields.get_int("client_port").is_some());
            assert!(
                x.fields
                    .get_str("error_code")
                    .is_some_and(|c| c.starts_with("AH"))
            );
        }
    }
    assert!(with_client > 320);
    // `(36)File name too long: [client …]`
    assert!(
        parsed
            .iter()
            .any(|x| x.fields.get_int("os_errno") == Some(36))
    );
}

#[test]
fn haproxy_admin_and_haproxy_3_4_logs() {
    let p = parser(Format::Auto);
    let admin = parse_all(&p, Format::Auto, "haproxy-admin.log");
    assert_eq!(admin.len(), 13);
    assert!(admin.iter().all(|x| x.format == "haproxy-admin"));
    assert!(
        admin
            .iter()
            .any(|x| x.fields.get_str("server_state") == Some("DOWN")
                && x.fields.get_str("server") == Some("chk1"))
    );
    assert!(
        admin
            .iter()
            .any(|x| x.fields.get_str("proxy") == Some("be_tcpdown"))
    );

    for (file, n) in [
        ("haproxy-3.4.0-run/haproxy-httplog.log", 220),
        ("haproxy-3.4.0-run/haproxy-rfc5424.log", 283),
        ("haproxy-3.4.0-run/haproxy-tcplog.log", 36),
    ] {
        let parsed = parse_all(&p, Format::Auto, file);
        assert_eq!(parsed.len(), n, "{file}");
        assert!(
            parsed
                .iter()
                .filter(|x| x.fields.get("status").is_some())
                .count()
                > n / 2
                || file.contains("tcp")
        );
    }
}

#[test]
fn corpus_details() {
    let p = parser(Format::Auto);
    let http = parse_all(&p, Format::Auto, "haproxy-httplog.log");
    let find = |pred: &dyn Fn(&FieldList) -> bool| {
        http.iter().find(|x| pred(&x.fields)).map(|x| &x.fields)
    };
    // IPv6 client
    let v6 = find(&|f| f.get_str("client_ip") == Some("::1")).expect("an IPv6 client");
    assert!(v6.get_int("client_port").is_some());
    // <BADREQ>, <NOSRV>, <STATS>
    assert!(find(&|f| f.get_str("http_request") == Some("<BADREQ>")).is_some());
    assert!(find(&|f| f.get_str("server") == Some("<NOSRV>")).is_some());
    assert!(find(&|f| f.get_str("server") == Some("<STATS>")).is_some());
    // timers of -1
    assert!(find(&|f| f.get_int("time_response_ms") == Some(-1)).is_some());
    // #22 escapes decoded
    assert!(find(&|f| f.get_str("http_path").is_some_and(|p| p.contains('"'))).is_some());
    // the truncated 1024-byte line
    let data = read("haproxy-httplog.log");
    let long = lines(&data).into_iter().find(|l| l.len() > 1000).unwrap();
    let mut fl = FieldList::default();
    let info = p
        .parse_line(Format::Auto, long, RECEIVED_MS, &mut fl)
        .unwrap();
    assert!(info.truncated);
    assert_eq!(fl.get_str("http_method"), Some("GET"));
}
