//! Exactly once through crashes: a real agent process tails a file a writer keeps appending
//! numbered lines to and forwards it to a real aggregator process on loopback, whose file sink
//! writes GELF. The agent is SIGKILLed 20 times and the aggregator 20 times at random moments
//! (each restarted right away), the aggregator is frozen (SIGSTOP) for a while and also kept down
//! for a while; at the end the aggregator's file sink holds every line exactly once, in order.
//!
//! The schedule is random; set `QUILL_CRASH_SEED` to replay one (the seed is printed).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

/// The same config restarted as often as needed.
struct Restartable {
    root: PathBuf,
    config: PathBuf,
    daemon: Option<Daemon>,
    starts: u32,
    logs: String,
}

impl Restartable {
    fn start(root: &Path, config: PathBuf) -> Restartable {
        let mut r = Restartable {
            root: root.to_path_buf(),
            config,
            daemon: None,
            starts: 0,
            logs: String::new(),
        };
        r.ensure_running();
        r
    }

    /// Starts the process if it is not running (also when a start failed, e.g. a port in use).
    fn ensure_running(&mut self) {
        if let Some(d) = self.daemon.as_mut()
            && matches!(d.child.try_wait(), Ok(None))
        {
            return;
        }
        if let Some(d) = self.daemon.take() {
            self.logs.push_str(&d.stderr());
        }
        self.daemon = Some(Daemon::start(&self.root, &self.config));
        self.starts += 1;
    }

    fn sigkill(&mut self) {
        if let Some(d) = self.daemon.take() {
            self.logs.push_str(&d.stderr());
            d.kill();
        }
    }

    fn signal(&self, sig: i32) {
        if let Some(d) = &self.daemon {
            d.signal(sig);
        }
    }

    fn stop(mut self) -> String {
        if let Some(d) = self.daemon.take() {
            let log = d.stderr();
            let status = d.stop();
            self.logs.push_str(&log);
            assert!(status.success(), "{}", self.logs);
        }
        self.logs
    }
}

#[test]
fn every_line_exactly_once_through_40_sigkills_and_an_outage() {
    let _alone = alone();
    let seed = std::env::var("QUILL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("QUILL_CRASH_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let port = free_port();
    let agg_cfg = aggregator_config(root, "agg", port, "", "");
    let agent_cfg = agent_config(root, "edge", &[port], "batch_size = \"16KiB\"\nwindow = 4");
    let log_path = root.join("edge-logs/app.log");
    std::fs::write(&log_path, "").unwrap();

    let mut agg = Restartable::start(root, agg_cfg);
    let mut agent = Restartable::start(root, agent_cfg);

    // The writer: numbered lines, in small bursts, until told to stop.
    let written = Arc::new(AtomicU64::new(0));
    let stop_writing = Arc::new(AtomicBool::new(false));
    let writer = {
        let written = written.clone();
        let stop = stop_writing.clone();
        let path = log_path.clone();
        std::thread::spawn(move || {
            let pad = "x".repeat(48);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                append_lines(&path, &format!("c {pad}"), n..n + 40);
                n += 40;
                written.store(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(15));
            }
        })
    };

    // 20 kills of each, shuffled, at random moments; one freeze and one outage among them.
    let mut kills: Vec<bool> = [vec![true; 20], vec![false; 20]].concat();
    rng.shuffle(&mut kills);
    let started = Instant::now();
    for (i, kill_agent) in kills.iter().enumerate() {
        std::thread::sleep(Duration::from_millis(rng.u64(150..700)));
        if *kill_agent {
            agent.sigkill();
            std::thread::sleep(Duration::from_millis(rng.u64(0..200)));
            agent.ensure_running();
        } else {
            agg.sigkill();
            std::thread::sleep(Duration::from_millis(rng.u64(0..200)));
            agg.ensure_running();
        }
        if i == 13 {
            // Frozen: connections stay open, nothing is read or acked.
            agg.signal(libc::SIGSTOP);
            std::thread::sleep(Duration::from_millis(1500));
            agg.signal(libc::SIGCONT);
        }
        if i == 27 {
            // Down for a while: the agent keeps journaling and backs off.
            agg.sigkill();
            std::thread::sleep(Duration::from_millis(3000));
            agg.ensure_running();
        }
    }
    stop_writing.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let total = written.load(Ordering::Relaxed);
    eprintln!(
        "{} lines written; kill schedule took {:?}; agent started {} times, aggregator {} times",
        total,
        started.elapsed(),
        agent.starts,
        agg.starts
    );
    assert!(agent.starts >= 21);
    assert!(agg.starts >= 22);

    let out = root.join("agg-out");
    let caught_up = wait_until(Duration::from_secs(45), || {
        agent.ensure_running();
        agg.ensure_running();
        read_sink(&out).len() as u64 >= total
    });
    let agent_logs = agent.stop();
    let agg_logs = agg.stop();
    let entries = read_sink(&out);
    assert!(
        caught_up,
        "only {} of {total} lines arrived (seed {seed})\nagent:\n{}\naggregator:\n{}",
        entries.len(),
        tail(&agent_logs),
        tail(&agg_logs)
    );
    let by = numbered(&entries);
    assert_eq!(by.len(), 1, "one source: {:?}", by.keys());
    let got = by.values().next().unwrap();
    assert_exactly_once_in_order(&format!("seed {seed}"), got, total);
    assert!(entries.iter().all(|e| e["host"] == "edge"));
    assert!(!agent_logs.contains("panicked") && !agg_logs.contains("panicked"));
}

fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(6000);
    let mut i = start;
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}
