//! Attacks on a real `quill` process, each as an attacker on loopback would run it: idle HELLOs,
//! raw idle connections, zstd bombs, stalled frames, a fake aggregator (the host-side attacks,
//! descriptors, files and a full disk, are in `adversarial_host`).
//!
//! Each test asserts that the daemon stays up, that its memory (VmHWM, the peak resident set)
//! stays under a stated bound, and that a legitimate sender (`quill send` from 127.0.0.1, a
//! forward sink, UDP syslog) keeps flowing during the attack. Attackers connect from other
//! loopback addresses (127.0.0.2 and up), as hosts other than the agents' would.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use bytes::Bytes;
use quill::transport::batch;
use quill::transport::frame::{BatchFrame, Frame};

const MIB: u64 = 1 << 20;

/// Raises this test process's descriptor limit (the attacks need a few thousand sockets).
pub(crate) fn raise_own_nofile() {
    quill::limits::raise_nofile();
}

/// A TCP connection from `from` (any 127.0.0.0/8 address) to 127.0.0.1:`port`.
pub(crate) fn connect_from(from: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    sock.bind(&SocketAddr::from((from, 0)).into())?;
    sock.connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)).into(),
        Duration::from_secs(5),
    )?;
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(s)
}

/// Opens a session from `from`: HELLO, then WELCOME; `None` if refused.
fn session(from: Ipv4Addr, port: u16, agent: &str, token: &str) -> Option<TcpStream> {
    let mut s = connect_from(from, port).ok()?;
    s.write_all(&hello_frame(token, 1, agent)).ok()?;
    match read_frame(&mut s)?.ok()? {
        Frame::Welcome { .. } => Some(s),
        _ => None,
    }
}

/// True when the peer closed `s` (reading what it sent reaches the end, or fails), without waiting.
fn closed(s: &mut TcpStream) -> bool {
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let mut b = [0u8; 512];
    let closed = loop {
        match s.read(&mut b) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) => break e.kind() != std::io::ErrorKind::WouldBlock,
        }
    };
    let _ = s.set_nonblocking(false);
    closed
}

/// Sends `count` lines `"<prefix> <n>"` with `quill send` from 127.0.0.1; returns how long it took.
fn quill_send(root: &Path, port: u16, token: Option<&str>, prefix: &str, count: u64) -> Duration {
    let file = root.join(format!("{prefix}.txt"));
    let text: String = (0..count).map(|n| format!("{prefix} {n}\n")).collect();
    std::fs::write(&file, text).unwrap();
    let start = Instant::now();
    let mut cmd = Command::new(quill_bin());
    cmd.args(["send", "--to", &format!("127.0.0.1:{port}")])
        .args(["--category", "legit", "--format", "raw", "--retries", "200"])
        .args(["--agent-id", prefix])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = start + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("quill send did not finish within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).ok();
    assert!(status.success(), "quill send failed: {err}");
    start.elapsed()
}

/// Waits until the sink holds `count` lines with `prefix`, each once.
fn assert_delivered(root: &Path, prefix: &str, count: u64) {
    let out = root.join("agg-out");
    let want = |n: &str| n.starts_with(&format!("{prefix} "));
    assert!(
        wait_until(Duration::from_secs(15), || messages(&read_sink(&out))
            .iter()
            .filter(|m| want(m))
            .count() as u64
            >= count),
        "the sink never held {count} `{prefix}` lines"
    );
    let mut got: Vec<u64> = messages(&read_sink(&out))
        .iter()
        .filter(|m| want(m))
        .filter_map(|m| m.rsplit_once(' ')?.1.parse().ok())
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..count).collect::<Vec<_>>(), "`{prefix}` lines");
}

pub(crate) fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        / 1024
}

pub(crate) fn alive(d: &mut Daemon) -> bool {
    matches!(d.child.try_wait(), Ok(None))
}

