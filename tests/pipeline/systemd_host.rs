//! The daemon as systemd runs it: `Type=notify` messages on a `NOTIFY_SOCKET` the test creates
//! (READY=1 after start, WATCHDOG=1 pings at half of `WATCHDOG_USEC`, RELOADING=1 then READY=1
//! around a SIGHUP reload, STOPPING=1 on SIGTERM),
//! and the operations endpoints beside `/metrics` (`/health/live`, `/health/ready`, `/status`,
//! `quill status`).

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

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
fn notifies_ready_watchdog_reloading_and_stopping_and_serves_health_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (metrics, syslog) = (free_port(), free_port());
    write_file(&root.join("quill.toml"), &config(metrics, syslog));
    let sock_path = root.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let mut cmd = Command::new(quill_bin());
    cmd.args(["run", "-c"])
        .arg(root.join("quill.toml"))
        .current_dir(root)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000");
    let mut d = Daemon::spawn(root, cmd);
    let stderr_path = d.stderr_path.clone();
    let log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();

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

    // SIGHUP: RELOADING=1 (with MONOTONIC_USEC, as `Type=notify-reload` wants), then READY=1
    // once the reload is applied, in that order.
    d.signal(libc::SIGHUP);
    let reloading = |m: &String| m.lines().any(|l| l == "RELOADING=1");
    let got = receive(
        &sock,
        |g| {
            g.iter()
                .position(reloading)
                .is_some_and(|i| g[i..].iter().any(|m| m.lines().any(|l| l == "READY=1")))
        },
        Duration::from_secs(15),
    );
    let at = got
        .iter()
        .position(reloading)
        .unwrap_or_else(|| panic!("no RELOADING=1: {got:?}\n{}", log()));
    assert!(
        got[at].lines().any(|l| l.starts_with("MONOTONIC_USEC=")
            && l["MONOTONIC_USEC=".len()..]
                .parse::<u64>()
                .is_ok_and(|v| v > 0)),
        "RELOADING=1 without MONOTONIC_USEC: {got:?}"
    );
    assert!(
        !got[..at].iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "READY=1 before RELOADING=1: {got:?}"
    );
    assert!(
        got[at..].iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "no READY=1 after RELOADING=1: {got:?}\n{}",
        log()
    );
    assert!(log().contains("Reloaded."), "{}", log());
    // Still serving after the reload.
    assert_eq!(http_get(metrics, "/health/ready").0, 200);

    // SIGTERM: STOPPING=1, then a clean exit.
    d.signal(libc::SIGTERM);
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
    let status = d.child.wait().unwrap();
    assert!(status.success(), "{}", log());
}

fn syslog_config(udp: &str, tcp: &str, extra: &str) -> String {
    format!(
        r#"data_dir = "./data"
{extra}

[sources.sys]
type = "syslog"
udp = "{udp}"
tcp = "{tcp}"
category = "sys"

[sinks.out]
type = "file"
path = "./out"
"#
    )
}

