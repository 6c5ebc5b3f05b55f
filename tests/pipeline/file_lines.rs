//! Line handling of the file source end to end (real `quill run`, file sink): multi-line joining,
//! over-long lines, CRLF, partial lines flushed by timeout, `read_from = "end"`, excluded and
//! compressed files.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::support::*;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/file")
            .join(name),
    )
    .unwrap()
}

/// Runs quill until the sink has `want` messages, then stops it; returns the messages.
fn collect(root: &Path, daemon: Daemon, want: usize) -> Vec<String> {
    let (got, _) = collect_then_stop(root, daemon, want);
    assert_eq!(got.len(), want, "{got:?}");
    got
}

#[test]
fn stack_traces_are_joined_by_the_start_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("logs")).unwrap();
    std::fs::write(root.join("logs/app.log"), fixture("java-stacktrace.log")).unwrap();
    let cfg = write_config(
        root,
        &["logs/*.log"],
        "multiline_start = '\\d\\d\\d\\d-\\d\\d-\\d\\d '\npartial_line_timeout = \"300ms\"",
    );
    let got = collect(root, Daemon::start(root, &cfg), 3);
    assert_eq!(
        got[0],
        "2026-11-23 01:08:50,485 INFO  [main] c.e.App - started"
    );
    assert!(got[1].starts_with("2026-11-23 01:08:51,002 ERROR"));
    assert!(got[1].contains("\n\tat com.example.Handler.handle(Handler.java:42)\n"));
    assert!(got[1].ends_with("Caused by: java.io.IOException: broken pipe\n\tat com.example.Io.write(Io.java:9)\n\t... 2 more"));
    // The last record is complete only when the pattern says so: flushed by the timeout.
    assert_eq!(
        got[2],
        "2026-11-23 01:08:51,010 INFO  [worker-2] c.e.Handler - recovered"
    );
}

#[test]
fn long_lines_are_split_crlf_is_tolerated_partial_lines_flush_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("logs")).unwrap();
    let long = "x".repeat(2500);
    std::fs::write(
        root.join("logs/app.log"),
        format!("windows line\r\n{long}\nafter\r\nno newline yet"),
    )
    .unwrap();
    let cfg = write_config(
        root,
        &["logs/*.log"],
        "max_line_bytes = \"1KiB\"\npartial_line_timeout = \"500ms\"",
    );
    let got = collect(root, Daemon::start(root, &cfg), 6);
    assert_eq!(got[0], "windows line");
    assert_eq!(got[1].len(), 1024);
    assert_eq!(got[2].len(), 1024);
    assert_eq!(got[3].len(), 2500 - 2048);
    assert_eq!(
        format!("{}{}{}", got[1], got[2], got[3]),
        long,
        "nothing dropped"
    );
    assert_eq!(got[4], "after");
    assert_eq!(got[5], "no newline yet");
}

#[test]
fn read_from_end_skips_existing_content_only_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let old: String = (0..50).map(|n| format!("{}\n", line(n))).collect();
    std::fs::write(logs.join("old.log"), old).unwrap();
    let cfg = write_config(root, &["logs/*.log"], "read_from = \"end\"");
    let daemon = Daemon::start(root, &cfg);
    std::thread::sleep(Duration::from_millis(800));
    let mut w = std::fs::OpenOptions::new()
        .append(true)
        .open(logs.join("old.log"))
        .unwrap();
    writeln!(w, "{}", line(50)).unwrap();
    // A file created after startup is new: read from its start.
    std::fs::write(
        logs.join("new.log"),
        format!("{}\n{}\n", line(60), line(61)),
    )
    .unwrap();
    let got = collect(root, daemon, 3);
    let (counts, _) = tally(&got);
    assert_eq!(counts.keys().copied().collect::<Vec<_>>(), vec![50, 60, 61]);
}

#[test]
fn excluded_and_compressed_files_are_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("app.log"), format!("{}\n", line(1))).unwrap();
    std::fs::write(logs.join("debug.log"), format!("{}\n", line(2))).unwrap();
    let gz = std::fs::File::create(logs.join("app.log.2.gz")).unwrap();
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::default());
    writeln!(enc, "{}", line(3)).unwrap();
    enc.finish().unwrap();
    std::fs::write(logs.join("app.log.3.zst"), b"(not really zstd)\n").unwrap();
    let cfg = write_config(root, &["logs/*"], "exclude = [\"logs/debug*\"]");
    let daemon = Daemon::start(root, &cfg);
    // Give it time to (not) read the others, then check only app.log arrived.
    std::thread::sleep(Duration::from_millis(1500));
    let got = collect(root, daemon, 1);
    assert_eq!(got, vec![line(1)]);
}

#[test]
fn real_haproxy_lines_arrive_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("logs")).unwrap();
    let text = fixture("haproxy-httplog.log");
    std::fs::write(root.join("logs/haproxy.log"), &text).unwrap();
    let cfg = write_config(root, &["logs/haproxy.log"], "");
    let got = collect(root, Daemon::start(root, &cfg), text.lines().count());
    let want: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(got, want);
}

#[test]
fn bad_file_source_settings_are_located_errors() {
    use assert_cmd::prelude::*;
    use predicates::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    for (extra, key, message) in [
        (
            "multiline_start = '\\q'",
            "multiline_start",
            "unknown escape",
        ),
        (
            "fingerprint_bytes = 0",
            "fingerprint_bytes",
            "must be between 1 and 65536",
        ),
        ("watch = \"fanotify\"", "watch", "unknown variant"),
        (
            "partial_line_timeout = \"soon\"",
            "partial_line_timeout",
            "soon",
        ),
    ] {
        let cfg = write_config(dir.path(), &["logs/*.log"], extra);
        std::process::Command::new(crate::support::quill_bin())
            .args(["validate", "-c"])
            .arg(&cfg)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "quill.toml:11: sources.app.{key}"
            )))
            .stderr(predicate::str::contains(message));
    }
}

#[test]
fn polling_mode_without_inotify_finds_new_files_and_appends() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let cfg = write_config(root, &["logs/*.log"], "watch = \"poll\"");
    let daemon = Daemon::start(root, &cfg);
    std::thread::sleep(Duration::from_millis(500));
    let start = std::time::Instant::now();
    // Longer than the fingerprint, so it is read as soon as it is found.
    let text: String = (0..5).map(|n| format!("{}\n", line(n))).collect();
    std::fs::write(logs.join("a.log"), text).unwrap();
    let out = root.join("out");
    assert!(wait_until(Duration::from_secs(10), || sink_messages(&out)
        .len()
        >= 5));
    let latency = start.elapsed();
    eprintln!("polling: new file delivered after {latency:?}");
    assert!(latency < Duration::from_secs(2), "{latency:?}");
    let mut w = std::fs::OpenOptions::new()
        .append(true)
        .open(logs.join("a.log"))
        .unwrap();
    writeln!(w, "{}", line(5)).unwrap();
    let got = collect(root, daemon, 6);
    assert_exactly_once(&got, 6, "");
}
