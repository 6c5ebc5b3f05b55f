//! Supervised sinks against a real full disk: the file sink's output lives on a 2 MiB tmpfs the
//! test mounts (root is required; without it the test fails, it never skips). A writer keeps
//! appending numbered lines to a tailed file while a ballast file fills the tmpfs: the sink fails,
//! is reported `retrying`, and after the ballast is removed recovers by itself; every line then
//! is in the output exactly once, in order. With `max_lag`, what the sink skipped while it was
//! down is counted exactly: lines written = lines in the output + `quill_sink_skipped_total`.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn config(metrics: u16, max_lag: &str) -> String {
    format!(
        r#"data_dir = "./data"
hostname = "fault"
metrics_listen = "127.0.0.1:{metrics}"
status_interval = "500ms"

[journal]
segment_size = "16KiB"

[sources.app]
type = "file"
include = ["logs/*.log"]
category = "app"
format = "raw"
poll_interval = "20ms"

[sinks.out]
type = "file"
path = "./out"
max_size = "256KiB"
{max_lag}
"#
    )
}

/// Appends `count` numbered lines, `per_tick` at a time, from `first`.
fn write_lines(path: &Path, first: u64, count: u64, per_tick: u64) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    let mut n = first;
    while n < first + count {
        let mut chunk = String::new();
        for _ in 0..per_tick.min(first + count - n) {
            chunk.push_str(&format!("line {n:06}\n"));
            n += 1;
        }
        f.write_all(chunk.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Lines of the output so far (while the sink may be mid-write: partial lines are left out).
fn written(dir: &Path) -> usize {
    sink_files(&dir.join("out"))
        .iter()
        .map(|f| {
            let text = std::fs::read(f).unwrap_or_default();
            text.split(|b| *b == b'\n')
                .filter(|l| serde_json::from_slice::<serde_json::Value>(l).is_ok())
                .count()
        })
        .sum()
}

fn state_is(port: u16, state: &str) -> bool {
    scrape_metric(
        port,
        "quill_sink_state",
        &format!("sink=\"out\",state=\"{state}\""),
    ) == Some(1.0)
}

fn setup(max_lag: &str) -> (tempfile::TempDir, Tmpfs, u16, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_file(&root.join("logs/app.log"), "");
    let fs = Tmpfs::mount(&root.join("out"), "2m");
    let metrics = free_port();
    write_file(&root.join("quill.toml"), &config(metrics, max_lag));
    let daemon = Daemon::start(root, &root.join("quill.toml"));
    assert!(
        wait_until(Duration::from_secs(10), || state_is(metrics, "running")),
        "quill did not come up\n{}",
        daemon.stderr()
    );
    (dir, fs, metrics, daemon)
}

#[test]
fn file_sink_recovers_from_a_full_disk_with_every_line_once() {
    let (dir, fs, metrics, daemon) = setup("");
    let log = dir.path().join("logs/app.log");
    write_lines(&log, 0, 1000, 50);
    assert!(wait_until(Duration::from_secs(10), || {
        written(dir.path()) == 1000
    }));

    // The disk fills while the writer keeps writing.
    fs.fill("ballast");
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || write_lines(&log, 1000, 3000, 30))
    };
    assert!(
        wait_until(Duration::from_secs(15), || state_is(metrics, "retrying")),
        "the sink never reported the full disk\n{}",
        daemon.stderr()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(state_is(metrics, "retrying"), "{}", daemon.stderr());
    let restarts = scrape_metric(metrics, "quill_sink_restarts_total", "sink=\"out\"").unwrap();
    assert!(restarts >= 1.0);
    // `quill status` shows it, with the error, and exits 1.
    let out = Command::new(quill_bin())
        .args(["status", "-c", "quill.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{table}");
    assert!(
        table.lines().any(|l| l.starts_with("sink")
            && l.contains("retrying")
            && l.contains("No space left")),
        "{table}"
    );

    // Space is freed: the sink resumes by itself.
    std::fs::remove_file(dir.path().join("out/ballast")).unwrap();
    let freed = std::time::Instant::now();
    assert!(wait_until(Duration::from_secs(60), || state_is(
        metrics, "running"
    )));
    eprintln!(
        "file sink: running again {:?} after the space was freed",
        freed.elapsed()
    );
    writer.join().unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || state_is(metrics, "running")
            && written(dir.path()) >= 4000),
        "the sink did not recover\n{}",
        daemon.stderr()
    );
    let status = daemon.stop();
    assert!(status.success());
    let got = messages(&read_sink(&dir.path().join("out")));
    let want: Vec<String> = (0..4000).map(|n| format!("line {n:06}")).collect();
    assert_eq!(got.len(), want.len(), "lines lost or duplicated");
    assert!(got == want, "lines out of order or altered");
    drop(fs);
}

