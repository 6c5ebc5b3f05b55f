//! A reader for the logging lines of an Apache config: `LogFormat "…" nickname`,
//! `CustomLog path nickname|"format"` and `ErrorLogFormat "…"`, with Apache's quoting (`"…"`
//! with `\"` and `\\`, and `\` line continuations). `Include`/`IncludeOptional` are followed
//! where they stand (so later lines see the nicknames an included file defines) through the
//! caller's [`Includer`], which does the I/O (globs relative to `ServerRoot`, see
//! `config::apache`); this module reads text only.

/// The LogFormats and CustomLogs of an Apache configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApacheConfig {
    /// `(nickname, format)`; a LogFormat without nickname defines the default (`None`).
    pub log_formats: Vec<(Option<String>, String)>,
    /// `(path, format)` with nicknames resolved.
    pub custom_logs: Vec<(String, String)>,
    /// `ErrorLogFormat` strings (the last one of a context wins in Apache; every one is kept,
    /// a vhost may define its own).
    pub error_log_formats: Vec<String>,
    /// The `ServerRoot` directive, if any (relative `Include`s are relative to it).
    pub server_root: Option<String>,
}

/// Reads what an `Include`/`IncludeOptional` names: `(pattern, optional, server_root)` to the
/// `(file name, text)` of the files it matches, in Apache's order; an error message when a
/// required one cannot be read.
pub type Includer<'i> =
    dyn FnMut(&str, bool, Option<&str>) -> Result<Vec<(String, String)>, String> + 'i;

/// `Include`s nested deeper than this are refused (a file that includes itself).
const MAX_INCLUDE_DEPTH: usize = 16;

/// A configuration line that could not be tokenized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("apache config line {line}: {what}")]
pub struct ApacheConfigError {
    pub line: usize,
    pub what: std::borrow::Cow<'static, str>,
}

impl ApacheConfig {
    /// Parses one file's text; `Include`s are an error (use [`ApacheConfig::parse_with`]).
    pub fn parse(text: &str) -> Result<ApacheConfig, ApacheConfigError> {
        ApacheConfig::parse_with(text, &mut |_, _, _| {
            Err("Include needs a file system (config::apache::load)".to_owned())
        })
    }

    /// Parses `text`, reading `Include`s through `include`.
    pub fn parse_with(
        text: &str,
        include: &mut Includer<'_>,
    ) -> Result<ApacheConfig, ApacheConfigError> {
        let mut cfg = ApacheConfig::default();
        cfg.read(text, include, 0)?;
        Ok(cfg)
    }

