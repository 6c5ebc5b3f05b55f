//! The `relp` source against Debian's rsyslog (`omrelp`, disk-assisted queue) while Quill is
//! SIGKILLed and restarted, and against hostile RELP peers. Every test starts the real `quill`
//! binary; rsyslog runs as its own process with its own config.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::*;
use quill::sources::relp::framing;

fn quill_config(root: &Path, port: u16, extra: &str) -> PathBuf {
    let path = root.join("quill.toml");
    write_file(
        &path,
        &format!(
            r#"data_dir = "./data"
[sources.rl]
type = "relp"
listen = "127.0.0.1:{port}"
{extra}

[sinks.out]
type = "file"
format = "raw"
add_newlines = true
path = "./out"
max_size = "4MiB"
"#
        ),
    );
    path
}

/// Lines of the raw store of category `rl`, in file order.
fn store_lines(root: &Path) -> Vec<String> {
    let dir = root.join("out/rl");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("rl_0"))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut lines = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        lines.extend(text.lines().map(str::to_string));
    }
    lines
}

/// Message number → times stored.
fn numbers(root: &Path) -> HashMap<u64, u32> {
    let mut seen = HashMap::new();
    for l in store_lines(root) {
        if let Some(n) = l.rsplit("n=").next().and_then(|v| v.trim().parse().ok()) {
            *seen.entry(n).or_insert(0) += 1;
        }
    }
    seen
}

#[test]
fn rsyslog_omrelp_survives_five_sigkills_nothing_lost() {
    if !require(
        &[
            Need::Program("rsyslogd"),
            Need::File("/usr/lib/x86_64-linux-gnu/rsyslog/omrelp.so"),
        ],
        "apt-get install rsyslog rsyslog-relp",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let rs_port = free_port();
    let cfg = quill_config(root, port, "");
    let mut quill = Daemon::start_listening(root, &cfg, port);
    let work = root.join("rsyslog");
    std::fs::create_dir_all(&work).unwrap();
    let conf = root.join("rsyslog.conf");
    write_file(
        &conf,
        &format!(
            r#"global(workDirectory="{work}")
module(load="imtcp")
module(load="omrelp")
input(type="imtcp" address="127.0.0.1" port="{rs_port}")
action(type="omrelp" target="127.0.0.1" port="{port}" template="RSYSLOG_SyslogProtocol23Format"
       queue.type="LinkedList" queue.filename="relpq" queue.maxDiskSpace="1g"
       queue.saveOnShutdown="on" action.resumeRetryCount="-1" action.resumeInterval="1")
"#,
            work = work.display()
        ),
    );
    let rsyslog = start_rsyslogd(root, &conf, rs_port);
    const TOTAL: u64 = 200_000;
    let sender = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", rs_port)).unwrap();
        let mut chunk = Vec::new();
        for n in 0..TOTAL {
            chunk.extend_from_slice(format!("<13>Dec  3 12:00:00 app1 myapp: n={n}\n").as_bytes());
            if n % 2000 == 1999 {
                s.write_all(&chunk).unwrap();
                chunk.clear();
                std::thread::sleep(Duration::from_millis(15));
            }
        }
        s.write_all(&chunk).unwrap();
    });
    let started = Instant::now();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(600));
        quill.kill(); // SIGKILL
        quill = Daemon::start_listening(root, &cfg, port);
    }
    sender.join().unwrap();
    let complete = wait_until(Duration::from_secs(90), || {
        numbers(root).len() as u64 >= TOTAL
    });
    let seen = numbers(root);
    let missing: Vec<u64> = (0..TOTAL)
        .filter(|n| !seen.contains_key(n))
        .take(5)
        .collect();
    assert!(
        complete && missing.is_empty(),
        "{} of {TOTAL} stored, e.g. missing {missing:?}\n{}",
        seen.len(),
        quill.stderr()
    );
    let duplicates: u64 = seen.values().map(|&c| u64::from(c - 1)).sum();
    drop(rsyslog); // SIGTERM, waited for
    assert!(quill.stop().success());
    eprintln!(
        "rsyslog omrelp, 5 SIGKILLs: {TOTAL} numbered messages all stored, {duplicates} duplicates (redelivered in-flight), {:?}",
        started.elapsed()
    );
}

/// A well-behaved RELP client: open, one syslog frame, close; returns the replies.
fn good_session(port: u16, msg: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    framing::encode_frame(&mut out, 1, "open", b"relp_version=0\ncommands=syslog");
    framing::encode_frame(&mut out, 2, "syslog", msg.as_bytes());
    framing::encode_frame(&mut out, 3, "close", b"");
    s.write_all(&out).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).to_string()
}

#[test]
fn hostile_relp_peers_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let cfg = quill_config(
        root,
        port,
        "max_frame_size = \"64KiB\"\nidle_timeout = \"2s\"",
    );
    let mut quill = Daemon::start_listening(root, &cfg, port);
    let pid = quill.child.id();
    let replies = good_session(port, "<13>Dec  3 12:00:00 h app: n=1");
    assert!(replies.starts_with("1 rsp "), "{replies}");
    assert!(replies.contains("2 rsp 6 200 OK\n"), "{replies}");
    assert!(replies.ends_with("3 rsp 0\n"), "{replies}");
    let rss_before = rss_kib(pid);
    let hostile: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"1 open 2147483648 ", // DATALEN of 2^31: more than 9 digits
        b"1 open 999999999 ",  // past max_frame_size
        b"1 syslog 5 hello\n", // before open
        b"1 open 0\n2 syslog 100 truncated", // then the peer leaves
    ];
    for h in hostile {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(h).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        expect_closed(s, &String::from_utf8_lossy(h));
    }
    // Slow senders: 50 each send half of a 60 KiB frame and stall.
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"1 open 0\n2 syslog 61440 ").unwrap();
        s.write_all(&vec![b'x'; 30 << 10]).unwrap();
        slow.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let replies = good_session(port, "<13>Dec  3 12:00:00 h app: n=2");
    assert!(replies.contains("2 rsp 6 200 OK\n"), "{replies}");
    assert!(t.elapsed() < Duration::from_secs(1));
    let rss_during = rss_kib(pid);
    assert!(
        rss_during < rss_before + 32 * 1024,
        "RSS {rss_before} -> {rss_during} KiB"
    );
    for s in slow {
        expect_closed(s, "slow"); // idle_timeout
    }
    assert!(quill.child.try_wait().unwrap().is_none(), "quill died");
    assert!(wait_until(Duration::from_secs(5), || numbers(root).len() == 2));
    // A peer sees its socket close a moment before the daemon logs why.
    let closed = |q: &Daemon| q.stderr().matches("Closed RELP connection").count();
    wait_until(Duration::from_secs(5), || closed(&quill) >= 55);
    let stderr = quill.stderr();
    assert_eq!(
        stderr.matches("Closed RELP connection").count(),
        55,
        "{stderr}"
    );
    assert!(quill.stop().success());
    eprintln!("RELP: RSS {rss_before} KiB, with 50 slow senders {rss_during} KiB");
}
