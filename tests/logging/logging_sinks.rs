//! Network sinks against real sockets: GELF UDP chunks reassembled by an independent reader
//! written from the GELF spec, and the agent sink delivering RFC 5424 / GELF lines to TCP and
//! unix listeners.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::time::Duration;

use crate::support::{Need, assert_gelf, gelf_lines, require};
use flate2::read::{GzDecoder, ZlibDecoder};
use quill::logging::sinks::{
    AgentAddr, AgentSink, Compression, Framing, GelfUdpSink, MAX_CHUNKS, Payload,
};
use quill::logging::{Config, Dispatcher, Level, Logger, Route, Sink};

// ---------------------------------------------------------------------------------------------
// An independent GELF UDP reader, per https://go2docs.graylog.org/current/getting_in_log_data/gelf.html
// ---------------------------------------------------------------------------------------------

/// What the reader saw.
#[derive(Default, Debug)]
struct UdpReport {
    messages: Vec<Vec<u8>>,
    chunked_ids: Vec<[u8; 8]>,
    max_datagram: usize,
    datagrams: usize,
}

struct Partial {
    count: u8,
    parts: Vec<Option<Vec<u8>>>,
}

/// Reads datagrams until `expected` messages are complete (or 3 s pass without traffic).
fn read_gelf_udp(socket: &UdpSocket, expected: usize) -> UdpReport {
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut report = UdpReport::default();
    let mut partial: HashMap<[u8; 8], Partial> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    while report.messages.len() < expected {
        let Ok(n) = socket.recv(&mut buf) else { break };
        let d = &buf[..n];
        report.datagrams += 1;
        report.max_datagram = report.max_datagram.max(n);
        if n >= 12 && d[0] == 0x1e && d[1] == 0x0f {
            let id: [u8; 8] = d[2..10].try_into().unwrap();
            let (seq, count) = (d[10], d[11]);
            assert!(count >= 1 && usize::from(count) <= 128, "count {count}");
            assert!(seq < count, "seq {seq} of {count}");
            let p = partial.entry(id).or_insert_with(|| Partial {
                count,
                parts: vec![None; usize::from(count)],
            });
            assert_eq!(p.count, count, "sequence count changed within a message");
            assert!(p.parts[usize::from(seq)].is_none(), "duplicate chunk");
            p.parts[usize::from(seq)] = Some(d[12..].to_vec());
            if p.parts.iter().all(Option::is_some) {
                let p = partial.remove(&id).unwrap();
                let whole: Vec<u8> = p.parts.into_iter().flatten().flatten().collect();
                report.chunked_ids.push(id);
                report.messages.push(decompress(&whole));
            }
        } else {
            report.messages.push(decompress(d));
        }
    }
    assert!(partial.is_empty(), "incomplete chunked messages left");
    report
}

/// GELF payloads are gzip (1f 8b), zlib (a 2-byte header with CMF*256+FLG divisible by 31) or
/// plain JSON.
fn decompress(d: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if d.starts_with(&[0x1f, 0x8b]) {
        GzDecoder::new(d).read_to_end(&mut out).unwrap();
    } else if d.len() > 2 && d[0] & 0x0f == 8 && (u16::from(d[0]) * 256 + u16::from(d[1])) % 31 == 0
    {
        ZlibDecoder::new(d).read_to_end(&mut out).unwrap();
    } else {
        assert_eq!(d[0], b'{', "uncompressed GELF must be a JSON object");
        out.extend_from_slice(d);
    }
    out
}

/// Hard-to-compress text of `len` bytes.
fn noise(len: usize, seed: u64) -> String {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(
                b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    [(x % 62) as usize],
            )
        })
        .collect()
}

fn udp_dispatcher(sink: GelfUdpSink) -> Dispatcher {
    Config::new()
        .host("udp-host")
        .sink("gelf", sink)
        .route(Route::new("").to("gelf"))
        .build()
        .unwrap()
}

fn check_udp(compression: Compression, chunk_size: usize) {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sink = GelfUdpSink::new(server.local_addr().unwrap())
        .unwrap()
        .compression(compression)
        .chunk_size(chunk_size);
    let d = udp_dispatcher(sink);
    let log = Logger::with_dispatcher("udp.test", &d);
    let big_a = noise(40_000, 1);
    let big_b = noise(25_000, 2);
    quill::info!(log, "small", n = 1);
    quill::warning!(log, "big a", blob = big_a, n = 2);
    quill::info!(log, "big b", blob = big_b, n = 3);
    quill::info!(log, "small again", n = 4);
    d.flush().unwrap();
    let report = read_gelf_udp(&server, 4);
    assert_eq!(report.messages.len(), 4, "{compression:?}");
    let mut by_n: Vec<_> = report.messages.iter().map(|m| assert_gelf(m)).collect();
    by_n.sort_by_key(|m| m["_n"].as_u64());
    assert_eq!(by_n[0]["short_message"], "small");
    assert_eq!(by_n[1]["_blob"], big_a.as_str());
    assert_eq!(by_n[1]["level"], 4);
    assert_eq!(by_n[2]["_blob"], big_b.as_str());
    assert_eq!(by_n[3]["host"], "udp-host");
    assert_eq!(
        report.chunked_ids.len(),
        2,
        "the two big messages are chunked"
    );
    assert_ne!(report.chunked_ids[0], report.chunked_ids[1]);
    assert!(report.max_datagram <= chunk_size + 12);
    assert_eq!(d.stats().sink_errors, 0);
}

