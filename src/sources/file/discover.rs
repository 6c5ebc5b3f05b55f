//! Finding files: `include`/`exclude` glob expansion, and change notification through inotify
//! (the `notify` crate) with polling as the fallback.
//!
//! The watcher watches the directory each include glob lives in (recursively when the glob has
//! wildcards in its directory part) and only wakes the source thread: data events ask for a read
//! pass, create/rename/remove events also ask for a rescan. Watches that cannot be set up (the
//! directory does not exist yet) are retried on every rescan; if inotify is unavailable
//! altogether the source polls. Rotated compressed files (`.gz`, `.zst`, `.bz2`, `.xz`, `.lz4`,
//! `.zip`) are never candidates.
//!
//! Symbolic links: a file reached through a link (the file itself, or a directory a wildcard
//! matched) is skipped with one warning unless `follow_symlinks` is set, and then tailed only when
//! its real path is under one of `symlink_roots` ([`SymlinkPolicy`]).
//!
//! This module lists directories and stats files; it opens nothing for reading.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use notify::{EventKind, RecursiveMode, Watcher as _};

/// Suffixes of rotated, compressed files, which are never tailed.
const COMPRESSED: [&str; 6] = [".gz", ".zst", ".bz2", ".xz", ".lz4", ".zip"];

pub fn is_compressed(path: &Path) -> bool {
    let name = path.as_os_str().as_encoded_bytes();
    COMPRESSED.iter().any(|s| name.ends_with(s.as_bytes()))
}

/// Compiled include/exclude globs.
#[derive(Debug, Clone)]
pub struct Globs {
    include: Vec<glob::Pattern>,
    exclude: Vec<glob::Pattern>,
    symlinks: SymlinkPolicy,
}

/// Which files reached through symbolic links may be tailed.
#[derive(Debug, Clone, Default)]
pub struct SymlinkPolicy {
    follow: bool,
    /// Real (canonical) directories a followed link's target must be under.
    roots: Vec<PathBuf>,
    /// Links already warned about, so each is logged once.
    warned: Arc<Mutex<HashSet<PathBuf>>>,
}

impl SymlinkPolicy {
    /// `follow = false` skips every link; otherwise targets must be under `roots`.
    pub fn new(follow: bool, roots: &[PathBuf]) -> SymlinkPolicy {
        SymlinkPolicy {
            follow,
            roots: roots
                .iter()
                .map(|r| std::fs::canonicalize(r).unwrap_or_else(|_| r.clone()))
                .collect(),
            warned: Arc::default(),
        }
    }

    /// Whether `path` (found under the glob's literal directory `base`) may be tailed: `None` when
    /// no link is involved or the link is allowed, `Some(reason)` when it must be skipped.
    fn refuses(&self, path: &Path, base: &Path) -> Option<String> {
        let linked = path
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && *a != base)
            .any(|a| std::fs::symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink()));
        if !linked {
            return None;
        }
        if !self.follow {
            return Some(
                "it is reached through a symbolic link and `follow_symlinks` is off".into(),
            );
        }
        let target = match std::fs::canonicalize(path) {
            Ok(t) => t,
            Err(e) => return Some(format!("its symbolic link cannot be resolved: {e}")),
        };
        if self.roots.iter().any(|r| target.starts_with(r)) {
            return None;
        }
        Some(format!(
            "its symbolic link points to {}, outside `symlink_roots`",
            target.display()
        ))
    }

    /// Logs a refusal once per path.
    fn warn_once(&self, path: &Path, why: &str) {
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        if warned.len() < 10_000 && warned.insert(path.to_path_buf()) {
            tracing::warn!(path = %path.display(), "Not tailing {}: {why}.", path.display());
        }
    }
}

impl Globs {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Globs, String> {
        let compile = |patterns: &[String]| -> Result<Vec<glob::Pattern>, String> {
            patterns
                .iter()
                .map(|p| glob::Pattern::new(p).map_err(|e| format!("invalid glob `{p}`: {e}")))
                .collect()
        };
        Ok(Globs {
            include: compile(include)?,
            exclude: compile(exclude)?,
            symlinks: SymlinkPolicy::default(),
        })
    }

