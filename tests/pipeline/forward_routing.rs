//! Routing on a forward sink, with real `quill run` processes: an agent whose forward sink takes
//! only category `app` (of `app` and `noise`) ships exactly the `app` lines, each exactly once at
//! the aggregator (also across an aggregator restart), and counts the `noise` lines as unrouted.

use std::time::Duration;

use crate::support::*;

#[test]
fn a_forward_sink_with_a_category_filter_ships_exactly_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (port, metrics) = (free_port(), free_port());
    let agg_cfg = aggregator_config(root, "agg", port, "", "");
    let agent_cfg = root.join("edge.toml");
    write_file(
        &agent_cfg,
        &format!(
            r#"data_dir = "./edge-data"
hostname = "edge"
status_interval = "1s"
metrics_listen = "127.0.0.1:{metrics}"

[sources.app]
type = "file"
include = ["edge-logs/*.log"]
category = "app"
format = "raw"
poll_interval = "20ms"

[sources.noise]
type = "file"
include = ["edge-logs/*.noise"]
category = "noise"
format = "raw"
poll_interval = "20ms"

[sinks.fwd]
type = "forward"
to = ["127.0.0.1:{port}"]
token = "{TOKEN}"
categories = ["app"]
batch_size = "4KiB"
window = 4
backoff_min = "20ms"
backoff_max = "200ms"
ack_timeout = "2s"
"#
        ),
    );
    std::fs::create_dir_all(root.join("edge-logs")).unwrap();
    let mut first = Some(Daemon::start(root, &agg_cfg));
    wait_port(port);
    let agent = Daemon::start(root, &agent_cfg);
    let (app, noise) = (root.join("edge-logs/a.log"), root.join("edge-logs/n.noise"));
    // Interleaved: batches hold both, and some ranges hold only noise.
    for chunk in 0..10u64 {
        append_lines(&app, "app", chunk * 200..(chunk + 1) * 200);
        append_lines(&noise, "noise", chunk * 300..(chunk + 1) * 300);
        if chunk == 4 {
            // The aggregator restarts mid-stream: its high-water mark covers the gaps.
            std::thread::sleep(Duration::from_millis(300));
            assert!(first.take().is_some_and(|d| d.stop().success()));
            std::thread::sleep(Duration::from_millis(300));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let agg = Daemon::start(root, &agg_cfg);
    let out = root.join("agg-out");
    let app_count = || {
        numbered(&read_sink(&out))
            .get(&("edge".to_string(), "app".to_string()))
            .map_or(0, Vec::len)
    };
    assert!(
        wait_until(Duration::from_secs(20), || app_count() >= 2000),
        "{} of 2000\nagent: {}\naggregator: {}",
        app_count(),
        agent.stderr(),
        agg.stderr()
    );
    let unrouted = || scrape_metric(metrics, "quill_unrouted_total", "").unwrap_or(0.0);
    assert!(
        wait_until(Duration::from_secs(10), || unrouted() >= 3000.0),
        "unrouted {}",
        unrouted()
    );
    // The agent's cursor moves past the noise too: nothing is left to forward.
    let lag = || scrape_metric(metrics, "quill_sink_lag_records", "fwd").unwrap_or(-1.0);
    assert!(
        wait_until(Duration::from_secs(10), || lag() == 0.0),
        "lag {}",
        lag()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(unrouted(), 3000.0);
    assert!(agent.stop().success());
    assert!(agg.stop().success());
    let by = numbered(&read_sink(&out));
    assert_once_each(
        by[&("edge".into(), "app".into())].iter().copied(),
        0..2000,
        "app",
    );
    assert!(
        !by.contains_key(&("edge".into(), "noise".into())),
        "noise was forwarded"
    );
}
