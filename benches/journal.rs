//! Journal throughput, each number against a baseline measured in the same run:
//!
//! 1. Appending 250-byte records (built before the clock starts) through the journal with the
//!    default group commit (fsync every 10 ms) versus writing the same record bytes with plain
//!    `write` (1 MiB buffers) and the same fsync cadence. The two alternate in slices of the same
//!    total (the machine may be shared: a load change hits both alike). Target: the journal
//!    reaches at least 80% of the plain rate.
//! 2. Replaying the journal through a cursor versus `cat` of the segment files (page cache warm).
//! 3. Walking the frames of the segment files through `mmap` versus positioned reads.
//!
//! Environment: `QUILL_BENCH_BYTES` payload size (default 1 GiB), `QUILL_BENCH_SLICES` (default
//! 8), `QUILL_BENCH_DIR` where the files go (default: a temporary directory under the current
//! directory, i.e. on the disk holding the checkout, not a tmpfs), `QUILL_BENCH_JOURNAL_ONLY=1`
//! (journal appends only, for profiling).
//! Run: `QUILL_BENCH_BYTES=1073741824 cargo bench --bench journal`.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quill::journal::{AppendBatch, Journal, JournalConfig, internals};
use quill::record::{Format, Origin, Record};

const RECORD_BYTES: usize = 250;
const BATCH_RECORDS: usize = 256;
const FSYNC_EVERY: Duration = Duration::from_millis(10);

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// 4096 distinct 250-byte log lines, as slices of one buffer.
fn lines() -> Vec<Bytes> {
    let mut buf = Vec::with_capacity(4096 * RECORD_BYTES);
    for i in 0..4096u32 {
        let start = buf.len();
        write!(
            buf,
            "10.0.{}.{}:5{:04} [23/Nov/2026:02:{:02}:{:02}.{:03}] fe~ be/srv{} 0/0/1/{}/{} 200 {} - - ---- 1/1/0/0/0 0/0 \"GET /api/v1/items/{} HTTP/1.1\" ",
            i % 256, i / 256, i, i % 60, (i * 7) % 60, i % 1000, i % 8, i % 97, i % 331, 1000 + i, i * 31
        )
        .unwrap_or(());
        while buf.len() - start < RECORD_BYTES {
            buf.push(b'a' + (buf.len() % 26) as u8);
        }
        buf.truncate(start + RECORD_BYTES);
    }
    let all = Bytes::from(buf);
    (0..4096)
        .map(|i| all.slice(i * RECORD_BYTES..(i + 1) * RECORD_BYTES))
        .collect()
}

/// CPU time (user + system) this process has used.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct we pass; RUSAGE_SELF is always valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn drop_dirty_pages() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// The plain baseline: the same record bytes, `write` in 1 MiB buffers, `fdatasync` when 10 ms
/// have passed since the last one, and once at the end of each slice (as the journal's
/// `wait_durable`).
struct PlainWriter {
    file: File,
    buf: Vec<u8>,
    next: u64,
    fsyncs: u64,
}

impl PlainWriter {
    fn slice(&mut self, lines: &[Bytes], records: u64) -> Duration {
        let start = Instant::now();
        let mut last_sync = Instant::now();
        for i in self.next..self.next + records {
            self.buf.extend_from_slice(&lines[i as usize % lines.len()]);
            if self.buf.len() >= (1 << 20) - RECORD_BYTES {
                self.file.write_all(&self.buf).unwrap();
                self.buf.clear();
                if last_sync.elapsed() >= FSYNC_EVERY {
                    self.file.sync_data().unwrap();
                    self.fsyncs += 1;
                    last_sync = Instant::now();
                }
            }
        }
        self.file.write_all(&self.buf).unwrap();
        self.buf.clear();
        self.file.sync_data().unwrap();
        self.fsyncs += 1;
        self.next += records;
        start.elapsed()
    }
}

/// Appends `batches` (built before the clock starts, as the plain writer's lines are: what is
/// timed is the journal's append path) and waits until the last is durable.
fn journal_slice(journal: &Journal, batches: Vec<AppendBatch>) -> Duration {
    let appender = journal.appender();
    let start = Instant::now();
    let mut last = 0;
    for batch in batches {
        last = appender.append_blocking(batch).unwrap().last_seq;
    }
    appender.wait_durable_blocking(last).unwrap();
    start.elapsed()
}

