//! `[sinks.NAME]`: the file, forward and index sinks' settings.

use std::path::PathBuf;

use serde::Deserialize;

use super::validate::is_safe_category;
use super::{
    ByteSize, Compression, FileFormat, GelfSinkConfig, HumanDuration, NatsSinkConfig, OutputFsync,
    RouteConfig, SyslogSinkConfig, search,
};

/// `[sinks.NAME]`, selected by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[allow(clippy::large_enum_variant)] // parsed once at startup: size does not matter
pub enum SinkConfig {
    File(FileSinkConfig),
    Forward(ForwardSinkConfig),
    Index(IndexSinkConfig),
    Gelf(GelfSinkConfig),
    Syslog(SyslogSinkConfig),
    Nats(NatsSinkConfig),
}

impl SinkConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkConfig::File(_) => "file",
            SinkConfig::Forward(_) => "forward",
            SinkConfig::Index(_) => "index",
            SinkConfig::Gelf(_) => "gelf",
            SinkConfig::Syslog(_) => "syslog",
            SinkConfig::Nats(_) => "nats",
        }
    }

    /// The sink's routing keys.
    pub fn route(&self) -> &RouteConfig {
        match self {
            SinkConfig::File(c) => &c.route,
            SinkConfig::Forward(c) => &c.route,
            SinkConfig::Index(c) => &c.route,
            SinkConfig::Gelf(c) => &c.route,
            SinkConfig::Syslog(c) => &c.route,
            SinkConfig::Nats(c) => &c.route,
        }
    }

    /// `max_lag` of whichever sink this is.
    pub fn max_lag(&self) -> Option<ByteSize> {
        match self {
            SinkConfig::File(c) => c.max_lag,
            SinkConfig::Forward(c) => c.max_lag,
            SinkConfig::Index(c) => c.max_lag,
            SinkConfig::Gelf(c) => c.max_lag,
            SinkConfig::Syslog(c) => c.max_lag,
            SinkConfig::Nats(c) => c.max_lag,
        }
    }
}

/// `type = "file"`: GELF JSON lines under `<path>/<category>/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Which records this sink takes (`inputs`, `categories`, `min_severity`, `hosts`).
    #[serde(flatten)]
    pub route: RouteConfig,
    pub path: PathBuf,
    /// Past this much journal behind it (while it is down), the journal stops waiting for the
    /// sink: its cursor moves on and the records it skips are counted. Default: no limit (the
    /// sink holds the journal, sources see backpressure).
    #[serde(default)]
    pub max_lag: Option<ByteSize>,
    /// A category's current file is rotated when it would grow past this.
    #[serde(default = "default_file_sink_max")]
    pub max_size: ByteSize,
    /// When the output is fdatasynced (`batch`, `interval`, `never`); default: follows
    /// `[journal] fsync` (see [`OutputFsync`]).
    pub fsync: Option<OutputFsync>,
    /// Group-commit interval for `fsync = "interval"` (and how often `never` acknowledges);
    /// default: `[journal] fsync_interval`.
    pub fsync_interval: Option<HumanDuration>,
    /// Threads that parse and encode records (default: the machine's cores).
    pub workers: Option<usize>,
    /// `gelf` (default) or `raw` (Scribe's file store, [`crate::sinks::scribe_store`]).
    #[serde(default)]
    pub format: FileFormat,
    /// `raw` only: a category's file is also rotated when it is this old (`"1h"`).
    pub rotate_period: Option<HumanDuration>,
    /// `raw`: compress closed files (`gzip`, `zstd`; default none). `gelf`: `zstd` writes
    /// `.gelf.zst` files, every write one complete zstd frame.
    #[serde(default)]
    pub compress: Compression,
    /// `raw` only: append a newline after every message (Scribe's `add_newlines`; default off:
    /// the message bytes are written as they came).
    #[serde(default)]
    pub add_newlines: bool,
}

fn default_file_sink_max() -> ByteSize {
    ByteSize::mib(100)
}

/// `type = "forward"`: ship the journal to aggregators.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardSinkConfig {
    /// Which records this sink takes (`inputs`, `categories`, `min_severity`, `hosts`).
    #[serde(flatten)]
    pub route: RouteConfig,
    /// Past this much journal behind it (while it is down), the journal stops waiting for the
    /// sink: its cursor moves on and the records it skips are counted. Default: no limit (the
    /// sink holds the journal, sources see backpressure).
    #[serde(default)]
    pub max_lag: Option<ByteSize>,
    /// Aggregators, `HOST:PORT`: the first that works (failover), or spread with `load_balance`.
    pub to: Vec<String>,
    pub token: Option<String>,
    /// A file whose first line is the shared token (instead of `token`).
    pub token_file: Option<PathBuf>,
    /// This agent's id at the aggregators (default: the hostname).
    pub agent_id: Option<String>,
    /// CA (PEM) to verify aggregators with; setting it turns TLS on.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Name to verify the aggregators' certificates against (default: the host of each address).
    pub tls_server_name: Option<String>,
    /// A batch is sent when its records reach this many bytes...
    #[serde(default = "default_forward_batch_size")]
    pub batch_size: ByteSize,
    /// ...or when its first record has waited this long.
    #[serde(default = "default_forward_batch_delay")]
    pub batch_delay: HumanDuration,
    /// Batches in flight (sent, not yet acknowledged) at most.
    #[serde(default = "default_forward_window")]
    pub window: usize,
    /// Start each agent at an aggregator chosen by its id instead of the first one.
    #[serde(default)]
    pub load_balance: bool,
    /// zstd level (1 fastest ... 19).
    #[serde(default = "default_forward_compression")]
    pub compression_level: i32,
    /// Reconnect backoff: starts here, doubles per failed round, jittered...
    #[serde(default = "default_forward_backoff_min")]
    pub backoff_min: HumanDuration,
    /// ...up to this.
    #[serde(default = "default_forward_backoff_max")]
    pub backoff_max: HumanDuration,
    /// A connection with batches in flight and no ack for this long is replaced.
    #[serde(default = "default_forward_ack_timeout")]
    pub ack_timeout: HumanDuration,
    /// On shutdown, how long to keep forwarding what is journaled before leaving it for next time.
    #[serde(default = "default_forward_drain_timeout")]
    pub drain_timeout: HumanDuration,
}

