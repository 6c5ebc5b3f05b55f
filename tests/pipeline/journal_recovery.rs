//! Journal behaviour on disk: torn tails, bit rot in sealed segments (reported with segment and
//! offset), checkpoints surviving segment deletion, backpressure, ENOSPC, cursor persistence and
//! the directory lock.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use quill::journal::{
    AppendBatch, Checkpoint, FsyncPolicy, Journal, JournalConfig, TryAppendError, internals,
};
use quill::record::{Format, Origin, Position, Record};

use crate::support::drain_cursor;

fn rec(n: u64) -> Record {
    let mut r = Record::new(
        Origin::new("files", "web", Format::Raw, "h1"),
        Bytes::from(format!("line {n:06} {}", "x".repeat(100))),
    );
    r.position = Position::File {
        file_id: 7,
        end_offset: n * 100,
    };
    r
}

fn batch(from: u64, n: u64) -> AppendBatch {
    AppendBatch {
        records: (from..from + n).map(rec).collect(),
        checkpoints: vec![Checkpoint {
            key: "file:7".into(),
            value: Bytes::from((from + n - 1).to_string()),
        }],
    }
}

fn small(fsync: FsyncPolicy) -> JournalConfig {
    JournalConfig {
        fsync,
        fsync_interval: Duration::from_millis(2),
        segment_bytes: 4096,
        max_bytes: 64 << 20,
    }
}

fn line_no(r: &Record) -> u64 {
    std::str::from_utf8(&r.raw[5..11]).unwrap().parse().unwrap()
}

fn read_all(j: &Journal, cursor: &str) -> Vec<(u64, u64)> {
    let mut c = j.cursor(cursor).unwrap();
    drain_cursor(&mut c, 50, Duration::from_millis(50))
        .iter()
        .map(|e| (e.seq, line_no(&e.record)))
        .collect()
}

fn append_lines(j: &Journal, from: u64, to: u64, per_batch: u64) {
    let a = j.appender();
    let mut n = from;
    let mut last = 0;
    while n <= to {
        let k = per_batch.min(to - n + 1);
        last = a.append_blocking(batch(n, k)).unwrap().last_seq;
        n += k;
    }
    a.wait_durable_blocking(last).unwrap();
}

/// Captures `tracing` output for the assertions on what the journal reports.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn with_captured_logs<T>(f: impl FnOnce() -> T) -> (T, String) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    (out, text)
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    internals::list_segments(dir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

#[test]
fn torn_tail_is_truncated_and_appends_continue() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let j = Journal::open(&dir, small(FsyncPolicy::Always)).unwrap();
    append_lines(&j, 1, 10, 3);
    j.close().unwrap();
    drop(j);
    let tail = segments(&dir).pop().unwrap();
    let good_len = std::fs::metadata(&tail).unwrap().len();
    // A torn write: the first half of a valid frame copied from the segment, then zeros.
    let bytes = std::fs::read(&tail).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&tail).unwrap();
    f.write_all_at(&bytes[32..32 + 60], good_len).unwrap();
    f.write_all_at(&[0u8; 100], good_len + 60).unwrap();
    drop(f);

    let (j, logs) = with_captured_logs(|| Journal::open(&dir, small(FsyncPolicy::Always)).unwrap());
    assert!(logs.contains("truncating the torn tail"), "{logs}");
    assert_eq!(std::fs::metadata(&tail).unwrap().len(), good_len);
    assert_eq!(j.durable_seq(), 10);
    assert_eq!(j.checkpoint("file:7").as_deref(), Some(&b"10"[..]));
    append_lines(&j, 11, 12, 2);
    let got = read_all(&j, "r");
    assert_eq!(got, (1..=12).map(|n| (n, n)).collect::<Vec<_>>());
}

#[test]
fn tail_with_torn_header_is_recreated() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let j = Journal::open(&dir, small(FsyncPolicy::Always)).unwrap();
    append_lines(&j, 1, 60, 4);
    j.close().unwrap();
    drop(j);
    let tail = segments(&dir).pop().unwrap();
    let first: u64 = tail.file_name().unwrap().to_str().unwrap()[..20]
        .parse()
        .unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&tail)
        .unwrap()
        .set_len(10)
        .unwrap();
    let j = Journal::open(&dir, small(FsyncPolicy::Always)).unwrap();
    assert_eq!(j.durable_seq(), first - 1);
    let got = read_all(&j, "r");
    assert_eq!(got.len() as u64, first - 1);
    let r = j.appender().append_blocking(batch(first, 1)).unwrap();
    assert_eq!(r.first_seq, first);
}

