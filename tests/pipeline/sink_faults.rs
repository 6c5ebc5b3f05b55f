//! The `gelf` sink against receivers that fail (small std-only receivers in the test, the real
//! `quill` daemon as the sender): a TCP receiver that stops reading (the sink times out,
//! reconnects and resends from its cursor), one that resets mid-stream, and an HTTP receiver
//! that answers 500 (not stored) before it answers 200. Every message arrives byte-exact; over
//! TCP at least once with the repeats within the README's bound, over HTTP exactly once.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;

/// The sink's `resend_window` in these tests (its default).
const WINDOW: usize = 8 << 20;

fn line(i: usize) -> String {
    format!("line {i:06} \"q\" ünïcode {}", "y".repeat(400 + i % 100))
}

/// Starts Quill: a file source of `n` lines, the gelf sink to `to`.
fn start(root: &Path, n: usize, to: &str) -> Daemon {
    std::fs::create_dir_all(root.join("in")).unwrap();
    let text: String = (0..n).map(|i| line(i) + "\n").collect();
    write_file(&root.join("in/a.log"), &text);
    let cfg = root.join("quill.toml");
    write_file(
        &cfg,
        &format!(
            "data_dir = \"./data\"\nstatus_interval = \"1h\"\n[sources.tail]\ntype = \"file\"\ninclude = [\"./in/*.log\"]\nformat = \"raw\"\npoll_interval = \"50ms\"\n\
             [sinks.out]\ntype = \"gelf\"\nto = \"{to}\"\ntimeout = \"1s\"\n"
        ),
    );
    Daemon::start(root, &cfg)
}

/// The short_message of a GELF frame, checked against the line it must be.
fn index_of(frame: &[u8]) -> usize {
    let v: serde_json::Value = serde_json::from_slice(frame)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(frame)));
    let msg = v["short_message"].as_str().expect("short_message");
    let i: usize = msg[5..11].parse().expect("index");
    assert_eq!(msg, line(i), "not byte-exact");
    i
}

/// Complete NUL-terminated frames of `buf` (a cut-off last frame is not one).
fn frames(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let complete = buf.iter().rposition(|&b| b == 0).map_or(0, |p| p + 1);
    buf[..complete].split(|&b| b == 0).filter(|f| !f.is_empty())
}

