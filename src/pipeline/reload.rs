//! Reload: what a new config changes, as pure functions, and how the daemon is asked to reload.
//!
//! A component is identified by its name. Its *fingerprint* is everything it is started from:
//! its config section, the content of the files it reads at start (certificates, keys, token
//! files, parser configs: see `sources::watched_files` / `sinks::watched_files`), the host name
//! and, for sinks that parse, the parse settings. [`diff`] compares two fingerprint maps: a
//! component whose fingerprint is unchanged keeps running untouched; a changed one is stopped and
//! started again; removed ones stop; new ones start. Settings that cannot change while running
//! ([`fixed_changes`]: the data directory, the journal, the pid file, the metrics address) are
//! kept as they are, with a warning.
//!
//! `quill reload` finds the daemon through its pid file ([`PidFile`], [`signal_reload`]) and
//! sends it `SIGHUP`. This module reads files (fingerprints, the pid file) and sends a signal;
//! it starts and stops nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use crate::config::{Config, SinkConfig, SourceConfig};
use crate::{sinks, sources};

/// What a reload does, by component name (each list sorted).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub unchanged: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub added: Vec<String>,
}

impl Plan {
    /// The components to stop: removed and changed.
    pub fn to_stop(&self) -> impl Iterator<Item = &String> {
        self.removed.iter().chain(&self.changed)
    }

    /// The components to start: changed and added.
    pub fn to_start(&self) -> impl Iterator<Item = &String> {
        self.changed.iter().chain(&self.added)
    }

    /// `+new ~changed -removed`, for the log.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (mark, names) in [
            ("+", &self.added),
            ("~", &self.changed),
            ("-", &self.removed),
        ] {
            for n in names {
                let _ = write!(s, "{}{mark}{n}", if s.is_empty() { "" } else { " " });
            }
        }
        if s.is_empty() {
            s.push_str("no change");
        }
        s
    }
}

/// Compares the running components' fingerprints with the new config's.
pub fn diff(running: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> Plan {
    let mut plan = Plan::default();
    for (name, fp) in wanted {
        match running.get(name) {
            None => plan.added.push(name.clone()),
            Some(old) if old == fp => plan.unchanged.push(name.clone()),
            Some(_) => plan.changed.push(name.clone()),
        }
    }
    plan.removed = running
        .keys()
        .filter(|n| !wanted.contains_key(*n))
        .cloned()
        .collect();
    plan
}

/// The settings `new` changes that cannot be applied while running (the caller keeps the old
/// ones): their keys.
pub fn fixed_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.data_dir != new.data_dir {
        keys.push("data_dir");
    }
    if format!("{:?}", old.journal) != format!("{:?}", new.journal) {
        keys.push("journal");
    }
    if old.pid_path() != new.pid_path() {
        keys.push("pid_file");
    }
    if old.metrics_listen != new.metrics_listen {
        keys.push("metrics_listen");
    }
    keys
}

/// Keeps `old`'s values of the [`fixed_changes`] settings in `new`.
pub fn keep_fixed(old: &Config, new: &mut Config) {
    new.data_dir = old.data_dir.clone();
    new.journal = old.journal.clone();
    new.pid_file = Some(old.pid_path());
    new.metrics_listen = old.metrics_listen.clone();
}

/// A digest of a file's content (`missing` when it cannot be read: starting will say why).
fn file_digest(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            format!("{}:{:016x}", bytes.len(), h.finish())
        }
        Err(_) => "missing".into(),
    }
}

fn with_files<'a>(mut fp: String, files: impl IntoIterator<Item = &'a Path>) -> String {
    for f in files {
        let _ = write!(fp, "|{}={}", f.display(), file_digest(f));
    }
    fp
}

/// What every sink that parses records is started with: `[parse]`, `[bytes]`, the parse
/// settings of every source and the content of the parser config files they name.
pub fn parse_fingerprint(config: &Config) -> String {
    let mut fp = format!("{:?}|{:?}", config.parse, config.bytes);
    let mut files: Vec<&Path> = Vec::new();
    files.extend(config.parse.haproxy_config.as_deref());
    files.extend(config.parse.apache_config.as_deref());
    files.extend(config.bytes.as_ref().map(|b| b.haproxy_config.as_path()));
    for (name, source) in &config.sources {
        if let Some(o) = source.parse_options() {
            let _ = write!(fp, "|{name}:{o:?}");
            files.extend(o.haproxy_config);
            files.extend(o.apache_config);
        }
    }
    with_files(fp, files)
}

/// The fingerprint of a source.
pub fn source_fingerprint(config: &SourceConfig, hostname: &str) -> String {
    with_files(
        format!("{config:?}|host={hostname}"),
        sources::watched_files(config),
    )
}

/// The fingerprint of a sink; `parse` is [`parse_fingerprint`] (used by sinks that parse).
pub fn sink_fingerprint(config: &SinkConfig, hostname: &str, parse: &str) -> String {
    let parse = if sinks::parses(config) { parse } else { "" };
    with_files(
        format!("{config:?}|host={hostname}|{parse}"),
        sinks::watched_files(config),
    )
}