#[test]
fn bit_rot_in_a_sealed_segment_is_reported_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let j = Journal::open(&dir, small(FsyncPolicy::Never)).unwrap();
    append_lines(&j, 1, 200, 5);
    j.close().unwrap();
    drop(j);
    let segs = segments(&dir);
    assert!(segs.len() >= 4, "{segs:?}");
    // Flip one byte in the middle of the second segment's payload.
    let victim = &segs[1];
    let mut bytes = std::fs::read(victim).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(victim, &bytes).unwrap();

    let j = Journal::open(&dir, small(FsyncPolicy::Never)).unwrap();
    let (got, logs) = with_captured_logs(|| read_all(&j, "r"));
    let name = victim.file_name().unwrap().to_str().unwrap();
    assert!(
        logs.contains("corrupt journal frame") && logs.contains(name) && logs.contains("offset="),
        "{logs}"
    );
    // Exactly one batch of 5 is gone, everything after it is there, in order, intact.
    assert_eq!(got.len(), 195);
    let missing: Vec<u64> = (1..=200)
        .filter(|n| !got.iter().any(|(_, l)| l == n))
        .collect();
    assert_eq!(missing.len(), 5);
    assert_eq!(missing[4] - missing[0], 4);
    assert!(got.iter().all(|(seq, line)| seq == line));
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn checkpoints_survive_segment_deletion_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let j = Journal::open(&dir, small(FsyncPolicy::Interval)).unwrap();
    let a = j.appender();
    let old = a
        .append_blocking(AppendBatch {
            records: vec![rec(0)],
            checkpoints: vec![Checkpoint {
                key: "file:old".into(),
                value: Bytes::from_static(b"done"),
            }],
        })
        .unwrap();
    a.wait_durable_blocking(old.last_seq).unwrap();
    append_lines(&j, 1, 300, 7);
    let mut c = j.cursor("sink").unwrap();
    c.ack(j.durable_seq(), Some(Bytes::from_static(b"out=123")))
        .unwrap();
    let st = j.stats();
    assert!(st.segments <= 2, "{st:?}");
    assert!(
        !segments(&dir)
            .iter()
            .any(|p| p.ends_with("00000000000000000001.qjs")),
        "the first segment was deleted"
    );
    drop(c);
    j.close().unwrap();
    drop(j);
    let j = Journal::open(&dir, small(FsyncPolicy::Interval)).unwrap();
    assert_eq!(j.checkpoint("file:old").as_deref(), Some(&b"done"[..]));
    assert_eq!(j.checkpoint("file:7").as_deref(), Some(&b"300"[..]));
    assert_eq!(j.checkpoints_with_prefix("file:").len(), 2);
    let c = j.cursor("sink").unwrap();
    assert_eq!(c.acked(), 301);
    assert_eq!(c.sink_state().map(|b| &b[..]), Some(&b"out=123"[..]));
    // A new cursor starts at the oldest record still held.
    let first_held = internals::list_segments(&dir).unwrap()[0].0;
    assert_eq!(j.cursor("late").unwrap().acked(), first_held - 1);
}

