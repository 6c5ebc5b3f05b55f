//! Bad peers against a real aggregator process: a wrong token, garbage, an unknown version, an
//! invalid agent id, an oversized frame, a truncated frame, zstd bombs and an unsafe category. Each
//! gets an ERROR frame where the stream allows one and one clear log line; the aggregator's memory
//! stays bounded, and a real agent forwarding at the same time is unaffected.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::support::*;
use bytes::Bytes;
use quill::record::{Format, Origin, Record};
use quill::transport::batch::encode_records;
use quill::transport::frame::{BatchFrame, ErrorCode, Frame};

fn batch(first_seq: u64, count: u32, raw_len: u32, compressed: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    Frame::Batch(BatchFrame {
        first_seq,
        last_seq: first_seq + u64::from(count) - 1,
        count,
        raw_len,
        compressed: Bytes::from(compressed),
    })
    .encode(&mut out);
    out
}

/// Reads one frame, or `None` at the end of the stream; a frame that does not decode fails.
fn read_one(s: &mut TcpStream) -> Option<Frame> {
    read_frame(s).map(|f| f.expect("aggregator sent a bad frame"))
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Sends `bytes` on a fresh connection and returns the ERROR it gets, checking the connection
/// is then closed.
fn expect_error(port: u16, bytes: &[u8]) -> (ErrorCode, String) {
    let mut s = connect(port);
    s.write_all(bytes).unwrap();
    match read_one(&mut s) {
        Some(Frame::Error { code, message }) => {
            assert!(read_one(&mut s).is_none(), "connection left open");
            (code, message)
        }
        other => panic!("expected an ERROR frame, got {other:?}"),
    }
}

/// Opens a session (HELLO, WELCOME) and then sends `bytes`; returns what comes back.
fn after_welcome(port: u16, bytes: &[u8]) -> (TcpStream, Option<Frame>) {
    let mut s = connect(port);
    s.write_all(&hello_frame(TOKEN, 1, "prober")).unwrap();
    assert!(matches!(read_one(&mut s), Some(Frame::Welcome { .. })));
    s.write_all(bytes).unwrap();
    let reply = read_one(&mut s);
    (s, reply)
}

fn zeros_compressed(len: usize) -> Vec<u8> {
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..len / chunk.len() {
        enc.write_all(&chunk).unwrap();
    }
    enc.finish().unwrap()
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn bad_peers_get_clear_errors_and_do_not_disturb_a_real_agent() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let agg = Daemon::start(
        root,
        &aggregator_config(
            root,
            "agg",
            port,
            "max_frame_size = \"1MiB\"\nmax_batch_size = \"8MiB\"",
            "",
        ),
    );
    wait_port(port);
    let agent = Daemon::start(root, &agent_config(root, "good", &[port], ""));
    let log = root.join("good-logs/app.log");
    append_lines(&log, "g", 0..1000);

    // Handshake failures.
    let (code, msg) = expect_error(port, &hello_frame("wrong", 1, "mallory"));
    assert_eq!(code, ErrorCode::AuthFailed, "{msg}");
    let (code, msg) = expect_error(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(code, ErrorCode::Malformed);
    assert!(msg.contains("unknown frame type"), "{msg}");
    let (code, msg) = expect_error(port, &hello_frame(TOKEN, 99, "future"));
    assert_eq!(code, ErrorCode::UnsupportedVersion);
    assert!(msg.contains("version 99"), "{msg}");
    let (code, _) = expect_error(port, &hello_frame(TOKEN, 1, "../etc"));
    assert_eq!(code, ErrorCode::InvalidAgentId);

    // A frame that claims 4 GiB: refused from its header.
    let (_s, reply) = after_welcome(port, &[3, 0xff, 0xff, 0xff, 0xf0]);
    assert!(
        matches!(
            reply,
            Some(Frame::Error {
                code: ErrorCode::FrameTooLarge,
                ..
            })
        ),
        "{reply:?}"
    );
    // A truncated frame: the stream is cut, nothing to answer on; the aggregator logs it.
    {
        let mut s = connect(port);
        s.write_all(&hello_frame(TOKEN, 1, "cutter")).unwrap();
        assert!(matches!(read_one(&mut s), Some(Frame::Welcome { .. })));
        s.write_all(&[3, 0, 0, 1, 0]).unwrap();
        s.write_all(&[1; 10]).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(read_one(&mut s).is_none());
    }
    // zstd bombs: 64 MiB of zeros in a few KiB, declared small, and declared over the cap.
    let bomb = zeros_compressed(64 << 20);
    assert!(bomb.len() < 64 << 10);
    let (_s, reply) = after_welcome(port, &batch(1, 1, 4096, bomb.clone()));
    match reply {
        Some(Frame::Error { code, message }) => {
            assert_eq!(code, ErrorCode::Malformed);
            assert!(message.contains("does not decompress"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let (_s, reply) = after_welcome(port, &batch(1, 1, u32::MAX, bomb));
    assert!(
        matches!(
            reply,
            Some(Frame::Error {
                code: ErrorCode::BatchTooLarge,
                ..
            })
        ),
        "{reply:?}"
    );
    // A category that would escape the output directory.
    let evil = [Record::new(
        Origin::new("x", "../../etc", Format::Raw, "h"),
        Bytes::from_static(b"pwned"),
    )];
    let mut raw = Vec::new();
    encode_records(evil.iter(), &mut raw);
    let compressed = zstd::bulk::compress(&raw, 1).unwrap();
    let (_s, reply) = after_welcome(port, &batch(1, 1, raw.len() as u32, compressed));
    match reply {
        Some(Frame::Error { code, message }) => {
            assert_eq!(code, ErrorCode::InvalidCategory);
            assert!(message.contains("../../etc"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // A sequence range that does not match the record count.
    let mut mismatched = Vec::new();
    Frame::Batch(BatchFrame {
        first_seq: 5,
        last_seq: 9,
        count: 3,
        raw_len: 10,
        compressed: Bytes::from_static(&[0; 10]),
    })
    .encode(&mut mismatched);
    let (_s, reply) = after_welcome(port, &mismatched);
    match reply {
        Some(Frame::Error { code, message }) => {
            assert_eq!(code, ErrorCode::Malformed);
            assert!(message.contains("does not match 3 records"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // The real agent kept going throughout.
    append_lines(&log, "g", 1000..2000);
    let out = root.join("agg-out");
    assert!(
        wait_until(Duration::from_secs(15), || read_sink(&out).len() >= 2000),
        "{}",
        agg.stderr()
    );
    let peak = peak_rss_kib(agg.child.id());
    let agg_log = agg.stderr();
    assert!(agent.stop().success());
    assert!(agg.stop().success());
    let entries = read_sink(&out);
    assert_eq!(entries.len(), 2000, "nothing from the bad peers was kept");
    assert_exactly_once_in_order(
        "good",
        &numbered(&entries)[&("good".into(), "g".into())],
        2000,
    );
    assert!(
        peak < 150 * 1024,
        "aggregator peak RSS {peak} KiB: a bomb was inflated?"
    );
    for needle in [
        "Refused forward connection: wrong token from agent \"mallory\"",
        "Refused forward connection: unknown frame type 71",
        "Refused forward connection: protocol version 99 is not supported",
        "Refused forward connection: invalid agent id \"../etc\"",
        "Closed forward connection: frame of 4294967280 bytes exceeds the maximum",
        "Closed forward connection: truncated frame",
        "Closed forward connection: batch data does not decompress",
        "Closed forward connection: batch declares 4294967295 decompressed bytes",
        "Closed forward connection: invalid category \"../../etc\"",
        "Closed forward connection: sequence range 5..=9 does not match 3 records",
    ] {
        assert_eq!(
            agg_log.matches(needle).count(),
            1,
            "expected one log line with {needle:?}:\n{agg_log}"
        );
    }
    assert!(!agg_log.contains("panicked"));
}

#[test]
fn connections_over_the_limit_are_told_so() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let agg = Daemon::start(
        root,
        &aggregator_config(root, "agg", port, "max_connections = 1", ""),
    );
    // Wait until it listens, with a connection that is released at once.
    wait_port(port);
    std::thread::sleep(Duration::from_millis(200));
    let mut first = connect(port);
    first.write_all(&hello_frame(TOKEN, 1, "first")).unwrap();
    assert!(matches!(read_one(&mut first), Some(Frame::Welcome { .. })));
    let (code, message) = expect_error(port, &hello_frame(TOKEN, 1, "second"));
    assert_eq!(code, ErrorCode::Unavailable);
    assert_eq!(message, "too many connections");
    drop(first);
    let log = agg.stderr();
    assert!(agg.stop().success());
    assert!(
        log.contains("Refused forward connection: too many connections"),
        "{log}"
    );
}
