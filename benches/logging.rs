//! ns per log call with five fields to a file: quill's logger (and its tracing layer) vs
//! tracing-subscriber's JSON formatter, in the same run.
//!
//! Run: `cargo bench --bench logging` (N calls per round with `QUILL_BENCH_N`, default 200000).
//!
//! quill is measured twice: the caller's time (what a request handler pays: capture + queue
//! push; the worker thread encodes and writes in parallel; with a 64 Ki-entry queue and N above
//! that, callers end up paced by the worker) and end to end (until the last line is written and
//! flushed). The "queue never full" row has a queue larger than N: the caller's cost alone. tracing-subscriber formats and writes on the caller's thread, to the
//! file directly (its usual setup) and through a `BufWriter` (its best case).

use std::fs::File;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use quill::logging::sinks::FileSink;
use quill::logging::{Config, GelfLayer, Logger, Route, TxnId, WhenFull};
use tracing_subscriber::layer::SubscriberExt;

const ROUNDS: usize = 5;

struct Result {
    name: &'static str,
    caller: Duration,
    total: Duration,
    bytes: u64,
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .unwrap()
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

fn quill_logger(dir: &Path, n: usize, txn: &str) -> Result {
    quill_logger_with_queue(dir, n, txn, 64 * 1024, "quill Logger -> FileSink")
}

/// The queue holds every entry: the caller's cost alone, as in a burst below capacity.
fn quill_logger_roomy(dir: &Path, n: usize, txn: &str) -> Result {
    quill_logger_with_queue(dir, n, txn, n + 1, "quill Logger, queue never full")
}

fn quill_logger_with_queue(
    dir: &Path,
    n: usize,
    txn: &str,
    capacity: usize,
    name: &'static str,
) -> Result {
    let path = dir.join("quill.log");
    let _ = std::fs::remove_file(&path);
    let d = Config::new()
        .queue_capacity(capacity)
        .when_full(WhenFull::Block)
        .host("bench-host")
        .sink("file", FileSink::new(&path).unwrap())
        .route(Route::new("").to("file"))
        .build()
        .unwrap();
    let log = Logger::with_dispatcher("bench.api", &d);
    let start = Instant::now();
    for i in 0..n {
        quill::info!(
            log,
            "request served",
            user_id = black_box(i as u64),
            path = black_box("/api/v1/items"),
            status = black_box(200u16),
            latency_ms = black_box(12.5f64),
            txn_id = black_box(txn),
        );
    }
    let caller = start.elapsed();
    d.flush().unwrap();
    let total = start.elapsed();
    assert_eq!(count_lines(&path), n);
    Result {
        name,
        caller,
        total,
        bytes: std::fs::metadata(&path).unwrap().len(),
    }
}

fn quill_tracing_layer(dir: &Path, n: usize, txn: &str) -> Result {
    let path = dir.join("quill-layer.log");
    let _ = std::fs::remove_file(&path);
    let d = Config::new()
        .queue_capacity(64 * 1024)
        .host("bench-host")
        .sink("file", FileSink::new(&path).unwrap())
        .route(Route::new("").to("file"))
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(GelfLayer::with_dispatcher(&d));
    let (caller, total) = tracing::subscriber::with_default(subscriber, || {
        let start = Instant::now();
        for i in 0..n {
            tracing::info!(
                user_id = black_box(i as u64),
                path = black_box("/api/v1/items"),
                status = black_box(200u16),
                latency_ms = black_box(12.5f64),
                txn_id = black_box(txn),
                "request served"
            );
        }
        let caller = start.elapsed();
        d.flush().unwrap();
        (caller, start.elapsed())
    });
    assert_eq!(count_lines(&path), n);
    Result {
        name: "quill GelfLayer (tracing) -> FileSink",
        caller,
        total,
        bytes: std::fs::metadata(&path).unwrap().len(),
    }
}

fn tracing_json<W>(name: &'static str, path: &Path, writer: Mutex<W>, n: usize, txn: &str) -> Result
where
    W: Write + Send + 'static,
{
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(writer)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let elapsed = tracing::subscriber::with_default(subscriber, || {
        let start = Instant::now();
        for i in 0..n {
            tracing::info!(
                user_id = black_box(i as u64),
                path = black_box("/api/v1/items"),
                status = black_box(200u16),
                latency_ms = black_box(12.5f64),
                txn_id = black_box(txn),
                "request served"
            );
        }
        start.elapsed()
    });
    // (The subscriber, and with it a BufWriter, is dropped and flushed by now.)
    assert_eq!(count_lines(path), n);
    Result {
        name,
        caller: elapsed,
        total: elapsed,
        bytes: std::fs::metadata(path).unwrap().len(),
    }
}

fn tracing_json_file(dir: &Path, n: usize, txn: &str) -> Result {
    let path = dir.join("tracing.log");
    let file = File::create(&path).unwrap();
    tracing_json(
        "tracing-subscriber json -> File",
        &path,
        Mutex::new(file),
        n,
        txn,
    )
}

fn tracing_json_buffered(dir: &Path, n: usize, txn: &str) -> Result {
    let path = dir.join("tracing-buf.log");
    let file = BufWriter::with_capacity(64 * 1024, File::create(&path).unwrap());
    tracing_json(
        "tracing-subscriber json -> BufWriter<File>",
        &path,
        Mutex::new(file),
        n,
        txn,
    )
}

fn ns(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it with a tiny N.
    let testing = !std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("QUILL_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if testing { 1000 } else { 200_000 });
    let rounds = if testing { 1 } else { ROUNDS };
    let dir = tempfile::tempdir().unwrap();
    let txn = TxnId::new().to_string();
    type Bench = fn(&Path, usize, &str) -> Result;
    let benches: [Bench; 5] = [
        quill_logger,
        quill_logger_roomy,
        quill_tracing_layer,
        tracing_json_file,
        tracing_json_buffered,
    ];
    // Best of `rounds` for each, interleaved so machine noise hits all alike.
    let mut best: Vec<Option<Result>> = (0..benches.len()).map(|_| None).collect();
    for _ in 0..rounds {
        for (slot, bench) in best.iter_mut().zip(benches) {
            let r = bench(dir.path(), n, &txn);
            if slot.as_ref().is_none_or(|b| r.caller < b.caller) {
                *slot = Some(r);
            }
        }
    }
    let results: Vec<Result> = best.into_iter().flatten().collect();
    let baseline = ns(results[3].caller, n);
    let baseline_buf = ns(results[4].caller, n);
    println!("log call with 5 fields to a file, N = {n}, best of {rounds} rounds");
    println!(
        "{:<44} {:>12} {:>14} {:>10} {:>12} {:>12}",
        "", "caller ns", "end-to-end ns", "bytes/line", "vs File", "vs BufWriter"
    );
    for r in &results {
        println!(
            "{:<44} {:>12.1} {:>14.1} {:>10} {:>11.2}x {:>11.2}x",
            r.name,
            ns(r.caller, n),
            ns(r.total, n),
            r.bytes / n as u64,
            ns(r.caller, n) / baseline,
            ns(r.caller, n) / baseline_buf,
        );
    }
    println!("(ratios: caller ns divided by tracing-subscriber's; below 1.00x is faster)");
}
