//! No line lost when a program exits right after logging: the test executable re-invokes
//! itself in child mode; the child logs N entries through the global dispatcher (from several
//! threads, through a small queue) and exits at once, in several ways; the parent checks that
//! all N arrived.
#![cfg(feature = "logging")]

mod logging_common;

use std::process::{Command, Stdio};

use logging_common::gelf_lines;
use quill::logging::sinks::{FileSink, WriterSink};
use quill::logging::{Config, Logger, Route};

const CHILD_ENV: &str = "QUILL_LOGGING_EXIT_CHILD";
const LINES: u64 = 20_000;

static LOG: Logger = Logger::local("exit.child");

/// The child process's body, run by the tests below with `--ignored --exact child_entry`.
#[test]
#[ignore = "child-process entry point, run by the exit tests"]
fn child_entry() {
    let spec =
        std::env::var(CHILD_ENV).expect("run by the exit tests, with QUILL_LOGGING_EXIT_CHILD");
    let (how, sink) = spec.split_once(':').unwrap();
    let config = Config::new().queue_capacity(64);
    let config = if sink == "stderr" {
        config.sink("out", WriterSink::stderr())
    } else {
        config.sink("out", FileSink::new(sink).unwrap())
    };
    let guard = quill::logging::init(config.route(Route::new("").to("out"))).unwrap();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..LINES / 4 {
                    quill::info!(LOG, "child line", t = t, i = i, pad = "0123456789abcdef");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    match how {
        // The guard is never dropped: only the exit hook can flush.
        "exit" => {
            std::mem::forget(guard);
            std::process::exit(0);
        }
        // The guard flushes, then the process exits.
        "guard" => {
            drop(guard);
            std::process::exit(0);
        }
        // Returning from the test: the guard drops, the harness exits normally.
        _ => {}
    }
}

fn run_child(how: &str, sink: &str) -> std::process::Output {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_entry",
            "--exact",
            "--ignored",
            "--test-threads=1",
            "--quiet",
        ])
        .env(CHILD_ENV, format!("{how}:{sink}"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "child {how} failed: {}",
        String::from_utf8_lossy(&output.stderr)
            .chars()
            .take(2000)
            .collect::<String>()
    );
    output
}

fn check_all_lines(bytes: &[u8]) {
    // Keep only the JSON lines (the test harness may print its own text).
    let json: Vec<u8> = bytes
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"{"))
        .flat_map(|l| l.iter().copied().chain(std::iter::once(b'\n')))
        .collect();
    let lines = gelf_lines(&json);
    assert_eq!(lines.len() as u64, LINES, "lines lost");
    let mut seen = vec![false; LINES as usize];
    for m in &lines {
        let t = m["_t"].as_u64().unwrap();
        let i = m["_i"].as_u64().unwrap();
        seen[(t * LINES / 4 + i) as usize] = true;
    }
    assert!(seen.iter().all(|&s| s));
}

#[test]
fn process_exit_without_guard_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exit.log");
    run_child("exit", path.to_str().unwrap());
    check_all_lines(&std::fs::read(&path).unwrap());
}

#[test]
fn process_exit_after_guard_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guard.log");
    run_child("guard", path.to_str().unwrap());
    check_all_lines(&std::fs::read(&path).unwrap());
}

#[test]
fn returning_from_main_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("return.log");
    run_child("return", path.to_str().unwrap());
    check_all_lines(&std::fs::read(&path).unwrap());
}

#[test]
fn stderr_sink_is_flushed_at_exit() {
    let output = run_child("exit", "stderr");
    check_all_lines(&output.stderr);
}
