//! A file rotated and compressed while the agent was down (real `logrotate` with `compress`
//! and no `delaycompress`: `app.log` becomes `app.log.1.gz` at once) is read on from its
//! checkpoint inside the `.gz`, exactly once; likewise for `.zst` (`compresscmd zstd`), `.bz2`
//! (`compresscmd bzip2`) and `.xz` (`compresscmd xz`).

use std::path::Path;
use std::time::Duration;

use crate::support::*;

fn rotated_and_compressed_while_down(directives: &str, suffix: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("app.log");
    append_with(&log, 0..300, line);
    let cfg = write_config(root, &["logs/app.log"], "");
    let out = root.join("out");
    let daemon = Daemon::start(root, &cfg);
    assert!(
        wait_until(Duration::from_secs(20), || tally(&sink_messages(&out))
            .0
            .len()
            >= 300),
        "{}",
        daemon.stderr()
    );
    let mut stderr = daemon.stderr();
    daemon.kill();
    // Written while the agent is down, then rotated and compressed at once.
    append_with(&log, 300..700, line);
    let conf = logrotate_conf(root, &log, directives);
    logrotate(root, &conf);
    assert!(logs.join(format!("app.log.1{suffix}")).exists());
    assert!(!logs.join("app.log.1").exists());
    append_with(&log, 700..800, line);
    let daemon = Daemon::start(root, &cfg);
    let done = wait_until(Duration::from_secs(30), || {
        tally(&sink_messages(&out)).0.len() >= 800
    });
    std::thread::sleep(Duration::from_millis(500));
    stderr.push_str(&daemon.stop_ok());
    assert!(done, "not everything arrived\n{stderr}");
    assert!(
        stderr.contains("Reading on inside a file compressed after rotation"),
        "{stderr}"
    );
    assert_exactly_once(&sink_messages(&out), 800, &stderr);
}

#[test]
fn gzip_without_delaycompress() {
    rotated_and_compressed_while_down("create\n    compress", ".gz");
}

#[test]
fn zstd_without_delaycompress() {
    if !require(&[Need::Program("zstd")], "apt-get install zstd") {
        return;
    }
    rotated_and_compressed_while_down(
        "create\n    compress\n    compresscmd /usr/bin/zstd\n    compressext .zst\n    compressoptions -q",
        ".zst",
    );
}

/// `compresscmd PROGRAM` with `compressext SUFFIX` (the program must be installed under CI).
fn with_program(program: &str, suffix: &str) {
    let path = format!("/usr/bin/{program}");
    if !Path::new(&path).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} must be installed"
        );
        eprintln!("SKIPPED: {program} not installed");
        return;
    }
    rotated_and_compressed_while_down(
        &format!("create\n    compress\n    compresscmd {path}\n    compressext {suffix}"),
        suffix,
    );
}

#[test]
fn bzip2_without_delaycompress() {
    with_program("bzip2", ".bz2");
}

#[test]
fn xz_without_delaycompress() {
    with_program("xz", ".xz");
}
