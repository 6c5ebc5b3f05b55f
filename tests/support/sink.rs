//! What a file sink wrote: its GELF lines under `root/<category>/<file>`, in file order.

use std::path::{Path, PathBuf};

/// Writes `text` to `path`, creating parent directories.
pub fn write_file(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("create dir");
    }
    std::fs::write(path, text).expect("write file");
}

/// Replaces `path` with `text` atomically (written to `<path>.tmp`, then renamed over it), as
/// an operator's editor or config management would: a reader sees the old or the new text.
pub fn replace_file(path: &Path, text: &str) {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text).expect("write the new file");
    std::fs::rename(&tmp, path).expect("rename it over the old one");
}

/// The files under a file sink's root, by category then name.
pub fn sink_files(root: &Path) -> Vec<PathBuf> {
    let sorted = |dir: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    sorted(root).iter().flat_map(|cat| sorted(cat)).collect()
}

/// Lines (newlines) in all files under a file sink's root so far (cheap; safe while the sink
/// writes: a line still being written has no newline yet).
pub fn sink_line_count(root: &Path) -> usize {
    sink_files(root)
        .iter()
        .map(|f| std::fs::read(f).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count()))
        .sum()
}

/// The complete lines of `f` (through its last `\n`: a line still being written is left out).
fn complete_lines(f: &Path) -> String {
    let mut bytes = std::fs::read(f).unwrap_or_default();
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    bytes.truncate(end);
    String::from_utf8(bytes).unwrap_or_else(|e| panic!("{}: not UTF-8: {e}", f.display()))
}

/// All complete GELF lines under a file sink's root; a complete line that is not JSON fails
/// the test.
pub fn read_sink(root: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for f in sink_files(root) {
        for line in complete_lines(&f).lines() {
            out.push(
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: bad JSON line {line:?}: {e}", f.display())),
            );
        }
    }
    out
}

/// Short messages of the sink's entries.
pub fn messages(entries: &[serde_json::Value]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|v| v["short_message"].as_str().map(str::to_string))
        .collect()
}

/// Short messages in the sink under `out` while it may still be writing (a JSON line still
/// being written is skipped).
pub fn sink_messages(out: &Path) -> Vec<String> {
    let mut messages = Vec::new();
    for f in sink_files(out) {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for l in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(l)
                && let Some(m) = v["short_message"].as_str()
            {
                messages.push(m.to_string());
            }
        }
    }
    messages
}
