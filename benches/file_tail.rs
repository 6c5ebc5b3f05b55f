//! File tailing throughput against the physical baseline, measured in the same run.
//!
//! 1. Generates a file of 250-byte HAProxy lines (real `httplog` lines from
//!    `tests/fixtures/file/haproxy-httplog.log`, the request path padded to 250 bytes with LF).
//! 2. Baselines: copies the file onto the same disk in 1 MiB reads/writes with an `fdatasync`
//!    every 10 ms (the journal's default fsync cadence) and at the end: once like `cp` followed by
//!    syncs between writes, once with the syncs on a second thread while writing continues (the
//!    journal's pipelined group commit; the stronger baseline). What the disk can do for this job.
//! 3. Tails the same file with the real file source into the real on-disk journal (default
//!    config: group commit every 10 ms) until every line is durable.
//!
//! Prints MB/s and lines/s of both, the ratio (target: tailing reaches at least 70% of the
//! copy), the CPU seconds of the tailing phase (source + journal threads) and the process's
//! peak RSS (target: under 50 MiB). Both phases read the input from the page cache (it was just
//! written), so neither is favoured.
//!
//! `QUILL_BENCH_FILE_BYTES` sets the input size (default 1 GiB), `QUILL_BENCH_DIR` where the files
//! go (default: a directory under `target/`, on the disk holding the checkout). Run:
//! `QUILL_BENCH_FILE_BYTES=1073741824 cargo bench --bench file_tail`, or `scripts/bench-file`.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use quill::component::{Shutdown, SourceContext};
use quill::config::FileSourceConfig;
use quill::journal::{Journal, JournalConfig};
use quill::record::{Format, Origin};
use quill::telemetry::SourceStats;

const LINE_BYTES: usize = 250;
const FSYNC_EVERY: Duration = Duration::from_millis(10);

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// Real HAProxy lines, each padded (inside the request path) to exactly 250 bytes with its LF.
fn templates() -> Vec<Vec<u8>> {
    let text = include_str!("../tests/fixtures/file/haproxy-httplog.log");
    let mut out = Vec::new();
    for l in text.lines() {
        let Some(at) = l.rfind(" HTTP/1.1\"") else {
            continue;
        };
        if l.len() + 40 > LINE_BYTES - 1 {
            continue;
        }
        out.push((l.as_bytes()[..at].to_vec(), l.as_bytes()[at..].to_vec()));
    }
    out.into_iter()
        .map(|(head, tail)| {
            let mut v = head;
            v.extend_from_slice(b"?pad=");
            while v.len() + tail.len() < LINE_BYTES - 1 {
                v.push(b'a' + (v.len() % 26) as u8);
            }
            v.extend_from_slice(&tail);
            v.push(b'\n');
            assert_eq!(v.len(), LINE_BYTES);
            v
        })
        .collect()
}

fn generate(path: &Path, bytes: u64) -> u64 {
    let t = templates();
    assert!(!t.is_empty());
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).expect("create input"));
    let lines = bytes / LINE_BYTES as u64;
    for i in 0..lines {
        w.write_all(&t[i as usize % t.len()]).expect("write input");
    }
    let f = w.into_inner().expect("flush input");
    f.sync_all().expect("fsync input");
    lines
}

fn fdatasync(f: &File) {
    // SAFETY: fdatasync(2) on a descriptor we own.
    unsafe { libc::fdatasync(f.as_raw_fd()) };
}

/// The physical baseline: copy with the journal's fsync cadence. `pipelined = false`: `cp`
/// with an `fdatasync` every 10 ms between writes (writes stop while the disk syncs);
/// `pipelined = true`: the syncs run every 10 ms on a second thread while the copy keeps writing,
/// which is how the journal's group commit works (the stronger baseline).
fn copy_baseline(from: &Path, to: &Path, pipelined: bool) -> Duration {
    let start = Instant::now();
    let mut src = File::open(from).expect("open input");
    let dst = Arc::new(File::create(to).expect("create copy"));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let syncer = pipelined.then(|| {
        let (dst, done) = (dst.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(FSYNC_EVERY);
                fdatasync(&dst);
            }
        })
    });
    let mut buf = vec![0u8; 1 << 20];
    let mut last_sync = Instant::now();
    let mut w: &File = &dst;
    loop {
        let n = src.read(&mut buf).expect("read input");
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n]).expect("write copy");
        if !pipelined && last_sync.elapsed() >= FSYNC_EVERY {
            fdatasync(&dst);
            last_sync = Instant::now();
        }
    }
    done.store(true, Ordering::Release);
    if let Some(s) = syncer {
        s.join().expect("sync thread");
    }
    fdatasync(&dst);
    start.elapsed()
}

/// Flushes everything dirty and lets the disk settle, so phases do not pay for each other.
fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_millis(500));
}

fn rusage() -> libc::rusage {
    // SAFETY: getrusage fills the struct we hand it.
    unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut r);
        r
    }
}

