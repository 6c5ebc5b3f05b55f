//! A real `quill run` aggregator indexing the real HAProxy 2.6 / Apache 2.4 fixture logs
//! (tests/fixtures/parse/), with its search API on a loopback port, and a raw HTTP/1.1 client
//! for it (status codes, headers and bodies as they are on the wire).
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Daemon, free_port, wait_until, write_file};

pub const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/parse");
/// The Apache LogFormat the fixture's access log was written with (`exp` in apache-httpd.conf).
pub const APACHE_EXP: &str = r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" tid=%{X-Test-Id}i I=%I O=%O b=%b B=%B uid=%{UNIQUE_ID}e xrid=%{X-Request-ID}i xff=%{X-Forwarded-For}i X=%X k=%k D=%D cp=%{remote}p"#;
/// Lines in the two fixture logs together.
pub const FIXTURE_LINES: usize = 1413 + 1617;

pub struct Aggregator {
    pub daemon: Daemon,
    pub port: u16,
}

/// Starts `quill run` tailing copies of haproxy-rfc5424.log and apache-exp.log into an index
/// sink whose API listens on a free loopback port; `index_keys` are added to the sink's table.
pub fn start_aggregator(dir: &Path, index_keys: &str) -> Aggregator {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for (from, to) in [
        ("haproxy-rfc5424.log", "haproxy.log"),
        ("apache-exp.log", "apache.log"),
    ] {
        std::fs::copy(format!("{FIX}/{from}"), input.join(to)).unwrap();
    }
    let keys = format!(
        "apache_format = ['{APACHE_EXP}']\ntxn_id_fields = [\"X-Test-Id\", \"tid\"]\nhaproxy_config = \"{FIX}/haproxy-2.6.cfg\"\n"
    );
    let port = free_port();
    let config = dir.join("quill.toml");
    write_file(
        &config,
        &format!(
            "data_dir = \"{data}\"\n[bytes]\nhaproxy_config = \"{FIX}/haproxy-2.6.cfg\"\nwindow = \"3s\"\n\n[sources.lb]\ntype = \"file\"\ninclude = [\"{input}/haproxy.log\"]\n{keys}\n[sources.web]\ntype = \"file\"\ninclude = [\"{input}/apache.log\"]\nformat = \"apache\"\n{keys}\n[sinks.index]\ntype = \"index\"\nmax_age_days = 0\ncommit_interval = \"200ms\"\nlisten = \"127.0.0.1:{port}\"\n{index_keys}\n",
            data = dir.join("data").display(),
            input = input.display(),
        ),
    );
    Aggregator {
        daemon: Daemon::start(dir, &config),
        port,
    }
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
    pub took: Duration,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// `GET target` on 127.0.0.1:`port` with extra header lines; `None` when the connection failed.
pub fn get(port: u16, target: &str, headers: &[&str]) -> Option<Answer> {
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
        took: started.elapsed(),
    })
}

/// Percent-encodes a query-string value.
pub fn enc(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How many entries (up to 10,000) the search API on `port` finds; 0 if it does not answer.
pub fn count_entries(port: u16, headers: &[&str]) -> usize {
    get(port, "/api/search?q=*&limit=10000", headers)
        .filter(|a| a.status == 200)
        .map(|a| a.json()["hits"].as_array().map_or(0, Vec::len))
        .unwrap_or(0)
}

/// Waits until every fixture line is searchable (`headers` carry a token if one is needed).
pub fn wait_indexed(agg: &Aggregator, headers: &[&str]) {
    let count = || count_entries(agg.port, headers);
    assert!(
        wait_until(Duration::from_secs(90), || count() >= FIXTURE_LINES),
        "all {FIXTURE_LINES} entries indexed (got {})\n{}",
        count(),
        agg.daemon.stderr()
    );
}