/// A BATCH frame of `count` records declaring `raw_len` decompressed bytes.
fn batch_frame(raw_len: u32, compressed: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    Frame::Batch(BatchFrame {
        first_seq: 1,
        last_seq: 1,
        count: 1,
        raw_len,
        compressed: Bytes::from(compressed),
    })
    .encode(&mut out);
    out
}

/// 64 MiB of zeros, zstd-compressed (about 2 KiB), with or without its size in the header.
fn zeros_bomb(with_size: bool) -> Vec<u8> {
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    enc.include_contentsize(with_size).unwrap();
    if with_size {
        enc.set_pledged_src_size(Some(64 * MIB)).unwrap();
    }
    let chunk = vec![0u8; MIB as usize];
    for _ in 0..64 {
        enc.write_all(&chunk).unwrap();
    }
    enc.finish().unwrap()
}

/// The header and first `sent` bytes of a BATCH frame that declares `declared` bytes.
fn stalled_frame(declared: u32, sent: usize) -> Vec<u8> {
    let mut out = vec![3u8];
    out.extend_from_slice(&declared.to_be_bytes());
    out.extend(std::iter::repeat_n(0u8, sent));
    out
}

#[test]
fn idle_hello_connections_do_not_lock_out_agents() {
    let _alone = alone();
    raise_own_nofile();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (port, metrics) = (free_port(), free_port());
    // No token: every HELLO is accepted, so only the per-address limit stands in the way.
    let mut agg = Daemon::start(root, &metered_aggregator_config(root, port, metrics, ""));
    wait_port(port);
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let mut held = Vec::new();
    for i in 0..1024 {
        if let Some(s) = session(attacker, port, &format!("idle-{i}"), "") {
            held.push(s);
        }
    }
    assert_eq!(
        held.len(),
        128,
        "one address gets max_connections_per_ip sessions"
    );
    let took = quill_send(root, port, None, "legit", 2000);
    assert_delivered(root, "legit", 2000);
    assert!(held.iter_mut().all(|s| !closed(s)), "idle sessions stay");
    assert!(alive(&mut agg));
    let peak = peak_rss_mib(agg.child.id());
    assert!(peak < 200, "peak RSS {peak} MiB");
    eprintln!("1,024 idle HELLOs: agent sent 2,000 lines in {took:?}; peak RSS {peak} MiB");
    drop(held);
    assert!(agg.stop().success());
}

#[test]
fn raw_idle_connections_with_a_token_do_not_lock_out_agents() {
    let _alone = alone();
    raise_own_nofile();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (port, metrics) = (free_port(), free_port());
    let mut agg = Daemon::start(
        root,
        &metered_aggregator_config(
            root,
            port,
            metrics,
            "token = \"s3cret\"\nhandshake_timeout = \"2s\"",
        ),
    );
    wait_port(port);
    // 1,024 raw connections from four addresses, reopened as soon as they are closed. (Four
    // addresses hold 4 x max_unauthenticated_per_ip = 64 of the 128 handshake slots.)
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let passes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let attack = {
        let (stop, passes) = (stop.clone(), passes.clone());
        std::thread::spawn(move || {
            let mut conns: Vec<Option<TcpStream>> = (0..1024).map(|_| None).collect();
            let mut opened = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (i, c) in conns.iter_mut().enumerate() {
                    if c.as_mut().is_none_or(closed) {
                        let from = Ipv4Addr::new(127, 0, 1, 1 + (i % 4) as u8);
                        *c = connect_from(from, port).ok();
                        opened += 1;
                    }
                }
                passes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
            }
            opened
        })
    };
    // Past the first handshake timeout, once the attacker has reopened what was cut off.
    let started = Instant::now();
    assert!(wait_until(Duration::from_secs(20), || {
        started.elapsed() > Duration::from_millis(2500)
            && passes.load(std::sync::atomic::Ordering::Relaxed) >= 2
    }));
    let took = quill_send(root, port, Some("s3cret"), "legit", 2000);
    assert_delivered(root, "legit", 2000);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let opened = attack.join().unwrap();
    assert!(opened > 1024, "the attacker kept reopening ({opened})");
    assert!(alive(&mut agg));
    let peak = peak_rss_mib(agg.child.id());
    assert!(peak < 200, "peak RSS {peak} MiB");
    eprintln!(
        "1,024 raw connections ({opened} opened): agent sent 2,000 lines in {took:?}; peak RSS {peak} MiB"
    );
    assert!(agg.stop().success());
}

