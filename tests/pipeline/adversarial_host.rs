//! Attacks on the host side of a real `quill` process: idle syslog connections under a small
//! descriptor limit (alone and over two listeners), a symlink escape, a glob over Quill's own
//! journal, and SIGTERM on a full disk. As in `adversarial`: the daemon stays up, its memory
//! stays bounded, and a legitimate sender keeps flowing during the attack.

use std::io::Write;
use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::adversarial::{alive, connect_from, peak_rss_mib, raise_own_nofile};
use crate::support::*;

#[test]
fn idle_syslog_connections_under_a_small_descriptor_limit() {
    let log = idle_connections_attack("");
    assert!(log.contains("`max_connections` lowered to 64"), "{log}");
}

/// Two TCP listeners (syslog and GELF) asking for 1,000 connections each under a 128-descriptor
/// limit: together they are lowered to what fits beside the reserve (32 each), so 400 idle
/// connections (200 on each) cannot starve the journal (segment rolls), the file sink or UDP.
#[test]
fn idle_connections_on_two_listeners_fit_under_the_descriptor_limit_together() {
    let gelf = free_port();
    let log = idle_connections_attack(&format!(
        "[sources.gl]\ntype = \"gelf\"\ntcp = \"127.0.0.1:{gelf}\"\nmax_connections = 1000\n"
    ));
    for source in ["sys", "gl"] {
        assert!(
            log.lines()
                .any(|l| l.contains("`max_connections` lowered to 32")
                    && l.contains("all listeners together ask for 2000")
                    && l.contains(&format!("component={source}"))),
            "{source}: {log}"
        );
    }
}

/// A syslog source (UDP + TCP, `max_connections = 1000`) plus `more_sources` (TOML) under a
/// 128-descriptor limit; 200 idle connections on every TCP port of the config. UDP keeps
/// flowing, the journal keeps rolling, nothing runs out of descriptors, RSS stays bounded.
/// Returns the daemon's log.
fn idle_connections_attack(more_sources: &str) -> String {
    let _alone = alone();
    raise_own_nofile();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (tcp, udp) = (free_port(), free_port());
    let cfg = root.join("syslog.toml");
    let text = format!(
        r#"data_dir = "./data"
hostname = "h"
status_interval = "1s"

[journal]
segment_size = "64KiB"

[sources.sys]
type = "syslog"
udp = "127.0.0.1:{udp}"
tcp = "127.0.0.1:{tcp}"
max_connections = 1000

{more_sources}
[sinks.out]
type = "file"
path = "./agg-out"
"#
    );
    write_file(&cfg, &text);
    let ports: Vec<u16> = std::iter::once(tcp)
        .chain(text.lines().filter_map(|l| {
            l.strip_prefix("tcp = \"127.0.0.1:")?
                .strip_suffix('"')?
                .parse()
                .ok()
        }))
        .collect::<std::collections::BTreeSet<u16>>()
        .into_iter()
        .collect();
    let mut d = spawn_with_nofile(root, &cfg, 128);
    let mut idle = Vec::new();
    for &port in &ports {
        wait_port(port);
        idle.extend(idle_connections(port, 200));
    }
    udp_flows_and_journal_rolls(root, udp);
    assert!(alive(&mut d));
    let log = d.stderr();
    assert!(!log.contains("Too many open files"), "{log}");
    let peak = peak_rss_mib(d.child.id());
    assert!(peak < 200, "peak RSS {peak} MiB");
    drop(idle);
    assert!(d.stop().success());
    log
}

/// `quill run -c cfg` in `root` with its descriptor limit (soft and hard) set to `limit`.
fn spawn_with_nofile(root: &Path, cfg: &Path, limit: u64) -> Daemon {
    let mut cmd = Command::new(quill_bin());
    cmd.args(["run", "-c"])
        .arg(cfg)
        .current_dir(root)
        .env("QUILL_LOG", "info");
    // SAFETY: setrlimit is async-signal-safe; it runs in the child between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Daemon::spawn(root, cmd)
}

/// `n` connections from 127.0.0.2 to `port` that never send anything.
fn idle_connections(port: u16, n: usize) -> Vec<TcpStream> {
    let idle = (0..n)
        .filter_map(|_| connect_from(Ipv4Addr::new(127, 0, 0, 2), port).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    idle
}

/// 5,000 UDP syslog messages of ~450 bytes all reach the file sink (the journal rolls its
/// 64 KiB segments ~35 times meanwhile).
fn udp_flows_and_journal_rolls(root: &Path, udp: u16) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let pad = "x".repeat(400);
    for n in 0..5000 {
        let msg = format!("<13>Jan  1 00:00:00 h app: legit {n} {pad}");
        sock.send_to(msg.as_bytes(), ("127.0.0.1", udp)).unwrap();
        if n % 200 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let out = root.join("agg-out");
    let count = || {
        messages(&read_sink(&out))
            .iter()
            .filter(|m| m.contains("legit "))
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(15), || count() >= 5000),
        "only {} of 5000 UDP records arrived",
        count()
    );
    // The journal rolled: its newest segment starts far past the first record.
    let newest = std::fs::read_dir(root.join("data/journal"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".qjs")?
                .parse::<u64>()
                .ok()
        })
        .max();
    assert!(
        newest.is_some_and(|n| n > 1000),
        "no segment roll: {newest:?}"
    );
}