#[test]
fn max_lag_counts_exactly_what_the_sink_skipped() {
    let (dir, fs, metrics, daemon) = setup("max_lag = \"64KiB\"");
    let log = dir.path().join("logs/app.log");
    write_lines(&log, 0, 200, 50);
    assert!(wait_until(Duration::from_secs(10), || {
        written(dir.path()) == 200
    }));
    fs.fill("ballast");
    write_lines(&log, 200, 10_000, 40);
    assert!(
        wait_until(Duration::from_secs(15), || scrape_metric(
            metrics,
            "quill_sink_skipped_total",
            "sink=\"out\""
        )
        .unwrap_or(0.0)
            > 0.0),
        "nothing was skipped past max_lag\n{}",
        daemon.stderr()
    );
    // The journal did not wait for the sink: its lag stays near max_lag.
    let lag = scrape_metric(metrics, "quill_sink_lag_bytes", "sink=\"out\"").unwrap();
    assert!(lag <= (96 << 10) as f64, "lag {lag} bytes");
    std::fs::remove_file(dir.path().join("out/ballast")).unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || {
            let skipped =
                scrape_metric(metrics, "quill_sink_skipped_total", "sink=\"out\"").unwrap_or(0.0);
            let written = written(dir.path()) as f64;
            state_is(metrics, "running") && written + skipped == 10_200.0
        }),
        "output + skipped != written\n{}",
        daemon.stderr()
    );
    let skipped = scrape_metric(metrics, "quill_sink_skipped_total", "sink=\"out\"").unwrap();
    assert!(daemon.stop().success());
    let got = messages(&read_sink(&dir.path().join("out")));
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "duplicates in the output");
    assert_eq!(got.len() as f64 + skipped, 10_200.0);
    // The first 200 (written before the fault) are all there.
    assert!(
        got.iter().take(200).eq((0..200)
            .map(|n| format!("line {n:06}"))
            .collect::<Vec<_>>()
            .iter())
    );
    drop(fs);
}

#[test]
fn index_sink_recovers_from_a_full_disk_with_every_line_once() {
    use quill::index::{IndexReaderSet, SearchRequest};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_file(&root.join("logs/app.log"), "");
    let fs = Tmpfs::mount(&root.join("data/index"), "16m");
    let metrics = free_port();
    write_file(
        &root.join("quill.toml"),
        &format!(
            r#"data_dir = "./data"
metrics_listen = "127.0.0.1:{metrics}"

[sources.app]
type = "file"
include = ["logs/*.log"]
category = "app"
format = "raw"
poll_interval = "20ms"

[sinks.idx]
type = "index"
commit_interval = "200ms"
listen = ""
"#
        ),
    );
    let daemon = Daemon::start(root, &root.join("quill.toml"));
    let state = |s: &str| {
        scrape_metric(
            metrics,
            "quill_sink_state",
            &format!("sink=\"idx\",state=\"{s}\""),
        ) == Some(1.0)
    };
    let indexed =
        || scrape_metric(metrics, "quill_sink_records_total", "sink=\"idx\"").unwrap_or(0.0);
    let log = root.join("logs/app.log");
    write_lines(&log, 0, 1000, 50);
    assert!(
        wait_until(Duration::from_secs(20), || indexed() >= 1000.0),
        "{}",
        daemon.stderr()
    );
    fs.fill("ballast");
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || write_lines(&log, 1000, 3000, 30))
    };
    assert!(
        wait_until(Duration::from_secs(20), || state("retrying")),
        "the index sink never reported the full disk\n{}",
        daemon.stderr()
    );
    std::fs::remove_file(root.join("data/index/ballast")).unwrap();
    writer.join().unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || state("running")
            && scrape_metric(metrics, "quill_sink_lag_records", "sink=\"idx\"")
                == Some(0.0)
            && indexed() >= 4000.0),
        "the index sink did not recover\n{}",
        daemon.stderr()
    );
    assert!(daemon.stop().success());
    let hits = IndexReaderSet::new(&root.join("data/index"))
        .search(&SearchRequest {
            query: Some("*".into()),
            limit: 10_000,
            ..SearchRequest::default()
        })
        .unwrap();
    let mut got: Vec<String> = hits
        .iter()
        .map(|h| {
            let v: serde_json::Value = serde_json::from_str(&h.gelf).unwrap();
            v["short_message"].as_str().unwrap().to_string()
        })
        .collect();
    got.sort();
    let want: Vec<String> = (0..4000).map(|n| format!("line {n:06}")).collect();
    assert_eq!(got.len(), 4000, "entries lost or duplicated in the index");
    assert!(got == want);
    drop(fs);
}