#[test]
fn gelf_udp_zlib_chunks_reassemble() {
    check_udp(Compression::Zlib, GelfUdpSink::DEFAULT_CHUNK_SIZE);
}

#[test]
fn gelf_udp_gzip_chunks_reassemble() {
    check_udp(Compression::Gzip, 512);
}

#[test]
fn gelf_udp_plain_chunks_reassemble() {
    check_udp(Compression::None, 8154);
}

#[test]
fn gelf_udp_refuses_more_than_128_chunks() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sink = GelfUdpSink::new(server.local_addr().unwrap())
        .unwrap()
        .compression(Compression::None)
        .chunk_size(100);
    let d = udp_dispatcher(sink);
    let log = Logger::with_dispatcher("udp.test", &d);
    quill::info!(log, "too big", blob = noise(100 * MAX_CHUNKS, 3));
    quill::info!(log, "fits", blob = noise(100 * 50, 4));
    d.flush().unwrap();
    let report = read_gelf_udp(&server, 1);
    assert_eq!(report.messages.len(), 1);
    assert_eq!(assert_gelf(&report.messages[0])["short_message"], "fits");
    assert!(report.datagrams <= MAX_CHUNKS);
    assert_eq!(d.stats().sink_errors, 1, "the oversized message is counted");
}

#[test]
fn gelf_udp_sink_write_is_direct() {
    // The sink alone, without a dispatcher: a 1-chunk message arrives as one datagram.
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sink = GelfUdpSink::new(server.local_addr().unwrap()).unwrap();
    let entry = quill::logging::Entry::new("x", Level::Info, "m");
    sink.write(
        &entry,
        br#"{"version":"1.1","host":"h","short_message":"m","timestamp":1,"level":6}"#,
    )
    .unwrap();
    let report = read_gelf_udp(&server, 1);
    assert_eq!(report.datagrams, 1);
    assert!(report.chunked_ids.is_empty());
    assert_gelf(&report.messages[0]);
}

// ---------------------------------------------------------------------------------------------
// Agent sink: TCP and unix sockets
// ---------------------------------------------------------------------------------------------

/// Reads RFC 6587 octet-counted frames until EOF or `n` frames.
fn read_octet_frames(mut r: impl BufRead, n: usize) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while frames.len() < n {
        let mut len = Vec::new();
        if r.read_until(b' ', &mut len).unwrap() == 0 {
            break;
        }
        let len: usize = std::str::from_utf8(&len[..len.len() - 1])
            .unwrap()
            .parse()
            .unwrap();
        let mut frame = vec![0; len];
        r.read_exact(&mut frame).unwrap();
        frames.push(frame);
    }
    frames
}

/// Splits an RFC 5424 message into (PRI, header fields, MSG) and checks the header.
fn parse_5424(frame: &[u8]) -> (u8, Vec<String>, Vec<u8>) {
    let text = std::str::from_utf8(frame).unwrap();
    assert!(text.starts_with('<'), "{text}");
    let close = text.find('>').unwrap();
    let pri: u8 = text[1..close].parse().unwrap();
    let mut parts = text[close + 1..].splitn(8, ' ');
    let header: Vec<String> = parts.by_ref().take(7).map(str::to_owned).collect();
    let msg = parts.next().unwrap().as_bytes().to_vec();
    assert_eq!(header[0], "1", "version");
    let ts = &header[1];
    assert_eq!(ts.len(), 24, "{ts}");
    assert!(ts.ends_with('Z') && &ts[10..11] == "T", "{ts}");
    assert_eq!(header[6], "-", "no structured data");
    (pri, header, msg)
}

