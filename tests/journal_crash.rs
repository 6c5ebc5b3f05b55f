//! Crash test with a real process: a child appends numbered records (with a checkpoint "next
//! number" in each batch) and prints each sequence number once the journal reports it durable;
//! the parent kills it with SIGKILL at random moments, reopens the journal and checks that every
//! number reported durable is present exactly once, that the journal holds 1..=N in order with
//! no gap or duplicate, and that the checkpoint says N (so the restarted child resumes exactly
//! after the last durable record).
//!
//! The child is this test executable itself, re-run with `QUILL_JOURNAL_CRASH_CHILD` set.
//! `QUILL_CRASH_ROUNDS` sets the number of rounds (default 60).

#![cfg(feature = "pipeline")]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use quill::journal::{AppendBatch, Checkpoint, FsyncPolicy, Journal, JournalConfig};
use quill::record::{Format, Origin, Record};

const CHILD_ENV: &str = "QUILL_JOURNAL_CRASH_CHILD";
const CHECKPOINT_KEY: &str = "numbers:last";

fn config() -> JournalConfig {
    JournalConfig {
        fsync: FsyncPolicy::Interval,
        fsync_interval: Duration::from_millis(10),
        segment_bytes: 64 << 10,
        max_bytes: 1 << 30,
    }
}

/// xorshift64*: enough randomness for kill times and batch sizes.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(t ^ (u64::from(std::process::id()) << 32) | 1)
    }
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

fn parse_u64(b: &[u8]) -> u64 {
    std::str::from_utf8(b).unwrap().parse().unwrap()
}

/// Child mode: append numbered records forever (until killed, or 30 s as a safety net).
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let journal = Journal::open(Path::new(&dir), config()).unwrap();
    let mut next = journal
        .checkpoint(CHECKPOINT_KEY)
        .map(|v| parse_u64(&v))
        .unwrap_or(0)
        + 1;
    let appender = journal.appender();
    let (tx, rx) = std::sync::mpsc::channel::<(u64, u64)>();
    let waiter = appender.clone();
    std::thread::spawn(move || {
        let stdout = std::io::stdout();
        for (first, last) in rx {
            waiter.wait_durable_blocking(last).unwrap();
            let mut out = stdout.lock();
            for seq in first..=last {
                writeln!(out, "DURABLE {seq}").unwrap();
            }
            out.flush().unwrap();
        }
    });
    let origin = Origin::new("numbers", "test", Format::Raw, "child");
    let mut rng = Rng::seeded();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let k = 1 + rng.below(20);
        let records: Vec<Record> = (next..next + k)
            .map(|n| Record::new(origin.clone(), Bytes::from(n.to_string())))
            .collect();
        let receipt = appender
            .append_blocking(AppendBatch {
                records,
                checkpoints: vec![Checkpoint {
                    key: CHECKPOINT_KEY.into(),
                    value: Bytes::from((next + k - 1).to_string()),
                }],
            })
            .unwrap();
        assert_eq!(
            receipt.first_seq, next,
            "sequence numbers follow the numbers"
        );
        tx.send((receipt.first_seq, receipt.last_seq)).unwrap();
        next += k;
        if rng.below(8) == 0 {
            std::thread::sleep(Duration::from_micros(rng.below(3000)));
        }
    }
}

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let rounds: u32 = std::env::var("QUILL_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng::seeded();
    let mut verified = 0u64; // the journal holds exactly 1..=verified, in order
    let mut reported_total = 0u64;
    let started = Instant::now();
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut reported = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("DURABLE ") {
                    reported.push(parse_u64(n.as_bytes()));
                }
            }
            reported
        });
        std::thread::sleep(Duration::from_millis(20 + rng.below(200)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let reported = reader.join().unwrap();
        reported_total += reported.len() as u64;

        let journal = Journal::open(&dir, config()).unwrap();
        let mut cursor = journal.cursor("verify").unwrap();
        loop {
            let batch = cursor
                .next_batch_blocking(1000, Duration::from_millis(10))
                .unwrap();
            let Some(last) = batch.last().map(|e| e.seq) else {
                break;
            };
            for e in &batch {
                let n = parse_u64(&e.record.raw);
                assert_eq!(n, verified + 1, "round {round}: gap or duplicate at {n}");
                assert_eq!(e.seq, n, "round {round}");
                verified = n;
            }
            cursor.ack(last, None).unwrap();
        }
        for n in &reported {
            assert!(
                *n <= verified,
                "round {round}: {n} was reported durable but is not in the journal (holds 1..={verified})"
            );
        }
        let checkpoint = journal.checkpoint(CHECKPOINT_KEY).map(|v| parse_u64(&v));
        assert_eq!(checkpoint.unwrap_or(0), verified, "round {round}");
        assert_eq!(journal.durable_seq(), verified, "round {round}");
        drop(cursor);
        journal.close().unwrap();
    }
    eprintln!(
        "{rounds} rounds in {:?}: {verified} records, {reported_total} reported durable",
        started.elapsed()
    );
    assert!(
        reported_total > 0 && verified > 0,
        "the child never got to append"
    );
}