/// Zstd bombs (64 MiB declared, some honest, some lying) and stalled 16 MiB frames against a
/// 128 MiB budget, while an agent sends.
fn bombs_and_stalls(connections: usize, budget_mib: u64, overhead_mib: u64) {
    raise_own_nofile();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (port, metrics) = (free_port(), free_port());
    // Freed pages go back to the kernel at once, so RSS shows what is live (what the budget
    // bounds) rather than what the allocator keeps cached from earlier bursts.
    let mut agg = Daemon::start_with_env(
        root,
        &metered_aggregator_config(
            root,
            port,
            metrics,
            &format!(
                "memory_budget = \"{budget_mib}MiB\"\nframe_timeout = \"3s\"\nmax_connections = 2048"
            ),
        ),
        &[("MIMALLOC_PURGE_DELAY", "0")],
    );
    wait_port(port);
    let sized = zeros_bomb(true);
    let unsized_bomb = zeros_bomb(false);
    assert!(sized.len() < 64 << 10 && unsized_bomb.len() < 64 << 10);
    let mut conns = Vec::new();
    let start = Instant::now();
    for i in 0..connections {
        let from = Ipv4Addr::new(127, 0, 2, 1 + (i / 100) as u8);
        let Some(mut s) = session(from, port, &format!("evil-{i}"), "") else {
            continue;
        };
        let payload = match i % 10 {
            // Honest about its 64 MiB: decompressed within the budget, then refused as garbage.
            0 => batch_frame(64 * MIB as u32, sized.clone()),
            // No size in its zstd header, 64 MiB declared and real: the same.
            1 => batch_frame(64 * MIB as u32, unsized_bomb.clone()),
            // Declares 1 MiB, its zstd header says 64 MiB: refused before any work.
            2 | 3 => batch_frame(MIB as u32, sized.clone()),
            // Declares 1 MiB, inflates to 64 MiB: decompression stops at 1 MiB.
            4 => batch_frame(MIB as u32, unsized_bomb.clone()),
            // A 16 MiB frame of which 256 KiB arrive, then nothing.
            _ => stalled_frame(16 * MIB as u32, 256 << 10),
        };
        if s.write_all(&payload).is_ok() {
            conns.push(s);
        }
    }
    let opened = conns.len();
    assert!(
        opened >= connections * 9 / 10,
        "only {opened} of {connections} attack sessions opened"
    );
    let took = quill_send(root, port, None, "legit", 2000);
    assert_delivered(root, "legit", 2000);
    // Every attacker is cut off: bombs at once, stalled frames after frame_timeout.
    assert!(
        wait_until(Duration::from_secs(10), || conns.iter_mut().all(closed)),
        "attack connections still open"
    );
    assert!(alive(&mut agg));
    let peak = peak_rss_mib(agg.child.id());
    eprintln!(
        "{opened} bomb/stall connections in {:?}: agent sent 2,000 lines in {took:?}; peak RSS {peak} MiB (budget {budget_mib} MiB + {overhead_mib} MiB allowed)",
        start.elapsed()
    );
    assert!(
        peak < budget_mib + overhead_mib,
        "peak RSS {peak} MiB over the budget of {budget_mib} MiB + {overhead_mib} MiB"
    );
    let log = agg.stderr();
    assert!(log.contains("too slow"), "stalled frames were not cut off");
    assert!(!log.contains("panicked"));
    assert!(agg.stop().success());
}

