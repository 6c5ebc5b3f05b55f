//! The syslog source against real senders: util-linux `logger`, rsyslog's omfwd, HAProxy 2.6, plus
//! bounded floods and hostile clients. Every test starts the real `quill` binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

struct Setup {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    port: u16,
    metrics: u16,
    daemon: Daemon,
}

impl Setup {
    fn out(&self) -> std::path::PathBuf {
        self.root.join("out")
    }
}

/// Starts quill with a syslog source on UDP+TCP (same port), unix sockets and a file sink.
fn start(extra_source_keys: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let port = free_port();
    let metrics = free_port();
    write_file(
        &root.join("quill.toml"),
        &format!(
            r#"data_dir = "./data"
hostname = "sink1"
metrics_listen = "127.0.0.1:{metrics}"

[journal]
max_size = "2GiB"

[sources.sys]
type = "syslog"
udp = "127.0.0.1:{port}"
tcp = "127.0.0.1:{port}"
unix = "./dgram.sock"
unix_stream = "./stream.sock"
unix_mode = "0660"
category = "sys"
# Raw: the sink shows each record exactly as journaled, so the tests can compare bytes.
format = "raw"
tcp_idle_timeout = "30s"
{extra_source_keys}

[sinks.out]
type = "file"
path = "./out"
max_size = "1GiB"
"#
        ),
    );
    let daemon = Daemon::start(&root, &root.join("quill.toml"));
    assert!(
        wait_until(Duration::from_secs(10), || TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()
            && root.join("stream.sock").exists()),
        "quill did not start listening\n{}",
        daemon.stderr()
    );
    Setup {
        _dir: dir,
        root,
        port,
        metrics,
        daemon,
    }
}

fn logger(args: &[&str]) {
    let out = Command::new("logger")
        .args(args)
        .output()
        .expect("run logger (util-linux)");
    assert!(
        out.status.success(),
        "logger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_messages(s: &Setup, n: usize) -> Vec<String> {
    let ok = wait_until(Duration::from_secs(15), || read_sink(&s.out()).len() >= n);
    let msgs = messages(&read_sink(&s.out()));
    assert!(
        ok,
        "expected {n} messages, got {}: {msgs:?}\n{}",
        msgs.len(),
        s.daemon.stderr()
    );
    msgs
}

#[test]
fn logger_over_udp_tcp_and_unix_sockets_arrives_byte_exact() {
    let s = start("");
    let p = s.port.to_string();
    let fixed = "--rfc5424=notime,notq,nohost";
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        &p,
        "-d",
        fixed,
        "-t",
        "qtest",
        "--msgid",
        "udp5424",
        "one over udp",
    ]);
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        &p,
        "-T",
        "--octet-count",
        fixed,
        "-t",
        "qtest",
        "--msgid",
        "tcpoct",
        "two octet counted",
    ]);
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        &p,
        "-T",
        fixed,
        "-t",
        "qtest",
        "--msgid",
        "tcplf",
        "three lf framed",
    ]);
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        &p,
        "-T",
        fixed,
        "-t",
        "qtest",
        "--msgid",
        "sd",
        "--sd-id",
        "zoo@32473",
        "--sd-param",
        "tiger=\"hungry\"",
        "four with structured data",
    ]);
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        &p,
        "-d",
        "--rfc3164",
        "-t",
        "qtest",
        "five bsd over udp",
    ]);
    let dgram = s.root.join("dgram.sock");
    let stream = s.root.join("stream.sock");
    logger(&[
        "--socket-errors=on",
        "-u",
        dgram.to_str().unwrap(),
        "-d",
        "-t",
        "qtest",
        "six over unix datagram",
    ]);
    logger(&[
        "--socket-errors=on",
        "-u",
        stream.to_str().unwrap(),
        "-T",
        "-t",
        "qtest",
        "seven over unix stream",
    ]);
    let msgs = wait_messages(&s, 7);
    // RFC 5424 without time or host is deterministic: compare every byte.
    for want in [
        "<13>1 - - qtest - udp5424 - one over udp",
        "<13>1 - - qtest - tcpoct - two octet counted",
        "<13>1 - - qtest - tcplf - three lf framed",
        "<13>1 - - qtest - sd [zoo@32473 tiger=\"hungry\"] four with structured data",
    ] {
        assert_eq!(
            msgs.iter().filter(|m| *m == want).count(),
            1,
            "{want:?} not byte-exact in {msgs:?}"
        );
    }
    for want in [
        "five bsd over udp",
        "six over unix datagram",
        "seven over unix stream",
    ] {
        let hit: Vec<_> = msgs
            .iter()
            .filter(|m| m.ends_with(&format!("qtest: {want}")))
            .collect();
        assert_eq!(hit.len(), 1, "{want}: {msgs:?}");
        assert!(hit[0].starts_with("<13>"), "{hit:?}");
    }
    // Unix sockets got the configured mode.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dgram).unwrap().permissions().mode() & 0o777,
        0o660
    );
    assert!(s.daemon.stop().success());
}

