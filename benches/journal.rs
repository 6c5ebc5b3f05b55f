//! Journal throughput, each number against a baseline measured in the same run:
//!
//! 1. Appending 250-byte records (built before the clock starts) through the journal with the default group commit (fsync every
//!    10 ms) versus writing the same record bytes with plain `write` (1 MiB buffers) and the same
//!    fsync cadence. Target: the journal reaches at least 80% of the plain rate.
//! 2. Replaying the journal through a cursor versus `cat` of the segment files (page cache warm).
//! 3. Walking the frames of the segment files through `mmap` versus positioned reads (how the
//!    journal reads them).
//!
//! `QUILL_BENCH_BYTES` sets the payload size (default 1 GiB), `QUILL_BENCH_DIR` where the files
//! go (default: a temporary directory under the current directory, i.e. on the disk holding the
//! checkout, not a tmpfs). Run: `QUILL_BENCH_BYTES=1073741824 cargo bench --bench journal`.

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

fn plain_write(path: &Path, lines: &[Bytes], records: u64) -> (Duration, u64) {
    let mut file = File::create(path).unwrap();
    let mut buf = Vec::with_capacity(1 << 20);
    let mut fsyncs = 0;
    let start = Instant::now();
    let mut last_sync = Instant::now();
    for i in 0..records {
        buf.extend_from_slice(&lines[i as usize % lines.len()]);
        if buf.len() >= (1 << 20) - RECORD_BYTES {
            file.write_all(&buf).unwrap();
            buf.clear();
            if last_sync.elapsed() >= FSYNC_EVERY {
                file.sync_data().unwrap();
                fsyncs += 1;
                last_sync = Instant::now();
            }
        }
    }
    file.write_all(&buf).unwrap();
    file.sync_data().unwrap();
    (start.elapsed(), fsyncs + 1)
}

fn journal_append(dir: &Path, lines: &[Bytes], records: u64) -> (Duration, Duration, Journal) {
    let payload = records * RECORD_BYTES as u64;
    let journal = Journal::open(
        dir,
        JournalConfig {
            max_bytes: payload * 2 + (1 << 30),
            ..JournalConfig::default()
        },
    )
    .unwrap();
    let origin: Arc<Origin> = Origin::new("bench", "haproxy", Format::Haproxy, "bench-host");
    // The records exist before the clock starts, as the plain writer's lines do: what is timed
    // is the journal's append path (framing, CRC, queueing, writing, group commit).
    let mut batches = Vec::with_capacity((records as usize).div_ceil(BATCH_RECORDS));
    let mut n = 0u64;
    while n < records {
        let k = (BATCH_RECORDS as u64).min(records - n);
        batches.push(AppendBatch {
            records: (n..n + k)
                .map(|i| Record::new(origin.clone(), lines[i as usize % lines.len()].clone()))
                .collect(),
            checkpoints: vec![],
        });
        n += k;
    }
    let appender = journal.appender();
    let cpu0 = cpu_time();
    let start = Instant::now();
    let mut last = 0;
    for batch in batches {
        last = appender.append_blocking(batch).unwrap().last_seq;
    }
    appender.wait_durable_blocking(last).unwrap();
    (start.elapsed(), cpu_time() - cpu0, journal)
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
    // Profiling aid: QUILL_BENCH_JOURNAL_ONLY=1 runs only the journal appends.
    if std::env::var_os("QUILL_BENCH_JOURNAL_ONLY").is_some() {
        let (t, cpu, j) = journal_append(&tmp.path().join("journal"), &lines, records);
        println!(
            "append  journal only: {:.1} MB/s ({:.2} s, cpu {:.2} s)",
            mb_per_s(payload, t),
            t.as_secs_f64(),
            cpu.as_secs_f64()
        );
        j.close().unwrap();
        return;
    }
    let rounds: usize = std::env::var("QUILL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if testing { 1 } else { 3 });
    let jdir = tmp.path().join("journal");
    let mut raw_rates = Vec::new();
    let mut j_rates = Vec::new();
    let mut journal = None;
    for round in 1..=rounds.max(1) {
        drop(journal.take());
        let _ = std::fs::remove_dir_all(&jdir);
        drop_dirty_pages();
        let cpu0 = cpu_time();
        let (raw_time, raw_fsyncs) = plain_write(&tmp.path().join("plain.dat"), &lines, records);
        let raw_cpu = cpu_time() - cpu0;
        std::fs::remove_file(tmp.path().join("plain.dat")).unwrap();
        drop_dirty_pages();
        let (j_time, j_cpu, j) = journal_append(&jdir, &lines, records);
        let st = j.stats();
        let raw_rate = mb_per_s(payload, raw_time);
        let j_rate = mb_per_s(payload, j_time);
        println!(
            "append  round {round}: plain write+fsync/10ms {raw_rate:7.1} MB/s ({:.2} s, cpu {:.2} s, {raw_fsyncs} fsyncs) | journal {j_rate:7.1} MB/s ({:.2} s, cpu {:.2} s, {} fsyncs, mean {:?}, max {:?}, {} segments, {:.1} MiB on disk) | {:.1} %",
            raw_time.as_secs_f64(),
            raw_cpu.as_secs_f64(),
            j_time.as_secs_f64(),
            j_cpu.as_secs_f64(),
            st.fsyncs,
            st.fsync_time_total / st.fsyncs.max(1) as u32,
            st.fsync_time_max,
            st.segments,
            st.bytes_held as f64 / (1 << 20) as f64,
            100.0 * j_rate / raw_rate,
        );
        raw_rates.push(raw_rate);
        j_rates.push(j_rate);
        journal = Some(j);
    }
    let Some(journal) = journal else {
        return;
    };
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (raw_med, j_med) = (median(&mut raw_rates), median(&mut j_rates));
    println!(
        "append  median: plain {raw_med:.1} MB/s, journal {j_med:.1} MB/s, ratio {:.1} %  (target >= 80 %)",
        100.0 * j_med / raw_med
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