    /// These globs with `policy` for files reached through symbolic links (default: none).
    pub fn with_symlinks(self, policy: SymlinkPolicy) -> Globs {
        Globs {
            symlinks: policy,
            ..self
        }
    }

    /// Whether a path found by a directory listing may be tailed (not compressed, not excluded).
    pub fn admits(&self, path: &Path) -> bool {
        !is_compressed(path) && !self.exclude.iter().any(|p| p.matches_path(path))
    }

    /// Regular files matching an include glob and no exclude glob, with their metadata (symlinks
    /// followed where the [`SymlinkPolicy`] allows), sorted and deduplicated.
    pub fn expand(&self) -> Vec<(PathBuf, std::fs::Metadata)> {
        let mut paths = Vec::new();
        for (pattern, base) in self.include.iter().zip(self.literal_dirs()) {
            if let Ok(iter) = glob::glob(pattern.as_str()) {
                for p in iter.flatten() {
                    match self.symlinks.refuses(&p, &base) {
                        None => paths.push(p),
                        Some(why) => self.symlinks.warn_once(&p, &why),
                    }
                }
            }
        }
        paths.sort();
        paths.dedup();
        paths
            .into_iter()
            .filter(|p| self.admits(p))
            .filter_map(|p| {
                let meta = std::fs::metadata(&p).ok()?;
                meta.is_file().then_some((p, meta))
            })
            .collect()
    }

    /// Each include glob's longest wildcard-free directory (as written, `""` for none).
    fn literal_dirs(&self) -> Vec<PathBuf> {
        self.include
            .iter()
            .map(|p| literal_dir(Path::new(p.as_str())).0)
            .collect()
    }

