//! The daemon as systemd runs it: `Type=notify` messages on a `NOTIFY_SOCKET` the test creates
//! (READY=1 after start, WATCHDOG=1 pings at half of `WATCHDOG_USEC`, STOPPING=1 on SIGTERM),
//! and the operations endpoints beside `/metrics` (`/health/live`, `/health/ready`, `/status`,
//! `quill status`).

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn config(metrics: u16, syslog: u16) -> String {
    format!(
        r#"data_dir = "./data"
metrics_listen = "127.0.0.1:{metrics}"

[sources.sys]
type = "syslog"
udp = "127.0.0.1:{syslog}"

[sinks.out]
type = "file"
path = "./out"
"#
    )
}

/// Datagrams received within `timeout`, each as text.
fn receive(
    sock: &UnixDatagram,
    until: impl Fn(&[String]) -> bool,
    timeout: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while Instant::now() < deadline && !until(&got) {
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

#[test]
fn notifies_ready_watchdog_and_stopping_and_serves_health_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (metrics, syslog) = (free_port(), free_port());
    write_file(&root.join("quill.toml"), &config(metrics, syslog));
    let sock_path = root.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let stderr = std::fs::File::create(root.join("stderr.log")).unwrap();
    let mut child = Command::new(quill_bin())
        .args(["run", "-c"])
        .arg(root.join("quill.toml"))
        .current_dir(root)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(root.join("stderr.log")).unwrap_or_default();

    let got = receive(
        &sock,
        |g| {
            g.iter().any(|m| m.contains("READY=1"))
                && g.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3
        },
        Duration::from_secs(15),
    );
    assert!(
        got.iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "no READY=1: {got:?}\n{}",
        log()
    );
    let pings = got
        .iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count();
    assert!(pings >= 3, "watchdog pings: {got:?}");

    // Health and status beside /metrics.
    assert_eq!(http_get(metrics, "/health/live").0, 200);
    assert_eq!(http_get(metrics, "/health/ready").0, 200);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..5 {
        udp.send_to(
            format!("<14>Jan  1 00:00:00 h app: hello {i}").as_bytes(),
            ("127.0.0.1", syslog),
        )
        .unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(10), || {
            let (_, body) = http_get(metrics, "/status");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            v["sources"][0]["records"] == 5
                && v["sinks"][0]["state"] == "running"
                && v["ready"] == true
        }),
        "{}",
        http_get(metrics, "/status").1
    );
    // Metrics are published ten times a second.
    assert!(wait_until(Duration::from_secs(5), || http_get(
        metrics, "/metrics"
    )
    .1
    .contains("quill_source_records_total{source=\"sys\"} 5")));
    let (code, body) = http_get(metrics, "/metrics");
    assert_eq!(code, 200);
    assert!(
        body.contains("quill_source_records_total{source=\"sys\"} 5"),
        "{body}"
    );
    assert!(body.contains("quill_source_truncated_total"), "{body}");
    let out = Command::new(quill_bin())
        .args(["status", "-c"])
        .arg(root.join("quill.toml"))
        .current_dir(root)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("sink") && l.contains("out") && l.contains("running")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("source") && l.contains("sys")),
        "{table}"
    );

    // SIGTERM: STOPPING=1, then a clean exit.
    // SAFETY: kill(2) on the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let got = receive(
        &sock,
        |g| g.iter().any(|m| m.contains("STOPPING=1")),
        Duration::from_secs(15),
    );
    assert!(
        got.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "no STOPPING=1: {got:?}\n{}",
        log()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{}", log());
}
