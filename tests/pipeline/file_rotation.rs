//! The file source against the real `logrotate` binary (Debian package `logrotate`) and a plain
//! `mv` + reopen, while a writer appends numbered lines at a high rate: the real `quill run`
//! binary tails the log into the journal, its file sink writes what arrived, and every line must
//! arrive exactly once.

use std::path::Path;
use std::time::Duration;

use crate::support::*;

const ROTATIONS: usize = 4;

struct Run {
    messages: Vec<String>,
    written: u64,
    /// Line numbers written while each logrotate ran: `[from, to)`.
    windows: Vec<(u64, u64)>,
    /// The same windows, starting at the first line not yet in the output when logrotate
    /// started (Quill may not have read those yet: a copy outside the globs loses them).
    unread_windows: Vec<(u64, u64)>,
    stderr: String,
    _dir: tempfile::TempDir,
    logs: std::path::PathBuf,
}

/// Starts quill and a writer, rotates `ROTATIONS` times with `rotate(root, log)`, stops the
/// writer, waits until the sink holds `expected(written, logs)` distinct lines, stops quill.
fn run(
    include: &[&str],
    reopen: Reopen,
    rotate: &dyn Fn(&Path, &Path, usize),
    expected: &dyn Fn(u64, &Path) -> Vec<u64>,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("app.log");
    std::fs::write(&log, "").unwrap();
    let cfg = write_config(&root, include, "");
    let daemon = Daemon::start(&root, &cfg);
    let writer = Writer::start(&log, reopen, 50, Duration::from_millis(1));
    let out = root.join("out");
    let mut windows = Vec::new();
    let mut unread_windows = Vec::new();
    for i in 0..ROTATIONS {
        std::thread::sleep(Duration::from_millis(400));
        let from = writer.written();
        // Lines are delivered in the order they were written: the first one not delivered yet.
        let undelivered = tally(&sink_messages(&out))
            .0
            .keys()
            .next_back()
            .map_or(0, |n| n + 1)
            .min(from);
        rotate(&root, &log, i);
        let to = writer.written() + 1;
        windows.push((from, to));
        unread_windows.push((undelivered, to));
    }
    std::thread::sleep(Duration::from_millis(300));
    let written = writer.finish();
    assert!(written > 10_000, "the writer wrote only {written} lines");
    let want = expected(written, &logs);
    let arrived = wait_until(Duration::from_secs(40), || {
        let (counts, _) = tally(&sink_messages(&out));
        want.iter().all(|n| counts.contains_key(n))
    });
    // Let rotated files be released (release_after = 1s) so their final state is exercised too.
    std::thread::sleep(Duration::from_millis(1500));
    let stderr_path = daemon.stderr_path.clone();
    let status = daemon.stop();
    let stderr = std::fs::read_to_string(stderr_path).unwrap_or_default();
    assert!(status.success(), "quill exited with {status:?}\n{stderr}");
    let messages = sink_messages(&out);
    assert!(
        arrived,
        "not every expected line arrived: {} of {}\n{stderr}",
        tally(&messages).0.len(),
        want.len()
    );
    Run {
        messages,
        written,
        windows,
        unread_windows,
        stderr,
        _dir: dir,
        logs,
    }
}

fn logrotate_with(directives: &'static str) -> impl Fn(&Path, &Path, usize) {
    move |root: &Path, log: &Path, _| {
        let conf = logrotate_conf(root, log, directives);
        logrotate(root, &conf);
    }
}

fn all_lines(n: u64, _: &Path) -> Vec<u64> {
    (0..n).collect()
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

#[test]
fn logrotate_create_every_line_exactly_once() {
    // Only the live name is included: each rotated file leaves the glob and must be drained.
    let r = run(
        &["logs/app.log"],
        Reopen::WhenReplaced,
        &logrotate_with("create"),
        &all_lines,
    );
    assert_exactly_once(&r.messages, r.written, &r.stderr);
    assert!(
        count(&r.stderr, "Released rotated file") >= ROTATIONS,
        "every rotated file was drained and released\n{}",
        r.stderr
    );
    assert_eq!(std::fs::read_dir(&r.logs).unwrap().count(), ROTATIONS + 1);
}

#[test]
fn logrotate_compress_delaycompress_every_line_exactly_once() {
    // The glob also matches the rotated `app.log.1` (followed by inode, never re-read) and the
    // compressed `app.log.N.gz` (never read).
    let r = run(
        &["logs/app.log*"],
        Reopen::WhenReplaced,
        &logrotate_with("create\n    compress\n    delaycompress"),
        &all_lines,
    );
    assert_exactly_once(&r.messages, r.written, &r.stderr);
    let gz = std::fs::read_dir(&r.logs)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".gz"))
        .count();
    assert_eq!(
        gz,
        ROTATIONS - 1,
        "delaycompress left one plain rotated file"
    );
    // What is on disk (decompressed) is exactly what was written, and what arrived.
    let disk = lines_on_disk(&r.logs);
    assert_eq!(disk.len() as u64, r.written);
}