#[test]
fn a_stale_socket_file_is_replaced_and_a_regular_file_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // A socket left behind by a crashed process.
    let stale = root.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    std::fs::write(root.join("plain.sock"), "not a socket").unwrap();
    for (name, ok) in [("stale.sock", true), ("plain.sock", false)] {
        write_file(
            &root.join("q.toml"),
            &format!(
                "[sources.s]\ntype = \"syslog\"\nunix = \"./{name}\"\n\n[sinks.out]\ntype = \"file\"\npath = \"./out\"\n"
            ),
        );
        let d = Daemon::start(root, &root.join("q.toml"));
        if ok {
            assert!(
                wait_until(Duration::from_secs(5), || d
                    .stderr()
                    .contains("Quill is running")),
                "{}",
                d.stderr()
            );
            assert!(d.stop().success());
        } else {
            let mut d = d;
            let status = d.child.wait().unwrap();
            assert!(!status.success());
            assert!(
                d.stderr()
                    .contains("exists and is not a socket; refusing to replace it"),
                "{}",
                d.stderr()
            );
            assert_eq!(
                std::fs::read_to_string(root.join("plain.sock")).unwrap(),
                "not a socket"
            );
        }
    }
}

/// rsyslog 8 (Debian) receiving from logger and forwarding to Quill with omfwd over TCP (octet
/// counted) and UDP.
#[test]
fn rsyslog_forwards_to_quill_over_tcp_and_udp() {
    let s = start("");
    let dir = tempfile::tempdir().unwrap();
    let rs_port = free_port();
    let conf = dir.path().join("rsyslog.conf");
    write_file(
        &conf,
        &format!(
            r#"global(workDirectory="{work}")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{rs_port}")
action(type="omfwd" target="127.0.0.1" port="{q}" protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
action(type="omfwd" target="127.0.0.1" port="{q}" protocol="udp" template="RSYSLOG_SyslogProtocol23Format")
"#,
            work = dir.path().display(),
            q = s.port
        ),
    );
    let mut rsyslog = Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.path().join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rsyslogd (Debian package rsyslog)");
    // Wait until rsyslog listens, then send through it.
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let n = read_sink(&s.out())
            .iter()
            .filter(|e| {
                e["short_message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("via-rsyslog")
            })
            .count();
        if n >= 2 {
            break;
        }
        if sent < 30 && n == 0 {
            // Only the first datagram rsyslog reads gets forwarded; retry until it is up.
            sender
                .send_to(
                    format!("<14>Nov 23 10:00:00 app1 myapp[42]: via-rsyslog attempt={sent}")
                        .as_bytes(),
                    ("127.0.0.1", rs_port),
                )
                .unwrap();
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = rsyslog.kill();
    let _ = rsyslog.wait();
    let mut err = String::new();
    if let Some(mut e) = rsyslog.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let entries = read_sink(&s.out());
    let hits: Vec<String> = messages(&entries)
        .into_iter()
        .filter(|m| m.contains("via-rsyslog"))
        .collect();
    assert!(
        hits.len() >= 2,
        "rsyslog forwarded nothing: {hits:?}\nrsyslog: {err}\nquill: {}",
        s.daemon.stderr()
    );
    // Each attempt rsyslog received arrives once over TCP and once over UDP, in RFC 5424 form.
    let first = hits[0]
        .split("attempt=")
        .nth(1)
        .unwrap()
        .trim_end()
        .to_string();
    // rsyslog's RSYSLOG_SyslogProtocol23Format ends in LF; both transports keep it byte-exact.
    let same: Vec<_> = hits
        .iter()
        .filter(|m| m.ends_with(&format!("attempt={first}\n")))
        .collect();
    assert_eq!(same.len(), 2, "{hits:?}");
    for m in same {
        assert!(m.starts_with("<14>1 "), "RFC 5424 from rsyslog: {m}");
        assert!(
            m.contains(" app1 myapp 42 - - ") && m.contains("via-rsyslog"),
            "{m}"
        );
    }
    assert!(s.daemon.stop().success());
}

/// A tiny HTTP backend: answers every request with a fixed 200.
fn http_backend() -> (u16, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    l.set_nonblocking(true).unwrap();
    let h = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match l.accept() {
                Ok((mut c, _)) => {
                    c.set_nonblocking(false).unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut buf = [0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (port, h)
}

#[test]
fn haproxy_logs_to_quill_over_udp_while_proxying() {
    let s = start("");
    let dir = tempfile::tempdir().unwrap();
    let (backend, _h) = http_backend();
    let front = free_port();
    let cfg = dir.path().join("haproxy.cfg");
    write_file(
        &cfg,
        &format!(
            "global\n    log 127.0.0.1:{q} local0\n\ndefaults\n    mode http\n    log global\n    option httplog\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n\nfrontend fe_test\n    bind 127.0.0.1:{front}\n    default_backend be_test\n\nbackend be_test\n    server s1 127.0.0.1:{backend}\n",
            q = s.port
        ),
    );
    let mut haproxy = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haproxy (Debian package haproxy)");
    assert!(wait_until(Duration::from_secs(10), || TcpStream::connect(
        ("127.0.0.1", front)
    )
    .is_ok()));
    let n = 50;
    for i in 0..n {
        let mut c = TcpStream::connect(("127.0.0.1", front)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(
            format!("GET /req/{i} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut resp = Vec::new();
        let _ = c.read_to_end(&mut resp);
        assert!(
            resp.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&resp)
        );
    }
    let ok = wait_until(Duration::from_secs(10), || {
        messages(&read_sink(&s.out()))
            .iter()
            .filter(|m| m.contains("\"GET /req/"))
            .count()
            >= n
    });
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    let msgs = messages(&read_sink(&s.out()));
    assert!(ok, "{msgs:?}");
    for i in 0..n {
        // HAProxy ends each datagram with LF; Quill journals it as it arrived.
        let hits: Vec<_> = msgs
            .iter()
            .filter(|m| m.ends_with(&format!("\"GET /req/{i} HTTP/1.1\"\n")))
            .collect();
        assert_eq!(hits.len(), 1, "request {i}");
        // local0.info = <134>, HAProxy's RFC 3164 header with its pid, then the httplog line.
        assert!(
            hits[0].starts_with("<134>") && hits[0].contains(" haproxy["),
            "{}",
            hits[0]
        );
        assert!(hits[0].contains(" fe_test be_test/s1 "), "{}", hits[0]);
    }
    assert!(s.daemon.stop().success());
}

#[test]
fn one_million_messages_over_16_tcp_connections_arrive_exactly_once() {
    let s = start("");
    let conns = 16;
    let per_conn = 1_000_000 / conns;
    let senders: Vec<_> = (0..conns)
        .map(|c| {
            let port = s.port;
            std::thread::spawn(move || {
                let mut stream = std::io::BufWriter::with_capacity(
                    256 * 1024,
                    TcpStream::connect(("127.0.0.1", port)).unwrap(),
                );
                for n in 0..per_conn {
                    let msg = format!("<13>1 - h app - - - flood c={c:02} n={n:07}");
                    if c % 2 == 0 {
                        write!(stream, "{} {msg}", msg.len()).unwrap();
                    } else {
                        writeln!(stream, "{msg}").unwrap();
                    }
                }
                stream.flush().unwrap();
            })
        })
        .collect();
    for t in senders {
        t.join().unwrap();
    }
    let total = conns * per_conn;
    let ok = wait_until(Duration::from_secs(120), || {
        scrape_metric(s.metrics, "quill_sink_records_total", "").unwrap_or(0.0) as usize >= total
    });
    assert!(
        ok,
        "sink saw {:?} of {total}\n{}",
        scrape_metric(s.metrics, "quill_sink_records_total", ""),
        s.daemon.stderr()
    );
    let out = s.out();
    assert!(s.daemon.stop().success());
    // Every message exactly once, in per-connection order.
    let mut seen = vec![vec![false; per_conn]; conns];
    let mut last = vec![None::<usize>; conns];
    let mut count = 0;
    for f in std::fs::read_dir(out.join("sys")).unwrap().flatten() {
        let text = std::fs::read_to_string(f.path()).unwrap();
        for line in text.lines() {
            let at = line.find("flood c=").expect("flood line");
            let c: usize = line[at + 8..at + 10].parse().unwrap();
            let n: usize = line[at + 13..at + 20].parse().unwrap();
            assert!(!seen[c][n], "duplicate c={c} n={n}");
            seen[c][n] = true;
            assert!(
                last[c].is_none_or(|l| l < n),
                "out of order on connection {c}"
            );
            last[c] = Some(n);
            count += 1;
        }
    }
    assert_eq!(count, total);
}

fn udp_flood(s: &Setup, count: usize, pace: Option<Duration>) -> (f64, f64, f64) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let payload = "x".repeat(200);
    let start = Instant::now();
    for i in 0..count {
        let msg = format!("<13>1 - h app - - - udp n={i:07} {payload}");
        // A full send buffer is not a loss on loopback: retry.
        while sock.send_to(msg.as_bytes(), ("127.0.0.1", s.port)).is_err() {
            std::thread::yield_now();
        }
        if let Some(p) = pace
            && i % 100 == 99
        {
            let target = p * (i as u32 + 1);
            if let Some(wait) = target.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    // Wait until the counters stop moving (published once a second).
    let read = || {
        (
            scrape_metric(s.metrics, "quill_source_records_total", "source=\"sys\"").unwrap_or(0.0),
            scrape_metric(
                s.metrics,
                "quill_source_kernel_dropped_total",
                "source=\"sys\"",
            )
            .unwrap_or(0.0),
            scrape_metric(
                s.metrics,
                "quill_source_dropped_journal_full_total",
                "source=\"sys\"",
            )
            .unwrap_or(0.0),
        )
    };
    let mut prev = read();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(2500));
        let now = read();
        if (now == prev && now.0 + now.1 + now.2 >= count as f64) || Instant::now() > deadline {
            return now;
        }
        prev = now;
    }
}

#[test]
fn udp_burst_every_datagram_is_received_or_counted() {
    let s = start("udp_receive_buffer = \"256KiB\"");
    let sent = 200_000;
    let (received, kernel, journal_full) = udp_flood(&s, sent, None);
    assert_eq!(
        received + kernel + journal_full,
        sent as f64,
        "received {received} + kernel drops {kernel} + journal full {journal_full} != sent {sent}"
    );
    // The status line reports the same figures.
    let entries = read_sink(&s.out()).len() as f64;
    assert!(s.daemon.stop().success());
    assert_eq!(entries, received);
}

#[test]
fn paced_udp_loses_nothing() {
    let s = start("");
    let sent = 20_000;
    // 20,000 datagrams/s.
    let (received, kernel, journal_full) = udp_flood(&s, sent, Some(Duration::from_micros(50)));
    assert_eq!((received, kernel, journal_full), (sent as f64, 0.0, 0.0));
    assert!(s.daemon.stop().success());
}

#[test]
fn hostile_clients_do_not_hurt_others() {
    let s = start("max_message_bytes = \"8KiB\"");
    let addr = ("127.0.0.1", s.port);
    // Random bytes.
    let mut garbage = TcpStream::connect(addr).unwrap();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let bytes: Vec<u8> = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let _ = garbage.write_all(&bytes);
    // An octet count of 2^40 and a frame that claims 9,999,999,999 bytes.
    let mut huge = TcpStream::connect(addr).unwrap();
    huge.write_all(b"1099511627776 <13>x").unwrap();
    let mut long_claim = TcpStream::connect(addr).unwrap();
    long_claim.write_all(b"9999999999 <13>").unwrap();
    long_claim.write_all(&vec![b'a'; 2 << 20]).unwrap();
    // Half a frame, then the peer closes: kept, flagged.
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"100 <13>1 - h app - - - half a frame")
        .unwrap();
    drop(half);
    // A client that only sends and never reads.
    let mut pusher = TcpStream::connect(addr).unwrap();
    for _ in 0..1000 {
        pusher.write_all(b"<13>1 - h app - - - pusher\n").unwrap();
    }
    // 10,000 idle connections.
    let mut idle = Vec::new();
    for _ in 0..10_000 {
        match TcpStream::connect(addr) {
            Ok(c) => idle.push(c),
            Err(e) => panic!("connection {} refused: {e}", idle.len()),
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    // A well-behaved sender still gets through, over TCP and UDP.
    let p = s.port.to_string();
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        &p,
        "-T",
        "--rfc5424=notime,notq,nohost",
        "-t",
        "ok",
        "still works tcp",
    ]);
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        &p,
        "-d",
        "--rfc5424=notime,notq,nohost",
        "-t",
        "ok",
        "still works udp",
    ]);
    let ok = wait_until(Duration::from_secs(15), || {
        let m = messages(&read_sink(&s.out()));
        m.iter().any(|m| m.ends_with("still works tcp"))
            && m.iter().any(|m| m.ends_with("still works udp"))
            && m.iter().filter(|m| m.ends_with("pusher")).count() == 1000
    });
    let rss = rss_kib(s.daemon.child.id());
    assert!(ok, "{}", s.daemon.stderr());
    assert!(
        rss < 400 * 1024,
        "RSS {rss} KiB with 10,000 idle connections"
    );
    let log = s.daemon.stderr();
    assert!(
        log.contains("malformed octet count \"1099511627776\""),
        "{log}"
    );
    let entries = read_sink(&s.out());
    assert!(
        entries
            .iter()
            .any(|e| e["short_message"].as_str() == Some("<13>1 - h app - - - half a frame")),
        "half frame kept"
    );
    // The over-long frame was kept, truncated to 8 KiB.
    assert!(entries.iter().any(|e| {
        e["short_message"]
            .as_str()
            .is_some_and(|m| m.starts_with("<13>aaaa") && m.len() == 8192)
    }));
    drop(idle);
    drop((garbage, huge, long_claim, pusher));
    assert!(s.daemon.stop().success());
}