#[test]
fn agent_sink_delivers_octet_counted_syslog_over_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        read_octet_frames(BufReader::new(stream), 300)
    });
    let d = Config::new()
        .sink(
            "agent",
            AgentSink::new(AgentAddr::Tcp(addr.to_string()))
                .app_name("billing api")
                .hostname("web-7")
                .syslog_facility(16),
        )
        .route(Route::new("").to("agent"))
        .build()
        .unwrap();
    let log = Logger::with_dispatcher("billing.api", &d);
    for i in 0..300u32 {
        let level = if i % 10 == 0 {
            Level::Error
        } else {
            Level::Info
        };
        quill::log!(log, level, "charge", i = i, note = "multi\nline \"quoted\"");
    }
    d.flush().unwrap();
    drop(d);
    let frames = reader.join().unwrap();
    assert_eq!(frames.len(), 300);
    for (i, frame) in frames.iter().enumerate() {
        let (pri, header, msg) = parse_5424(frame);
        let expected_level = if i % 10 == 0 { 3 } else { 6 };
        assert_eq!(pri, 16 * 8 + expected_level);
        assert_eq!(header[2], "web-7");
        assert_eq!(header[3], "billing_api");
        assert_eq!(header[4], std::process::id().to_string());
        assert_eq!(header[5], "billing.api");
        let m = assert_gelf(&msg);
        assert_eq!(m["_i"], i as u64);
        assert_eq!(m["_note"], "multi\nline \"quoted\"");
        assert_eq!(m["level"], expected_level);
    }
}

#[test]
fn agent_sink_reconnects_after_the_agent_comes_up() {
    // Find a free port, then leave it closed for the first batch.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = Config::new()
        .sink(
            "agent",
            AgentSink::new(AgentAddr::Tcp(format!("127.0.0.1:{port}")))
                .payload(Payload::Gelf)
                .framing(Framing::Newline)
                .retry_after(Duration::from_millis(20)),
        )
        .route(Route::new("").to("agent"))
        .build()
        .unwrap();
    let log = Logger::with_dispatcher("app", &d);
    quill::info!(log, "lost: agent down");
    d.flush().unwrap();
    assert_eq!(d.stats().sink_errors, 1);
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    quill::info!(log, "delivered");
    d.flush().unwrap();
    let (stream, _) = listener.accept().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut line = Vec::new();
    BufReader::new(stream).read_until(b'\n', &mut line).unwrap();
    assert_eq!(
        assert_gelf(line.trim_ascii_end())["short_message"],
        "delivered"
    );
}

#[test]
fn agent_sink_over_unix_stream_and_datagram() {
    let dir = tempfile::tempdir().unwrap();
    let stream_path = dir.path().join("agent.sock");
    let dgram_path = dir.path().join("dev-log.sock");
    let listener = UnixListener::bind(&stream_path).unwrap();
    let dgram = UnixDatagram::bind(&dgram_path).unwrap();
    dgram
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let reader = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut all = Vec::new();
        BufReader::new(stream).read_to_end(&mut all).unwrap();
        all
    });
    // A datagram socket queues only a few messages (net.unix.max_dgram_qlen): read as they come.
    let dgram_reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        let mut got = Vec::new();
        for _ in 0..50 {
            let n = dgram.recv(&mut buf).unwrap();
            got.push(buf[..n].to_vec());
        }
        got
    });
    let d = Config::new()
        .sink(
            "stream",
            AgentSink::new(AgentAddr::UnixStream(stream_path))
                .payload(Payload::Gelf)
                .framing(Framing::Newline),
        )
        .sink("dgram", AgentSink::new(AgentAddr::UnixDatagram(dgram_path)))
        .route(Route::new("").to("stream").to("dgram"))
        .build()
        .unwrap();
    let log = Logger::with_dispatcher("local.app", &d);
    for i in 0..50 {
        quill::notice!(log, "unix", i = i);
    }
    d.flush().unwrap();
    for (i, datagram) in dgram_reader.join().unwrap().iter().enumerate() {
        let (pri, header, msg) = parse_5424(datagram);
        assert_eq!(pri, 8 + 5, "user.notice");
        assert_eq!(header[5], "local.app");
        assert_eq!(assert_gelf(&msg)["_i"], i as u64);
    }
    assert_eq!(d.stats().sink_errors, 0);
    drop(log);
    drop(d); // the last handle: the worker exits and closes the connection
    let lines = gelf_lines(&reader.join().unwrap());
    assert_eq!(lines.len(), 50);
    for (i, m) in lines.iter().enumerate() {
        assert_eq!(m["_i"], i as u64);
        assert_eq!(m["level"], 5);
    }
}

// ---------------------------------------------------------------------------------------------
// graypy (the Python GELF library) as the reference for the wire format. A missing graypy is a
// failure under CI and a visible skip elsewhere (`support::require`).
// ---------------------------------------------------------------------------------------------