#[test]
fn mv_and_reopen_every_line_exactly_once() {
    let r = run(
        &["logs/app.log"],
        Reopen::CreateWhenGone,
        &|_root: &Path, log: &Path, i: usize| {
            std::fs::rename(log, log.with_extension(format!("log.{i}"))).unwrap();
        },
        &all_lines,
    );
    assert_exactly_once(&r.messages, r.written, &r.stderr);
    assert!(
        count(&r.stderr, "Released rotated file") >= ROTATIONS,
        "{}",
        r.stderr
    );
}

/// copytruncate: lines the writer appends after logrotate's copy and before its truncate are
/// lost by logrotate itself (they are in neither file). Everything else, i.e. every line that
/// exists on disk afterwards, must arrive exactly once, and what is missing must have been
/// written while logrotate ran.
#[test]
fn logrotate_copytruncate_every_line_on_disk_exactly_once() {
    let r = run(
        &["logs/app.log*"],
        Reopen::Never,
        &logrotate_with("copytruncate"),
        &|_, logs| lines_on_disk(logs).into_keys().collect(),
    );
    let disk = lines_on_disk(&r.logs);
    let (counts, fragments) = tally(&r.messages);
    let dups: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        dups.is_empty(),
        "{} duplicates, first {:?}\n{}",
        dups.len(),
        &dups[..dups.len().min(10)],
        r.stderr
    );
    for n in disk.keys() {
        assert!(
            counts.contains_key(n),
            "line {n} is on disk but did not arrive\n{}",
            r.stderr
        );
    }
    for n in 0..r.written {
        if !counts.contains_key(&n) {
            assert!(
                r.windows.iter().any(|(a, b)| (*a..*b).contains(&n)),
                "line {n} is missing outside logrotate's copy/truncate window {:?}\n{}",
                r.windows,
                r.stderr
            );
        }
    }
    for n in counts.keys() {
        assert!(*n < r.written, "unknown line {n}");
    }
    // A line cut by the copy may arrive as flagged pieces; at most one per rotation.
    assert!(fragments.len() <= 2 * ROTATIONS, "fragments: {fragments:?}");
    let lost = r.written - counts.len() as u64;
    let counted = logged_copytruncate_loss(&r.stderr);
    assert!(
        counted <= lost * (line(0).len() as u64 + 1),
        "counted {counted} lost bytes for {lost} missing lines\n{}",
        r.stderr
    );
    eprintln!(
        "copytruncate: {} lines written, {lost} lost in logrotate's copy/truncate window, {} fragments, {counted} bytes counted",
        r.written,
        fragments.len()
    );
    assert!(
        count(&r.stderr, "File was truncated") >= ROTATIONS,
        "{}",
        r.stderr
    );
}

/// copytruncate with only the live name included (the copies are never read): the loss window
/// is from Quill's last read before the truncate to the truncate.
#[test]
fn logrotate_copytruncate_live_name_only_loses_only_inside_the_window() {
    let r = run(
        &["logs/app.log"],
        Reopen::Never,
        &logrotate_with("copytruncate"),
        &|n, logs| {
            // Lines after the last rotation window must all arrive.
            let _ = logs;
            ((n.saturating_sub(1000))..n).collect()
        },
    );
    let (counts, fragments) = tally(&r.messages);
    assert!(counts.values().all(|c| *c == 1), "duplicates\n{}", r.stderr);
    let mut lost = 0;
    for n in 0..r.written {
        if !counts.contains_key(&n) {
            lost += 1;
            assert!(
                r.unread_windows.iter().any(|(a, b)| (*a..*b).contains(&n)),
                "line {n} is missing outside the rotation windows {:?}\n{}",
                r.unread_windows,
                r.stderr
            );
        }
    }
    // What Quill counted as lost (it saw those bytes exist and never read them) is part of what
    // is missing; bytes written and truncated between two of its size checks it cannot see.
    let line_len = line(0).len() as u64 + 1;
    let missing_bytes = lost * line_len - fragments.iter().map(|f| f.len() as u64).sum::<u64>();
    let counted = logged_copytruncate_loss(&r.stderr);
    assert!(
        counted <= missing_bytes,
        "counted {counted} lost bytes, but only {missing_bytes} are missing\n{}",
        r.stderr
    );
    eprintln!(
        "copytruncate (live name only): {} written, {lost} lost ({missing_bytes} bytes), {counted} bytes counted",
        r.written
    );
}

/// The sum of the `lost_bytes` of Quill's copytruncate loss warnings.
fn logged_copytruncate_loss(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter(|l| l.contains("copytruncate window"))
        .filter_map(|l| l.split("lost_bytes=").nth(1))
        .filter_map(|v| v.split(' ').next()?.parse::<u64>().ok())
        .sum()
}