/// With `QUILL_BENCH_RSS_TRACE` set, prints the process's RSS high-water mark so far.
fn trace_maxrss(at: &str) {
    if std::env::var_os("QUILL_BENCH_RSS_TRACE").is_some() {
        println!(
            "  maxrss after {at}: {:.1} MiB",
            rusage().ru_maxrss as f64 / 1024.0
        );
    }
}

fn cpu_secs(r: &libc::rusage) -> f64 {
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(r.ru_utime) + tv(r.ru_stime)
}

/// Current resident set size in KiB (`VmRSS` of /proc/self/status).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Tails `input` into a fresh journal; returns the wall time, CPU seconds, and the RSS before
/// the source started and at its peak while tailing (sampled every 5 ms), in KiB.
fn tail(input: &Path, journal_dir: &Path, lines: u64) -> (Duration, f64, u64, u64) {
    let journal = Journal::open(journal_dir, JournalConfig::default()).expect("open journal");
    let config: FileSourceConfig = toml::from_str(&format!(
        "include = [{:?}]\nformat = \"raw\"",
        input.display().to_string()
    ))
    .expect("config");
    let (trigger, shutdown) = Shutdown::new();
    let stats = Arc::new(SourceStats::default());
    let mut ctx = SourceContext::standalone(
        "bench",
        Origin::new("bench", "bench", Format::Raw, "bench"),
        journal.clone(),
        shutdown,
    );
    ctx.stats = stats.clone();
    let rss_before = rss_kib();
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let trace = std::env::var_os("QUILL_BENCH_RSS_TRACE").is_some();
            let started = Instant::now();
            let mut last_print = Instant::now();
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                let now = rss_kib();
                peak = peak.max(now);
                if trace && last_print.elapsed() >= Duration::from_millis(250) {
                    println!(
                        "  rss at {:.2} s: {:.1} MiB",
                        started.elapsed().as_secs_f64(),
                        now as f64 / 1024.0
                    );
                    last_print = Instant::now();
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let before = rusage();
    let start = Instant::now();
    let (handle, _files) = quill::sources::file::spawn(config, ctx).expect("spawn file source");
    while stats.records.load(Ordering::Relaxed) < lines {
        std::thread::sleep(Duration::from_millis(2));
    }
    let last = journal.stats().last_seq;
    while journal.durable_seq() < last {
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = start.elapsed();
    let cpu = cpu_secs(&rusage()) - cpu_secs(&before);
    trace_maxrss("tail phase, before shutdown");
    sampling.store(false, Ordering::Relaxed);
    let rss_peak = sampler.join().expect("sampler");
    trigger.trigger();
    handle
        .join()
        .expect("source thread")
        .expect("source result");
    trace_maxrss("source stopped");
    journal.close().expect("close journal");
    trace_maxrss("journal closed");
    (elapsed, cpu, rss_before, rss_peak)
}

fn main() {
    let bytes: u64 = std::env::var("QUILL_BENCH_FILE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let base: PathBuf = std::env::var_os("QUILL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-file"));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("bench dir");
    let input = base.join("haproxy.log");
    let lines = generate(&input, bytes);
    trace_maxrss("generating the input");
    let total = lines * LINE_BYTES as u64;
    println!(
        "file_tail: {} lines of {LINE_BYTES} bytes = {:.1} MiB in {}",
        lines,
        total as f64 / (1 << 20) as f64,
        base.display()
    );

    // Copies stay until the end: deleting them would trigger online discard mid-run.
    settle();
    let copy_time = copy_baseline(&input, &base.join("copy.log"), false);
    settle();
    let piped_time = copy_baseline(&input, &base.join("copy-pipelined.log"), true);
    settle();
    trace_maxrss("the baselines");
    let (tail_time, cpu, rss_before, rss_peak) = tail(&input, &base.join("journal"), lines);
    let peak_rss_mib = rss_peak as f64 / 1024.0;
    let process_peak_mib = rusage().ru_maxrss as f64 / 1024.0;

    let copy_mbs = mb_per_s(total, copy_time);
    let piped_mbs = mb_per_s(total, piped_time);
    let tail_mbs = mb_per_s(total, tail_time);
    let row = |name: &str, mbs: f64, d: Duration| {
        println!(
            "{name:<58} {mbs:8.1} MB/s {:11.0} lines/s {:7.2} s",
            lines as f64 / d.as_secs_f64(),
            d.as_secs_f64()
        )
    };
    row(
        "baseline: cp, fdatasync every 10ms between writes",
        copy_mbs,
        copy_time,
    );
    row(
        "baseline: cp, fdatasync every 10ms on a second thread",
        piped_mbs,
        piped_time,
    );
    row(
        "tail -> journal (group commit 10ms), until durable",
        tail_mbs,
        tail_time,
    );
    println!(
        "ratio tail/cp: {:.0}%   tail/cp-pipelined: {:.0}% (target >= 70%)   CPU (source + journal threads): {cpu:.2} s",
        100.0 * tail_mbs / copy_mbs,
        100.0 * tail_mbs / piped_mbs
    );
    println!(
        "RSS while tailing: peak {peak_rss_mib:.1} MiB (target < 50 MiB), {:.1} MiB before the source started; process peak (getrusage) {process_peak_mib:.1} MiB",
        rss_before as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&base);
}
