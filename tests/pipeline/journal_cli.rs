//! `quill journal`: a sink removed from the config leaves its cursor behind; the daemon warns
//! about it, `quill journal cursors` shows it, and `quill journal drop-cursor` removes it so the
//! journal can delete what it held. Real binary, real journal.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn config(dir: &Path, with_archive: bool) -> std::path::PathBuf {
    let path = dir.join("quill.toml");
    let mut text = format!(
        "data_dir = \"{data}\"\n[sources.app]\ntype = \"file\"\ninclude = [\"{input}\"]\n\n[sinks.out]\ntype = \"file\"\npath = \"{out}\"\n",
        data = dir.join("data").display(),
        input = dir.join("app.log").display(),
        out = dir.join("out").display(),
    );
    if with_archive {
        text.push_str(&format!(
            "\n[sinks.archive]\ntype = \"file\"\npath = \"{}\"\n",
            dir.join("archive").display()
        ));
    }
    write_file(&path, &text);
    path
}

fn quill(args: &[&str], config: &Path) -> std::process::Output {
    Command::new(quill_bin())
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap()
}

#[test]
fn removed_sink_cursor_is_reported_and_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..100).map(|i| format!("line {i}\n")).collect();
    write_file(&dir.path().join("app.log"), &lines);
    let with = config(dir.path(), true);
    let daemon = Daemon::start(dir.path(), &with);
    assert!(wait_until(Duration::from_secs(20), || {
        read_sink(&dir.path().join("archive")).len() == 100
            && read_sink(&dir.path().join("out")).len() == 100
    }));
    assert!(daemon.stop().success());

    // The archive sink is removed from the config; its cursor stays in the journal.
    let without = config(dir.path(), false);
    let daemon = Daemon::start(dir.path(), &without);
    assert!(wait_until(Duration::from_secs(20), || daemon
        .stderr()
        .contains(
            "Journal cursor `archive` belongs to no configured sink"
        )));
    // While the daemon runs, the journal is locked.
    let busy = quill(&["journal", "cursors"], &without);
    assert_eq!(busy.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("is a quill daemon running on it?"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    assert!(daemon.stop().success());

    let listed = quill(&["journal", "cursors"], &without);
    assert!(listed.status.success());
    let text = String::from_utf8_lossy(&listed.stdout).into_owned();
    let archive = text
        .lines()
        .find(|l| l.starts_with("archive "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(archive.contains("none (drop with"), "{text}");
    let out = text.lines().find(|l| l.starts_with("out ")).unwrap();
    assert!(out.trim_end().ends_with("file"), "{text}");

    // A configured sink's cursor is not dropped by mistake.
    let refused = quill(&["journal", "drop-cursor", "out"], &without);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    let unknown = quill(&["journal", "drop-cursor", "nope"], &without);
    assert_eq!(unknown.status.code(), Some(2));

    let dropped = quill(&["journal", "drop-cursor", "archive"], &without);
    assert!(
        dropped.status.success(),
        "{}",
        String::from_utf8_lossy(&dropped.stderr)
    );
    let listed = quill(&["journal", "cursors"], &without);
    let text = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(!text.contains("archive"), "{text}");
    assert!(text.contains("out "), "{text}");

    // No warning any more, and the remaining sink keeps its place: nothing written twice.
    let daemon = Daemon::start(dir.path(), &without);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!daemon.stderr().contains("belongs to no configured sink"));
    assert!(daemon.stop().success());
    assert_eq!(read_sink(&dir.path().join("out")).len(), 100);
}