fn default_forward_batch_size() -> ByteSize {
    ByteSize::mib(1)
}
fn default_forward_batch_delay() -> HumanDuration {
    HumanDuration::millis(5)
}
fn default_forward_window() -> usize {
    8
}
fn default_forward_compression() -> i32 {
    1
}
fn default_forward_backoff_min() -> HumanDuration {
    HumanDuration::millis(100)
}
fn default_forward_backoff_max() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_forward_ack_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_forward_drain_timeout() -> HumanDuration {
    HumanDuration::secs(5)
}

/// `type = "index"`: index by transaction id under `<data_dir>/index`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSinkConfig {
    /// Which records this sink takes (`inputs`, `categories`, `min_severity`, `hosts`).
    #[serde(flatten)]
    pub route: RouteConfig,
    /// Past this much journal behind it (while it is down), the journal stops waiting for the
    /// sink: its cursor moves on and the records it skips are counted. Default: no limit (the
    /// sink holds the journal, sources see backpressure).
    #[serde(default)]
    pub max_lag: Option<ByteSize>,
    /// How often new entries are made searchable.
    #[serde(default = "default_commit_interval")]
    pub commit_interval: HumanDuration,
    /// Day partitions older than this many days are deleted (0 keeps everything).
    #[serde(default = "default_max_age_days")]
    pub max_age_days: u32,
    /// Oldest day partitions are deleted while the index is larger than this (0: no limit).
    #[serde(default)]
    pub max_size: Option<ByteSize>,
    /// Serve the search API (`quill search --server`) and the trace page here; `""` turns it
    /// off. Default `127.0.0.1:7379` (loopback only; beyond loopback needs `search_token`).
    #[serde(default = "default_search_listen")]
    pub listen: String,
    /// The search API's keys are checked in `config/search.rs`.
    /// `/api/` requires `Authorization: Bearer TOKEN`; needed to listen beyond loopback.
    pub search_token: Option<String>,
    /// The token's file (first line), instead of `search_token`.
    pub search_token_file: Option<PathBuf>,
    /// HTTPS: certificate chain (PEM), with `search_tls_key`.
    pub search_tls_cert: Option<PathBuf>,
    pub search_tls_key: Option<PathBuf>,
    /// Largest `limit` of one search (larger ones are lowered).
    #[serde(default = "search::default_max_limit")]
    pub search_max_limit: usize,
    /// Longest query text in bytes (400 before parsing).
    #[serde(default = "search::default_max_query_bytes")]
    pub search_max_query_bytes: usize,
    /// Deepest parenthesis nesting (400 before parsing; parsing costs about 2^depth).
    #[serde(default = "search::default_max_depth")]
    pub search_max_depth: usize,
    /// Wall-clock budget of one search (503 past it).
    #[serde(default = "search::default_time_budget")]
    pub search_time_budget: HumanDuration,
    /// Searches running at once.
    #[serde(default = "search::default_max_concurrent")]
    pub search_max_concurrent: usize,
    /// Open connections to the search API at once.
    #[serde(default = "search::default_max_connections")]
    pub search_max_connections: usize,
}

fn default_max_age_days() -> u32 {
    30
}
fn default_search_listen() -> String {
    "127.0.0.1:7379".to_string()
}

fn default_commit_interval() -> HumanDuration {
    HumanDuration::secs(1)
}

impl ForwardSinkConfig {
    /// The first problem with these settings: (key, message).
    pub fn check(&self) -> Option<(&'static str, String)> {
        if let Some(bad) = self.to.iter().find(|a| {
            a.rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        }) {
            return Some((
                "to",
                format!("invalid address `{bad}` (expected HOST:PORT)"),
            ));
        }
        if self.token.is_some() && self.token_file.is_some() {
            return Some((
                "token_file",
                "set either `token` or `token_file`, not both".into(),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Some(("tls_cert", "`tls_cert` and `tls_key` go together".into()));
        }
        if self.tls_cert.is_some() && self.tls_ca.is_none() {
            return Some((
                "tls_cert",
                "a client certificate needs `tls_ca` (TLS) too".into(),
            ));
        }
        if let Some(id) = &self.agent_id
            && !is_safe_category(id)
        {
            return Some((
                "agent_id",
                format!(
                    "invalid agent id `{id}`: 1-128 characters of letters, digits, `-`, `_` or `.`"
                ),
            ));
        }
        if self.batch_size.0 < 1024 || self.batch_size.0 > 8 << 20 {
            return Some(("batch_size", "must be between 1KiB and 8MiB".into()));
        }
        if self.window == 0 || self.window > 1024 {
            return Some(("window", "must be between 1 and 1024".into()));
        }
        if !(1..=19).contains(&self.compression_level) {
            return Some(("compression_level", "must be between 1 and 19".into()));
        }
        if self.backoff_min.0 > self.backoff_max.0 || self.backoff_min.0.is_zero() {
            return Some((
                "backoff_min",
                "must be above zero and at most `backoff_max`".into(),
            ));
        }
        None
    }
}
