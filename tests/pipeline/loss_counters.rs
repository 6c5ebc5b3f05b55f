//! Losses are counted and exported: a syslog message longer than `max_message_bytes` counts in
//! `quill_source_truncated_total`, a connection over `max_connections` in
//! `quill_source_refused_connections_total`; both appear in `/status` and in `quill status`.

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn status_json(port: u16) -> serde_json::Value {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return serde_json::Value::Null; // not up yet
    };
    let mut text = String::new();
    if s.write_all(b"GET /status HTTP/1.0\r\nHost: x\r\n\r\n")
        .is_err()
        || s.read_to_string(&mut text).is_err()
    {
        return serde_json::Value::Null;
    }
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    serde_json::from_str(body).unwrap_or_default()
}

fn loss(v: &serde_json::Value, name: &str) -> u64 {
    v["sources"][0]["losses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l[0] == name)
        .and_then(|l| l[1].as_u64())
        .unwrap_or(0)
}

#[test]
fn truncated_messages_and_refused_connections_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (metrics, port) = (free_port(), free_port());
    write_file(
        &root.join("quill.toml"),
        &format!(
            r#"data_dir = "./data"
metrics_listen = "127.0.0.1:{metrics}"

[sources.sys]
type = "syslog"
udp = "127.0.0.1:{port}"
tcp = "127.0.0.1:{port}"
max_message_bytes = 100
max_connections = 1

[sinks.out]
type = "file"
path = "./out"
"#
        ),
    );
    let daemon = Daemon::start(root, &root.join("quill.toml"));
    assert!(
        wait_until(Duration::from_secs(10), || status_json(metrics)["ready"]
            == true),
        "{}",
        daemon.stderr()
    );
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let long = format!("<14>Jan  1 00:00:00 h app: {}", "x".repeat(500));
    for _ in 0..3 {
        udp.send_to(long.as_bytes(), ("127.0.0.1", port)).unwrap();
    }
    udp.send_to(b"<14>Jan  1 00:00:00 h app: short", ("127.0.0.1", port))
        .unwrap();
    // One connection holds the only slot; the next ones are refused.
    let mut first = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    first
        .write_all(b"<14>Jan  1 00:00:00 h app: held\n")
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        messages(&read_sink(&root.join("out")))
            .iter()
            .any(|m| m.contains("held"))
    }));
    for _ in 0..2 {
        let _ = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(10), || {
            let v = status_json(metrics);
            loss(&v, "truncated") == 3 && loss(&v, "refused_connections") == 2
        }),
        "{}\n{}",
        status_json(metrics),
        daemon.stderr()
    );
    assert!(wait_until(Duration::from_secs(5), || {
        scrape_metric(metrics, "quill_source_truncated_total", "source=\"sys\"") == Some(3.0)
            && scrape_metric(
                metrics,
                "quill_source_refused_connections_total",
                "source=\"sys\"",
            ) == Some(2.0)
    }));
    let out = Command::new(quill_bin())
        .args(["status", "--url", &format!("http://127.0.0.1:{metrics}")])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    assert!(
        table.contains("truncated=3") && table.contains("refused_connections=2"),
        "{table}"
    );
    drop(first);
    assert!(daemon.stop().success());
}