fn build_batches(
    lines: &[Bytes],
    origin: &Arc<Origin>,
    from: u64,
    records: u64,
) -> Vec<AppendBatch> {
    let mut batches = Vec::with_capacity((records as usize).div_ceil(BATCH_RECORDS));
    let mut n = from;
    while n < from + records {
        let k = (BATCH_RECORDS as u64).min(from + records - n);
        batches.push(AppendBatch {
            records: (n..n + k)
                .map(|i| Record::new(origin.clone(), lines[i as usize % lines.len()].clone()))
                .collect(),
            checkpoints: vec![],
        });
        n += k;
    }
    batches
}

fn open_journal(dir: &Path, payload: u64) -> Journal {
    Journal::open(
        dir,
        JournalConfig {
            max_bytes: payload * 2 + (1 << 30),
            ..JournalConfig::default()
        },
    )
    .unwrap()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep that tiny.
    let testing =
        std::env::args().any(|a| a == "--test") || !std::env::args().any(|a| a == "--bench");
    let payload: u64 = std::env::var("QUILL_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if testing { 4 << 20 } else { 1 << 30 });
    let records = payload / RECORD_BYTES as u64;
    let payload = records * RECORD_BYTES as u64;
    let base = std::env::var_os("QUILL_BENCH_DIR").unwrap_or_else(|| ".".into());
    let tmp = tempfile::Builder::new()
        .prefix("quill-journal-bench")
        .tempdir_in(base)
        .unwrap();
    let lines = lines();
    println!(
        "journal bench: {records} records of {RECORD_BYTES} bytes ({:.1} MiB payload), batches of {BATCH_RECORDS}, dir {}",
        payload as f64 / (1 << 20) as f64,
        tmp.path().display()
    );

    // 1. Appends: plain and journal alternate, `QUILL_BENCH_ROUNDS` times (default 3), each on
    // a clean page cache (sync first); the machine is shared, so the medians are what counts.
    let origin: Arc<Origin> = Origin::new("bench", "haproxy", Format::Haproxy, "bench-host");
    let jdir = tmp.path().join("journal");

    // Profiling aid: QUILL_BENCH_JOURNAL_ONLY=1 runs only the journal appends.
    if std::env::var_os("QUILL_BENCH_JOURNAL_ONLY").is_some() {
        let journal = open_journal(&jdir, payload);
        let batches = build_batches(&lines, &origin, 0, records);
        let cpu0 = cpu_time();
        let t = journal_slice(&journal, batches);
        println!(
            "append  journal only: {:.1} MB/s ({:.2} s, cpu {:.2} s)",
            mb_per_s(payload, t),
            t.as_secs_f64(),
            (cpu_time() - cpu0).as_secs_f64()
        );
        journal.close().unwrap();
        return;
    }

    // 1. Appends. The machine is shared, so the two writers alternate in slices of the same
    // total (`QUILL_BENCH_SLICES`, default 8): plain slice, journal slice, plain, journal...,
    // each after a `sync`, each ending durable. The journal keeps appending to one journal (its
    // segments roll as usual), the plain writer to one file.
    let slices: u64 = std::env::var("QUILL_BENCH_SLICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if testing { 2 } else { 8 })
        .max(1);
    let journal = open_journal(&jdir, payload);
    let mut plain = PlainWriter {
        file: File::create(tmp.path().join("plain.dat")).unwrap(),
        buf: Vec::with_capacity(1 << 20),
        next: 0,
        fsyncs: 0,
    };
    let (mut plain_time, mut journal_time) = (Duration::ZERO, Duration::ZERO);
    let (mut plain_cpu, mut journal_cpu) = (Duration::ZERO, Duration::ZERO);
    let mut ratios = Vec::new();
    let mut done = 0;
    for slice in 0..slices {
        let n = if slice + 1 == slices {
            records - done
        } else {
            records / slices
        };
        drop_dirty_pages();
        let cpu0 = cpu_time();
        let p = plain.slice(&lines, n);
        plain_cpu += cpu_time() - cpu0;
        let batches = build_batches(&lines, &origin, done, n);
        drop_dirty_pages();
        let cpu0 = cpu_time();
        let j = journal_slice(&journal, batches);
        journal_cpu += cpu_time() - cpu0;
        plain_time += p;
        journal_time += j;
        ratios.push(p.as_secs_f64() / j.as_secs_f64());
        done += n;
    }
    std::fs::remove_file(tmp.path().join("plain.dat")).unwrap();
    let st = journal.stats();
    let raw_rate = mb_per_s(payload, plain_time);
    let j_rate = mb_per_s(payload, journal_time);
    ratios.sort_by(f64::total_cmp);
    println!(
        "append  plain write + fdatasync/10ms: {raw_rate:7.1} MB/s ({:.2} s, cpu {:.2} s, {} fsyncs)",
        plain_time.as_secs_f64(),
        plain_cpu.as_secs_f64(),
        plain.fsyncs
    );
    println!(
        "append  journal, group commit:        {j_rate:7.1} MB/s ({:.2} s, cpu {:.2} s, {} fsyncs, mean {:?}, max {:?}, {} segments, {:.1} MiB on disk)",
        journal_time.as_secs_f64(),
        journal_cpu.as_secs_f64(),
        st.fsyncs,
        st.fsync_time_total / st.fsyncs.max(1) as u32,
        st.fsync_time_max,
        st.segments,
        st.bytes_held as f64 / (1 << 20) as f64,
    );
    println!(
        "append  journal/plain: {:.1} % overall; per slice median {:.1} % (min {:.1} %, max {:.1} %) over {slices} slices  (target >= 80 %)",
        100.0 * j_rate / raw_rate,
        100.0 * ratios[ratios.len() / 2],
        100.0 * ratios[0],
        100.0 * ratios[ratios.len() - 1],
    );

    // 2. Replay through a cursor vs cat (both from a warm page cache: read each once first).
    let files: Vec<_> = internals::list_segments(&jdir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let file_bytes: u64 = files
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let cat = || {
        let t = Instant::now();
        let status = Command::new("cat")
            .args(&files)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        t.elapsed()
    };
    cat();
    let cat_time = cat();
    let mut cursor = journal.cursor("bench").unwrap();
    let t = Instant::now();
    let mut read_records = 0u64;
    let mut read_payload = 0u64;
    loop {
        let batch = cursor
            .next_batch_blocking(4096, Duration::from_millis(1))
            .unwrap();
        if batch.is_empty() {
            break;
        }
        read_records += batch.len() as u64;
        read_payload += batch.iter().map(|e| e.record.raw.len() as u64).sum::<u64>();
    }
    let replay_time = t.elapsed();
    assert_eq!(read_records, records, "replay must return every record");
    assert_eq!(read_payload, payload);
    let cat_rate = mb_per_s(file_bytes, cat_time);
    let replay_rate = mb_per_s(file_bytes, replay_time);
    println!(
        "replay  cat of segment files:   {cat_rate:8.1} MB/s of file bytes ({:.2} s)",
        cat_time.as_secs_f64()
    );
    println!(
        "replay  cursor (decoded records): {replay_rate:6.1} MB/s of file bytes ({:.1} MB/s payload, {:.2} s)",
        mb_per_s(payload, replay_time),
        replay_time.as_secs_f64()
    );
    println!(
        "replay  ratio cursor/cat:       {:8.1} %",
        100.0 * replay_rate / cat_rate
    );

    // 3. Frame walk: mmap vs positioned reads.
    let t = Instant::now();
    let mut mmap_records = 0;
    for p in &files {
        let f = File::open(p).unwrap();
        // SAFETY: the journal is closed for writing below only by us; nobody truncates these
        // sealed files while the map is alive.
        let map = unsafe { memmap2::Mmap::map(&f) }.unwrap();
        mmap_records += internals::scan_slice(&map).1;
    }
    let mmap_time = t.elapsed();
    let t = Instant::now();
    let mut read_records = 0;
    for p in &files {
        read_records += internals::scan_file(p).unwrap().1;
    }
    let pread_time = t.elapsed();
    assert_eq!(mmap_records, records);
    assert_eq!(read_records, records);
    println!(
        "scan    mmap: {:8.1} MB/s   pread: {:8.1} MB/s   (pread/mmap {:.1} %)",
        mb_per_s(file_bytes, mmap_time),
        mb_per_s(file_bytes, pread_time),
        100.0 * mmap_time.as_secs_f64() / pread_time.as_secs_f64()
    );
    drop(cursor);
    journal.close().unwrap();
}