#[test]
fn takes_the_syslog_sockets_systemd_passes() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // The test holds both sockets, as systemd would: quill cannot bind them itself.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
    write_file(
        &root.join("quill.toml"),
        &syslog_config(&udp_addr.to_string(), &tcp_addr.to_string(), ""),
    );
    let (ufd, tfd) = (udp.as_raw_fd(), tcp.as_raw_fd());
    // LISTEN_PID must be the pid quill runs as: sh sets it to its own and execs quill.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\""])
        .arg(quill_bin())
        .args(["run", "-c"])
        .arg(root.join("quill.toml"))
        .current_dir(root)
        .env("LISTEN_FDS", "2")
        .env("LISTEN_FDNAMES", "sys-udp:sys-tcp");
    // SAFETY: between fork and exec only dup/dup2 run in the child.
    unsafe {
        cmd.pre_exec(move || {
            // Move the sockets to fds 3 and 4 (via high numbers, in case they are 3/4 already).
            let (u, t) = (libc::dup(ufd), libc::dup(tfd));
            if libc::dup2(u, 3) < 0 || libc::dup2(t, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut d = Daemon::spawn(root, cmd);
    let stderr_path = d.stderr_path.clone();
    let log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut stream = None;
    assert!(
        wait_until(Duration::from_secs(15), || {
            sender
                .send_to(b"<14>Jan  1 00:00:00 h app: over udp", udp_addr)
                .unwrap();
            if stream.is_none() {
                stream = std::net::TcpStream::connect(tcp_addr).ok().map(|mut s| {
                    s.write_all(b"<14>Jan  1 00:00:00 h app: over tcp\n")
                        .unwrap();
                    s
                });
            }
            let got = messages(&read_sink(&root.join("out")));
            got.iter().any(|m| m.contains("over udp")) && got.iter().any(|m| m.contains("over tcp"))
        }),
        "nothing arrived over the passed sockets\n{}",
        log()
    );
    assert!(
        log().contains("Using the socket passed by the service manager"),
        "{}",
        log()
    );
    drop(stream);
    d.signal(libc::SIGTERM);
    assert!(d.child.wait().unwrap().success(), "{}", log());
}

/// Also: a reload that changes the source keeps port 514 although Quill is no longer root.
#[test]
fn binds_port_514_as_root_then_runs_as_nobody() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test needs root (CI runs it as root)"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_file(
        &root.join("quill.toml"),
        &syslog_config(
            "127.0.0.1:514",
            "127.0.0.1:514",
            "user = \"nobody\"\ngroup = \"nogroup\"",
        ),
    );
    let mut daemon = Daemon::start(root, &root.join("quill.toml"));
    let pid = daemon.child.id();
    let uid_line = || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(15), || uid_line()
            == "65534 65534 65534 65534"),
        "Uid: {} (quill did not drop root)\n{}",
        uid_line(),
        daemon.stderr()
    );
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "{}",
        daemon.stderr()
    );
    // Real logger(1), over UDP and TCP to port 514.
    assert!(
        logger_to_514_arrives(root, "dropped"),
        "messages did not arrive after dropping root\n{}",
        daemon.stderr()
    );
    // A reload that changes the source (not its address) while running as nobody: the new
    // instance cannot bind port 514 itself; it takes over the sockets (handover) and receives.
    let changed = syslog_config(
        "127.0.0.1:514",
        "127.0.0.1:514",
        "user = \"nobody\"\ngroup = \"nogroup\"",
    )
    .replace(
        "category = \"sys\"",
        "category = \"sys\"\nmax_message_bytes = \"32KiB\"",
    );
    write_file(&root.join("quill.toml"), &changed);
    daemon.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(15), || daemon
            .stderr()
            .contains("Reloaded.")),
        "{}",
        daemon.stderr()
    );
    let stderr = daemon.stderr();
    assert!(!stderr.contains("could not start"), "{stderr}");
    assert!(stderr.contains("the UDP socket is handed over"), "{stderr}");
    assert!(
        logger_to_514_arrives(root, "reloaded"),
        "messages did not arrive after a reload as nobody\n{}",
        daemon.stderr()
    );
    let meta = std::fs::metadata(root.join("data/journal")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 65534);
    assert!(daemon.stop().success());
}

/// Sends `<tag> udp` and `<tag> tcp` with the real logger(1) to port 514; whether both reach the
/// file sink under `root/out` within 15 s.
fn logger_to_514_arrives(root: &std::path::Path, tag: &str) -> bool {
    for flag in ["udp", "tcp"] {
        logger(&[
            "--server",
            "127.0.0.1",
            "--port",
            "514",
            &format!("--{flag}"),
            &format!("{tag} {flag}"),
        ]);
    }
    wait_until(Duration::from_secs(15), || {
        let got = messages(&read_sink(&root.join("out")));
        ["udp", "tcp"]
            .iter()
            .all(|f| got.iter().any(|m| m.contains(&format!("{tag} {f}"))))
    })
}