    /// The directories to watch: each include glob's longest wildcard-free directory, and
    /// whether the glob needs it watched recursively.
    pub fn watch_roots(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let mut roots: Vec<(PathBuf, RecursiveMode)> = Vec::new();
        for pattern in &self.include {
            let (mut root, wild_dir) = literal_dir(Path::new(pattern.as_str()));
            if root.as_os_str().is_empty() {
                root.push(".");
            }
            let mode = if wild_dir {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            if !roots.iter().any(|(r, m)| *r == root && *m == mode) {
                roots.push((root, mode));
            }
        }
        roots
    }
}

/// A glob's longest wildcard-free directory, and whether a directory component has wildcards.
fn literal_dir(path: &Path) -> (PathBuf, bool) {
    let mut root = PathBuf::new();
    let components: Vec<Component> = path.components().collect();
    for (i, c) in components.iter().enumerate() {
        let s = c.as_os_str().to_string_lossy();
        let is_last = i + 1 == components.len();
        if s.contains(['*', '?', '[']) {
            return (root, !is_last);
        }
        if is_last {
            break;
        }
        root.push(c);
    }
    (root, false)
}

/// What woke the source thread.
#[derive(Debug, Default)]
pub struct Wake {
    /// A file or directory was created, renamed or removed: expand the globs again.
    pub rescan: bool,
}

/// Change notification: inotify when available, else nothing (the caller polls).
pub struct ChangeWatcher {
    watcher: Option<notify::RecommendedWatcher>,
    watched: HashSet<PathBuf>,
    roots: Vec<(PathBuf, RecursiveMode)>,
    wake_rx: Receiver<()>,
    structural: Arc<AtomicBool>,
}

impl ChangeWatcher {
    /// Sets up inotify for the globs' directories (`enabled = false`: polling only).
    pub fn new(globs: &Globs, enabled: bool, source: &str) -> ChangeWatcher {
        let (wake_tx, wake_rx): (Sender<()>, Receiver<()>) = crossbeam_channel::bounded(1);
        let structural = Arc::new(AtomicBool::new(false));
        let flag = structural.clone();
        let watcher = if enabled {
            let handler = move |res: notify::Result<notify::Event>| {
                let rescan = match res {
                    Ok(ev) => !matches!(
                        ev.kind,
                        EventKind::Modify(notify::event::ModifyKind::Data(_))
                            | EventKind::Access(_)
                    ),
                    Err(_) => true,
                };
                if rescan {
                    flag.store(true, Ordering::Release);
                }
                let _ = wake_tx.try_send(());
            };
            match notify::recommended_watcher(handler) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(source = %source, "Cannot set up inotify ({e}); polling instead.");
                    None
                }
            }
        } else {
            None
        };
        let mut w = ChangeWatcher {
            watcher,
            watched: HashSet::new(),
            roots: globs.watch_roots(),
            wake_rx,
            structural,
        };
        w.add_missing_watches();
        w
    }

    /// Whether inotify is in use.
    pub fn is_active(&self) -> bool {
        self.watcher.is_some()
    }

    /// Retries watches for directories that did not exist before.
    pub fn add_missing_watches(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        for (root, mode) in &self.roots {
            if self.watched.contains(root) || !root.is_dir() {
                continue;
            }
            if watcher.watch(root, *mode).is_ok() {
                self.watched.insert(root.clone());
            }
        }
    }

    /// Waits up to `timeout` for a change (returns at once if one is pending).
    pub fn wait(&self, timeout: Duration) -> Wake {
        if self.watcher.is_some() {
            let _ = self.wake_rx.recv_timeout(timeout);
        } else {
            std::thread::sleep(timeout);
        }
        self.take()
    }

    /// Collects a pending wake-up without waiting.
    pub fn take(&self) -> Wake {
        let _ = self.wake_rx.try_recv();
        Wake {
            rescan: self.structural.swap(false, Ordering::AcqRel),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_and_excluded_files_are_not_candidates() {
        let g = Globs::new(&["logs/*".into()], &["*.old".into()]).unwrap();
        assert!(g.admits(Path::new("logs/a.log")));
        assert!(g.admits(Path::new("logs/a.log.1")));
        assert!(!g.admits(Path::new("logs/a.log.2.gz")));
        assert!(!g.admits(Path::new("logs/a.log.zst")));
        assert!(!g.admits(Path::new("logs/a.old")));
        assert!(Globs::new(&["[".into()], &[]).is_err());
    }

    #[test]
    fn symlinks_are_tailed_only_when_allowed_and_inside_the_roots() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for d in ["logs/real", "secret"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("logs/a.log"), "a\n").unwrap();
        std::fs::write(root.join("logs/real/b.log"), "b\n").unwrap();
        std::fs::write(root.join("secret/shadow.log"), "x\n").unwrap();
        std::os::unix::fs::symlink(root.join("secret/shadow.log"), root.join("logs/s.log"))
            .unwrap();
        std::os::unix::fs::symlink(root.join("secret"), root.join("logs/sub")).unwrap();
        let include = [
            format!("{}/logs/*.log", root.display()),
            format!("{}/logs/*/*.log", root.display()),
        ];
        let names = |policy: SymlinkPolicy| -> Vec<String> {
            let g = Globs::new(&include, &[]).unwrap().with_symlinks(policy);
            g.expand()
                .into_iter()
                .map(|(p, _)| p.strip_prefix(&root).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(
            names(SymlinkPolicy::new(false, &[])),
            ["logs/a.log", "logs/real/b.log"]
        );
        assert_eq!(
            names(SymlinkPolicy::new(true, &[root.join("elsewhere")])),
            ["logs/a.log", "logs/real/b.log"]
        );
        assert_eq!(
            names(SymlinkPolicy::new(true, &[root.join("secret")])),
            [
                "logs/a.log",
                "logs/real/b.log",
                "logs/s.log",
                "logs/sub/shadow.log"
            ]
        );
    }

    #[test]
    fn watch_roots() {
        let g = Globs::new(
            &[
                "/var/log/app/*.log".into(),
                "/srv/*/logs/access.log".into(),
                "plain.log".into(),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            g.watch_roots(),
            vec![
                ("/var/log/app".into(), RecursiveMode::NonRecursive),
                ("/srv".into(), RecursiveMode::Recursive),
                (".".into(), RecursiveMode::NonRecursive),
            ]
        );
    }
}
