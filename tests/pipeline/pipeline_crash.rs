//! End to end through crashes: `quill run` (file source → journal → file sink) is killed with
//! SIGKILL again and again while a writer appends numbered lines; the sink's output must hold every
//! line exactly once, in order.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn sigkill_during_tailing_loses_and_duplicates_nothing() {
    let _alone = alone();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    write_file(&root.join("logs/app.log"), "");
    write_file(
        &root.join("quill.toml"),
        r#"data_dir = "./data"
hostname = "crashy"

[journal]
fsync = "interval"
fsync_interval = "5ms"
segment_size = "256KiB"

[sources.app]
type = "file"
include = ["logs/*.log"]
category = "app"
format = "raw"
poll_interval = "20ms"

[sinks.out]
type = "file"
path = "./out"
max_size = "64KiB"
"#,
    );

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written, path) = (stop.clone(), written.clone(), root.join("logs/app.log"));
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut chunk = String::new();
                for _ in 0..50 {
                    chunk.push_str(&format!("line {n:08} {}\n", "p".repeat(60)));
                    n += 1;
                }
                f.write_all(chunk.as_bytes()).unwrap();
                written.store(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    // Kill and restart at pseudo-random moments.
    let mut seed: u64 = 0x2545F4914F6CDD1D;
    let mut rand = move |lo: u64, hi: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        lo + seed % (hi - lo)
    };
    let rounds = 25;
    let started = Instant::now();
    for round in 0..rounds {
        let daemon = Daemon::start(&root, &root.join("quill.toml"));
        std::thread::sleep(Duration::from_millis(rand(80, 700)));
        assert!(
            daemon.child.id() > 0 && started.elapsed() < Duration::from_secs(120),
            "round {round} took too long"
        );
        daemon.kill();
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let total = written.load(Ordering::Relaxed) as usize;
    assert!(total > 10_000, "writer wrote {total} lines");

    // A last clean run drains everything.
    let daemon = Daemon::start(&root, &root.join("quill.toml"));
    let out = root.join("out");
    let ok = wait_until(Duration::from_secs(60), || sink_line_count(&out) >= total);
    assert!(
        ok,
        "sink has {} of {total} lines\n{}",
        sink_line_count(&out),
        daemon.stderr()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(daemon.stop().success());

    let msgs = messages(&read_sink(&out));
    assert_eq!(msgs.len(), total, "lines in the sink");
    for (i, m) in msgs.iter().enumerate() {
        let want = format!("line {i:08} {}", "p".repeat(60));
        assert_eq!(m, &want, "line {i} (missing, duplicated or out of order)");
    }
}
