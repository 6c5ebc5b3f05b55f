//! A reader for haproxy.cfg: sections and their directives, tokenized with HAProxy's rules
//! (whitespace-separated words; `"…"` with backslash escapes and `$VAR`/`${VAR}`/`${VAR-default}`
//! environment expansion; `'…'` verbatim; `\` escapes outside quotes; `#` comments).
//!
//! The result keeps every section with its directives as word lists, so later readers (byte
//! accounting: cookie insert, http-response headers, compression) query the same structure.
//! [`ProxyView`] answers the questions the log parser asks: the effective log-format of a proxy
//! (its own or its defaults section's, `option httplog/tcplog/httpslog/httplog clf`), its
//! `error-log-format` and `log-format-sd`, and the formats of the 3.1 `log-profile`s its `log`
//! lines name; its capture slots are read by [`super::captures`]. Defaults are HAProxy's: a
//! proxy inherits the last `defaults` section before it, or the one it names with `from`, and a
//! named defaults section may itself inherit (`defaults b from a`). No I/O: the caller reads
//! the file.

use super::logformat;

/// What kind of section a block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    Global,
    Defaults,
    Frontend,
    Listen,
    Backend,
    /// Any other section (`peers`, `resolvers`, `userlist`, `cache`, `ring`, …).
    Other,
}

/// One directive: its words after unquoting, and the 1-based line it was on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub words: Vec<String>,
    pub line: usize,
}

impl Directive {
    /// Does the directive start with these words?
    pub fn starts_with(&self, words: &[&str]) -> bool {
        self.words.len() >= words.len() && self.words.iter().zip(words).all(|(a, b)| a == b)
    }
}

/// A section: its kind, its name (if any), the `from` defaults it names, and its directives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: SectionKind,
    pub keyword: String,
    pub name: Option<String>,
    /// `frontend X from D`: the named defaults section.
    pub from: Option<String>,
    pub directives: Vec<Directive>,
    pub line: usize,
}

/// A parsed haproxy.cfg.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HaproxyConfig {
    pub sections: Vec<Section>,
}

/// A line of the configuration that could not be tokenized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("haproxy config line {line}: {what}")]
pub struct ConfigParseError {
    pub line: usize,
    pub what: &'static str,
}

impl HaproxyConfig {
    /// Parses a configuration, expanding environment variables from the process environment.
    pub fn parse(text: &str) -> Result<HaproxyConfig, ConfigParseError> {
        HaproxyConfig::parse_with_env(text, &|k| std::env::var(k).ok())
    }

    /// Parses a configuration with `env` resolving `$VAR`s.
    pub fn parse_with_env(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<HaproxyConfig, ConfigParseError> {
        let mut sections: Vec<Section> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let words = tokenize(raw, env).map_err(|what| ConfigParseError { line, what })?;
            let Some(first) = words.first() else { continue };
            let kind = match first.as_str() {
                "global" => Some(SectionKind::Global),
                "defaults" => Some(SectionKind::Defaults),
                "frontend" => Some(SectionKind::Frontend),
                "listen" => Some(SectionKind::Listen),
                "backend" => Some(SectionKind::Backend),
                "peers" | "resolvers" | "userlist" | "cache" | "ring" | "mailers" | "program"
                | "http-errors" | "namespace_list" | "traces" | "log-forward" | "crt-store"
                | "log-profile" | "acme" => Some(SectionKind::Other),
                _ => None,
            };
            match kind {
                Some(kind) => {
                    let name = words.get(1).filter(|w| *w != "from").cloned();
                    let from = words
                        .iter()
                        .position(|w| w == "from")
                        .and_then(|p| words.get(p + 1))
                        .cloned();
                    sections.push(Section {
                        kind,
                        keyword: first.clone(),
                        name,
                        from,
                        directives: Vec::new(),
                        line,
                    });
                }
                None => match sections.last_mut() {
                    Some(s) => s.directives.push(Directive { words, line }),
                    None => {
                        return Err(ConfigParseError {
                            line,
                            what: "directive outside any section",
                        });
                    }
                },
            }
        }
        Ok(HaproxyConfig { sections })
    }

    /// Frontends and listen sections (the proxies that log), with their defaults resolved.
    pub fn proxies(&self) -> impl Iterator<Item = ProxyView<'_>> {
        self.sections.iter().enumerate().filter_map(move |(i, s)| {
            if !matches!(s.kind, SectionKind::Frontend | SectionKind::Listen) {
                return None;
            }
            let defaults = match &s.from {
                Some(from) => self.sections[..i].iter().rev().find(|d| {
                    d.kind == SectionKind::Defaults && d.name.as_deref() == Some(from.as_str())
                }),
                None => self.sections[..i]
                    .iter()
                    .rev()
                    .find(|d| d.kind == SectionKind::Defaults),
            };
            Some(ProxyView {
                name: s.name.as_deref().unwrap_or(""),
                section: s,
                defaults,
                cfg: self,
            })
        })
    }

    /// A proxy by name.
    pub fn proxy(&self, name: &str) -> Option<ProxyView<'_>> {
        self.proxies().find(|p| p.name == name)
    }
}

