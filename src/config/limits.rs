//! Defaults and checks of the settings that protect Quill from hostile peers and files: the forward
//! source's connection, time and memory limits, who may listen beyond loopback, and sources that
//! would read Quill's own output.
//!
//! This module reads nothing but the parsed config (and, for symlink roots, nothing at all: paths
//! are compared as written, after lexical normalization).

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

use super::{ByteSize, Config, ForwardSourceConfig, HumanDuration, SinkConfig};

pub(super) fn default_max_unauthenticated() -> usize {
    128
}
pub(super) fn default_max_unauthenticated_per_ip() -> usize {
    16
}
pub(super) fn default_max_connections_per_ip() -> usize {
    128
}
pub(super) fn default_handshake_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}
pub(super) fn default_frame_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}
pub(super) fn default_forward_idle_timeout() -> HumanDuration {
    HumanDuration::secs(600)
}
pub(super) fn default_memory_budget() -> ByteSize {
    ByteSize::mib(256)
}

/// The first problem with a forward source's limits: (key, message).
pub(super) fn check_forward(f: &ForwardSourceConfig) -> Option<(&'static str, String)> {
    if f.token.as_deref().is_some_and(str::is_empty) {
        return Some((
            "token",
            "an empty token lets anyone in: set a secret, or remove `token`".into(),
        ));
    }
    if f.max_unauthenticated == 0 {
        return Some(("max_unauthenticated", "must be at least 1".into()));
    }
    if f.max_unauthenticated_per_ip == 0 {
        return Some(("max_unauthenticated_per_ip", "must be at least 1".into()));
    }
    if f.max_connections_per_ip == 0 {
        return Some(("max_connections_per_ip", "must be at least 1".into()));
    }
    for (key, d) in [
        ("handshake_timeout", f.handshake_timeout),
        ("frame_timeout", f.frame_timeout),
        ("idle_timeout", f.idle_timeout),
    ] {
        if d.0.is_zero() {
            return Some((key, "must be above 0".into()));
        }
    }
    let one_batch = f.max_frame_size.0 + f.max_batch_size.0;
    if f.memory_budget.0 < one_batch {
        return Some((
            "memory_budget",
            format!(
                "must hold at least one frame and its batch: `max_frame_size` + `max_batch_size` = {one_batch} bytes"
            ),
        ));
    }
    if f.memory_budget.0 > 1 << 40 {
        return Some(("memory_budget", "must be at most 1TiB".into()));
    }
    exposure(
        &f.listen,
        f.token.is_some()
            || f.token_file.is_some()
            || f.identities
                .iter()
                .any(|i| i.token.is_some() || i.token_file.is_some()),
        f.tls_cert.is_some(),
    )
}

/// Refuses a listener beyond loopback that lets anyone in: it needs a token or TLS.
fn exposure(listen: &str, token: bool, tls: bool) -> Option<(&'static str, String)> {
    let addr: SocketAddr = listen.parse().ok()?;
    if addr.ip().is_loopback() || token || tls {
        return None;
    }
    Some((
        "listen",
        format!(
            "`{listen}` is reachable beyond loopback: set `token` (or `token_file`) or TLS (`tls_cert`, `tls_key`), or listen on 127.0.0.1"
        ),
    ))
}

/// Where Quill writes: the journal and every file sink's output, as (what, path).
fn own_outputs(config: &Config) -> Vec<(String, PathBuf)> {
    let mut out = vec![(
        "the journal (`data_dir`)".to_string(),
        config.data_dir.clone(),
    )];
    for (name, sink) in &config.sinks {
        if let SinkConfig::File(f) = sink {
            out.push((format!("the output of sink `{name}`"), f.path.clone()));
        }
    }
    out
}

/// The first include glob of a file source that would read Quill's own output: (glob, what).
pub(super) fn self_read(config: &Config, include: &[String]) -> Option<(String, String)> {
    let cwd = std::env::current_dir().unwrap_or_default();
    let outputs: Vec<(String, PathBuf)> = own_outputs(config)
        .into_iter()
        .map(|(what, p)| (what, normalize(&cwd.join(p))))
        .collect();
    for glob_text in include {
        let Ok(pattern) = glob::Pattern::new(&normalize(&cwd.join(glob_text)).to_string_lossy())
        else {
            continue;
        };
        for (what, dir) in &outputs {
            if could_match_under(&pattern, dir) {
                return Some((glob_text.clone(), what.clone()));
            }
        }
    }
    None
}

