//! Waiting without sleeping longer than needed: poll a condition, wait for a port, wait for a
//! peer to close a connection.

use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Polls `check` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// Waits (at most 10 s) until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_port(port: u16) {
    wait_port_within(port, Duration::from_secs(10));
}

/// Waits (at most `timeout`) until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_port_within(port: u16, timeout: Duration) {
    assert!(
        wait_until(timeout, || TcpStream::connect(("127.0.0.1", port)).is_ok()),
        "port {port} never opened"
    );
}

/// Reads `s` until the peer closes it (at most 5 s) and returns what it sent first; fails
/// (naming `what`) when the connection is still open then. A reset counts as closed.
pub fn expect_closed(mut s: TcpStream, what: &str) -> Vec<u8> {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set_read_timeout");
    let mut got = Vec::new();
    if let Err(e) = s.read_to_end(&mut got) {
        assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{what}: connection still open after 5 s ({} bytes received)",
            got.len()
        );
    }
    got
}

/// A free TCP+UDP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind tcp");
        let port = tcp.local_addr().expect("addr").port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