/// A frontend or listen section seen with its defaults.
#[derive(Debug, Clone, Copy)]
pub struct ProxyView<'c> {
    pub name: &'c str,
    pub section: &'c Section,
    pub defaults: Option<&'c Section>,
    cfg: &'c HaproxyConfig,
}

impl<'c> ProxyView<'c> {
    /// The log-format string this proxy logs with (a built-in one for `option httplog` etc.),
    /// or `None` if it sets none (HAProxy then uses the default "Connect from" format).
    pub fn log_format(&self) -> Option<String> {
        own_log_format(self.section).or_else(|| self.inherited().find_map(own_log_format))
    }

    /// Its `error-log-format` (own or inherited), if any.
    pub fn error_log_format(&self) -> Option<String> {
        self.last_of("error-log-format")
    }

    /// Its `log-format-sd` (own or inherited), if any.
    pub fn log_format_sd(&self) -> Option<String> {
        self.last_of("log-format-sd")
    }

    /// `(format, sd)` of every `on <step> … format F sd S` of the `log-profile`s its `log`
    /// lines name (`log … profile NAME`; with `log global`, the global section's).
    pub fn profile_formats(&self) -> Vec<(Option<String>, Option<String>)> {
        let global = self
            .cfg
            .sections
            .iter()
            .filter(|s| s.kind == SectionKind::Global);
        let uses_global = self.directives().any(|d| d.starts_with(&["log", "global"]));
        let logs = self
            .directives()
            .chain(
                global
                    .filter(|_| uses_global)
                    .flat_map(|s| s.directives.iter()),
            )
            .filter(|d| d.starts_with(&["log"]));
        let mut out = Vec::new();
        for d in logs {
            let Some(p) = d.words.iter().position(|w| w == "profile") else {
                continue;
            };
            let Some(name) = d.words.get(p + 1) else {
                continue;
            };
            let profile =
                self.cfg.sections.iter().find(|s| {
                    s.keyword == "log-profile" && s.name.as_deref() == Some(name.as_str())
                });
            for on in profile
                .into_iter()
                .flat_map(|s| s.directives.iter())
                .filter(|d| d.starts_with(&["on"]))
            {
                let after = |kw: &str| {
                    let i = on.words.iter().position(|w| w == kw)?;
                    on.words.get(i + 1).cloned()
                };
                let entry = (after("format"), after("sd"));
                if (entry.0.is_some() || entry.1.is_some()) && !out.contains(&entry) {
                    out.push(entry);
                }
            }
        }
        out
    }

    /// The words after `kw` of its last `kw` line, own or inherited.
    fn last_of(&self, kw: &str) -> Option<String> {
        let own = |s: &Section| {
            s.directives
                .iter()
                .rev()
                .find(|d| d.starts_with(&[kw]))
                .map(|d| d.words[1..].join(" "))
        };
        own(self.section).or_else(|| self.inherited().find_map(own))
    }

    /// Its defaults section, then the named defaults that one inherits `from`, and so on.
    pub fn inherited(&self) -> impl Iterator<Item = &'c Section> + '_ {
        let sections = &self.cfg.sections;
        let mut cur = self.defaults;
        // At most one step per section: a `from` cycle cannot loop.
        (0..sections.len()).map_while(move |_| {
            let d = cur?;
            let at = sections.iter().position(|s| std::ptr::eq(s, d))?;
            cur = d.from.as_ref().and_then(|from| {
                sections[..at].iter().rev().find(|s| {
                    s.kind == SectionKind::Defaults && s.name.as_deref() == Some(from.as_str())
                })
            });
            Some(d)
        })
    }

    /// Directives of the proxy itself, then of its defaults sections.
    pub fn directives(&self) -> impl Iterator<Item = &'c Directive> + '_ {
        self.section
            .directives
            .iter()
            .chain(self.inherited().flat_map(|d| d.directives.iter()))
    }
}

fn own_log_format(s: &Section) -> Option<String> {
    // The last relevant directive wins.
    let mut found = None;
    for d in &s.directives {
        if d.starts_with(&["log-format"]) {
            found = Some(d.words[1..].join(" "));
        } else if d.starts_with(&["option", "httplog"]) {
            found = Some(
                if d.words.get(2).map(String::as_str) == Some("clf") {
                    logformat::CLF
                } else {
                    logformat::HTTPLOG
                }
                .to_owned(),
            );
        } else if d.starts_with(&["option", "httpslog"]) {
            found = Some(logformat::HTTPSLOG.to_owned());
        } else if d.starts_with(&["option", "tcplog"]) {
            found = Some(logformat::TCPLOG.to_owned());
        } else if d.starts_with(&["no", "log"]) || d.starts_with(&["no", "option", "httplog"]) {
            found = None;
        }
    }
    found
}

