//! Crash safety of the index: a real process doing indexing is killed with SIGKILL, then indexing
//! runs again; every entry must be present exactly once.
//!
//! Two writers are tested: `quill index` (backfill of a file) and the index sink reading the
//! journal (`quill-test-child index-sink`, tests/support/child.rs).

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use quill::index::{IndexReaderSet, SearchRequest, index_root};
use quill::journal::{AppendBatch, Journal, JournalConfig};
use quill::record::{Format, Origin, Timestamp};
use quill::sinks::index::run_index_sink;

use crate::support::child::index::{SINK_RECORDS, sink_record, sink_settings};
use crate::support::{assert_once_each, child_command};

/// Highest seq each stream is covered to, over all partitions' last commits.
fn committed_coverage(index: &Path) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    let Ok(rd) = std::fs::read_dir(index) else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(meta) = std::fs::read_to_string(e.path().join("meta.json")) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&meta) else {
            continue;
        };
        let Some(payload) = v["payload"].as_str() else {
            continue;
        };
        let p: serde_json::Value = serde_json::from_str(payload).unwrap();
        for (k, seq) in p["covered"].as_object().unwrap() {
            let seq = seq.as_u64().unwrap();
            let e = out.entry(k.clone()).or_insert(0);
            *e = (*e).max(seq);
        }
    }
    out
}

/// How many times each transaction id is in the index.
fn txn_counts(index: &Path, expected_total: usize) -> HashMap<String, usize> {
    // Every entry, past the search API's default cap.
    let limits = quill::index::limits::SearchLimits {
        max_limit: expected_total * 2 + 10,
        ..Default::default()
    };
    let hits = IndexReaderSet::with_limits(index, limits)
        .search(&SearchRequest {
            query: Some("*".into()),
            limit: expected_total * 2 + 10,
            ..SearchRequest::default()
        })
        .unwrap();
    let mut counts = HashMap::new();
    for h in hits {
        let v: serde_json::Value = serde_json::from_str(&h.gelf).unwrap();
        // Parsed lines carry `_txn_id`; the message of a parsed JSON line is its `msg` only.
        let id = match v["_txn_id"].as_str() {
            Some(id) => id.to_string(),
            None => {
                let msg = v["short_message"].as_str().unwrap();
                quill::index::document::txn_id_in_line(msg)
                    .unwrap()
                    .into_owned()
            }
        };
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// Every id of `ids` indexed exactly once, nothing else.
fn assert_exactly_once(counts: &HashMap<String, usize>, ids: impl Iterator<Item = String>) {
    let got = counts
        .iter()
        .flat_map(|(id, n)| std::iter::repeat_n(id.clone(), *n));
    assert_once_each(got, ids, "index");
}

const BACKFILL_LINES: usize = 20_000;

fn backfill_line(i: usize) -> String {
    if i.is_multiple_of(3) {
        format!(r#"{{"level":"info","msg":"step {i} done","txn_id":"bf-{i:07}"}}"#)
    } else {
        format!(
            "10.0.{}.{} - - [23/Nov/2026:01:08:51 +0000] \"GET /item/{i} HTTP/1.1\" 200 {} \"-\" \"curl/8.5\" request_id=bf-{i:07}",
            i % 250,
            i % 200,
            100 + i % 5000
        )
    }
}

#[test]
fn quill_index_killed_mid_backfill_resumes_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("access.log.gz");
    {
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&log).unwrap(),
            flate2::Compression::fast(),
        );
        for i in 0..BACKFILL_LINES {
            use std::io::Write;
            writeln!(gz, "{}", backfill_line(i)).unwrap();
        }
        gz.finish().unwrap();
    }
    let index_args = |data: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_quill"));
        c.args(["index", "--commit-interval", "100ms", "--max-age-days", "0"])
            .arg("--data")
            .arg(data)
            .arg(&log)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    let index = index_root(&data);
    let mut child = index_args(&data).spawn().unwrap();
    let started = Instant::now();
    // Kill it once a commit covers part of the file.
    loop {
        let covered = committed_coverage(&index)
            .values()
            .copied()
            .max()
            .unwrap_or(0);
        if covered > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no commit seen"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("quill index ended before it could be killed: {status:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
    let covered = committed_coverage(&index).values().copied().max().unwrap();
    assert!(
        covered < BACKFILL_LINES as u64,
        "the kill came after the last commit ({covered} lines); make the file larger"
    );

    let out = index_args(&data).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let summary = String::from_utf8_lossy(&out.stdout);
    let already: u64 = summary
        .split(", ")
        .find_map(|p| p.strip_suffix(" already indexed"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("summary: {summary}"));
    assert!(already >= covered.min(1), "{summary}");
    assert!(
        summary.contains(&format!("{BACKFILL_LINES} lines")),
        "{summary}"
    );

    let counts = txn_counts(&index, BACKFILL_LINES);
    assert_exactly_once(&counts, (0..BACKFILL_LINES).map(|i| format!("bf-{i:07}")));
}

#[test]
fn index_sink_killed_mid_indexing_resumes_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("index");
    let now = Timestamp::now();
    let mut child = child_command("index-sink")
        .arg(&index)
        .arg(now.0.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let covered = committed_coverage(&index)
            .get("journal:index")
            .copied()
            .unwrap_or(0);
        if covered >= 2000 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no commit seen"
        );
        assert!(child.try_wait().unwrap().is_none(), "child ended early");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9));
    let covered = committed_coverage(&index)["journal:index"];
    assert!(
        covered < SINK_RECORDS as u64,
        "killed mid-indexing: {covered}"
    );

    // Restart: the journal hands everything back from the start (a cursor whose ack lagged).
    let journal = Journal::memory(JournalConfig::default());
    let cursor = journal.cursor("index").unwrap();
    let origin = Origin::new("app", "app", Format::Json, "app1");
    journal
        .appender()
        .append_blocking(AppendBatch {
            records: (0..SINK_RECORDS)
                .map(|i| sink_record(&origin, i, now))
                .collect(),
            checkpoints: vec![],
        })
        .unwrap();
    journal.close().unwrap();
    let stats = run_index_sink(cursor, &index, &sink_settings(), &AtomicBool::new(false)).unwrap();
    assert!(stats.already_indexed > 0, "{stats:?}");
    assert_eq!(
        stats.added + stats.already_indexed,
        SINK_RECORDS as u64,
        "{stats:?}"
    );
    let days = std::fs::read_dir(&index).unwrap().count();
    assert_eq!(days, 2, "two day partitions");

    let counts = txn_counts(&index, SINK_RECORDS);
    assert_exactly_once(&counts, (0..SINK_RECORDS).map(|i| format!("sk-{i:06}")));
}
