//! The `gelf` sink against Quill's own `gelf` source (the real binary, one daemon holding both):
//! what the sink sends over TCP, HTTP, UDP (chunked, zlib and gzip), `tls://` and `https://`
//! (certificates from the real `openssl`) arrives byte for byte as the file sink writes the same
//! records. TCP, TLS and HTTP lose nothing and repeat nothing; over UDP every message that
//! arrives is exact and received + the source's counted losses = sent.

use std::path::Path;
use std::time::Duration;

use crate::support::*;

pub(crate) fn lines_under(dir: &Path) -> Vec<String> {
    let mut files: Vec<_> = walk(dir);
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if !p.to_string_lossy().ends_with("_current") {
            out.push(p);
        }
    }
    out
}

/// `n` distinct lines; with `incompressible`, a pseudo-random tail of up to `max_tail` bytes
/// that zlib/gzip cannot shrink much (so compressed messages still need chunking).
fn lines(n: usize, max_tail: usize, incompressible: bool) -> String {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!("line {i} \"quoted\" tab\there ünïcode "));
        let len = (i * 37) % max_tail;
        for _ in 0..len {
            if incompressible {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let c = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
                    [(state % 64) as usize];
                text.push(c as char);
            } else {
                text.push('x');
            }
        }
        text.push('\n');
    }
    text
}

/// One daemon: a file source of `n` lines, the gelf sink (`sink` settings) into its own gelf
/// source (`source` settings), the file sink's GELF of the same records as the expectation.
/// Returns (arrived, expected, final status line).
fn round_trip(
    sink: &str,
    source: &str,
    n: usize,
    text: &str,
    pki: bool,
    until: Duration,
) -> (Vec<String>, Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    if pki {
        make_pki(root);
    }
    std::fs::create_dir_all(root.join("in")).unwrap();
    let cfg = root.join("quill.toml");
    write_file(
        &cfg,
        &format!(
            "data_dir = \"./data\"\nstatus_interval = \"1h\"\n\n[sources.tail]\ntype = \"file\"\ninclude = [\"./in/*.log\"]\nformat = \"raw\"\npoll_interval = \"50ms\"\n\n\
             [sources.gin]\ntype = \"gelf\"\n{source}\n\n\
             [sinks.out]\ntype = \"gelf\"\ninputs = [\"tail\"]\n{sink}\n\n\
             [sinks.expect]\ntype = \"file\"\npath = \"./expect\"\ninputs = [\"tail\"]\n\n\
             [sinks.got]\ntype = \"file\"\nformat = \"raw\"\nadd_newlines = true\npath = \"./got\"\ninputs = [\"gin\"]\n"
        ),
    );
    write_file(&root.join("in/a.log"), text);
    let d = Daemon::start(root, &cfg);
    let got_dir = root.join("got/gin");
    let all = wait_until(until, || lines_under(&got_dir).len() >= n);
    if !all {
        // UDP: let what is still in flight (or expiring in the assembler) settle.
        std::thread::sleep(Duration::from_secs(6));
    }
    let (status, stderr) = d.stop_for_status();
    let got = lines_under(&got_dir);
    let expect = lines_under(&root.join("expect"));
    assert_eq!(expect.len(), n, "{stderr}");
    (got, expect, status)
}

#[test]
fn tcp_and_http_round_trips_are_byte_exact() {
    const N: usize = 2000;
    let text = lines(N, 300, false);
    // (name, sink settings beyond `to`, source settings beyond the address)
    let cases = [
        ("tcp", "", ""),
        ("http", "", ""),
        // Graylog-style bulk bodies, gzip: 200 messages or 16 KiB a POST.
        (
            "http",
            "http_batch = 200\nhttp_batch_bytes = \"16KiB\"\ncompression = \"gzip\"",
            "http_bulk = true",
        ),
        // Requests dealt over 4 connections: they may arrive out of order.
        (
            "http",
            "http_connections = 4\nhttp_batch = 7",
            "http_bulk = true",
        ),
    ];
    for (scheme, sink, source) in cases {
        let port = free_port();
        let to = if scheme == "tcp" {
            format!("tcp://127.0.0.1:{port}")
        } else {
            format!("http://127.0.0.1:{port}/gelf")
        };
        let (got, expect, _) = round_trip(
            &format!("to = \"{to}\"\n{sink}"),
            &format!("{scheme} = \"127.0.0.1:{port}\"\n{source}"),
            N,
            &text,
            false,
            Duration::from_secs(30),
        );
        assert_eq!(got.len(), N, "{scheme} {sink}: duplicates or losses");
        let (mut got, mut expect) = (got, expect);
        if sink.contains("http_connections") {
            got.sort();
            expect.sort();
        }
        assert!(
            got == expect,
            "{scheme} {sink}: what arrived differs from the file sink's GELF"
        );
    }
}

#[test]
fn tls_and_https_round_trips_are_byte_exact() {
    if !require(&[Need::Program("openssl")], "apt-get install openssl") {
        return;
    }
    const N: usize = 2000;
    let text = lines(N, 2000, true);
    for scheme in ["tls", "https"] {
        let port = free_port();
        let (to, listen) = if scheme == "tls" {
            (format!("tls://127.0.0.1:{port}"), "tcp")
        } else {
            (format!("https://127.0.0.1:{port}/gelf"), "http")
        };
        let (got, expect, _) = round_trip(
            &format!("to = \"{to}\"\ntls_ca = \"./ca.pem\""),
            &format!(
                "{listen} = \"127.0.0.1:{port}\"\ntls_cert = \"./server.pem\"\ntls_key = \"./server.key\""
            ),
            N,
            &text,
            true,
            Duration::from_secs(60),
        );
        assert_eq!(got.len(), N, "{scheme}: duplicates or losses");
        assert!(
            got == expect,
            "{scheme}: what arrived differs from the file sink's GELF"
        );
    }
}

#[test]
fn udp_chunked_zlib_and_gzip_round_trips_are_byte_exact_and_counted() {
    const N: usize = 2000;
    // Up to ~2.4 KB of incompressible text per message, datagrams of 256 bytes at most: most
    // messages need several chunks even compressed.
    let text = lines(N, 2400, true);
    for compression in ["none", "zlib", "gzip"] {
        let port = free_port();
        let (got, expect, status) = round_trip(
            &format!(
                "to = \"udp://127.0.0.1:{port}\"\nchunk_size = 256\ncompression = \"{compression}\""
            ),
            &format!("udp = \"127.0.0.1:{port}\""),
            N,
            &text,
            false,
            Duration::from_secs(30),
        );
        // Nothing twice, nothing that differs from the file sink's GELF.
        assert_at_most_once_each(&got, &expect, compression);
        let chunked = status_counter(&status, "gin", "chunked_completed");
        assert!(
            chunked > N as u64 / 2,
            "{compression}: chunking not exercised: {status}"
        );
        let missing = (N - got.len()) as u64;
        let lost: u64 = [
            "chunked_expired",
            "chunked_evicted",
            "chunked_oversized",
            "inflate_refused",
            "inflate_corrupt",
        ]
        .iter()
        .map(|c| status_counter(&status, "gin", c))
        .sum();
        let kernel = status_counter(&status, "gin", "dropped by the kernel");
        eprintln!(
            "{compression}: {missing} missing, {lost} lost in reassembly, {kernel} dropped by the kernel"
        );
        // A dropped chunk shows as an expired message; a whole datagram dropped, only in the
        // kernel's count.
        assert!(
            lost <= missing && missing <= lost + kernel,
            "{compression}: received + counted losses != sent: {status}"
        );
    }
}