#[test]
fn a_symlink_to_a_secret_is_not_tailed() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_file(
        &root.join("secret/shadow"),
        "root:SECRET-HASH:19000:0:99999:7:::\n",
    );
    write_file(&root.join("logs/app.log"), "legit 0\nlegit 1\n");
    std::os::unix::fs::symlink(root.join("secret/shadow"), root.join("logs/evil.log")).unwrap();
    let cfg = root.join("f.toml");
    write_file(
        &cfg,
        r#"data_dir = "./data"
hostname = "h"

[sources.app]
type = "file"
include = ["logs/*.log"]
format = "raw"
read_from = "beginning"
poll_interval = "20ms"

[sinks.out]
type = "file"
path = "./agg-out"
"#,
    );
    let mut d = Daemon::start(root, &cfg);
    let out = root.join("agg-out");
    assert!(wait_until(Duration::from_secs(10), || messages(
        &read_sink(&out)
    )
    .len()
        >= 2));
    std::thread::sleep(Duration::from_millis(500));
    let got = messages(&read_sink(&out));
    assert_eq!(got, ["legit 0", "legit 1"]);
    assert!(alive(&mut d));
    let log = d.stderr();
    assert!(
        log.contains("evil.log") && log.contains("follow_symlinks"),
        "{log}"
    );
    assert!(d.stop().success());
}

#[test]
fn a_glob_over_the_journal_or_an_output_is_refused() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (glob, what) in [
        ("./data/**/*", "the journal"),
        ("data/journal/*", "the journal"),
        ("out/*/*", "the output of sink `out`"),
    ] {
        let cfg = root.join("g.toml");
        write_file(
            &cfg,
            &format!(
                "data_dir = \"./data\"\n\n[sources.self]\ntype = \"file\"\ninclude = [\"{glob}\"]\n\n[sinks.out]\ntype = \"file\"\npath = \"./out\"\n"
            ),
        );
        for cmd in ["validate", "run"] {
            let out = Command::new(quill_bin())
                .args([cmd, "-c"])
                .arg(&cfg)
                .current_dir(root)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd} {glob}: {err}");
            assert!(
                err.contains("g.toml:5: sources.self.include") && err.contains(what),
                "{cmd} {glob}: {err}"
            );
        }
    }
    assert!(!root.join("data/journal").exists(), "run started nothing");
}

/// Unmounts the test's tmpfs when the test ends, even on failure.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// SIGTERM while the journal's disk is full (a 3 MiB tmpfs; needs root, which CI has): the daemon
/// stops within a bounded time, counts and reports what it could not journal, and its journal
/// opens again afterwards.
#[test]
fn sigterm_with_a_full_disk_stops_in_bounded_time() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mnt = root.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !require(
        &[Need::Checked("a tmpfs mount", mounted)],
        "run as root, as CI does",
    ) {
        return;
    }
    let _unmount = Unmount(mnt.clone());
    let lines: String = (0..200_000)
        .map(|n| format!("line {n} {}\n", "y".repeat(40)))
        .collect();
    write_file(&root.join("logs/a.log"), &lines);
    let cfg = root.join("full.toml");
    let tcp = free_port();
    // The sink forwards to a closed port: nothing leaves the journal, so the disk stays full.
    // A TCP syslog peer keeps sending meanwhile: its connection waits for journal space too.
    write_file(
        &cfg,
        &format!(
            r#"data_dir = "./mnt/data"
hostname = "h"

[journal]
segment_size = "1MiB"

[sources.app]
type = "file"
include = ["logs/*.log"]
format = "raw"

[sources.sys]
type = "syslog"
tcp = "127.0.0.1:{tcp}"

[sinks.out]
type = "forward"
to = ["127.0.0.1:1"]
drain_timeout = "1s"
"#
        ),
    );
    let mut d = Daemon::start(root, &cfg);
    wait_port(tcp);
    let mut peer = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    peer.set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let sender = std::thread::spawn(move || {
        let msg = format!("<13>Jan  1 00:00:00 h app: tcp {}\n", "z".repeat(200));
        let mut sent = 0u64;
        while peer.write_all(msg.as_bytes()).is_ok() {
            sent += 1;
        }
        sent
    });
    assert!(
        wait_until(Duration::from_secs(20), || d
            .stderr()
            .contains("No space left on device")),
        "the disk never filled:\n{}",
        d.stderr()
    );
    let start = Instant::now();
    d.signal(libc::SIGTERM);
    let status = wait_until(Duration::from_secs(15), || !alive(&mut d)).then_some(());
    let took = start.elapsed();
    let log = std::fs::read_to_string(&d.stderr_path).unwrap_or_default();
    assert!(status.is_some(), "no exit within 15 s of SIGTERM:\n{log}");
    let sent = sender.join().unwrap();
    assert!(sent > 0, "the TCP peer sent nothing");
    assert!(took < Duration::from_secs(12), "stopping took {took:?}");
    assert!(
        log.contains("records could not be journaled"),
        "what was not journaled is reported:\n{log}"
    );
    eprintln!("SIGTERM on a full disk: stopped in {took:?}");
    // The journal opens again (recovery of what the failing writes left): `quill journal
    // cursors` succeeds (a failure means the journal does not open again).
    output_ok(
        Command::new(quill_bin())
            .args(["journal", "cursors", "-c"])
            .arg(&cfg)
            .current_dir(root),
    );
}
