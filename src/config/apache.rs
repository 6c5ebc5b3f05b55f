//! Reading an Apache configuration from disk for the parser: the file, every
//! `Include`/`IncludeOptional` it names (globs, directories, relative to `ServerRoot`, which
//! defaults to the directory of the main file as on Debian and RHEL), and, when a source names
//! no Apache config and no formats, the platform's own config (`/etc/apache2/apache2.conf`,
//! `/etc/httpd/conf/httpd.conf`) if present. Every path is taken below `root` (`/` in the
//! daemon, a test's own directory in tests), so tests never depend on the machine's Apache.
//! Touches only the files the configuration names (read-only).

use std::path::{Path, PathBuf};

use crate::parse::apache::config::ApacheConfig;

/// Where distributions keep the main Apache config (Debian/Ubuntu, then RHEL/Fedora).
pub const PLATFORM_CONFIGS: [&str; 2] = ["etc/apache2/apache2.conf", "etc/httpd/conf/httpd.conf"];

/// The platform's Apache config below `root`, if there is one.
pub fn platform_config(root: &Path) -> Option<PathBuf> {
    PLATFORM_CONFIGS
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.is_file())
}

/// `path` as seen below `root` (absolute paths are re-rooted, relative ones stay).
fn rooted(root: &Path, path: &Path) -> PathBuf {
    match path.strip_prefix("/") {
        Ok(rel) => root.join(rel),
        Err(_) => path.to_path_buf(),
    }
}

/// Reads `path` (a path below `root`) and everything it includes.
pub fn load(path: &Path, root: &Path) -> Result<ApacheConfig, String> {
    let file = rooted(root, path);
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let default_root = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut include = |pattern: &str, optional: bool, server_root: Option<&str>| {
        let base = server_root.map_or_else(|| default_root.clone(), |r| rooted(root, Path::new(r)));
        let p = Path::new(pattern);
        let full = if p.is_absolute() {
            rooted(root, p)
        } else {
            base.join(p)
        };
        read_matches(&full, optional)
    };
    ApacheConfig::parse_with(&text, &mut include).map_err(|e| format!("{}: {e}", file.display()))
}

/// The texts of the files `full` names: one file, a directory's files (sorted), or a glob's
/// matches (sorted). A required Include that matches nothing is an error, as in Apache.
fn read_matches(full: &Path, optional: bool) -> Result<Vec<(String, String)>, String> {
    let shown = full.display().to_string();
    let mut files: Vec<PathBuf> = if full.is_dir() {
        std::fs::read_dir(full)
            .map_err(|e| format!("cannot read {shown}: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect()
    } else if shown.contains(['*', '?', '[']) {
        glob::glob(&shown)
            .map_err(|e| format!("bad Include pattern {shown}: {e}"))?
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect()
    } else if full.is_file() {
        vec![full.to_path_buf()]
    } else {
        Vec::new()
    };
    files.sort();
    if files.is_empty() && !optional {
        return Err(format!("Include {shown} matches no file"));
    }
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read {}: {e}", f.display()))?;
            Ok((f.display().to_string(), text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_includes_below_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let etc = root.join("etc/apache2");
        std::fs::create_dir_all(etc.join("conf-enabled")).unwrap();
        std::fs::create_dir_all(etc.join("sites-enabled")).unwrap();
        std::fs::write(
            etc.join("apache2.conf"),
            "LogFormat \"%h %l %u %t \\\"%r\\\" %>s %O\" combined\nIncludeOptional conf-enabled/*.conf\nIncludeOptional missing/*.conf\nInclude sites-enabled/\nErrorLogFormat \"[%t] [%l] %M\"\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("conf-enabled/a.conf"),
            "LogFormat \"%v %h %>s %b\" vh\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("sites-enabled/000-default.conf"),
            "<VirtualHost *:80>\n CustomLog /var/log/apache2/access.log combined\n CustomLog /var/log/apache2/vh.log vh\n</VirtualHost>\n",
        )
        .unwrap();
        let p = platform_config(root).unwrap();
        let cfg = load(&p, Path::new("/")).unwrap();
        assert_eq!(
            cfg.custom_logs,
            vec![
                (
                    "/var/log/apache2/access.log".to_owned(),
                    "%h %l %u %t \"%r\" %>s %O".to_owned()
                ),
                (
                    "/var/log/apache2/vh.log".to_owned(),
                    "%v %h %>s %b".to_owned()
                ),
            ]
        );
        assert_eq!(cfg.error_log_formats, vec!["[%t] [%l] %M".to_owned()]);
        // The same through the re-rooted absolute path.
        assert_eq!(
            load(Path::new("/etc/apache2/apache2.conf"), root).unwrap(),
            cfg
        );
        // A required Include that matches nothing names the file and line.
        std::fs::write(etc.join("bad.conf"), "\n\nInclude nope/*.conf\n").unwrap();
        let e = load(&etc.join("bad.conf"), Path::new("/")).unwrap_err();
        assert!(e.contains("bad.conf") && e.contains("line 3"), "{e}");
        // An error inside an included file names that file and its line.
        std::fs::write(etc.join("conf-enabled/b.conf"), "\nLogFormat \"open\n").unwrap();
        let e = load(&p, Path::new("/")).unwrap_err();
        assert!(
            e.contains("b.conf line 2") && e.contains("unterminated"),
            "{e}"
        );
        assert!(platform_config(&root.join("none")).is_none());
    }
}