#[test]
fn a_full_journal_applies_backpressure_until_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let cfg = JournalConfig {
        max_bytes: 32 << 10,
        segment_bytes: 4096,
        ..small(FsyncPolicy::Interval)
    };
    let j = Journal::open(&dir, cfg).unwrap();
    let mut c = j.cursor("sink").unwrap();
    let a = j.appender();
    let mut n = 1;
    loop {
        match a.try_append(batch(n, 4)) {
            Ok(_) => n += 4,
            Err(TryAppendError::Full(_)) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(n < 10_000, "never became full");
    }
    assert!(j.stats().bytes_held <= 32 << 10);
    let blocked = {
        let a = a.clone();
        let from = n;
        std::thread::spawn(move || {
            let t = Instant::now();
            a.append_blocking(batch(from, 4)).unwrap();
            t.elapsed()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!blocked.is_finished(), "append_blocking did not wait");
    // The sink catches up: acknowledged segments go away and the writer gets room.
    loop {
        let b = c
            .next_batch_blocking(100, Duration::from_millis(100))
            .unwrap();
        if b.is_empty() {
            break;
        }
        c.ack(b.last().unwrap().seq, None).unwrap();
        if blocked.is_finished() {
            break;
        }
    }
    let waited = blocked.join().unwrap();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(j.stats().bytes_held <= 32 << 10);
}

#[test]
fn enospc_blocks_appends_without_corrupting_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let j = Journal::open(&dir, small(FsyncPolicy::Always)).unwrap();
    append_lines(&j, 1, 20, 5);
    j.inject_write_failures(3);
    let a = j.appender();
    let r = a.append_blocking(batch(21, 5)).unwrap();
    // The writer hits "disk full": appends see a full journal while it retries.
    let t = Instant::now();
    while !j.stats().write_blocked {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(matches!(
        a.try_append(batch(26, 1)),
        Err(TryAppendError::Full(_))
    ));
    // Space comes back (the injected failures run out): the batch becomes durable, once.
    a.wait_durable_blocking(r.last_seq).unwrap();
    let st = j.stats();
    assert!(st.write_errors >= 3 && !st.write_blocked, "{st:?}");
    append_lines(&j, 26, 30, 5);
    j.close().unwrap();
    drop(j);
    let j = Journal::open(&dir, small(FsyncPolicy::Always)).unwrap();
    let got = read_all(&j, "r");
    assert_eq!(got, (1..=30).map(|n| (n, n)).collect::<Vec<_>>());
}

#[test]
fn close_reports_a_writer_that_could_not_make_records_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let j = Journal::open(&dir, small(FsyncPolicy::Always)).unwrap();
    append_lines(&j, 1, 10, 5);
    // The disk stays full past the writer's close retries.
    j.inject_write_failures(u32::MAX);
    j.appender().append_blocking(batch(11, 5)).unwrap();
    let t = Instant::now();
    let e = j.close().expect_err("records 11..=15 never became durable");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let message = e.to_string();
    assert!(message.contains("write:"), "{message}");
    assert!(
        message.contains(&std::io::Error::from_raw_os_error(libc::ENOSPC).to_string()),
        "{message}"
    );
    // Reported once; what was durable stays readable.
    j.close().unwrap();
    drop(j);
    let j = Journal::open(&dir, small(FsyncPolicy::Always)).unwrap();
    assert_eq!(
        read_all(&j, "r"),
        (1..=10).map(|n| (n, n)).collect::<Vec<_>>()
    );
}

#[test]
fn records_round_trip_through_disk_with_every_field() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let mut r1 = rec(1);
    r1.flags = quill::record::RecordFlags::from_bits(5);
    r1.received_at = quill::record::Timestamp(-42);
    let r2 = Record::new(
        Origin::new("udp", "syslog", Format::Syslog, "relay-9"),
        Bytes::from_static(b"\xff\x00binary"),
    );
    {
        let j = Journal::open(&dir, small(FsyncPolicy::Always)).unwrap();
        let a = j.appender();
        let r = a
            .append_blocking(AppendBatch {
                records: vec![r1.clone(), r2.clone()],
                checkpoints: vec![],
            })
            .unwrap();
        a.wait_durable_blocking(r.last_seq).unwrap();
    }
    let j = Journal::open(&dir, small(FsyncPolicy::Always)).unwrap();
    let mut c = j.cursor("x").unwrap();
    let got = c
        .next_batch_blocking(10, Duration::from_millis(100))
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].record, r1);
    assert_eq!(got[1].record, r2);
}

#[test]
fn a_journal_directory_is_opened_by_one_process_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let j = Journal::open(&dir, small(FsyncPolicy::Never)).unwrap();
    let err = Journal::open(&dir, small(FsyncPolicy::Never))
        .err()
        .expect("second open must fail");
    assert!(err.to_string().contains("in use"), "{err}");
    j.close().unwrap();
    drop(j);
    Journal::open(&dir, small(FsyncPolicy::Never)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_appends_wait_for_space_and_durability() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let cfg = JournalConfig {
        max_bytes: 24 << 10,
        ..small(FsyncPolicy::Interval)
    };
    let j = Journal::open(&dir, cfg).unwrap();
    let mut c = j.cursor("sink").unwrap();
    let a = j.appender();
    let writer = tokio::spawn(async move {
        let mut last = 0;
        for i in 0..100u64 {
            last = a.append(batch(i * 4 + 1, 4)).await.unwrap().last_seq;
        }
        a.wait_durable(last).await.unwrap();
        last
    });
    let mut seen = 0u64;
    while seen < 400 {
        let b = c.next_batch(64).await.unwrap();
        for e in &b {
            assert_eq!(e.seq, seen + 1);
            assert_eq!(line_no(&e.record), e.seq);
            seen = e.seq;
        }
        c.ack_async(seen, None).await.unwrap();
    }
    assert_eq!(writer.await.unwrap(), 400);
    assert!(j.stats().fsyncs > 0);
}

