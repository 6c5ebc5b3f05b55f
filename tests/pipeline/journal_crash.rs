//! Crash test with a real process: a child appends numbered records (with a checkpoint "next
//! number" in each batch) and prints each sequence number once the journal reports it durable;
//! the parent kills it with SIGKILL at random moments, reopens the journal and checks that every
//! number reported durable is present exactly once, that the journal holds 1..=N in order with
//! no gap or duplicate, and that the checkpoint says N (so the restarted child resumes exactly
//! after the last durable record).
//!
//! The child is `quill-test-child journal-append` (tests/support/child.rs).
//! `QUILL_CRASH_ROUNDS` sets the number of rounds (default 60).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use quill::journal::Journal;

use crate::support::child::journal::{CHECKPOINT_KEY, Rng, config, parse_u64};
use crate::support::{alone, child_command};

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let _alone = alone();
    let rounds: u32 = std::env::var("QUILL_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let mut rng = Rng::seeded();
    let mut verified = 0u64; // the journal holds exactly 1..=verified, in order
    let mut reported_total = 0u64;
    let started = Instant::now();
    for round in 0..rounds {
        let mut child = child_command("journal-append")
            .arg(&dir)
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
