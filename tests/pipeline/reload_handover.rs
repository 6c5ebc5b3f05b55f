//! Socket handover on reload, against the real binary: a syslog source with UDP and TCP on fixed
//! addresses is changed by 10 reloads (SIGHUP) under load, only in an option
//! (`max_message_bytes`), so each reload restarts it. Its sockets are handed to the new instance:
//! UDP received + counted drops = sent (an unbound moment would lose datagrams uncounted), no
//! UDP line twice, a TCP client connecting every few milliseconds is never refused, no
//! "address in use". Then a reload moves the UDP port: the new port receives, the old one is
//! closed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::support::*;

const RELOADS: usize = 10;

fn config(udp: u16, tcp: u16, metrics: u16, max_message: &str) -> String {
    format!(
        r#"data_dir = "./data"
hostname = "h1"
metrics_listen = "127.0.0.1:{metrics}"
status_interval = "5s"

[sources.s]
type = "syslog"
udp = "127.0.0.1:{udp}"
tcp = "127.0.0.1:{tcp}"
format = "raw"
udp_receive_buffer = "8MiB"
max_message_bytes = "{max_message}"

[sinks.out]
type = "file"
path = "./out"
"#
    )
}

fn write_config(root: &Path, text: &str) {
    let tmp = root.join("quill.toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, root.join("quill.toml")).unwrap();
}

/// How often each `udp-N` token arrived.
fn udp_tokens(root: &Path) -> HashMap<u64, u32> {
    let mut out = HashMap::new();
    for m in messages(&read_sink(&root.join("out"))) {
        if let Some(n) = m.rsplit(' ').next().and_then(|t| t.strip_prefix("udp-")) {
            *out.entry(n.parse().unwrap()).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn a_changed_syslog_source_keeps_its_sockets_across_reloads() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (udp, tcp, metrics) = (free_port(), free_port(), free_port());
    let sizes = ["64KiB", "32KiB"];
    write_config(&root, &config(udp, tcp, metrics, sizes[0]));
    let daemon = Daemon::start(&root, &root.join("quill.toml"));
    assert!(
        wait_until(Duration::from_secs(20), || std::net::TcpStream::connect((
            "127.0.0.1",
            tcp
        ))
        .is_ok()),
        "{}",
        daemon.stderr()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let connects = Arc::new(AtomicU64::new(0));
    // UDP: 100 datagrams every 25 ms (~4000/s).
    let udp_writer = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..100 {
                    let line = format!("<14>Oct 11 22:14:15 h app: udp-{i}");
                    s.send_to(line.as_bytes(), ("127.0.0.1", udp)).unwrap();
                    i += 1;
                }
                sent.store(i, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };
    // TCP: a connection every 5 ms; a refused one means the port was unbound.
    let tcp_probe = {
        let (stop, refused, connects) = (stop.clone(), refused.clone(), connects.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match std::net::TcpStream::connect(("127.0.0.1", tcp)) {
                    Ok(_) => connects.fetch_add(1, Ordering::Relaxed),
                    Err(_) => refused.fetch_add(1, Ordering::Relaxed),
                };
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    for n in 1..=RELOADS {
        std::thread::sleep(Duration::from_millis(1000));
        write_config(&root, &config(udp, tcp, metrics, sizes[n % 2]));
        daemon.signal(libc::SIGHUP);
        assert!(
            wait_until(Duration::from_secs(10), || daemon
                .stderr()
                .matches("Reloaded.")
                .count()
                >= n),
            "reload {n} did not apply\n{}",
            daemon.stderr()
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    udp_writer.join().unwrap();
    tcp_probe.join().unwrap();
    let sent = sent.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(1500));
    let metric = |name: &str| scrape_metric(metrics, name, "source=\"s\"").map_or(0, |v| v as u64);
    let dropped = metric("quill_source_kernel_dropped_total")
        + metric("quill_source_dropped_journal_full_total");

    // A reload that moves the UDP port: the new port receives, the old one no longer does.
    let moved = free_port();
    write_config(&root, &config(moved, tcp, metrics, sizes[0]));
    daemon.signal(libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(10), || daemon
        .stderr()
        .matches("Reloaded.")
        .count()
        > RELOADS));
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.send_to(b"<14>Oct 11 22:14:15 h app: moved-1", ("127.0.0.1", moved))
        .unwrap();
    let old_port_bound = std::net::UdpSocket::bind(("127.0.0.1", udp)).is_err();

    let stderr = daemon.stderr();
    let exit = daemon.stop();
    assert!(exit.success(), "{stderr}");
    assert!(
        !old_port_bound,
        "the old UDP port is still bound after the move\n{stderr}"
    );
    assert!(
        messages(&read_sink(&root.join("out")))
            .iter()
            .any(|m| m.ends_with("moved-1")),
        "nothing arrived on the moved port\n{stderr}"
    );

    let lower = stderr.to_lowercase();
    assert!(!lower.contains("address in use"), "{stderr}");
    assert!(!lower.contains("could not start"), "{stderr}");
    assert_eq!(
        stderr.matches("the UDP socket is handed over").count(),
        RELOADS,
        "{stderr}"
    );
    let refused = refused.load(Ordering::Relaxed);
    let connects = connects.load(Ordering::Relaxed);
    assert!(
        connects > 100,
        "the TCP probe connected only {connects} times"
    );
    assert_eq!(
        refused, 0,
        "TCP connections refused during reloads\n{stderr}"
    );

    let got = udp_tokens(&root);
    assert!(got.values().all(|c| *c == 1), "a UDP line written twice");
    assert!(got.keys().all(|n| *n < sent));
    let received = got.len() as u64;
    eprintln!(
        "handover: {RELOADS} reloads, UDP sent {sent}, received {received}, counted drops {dropped}; TCP {connects} connects, {refused} refused"
    );
    assert_eq!(
        received + dropped,
        sent,
        "UDP: received {received} + dropped {dropped} != sent {sent}"
    );
}