const GRAYPY_SENDER: &str = r#"
import logging, sys, random, string
import graypy
port = int(sys.argv[1])
random.seed(7)
blob = "".join(random.choice(string.ascii_letters) for _ in range(30000))
log = logging.getLogger("graypy.ref")
log.setLevel(logging.INFO)
log.addHandler(graypy.GELFUDPHandler("127.0.0.1", port))  # zlib, 1420-byte chunks
log.warning("big from graypy", extra={"blob": blob, "n": 2, "ratio": 0.5})
log.info("small from graypy", extra={"n": 1})
"#;

/// The raw datagrams that arrive until the socket has been quiet for 300 ms.
fn datagrams(socket: &UdpSocket) -> Vec<Vec<u8>> {
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = vec![0u8; 65_536];
    let mut got = Vec::new();
    while let Ok(len) = socket.recv(&mut buf) {
        got.push(buf[..len].to_vec());
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
    }
    got
}

/// The messages in `raw`, reassembled by the spec reader, as JSON objects (graypy writes
/// GELF "1.0" objects with a few non-underscored fields, so no 1.1 validation here).
fn reassemble_all(raw: &[Vec<u8>]) -> Vec<serde_json::Map<String, serde_json::Value>> {
    // Replay the captured datagrams through the spec reader via a loopback socket pair.
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let expected = raw
        .iter()
        .filter(|d| !d.starts_with(&[0x1e, 0x0f]) || d[10] == 0)
        .count();
    for d in raw {
        tx.send_to(d, rx.local_addr().unwrap()).unwrap();
    }
    let report = read_gelf_udp(&rx, expected);
    report
        .messages
        .iter()
        .map(|m| serde_json::from_slice(m).unwrap())
        .collect()
}

#[test]
fn gelf_udp_wire_format_matches_graypy() {
    if !require(&[Need::Python("graypy")], "python3 -m pip install graypy") {
        return;
    }
    // graypy's datagrams.
    let graypy_rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = graypy_rx.local_addr().unwrap().port().to_string();
    let status = std::process::Command::new("python3")
        .args(["-c", GRAYPY_SENDER, &port])
        .status()
        .unwrap();
    assert!(status.success());
    // Ours, for a comparable message.
    let ours_rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let d = udp_dispatcher(GelfUdpSink::new(ours_rx.local_addr().unwrap()).unwrap());
    let log = Logger::with_dispatcher("quill.ref", &d);
    quill::warning!(
        log,
        "big from quill",
        blob = noise(30_000, 7),
        n = 2,
        ratio = 0.5
    );
    quill::info!(log, "small from quill", n = 1);
    d.flush().unwrap();

    // 30,000 random letters compress to ~18 KB: 13+ chunks of 1420 bytes, then one small one.
    let theirs = datagrams(&graypy_rx);
    let ours = datagrams(&ours_rx);
    for (who, raw) in [("graypy", &theirs), ("quill", &ours)] {
        let chunks: Vec<&Vec<u8>> = raw
            .iter()
            .filter(|d| d.starts_with(&[0x1e, 0x0f]))
            .collect();
        assert!(chunks.len() > 1, "{who}: big message not chunked");
        let count = chunks[0][11];
        assert_eq!(usize::from(count), chunks.len(), "{who}");
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c[10], i as u8, "{who}: chunks in order");
            assert_eq!(c[2..10], chunks[0][2..10], "{who}: one message id");
            if i + 1 < chunks.len() {
                assert_eq!(c.len(), 12 + 1420, "{who}: full chunks are 1420 data bytes");
            }
        }
        assert_eq!(chunks[0][12], 0x78, "{who}: zlib payload");
        let unchunked: Vec<_> = raw
            .iter()
            .filter(|d| !d.starts_with(&[0x1e, 0x0f]))
            .collect();
        assert_eq!(
            unchunked.len(),
            1,
            "{who}: the small message is one datagram"
        );
        assert_eq!(unchunked[0][0], 0x78, "{who}: zlib payload");
    }
    // Both decode with the same reader to GELF with the same field types.
    let theirs = reassemble_all(&theirs);
    let ours = reassemble_all(&ours);
    for m in &ours {
        assert_gelf(serde_json::to_string(m).unwrap().as_bytes());
    }
    assert_eq!(theirs.len(), 2);
    assert_eq!(ours.len(), 2);
    let big = |v: &Vec<serde_json::Map<String, serde_json::Value>>| {
        v.iter().find(|m| m["_n"] == 2).unwrap().clone()
    };
    let (t, o) = (big(&theirs), big(&ours));
    assert_eq!(t["_blob"].as_str().unwrap().len(), 30_000);
    assert_eq!(o["_blob"].as_str().unwrap().len(), 30_000);
    assert_eq!(t["level"], o["level"], "WARNING maps to syslog 4 in both");
    assert_eq!(t["_ratio"], o["_ratio"]);
    assert!(t["_n"].is_u64() && o["_n"].is_u64());
}
