//! Bytes lost in the copytruncate window are counted, against the real `logrotate` binary
//! (Debian package `logrotate`) and the real `quill run` daemon.
//!
//! Quill is made to fall behind deterministically: its file sink's output is a full tmpfs (root
//! required; without it the test fails, it never skips), so the small journal fills and the file
//! source waits with a large file only partly read. `logrotate copytruncate` then truncates the
//! file (the copy `app.log.1` is outside the globs), a writer appends new numbered lines at a high
//! rate, the disk is freed. Asserted: `quill_source_copytruncate_lost_bytes_total` equals the
//! bytes of the old content missing from the output (computed from the numbered lines), the
//! loss is logged once naming the file, shown in `/status` and `quill status`, every new line
//! arrives exactly once; a second copytruncate while Quill is caught up adds 0.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::support::*;

/// Lines in the file before Quill starts (79 bytes each, ~4.7 MB: far more than the journal holds).
const OLD: u64 = 60_000;
/// Lines written after the truncation.
const NEW: u64 = 20_000;

fn config(metrics: u16) -> String {
    format!(
        r#"data_dir = "./data"
hostname = "ct"
metrics_listen = "127.0.0.1:{metrics}"
status_interval = "500ms"

[journal]
segment_size = "64KiB"
max_size = "2MiB"

[sources.app]
type = "file"
include = ["logs/app.log"]
category = "app"
format = "raw"
poll_interval = "20ms"

[sinks.out]
type = "file"
path = "./out"
max_size = "256KiB"
"#
    )
}

fn lost_metric(port: u16) -> f64 {
    scrape_metric(
        port,
        "quill_source_copytruncate_lost_bytes_total",
        "source=\"app\"",
    )
    .unwrap_or(-1.0)
}

fn records(port: u16) -> f64 {
    scrape_metric(port, "quill_source_records_total", "source=\"app\"").unwrap_or(0.0)
}

/// Appends lines `range` in bursts of 500 per write(2), no pause: a high write rate.
fn append(path: &Path, range: std::ops::Range<u64>) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    let ns: Vec<u64> = range.collect();
    for burst in ns.chunks(500) {
        let text: String = burst.iter().map(|n| line(*n) + "\n").collect();
        f.write_all(text.as_bytes()).unwrap();
    }
}

#[test]
fn copytruncate_while_behind_counts_exactly_the_bytes_never_read() {
    if !require(&[Need::Program("logrotate")], "apt-get install logrotate") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let log = root.join("logs/app.log");
    write_file(&log, "");
    append(&log, 0..OLD);
    let old_size = std::fs::metadata(&log).unwrap().len();
    let line_len = line(0).len() as u64 + 1;
    assert_eq!(old_size, OLD * line_len);
    let fs = Tmpfs::mount(&root.join("out"), "32m");
    fs.fill("ballast");
    let metrics = free_port();
    write_file(&root.join("quill.toml"), &config(metrics));
    let daemon = Daemon::start(root, &root.join("quill.toml"));

    // The sink cannot write, the journal fills, the source waits part way into the file.
    let mut last = -1.0;
    let stalled = wait_until(Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(700));
        let now = records(metrics);
        let still = now > 0.0 && now == last;
        last = now;
        still
    });
    assert!(stalled, "the source never stalled\n{}", daemon.stderr());
    assert!(
        last < OLD as f64,
        "the source read everything ({last}) before the journal filled\n{}",
        daemon.stderr()
    );
    assert_eq!(lost_metric(metrics), 0.0, "{}", daemon.stderr());

    // copytruncate while Quill is behind; the writer goes on at a high rate.
    let conf = logrotate_conf(root, &log, "copytruncate");
    logrotate(root, &conf);
    assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);
    assert_eq!(
        std::fs::metadata(log.with_extension("log.1"))
            .unwrap()
            .len(),
        old_size,
        "logrotate's copy holds the whole old content"
    );
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || append(&log, OLD..OLD + NEW))
    };
    std::fs::remove_file(root.join("out/ballast")).unwrap();
    writer.join().unwrap();
    let out = root.join("out");
    let arrived = wait_until(Duration::from_secs(60), || {
        let (counts, _) = tally(&sink_messages(&out));
        (OLD..OLD + NEW).all(|n| counts.contains_key(&n))
    });
    assert!(arrived, "the new lines did not arrive\n{}", daemon.stderr());
    assert!(
        wait_until(Duration::from_secs(10), || lost_metric(metrics) > 0.0),
        "no copytruncate loss was counted\n{}",
        daemon.stderr()
    );
    let lost = lost_metric(metrics) as u64;

    // /status and `quill status` show it.
    let status = get(metrics, "/status", &[]).expect("/status").json();
    let shown = status["sources"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "app"))
        .and_then(|s| s["losses"].as_array())
        .and_then(|l| l.iter().find(|p| p[0] == "copytruncate_lost_bytes"))
        .and_then(|p| p[1].as_u64());
    assert_eq!(shown, Some(lost), "{status}");
    // `quill status` exits 1 while a sink still reports `retrying` (from the full disk): the
    // sink reports `running` once it writes again, polled every 100 ms.
    let mut status_run = None;
    let healthy = wait_until(Duration::from_secs(10), || {
        let out = quill()
            .args(["status", "-c", "quill.toml"])
            .current_dir(root)
            .output()
            .expect("spawn quill status");
        let ok = out.status.success();
        status_run = Some(out);
        ok
    });
    let table = status_run.expect("quill status ran");
    assert!(
        healthy,
        "quill status: {}",
        String::from_utf8_lossy(&table.stderr)
    );
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("source")
                && l.contains(&format!("copytruncate_lost_bytes={lost}"))),
        "{table}"
    );

    // Nothing more is lost when Quill is caught up at the next copytruncate.
    logrotate(root, &conf);
    append(&log, OLD + NEW..OLD + NEW + 1000);
    assert!(wait_until(Duration::from_secs(30), || {
        let (counts, _) = tally(&sink_messages(&out));
        (OLD + NEW..OLD + NEW + 1000).all(|n| counts.contains_key(&n))
    }));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lost_metric(metrics) as u64, lost, "{}", daemon.stderr());

    let stderr = daemon.stop_ok();

    // What of the old content arrived: a prefix of whole lines and at most the cut line's start.
    let messages = sink_messages(&out);
    let (counts, fragments) = tally(&messages);
    assert!(counts.values().all(|c| *c == 1), "duplicates\n{stderr}");
    let whole_old = counts.range(..OLD).count() as u64;
    assert!(
        counts.range(..OLD).map(|(n, _)| *n).eq(0..whole_old),
        "the old lines that arrived are not a prefix"
    );
    assert!(fragments.len() <= 1, "fragments: {fragments:?}");
    if let Some(f) = fragments.first() {
        assert!(line(whole_old).starts_with(f.as_str()), "fragment {f:?}");
    }
    let delivered: u64 =
        whole_old * line_len + fragments.iter().map(|f| f.len() as u64).sum::<u64>();
    let missing = old_size - delivered;
    eprintln!(
        "copytruncate behind: {whole_old} of {OLD} old lines arrived, {missing} bytes missing, {lost} counted"
    );
    assert!(missing > 0);
    assert_eq!(
        lost, missing,
        "counted vs missing from the output\n{stderr}"
    );
    assert_eq!(
        stderr
            .matches("bytes are lost (copytruncate window)")
            .count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("copytruncate window") && l.contains("logs/app.log")),
        "the loss is logged naming the file\n{stderr}"
    );
    drop(fs);
}
