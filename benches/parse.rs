//! Throughput of the parsers, GELF output included, against a baseline that only splits the
//! same buffer into lines with memchr (measured in the same run, on one core).
//!
//! `cargo bench --bench parse` prints lines/s per case and the ratio to the baseline. The input
//! is the real corpus (tests/fixtures/parse) repeated to about 40 MB per case: HAProxy httplog
//! lines as received over syslog (RFC 3164 header), and Apache combined lines. A last case
//! measures the byte join a sink runs with `[bytes]` (HAProxy rfc5424 and Apache lines of the
//! same requests, interleaved): GELF alone versus classification, join and GELF with the
//! correction.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quill::accounting::HeaderModel;
use quill::accounting::stream::{JoinSettings, JoinStage, Joined, append_correction};
use quill::journal::Entry;
use quill::parse::haproxy::config::HaproxyConfig;
use quill::parse::{Discard, Format, Parser, ParserConfig, TxnIdSources};
use quill::parsers::ParserRegistry;
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
        if quill::gelf::encode_parsed(parser, &record, out).is_error() {
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

/// The HAProxy and Apache lines of the same requests, interleaved in blocks, as records of the
/// sources `lb` and `web` (so the registry picks their parsers), repeated to about `target` bytes.
fn join_records(target: usize) -> Vec<Entry> {
    let read = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/parse/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let (hap, web) = (read("haproxy-rfc5424.log"), read("apache-exp.log"));
    let lb = Origin::new("lb", "lb", Format::Auto, "h");
    let ap = Origin::new("web", "web", Format::Apache, "h");
    let mut out = Vec::new();
    let mut bytes = 0;
    let mut seq = 0;
    while bytes < target {
        let (mut h, mut w) = (hap.lines(), web.lines());
        loop {
            let mut any = false;
            for (lines, origin) in [(&mut w, &ap), (&mut h, &lb)] {
                for line in lines.by_ref().take(16) {
                    any = true;
                    seq += 1;
                    bytes += line.len() + 1;
                    out.push(Entry {
                        seq,
                        record: Record {
                            origin: Arc::clone(origin),
                            received_at: Timestamp(1_795_400_000_000_000_000),
                            position: Position::None,
                            flags: RecordFlags::empty(),
                            raw: Bytes::copy_from_slice(line.as_bytes()),
                        },
                    });
                }
            }
            if !any {
                break;
            }
        }
    }
    out
}

fn join_case(runs: usize, quick: bool) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/parse");
    let cfg =
        HaproxyConfig::parse(&std::fs::read_to_string(format!("{dir}/haproxy-2.6.cfg")).unwrap())
            .unwrap();
    let ids = TxnIdSources::new(&["X-Test-Id", "tid"]);
    let lb = ParserConfig {
        haproxy_config: Some(cfg.clone()),
        txn_id_sources: ids.clone(),
        ..ParserConfig::default()
    }
    .compile()
    .unwrap();
    let web = ParserConfig {
        format: Format::Apache,
        apache_log_formats: vec![r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" tid=%{X-Test-Id}i I=%I O=%O b=%b B=%B uid=%{UNIQUE_ID}e xrid=%{X-Request-ID}i xff=%{X-Forwarded-For}i X=%X k=%k D=%D cp=%{remote}p"#.into()],
        txn_id_sources: ids,
        ..ParserConfig::default()
    }
    .compile()
    .unwrap();
    let registry = std::sync::Arc::new(ParserRegistry::new(vec![
        ("lb".to_string(), lb),
        ("web".to_string(), web),
    ]));
    let mut model = HeaderModel::from_config(&cfg);
    model.assume_clients_keep_alive = true;
    let settings = JoinSettings {
        model,
        window: Duration::from_secs(10),
        capacity: 100_000,
    };
    let records = join_records(if quick { 1 << 20 } else { TARGET_BYTES });
    let bytes: usize = records.iter().map(|e| e.record.raw.len() + 1).sum();
    println!(
        "-- byte join (HAProxy rfc5424 + Apache, interleaved): {} lines, {:.1} MB",
        records.len(),
        bytes as f64 / 1e6
    );
    let mut out = Vec::with_capacity(4096);
    let gelf_only = report(
        "GELF JSON alone",
        bytes,
        best(runs, || {
            for e in &records {
                out.clear();
                registry.encode(&e.record, &mut out);
                black_box(&out);
            }
            records.len()
        }),
        None,
    );
    let mut exact = 0;
    report(
        "classify + join + GELF JSON with _bytes_sent",
        bytes,
        best(runs, || {
            let mut stage = JoinStage::new(&settings, registry.clone());
            let mut ready: Vec<Joined> = Vec::new();
            let mut n = 0;
            let mut write = |ready: &mut Vec<Joined>, out: &mut Vec<u8>| {
                for j in ready.drain(..) {
                    out.clear();
                    registry.encode(&j.entry.record, out);
                    if j.correction.is_some_and(|c| c.basis.as_str() == "exact") {
                        exact += 1;
                    }
                    append_correction(out, j.correction);
                    black_box(&out);
                    n += 1;
                }
            };
            for e in &records {
                stage.push(e.clone(), &mut ready);
                write(&mut ready, &mut out);
            }
            stage.drain(&mut ready);
            write(&mut ready, &mut out);
            n
        }),
        Some(gelf_only),
    );
    assert!(exact > 0, "the join pairs entries");
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
    if std::env::var("QUILL_BENCH").is_ok_and(|only| !"byte join".contains(only.as_str())) {
        return;
    }
    join_case(runs, quick);
}
