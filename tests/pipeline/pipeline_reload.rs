//! Reload under load, against the real binary: TCP, UDP and file traffic for over 60 s while 20
//! reloads (SIGHUP and `quill reload`) alternate two configs that add and remove a sink, change
//! a sink's filter and move a source to another port. Every sink present throughout has every
//! line exactly once; for UDP, received + counted drops = sent. Also: a bind failure exits 2
//! naming the component and address; a bad config on reload keeps the running one.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

struct Ports {
    udp: u16,
    tcp: u16,
    moving: [u16; 2],
    metrics: u16,
}

/// Config `which` (0 or 1): 1 adds sink `extra`, widens `picky`'s inputs and moves `moving`.
fn config(ports: &Ports, which: usize) -> String {
    let picky_inputs = if which == 0 {
        r#"["file"]"#
    } else {
        r#"["file", "tc*"]"#
    };
    let extra = if which == 1 {
        "[sinks.extra]\ntype = \"file\"\npath = \"./extra\"\ninputs = [\"udp\"]\n"
    } else {
        ""
    };
    format!(
        r#"data_dir = "./data"
hostname = "h1"
metrics_listen = "127.0.0.1:{metrics}"
status_interval = "5s"

[sources.udp]
type = "syslog"
udp = "127.0.0.1:{udp}"
format = "raw"
udp_receive_buffer = "8MiB"

[sources.tcp]
type = "syslog"
tcp = "127.0.0.1:{tcp}"
format = "raw"

[sources.moving]
type = "syslog"
tcp = "127.0.0.1:{moving}"
format = "raw"

[sources.file]
type = "file"
include = ["./in/*.log"]
format = "raw"
poll_interval = "50ms"

[sinks.all]
type = "file"
path = "./all"

[sinks.picky]
type = "file"
path = "./picky"
inputs = {picky_inputs}

{extra}"#,
        metrics = ports.metrics,
        udp = ports.udp,
        tcp = ports.tcp,
        moving = ports.moving[which],
    )
}

/// Counts of each `kind-N` token in a sink's messages.
fn tokens(root: &Path) -> HashMap<String, u32> {
    let mut out = HashMap::new();
    for m in messages(&read_sink(root)) {
        let token = m.rsplit(' ').next().unwrap_or("").to_string();
        *out.entry(token).or_insert(0) += 1;
    }
    out
}

fn assert_exactly_once(counts: &HashMap<String, u32>, kind: &str, n: u64, sink: &str) {
    let mut missing = 0;
    for i in 0..n {
        match counts.get(&format!("{kind}-{i}")) {
            Some(1) => {}
            Some(c) => panic!("sink {sink}: {kind}-{i} written {c} times"),
            None => missing += 1,
        }
    }
    assert_eq!(
        missing, 0,
        "sink {sink}: {missing} of {n} {kind} lines missing"
    );
}

fn wait_for(addr: (&str, u16), timeout: Duration) -> bool {
    wait_until(timeout, || std::net::TcpStream::connect(addr).is_ok())
}

