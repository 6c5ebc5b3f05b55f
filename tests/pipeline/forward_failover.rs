//! Failover between plain forward aggregators with real `quill run` processes: an aggregator that
//! stops (acking what it made durable) mid-stream; the agent fails over to the next one. What the
//! first acknowledged is not sent to the second: the union of both outputs holds every line exactly
//! once (README "Failover between aggregators" says when a duplicate is still possible: an ack
//! lost after a durable append).

use std::time::Duration;

use crate::support::*;

#[test]
fn an_agent_failing_over_does_not_resend_what_the_first_aggregator_acked() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (pa, pb) = (free_port(), free_port());
    let mut a = Some(Daemon::start(
        root,
        &aggregator_config(root, "agg-a", pa, "", ""),
    ));
    let b = Daemon::start(root, &aggregator_config(root, "agg-b", pb, "", ""));
    for p in [pa, pb] {
        wait_port(p);
    }
    // Small batches and a long cursor-ack interval's worth of acks in flight at any time.
    let agent = Daemon::start(
        root,
        &agent_config(
            root,
            "edge",
            &[pa, pb],
            "batch_size = \"4KiB\"\nwindow = 4\n",
        ),
    );
    let log = root.join("edge-logs/app.log");
    let total = 6000u64;
    let step = 200u64;
    let mut stopped_a = None;
    for chunk in 0..total / step {
        append_lines(&log, "f", chunk * step..(chunk + 1) * step);
        std::thread::sleep(Duration::from_millis(40));
        if chunk == 10 {
            stopped_a = a.take().map(Daemon::stop);
        }
    }
    assert!(stopped_a.is_some_and(|s| s.success()));
    let count =
        || read_sink(&root.join("agg-a-out")).len() + read_sink(&root.join("agg-b-out")).len();
    assert!(
        wait_until(Duration::from_secs(20), || count() >= total as usize),
        "{} of {total}\nagent: {}",
        count(),
        agent.stderr()
    );
    std::thread::sleep(Duration::from_millis(500));
    let agent_log = agent.stderr();
    assert!(agent.stop().success());
    assert!(b.stop().success());
    let key = ("edge".to_string(), "f".to_string());
    let on_a = numbered(&read_sink(&root.join("agg-a-out")))
        .remove(&key)
        .unwrap_or_default();
    let on_b = numbered(&read_sink(&root.join("agg-b-out")))
        .remove(&key)
        .unwrap_or_default();
    assert!(
        !on_a.is_empty() && !on_b.is_empty(),
        "a {} b {}",
        on_a.len(),
        on_b.len()
    );
    let mut union: Vec<u64> = on_a.iter().chain(&on_b).copied().collect();
    union.sort_unstable();
    assert_once_each(union.iter().copied(), 0..total, "union of both aggregators");
    assert!(
        agent_log.contains(&format!("Forwarding to 127.0.0.1:{pa} failed")),
        "{agent_log}"
    );
}
