//! Throughput of the parsers, GELF output included, against a baseline that only splits the
//! same buffer into lines with memchr (measured in the same run, on one core).
//!
//! `cargo bench --bench parse` prints lines/s per case and the ratio to the baseline. The input
//! is the real corpus (tests/fixtures/parse) repeated to about 40 MB per case: HAProxy httplog
//! lines as received over syslog (RFC 3164 header), and Apache combined lines.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quill::parse::{Discard, Format, Parser, ParserConfig};
use quill::record::{Origin, Position, Record, RecordFlags, Timestamp};

const TARGET_BYTES: usize = 40 << 20;

fn corpus(name: &str) -> Bytes {
    let path = format!("{}/tests/fixtures/parse/{name}", env!("CARGO_MANIFEST_DIR"));
    let one = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut buf = Vec::with_capacity(TARGET_BYTES + one.len());
    while buf.len() < TARGET_BYTES {
        buf.extend_from_slice(&one);
    }
    Bytes::from(buf)
}

/// CPU time of this thread: the machine is shared, so wall time would measure the neighbours.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Best of `runs` timings (thread CPU time) of `f`, which returns the number of lines handled.
fn best(runs: usize, mut f: impl FnMut() -> usize) -> (usize, Duration) {
    let mut best = Duration::MAX;
    let mut n = 0;
    for _ in 0..runs {
        let t = thread_cpu_time();
        n = f();
        best = best.min(thread_cpu_time().saturating_sub(t));
    }
    (n, best.max(Duration::from_nanos(1)))
}

fn split_baseline(buf: &Bytes) -> usize {
    let mut n = 0;
    let mut total = 0usize;
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', buf) {
        total += black_box(&buf[start..end]).len();
        start = end + 1;
        n += 1;
    }
    black_box(total);
    n
}

fn encode_all(parser: &Parser, origin: &Arc<Origin>, buf: &Bytes, out: &mut Vec<u8>) -> usize {
    let mut n = 0;
    let mut errors = 0;
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', buf) {
        let record = Record {
            origin: Arc::clone(origin),
            received_at: Timestamp(1_795_400_000_000_000_000),
            position: Position::None,
            flags: RecordFlags::empty(),
            raw: buf.slice(start..end),
        };
        out.clear();
        if parser.encode(&record, out).is_error() {
            errors += 1;
        }
        black_box(&out);
        start = end + 1;
        n += 1;
    }
    assert_eq!(errors, 0, "benchmark input must parse");
    n
}

fn parse_only(parser: &Parser, format: Format, buf: &Bytes) -> usize {
    let mut n = 0;
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', buf) {
        let r = parser.parse_line(format, &buf[start..end], 1_795_400_000_000, &mut Discard);
        black_box(r.is_ok());
        start = end + 1;
        n += 1;
    }
    n
}

fn report(name: &str, bytes: usize, (n, d): (usize, Duration), baseline: Option<f64>) -> f64 {
    let lps = n as f64 / d.as_secs_f64();
    let mbs = bytes as f64 / d.as_secs_f64() / 1e6;
    match baseline {
        Some(b) => println!(
            "{name:<44} {lps:>14.0} lines/s {mbs:>9.1} MB/s   baseline/this = {:.1}x",
            b / lps
        ),
        None => println!("{name:<44} {lps:>14.0} lines/s {mbs:>9.1} MB/s"),
    }
    lps
}

fn main() {
    // `cargo bench` passes `--bench`; anything else (`cargo test --all-targets`) gets a quick
    // smoke run on 1 MB.
    let quick = !std::env::args().any(|a| a == "--bench");
    let runs = if quick { 1 } else { 5 };
    let parser = ParserConfig::default().compile().expect("default parser");
    let origin = Origin::new("bench", "lb", Format::Auto, "bench-host");
    let mut out = Vec::with_capacity(4096);
    println!("quill parse benchmark: one thread, CPU time, best of {runs} runs");
    for (label, file, format) in [
        (
            "haproxy httplog (syslog 3164)",
            "haproxy-httplog.log",
            Format::Haproxy,
        ),
        ("apache combined", "apache-combined.log", Format::Apache),
    ] {
        // `QUILL_BENCH=haproxy` runs only the cases whose label contains that text (profiling).
        if std::env::var("QUILL_BENCH").is_ok_and(|only| !label.contains(only.as_str())) {
            continue;
        }
        let mut buf = corpus(file);
        if quick {
            buf.truncate(buf.len().min(1 << 20));
            let cut = memchr::memrchr(b'\n', &buf).map_or(0, |i| i + 1);
            buf.truncate(cut);
        }
        let p = ParserConfig {
            format,
            ..ParserConfig::default()
        }
        .compile()
        .expect("parser");
        println!(
            "-- {label}: {} lines, {:.1} MB",
            split_baseline(&buf),
            buf.len() as f64 / 1e6
        );
        let base = report(
            "baseline: memchr line split",
            buf.len(),
            best(runs, || split_baseline(&buf)),
            None,
        );
        report(
            &format!("{label} -> fields (no output)"),
            buf.len(),
            best(runs, || parse_only(&p, format, &buf)),
            Some(base),
        );
        report(
            &format!("{label} -> GELF JSON"),
            buf.len(),
            best(runs, || encode_all(&p, &origin, &buf, &mut out)),
            Some(base),
        );
        report(
            &format!("{label} -> GELF JSON, format=auto"),
            buf.len(),
            best(runs, || encode_all(&parser, &origin, &buf, &mut out)),
            Some(base),
        );
    }
}