/// The fixed overhead above the budget: the idle daemon (about 50 MiB), one `max_batch_size`
/// (64 MiB) the allocator may keep after a decompressed batch is freed while the next is
/// allocated, and the state of up to 1,000 connections (tasks, sockets, ack queues). Measured on a
/// loaded 2-core machine: 149-305 MiB peak for the 1,000-connection test (up to ~110 MiB of it not
/// yet explained: allocator arenas of the runtime's worker threads are the suspect), so the
/// allowance is 200 MiB; the budget itself is what bounds growth with the number of attackers.
const OVERHEAD_MIB: u64 = 200;

#[test]
fn zstd_bombs_and_stalled_frames_stay_within_the_memory_budget() {
    let _alone = alone();
    bombs_and_stalls(120, 128, OVERHEAD_MIB);
}

#[test]
fn a_thousand_connections_of_bombs_and_stalls_stay_within_the_memory_budget() {
    let _alone = alone();
    bombs_and_stalls(1000, 128, OVERHEAD_MIB);
}

#[test]
fn an_agent_refuses_an_impossible_welcome() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let fake = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = fake.local_addr().unwrap().port();
    let metrics = free_port();
    let cfg = root.join("agent.toml");
    write_file(
        &cfg,
        &format!(
            r#"data_dir = "./agent-data"
hostname = "edge"
metrics_listen = "127.0.0.1:{metrics}"

[sources.app]
type = "file"
include = ["logs/*.log"]
category = "app"
format = "raw"
poll_interval = "20ms"

[sinks.fwd]
type = "forward"
to = ["127.0.0.1:{port}"]
backoff_min = "20ms"
backoff_max = "200ms"
"#
        ),
    );
    let lines: String = (0..100).map(|n| format!("line {n}\n")).collect();
    write_file(&root.join("logs/app.log"), &lines);
    let mut agent = Daemon::start(root, &cfg);
    // The fake aggregator: the first session is told it already holds 10^12 of the stream; the
    // second (an honest answer) receives and acks what comes.
    let mut streams = Vec::new();
    let mut received = Vec::new();
    fake.set_nonblocking(false).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.len() < 100 && Instant::now() < deadline {
        let (mut s, _) = fake.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let Some(Ok(Frame::Hello(h))) = read_frame(&mut s) else {
            continue;
        };
        let high_water = if streams.is_empty() {
            1_000_000_000_000
        } else {
            0
        };
        streams.push(h.stream_id.clone());
        let mut out = Vec::new();
        Frame::Welcome {
            version: h.version,
            high_water,
        }
        .encode(&mut out);
        s.write_all(&out).unwrap();
        while let Some(Ok(Frame::Batch(b))) = read_frame(&mut s) {
            let mut d = zstd::bulk::Decompressor::new().unwrap();
            let raw = batch::decompress(&mut d, &b.compressed, b.raw_len, 64 << 20).unwrap();
            for r in batch::decode_records(raw, b.count).unwrap() {
                received.push(String::from_utf8_lossy(&r.raw).into_owned());
            }
            out.clear();
            Frame::Ack {
                last_seq: b.last_seq,
            }
            .encode(&mut out);
            s.write_all(&out).unwrap();
            if received.len() >= 100 {
                break;
            }
        }
    }
    let want: Vec<String> = (0..100).map(|n| format!("line {n}")).collect();
    assert_eq!(received, want, "every record was sent, none skipped");
    assert!(streams.len() >= 2);
    assert_ne!(streams[0], streams[1], "a new stream id after the refusal");
    assert!(wait_until(Duration::from_secs(5), || scrape_metric(
        metrics,
        "quill_sink_welcome_refused_total",
        "fwd"
    ) == Some(1.0)));
    assert!(alive(&mut agent));
    let log = agent.stderr();
    assert!(
        log.contains("claims to hold sequence 1000000000000"),
        "{log}"
    );
    assert!(agent.stop().success());
}
