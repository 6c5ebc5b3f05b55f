//! The agent killed with SIGKILL mid-stream and restarted, with the real `quill run` binary and
//! its on-disk journal: positions commit with the journal, so every line arrives exactly once,
//! including lines of a file that was rotated out of the glob while the agent was down.

use std::time::Duration;

use crate::support::*;

#[test]
fn sigkill_and_restart_mid_stream_every_line_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("app.log");
    std::fs::write(&log, "").unwrap();
    // Only the live name: a file rotated while the agent is down leaves the glob.
    let cfg = write_config(root, &["logs/app.log"], "");
    let writer = Writer::start(&log, Reopen::CreateWhenGone, 20, Duration::from_millis(1));
    let mut stderr = String::new();
    for round in 0..3 {
        let daemon = Daemon::start(root, &cfg);
        std::thread::sleep(Duration::from_millis(900));
        stderr.push_str(&daemon.stderr());
        daemon.kill(); // SIGKILL
        if round == 1 {
            // Rotate while the agent is down: the old file keeps its unread tail.
            std::fs::rename(&log, logs.join("app.log.1")).unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let daemon = Daemon::start(root, &cfg);
    std::thread::sleep(Duration::from_millis(500));
    let written = writer.finish();
    let out = root.join("out");
    let done = wait_until(Duration::from_secs(40), || {
        tally(&sink_messages(&out)).0.len() as u64 >= written
    });
    std::thread::sleep(Duration::from_millis(300));
    stderr.push_str(&daemon.stop_ok());
    assert!(done, "not everything arrived\n{stderr}");
    assert!(
        stderr.contains("Resuming file"),
        "the restarted agent resumed from checkpoints\n{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("Resuming file") && l.contains("app.log.1")),
        "the file rotated out of the glob while the agent was down was found and drained\n{stderr}"
    );
    assert_exactly_once(&sink_messages(&out), written, &stderr);
}

fn run_until_delivered(root: &std::path::Path, cfg: &std::path::Path, want: usize) -> String {
    collect_then_stop(root, Daemon::start(root, cfg), want).1
}

fn numbered(range: std::ops::Range<u64>) -> String {
    range.map(|n| format!("{}\n", line(n))).collect()
}

#[test]
fn identity_is_content_a_moved_file_is_not_reread_and_a_reused_inode_is_not_trusted() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("app.log");
    let cfg = write_config(root, &["logs/*.log"], "");
    std::fs::write(&log, numbered(0..1000)).unwrap();
    run_until_delivered(root, &cfg, 1000);

    // Same content on a new inode (copied and moved back), plus new lines: only these arrive.
    let ino_before = std::fs::metadata(&log).unwrap().ino();
    std::fs::copy(&log, logs.join("tmp")).unwrap();
    std::fs::rename(logs.join("tmp"), &log).unwrap();
    assert_ne!(std::fs::metadata(&log).unwrap().ino(), ino_before);
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str(&numbered(1000..1100));
    std::fs::write(&log, &text).unwrap();
    let stderr = run_until_delivered(root, &cfg, 1100);
    assert!(stderr.contains("Resuming file"), "{stderr}");

    // Deleted and replaced by different content (the inode is often reused): read from 0.
    let ino_old = std::fs::metadata(&log).unwrap().ino();
    std::fs::remove_file(&log).unwrap();
    std::fs::write(&log, numbered(1100..1200)).unwrap();
    let reused = std::fs::metadata(&log).unwrap().ino() == ino_old;
    let stderr = run_until_delivered(root, &cfg, 1200);
    eprintln!("inode reused: {reused}");
    std::thread::sleep(Duration::from_millis(100));
    assert_exactly_once(&sink_messages(&root.join("out")), 1200, &stderr);
}
