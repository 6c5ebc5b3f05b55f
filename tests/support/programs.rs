//! External programs the tests talk to (haproxy, apache2, rsyslog, logrotate, nats-server,
//! chromium, thrift, openssl, zstd, python modules): one check, [`require`], that makes a missing
//! program a failure under CI (`CI` set) and a visible skip elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Something a test needs from the machine.
pub enum Need<'a> {
    /// A program found on `PATH` (or in /usr/sbin, /sbin).
    Program(&'a str),
    /// A file at this absolute path (a binary or a module such as rsyslog's omrelp.so).
    File(&'a str),
    /// Python modules, importable by `python3 -c 'import …'` (comma-separated).
    Python(&'a str),
    /// Anything else, checked by the caller (e.g. "can mount a tmpfs").
    Checked(&'a str, bool),
}

impl Need<'_> {
    fn present(&self) -> bool {
        match self {
            Need::Program(p) => which(p).is_some(),
            Need::File(p) => Path::new(p).exists(),
            Need::Python(m) => Command::new("python3")
                .args(["-c", &format!("import {m}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            Need::Checked(_, ok) => *ok,
        }
    }

    fn name(&self) -> String {
        match self {
            Need::Program(p) | Need::File(p) => (*p).to_string(),
            Need::Python(m) => format!("python3 modules {m}"),
            Need::Checked(what, _) => (*what).to_string(),
        }
    }
}

/// Whether everything in `needs` is there. When something is missing: under CI (`CI` set) the
/// test fails naming it; elsewhere it prints `SKIPPED <test>: <what> missing (<hint>)` and
/// returns `false`, and the test returns early. `hint` says how to get it (the Debian package or
/// the pip command scripts/test uses).
///
/// ```ignore
/// if !require(&[Need::Program("logrotate")], "apt-get install logrotate") {
///     return;
/// }
/// ```
pub fn require(needs: &[Need<'_>], hint: &str) -> bool {
    let missing: Vec<String> = needs
        .iter()
        .filter(|n| !n.present())
        .map(Need::name)
        .collect();
    if missing.is_empty() {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    let missing = missing.join(", ");
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: {missing} missing under CI ({hint}; scripts/test installs it)"
    );
    eprintln!("SKIPPED {test}: {missing} missing ({hint})");
    false
}

/// The path of `program` on `PATH`, or in /usr/sbin or /sbin.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}