/// True when `pattern` can match `dir` itself or a file Quill writes under it: checked against
/// the directory and the names below it that Quill makes (journal segments and cursors, index
/// files, a category's GELF files).
fn could_match_under(pattern: &glob::Pattern, dir: &Path) -> bool {
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: false,
        require_literal_leading_dot: false,
    };
    let probes = [
        dir.to_path_buf(),
        dir.join("x"),
        dir.join("journal").join("00000000000000000001.qjs"),
        dir.join("journal").join("cursors").join("x.cur"),
        dir.join("index").join("meta.json"),
        dir.join("x").join("x_00001.gelf"),
    ];
    if probes.iter().any(|p| pattern.matches_path_with(p, opts)) {
        return true;
    }
    // A literal prefix inside the directory (`data/journal/*.seg`, `out/web/*`) also reads it.
    let literal: PathBuf = Path::new(pattern.as_str())
        .components()
        .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
        .collect();
    literal.starts_with(dir) && literal != Path::new("/")
}

/// `a/./b/../c` → `a/c`, without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Symlink roots must be absolute (a relative root would depend on the working directory), and
/// following links needs at least one.
pub(super) fn check_symlinks(follow: bool, roots: &[PathBuf]) -> Option<(&'static str, String)> {
    if let Some(r) = roots.iter().find(|r| !r.is_absolute()) {
        return Some((
            "symlink_roots",
            format!("`{}` is not an absolute path", r.display()),
        ));
    }
    (follow && roots.is_empty()).then(|| {
        (
            "follow_symlinks",
            "needs `symlink_roots`: the directories links may point into".into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<Config, String> {
        Config::parse(text, "t.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn empty_tokens_and_open_listeners_are_refused() {
        let e =
            config("[sources.a]\ntype = \"forward\"\nlisten = \"127.0.0.1:7070\"\ntoken = \"\"\n")
                .unwrap_err();
        assert!(
            e.starts_with("t.toml:4: sources.a.token: an empty token"),
            "{e}"
        );
        let e = config("[sources.a]\ntype = \"forward\"\nlisten = \"0.0.0.0:7070\"\n").unwrap_err();
        assert!(
            e.starts_with("t.toml:3: sources.a.listen: `0.0.0.0:7070` is reachable"),
            "{e}"
        );
        assert!(
            config("[sources.a]\ntype = \"forward\"\nlisten = \"0.0.0.0:7070\"\ntoken = \"s\"\n")
                .is_ok()
        );
        assert!(config("[sources.a]\ntype = \"forward\"\nlisten = \"127.0.0.1:7070\"\n").is_ok());
        let e = config(
            "[sources.a]\ntype = \"forward\"\nlisten = \"127.0.0.1:7070\"\nmemory_budget = \"1MiB\"\n",
        )
        .unwrap_err();
        assert!(e.contains("t.toml:4: sources.a.memory_budget"), "{e}");
    }

    #[test]
    fn globs_that_read_own_output_are_refused() {
        let base = "data_dir = \"/var/lib/q\"\n[sinks.out]\ntype = \"file\"\npath = \"/srv/out\"\n";
        for glob in [
            "/var/lib/q/**/*",
            "/var/lib/q/journal/*.seg",
            "/var/lib/*/journal/*",
            "/srv/out/*/*.gelf",
            "/srv/out/web/*",
            "/srv/**",
            "/var/lib/q/../q/journal/*",
        ] {
            let text = format!("{base}[sources.f]\ntype = \"file\"\ninclude = [\"{glob}\"]\n");
            let e = config(&text).unwrap_err();
            assert!(e.contains("t.toml:7: sources.f.include"), "{glob}: {e}");
        }
        for glob in ["/var/log/*.log", "/var/lib/other/*", "/srv/outside/*.log"] {
            let text = format!("{base}[sources.f]\ntype = \"file\"\ninclude = [\"{glob}\"]\n");
            assert!(config(&text).is_ok(), "{glob}");
        }
    }
}