#[test]
fn reload_under_load_loses_and_duplicates_nothing() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("in")).unwrap();
    let ports = Ports {
        udp: free_port(),
        tcp: free_port(),
        moving: [free_port(), free_port()],
        metrics: free_port(),
    };
    replace_file(&root.join("quill.toml"), &config(&ports, 0));
    let daemon = Daemon::start(&root, &root.join("quill.toml"));
    assert!(
        wait_for(("127.0.0.1", ports.tcp), Duration::from_secs(20)),
        "{}",
        daemon.stderr()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let sent: [Arc<AtomicU64>; 3] = Default::default();
    let mut writers = Vec::new();
    // TCP: LF-framed syslog lines, 500/s.
    {
        let (stop, sent, port) = (stop.clone(), sent[0].clone(), ports.tcp);
        writers.push(std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..50 {
                    writeln!(s, "<14>Oct 11 22:14:15 h app: tcp-{i}").unwrap();
                    i += 1;
                }
                sent.store(i, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    // UDP: 500/s.
    {
        let (stop, sent, port) = (stop.clone(), sent[1].clone(), ports.udp);
        writers.push(std::thread::spawn(move || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..50 {
                    let line = format!("<14>Oct 11 22:14:15 h app: udp-{i}");
                    s.send_to(line.as_bytes(), ("127.0.0.1", port)).unwrap();
                    i += 1;
                }
                sent.store(i, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    // File: appended, 500/s.
    {
        let (stop, sent, path) = (stop.clone(), sent[2].clone(), root.join("in/app.log"));
        writers.push(std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut chunk = String::new();
                for _ in 0..50 {
                    chunk.push_str(&format!("line file-{i}\n"));
                    i += 1;
                }
                f.write_all(chunk.as_bytes()).unwrap();
                sent.store(i, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }

    // 20 reloads over ~62 s, alternating configs and the two ways to ask.
    let started = Instant::now();
    for n in 1..=20 {
        std::thread::sleep(Duration::from_millis(3100));
        let which = n % 2;
        replace_file(&root.join("quill.toml"), &config(&ports, which));
        if n % 4 == 0 {
            let out = std::process::Command::new(quill_bin())
                .args(["reload", "-c", "quill.toml"])
                .current_dir(&root)
                .output()
                .unwrap();
            assert!(out.status.success(), "quill reload: {out:?}");
        } else {
            daemon.signal(libc::SIGHUP);
        }
        // The moved source listens on its new port.
        assert!(
            wait_for(("127.0.0.1", ports.moving[which]), Duration::from_secs(15)),
            "reload {n}: moving source not on its new port\n{}",
            daemon.stderr()
        );
    }
    assert!(started.elapsed() >= Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let [tcp_sent, udp_sent, file_sent] = sent.map(|s| s.load(Ordering::Relaxed));

    // Let the file source read to the end, then read the UDP counters before stopping.
    assert!(
        wait_until(Duration::from_secs(30), || {
            scrape_metric(
                ports.metrics,
                "quill_source_records_total",
                "source=\"file\"",
            )
            .is_some_and(|v| v as u64 >= file_sent)
                && scrape_metric(
                    ports.metrics,
                    "quill_source_records_total",
                    "source=\"tcp\"",
                )
                .is_some_and(|v| v as u64 >= tcp_sent)
        }),
        "sources did not catch up\n{}",
        daemon.stderr()
    );
    std::thread::sleep(Duration::from_millis(500));
    let metric =
        |name: &str| scrape_metric(ports.metrics, name, "source=\"udp\"").map_or(0, |v| v as u64);
    let udp_dropped = metric("quill_source_kernel_dropped_total")
        + metric("quill_source_dropped_journal_full_total");
    let stderr_before_stop = daemon.stderr();
    let status = daemon.stop();
    assert!(status.success(), "{status:?}\n{stderr_before_stop}");
    let stderr = std::fs::read_to_string(
        std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("quill-stderr"))
            .unwrap()
            .path(),
    )
    .unwrap();
    assert_eq!(
        stderr.matches("Reloaded.").count(),
        20,
        "every reload applied\n{stderr}"
    );
    assert!(
        !root.join("data/quill.pid").exists(),
        "pid file removed at exit"
    );

    let all = tokens(&root.join("all"));
    assert_exactly_once(&all, "tcp", tcp_sent, "all");
    assert_exactly_once(&all, "file", file_sent, "all");
    let udp_received = (0..udp_sent)
        .filter(|i| all.contains_key(&format!("udp-{i}")))
        .count() as u64;
    assert!(
        all.iter()
            .filter(|(k, _)| k.starts_with("udp-"))
            .all(|(_, c)| *c == 1),
        "a UDP line written twice"
    );
    assert_eq!(
        udp_received + udp_dropped,
        udp_sent,
        "UDP: received {udp_received} + dropped {udp_dropped} != sent {udp_sent}"
    );
    assert_eq!(all.len() as u64, tcp_sent + file_sent + udp_received);

    // `picky` was present throughout with a changing filter: every file line exactly once,
    // every TCP line at most once, no UDP line.
    let picky = tokens(&root.join("picky"));
    assert_exactly_once(&picky, "file", file_sent, "picky");
    assert!(
        picky.values().all(|c| *c == 1),
        "picky: a line written twice"
    );
    assert!(
        !picky.keys().any(|k| k.starts_with("udp-")),
        "picky took UDP"
    );
    let picky_tcp = picky.keys().filter(|k| k.starts_with("tcp-")).count();
    assert!(
        picky_tcp > 0,
        "picky never took TCP while its filter allowed it"
    );
    // `extra` existed half the time and took only UDP.
    let extra = tokens(&root.join("extra"));
    assert!(!extra.is_empty() && extra.keys().all(|k| k.starts_with("udp-")));
    assert!(extra.values().all(|c| *c == 1));
}

#[test]
fn bind_failure_exits_2_naming_the_source_and_address() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let free = free_port();
    write_file(
        &root.join("quill.toml"),
        &format!(
            r#"data_dir = "./data"
[sources.first]
type = "syslog"
udp = "127.0.0.1:{free}"
[sources.second]
type = "syslog"
tcp = "127.0.0.1:{port}"
[sinks.out]
type = "file"
path = "./out"
"#
        ),
    );
    let out = std::process::Command::new(quill_bin())
        .args(["run", "-c", "quill.toml"])
        .current_dir(root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "source `second`: cannot listen on tcp 127.0.0.1:{port}"
        )),
        "{stderr}"
    );
    // Nothing started: no sink output, no pid file.
    assert!(!root.join("out").exists(), "{stderr}");
    assert!(!root.join("data/quill.pid").exists());
}

#[test]
fn a_bad_config_on_reload_keeps_the_running_one() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let port = free_port();
    let good = format!(
        "data_dir = \"./data\"\n[sources.s]\ntype = \"syslog\"\ntcp = \"127.0.0.1:{port}\"\nformat = \"raw\"\n[sinks.out]\ntype = \"file\"\npath = \"./out\"\n"
    );
    replace_file(&root.join("quill.toml"), &good);
    let daemon = Daemon::start(&root, &root.join("quill.toml"));
    assert!(wait_for(("127.0.0.1", port), Duration::from_secs(20)));
    replace_file(
        &root.join("quill.toml"),
        &good.replace(
            "path = \"./out\"",
            "path = \"./out\"\nmin_severity = \"loud\"",
        ),
    );
    // `quill reload` checks the config first and refuses.
    let out = std::process::Command::new(quill_bin())
        .args(["reload", "-c", "quill.toml"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("quill.toml:9: sinks.out.min_severity"));
    // SIGHUP re-reads it, logs why and keeps running.
    daemon.signal(libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(10), || daemon
        .stderr()
        .contains("Reload failed, the running config stays")));
    let stderr = daemon.stderr();
    assert!(
        stderr.contains("quill.toml:9: sinks.out.min_severity"),
        "{stderr}"
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    writeln!(s, "still here").unwrap();
    drop(s);
    assert!(wait_until(Duration::from_secs(10), || messages(
        &read_sink(&root.join("out"))
    )
    .contains(&"still here".to_string())));
    assert!(daemon.stop().success());
}

/// `openssl s_client` against `port`, trusting only `ca`; true when the handshake verified.
fn tls_verifies(dir: &Path, port: u16, ca: &Path) -> bool {
    send_tls(dir, port, ca, None, "<14>Oct 11 22:14:15 h app: tls-line")
}

#[test]
fn a_reload_rereads_a_changed_tls_certificate() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (old, new) = (root.join("pki-old"), root.join("pki-new"));
    for d in [&old, &new] {
        std::fs::create_dir_all(d).unwrap();
        make_pki(d);
    }
    std::fs::create_dir_all(root.join("tls")).unwrap();
    let install = |from: &Path| {
        for f in ["server.pem", "server.key"] {
            std::fs::copy(from.join(f), root.join("tls").join(f)).unwrap();
        }
    };
    install(&old);
    let port = free_port();
    replace_file(
        &root.join("quill.toml"),
        &format!(
            "data_dir = \"./data\"\n[sources.sec]\ntype = \"syslog\"\nformat = \"raw\"\ntls = \"127.0.0.1:{port}\"\ntls_cert = \"./tls/server.pem\"\ntls_key = \"./tls/server.key\"\n[sinks.out]\ntype = \"file\"\npath = \"./out\"\n"
        ),
    );
    let daemon = Daemon::start(&root, &root.join("quill.toml"));
    assert!(
        wait_for(("127.0.0.1", port), Duration::from_secs(20)),
        "{}",
        daemon.stderr()
    );
    assert!(tls_verifies(&root, port, &old.join("ca.pem")));
    assert!(!tls_verifies(&root, port, &new.join("ca.pem")));
    // Same config text, new certificate files: the source counts as changed.
    install(&new);
    daemon.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(15), || daemon
            .stderr()
            .contains("sources=~sec")),
        "{}",
        daemon.stderr()
    );
    assert!(wait_for(("127.0.0.1", port), Duration::from_secs(10)));
    assert!(
        tls_verifies(&root, port, &new.join("ca.pem")),
        "{}",
        daemon.stderr()
    );
    assert!(!tls_verifies(&root, port, &old.join("ca.pem")));
    assert!(daemon.stop().success());
    let lines = messages(&read_sink(&root.join("out")));
    assert!(
        lines.iter().filter(|l| l.ends_with("tls-line")).count() >= 2,
        "{lines:?}"
    );
}
