//! The top level of the config file: `data_dir` and friends, `[journal]`, `[bytes]`, `[search]`, and
//! [`Config::load`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::locate::locate_toml_error;
use super::{ByteSize, ConfigError, DefaultParseSection, HumanDuration, SinkConfig, SourceConfig};
use crate::journal::{FsyncPolicy, JournalConfig};

/// The whole config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the journal, index and checkpoints live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The origin host stamped on records; default: the machine's hostname.
    pub hostname: Option<String>,
    /// How often the daemon logs its status line.
    #[serde(default = "default_status_interval")]
    pub status_interval: HumanDuration,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (e.g. `127.0.0.1:9598`); off by default.
    pub metrics_listen: Option<String>,
    /// Where the running daemon writes its pid (`quill reload` reads it); default
    /// `<data_dir>/quill.pid`.
    pub pid_file: Option<PathBuf>,
    /// Run as this user after binding the listeners (when started as root).
    pub user: Option<String>,
    /// ... and this group (default: the user's primary group).
    pub group: Option<String>,
    /// The daemon's memory budget (e.g. `"64MiB"`), divided among its stages
    /// ([`crate::memory::MemoryBudget`]); unbounded when absent.
    pub memory_limit: Option<ByteSize>,
    #[serde(default)]
    pub journal: JournalSection,
    /// `[parse]`: how records of sources without parse settings of their own (those forwarded
    /// from agents) are parsed.
    #[serde(default)]
    pub parse: DefaultParseSection,
    /// `[bytes]`: the byte join (HAProxy entries paired with the backend's access-log lines to
    /// report the bytes each client received); off when absent.
    pub bytes: Option<BytesSection>,
    /// `[search]`: the servers `quill search -c FILE` asks.
    #[serde(default)]
    pub search: super::SearchSection,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}
fn default_status_interval() -> HumanDuration {
    HumanDuration::secs(5)
}

/// `[journal]`: the write-ahead journal's durability and capacity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSection {
    /// `interval` (group commit, default), `always` (every batch) or `never` (unsafe).
    #[serde(default)]
    pub fsync: FsyncPolicy,
    #[serde(default = "default_fsync_interval")]
    pub fsync_interval: HumanDuration,
    #[serde(default = "default_segment_size")]
    pub segment_size: ByteSize,
    /// Total journal capacity; when full, sources that can wait get backpressure.
    #[serde(default = "default_journal_max")]
    pub max_size: ByteSize,
}

fn default_fsync_interval() -> HumanDuration {
    HumanDuration::millis(10)
}
fn default_segment_size() -> ByteSize {
    ByteSize::mib(128)
}
fn default_journal_max() -> ByteSize {
    ByteSize::gib(4)
}

impl Default for JournalSection {
    fn default() -> Self {
        JournalSection {
            fsync: FsyncPolicy::default(),
            fsync_interval: default_fsync_interval(),
            segment_size: default_segment_size(),
            max_size: default_journal_max(),
        }
    }
}

impl JournalSection {
    pub fn to_journal_config(&self) -> JournalConfig {
        JournalConfig {
            fsync: self.fsync,
            fsync_interval: self.fsync_interval.0,
            segment_bytes: self.segment_size.0,
            max_bytes: self.max_size.0,
        }
    }
}

/// `[bytes]`: the byte join of the sinks that write GELF (file, index).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BytesSection {
    /// The haproxy.cfg of the HAProxy whose logs are joined: the header changes it makes.
    pub haproxy_config: PathBuf,
    /// How long an HAProxy entry waits (from its receive time) for the backend's line with the
    /// same transaction id; then it goes out with the best estimate.
    #[serde(default = "default_bytes_window")]
    pub window: HumanDuration,
    /// Entries held at most per sink; beyond, the one that waited longest goes out.
    #[serde(default = "default_bytes_capacity")]
    pub capacity: usize,
    /// The operator's word that no HTTP/1.1 client sends `Connection: close` to a keep-alive
    /// frontend (HAProxy 2.6 cannot log it): such entries may then be labelled `exact` (like
    /// `quill parse --assume-keep-alive-clients`). Default: they are estimates.
    #[serde(default)]
    pub assume_keep_alive_clients: bool,
}

fn default_bytes_window() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_bytes_capacity() -> usize {
    100_000
}
impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and validates config text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config =
            toml::from_str(text).map_err(|e| locate_toml_error(text, origin, &e))?;
        config.validate(text, origin)?;
        config.search.validate(text, origin)?;
        Ok(config)
    }

    /// The daemon's pid file: `pid_file`, default `<data_dir>/quill.pid`.
    pub fn pid_path(&self) -> PathBuf {
        self.pid_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("quill.pid"))
    }

    /// The category of source `name`.
    pub fn source_category<'a>(name: &'a str, configured: &'a Option<String>) -> &'a str {
        configured.as_deref().unwrap_or(name)
    }
}
