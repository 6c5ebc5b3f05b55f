//! Many files: 1,000 files matched by one glob, new files picked up quickly, files created and
//! deleted in quick succession, and a file deleted while open, with the real `quill run` binary.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::support::*;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_thousand_files_under_one_glob_and_new_files_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    const FILES: u64 = 1000;
    for f in 0..FILES {
        let text: String = (0..3).map(|i| format!("{}\n", line(f * 10 + i))).collect();
        std::fs::write(logs.join(format!("f{f:04}.log")), text).unwrap();
    }
    let cfg = write_config(root, &["logs/*.log"], "");
    let daemon = Daemon::start(root, &cfg);
    let out = root.join("out");
    let ok = wait_until(Duration::from_secs(60), || {
        sink_messages(&out).len() as u64 >= FILES * 3
    });
    assert!(
        ok,
        "{} of {}\n{}",
        sink_messages(&out).len(),
        FILES * 3,
        daemon.stderr()
    );

    // One more line in every file.
    for f in 0..FILES {
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(logs.join(format!("f{f:04}.log")))
            .unwrap();
        writeln!(w, "{}", line(f * 10 + 3)).unwrap();
    }
    let ok = wait_until(Duration::from_secs(60), || {
        sink_messages(&out).len() as u64 >= FILES * 4
    });
    assert!(
        ok,
        "{} of {}\n{}",
        sink_messages(&out).len(),
        FILES * 4,
        daemon.stderr()
    );

    // A new file is found and delivered quickly (inotify; the rescan interval is 1 s at most).
    let start = Instant::now();
    std::fs::write(logs.join("new.log"), format!("{}\n", line(99_999_999))).unwrap();
    let ok = wait_until(Duration::from_secs(10), || {
        sink_messages(&out).len() as u64 > FILES * 4
    });
    let latency = start.elapsed();
    eprintln!("new file delivered to the sink after {latency:?}");
    assert!(ok && latency < Duration::from_secs(2), "{latency:?}");

    daemon.stop_ok();
    let (counts, fragments) = tally(&sink_messages(&out));
    assert!(fragments.is_empty());
    assert!(counts.values().all(|c| *c == 1), "duplicates");
    assert_eq!(counts.len() as u64, FILES * 4 + 1);
    for f in 0..FILES {
        for i in 0..4 {
            assert!(counts.contains_key(&(f * 10 + i)), "file {f} line {i}");
        }
    }
}

#[test]
fn files_created_and_deleted_quickly_and_a_file_deleted_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let cfg = write_config(root, &["logs/*.log"], "");
    let daemon = Daemon::start(root, &cfg);
    let out = root.join("out");
    std::thread::sleep(Duration::from_millis(300));
    let baseline_fds = open_fds(daemon.child.id());

    // A file deleted while its writer keeps writing: drained to the end.
    let held = logs.join("held.log");
    let mut w = std::fs::File::create(&held).unwrap();
    for n in 0..100 {
        writeln!(w, "{}", line(n)).unwrap();
    }
    assert!(wait_until(Duration::from_secs(10), || sink_messages(&out)
        .len()
        >= 100));
    std::fs::remove_file(&held).unwrap();
    for n in 100..200 {
        writeln!(w, "{}", line(n)).unwrap();
    }
    drop(w);

    // Churn: 300 short-lived files, most deleted within milliseconds; every tenth is kept.
    let mut kept = Vec::new();
    for i in 0..300u64 {
        let p = logs.join(format!("churn{i:03}.log"));
        let base = 1_000_000 + i * 10;
        let text: String = (0..3).map(|k| format!("{}\n", line(base + k))).collect();
        std::fs::write(&p, text).unwrap();
        if i % 10 == 0 {
            kept.push(base);
        } else {
            std::thread::sleep(Duration::from_millis(2));
            std::fs::remove_file(&p).unwrap();
        }
    }
    let want = 200 + kept.len() * 3;
    let ok = wait_until(Duration::from_secs(30), || {
        let (counts, _) = tally(&sink_messages(&out));
        (0..200).all(|n| counts.contains_key(&n))
            && kept
                .iter()
                .all(|b| (0..3).all(|k| counts.contains_key(&(b + k))))
    });
    assert!(ok, "expected at least {want} lines\n{}", daemon.stderr());
    // Deleted files are released (release_after = 1s): descriptors go back to the baseline.
    let pid = daemon.child.id();
    let released = wait_until(Duration::from_secs(10), || {
        open_fds(pid) <= baseline_fds + kept.len() + 2
    });
    let fds = open_fds(pid);
    let stderr = daemon.stop_ok();
    assert!(
        released,
        "{fds} descriptors open, baseline {baseline_fds}\n{stderr}"
    );
    let (counts, fragments) = tally(&sink_messages(&out));
    assert!(fragments.is_empty(), "{fragments:?}");
    assert!(counts.values().all(|c| *c == 1), "duplicates\n{stderr}");
    // Lines of deleted files arrive at most once; those Quill opened in time arrive whole.
    eprintln!(
        "churn: {} of 900 churn lines arrived (files deleted before Quill opened them are gone)",
        counts.keys().filter(|n| **n >= 1_000_000).count()
    );
    assert!(
        stderr.contains("File was deleted; reading it to its end"),
        "{stderr}"
    );
}
