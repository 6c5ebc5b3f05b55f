//! The parse keys (`haproxy_config`, `timezone`, ...) of sources and of `[parse]`, and how they
//! become a [`crate::parse::ParserConfig`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::locate::find_key_line;
use super::{BytesSection, Config, ConfigError, SourceConfig};
use crate::parse::haproxy::config::HaproxyConfig;
use crate::parse::{ConfigError as CompileError, LogZone, Parser, ParserConfig, TxnIdSources};
use crate::record::Format;

/// The parse keys, defined once: flattened into the file and syslog sources and read alone as
/// `[parse]` (for records whose source configures none, e.g. forwarded from agents: each record's
/// own format hint picks the parser).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseKeys {
    /// haproxy.cfg to read custom `log-format`s and `capture` declarations from (in `[parse]`,
    /// default: the one of `[bytes]`, if any).
    pub haproxy_config: Option<PathBuf>,
    /// Custom HAProxy `log-format` strings, tried before the built-in formats.
    #[serde(default)]
    pub haproxy_format: Vec<String>,
    /// Apache `LogFormat` strings or nicknames (`combined`, ...), tried in order.
    #[serde(default)]
    pub apache_format: Vec<String>,
    /// Apache config to read `LogFormat` lines from.
    pub apache_config: Option<PathBuf>,
    /// Time zone of log times that carry none: an IANA name, `UTC`, an offset (`"+01:00"`) or
    /// `local` (the default).
    pub timezone: Option<String>,
    /// Field and header names `_txn_id` is taken from, in priority order (default: unique-id,
    /// X-Request-ID, X-Response-Id, X-Unique-ID, UNIQUE_ID, txnId, txn_id, request_id).
    #[serde(default)]
    pub txn_id_fields: Vec<String>,
}

/// `[parse]` is the parse keys alone.
pub type DefaultParseSection = ParseKeys;

impl ParseKeys {
    /// The keys, as spelt in the config file.
    pub const NAMES: [&'static str; 6] = [
        "haproxy_config",
        "haproxy_format",
        "apache_format",
        "apache_config",
        "timezone",
        "txn_id_fields",
    ];

    /// These keys as the options of a source whose lines have `format`.
    pub fn options(&self, format: Format) -> ParseOptions<'_> {
        ParseOptions {
            format,
            haproxy_config: self.haproxy_config.as_deref(),
            haproxy_format: &self.haproxy_format,
            apache_format: &self.apache_format,
            apache_config: self.apache_config.as_deref(),
            timezone: self.timezone.as_deref(),
            txn_id_fields: &self.txn_id_fields,
        }
    }

    /// The parse options of records from sources without their own (`[parse]`).
    pub fn parse_options<'a>(&'a self, bytes: Option<&'a BytesSection>) -> ParseOptions<'a> {
        let mut options = self.options(Format::Auto);
        if options.haproxy_config.is_none() {
            options.haproxy_config = bytes.map(|b| b.haproxy_config.as_path());
        }
        options
    }
}

/// How a source's lines are parsed at the sinks (the parse keys shared by file and syslog sources).
#[derive(Debug, Clone, Copy)]
pub struct ParseOptions<'a> {
    pub format: Format,
    pub haproxy_config: Option<&'a Path>,
    pub haproxy_format: &'a [String],
    pub apache_format: &'a [String],
    pub apache_config: Option<&'a Path>,
    pub timezone: Option<&'a str>,
    pub txn_id_fields: &'a [String],
}

impl<'a> ParseOptions<'a> {
    /// Options that set the format (and `_txn_id` names) only: the parsers' defaults otherwise.
    pub fn format_only(format: Format, txn_id_fields: &'a [String]) -> ParseOptions<'a> {
        ParseOptions {
            format,
            haproxy_config: None,
            haproxy_format: &[],
            apache_format: &[],
            apache_config: None,
            timezone: None,
            txn_id_fields,
        }
    }
}

/// A parse key whose value cannot be used: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ParseKeyError {
    /// `timezone`, `haproxy_config`, `haproxy_format`, `apache_config` or `apache_format`.
    pub key: &'static str,
    pub message: String,
}

fn key_error(key: &'static str) -> impl Fn(String) -> ParseKeyError {
    move |message| ParseKeyError { key, message }
}

impl SourceConfig {
    /// The source's parse options (`None` for forward sources: records keep their agent's hint).
    pub fn parse_options(&self) -> Option<ParseOptions<'_>> {
        match self {
            SourceConfig::File(c) => Some(c.parse.options(c.format)),
            SourceConfig::Syslog(c) => Some(c.parse.options(c.format)),
            SourceConfig::Relp(c) => Some(c.parse_options()),
            SourceConfig::Forward(_) | SourceConfig::Scribe(_) | SourceConfig::Nats(_) => None,
            SourceConfig::Gelf(c) => {
                Some(ParseOptions::format_only(Format::Gelf, &c.txn_id_fields))
            }
        }
    }
}

