//! No line lost when a program exits right after logging: a child process (`quill-test-child
//! logging-exit`, tests/support/child.rs) logs N entries through the global dispatcher (from several
//! threads, through a small queue) and exits at once, in several ways; the parent checks that
//! all N arrived.

use std::process::Stdio;

use crate::support::child::logging::LINES;
use crate::support::{child_command, gelf_lines};

fn run_child(how: &str, sink: &str) -> std::process::Output {
    let output = child_command("logging-exit")
        .arg(format!("{how}:{sink}"))
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
    // Keep only the JSON lines.
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
