//! Helpers for the file source's integration tests: a writer thread appending numbered lines at
//! a high rate (reopening its file the way real programs do), `quill run` configs with a file
//! sink, and exactly-once checks over what the sink wrote.
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Daemon, assert_once_each, sink_messages, wait_until};

/// Padding after the number; a complete line ends with ` END`.
const PAD: &str = "abcdefghijklmnopqrstuvwxyz0123456789-abcdefghijklmnopqrstuvwxyz";

/// The `n`th line (without its newline).
pub fn line(n: u64) -> String {
    format!("L{n:09} {PAD} END")
}

/// The number of a complete line, `None` for anything else (a fragment).
pub fn parse_line(s: &str) -> Option<u64> {
    let rest = s.strip_prefix('L')?;
    let n: u64 = rest.get(..9)?.parse().ok()?;
    (s == line(n)).then_some(n)
}

/// How the writer follows its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reopen {
    /// Keep the same descriptor (copytruncate).
    Never,
    /// Reopen when the path leads to another file (logrotate `create` made a new one).
    WhenReplaced,
    /// Reopen (creating it) when the path is missing or leads to another file (`mv` + reopen).
    CreateWhenGone,
}

/// A thread appending numbered lines to a file.
pub struct Writer {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    /// Writes `burst` lines per write(2), pausing `pause` between bursts.
    pub fn start(path: &Path, reopen: Reopen, burst: u64, pause: Duration) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let (s, w, path) = (stop.clone(), written.clone(), path.to_path_buf());
        let handle = std::thread::spawn(move || {
            let open = |p: &Path| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .expect("open log for append")
            };
            let mut file = open(&path);
            let mut ino = file.metadata().unwrap().ino();
            let mut n = 0u64;
            let mut buf = String::new();
            while !s.load(Ordering::Acquire) {
                buf.clear();
                for _ in 0..burst {
                    buf.push_str(&line(n));
                    buf.push('\n');
                    n += 1;
                }
                file.write_all(buf.as_bytes()).expect("write log");
                w.store(n, Ordering::Release);
                match (reopen, std::fs::metadata(&path)) {
                    (Reopen::Never, _) => {}
                    (_, Ok(m)) if m.ino() != ino => {
                        file = open(&path);
                        ino = file.metadata().unwrap().ino();
                    }
                    (Reopen::CreateWhenGone, Err(_)) => {
                        file = open(&path);
                        ino = file.metadata().unwrap().ino();
                    }
                    _ => {}
                }
                std::thread::sleep(pause);
            }
        });
        Writer {
            stop,
            written,
            handle: Some(handle),
        }
    }

    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Stops the writer; returns how many lines it wrote (numbered `0..n`).
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.join().expect("writer thread");
        }
        self.written()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// A `quill run` config: one file source `app` with `include`, extra source keys, a file sink
/// into `./out`.
pub fn write_config(root: &Path, include: &[&str], extra: &str) -> PathBuf {
    let include: Vec<String> = include.iter().map(|s| format!("{s:?}")).collect();
    let text = format!(
        r#"data_dir = "./data"
hostname = "testhost"
status_interval = "1s"

[sources.app]
type = "file"
include = [{}]
format = "raw"
poll_interval = "100ms"
release_after = "1s"
{extra}

[sinks.out]
type = "file"
path = "./out"
max_size = "64MiB"
"#,
        include.join(", ")
    );
    let path = root.join("quill.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the real `logrotate -f` with its own state file on `conf`.
pub fn logrotate(root: &Path, conf: &Path) {
    let out = std::process::Command::new("logrotate")
        .arg("-f")
        .arg("-s")
        .arg(root.join("logrotate.state"))
        .arg(conf)
        .output()
        .expect("run logrotate (Debian package `logrotate`)");
    assert!(
        out.status.success(),
        "logrotate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a logrotate config for `log` with the given directives.
pub fn logrotate_conf(root: &Path, log: &Path, directives: &str) -> PathBuf {
    let conf = root.join("logrotate.conf");
    std::fs::write(
        &conf,
        format!(
            "{} {{\n    rotate 50\n    missingok\n    {directives}\n}}\n",
            log.display()
        ),
    )
    .unwrap();
    conf
}

/// How often each line number arrived, and the messages that are not complete lines.
pub fn tally(messages: &[String]) -> (BTreeMap<u64, u32>, Vec<String>) {
    let mut counts = BTreeMap::new();
    let mut fragments = Vec::new();
    for m in messages {
        match parse_line(m) {
            Some(n) => *counts.entry(n).or_insert(0) += 1,
            None => fragments.push(m.clone()),
        }
    }
    (counts, fragments)
}

/// Line numbers present in every file under `dir` (`.gz` files decompressed).
pub fn lines_on_disk(dir: &Path) -> BTreeMap<u64, u32> {
    let mut counts = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let mut text = String::new();
        if p.extension().is_some_and(|x| x == "gz") {
            flate2::read::GzDecoder::new(File::open(&p).unwrap())
                .read_to_string(&mut text)
                .unwrap();
        } else {
            text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        }
        for l in text.lines() {
            if let Some(n) = parse_line(l) {
                *counts.entry(n).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// Asserts every line `0..n` arrived exactly once and nothing else did (no fragment either).
pub fn assert_exactly_once(messages: &[String], n: u64, context: &str) {
    let fragments: Vec<&String> = messages
        .iter()
        .filter(|m| parse_line(m).is_none())
        .collect();
    assert!(
        fragments.is_empty(),
        "fragments: {:?}\n{context}",
        &fragments[..fragments.len().min(5)]
    );
    assert_once_each(messages.iter().filter_map(|m| parse_line(m)), 0..n, context);
}

/// Waits (at most 20 s) until the file sink under `root/out` holds `want` messages, gives it
/// 300 ms more (late duplicates would show), then stops `daemon`, asserting a clean exit and
/// that `want` arrived; returns (the sink's messages, the daemon's stderr).
pub fn collect_then_stop(root: &Path, daemon: Daemon, want: usize) -> (Vec<String>, String) {
    let out = root.join("out");
    let ok = wait_until(Duration::from_secs(20), || {
        sink_messages(&out).len() >= want
    });
    std::thread::sleep(Duration::from_millis(300));
    let stderr = daemon.stop_ok();
    let got = sink_messages(&out);
    assert!(
        ok,
        "only {} of {want} arrived: {got:?}\n{stderr}",
        got.len()
    );
    (got, stderr)
}