impl ParseOptions<'_> {
    /// Reads the named config files and builds the parser configuration: the one loader of parse
    /// keys, used by the daemon, `quill validate`, `quill parse` (and its offline join) and
    /// `quill index`. `input` is the log file being read, if known: a `CustomLog` of the Apache
    /// config writing a file of that name puts its format first.
    pub fn load(&self, input: Option<&Path>) -> Result<ParserConfig, ParseKeyError> {
        self.load_in(input, Path::new("/"))
    }

    /// [`ParseOptions::load`] with the Apache config files (and the platform's, see
    /// [`super::apache`]) read below `root`.
    pub fn load_in(
        &self,
        input: Option<&Path>,
        root: &Path,
    ) -> Result<ParserConfig, ParseKeyError> {
        let mut cfg = ParserConfig {
            format: self.format,
            haproxy_log_formats: self.haproxy_format.to_vec(),
            apache_log_formats: self.apache_format.to_vec(),
            ..ParserConfig::default()
        };
        // Without `timezone`, the host's local zone (as the servers that wrote the logs used it).
        cfg.timezone = match self.timezone {
            Some(tz) => LogZone::parse(tz).map_err(|e| key_error("timezone")(e.to_string()))?,
            None => LogZone::local(),
        };
        if !self.txn_id_fields.is_empty() {
            cfg.txn_id_sources = TxnIdSources::new(self.txn_id_fields);
        }
        if let Some(path) = self.haproxy_config {
            let text = read(path).map_err(key_error("haproxy_config"))?;
            cfg.haproxy_config =
                Some(HaproxyConfig::parse(&text).map_err(|e| {
                    key_error("haproxy_config")(format!("{}: {e}", path.display()))
                })?);
        }
        if let Some(path) = self.apache_config {
            let ac = super::apache::load(path, root).map_err(key_error("apache_config"))?;
            match input.and_then(|f| ac.format_for_file(f)) {
                Some(f) => cfg.apache_log_formats.insert(0, f.to_owned()),
                None => cfg.apache_log_formats.extend(ac.formats()),
            }
            cfg.apache_error_log_formats = ac.error_log_formats;
        } else if self.apache_format.is_empty()
            && let Some(path) = super::apache::platform_config(root)
        {
            // Without a config, the platform's: its LogFormats say whether `combined` is `%b`
            // or `%O` (an unreadable one is ignored: the nicknames stay ambiguous).
            if let Ok(ac) = super::apache::load(&path, Path::new("/")) {
                cfg.apache_log_formats.extend(ac.all_formats());
                cfg.apache_error_log_formats = ac.error_log_formats;
            }
        }
        Ok(cfg)
    }

    /// [`ParseOptions::load`], then compiled: a bad `log-format` is an error of the key that
    /// named it (`haproxy_format`, or `haproxy_config` for one read from haproxy.cfg).
    pub fn compile(&self, input: Option<&Path>) -> Result<Parser, ParseKeyError> {
        self.compile_in(input, Path::new("/"))
    }

    /// [`ParseOptions::compile`] with the Apache config files read below `root`.
    pub fn compile_in(&self, input: Option<&Path>, root: &Path) -> Result<Parser, ParseKeyError> {
        self.load_in(input, root)?.compile().map_err(|e| {
            let key = match &e {
                CompileError::HaproxyLogFormat { format, .. } => {
                    if self.haproxy_format.contains(format) {
                        "haproxy_format"
                    } else {
                        "haproxy_config"
                    }
                }
                CompileError::ApacheLogFormat { format, .. } => {
                    if self.apache_format.contains(format) || self.apache_config.is_none() {
                        "apache_format"
                    } else {
                        "apache_config"
                    }
                }
            };
            key_error(key)(e.to_string())
        })
    }

    /// The parser configuration, errors as text (what components report as a setting error).
    pub fn to_parser_config(&self) -> Result<ParserConfig, String> {
        self.load(None).map_err(|e| e.to_string())
    }

    /// [`ParseOptions::to_parser_config`] with the Apache config files read below `root`.
    pub fn to_parser_config_in(&self, root: &Path) -> Result<ParserConfig, String> {
        self.load_in(None, root).map_err(|e| e.to_string())
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

impl Config {
    /// [`Config::load`], then [`Config::check_parsers`]: what `quill validate` checks.
    pub fn load_with_parsers(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let origin = path.display().to_string();
        let config = Config::parse(&text, &origin)?;
        config.check_parsers(&text, &origin)?;
        Ok(config)
    }

    /// Compiles the parsers of every source and of `[parse]` (reading the haproxy.cfg and Apache
    /// configs they name), as the daemon will at start. `text` and `origin` are the config file's
    /// contents and name, to locate an error as file:line:key.
    pub fn check_parsers(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let sources = self
            .sources
            .iter()
            .filter_map(|(name, s)| Some((format!("sources.{name}"), s.parse_options()?)));
        let default = self.parse.parse_options(self.bytes.as_ref());
        for (table, options) in sources.chain([("parse".to_string(), default)]) {
            if let Err(e) = options.compile(None) {
                // `[parse]` without a haproxy_config of its own reads the one of `[bytes]`.
                let table = if table == "parse"
                    && e.key == "haproxy_config"
                    && self.parse.haproxy_config.is_none()
                {
                    "bytes".to_string()
                } else {
                    table
                };
                return Err(ConfigError::Invalid {
                    path: origin.to_string(),
                    line: find_key_line(text, &table, e.key),
                    key: format!("{table}.{}", e.key),
                    message: e.message,
                });
            }
        }
        Ok(())
    }
}