/// Unmounts the test's tmpfs when the test ends, even on failure.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A real full filesystem (a 3 MiB tmpfs; needs root to mount, skipped otherwise): the writer
/// blocks on ENOSPC without corrupting anything, the sink can still acknowledge (the reserve file
/// makes room for its cursor file), acknowledged segments are deleted, and the blocked batches are
/// written once space returns. Every record is then present exactly once.
#[test]
fn a_really_full_disk_blocks_appends_and_recovers_when_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&mnt)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _unmount = Unmount(mnt.clone());
    let dir = mnt.join("j");
    let cfg = JournalConfig {
        fsync: FsyncPolicy::Always,
        fsync_interval: Duration::from_millis(1),
        segment_bytes: 128 << 10,
        max_bytes: 64 << 20, // far more than the filesystem holds
    };
    let j = Journal::open(&dir, cfg.clone()).unwrap();
    let a = j.appender();
    let mut c = j.cursor("sink").unwrap();
    // Fill the disk.
    let mut next = 1;
    let t = Instant::now();
    while !j.stats().write_blocked {
        match a.try_append(batch(next, 10)) {
            Ok(_) => next += 10,
            Err(TryAppendError::Full(_)) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("{e}"),
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the disk never filled"
        );
    }
    let appended_last = next - 1;
    assert!(j.stats().write_errors > 0);
    // Take whatever space is left, to the last byte.
    let mut filler = std::fs::File::create(mnt.join("filler")).unwrap();
    while filler.write_all(&[7u8; 512]).is_ok() {}
    assert!(matches!(
        a.try_append(batch(next, 1)),
        Err(TryAppendError::Full(_))
    ));
    // The sink reads and acknowledges what is durable; that frees segments and the writer
    // finishes the blocked batches.
    let mut seen = 0u64;
    let t = Instant::now();
    let ((), logs) = with_captured_logs(|| {
        while seen < appended_last {
            let b = c
                .next_batch_blocking(500, Duration::from_millis(50))
                .unwrap();
            for e in &b {
                assert_eq!(e.seq, seen + 1);
                assert_eq!(line_no(&e.record), e.seq, "record {} intact", e.seq);
                seen = e.seq;
            }
            if !b.is_empty() {
                c.ack(seen, Some(Bytes::from(seen.to_string()))).unwrap();
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "stuck at {seen} of {appended_last}: {:?}",
                j.stats()
            );
        }
    });
    assert!(
        logs.contains("releasing the reserve file"),
        "the acknowledgement needed the reserve: {logs}"
    );
    a.wait_durable_blocking(appended_last).unwrap();
    assert!(!j.stats().write_blocked);
    // Appends work again, and the journal survives a restart intact.
    append_lines(&j, next, next + 9, 5);
    drop(c);
    j.close().unwrap();
    drop(j);
    let j = Journal::open(&dir, cfg).unwrap();
    let c = j.cursor("sink").unwrap();
    assert_eq!(c.acked(), appended_last);
    let got = read_all(&j, "sink");
    assert_eq!(
        got,
        (appended_last + 1..=next + 9)
            .map(|n| (n, n))
            .collect::<Vec<_>>()
    );
}

