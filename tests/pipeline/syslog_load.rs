//! The syslog source under load and attack: a million messages over 16 TCP connections exactly
//! once, UDP bursts (every datagram received or counted), paced UDP without loss, and hostile
//! clients that must not hurt others. Every test starts the real `quill` binary (`syslog_real`'s
//! set-up).

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use super::syslog_real::{Setup, start};
use crate::support::*;

#[test]
fn one_million_messages_over_16_tcp_connections_arrive_exactly_once() {
    let s = start("");
    let conns = 16;
    let per_conn = 1_000_000 / conns;
    let senders: Vec<_> = (0..conns)
        .map(|c| {
            let port = s.port;
            std::thread::spawn(move || {
                let mut stream = std::io::BufWriter::with_capacity(
                    256 * 1024,
                    TcpStream::connect(("127.0.0.1", port)).unwrap(),
                );
                for n in 0..per_conn {
                    let msg = format!("<13>1 - h app - - - flood c={c:02} n={n:07}");
                    if c % 2 == 0 {
                        write!(stream, "{} {msg}", msg.len()).unwrap();
                    } else {
                        writeln!(stream, "{msg}").unwrap();
                    }
                }
                stream.flush().unwrap();
            })
        })
        .collect();
    for t in senders {
        t.join().unwrap();
    }
    let total = conns * per_conn;
    let ok = wait_until(Duration::from_secs(120), || {
        scrape_metric(s.metrics, "quill_sink_records_total", "").unwrap_or(0.0) as usize >= total
    });
    assert!(
        ok,
        "sink saw {:?} of {total}\n{}",
        scrape_metric(s.metrics, "quill_sink_records_total", ""),
        s.daemon.stderr()
    );
    let out = s.out();
    assert!(s.daemon.stop().success());
    // Every message exactly once, in per-connection order.
    let mut seen = vec![vec![false; per_conn]; conns];
    let mut last = vec![None::<usize>; conns];
    let mut count = 0;
    for f in std::fs::read_dir(out.join("sys")).unwrap().flatten() {
        let text = std::fs::read_to_string(f.path()).unwrap();
        for line in text.lines() {
            let at = line.find("flood c=").expect("flood line");
            let c: usize = line[at + 8..at + 10].parse().unwrap();
            let n: usize = line[at + 13..at + 20].parse().unwrap();
            assert!(!seen[c][n], "duplicate c={c} n={n}");
            seen[c][n] = true;
            assert!(
                last[c].is_none_or(|l| l < n),
                "out of order on connection {c}"
            );
            last[c] = Some(n);
            count += 1;
        }
    }
    assert_eq!(count, total);
}

fn udp_flood(s: &Setup, count: usize, pace: Option<Duration>) -> (f64, f64, f64) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let payload = "x".repeat(200);
    let start = Instant::now();
    for i in 0..count {
        let msg = format!("<13>1 - h app - - - udp n={i:07} {payload}");
        // A full send buffer is not a loss on loopback: retry.
        while sock.send_to(msg.as_bytes(), ("127.0.0.1", s.port)).is_err() {
            std::thread::yield_now();
        }
        if let Some(p) = pace
            && i % 100 == 99
        {
            let target = p * (i as u32 + 1);
            if let Some(wait) = target.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    // Wait until the counters stop moving (published once a second).
    let read = || {
        (
            scrape_metric(s.metrics, "quill_source_records_total", "source=\"sys\"").unwrap_or(0.0),
            scrape_metric(
                s.metrics,
                "quill_source_kernel_dropped_total",
                "source=\"sys\"",
            )
            .unwrap_or(0.0),
            scrape_metric(
                s.metrics,
                "quill_source_dropped_journal_full_total",
                "source=\"sys\"",
            )
            .unwrap_or(0.0),
        )
    };
    let mut prev = read();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(2500));
        let now = read();
        if (now == prev && now.0 + now.1 + now.2 >= count as f64) || Instant::now() > deadline {
            return now;
        }
        prev = now;
    }
}

