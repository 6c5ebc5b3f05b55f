//! The parse keys (`haproxy_config`, `timezone`, ...) of sources and of `[parse]`, and how they
//! become a [`crate::parse::ParserConfig`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{BytesSection, SourceConfig};
use crate::record::Format;

/// `[parse]`: the parse keys of file and syslog sources, for records whose source configures none
/// (forwarded from agents); each record's own format hint picks the parser.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultParseSection {
    /// haproxy.cfg to read `log-format`s and `capture` declarations from (default: the one of
    /// `[bytes]`, if any).
    pub haproxy_config: Option<PathBuf>,
    #[serde(default)]
    pub haproxy_format: Vec<String>,
    #[serde(default)]
    pub apache_format: Vec<String>,
    pub apache_config: Option<PathBuf>,
    pub timezone: Option<String>,
    #[serde(default)]
    pub txn_id_fields: Vec<String>,
}

impl DefaultParseSection {
    /// The parse options of records from sources without their own.
    pub fn parse_options<'a>(&'a self, bytes: Option<&'a BytesSection>) -> ParseOptions<'a> {
        ParseOptions {
            format: Format::Auto,
            haproxy_config: self
                .haproxy_config
                .as_deref()
                .or(bytes.map(|b| b.haproxy_config.as_path())),
            haproxy_format: &self.haproxy_format,
            apache_format: &self.apache_format,
            apache_config: self.apache_config.as_deref(),
            timezone: self.timezone.as_deref(),
            txn_id_fields: &self.txn_id_fields,
        }
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

impl SourceConfig {
    /// The source's parse options (`None` for forward sources: records keep their agent's hint).
    pub fn parse_options(&self) -> Option<ParseOptions<'_>> {
        macro_rules! opts {
            ($c:expr) => {
                ParseOptions {
                    format: $c.format,
                    haproxy_config: $c.haproxy_config.as_deref(),
                    haproxy_format: &$c.haproxy_format,
                    apache_format: &$c.apache_format,
                    apache_config: $c.apache_config.as_deref(),
                    timezone: $c.timezone.as_deref(),
                    txn_id_fields: &$c.txn_id_fields,
                }
            };
        }
        match self {
            SourceConfig::File(c) => Some(opts!(c)),
            SourceConfig::Syslog(c) => Some(opts!(c)),
            SourceConfig::Relp(c) => Some(c.parse_options()),
            SourceConfig::Forward(_) | SourceConfig::Scribe(_) => None,
            SourceConfig::Gelf(c) => Some(ParseOptions {
                format: Format::Gelf,
                haproxy_config: None,
                haproxy_format: &[],
                apache_format: &[],
                apache_config: None,
                timezone: None,
                txn_id_fields: &c.txn_id_fields,
            }),
        }
    }
}

impl ParseOptions<'_> {
    /// Reads the named config files and builds the parser configuration.
    pub fn to_parser_config(&self) -> Result<crate::parse::ParserConfig, String> {
        use crate::parse::{ParserConfig, TxnIdSources};
        let mut cfg = ParserConfig {
            format: self.format,
            haproxy_log_formats: self.haproxy_format.to_vec(),
            apache_log_formats: self.apache_format.to_vec(),
            ..ParserConfig::default()
        };
        // Without `timezone`, the host's local zone (as the servers that wrote the logs used it).
        cfg.timezone = match self.timezone {
            Some(tz) => crate::parse::LogZone::parse(tz).map_err(|e| e.to_string())?,
            None => crate::parse::LogZone::local(),
        };
        if !self.txn_id_fields.is_empty() {
            cfg.txn_id_sources = TxnIdSources::new(self.txn_id_fields);
        }
        if let Some(path) = self.haproxy_config {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            cfg.haproxy_config = Some(
                crate::parse::haproxy::config::HaproxyConfig::parse(&text)
                    .map_err(|e| format!("{}: {e}", path.display()))?,
            );
        }
        if let Some(path) = self.apache_config {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let ac = crate::parse::apache::config::ApacheConfig::parse(&text)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            cfg.apache_log_formats.extend(ac.formats());
        }
        Ok(cfg)
    }
}