/// Splits one configuration line into words with HAProxy's quoting rules.
pub fn tokenize(
    line: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, &'static str> {
    let b = line.as_bytes();
    let mut words = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut in_word = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' => {
                if in_word {
                    words.push(String::from_utf8_lossy(&cur).into_owned());
                    cur.clear();
                    in_word = false;
                }
                i += 1;
            }
            b'#' => break,
            b'\\' => {
                in_word = true;
                match b.get(i + 1) {
                    Some(&n) => {
                        cur.push(n);
                        i += 2;
                    }
                    None => {
                        cur.push(b'\\');
                        i += 1;
                    }
                }
            }
            b'\'' => {
                in_word = true;
                let end = b[i + 1..]
                    .iter()
                    .position(|&x| x == b'\'')
                    .ok_or("unterminated single quote")?
                    + i
                    + 1;
                cur.extend_from_slice(&b[i + 1..end]);
                i = end + 1;
            }
            b'"' => {
                in_word = true;
                i += 1;
                loop {
                    match b.get(i) {
                        None => return Err("unterminated double quote"),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            match b.get(i + 1) {
                                Some(b'n') => cur.push(b'\n'),
                                Some(b't') => cur.push(b'\t'),
                                Some(b'r') => cur.push(b'\r'),
                                Some(&n) => cur.push(n),
                                None => return Err("unterminated double quote"),
                            }
                            i += 2;
                        }
                        Some(b'$') => i = expand_env(b, i, &mut cur, env)?,
                        Some(&n) => {
                            cur.push(n);
                            i += 1;
                        }
                    }
                }
            }
            b'$' => {
                in_word = true;
                i = expand_env(b, i, &mut cur, env)?;
            }
            _ => {
                in_word = true;
                cur.push(c);
                i += 1;
            }
        }
    }
    if in_word {
        words.push(String::from_utf8_lossy(&cur).into_owned());
    }
    Ok(words)
}

/// Expands `$NAME`, `${NAME}` or `${NAME-default}` at `b[i] == '$'`; returns the next index.
fn expand_env(
    b: &[u8],
    i: usize,
    out: &mut Vec<u8>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<usize, &'static str> {
    if b.get(i + 1) == Some(&b'{') {
        let end = b[i + 2..]
            .iter()
            .position(|&x| x == b'}')
            .ok_or("unterminated ${")?
            + i
            + 2;
        let inner = String::from_utf8_lossy(&b[i + 2..end]);
        let (name, default) = match inner.find('-') {
            Some(p) => (&inner[..p], Some(&inner[p + 1..])),
            None => (&inner[..], None),
        };
        match env(name) {
            Some(v) => out.extend_from_slice(v.as_bytes()),
            None => out.extend_from_slice(default.unwrap_or("").as_bytes()),
        }
        Ok(end + 1)
    } else {
        let mut j = i + 1;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
            j += 1;
        }
        if j == i + 1 {
            out.push(b'$');
            return Ok(j);
        }
        let name = String::from_utf8_lossy(&b[i + 1..j]);
        if let Some(v) = env(&name) {
            out.extend_from_slice(v.as_bytes());
        }
        Ok(j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        (k == "FE").then(|| "fe_env".to_owned())
    }

    #[test]
    fn tokenizes_like_haproxy() {
        assert_eq!(
            tokenize(r#"log-format "%ci:%cp [%t] \"x\"" # comment"#, &env).unwrap(),
            vec!["log-format", "%ci:%cp [%t] \"x\""]
        );
        assert_eq!(
            tokenize(r"log-format %ci\ %cp", &env).unwrap(),
            vec!["log-format", "%ci %cp"]
        );
        assert_eq!(
            tokenize(r#"a '$FE "x"' "$FE" ${FE} ${NOPE-dflt} \#x"#, &env).unwrap(),
            vec!["a", "$FE \"x\"", "fe_env", "fe_env", "dflt", "#x"]
        );
        assert!(tokenize("a \"open", &env).is_err());
    }

    #[test]
    fn proxies_inherit_defaults() {
        let cfg = HaproxyConfig::parse_with_env(
            "defaults\n  option httplog\nfrontend a\n  capture request header X-Test-Id len 40\n  capture response header Server len 9\nfrontend b\n  log-format \"%ci %ST\"\nlisten c\n  option tcplog\n",
            &env,
        )
        .unwrap();
        let a = cfg.proxy("a").unwrap();
        assert_eq!(a.log_format().as_deref(), Some(logformat::HTTPLOG));
        let slots = super::super::captures::proxy_captures(&cfg, &a);
        assert_eq!((slots.request.len(), slots.response.len()), (1, 1));
        assert_eq!(
            cfg.proxy("b").unwrap().log_format().as_deref(),
            Some("%ci %ST")
        );
        assert_eq!(
            cfg.proxy("c").unwrap().log_format().as_deref(),
            Some(logformat::TCPLOG)
        );
        assert!(HaproxyConfig::parse("option httplog\n").is_err());
    }
}