/// Record `n` with a payload of `size` bytes (its line number first, as `rec`).
fn big_rec(n: u64, size: usize) -> Record {
    let head = format!("line {n:06} ");
    let mut raw = head.into_bytes();
    raw.resize(size, b'y');
    Record::new(
        Origin::new("fwd", "web", Format::Raw, "h1"),
        Bytes::from(raw),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_async_batches_encoded_off_the_lock_interleave_with_small_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let cfg = JournalConfig {
        segment_bytes: 8 << 20,
        ..small(FsyncPolicy::Interval)
    };
    let j = Journal::open(&dir, cfg).unwrap();
    let a = j.appender();
    // 12 MiB batches (three frames each, numbered under the lock) between small ones, from
    // concurrent tasks; every record reads back once, in its batch's order.
    let large = {
        let a = a.clone();
        tokio::spawn(async move {
            for b in 0..3u64 {
                let records = (0..40)
                    .map(|i| big_rec(1000 + b * 40 + i, 300 << 10))
                    .collect();
                let batch = AppendBatch {
                    records,
                    checkpoints: vec![],
                };
                let r = a.append(batch).await.unwrap();
                assert_eq!(r.last_seq - r.first_seq, 39);
            }
        })
    };
    let mut last = 0;
    for i in 0..50u64 {
        last = last.max(a.append(batch(i * 2 + 1, 2)).await.unwrap().last_seq);
    }
    large.await.unwrap();
    a.wait_durable(last.max(a.durable_seq())).await.unwrap();
    j.close().unwrap();
    drop(j);
    let j = Journal::open(&dir, small(FsyncPolicy::Interval)).unwrap();
    let got = read_all(&j, "r");
    assert_eq!(got.len(), 220);
    let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=220).collect::<Vec<_>>());
    let mut lines: Vec<u64> = got.iter().map(|(_, l)| *l).collect();
    let large_order: Vec<u64> = lines.iter().copied().filter(|&l| l >= 1000).collect();
    assert_eq!(large_order, (1000..1120).collect::<Vec<_>>());
    lines.sort_unstable();
    let want: Vec<u64> = (1..=100).chain(1000..1120).collect();
    assert_eq!(lines, want);
}

/// The tail overwritten after two cursors acknowledged different amounts: recovery names and
/// counts the cut, the checkpoint is the last surviving frame's, and when the source appends
/// the lines after it again (new sequence numbers, same file positions) the cursor that had
/// delivered them skips them (also after another restart: the fence is persisted) while the
/// cursor that had not gets each line once.
#[test]
fn a_damaged_tail_makes_cursors_skip_what_they_had_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("j");
    let cfg = JournalConfig {
        segment_bytes: 1 << 20,
        ..small(FsyncPolicy::Always)
    };
    let j = Journal::open(&dir, cfg.clone()).unwrap();
    append_lines(&j, 1, 100, 5);
    for (name, upto) in [("ahead", 100), ("behind", 40)] {
        let mut c = j.cursor(name).unwrap();
        let mut seen = 0;
        while seen < upto {
            let b = c
                .next_batch_blocking(5, Duration::from_millis(100))
                .unwrap();
            seen = b.last().unwrap().seq;
        }
        c.ack(upto, None).unwrap();
    }
    j.close().unwrap();
    drop(j);
    let tail = segments(&dir).pop().unwrap();
    let len = std::fs::metadata(&tail).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&tail).unwrap();
    f.write_all_at(&[0x5Au8; 2500], len - 2500).unwrap();
    drop(f);

    let (j, logs) = with_captured_logs(|| Journal::open(&dir, cfg.clone()).unwrap());
    let resume: u64 = std::str::from_utf8(&j.checkpoint("file:7").unwrap())
        .unwrap()
        .parse()
        .unwrap();
    assert!((40..100).contains(&resume), "{resume}");
    let name = tail.file_name().unwrap().to_str().unwrap();
    assert!(
        logs.contains("cut records that cursors had acknowledged")
            && logs.contains(name)
            && logs.contains(&format!("count={}", 100 - resume))
            && logs.contains("ahead("),
        "{logs}"
    );
    let st = j.stats();
    assert_eq!(st.recovery_cut_records, 100 - resume);
    assert!(st.recovery_cut_bytes >= 2500, "{st:?}");
    // The source reads on from its surviving checkpoint.
    append_lines(&j, resume + 1, 120, 5);
    j.close().unwrap();
    drop(j);
    // A restart before anything was acknowledged keeps the fence.
    let j = Journal::open(&dir, cfg.clone()).unwrap();
    assert_eq!(j.stats().recovery_cut_records, 0);
    let lines = |got: Vec<(u64, u64)>| got.into_iter().map(|(_, l)| l).collect::<Vec<_>>();
    assert_eq!(
        lines(read_all(&j, "ahead")),
        (101..=120).collect::<Vec<_>>()
    );
    assert_eq!(
        lines(read_all(&j, "behind")),
        (41..=120).collect::<Vec<_>>()
    );
    // Once the first line past the fence is acknowledged, the fence is gone.
    let ((), logs) = with_captured_logs(|| {
        let mut c = j.cursor("ahead").unwrap();
        let b = c
            .next_batch_blocking(500, Duration::from_millis(100))
            .unwrap();
        c.ack(b.last().unwrap().seq, None).unwrap();
    });
    assert!(logs.contains("no longer skips re-read lines"), "{logs}");
}