    fn read(
        &mut self,
        text: &str,
        include: &mut Includer<'_>,
        depth: usize,
    ) -> Result<(), ApacheConfigError> {
        let cfg = self;
        let mut pending = String::new();
        let mut start_line = 0;
        for (i, raw) in text.lines().enumerate() {
            if pending.is_empty() {
                start_line = i + 1;
            }
            if let Some(cont) = raw.strip_suffix('\\') {
                pending.push_str(cont);
                continue;
            }
            pending.push_str(raw);
            let line = std::mem::take(&mut pending);
            let trimmed = line.trim_start();
            if trimmed.starts_with('#') || trimmed.is_empty() {
                continue;
            }
            let words = tokenize(trimmed).map_err(|what| ApacheConfigError {
                line: start_line,
                what: what.into(),
            })?;
            let Some(directive) = words.first() else {
                continue;
            };
            if directive.eq_ignore_ascii_case("LogFormat") {
                let fmt = words.get(1).ok_or(ApacheConfigError {
                    line: start_line,
                    what: "LogFormat without a format".into(),
                })?;
                cfg.log_formats.push((words.get(2).cloned(), fmt.clone()));
            } else if directive.eq_ignore_ascii_case("CustomLog") {
                let (Some(path), Some(f)) = (words.get(1), words.get(2)) else {
                    return Err(ApacheConfigError {
                        line: start_line,
                        what: "CustomLog needs a path and a format".into(),
                    });
                };
                let resolved = cfg.resolve(f).unwrap_or(f).to_owned();
                cfg.custom_logs.push((path.clone(), resolved));
            } else if directive.eq_ignore_ascii_case("ErrorLogFormat") {
                // `ErrorLogFormat [connection|request] "format"`
                if let Some(f) = words.last().filter(|_| words.len() >= 2) {
                    cfg.error_log_formats.push(f.clone());
                }
            } else if directive.eq_ignore_ascii_case("ServerRoot") {
                cfg.server_root = words.get(1).cloned();
            } else if directive.eq_ignore_ascii_case("Include")
                || directive.eq_ignore_ascii_case("IncludeOptional")
            {
                let err = |what: String| ApacheConfigError {
                    line: start_line,
                    what: what.into(),
                };
                let pattern = words
                    .get(1)
                    .ok_or_else(|| err(format!("{directive} without a path")))?;
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(err(format!("{directive} nested too deep")));
                }
                let optional = directive.eq_ignore_ascii_case("IncludeOptional");
                let root = cfg.server_root.clone();
                for (name, text) in include(pattern, optional, root.as_deref()).map_err(err)? {
                    // An error inside an included file names it and its line, at the Include.
                    cfg.read(&text, include, depth + 1)
                        .map_err(|e| err(format!("{name} line {}: {}", e.line, e.what)))?;
                }
            }
        }
        Ok(())
    }

    /// The CustomLog formats, then every other LogFormat defined (for a config that is read
    /// without knowing which file a line came from).
    pub fn all_formats(&self) -> Vec<String> {
        let mut out = self.formats();
        for (_, f) in &self.log_formats {
            if !out.contains(f) {
                out.push(f.clone());
            }
        }
        out
    }

    /// The format a nickname stands for (defined here or built in); a string with `%` is
    /// already a format.
    pub fn resolve<'s>(&'s self, name_or_format: &'s str) -> Option<&'s str> {
        if name_or_format.contains('%') {
            return Some(name_or_format);
        }
        self.log_formats
            .iter()
            .rev()
            .find(|(n, _)| n.as_deref() == Some(name_or_format))
            .map(|(_, f)| f.as_str())
            .or_else(|| super::logformat::nickname(name_or_format))
    }

    /// The format of the CustomLog writing a file with this name (compared by file name), if any.
    pub fn format_for_file(&self, file: &std::path::Path) -> Option<&str> {
        let name = file.file_name()?;
        self.custom_logs
            .iter()
            .find(|(p, _)| std::path::Path::new(p).file_name() == Some(name))
            .map(|(_, f)| f.as_str())
    }

    /// Every distinct format of the CustomLogs, in order.
    pub fn formats(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, f) in &self.custom_logs {
            if !out.contains(f) {
                out.push(f.clone());
            }
        }
        out
    }
}

fn tokenize(line: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        let mut w = String::new();
        if c == '"' || c == '\'' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("unterminated quote"),
                    Some('\\') => match chars.next() {
                        Some(n) if n == c || n == '\\' => w.push(n),
                        Some(n) => {
                            w.push('\\');
                            w.push(n);
                        }
                        None => return Err("unterminated quote"),
                    },
                    Some(x) if x == c => break,
                    Some(x) => w.push(x),
                }
            }
        } else {
            while let Some(&x) = chars.peek() {
                if x.is_whitespace() {
                    break;
                }
                w.push(x);
                chars.next();
            }
        }
        words.push(w);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_logformat_and_customlog() {
        let cfg = ApacheConfig::parse(
            "# c\nLogFormat \"%h \\\"%r\\\" %>s\" mine\nCustomLog \"/var/log/a.log\" mine\nCustomLog /var/log/b.log combined\nCustomLog /c.log \"%h %b\"\n",
        )
        .unwrap();
        assert_eq!(
            cfg.custom_logs[0],
            ("/var/log/a.log".to_owned(), "%h \"%r\" %>s".to_owned())
        );
        assert_eq!(cfg.custom_logs[1].1, super::super::logformat::COMBINED);
        assert_eq!(cfg.custom_logs[2].1, "%h %b");
        assert_eq!(
            cfg.format_for_file(std::path::Path::new("/x/b.log")),
            Some(super::super::logformat::COMBINED)
        );
        assert!(ApacheConfig::parse("LogFormat \"open").is_err());
    }
}
