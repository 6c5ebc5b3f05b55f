//! The syslog source against real senders: util-linux `logger`, rsyslog's omfwd, HAProxy 2.6
//! (bounded floods and hostile clients are in `syslog_load`). Every test starts the real `quill`
//! binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

pub(crate) struct Setup {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) root: std::path::PathBuf,
    pub(crate) port: u16,
    pub(crate) metrics: u16,
    pub(crate) daemon: Daemon,
}

impl Setup {
    pub(crate) fn out(&self) -> std::path::PathBuf {
        self.root.join("out")
    }
}

/// Starts quill with a syslog source on UDP+TCP (same port), unix sockets and a file sink.
pub(crate) fn start(extra_source_keys: &str) -> Setup {
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
    wait_port(front);
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
