//! Index benchmark: backfill synthetic but realistic logs, then look up random transaction ids,
//! with `grep -F` over the raw logs as the baseline in the same run.
//!
//! `QUILL_BENCH_ENTRIES` (default 1,000,000; the full size is 10,000,000) sets the number of
//! entries, `QUILL_BENCH_LOOKUPS` (default 1000) the txn-id lookups, `QUILL_BENCH_GREP_IDS`
//! (default 20) how many of the same ids grep looks for (each grep reads every raw log);
//! `QUILL_BENCH_NO_POSITIONS=1` indexes full-text words without positions;
//! `QUILL_BENCH_WRITER_THREADS` sets tantivy's indexing threads (default: the number of cores).
//! The per-core indexing number includes parsing (see ARCHITECTURE.md, "Index schema").
//! Run: `cargo bench --bench index_txn`.

/// The allocator of the `quill` binary (see `src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use quill::index::backfill::{BackfillOptions, backfill_files};
use quill::index::schema::IndexFields;
use quill::index::{DocumentBuilder, IndexReaderSet, IndexSettings, SearchRequest};
use quill::parse::ParserConfig;
use quill::parse::haproxy::logformat::HTTPLOG;
use quill::parsers::ParserRegistry;
use quill::record::{Format, Origin, Record};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: deterministic and fast.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PATHS: [&str; 8] = [
    "/api/v1/orders",
    "/api/v1/orders/8812/items",
    "/static/app.js",
    "/login",
    "/api/v1/payments",
    "/search?q=red+shoes&page=2",
    "/healthz",
    "/api/v1/users/me",
];
const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
const STATUSES: [u16; 8] = [200, 200, 200, 200, 304, 404, 500, 503];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

struct Out {
    path: PathBuf,
    host: &'static str,
    /// The source name, which picks the parser (see [`parsers`]).
    source: &'static str,
    format: Format,
    w: BufWriter<File>,
}

fn clf_time(ms: i64) -> (String, u32) {
    // 23/Nov/2026:01:08:50 style, UTC.
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!(
            "{d:02}/{}/{y}:{:02}:{:02}:{:02}",
            MONTHS[(m - 1) as usize],
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        ),
        ms.rem_euclid(1000) as u32,
    )
}

/// Writes `n` entries over HAProxy, Apache and JSON application logs of five hosts; about one
/// entry in five shares its txn id with three others (one request through lb, web and two apps).
/// Returns the files and the txn ids of shared and unshared requests.
fn generate(dir: &Path, n: usize) -> (Vec<Out>, Vec<String>, Vec<String>) {
    let mk = |name: &str, host: &'static str, format: Format| Out {
        path: dir.join(name),
        host,
        source: match format {
            Format::Haproxy => HAPROXY_SOURCE,
            Format::Apache => APACHE_SOURCE,
            _ => "app",
        },
        format,
        w: BufWriter::with_capacity(1 << 20, File::create(dir.join(name)).unwrap()),
    };
    let mut outs = vec![
        mk("lb1-haproxy.log", "lb1", Format::Haproxy),
        mk("web1-apache.log", "web1", Format::Apache),
        mk("web2-apache.log", "web2", Format::Apache),
        mk("app1-orders.json", "app1", Format::Json),
        mk("app2-payments.json", "app2", Format::Json),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut shared = Vec::new();
    let mut single = Vec::new();
    let start_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000;
    let mut t = start_ms;
    let mut written = 0;
    // Shared with probability q: 4q / (4q + 1 - q) = 1/5  =>  q = 1/17.
    while written < n {
        t += rng.below(4) as i64;
        let id = format!("{:016x}", rng.next());
        let is_shared = rng.below(17) == 0 && n - written >= 4;
        let client = format!(
            "10.{}.{}.{}",
            rng.below(256),
            rng.below(256),
            rng.below(256)
        );
        let path = PATHS[rng.below(8) as usize];
        let method = METHODS[rng.below(4) as usize];
        let status = STATUSES[rng.below(8) as usize];
        let bytes = 200 + rng.below(50_000);
        let kinds: Vec<usize> = if is_shared {
            vec![0, 1 + rng.below(2) as usize, 3, 4]
        } else {
            vec![rng.below(5) as usize]
        };
        for (step, k) in kinds.into_iter().enumerate() {
            let ts = t + step as i64 * 3;
            let (clf, millis) = clf_time(ts);
            let o = &mut outs[k];
            match o.format {
                Format::Haproxy => writeln!(
                    o.w,
                    "<134>Nov 23 01:08:50 haproxy[8425]: {client}:{port} [{clf}.{millis:03}] fe_https be_app/web{srv} 0/0/1/{tr}/{ta} {status} {bytes} - - ---- 12/12/3/1/0 0/0 \"{method} {path} HTTP/1.1\" {id}",
                    port = 1024 + rng.below(60_000),
                    srv = 1 + rng.below(2),
                    tr = rng.below(200),
                    ta = 1 + rng.below(400),
                ),
                Format::Apache => writeln!(
                    o.w,
                    "{client} - - [{clf} +0000] \"{method} {path} HTTP/1.1\" {status} {bytes} \"https://shop.example.com/\" \"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36\" {id}"
                ),
                _ => writeln!(
                    o.w,
                    "{{\"time\":\"{clf}.{millis:03}\",\"level\":\"{lvl}\",\"logger\":\"{svc}.handler\",\"msg\":\"{msg}\",\"txn_id\":\"{id}\",\"user_id\":{uid},\"duration_ms\":{dur}}}",
                    lvl = if status >= 500 { "error" } else { "info" },
                    svc = if k == 3 { "orders" } else { "payments" },
                    msg = if status >= 500 {
                        "upstream timed out while reading response"
                    } else {
                        "request handled"
                    },
                    uid = rng.below(1_000_000),
                    dur = rng.below(900),
                ),
            }
            .unwrap();
            written += 1;
        }
        if is_shared {
            shared.push(id);
        } else {
            single.push(id);
        }
    }
    for o in &mut outs {
        o.w.flush().unwrap();
    }
    (outs, shared, single)
}