#[test]
fn udp_burst_every_datagram_is_received_or_counted() {
    let s = start("udp_receive_buffer = \"256KiB\"");
    let sent = 200_000;
    let (received, kernel, journal_full) = udp_flood(&s, sent, None);
    assert_eq!(
        received + kernel + journal_full,
        sent as f64,
        "received {received} + kernel drops {kernel} + journal full {journal_full} != sent {sent}"
    );
    // The status line reports the same figures.
    let entries = read_sink(&s.out()).len() as f64;
    assert!(s.daemon.stop().success());
    assert_eq!(entries, received);
}

#[test]
fn paced_udp_loses_nothing() {
    let s = start("");
    let sent = 20_000;
    // 20,000 datagrams/s.
    let (received, kernel, journal_full) = udp_flood(&s, sent, Some(Duration::from_micros(50)));
    assert_eq!((received, kernel, journal_full), (sent as f64, 0.0, 0.0));
    assert!(s.daemon.stop().success());
}

#[test]
fn hostile_clients_do_not_hurt_others() {
    let s = start("max_message_bytes = \"8KiB\"");
    let addr = ("127.0.0.1", s.port);
    // Random bytes.
    let mut garbage = TcpStream::connect(addr).unwrap();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let bytes: Vec<u8> = (0..100_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let _ = garbage.write_all(&bytes);
    // An octet count of 2^40 and a frame that claims 9,999,999,999 bytes.
    let mut huge = TcpStream::connect(addr).unwrap();
    huge.write_all(b"1099511627776 <13>x").unwrap();
    let mut long_claim = TcpStream::connect(addr).unwrap();
    long_claim.write_all(b"9999999999 <13>").unwrap();
    long_claim.write_all(&vec![b'a'; 2 << 20]).unwrap();
    // Half a frame, then the peer closes: kept, flagged.
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"100 <13>1 - h app - - - half a frame")
        .unwrap();
    drop(half);
    // A client that only sends and never reads.
    let mut pusher = TcpStream::connect(addr).unwrap();
    for _ in 0..1000 {
        pusher.write_all(b"<13>1 - h app - - - pusher\n").unwrap();
    }
    // 10,000 idle connections.
    let mut idle = Vec::new();
    for _ in 0..10_000 {
        match TcpStream::connect(addr) {
            Ok(c) => idle.push(c),
            Err(e) => panic!("connection {} refused: {e}", idle.len()),
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    // A well-behaved sender still gets through, over TCP and UDP.
    let p = s.port.to_string();
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        &p,
        "-T",
        "--rfc5424=notime,notq,nohost",
        "-t",
        "ok",
        "still works tcp",
    ]);
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        &p,
        "-d",
        "--rfc5424=notime,notq,nohost",
        "-t",
        "ok",
        "still works udp",
    ]);
    let ok = wait_until(Duration::from_secs(15), || {
        let m = messages(&read_sink(&s.out()));
        m.iter().any(|m| m.ends_with("still works tcp"))
            && m.iter().any(|m| m.ends_with("still works udp"))
            && m.iter().filter(|m| m.ends_with("pusher")).count() == 1000
    });
    let rss = rss_kib(s.daemon.child.id());
    assert!(ok, "{}", s.daemon.stderr());
    assert!(
        rss < 400 * 1024,
        "RSS {rss} KiB with 10,000 idle connections"
    );
    let log = s.daemon.stderr();
    assert!(
        log.contains("malformed octet count \"1099511627776\""),
        "{log}"
    );
    let entries = read_sink(&s.out());
    assert!(
        entries
            .iter()
            .any(|e| e["short_message"].as_str() == Some("<13>1 - h app - - - half a frame")),
        "half frame kept"
    );
    // The over-long frame was kept, truncated to 8 KiB.
    assert!(entries.iter().any(|e| {
        e["short_message"]
            .as_str()
            .is_some_and(|m| m.starts_with("<13>aaaa") && m.len() == 8192)
    }));
    drop(idle);
    drop((garbage, huge, long_claim, pusher));
    assert!(s.daemon.stop().success());
}
