//! Socket handover on reload, against the real binary: a syslog source with UDP and TCP on fixed
//! addresses (and, in the second test, a GELF source with UDP, TCP and HTTP beside a RELP, a
//! Scribe and a forward source) is changed by 10 reloads (SIGHUP) under load, only in an option
//! (`max_message_bytes`, `window`, `try_later_after`, `max_frame_size`), so each reload restarts
//! it. Its sockets are handed to the new instance: UDP received + counted drops = sent (an
//! unbound moment would lose datagrams uncounted), no UDP line twice, a TCP client connecting
//! every few milliseconds to each listener is never refused, no "address in use". Then a reload
//! moves the UDP port: the new port receives, the old one is closed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::support::*;

const RELOADS: usize = 10;

/// The settings both configs share: data, metrics, the file sink every source feeds.
fn common(metrics: u16) -> String {
    format!(
        "data_dir = \"./data\"\nhostname = \"h1\"\nmetrics_listen = \"127.0.0.1:{metrics}\"\n\
         status_interval = \"5s\"\n\n[sinks.out]\ntype = \"file\"\npath = \"./out\"\n"
    )
}

fn syslog_config(udp: u16, tcp: &[u16], metrics: u16, variant: usize) -> String {
    let max_message = ["64KiB", "32KiB"][variant];
    format!(
        r#"{}
[sources.s]
type = "syslog"
udp = "127.0.0.1:{udp}"
tcp = "127.0.0.1:{}"
format = "raw"
udp_receive_buffer = "8MiB"
max_message_bytes = "{max_message}"

"#,
        common(metrics),
        tcp[0]
    )
}

/// A GELF source (UDP `s`, TCP, HTTP) and RELP, Scribe and forward sources, all changed by
/// every reload.
fn listeners_config(udp: u16, tcp: &[u16], metrics: u16, variant: usize) -> String {
    let max_message = ["64KiB", "32KiB"][variant];
    let window = [128, 64][variant];
    let try_later = ["5s", "4s"][variant];
    let frame = ["16MiB", "8MiB"][variant];
    format!(
        r#"{}
[sources.s]
type = "gelf"
udp = "127.0.0.1:{udp}"
tcp = "127.0.0.1:{}"
http = "127.0.0.1:{}"
udp_receive_buffer = "8MiB"
max_message_bytes = "{max_message}"

[sources.relp]
type = "relp"
listen = "127.0.0.1:{}"
window = {window}

[sources.scribe]
type = "scribe"
listen = "127.0.0.1:{}"
try_later_after = "{try_later}"

[sources.fwd]
type = "forward"
listen = "127.0.0.1:{}"
max_frame_size = "{frame}"

"#,
        common(metrics),
        tcp[0],
        tcp[1],
        tcp[2],
        tcp[3],
        tcp[4]
    )
}

fn syslog_datagram(i: u64) -> String {
    format!("<14>Oct 11 22:14:15 h app: udp-{i}")
}

fn gelf_datagram(i: u64) -> String {
    format!(r#"{{"version":"1.1","host":"h","short_message":"udp-{i}"}}"#)
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
    scenario(syslog_config, syslog_datagram, 1);
}

#[test]
fn changed_gelf_relp_scribe_and_forward_sources_keep_their_sockets_across_reloads() {
    scenario(listeners_config, gelf_datagram, 5);
}

/// `config(udp, tcp ports, metrics port, variant)`: the config; reloads alternate the variant.
/// `datagram(i)`: the UDP message carrying token `udp-i`. `streams`: TCP listeners to probe.
fn scenario(
    config: fn(u16, &[u16], u16, usize) -> String,
    datagram: fn(u64) -> String,
    streams: usize,
) {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (udp, metrics) = (free_port(), free_port());
    let tcp: Vec<u16> = (0..streams).map(|_| free_port()).collect();
    replace_file(&root.join("quill.toml"), &config(udp, &tcp, metrics, 0));
    let daemon = Daemon::start(&root, &root.join("quill.toml"));
    assert!(
        wait_until(Duration::from_secs(20), || tcp
            .iter()
            .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())),
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
                    s.send_to(datagram(i).as_bytes(), ("127.0.0.1", udp))
                        .unwrap();
                    i += 1;
                }
                sent.store(i, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(25));
            }
        })
    };
    // TCP: a connection to each listener every 5 ms; a refused one means a port was unbound.
    let tcp_probe = {
        let (stop, refused, connects) = (stop.clone(), refused.clone(), connects.clone());
        let tcp = tcp.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for p in &tcp {
                    match std::net::TcpStream::connect(("127.0.0.1", *p)) {
                        Ok(_) => connects.fetch_add(1, Ordering::Relaxed),
                        Err(_) => refused.fetch_add(1, Ordering::Relaxed),
                    };
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    for n in 1..=RELOADS {
        std::thread::sleep(Duration::from_millis(1000));
        replace_file(&root.join("quill.toml"), &config(udp, &tcp, metrics, n % 2));
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
    replace_file(&root.join("quill.toml"), &config(moved, &tcp, metrics, 0));
    daemon.signal(libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(10), || daemon
        .stderr()
        .matches("Reloaded.")
        .count()
        > RELOADS));
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.send_to(
        datagram(1).replace("udp-1", "moved-1").as_bytes(),
        ("127.0.0.1", moved),
    )
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