const HAPROXY_SOURCE: &str = "lb";
const APACHE_SOURCE: &str = "web";

/// Parsers as a daemon configures them: HAProxy's httplog with the unique id (`%ID`) appended,
/// Apache's combined format with the `X-Request-ID` header appended; so every access line parses
/// into typed fields with its `_txn_id` (the bench checks that none fails).
fn parsers() -> Arc<ParserRegistry> {
    let haproxy = ParserConfig {
        format: Format::Haproxy,
        haproxy_log_formats: vec![format!("{HTTPLOG} %ID")],
        ..ParserConfig::default()
    };
    let apache = ParserConfig {
        format: Format::Apache,
        apache_log_formats: vec![
            r#"%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %{X-Request-ID}i"#.into(),
        ],
        ..ParserConfig::default()
    };
    let sources = vec![
        (HAPROXY_SOURCE.to_string(), haproxy.compile().unwrap()),
        (APACHE_SOURCE.to_string(), apache.compile().unwrap()),
    ];
    Arc::new(ParserRegistry::new(sources))
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    total
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// CPU time of the per-entry work before tantivy: parsing each line into GELF alone, and parsing
/// plus building its tantivy document (index fields + stored GELF), over the same logs.
/// Returns (parse only, parse + document).
fn pre_index_cpu(
    outs: &[Out],
    word_positions: bool,
    parsers: &Arc<ParserRegistry>,
) -> (Duration, Duration) {
    let mut records = Vec::new();
    for o in outs {
        let origin = Origin::new(o.source, "bench", o.format, o.host);
        let data = Bytes::from(std::fs::read(&o.path).unwrap());
        let mut start = 0;
        while let Some(len) = memchr::memchr(b'\n', &data[start..]) {
            if len > 0 {
                records.push(Record::new(origin.clone(), data.slice(start..start + len)));
            }
            start += len + 1;
        }
    }
    let mut gelf = Vec::with_capacity(2048);
    let mut sum = 0usize;
    let c0 = cpu_time();
    for r in &records {
        gelf.clear();
        parsers.encode(r, &mut gelf);
        sum += gelf.len();
    }
    let parse = cpu_time() - c0;
    let mut builder = DocumentBuilder::new(IndexFields::build(word_positions), parsers.clone());
    let c0 = cpu_time();
    for (i, r) in records.iter().enumerate() {
        let built = builder.build(r, i as u64, None);
        sum += built.timestamp_ms as usize & 1;
    }
    let build = cpu_time() - c0;
    assert!(sum > 0);
    (parse, build)
}

fn main() {
    let n = env_usize("QUILL_BENCH_ENTRIES", 1_000_000);
    let lookups = env_usize("QUILL_BENCH_LOOKUPS", 1000);
    let grep_ids = env_usize("QUILL_BENCH_GREP_IDS", 20);
    let parsers = parsers();
    let tmp = tempfile::tempdir().unwrap();
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let t0 = Instant::now();
    let (outs, shared, single) = generate(&logs, n);
    let raw_bytes: u64 = outs
        .iter()
        .map(|o| std::fs::metadata(&o.path).unwrap().len())
        .sum();
    println!(
        "generated {n} entries ({} MB raw, {} shared txn ids x4, {} single) in {:.1} s",
        raw_bytes / 1_000_000,
        shared.len(),
        single.len(),
        t0.elapsed().as_secs_f64()
    );

    // Indexing, through the same path as `quill index`.
    let root = tmp.path().join("data/index");
    let threads = env_usize(
        "QUILL_BENCH_WRITER_THREADS",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    let settings = IndexSettings {
        commit_interval: Duration::from_secs(30),
        max_age_days: 0,
        writer_threads: threads,
        writer_memory_bytes: threads * (128 << 20),
        bulk_load: true,
        word_positions: std::env::var("QUILL_BENCH_NO_POSITIONS").is_err(),
        ..IndexSettings::default()
    };
    let (parse_cpu, build_cpu) = pre_index_cpu(&outs, settings.word_positions, &parsers);
    let cpu0 = cpu_time();
    let wall0 = Instant::now();
    let inputs: Vec<(PathBuf, BackfillOptions)> = outs
        .iter()
        .map(|o| {
            let opts = BackfillOptions {
                format: o.format,
                category: "bench".into(),
                source: o.source.into(),
                host: o.host.into(),
                ..BackfillOptions::default()
            };
            (o.path.clone(), opts)
        })
        .collect();
    let added = backfill_files(&root, &settings, &inputs, parsers.clone(), &mut |_| {})
        .unwrap()
        .added;
    let wall = wall0.elapsed();
    let cpu = cpu_time() - cpu0;
    assert_eq!(added as usize, n, "every entry indexed");
    let parse_errors: u64 = parsers.parse_errors().iter().map(|(_, n)| n).sum();
    assert_eq!(parse_errors, 0, "every line parses into typed fields");
    let index_bytes = dir_bytes(&root);
    println!(
        "indexing: {n} entries in {:.1} s wall, {:.1} s CPU ({threads} writer threads): {:.0} entries/s wall, {:.0} entries/s per core",
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        n as f64 / cpu.as_secs_f64()
    );
    let per_core = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "  of which, measured separately on one core: parsing to GELF {:.1} s ({:.0} entries/s), parsing + building documents {:.1} s ({:.0} entries/s); tantivy without parsing (total minus parse): {:.0} entries/s per core",
        parse_cpu.as_secs_f64(),
        per_core(parse_cpu),
        build_cpu.as_secs_f64(),
        per_core(build_cpu),
        per_core(cpu.saturating_sub(parse_cpu)),
    );
    println!(
        "index size: {} MB, {:.1} bytes per entry ({:.2}x the raw logs)",
        index_bytes / 1_000_000,
        index_bytes as f64 / n as f64,
        index_bytes as f64 / raw_bytes as f64
    );

    // Random txn-id lookups: shared ids in proportion to requests.
    let mut rng = Rng(42);
    let ids: Vec<(&str, usize)> = (0..lookups)
        .map(|_| {
            let i = rng.below((shared.len() + single.len()) as u64) as usize;
            if i < shared.len() {
                (shared[i].as_str(), 4)
            } else {
                (single[i - shared.len()].as_str(), 1)
            }
        })
        .collect();
    let readers = IndexReaderSet::new(&root);
    let req = |id: &str| SearchRequest {
        txn_id: Some(id.to_string()),
        limit: 1000,
        ..SearchRequest::default()
    };
    readers.search(&req("warm-up")).unwrap();
    let mut lat = Vec::with_capacity(ids.len());
    for (id, expected) in &ids {
        let t = Instant::now();
        let hits = readers.search(&req(id)).unwrap();
        lat.push(t.elapsed());
        assert_eq!(hits.len(), *expected, "txn {id}");
        assert!(
            hits.windows(2)
                .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms)
        );
    }
    lat.sort();
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    println!(
        "txn lookups ({} ids, reader open): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        lat.len(),
        ms(p50),
        ms(p99),
        ms(*lat.last().unwrap())
    );
    // Cold: what one `quill search` process pays (open every partition, then look up).
    let mut cold = Vec::new();
    for (id, _) in ids.iter().take(20) {
        let t = Instant::now();
        let hits = IndexReaderSet::new(&root).search(&req(id)).unwrap();
        cold.push(t.elapsed());
        assert!(!hits.is_empty());
    }
    cold.sort();
    println!(
        "txn lookups with a fresh reader (as one `quill search` run): p50 {:.3} ms over {}",
        ms(percentile(&cold, 0.5)),
        cold.len()
    );

    // Baseline: grep -F for the same ids over the raw logs.
    let files: Vec<&Path> = outs.iter().map(|o| o.path.as_path()).collect();
    let mut grep_lat = Vec::new();
    for (id, expected) in ids.iter().take(grep_ids) {
        let t = Instant::now();
        let out = Command::new("grep")
            .arg("-F")
            .arg("-h")
            .arg(id)
            .args(&files)
            .output()
            .expect("grep runs");
        grep_lat.push(t.elapsed());
        let lines = out.stdout.iter().filter(|b| **b == b'\n').count();
        assert_eq!(lines, *expected, "grep {id}");
    }
    grep_lat.sort();
    let grep_p50 = percentile(&grep_lat, 0.5);
    println!(
        "grep -F baseline ({} of the same ids over {} MB): p50 {:.1} ms, p99 {:.1} ms",
        grep_lat.len(),
        raw_bytes / 1_000_000,
        ms(grep_p50),
        ms(percentile(&grep_lat, 0.99))
    );
    println!(
        "speedup over grep: {:.0}x at p50, {:.0}x comparing index p99 with grep p50",
        grep_p50.as_secs_f64() / p50.as_secs_f64(),
        grep_p50.as_secs_f64() / p99.as_secs_f64()
    );
}
