//! `max_lag` for a sink that runs but does not keep up: a forward sink whose aggregator is not
//! there keeps retrying (state `running`, never failing), so the journal would wait for it
//! forever. Past `max_lag` its cursor is moved on while it runs; when the aggregator comes up,
//! every line is either in the aggregator's output exactly once or counted as skipped.

use std::path::Path;
use std::time::Duration;

use crate::support::*;
use crate::support::{TOKEN, aggregator_config};

fn agent_config(root: &Path, metrics: u16, aggregator: u16) -> std::path::PathBuf {
    let path = root.join("agent.toml");
    write_file(
        &path,
        &format!(
            r#"data_dir = "./agent-data"
hostname = "agent"
metrics_listen = "127.0.0.1:{metrics}"
status_interval = "1s"

[journal]
segment_size = "16KiB"

[sources.app]
type = "file"
include = ["logs/*.log"]
category = "app"
format = "raw"
poll_interval = "20ms"

[sinks.fwd]
type = "forward"
to = ["127.0.0.1:{aggregator}"]
token = "{TOKEN}"
backoff_min = "20ms"
backoff_max = "200ms"
ack_timeout = "2s"
max_lag = "64KiB"
"#
        ),
    );
    path
}

fn skipped(metrics: u16) -> f64 {
    scrape_metric(metrics, "quill_sink_skipped_total", "sink=\"fwd\"").unwrap_or(0.0)
}

fn state_is(metrics: u16, state: &str) -> bool {
    scrape_metric(
        metrics,
        "quill_sink_state",
        &format!("sink=\"fwd\",state=\"{state}\""),
    ) == Some(1.0)
}

fn write_lines(path: &Path, range: std::ops::Range<u64>, per_tick: u64) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut n = range.start;
    while n < range.end {
        let mut chunk = String::new();
        for _ in 0..per_tick.min(range.end - n) {
            chunk.push_str(&format!("line {n:06}\n"));
            n += 1;
        }
        f.write_all(chunk.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_running_sink_that_cannot_deliver_is_moved_past_max_lag_and_counts_every_skip() {
    const TOTAL: u64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (metrics, port) = (free_port(), free_port());
    let log = root.join("logs/app.log");
    write_file(&log, "");
    let agent = Daemon::start(root, &agent_config(root, metrics, port));
    assert!(
        wait_until(Duration::from_secs(10), || state_is(metrics, "running")),
        "agent did not come up\n{}",
        agent.stderr()
    );
    // Nobody listens on `port`: the sink runs and retries, and falls behind. The journal does
    // not wait for it: its cursor is kept within max_lag of the end (the records it passes
    // over are counted when the sink reads on and jumps them).
    write_lines(&log, 0..TOTAL, 50);
    let lag = |what: &str| scrape_metric(metrics, what, "sink=\"fwd\"").unwrap_or(f64::MAX);
    assert!(
        wait_until(Duration::from_secs(20), || {
            scrape_metric(metrics, "quill_source_records_total", "source=\"app\"")
                == Some(TOTAL as f64)
                && lag("quill_sink_lag_records") < (TOTAL / 2) as f64
        }),
        "the journal waited for the sink past max_lag\n{}",
        agent.stderr()
    );
    let lag_bytes = lag("quill_sink_lag_bytes");
    assert!(lag_bytes <= (96 << 10) as f64, "lag {lag_bytes} bytes");
    // It never failed: it was moved on while running.
    assert!(state_is(metrics, "running"), "{}", agent.stderr());
    assert_eq!(
        scrape_metric(metrics, "quill_sink_restarts_total", "sink=\"fwd\"").unwrap_or(0.0),
        0.0
    );

    // The aggregator comes up: the sink delivers what is within max_lag.
    let aggregator = Daemon::start(root, &aggregator_config(root, "agg", port, "", ""));
    let out = root.join("agg-out");
    assert!(
        wait_until(Duration::from_secs(60), || {
            let delivered = messages(&read_sink(&out)).len() as f64;
            delivered > 0.0 && delivered + skipped(metrics) == TOTAL as f64
        }),
        "delivered {} + skipped {} != {TOTAL}\n{}\n{}",
        messages(&read_sink(&out)).len(),
        skipped(metrics),
        agent.stderr(),
        aggregator.stderr()
    );
    let skipped = skipped(metrics);
    assert!(agent.stop().success());
    assert!(aggregator.stop().success());
    let got = messages(&read_sink(&out));
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), got.len(), "duplicates at the aggregator");
    assert_eq!(got.len() as f64 + skipped, TOTAL as f64);
    // What arrived is the newest lines, in order, ending with the last one written.
    assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order");
    assert_eq!(
        got.last().map(String::as_str),
        Some(format!("line {:06}", TOTAL - 1).as_str())
    );
    println!(
        "max_lag while running: {} delivered, {skipped} skipped of {TOTAL}",
        got.len()
    );
}