/// Reads `open` and every connection `listener` accepts until `n` distinct messages arrived (or 90 s).
fn read_until_all(
    listener: &TcpListener,
    open: Vec<TcpStream>,
    n: usize,
    seen: &mut HashMap<usize, usize>,
) {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut conns: Vec<(TcpStream, Vec<u8>)> = Vec::new();
    for s in open {
        s.set_nonblocking(true).unwrap();
        conns.push((s, Vec::new()));
    }
    while seen.len() < n && Instant::now() < deadline {
        if let Ok((s, _)) = listener.accept() {
            s.set_nonblocking(true).unwrap();
            conns.push((s, Vec::new()));
        }
        let mut idle = true;
        for (s, buf) in &mut conns {
            let mut tmp = [0u8; 65536];
            while let Ok(k) = s.read(&mut tmp) {
                if k == 0 {
                    break;
                }
                idle = false;
                buf.extend_from_slice(&tmp[..k]);
            }
            let end = buf.iter().rposition(|&b| b == 0).map_or(0, |p| p + 1);
            for f in frames(&buf[..end]) {
                *seen.entry(index_of(f)).or_default() += 1;
            }
            buf.drain(..end);
        }
        if idle {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Reads `conn` until at least `bytes` arrived; counts its complete frames.
fn read_some(conn: &mut TcpStream, bytes: usize, seen: &mut HashMap<usize, usize>) {
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    while buf.len() < bytes {
        let k = conn.read(&mut tmp).expect("read");
        assert!(k > 0, "the sink closed early");
        buf.extend_from_slice(&tmp[..k]);
    }
    for f in frames(&buf) {
        *seen.entry(index_of(f)).or_default() += 1;
    }
}

/// Every message arrived; the bytes sent twice stay within the README's bound
/// (`resend_window` + the kernel's send buffer + one batch of 4096 messages).
fn assert_all_within_bound(what: &str, n: usize, seen: &HashMap<usize, usize>, stderr: &str) {
    let missing: Vec<usize> = (0..n).filter(|i| !seen.contains_key(i)).collect();
    assert!(
        missing.is_empty(),
        "{what}: {} of {n} never arrived, e.g. {:?}\n{stderr}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let dup_bytes: usize = seen
        .iter()
        .map(|(&i, &k)| (k - 1) * (line(i).len() + 120))
        .sum();
    let dups: usize = seen.values().map(|k| k - 1).sum();
    let first_dup = seen.iter().filter(|&(_, &k)| k > 1).map(|(&i, _)| i).min();
    let last_dup = seen.iter().filter(|&(_, &k)| k > 1).map(|(&i, _)| i).max();
    eprintln!("{what}: {n} arrived, {dups} twice ({dup_bytes} bytes), {first_dup:?}..{last_dup:?}");
    let bound = WINDOW + (4 << 20) + 4096 * 700;
    assert!(dup_bytes <= bound, "{what}: {dup_bytes} bytes repeated");
}

#[test]
fn a_receiver_that_stops_reading_loses_nothing() {
    let _machine = alone();
    const N: usize = 40_000;
    let dir = tempfile::tempdir().unwrap();
    let (listener, port) = listener();
    let d = start(dir.path(), N, &format!("tcp://127.0.0.1:{port}"));
    let (mut first, _) = listener.accept().unwrap();
    let mut seen = HashMap::new();
    read_some(&mut first, 1 << 20, &mut seen);
    // Stalled: buffers fill, the sink's write times out and it reconnects.
    let t0 = Instant::now();
    let (second, _) = listener.accept().unwrap();
    let stalled_for = t0.elapsed();
    // What the stalled connection held unread is gone with it.
    drop(first);
    read_until_all(&listener, vec![second], N, &mut seen);
    let stderr = d.stderr();
    assert!(d.stop().success());
    assert!(
        stalled_for >= Duration::from_millis(900),
        "reconnected after {stalled_for:?}, before the 1 s timeout\n{stderr}"
    );
    assert_all_within_bound("stalled", N, &seen, &stderr);
}

#[test]
fn a_receiver_that_resets_mid_stream_loses_nothing() {
    const N: usize = 40_000;
    let dir = tempfile::tempdir().unwrap();
    let (listener, port) = listener();
    let d = start(dir.path(), N, &format!("tcp://127.0.0.1:{port}"));
    let (mut first, _) = listener.accept().unwrap();
    let mut seen = HashMap::new();
    read_some(&mut first, 2 << 20, &mut seen);
    reset(first);
    read_until_all(&listener, Vec::new(), N, &mut seen);
    let stderr = d.stderr();
    assert!(d.stop().success());
    assert!(stderr.contains("gelf sink"), "no failure logged\n{stderr}");
    assert_all_within_bound("reset", N, &seen, &stderr);
}

/// Sets socket option `name` of `fd` to `value`.
fn set_option<T>(fd: &impl std::os::fd::AsRawFd, name: libc::c_int, value: T) {
    // SAFETY: setsockopt on a socket this test owns, with a value of the option's size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt {name}");
}

/// A listener whose connections have a fixed, large receive buffer (2 MiB asked; the kernel
/// caps it at `net.core.rmem_max`): a receiver that stops reading holds that much unread, all of
/// it acknowledged by its TCP.
fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    set_option(&l, libc::SO_RCVBUF, 2 << 20 as libc::c_int);
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// Closes with SO_LINGER 0: an RST, whatever the receive queue holds is discarded.
fn reset(conn: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    set_option(&conn, libc::SO_LINGER, linger);
    drop(conn);
}

/// One request of `conn` (head and Content-Length body), or `None` at its end.
fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut tmp = [0u8; 65536];
    loop {
        if let Some(h) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..h]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            if buf.len() >= h + 4 + len {
                let body = buf[h + 4..h + 4 + len].to_vec();
                buf.drain(..h + 4 + len);
                return Some(body);
            }
        }
        match conn.read(&mut tmp) {
            Ok(0) | Err(_) => return None,
            Ok(k) => buf.extend_from_slice(&tmp[..k]),
        }
    }
}

#[test]
fn http_500_is_retried_with_backoff_and_nothing_is_lost_or_repeated() {
    const N: usize = 5_000;
    const STORED_FIRST: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let d = start(dir.path(), N, &format!("http://127.0.0.1:{port}/gelf"));
    // Connection 1 stores STORED_FIRST messages then answers 500 (not stored) to the rest;
    // connection 2 answers 500 to everything; from connection 3 on, 200 and stored.
    let mut stored: Vec<usize> = Vec::new();
    let mut refused = 0;
    let mut accepted_at = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    listener.set_nonblocking(true).unwrap();
    while stored.len() < N && Instant::now() < deadline {
        let Ok((mut conn, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        accepted_at.push(Instant::now());
        let nth = accepted_at.len();
        let mut buf = Vec::new();
        let mut failing = nth == 2;
        while let Some(body) = read_request(&mut conn, &mut buf) {
            if nth == 1 && stored.len() >= STORED_FIRST {
                failing = true;
            }
            let answer: &[u8] = if failing {
                refused += 1;
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops\n"
            } else {
                stored.push(index_of(&body));
                b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
            };
            if conn.write_all(answer).is_err() {
                break;
            }
            if stored.len() >= N {
                break;
            }
        }
    }
    let stderr = d.stderr();
    assert!(d.stop().success());
    assert!(refused >= 2, "{refused} refused\n{stderr}");
    assert!(accepted_at.len() >= 3, "{stderr}");
    for w in accepted_at.windows(2).take(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(90),
            "retried after {:?}: no backoff",
            w[1] - w[0]
        );
    }
    assert_eq!(
        stored,
        (0..N).collect::<Vec<_>>(),
        "each message stored exactly once, in order"
    );
}
