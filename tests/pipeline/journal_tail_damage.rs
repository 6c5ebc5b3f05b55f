//! The journal's tail overwritten by hand while Quill is down (the real `quill run`, a file source,
//! the GELF file sink): recovery cuts the damaged frames, the file source resumes from the older
//! checkpoint of the last frame that survived and reads those lines again, and the sink, which
//! had already written them, skips them: every line exactly once, and the cut is named (segment,
//! bytes, records) in the log and counted in `/metrics`.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

/// The highest-numbered journal segment.
fn tail_segment(root: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(root.join("data/journal"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "qjs"))
        .collect();
    segs.sort();
    segs.pop().expect("a journal segment")
}

fn wait_delivered(root: &Path, n: u64, daemon: &Daemon) {
    let out = root.join("out");
    let ok = wait_until(Duration::from_secs(30), || {
        tally(&sink_messages(&out)).0.len() as u64 >= n
    });
    assert!(
        ok,
        "only {} of {n} lines arrived\n{}",
        tally(&sink_messages(&out)).0.len(),
        daemon.stderr()
    );
}

/// Runs the scenario: lines `0..first` delivered, quill stopped by `stop`, the last `damage`
/// bytes of the tail segment overwritten, quill restarted, lines `first..total` appended.
fn damaged_tail_scenario(sigkill: bool) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("app.log");
    let metrics = free_port();
    let cfg = write_config(root, &["logs/app.log"], "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!("metrics_listen = \"127.0.0.1:{metrics}\"\n{text}"),
    )
    .unwrap();
    // Many small writes, so that the journal holds many frames (one per read of the file).
    let (first, total) = (2_000u64, 3_000u64);
    let daemon = Daemon::start(root, &cfg);
    for chunk in (0..first).step_by(50) {
        append_with(&log, chunk..chunk + 50, line);
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_delivered(root, first, &daemon);
    std::thread::sleep(Duration::from_millis(300));
    let mut stderr = daemon.stderr();
    if sigkill {
        daemon.kill();
    } else {
        let status = daemon.stop();
        assert!(status.success(), "{status:?}\n{stderr}");
        stderr = std::fs::read_to_string(daemon_stderr_path(root)).unwrap_or(stderr);
    }

    // Overwrite the last 8 KiB of the tail segment with garbage.
    let tail = tail_segment(root);
    let len = std::fs::metadata(&tail).unwrap().len();
    assert!(len > 16 << 10, "tail segment only {len} bytes");
    let damage = 8u64 << 10;
    let f = std::fs::OpenOptions::new().write(true).open(&tail).unwrap();
    f.write_all_at(&vec![0xA5u8; damage as usize], len - damage)
        .unwrap();
    drop(f);

    let daemon = Daemon::start(root, &cfg);
    append_with(&log, first..total, line);
    wait_delivered(root, total, &daemon);
    std::thread::sleep(Duration::from_millis(500));
    let cut = scrape_metric(metrics, "quill_journal_recovery_cut_records_total", "");
    stderr.push_str(&daemon.stderr());
    let status = daemon.stop();
    assert!(status.success(), "{status:?}\n{stderr}");
    assert_exactly_once(&sink_messages(&root.join("out")), total, &stderr);
    let seg_name = tail.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("cut") && l.contains(&seg_name) && l.contains("records")),
        "recovery names the segment, bytes and records it cut\n{stderr}"
    );
    assert!(
        cut.is_some_and(|c| c > 0.0),
        "the cut is counted: {cut:?}\n{stderr}"
    );
}

/// The stderr of the last daemon started in `root` (the newest `quill-stderr-*.log`).
fn daemon_stderr_path(root: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("quill-stderr-"))
        })
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

#[test]
fn tail_overwritten_after_sigterm_every_line_once() {
    damaged_tail_scenario(false);
}

#[test]
fn tail_overwritten_after_sigkill_every_line_once() {
    damaged_tail_scenario(true);
}