/// The running daemon's pid file: written at start, removed when dropped.
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    pub fn create(path: &Path) -> std::io::Result<PidFile> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("pid.tmp");
        std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
        std::fs::rename(&tmp, path)?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own: a daemon started after us owns the file now.
        let ours = std::fs::read_to_string(&self.path)
            .is_ok_and(|s| s.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Why `quill reload` could not signal the daemon.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("cannot read pid file {path} (is quill running with this config?): {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pid file {path} holds no pid: `{content}`")]
    Invalid { path: String, content: String },
    #[error("cannot signal pid {pid} (from {path}): {source}")]
    Kill {
        pid: i32,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Sends `SIGHUP` to the daemon whose pid is in `pid_file`; returns its pid.
pub fn signal_reload(pid_file: &Path) -> Result<i32, SignalError> {
    let path = pid_file.display().to_string();
    let content = std::fs::read_to_string(pid_file).map_err(|source| SignalError::Read {
        path: path.clone(),
        source,
    })?;
    let pid: i32 = match content.trim().parse() {
        Ok(p) if p > 0 => p,
        _ => {
            return Err(SignalError::Invalid {
                path,
                content: content.trim().chars().take(40).collect(),
            });
        }
    };
    // SAFETY: kill(2) with a positive pid and a valid signal number.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        return Err(SignalError::Kill {
            pid,
            path,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn diff_by_name_and_fingerprint() {
        let running = map(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let wanted = map(&[("a", "1"), ("b", "2x"), ("d", "4")]);
        let plan = diff(&running, &wanted);
        assert_eq!(
            plan,
            Plan {
                unchanged: vec!["a".into()],
                changed: vec!["b".into()],
                removed: vec!["c".into()],
                added: vec!["d".into()],
            }
        );
        assert_eq!(
            plan.to_stop().collect::<Vec<_>>(),
            [&"c".to_string(), &"b".to_string()]
        );
        assert_eq!(plan.summary(), "+d ~b -c");
        assert_eq!(diff(&running, &running).summary(), "no change");
        assert_eq!(diff(&running, &running).unchanged.len(), 3);
    }

    fn config(text: &str) -> Config {
        Config::parse(text, "t.toml").unwrap()
    }

    const BASE: &str = r#"
data_dir = "/tmp/q"
[sources.udp]
type = "syslog"
udp = "127.0.0.1:5514"
[sources.tcp]
type = "syslog"
tcp = "127.0.0.1:5515"
[sinks.all]
type = "file"
path = "/tmp/q/out"
[sinks.fwd]
type = "forward"
to = ["127.0.0.1:9000"]
"#;

    fn fingerprints(c: &Config) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let parse = parse_fingerprint(c);
        (
            c.sources
                .iter()
                .map(|(n, s)| (n.clone(), source_fingerprint(s, "h")))
                .collect(),
            c.sinks
                .iter()
                .map(|(n, s)| (n.clone(), sink_fingerprint(s, "h", &parse)))
                .collect(),
        )
    }

    #[test]
    fn a_port_change_restarts_only_that_source_and_parse_changes_only_parsing_sinks() {
        let old = config(BASE);
        let new = config(
            &BASE
                .replace("5515", "5516")
                .replace("[sinks.all]", "[parse]\ntimezone = \"UTC\"\n[sinks.all]"),
        );
        let (os, ok) = fingerprints(&old);
        let (ns, nk) = fingerprints(&new);
        let sources = diff(&os, &ns);
        assert_eq!(sources.changed, ["tcp"]);
        assert_eq!(sources.unchanged, ["udp"]);
        let sinks = diff(&ok, &nk);
        assert_eq!(sinks.changed, ["all"], "the forward sink does not parse");
        assert_eq!(sinks.unchanged, ["fwd"]);
    }

    #[test]
    fn a_changed_token_file_changes_the_sink() {
        let dir = std::env::temp_dir().join(format!("quill-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "one").unwrap();
        let text = BASE.replace(
            "to = [\"127.0.0.1:9000\"]",
            &format!(
                "to = [\"127.0.0.1:9000\"]\ntoken_file = {:?}",
                token.display().to_string()
            ),
        );
        let (_, before) = fingerprints(&config(&text));
        std::fs::write(&token, "two").unwrap();
        let (_, after) = fingerprints(&config(&text));
        assert_eq!(diff(&before, &after).changed, ["fwd"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn fixed_settings_are_kept() {
        let old = config(BASE);
        let mut new = config(
            &BASE
                .replace("/tmp/q\"", "/tmp/other\"")
                .replace("[sinks.all]", "[journal]\nmax_size = \"1GiB\"\n[sinks.all]"),
        );
        assert_eq!(
            fixed_changes(&old, &new),
            ["data_dir", "journal", "pid_file"]
        );
        keep_fixed(&old, &mut new);
        assert!(fixed_changes(&old, &new).is_empty());
    }

    #[test]
    fn pid_file_round_trip() {
        let dir = std::env::temp_dir().join(format!("quill-pid-{}", std::process::id()));
        let path = dir.join("sub/quill.pid");
        let pid = PidFile::create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        drop(pid);
        assert!(!path.exists());
        assert!(matches!(
            signal_reload(&path),
            Err(SignalError::Read { .. })
        ));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "nope").unwrap();
        assert!(matches!(
            signal_reload(&path),
            Err(SignalError::Invalid { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
