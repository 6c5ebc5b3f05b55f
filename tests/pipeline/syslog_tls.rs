//! Syslog over TLS (RFC 5425) with certificates made by the real `openssl` tool, sent by
//! `openssl s_client`, with and without mutual TLS.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::support::*;

/// Sends `message` (LF framed) with `openssl s_client`, trusting `ca.pem` and presenting
/// `client.pem` when `client_cert`; returns whether s_client succeeded.
fn send(dir: &Path, port: u16, message: &str, client_cert: bool) -> bool {
    let client = client_cert.then_some(("client.pem", "client.key"));
    send_tls(dir, port, Path::new("ca.pem"), client, message)
}

fn start(dir: &Path, mutual: bool) -> (Daemon, u16) {
    let port = free_port();
    let ca = if mutual {
        "tls_client_ca = \"./ca.pem\"\n"
    } else {
        ""
    };
    write_file(
        &dir.join("q.toml"),
        &format!(
            "[sources.sec]\ntype = \"syslog\"\nformat = \"raw\"\ntls = \"127.0.0.1:{port}\"\ntls_cert = \"./server.pem\"\ntls_key = \"./server.key\"\n{ca}\n[sinks.out]\ntype = \"file\"\npath = \"./out\"\n"
        ),
    );
    let d = Daemon::start_listening(dir, &dir.join("q.toml"), port);
    (d, port)
}

#[test]
fn tls_syslog_arrives() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let (d, port) = start(dir.path(), false);
    assert!(send(
        dir.path(),
        port,
        "<13>1 - - app - - - over tls",
        false
    ));
    let out = dir.path().join("out");
    assert!(
        wait_until(Duration::from_secs(10), || messages(&read_sink(&out))
            .iter()
            .any(|m| m == "<13>1 - - app - - - over tls")),
        "{}",
        d.stderr()
    );
    // Plain text on the TLS port is a failed handshake for that peer only.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.write_all(b"<13>1 - - app - - - not tls\n").unwrap();
    drop(plain);
    assert!(
        wait_until(Duration::from_secs(5), || d
            .stderr()
            .contains("TLS handshake failed")),
        "{}",
        d.stderr()
    );
    assert!(
        !messages(&read_sink(&out))
            .iter()
            .any(|m| m.contains("not tls"))
    );
    assert!(d.stop().success());
}

#[test]
fn mutual_tls_requires_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let (d, port) = start(dir.path(), true);
    send(dir.path(), port, "<13>1 - - app - - - anonymous", false);
    assert!(send(
        dir.path(),
        port,
        "<13>1 - - app - - - with certificate",
        true
    ));
    let out = dir.path().join("out");
    assert!(
        wait_until(Duration::from_secs(10), || messages(&read_sink(&out))
            .iter()
            .any(|m| m.ends_with("with certificate"))),
        "{}",
        d.stderr()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !messages(&read_sink(&out))
            .iter()
            .any(|m| m.ends_with("anonymous")),
        "a client without a certificate was accepted"
    );
    assert!(
        d.stderr().contains("TLS handshake failed"),
        "{}",
        d.stderr()
    );
    assert!(d.stop().success());
}
