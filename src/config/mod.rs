//! The TOML configuration: named sources → the journal → named sinks.
//!
//! [`Config::load`] reads and validates a file. Every error names the file, the line and the key
//! (`quickstart.toml:12: sources.web.inclde: unknown key ...`). Unknown keys, bad values and type
//! mismatches are errors. Relative paths are resolved against the working directory `quill` runs in.
//!
//! This module reads the config file and nothing else; it starts nothing.

mod gelf;
mod identity;
mod limits;
mod output;
mod relp;
mod route;
mod scribe;
mod search;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

pub use gelf::GelfSourceConfig;
pub use identity::AgentIdentity;
pub use output::{MAX_WORKERS, OutputFsync, default_workers};
pub use relp::RelpSourceConfig;
pub use route::{RouteConfig, Severity, SeveritySetting};
pub use scribe::{Compression, FileFormat, ScribeSourceConfig};
pub use values::{ByteSize, HumanDuration};

use crate::journal::{FsyncPolicy, JournalConfig};
use crate::record::Format;

/// A config error, located in its file.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {key}: {message}")]
    Invalid {
        path: String,
        line: usize,
        /// Dotted key path, e.g. `sources.web.category`.
        key: String,
        message: String,
    },
}

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
    #[serde(default)]
    pub journal: JournalSection,
    /// `[parse]`: how records of sources without parse settings of their own (those forwarded
    /// from agents) are parsed.
    #[serde(default)]
    pub parse: DefaultParseSection,
    /// `[bytes]`: the byte join (HAProxy entries paired with the backend's access-log lines to
    /// report the bytes each client received); off when absent.
    pub bytes: Option<BytesSection>,
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

/// `[sources.NAME]`, selected by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SourceConfig {
    File(FileSourceConfig),
    Syslog(SyslogSourceConfig),
    Forward(ForwardSourceConfig),
    Scribe(ScribeSourceConfig),
    Relp(RelpSourceConfig),
    Gelf(GelfSourceConfig),
}

impl SourceConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceConfig::File(_) => "file",
            SourceConfig::Syslog(_) => "syslog",
            SourceConfig::Forward(_) => "forward",
            SourceConfig::Scribe(_) => "scribe",
            SourceConfig::Relp(_) => "relp",
            SourceConfig::Gelf(_) => "gelf",
        }
    }
}

/// Where a file source starts in a file it has never seen before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    #[default]
    Beginning,
    End,
}

/// `type = "file"`: tail files matched by globs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Glob patterns of files to tail.
    pub include: Vec<String>,
    /// Glob patterns excluded from `include` (rotated `*.gz`/`*.zst` are always excluded).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Tail files reached through a symbolic link (default: no, a symlink is skipped with a warning).
    #[serde(default)]
    pub follow_symlinks: bool,
    /// With `follow_symlinks` (which needs them), a link is tailed only when its real target is
    /// under one of these absolute directories.
    #[serde(default)]
    pub symlink_roots: Vec<PathBuf>,
    /// Category of every record (default: the source's name).
    pub category: Option<String>,
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub read_from: ReadFrom,
    /// How often tracked files are checked for new data and the globs are expanded again when no
    /// change notification arrives (the polling fallback; with `watch = "poll"` the only trigger).
    /// Values above 1 s are capped at 1 s for glob rescans, so new files are found within 1 s.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    /// `notify` (default): inotify change events wake the reader, with polling every
    /// `poll_interval` as a safety net. `poll`: polling only (NFS and other filesystems whose
    /// events are unreliable). If inotify cannot be set up, the source falls back to polling.
    #[serde(default)]
    pub watch: WatchMode,
    /// Lines longer than this are split into flagged pieces, never dropped.
    #[serde(default = "default_max_line")]
    pub max_line_bytes: ByteSize,
    /// How many leading bytes identify a file (its fingerprint, a CRC-32C). A file shorter than
    /// this is read at once and identified by device+inode plus the bytes it has so far; its
    /// identity is upgraded when it grows. Raise it when files share a long common header.
    #[serde(default = "default_fingerprint_bytes")]
    pub fingerprint_bytes: ByteSize,
    /// A last line without its newline is held this long after the file stopped growing, then
    /// flushed as a record flagged `NO_NEWLINE` (the rest, if it arrives later, is a new record).
    #[serde(default = "default_partial_line_timeout")]
    pub partial_line_timeout: HumanDuration,
    /// A file that rotated away (renamed out of the globs, replaced, or deleted) is released this
    /// long after it was read to its end without growing.
    #[serde(default = "default_release_after")]
    pub release_after: HumanDuration,
    /// Multi-line joining: a line that begins with this pattern starts a new record, any other
    /// line is appended (with its newline) to the record before it (stack traces). The pattern is
    /// anchored at the line start and byte-oriented (no regex engine): `\d` digit, `\w` letter,
    /// digit or `_`, `\s` space or tab, `\S` anything else, `.` any byte, `\` escapes the next
    /// character, everything else is literal. E.g. `"\d\d\d\d-\d\d-\d\d "`. A joined
    /// record is flushed when the next start line arrives or after `partial_line_timeout`.
    pub multiline_start: Option<String>,
    /// haproxy.cfg to read custom `log-format`s and `capture` declarations from.
    pub haproxy_config: Option<PathBuf>,
    /// Custom HAProxy `log-format` strings, tried before the built-in formats.
    #[serde(default)]
    pub haproxy_format: Vec<String>,
    /// Apache `LogFormat` strings or nicknames (`combined`, ...), tried in order.
    #[serde(default)]
    pub apache_format: Vec<String>,
    /// Apache config to read `LogFormat` lines from.
    pub apache_config: Option<PathBuf>,
    /// Time zone of log times that carry none, as an offset (`"+01:00"`, `"UTC"`).
    pub timezone: Option<String>,
    /// Field and header names `_txn_id` is taken from, in priority order (default: unique-id,
    /// X-Request-ID, X-Response-Id, X-Unique-ID, UNIQUE_ID, txnId, txn_id, request_id).
    #[serde(default)]
    pub txn_id_fields: Vec<String>,
}

/// How a file source learns that files changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    #[default]
    Notify,
    Poll,
}

fn default_poll_interval() -> HumanDuration {
    HumanDuration::millis(250)
}
fn default_max_line() -> ByteSize {
    ByteSize::mib(1)
}
fn default_fingerprint_bytes() -> ByteSize {
    ByteSize(256)
}
fn default_partial_line_timeout() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_release_after() -> HumanDuration {
    HumanDuration::secs(3)
}

/// Largest accepted `fingerprint_bytes`.
pub const MAX_FINGERPRINT_BYTES: u64 = 64 << 10;

/// `type = "syslog"`: RFC 3164/5424 over UDP, TCP and unix sockets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSourceConfig {
    /// UDP listen address, e.g. `127.0.0.1:5514`.
    pub udp: Option<String>,
    /// TCP listen address (octet-counting and LF framing, detected per message).
    pub tcp: Option<String>,
    /// Unix datagram socket path (like `/dev/log`).
    pub unix: Option<PathBuf>,
    /// Unix stream socket path.
    pub unix_stream: Option<PathBuf>,
    /// Permissions of the unix socket files, in octal (default `"0666"`: any local user may log).
    #[serde(default = "default_unix_mode", deserialize_with = "values::octal_mode")]
    pub unix_mode: u32,
    /// TLS (RFC 5425) listen address, e.g. `127.0.0.1:6514`; needs `tls_cert` and `tls_key`.
    pub tls: Option<String>,
    /// PEM certificate chain for `tls`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: when set, TLS clients must present a certificate it signed (mutual TLS).
    pub tls_client_ca: Option<PathBuf>,
    /// Stream connections (TCP, TLS, unix) open at once at most; more are refused and counted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// haproxy.cfg to read custom `log-format`s and `capture` declarations from.
    pub haproxy_config: Option<PathBuf>,
    /// Custom HAProxy `log-format` strings, tried before the built-in formats.
    #[serde(default)]
    pub haproxy_format: Vec<String>,
    /// Apache `LogFormat` strings or nicknames (`combined`, ...), tried in order.
    #[serde(default)]
    pub apache_format: Vec<String>,
    /// Apache config to read `LogFormat` lines from.
    pub apache_config: Option<PathBuf>,
    /// Time zone of log times that carry none, as an offset (`"+01:00"`, `"UTC"`).
    pub timezone: Option<String>,
    /// Field and header names `_txn_id` is taken from, in priority order (default: unique-id,
    /// X-Request-ID, X-Response-Id, X-Unique-ID, UNIQUE_ID, txnId, txn_id, request_id).
    #[serde(default)]
    pub txn_id_fields: Vec<String>,
    /// Category of every record (default: the source's name).
    pub category: Option<String>,
    #[serde(default = "default_syslog_format")]
    pub format: Format,
    /// Messages longer than this are kept truncated and flagged.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: ByteSize,
    /// Requested UDP receive buffer (the kernel may grant less; the effective size is logged).
    #[serde(default = "default_udp_buffer")]
    pub udp_receive_buffer: ByteSize,
    /// A TCP connection silent for this long is closed.
    #[serde(default = "default_idle_timeout")]
    pub tcp_idle_timeout: HumanDuration,
}

fn default_unix_mode() -> u32 {
    0o666
}
fn default_max_connections() -> usize {
    16384
}
fn default_syslog_format() -> Format {
    Format::Syslog
}
fn default_max_message() -> ByteSize {
    ByteSize::kib(64)
}
fn default_udp_buffer() -> ByteSize {
    ByteSize::mib(8)
}
fn default_idle_timeout() -> HumanDuration {
    HumanDuration::secs(600)
}

/// `type = "forward"`: the aggregator's input from agents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardSourceConfig {
    pub listen: String,
    /// Shared token agents must present.
    pub token: Option<String>,
    /// A file whose first line is the shared token (instead of `token`).
    pub token_file: Option<PathBuf>,
    /// TLS certificate chain (PEM); with `tls_key`, the source speaks TLS only.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that agents' client certificates must be signed by (mutual TLS).
    pub tls_client_ca: Option<PathBuf>,
    /// Largest frame accepted from an agent.
    #[serde(default = "default_forward_max_frame")]
    pub max_frame_size: ByteSize,
    /// Largest decompressed batch accepted (a zstd bomb is refused).
    #[serde(default = "default_forward_max_batch")]
    pub max_batch_size: ByteSize,
    /// Agent connections served at once at most.
    #[serde(default = "default_forward_max_connections")]
    pub max_connections: usize,
    /// Connections still in their handshake (TLS, HELLO) at most, across all peers.
    #[serde(default = "limits::default_max_unauthenticated")]
    pub max_unauthenticated: usize,
    /// Connections from one IP address still in their handshake at most.
    #[serde(default = "limits::default_max_unauthenticated_per_ip")]
    pub max_unauthenticated_per_ip: usize,
    /// Connections from one IP address at most, in their handshake or not.
    #[serde(default = "limits::default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Time a new connection has for TLS and its HELLO.
    #[serde(default = "limits::default_handshake_timeout")]
    pub handshake_timeout: HumanDuration,
    /// Time a frame's payload may take to arrive once its header did (a slow sender is cut off).
    #[serde(default = "limits::default_frame_timeout")]
    pub frame_timeout: HumanDuration,
    /// Time an agent may stay silent between frames before its connection is closed.
    #[serde(default = "limits::default_forward_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Bytes of frames being read and batches being decompressed, across all connections.
    #[serde(default = "limits::default_memory_budget")]
    pub memory_budget: ByteSize,
    /// Per-agent credentials, each bound to the agent id it may use ([`AgentIdentity`]).
    #[serde(default)]
    pub identities: Vec<AgentIdentity>,
    /// With mutual TLS: an agent's id must be one of its client certificate's names.
    #[serde(default)]
    pub agent_id_from_certificate: bool,
}

fn default_forward_max_frame() -> ByteSize {
    ByteSize::mib(16)
}
fn default_forward_max_batch() -> ByteSize {
    ByteSize::mib(64)
}
fn default_forward_max_connections() -> usize {
    1024
}

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

/// `[sinks.NAME]`, selected by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[allow(clippy::large_enum_variant)] // parsed once at startup: size does not matter
pub enum SinkConfig {
    File(FileSinkConfig),
    Forward(ForwardSinkConfig),
    Index(IndexSinkConfig),
}

impl SinkConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkConfig::File(_) => "file",
            SinkConfig::Forward(_) => "forward",
            SinkConfig::Index(_) => "index",
        }
    }

    /// The sink's routing keys.
    pub fn route(&self) -> &RouteConfig {
        match self {
            SinkConfig::File(c) => &c.route,
            SinkConfig::Forward(c) => &c.route,
            SinkConfig::Index(c) => &c.route,
        }
    }

    /// `max_lag` of whichever sink this is.
    pub fn max_lag(&self) -> Option<ByteSize> {
        match self {
            SinkConfig::File(c) => c.max_lag,
            SinkConfig::Forward(c) => c.max_lag,
            SinkConfig::Index(c) => c.max_lag,
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
    /// `raw` only: compress closed files (`gzip`, `zstd`; default none).
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

impl ForwardSourceConfig {
    /// The first problem with these settings: (key, message).
    pub fn check(&self) -> Option<(&'static str, String)> {
        if self.token.is_some() && self.token_file.is_some() {
            return Some((
                "token_file",
                "set either `token` or `token_file`, not both".into(),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Some(("tls_cert", "`tls_cert` and `tls_key` go together".into()));
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            return Some((
                "tls_client_ca",
                "mutual TLS needs `tls_cert` and `tls_key` too".into(),
            ));
        }
        if self.max_frame_size.0 < 64 * 1024 || self.max_frame_size.0 > u32::MAX as u64 {
            return Some(("max_frame_size", "must be between 64KiB and 4GiB".into()));
        }
        if self.max_batch_size.0 < 64 * 1024 || self.max_batch_size.0 > u32::MAX as u64 {
            return Some(("max_batch_size", "must be between 64KiB and 4GiB".into()));
        }
        if self.max_connections == 0 {
            return Some(("max_connections", "must be at least 1".into()));
        }
        if let Some(problem) = identity::check_identities(self) {
            return Some(problem);
        }
        limits::check_forward(self)
    }
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

/// True for a category that is safe as a directory and file name: 1 to 128 characters of
/// ASCII letters, digits, `-`, `_` and `.`, not starting with `.`.
pub fn is_safe_category(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Why a category name is unsafe, for error messages.
pub const CATEGORY_RULE: &str = "a category must be 1-128 characters of letters, digits, `-`, `_` or `.`, not starting with `.`";

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

    fn validate(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let err = |table: &str, key: &str, message: String| ConfigError::Invalid {
            path: origin.to_string(),
            line: find_key_line(text, table, key),
            key: if key.is_empty() {
                table.to_string()
            } else {
                format!("{table}.{key}")
            },
            message,
        };
        if let Some(h) = &self.hostname
            && (h.is_empty()
                || h.len() > 255
                || h.bytes().any(|b| b.is_ascii_control() || b == b' '))
        {
            return Err(err("", "hostname", format!("invalid hostname `{h}`")));
        }
        if let Some(a) = &self.metrics_listen
            && a.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(err(
                "",
                "metrics_listen",
                format!("invalid socket address `{a}` (expected IP:PORT)"),
            ));
        }
        let zones = self
            .sources
            .iter()
            .filter_map(|(n, s)| Some((format!("sources.{n}"), s.parse_options()?.timezone)))
            .chain([("parse".to_string(), self.parse.timezone.as_deref())]);
        for (table, zone) in zones {
            if let Some(tz) = zone
                && let Err(e) = crate::parse::LogZone::parse(tz)
            {
                return Err(err(&table, "timezone", e.to_string()));
            }
        }
        for (name, source) in &self.sources {
            let table = format!("sources.{name}");
            if !is_safe_category(name) {
                return Err(err(
                    &table,
                    "",
                    format!("invalid source name `{name}`: {CATEGORY_RULE}"),
                ));
            }
            let category = match source {
                SourceConfig::File(f) => {
                    if f.include.is_empty() {
                        return Err(err(
                            &table,
                            "include",
                            "needs at least one glob pattern".into(),
                        ));
                    }
                    if f.fingerprint_bytes.0 == 0 || f.fingerprint_bytes.0 > MAX_FINGERPRINT_BYTES {
                        return Err(err(
                            &table,
                            "fingerprint_bytes",
                            format!("must be between 1 and {MAX_FINGERPRINT_BYTES} bytes"),
                        ));
                    }
                    if f.max_line_bytes.0 == 0 {
                        return Err(err(&table, "max_line_bytes", "must be at least 1".into()));
                    }
                    if f.poll_interval.0.is_zero() {
                        return Err(err(&table, "poll_interval", "must be above 0".into()));
                    }
                    if let Some(p) = &f.multiline_start
                        && let Err(e) = crate::sources::file::StartPattern::parse(p)
                    {
                        return Err(err(&table, "multiline_start", e));
                    }
                    for pattern in f.include.iter().chain(&f.exclude) {
                        if let Err(e) = glob::Pattern::new(pattern) {
                            return Err(err(
                                &table,
                                "include",
                                format!("invalid glob `{pattern}`: {e}"),
                            ));
                        }
                    }
                    if let Some((key, e)) =
                        limits::check_symlinks(f.follow_symlinks, &f.symlink_roots)
                    {
                        return Err(err(&table, key, e));
                    }
                    if let Some((glob, what)) = limits::self_read(self, &f.include) {
                        return Err(err(
                            &table,
                            "include",
                            format!("`{glob}` would read {what}: Quill would read its own output"),
                        ));
                    }
                    &f.category
                }
                SourceConfig::Syslog(s) => {
                    let listens = [
                        s.udp.is_some(),
                        s.tcp.is_some(),
                        s.tls.is_some(),
                        s.unix.is_some(),
                        s.unix_stream.is_some(),
                    ];
                    if !listens.contains(&true) {
                        return Err(err(
                            &table,
                            "",
                            "a syslog source needs at least one of `udp`, `tcp`, `tls`, `unix`, `unix_stream`".into(),
                        ));
                    }
                    if s.tls.is_some() && (s.tls_cert.is_none() || s.tls_key.is_none()) {
                        return Err(err(
                            &table,
                            "tls",
                            "`tls` needs `tls_cert` and `tls_key`".into(),
                        ));
                    }
                    for (key, addr) in [("udp", &s.udp), ("tcp", &s.tcp), ("tls", &s.tls)] {
                        if let Some(a) = addr
                            && a.parse::<std::net::SocketAddr>().is_err()
                        {
                            return Err(err(
                                &table,
                                key,
                                format!("invalid socket address `{a}` (expected IP:PORT)"),
                            ));
                        }
                    }
                    &s.category
                }
                SourceConfig::Forward(f) => {
                    if f.listen.parse::<std::net::SocketAddr>().is_err() {
                        return Err(err(
                            &table,
                            "listen",
                            format!("invalid socket address `{}`", f.listen),
                        ));
                    }
                    if let Some((key, message)) = f.check() {
                        return Err(err(&table, key, message));
                    }
                    &None
                }
                SourceConfig::Scribe(s) => {
                    if let Some((key, message)) = s.check() {
                        return Err(err(&table, key, message));
                    }
                    &None
                }
                SourceConfig::Relp(r) => {
                    if let Some((key, message)) = r.check() {
                        return Err(err(&table, key, message));
                    }
                    &r.category
                }
                SourceConfig::Gelf(g) => {
                    if let Some((key, message)) = g.check() {
                        return Err(err(&table, key, message));
                    }
                    &g.category
                }
            };
            if let Some(c) = category
                && !is_safe_category(c)
            {
                return Err(err(
                    &table,
                    "category",
                    format!("invalid category `{c}`: {CATEGORY_RULE}"),
                ));
            }
        }
        for (name, sink) in &self.sinks {
            let table = format!("sinks.{name}");
            if !is_safe_category(name) {
                return Err(err(
                    &table,
                    "",
                    format!("invalid sink name `{name}`: {CATEGORY_RULE}"),
                ));
            }
            if let Some((key, message)) = sink.route().check() {
                return Err(err(&table, key, message));
            }
            match sink {
                SinkConfig::File(f) => {
                    if f.max_size.0 < 4096 {
                        return Err(err(&table, "max_size", "must be at least 4KiB".into()));
                    }
                    if f.workers.is_some_and(|w| w == 0 || w > MAX_WORKERS) {
                        let msg = format!("must be between 1 and {MAX_WORKERS}");
                        return Err(err(&table, "workers", msg));
                    }
                    if f.fsync_interval.as_ref().is_some_and(|i| i.0.is_zero()) {
                        return Err(err(&table, "fsync_interval", "must be above 0".into()));
                    }
                    if let Some((key, message)) = scribe::check_file_sink(f) {
                        return Err(err(&table, key, message));
                    }
                }
                SinkConfig::Forward(f) => {
                    if f.to.is_empty() {
                        return Err(err(
                            &table,
                            "to",
                            "needs at least one aggregator address".into(),
                        ));
                    }
                    if let Some((key, message)) = f.check() {
                        return Err(err(&table, key, message));
                    }
                }
                SinkConfig::Index(i) => {
                    if !i.listen.is_empty() && i.listen.parse::<std::net::SocketAddr>().is_err() {
                        return Err(err(
                            &table,
                            "listen",
                            format!(
                                "invalid socket address `{}` (expected IP:PORT or \"\")",
                                i.listen
                            ),
                        ));
                    }
                    if let Some((key, message)) = i.search_check() {
                        return Err(err(&table, key, message));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Turns a TOML/serde error into a located [`ConfigError`].
fn locate_toml_error(text: &str, origin: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().to_string();
    let span_start = e.span().map(|s| s.start).unwrap_or(0);
    // serde reports the table for an unknown key inside internally tagged enums; find the key's own
    // line within that table when the message names it.
    let mut line = line_of(text, span_start);
    let table = table_path_at(text, span_start);
    let mut key = table.clone();
    if let Some(name) = backticked_after(&message, "unknown field `") {
        if let Some(l) = find_key_line_from(text, span_start, &name) {
            line = l;
        }
        key = join_key(&table, &name);
    } else if let Some(k) = key_at_line(text, line) {
        key = join_key(&table, &k);
    } else if let Some(located) = relocate_in_tagged_table(text, origin, &table) {
        return located;
    } else if let Some(missing) = backticked_after(&message, "missing field `") {
        key = join_key(&table, &missing);
    }
    ConfigError::Invalid {
        path: origin.to_string(),
        line,
        key: if key.is_empty() {
            "(top level)".into()
        } else {
            key
        },
        message,
    }
}

/// serde reports a bad value inside an internally tagged table (`[sources.x]`, `[sinks.x]`) at the
/// table, not the key. Re-parsing that table's text alone as its concrete type yields a precise span.
fn relocate_in_tagged_table(text: &str, origin: &str, table: &str) -> Option<ConfigError> {
    let (kind, _) = table.split_once('.')?;
    let mut start_line = None;
    let mut body = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            if start_line.is_some() {
                break;
            }
            let name = t.trim_start_matches('[').split(']').next().unwrap_or("");
            if name.trim().replace(['"', ' '], "") == table {
                start_line = Some(i + 1);
            }
            body.push('\n');
            continue;
        }
        if start_line.is_none() {
            body.push('\n');
            continue;
        }
        let is_type = t.split_once('=').is_some_and(|(k, _)| k.trim() == "type");
        if is_type {
            body.push('\n');
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    start_line?;
    let type_name: String = text
        .lines()
        .skip(start_line?)
        .take_while(|l| !l.trim().starts_with('['))
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "type").then(|| v.trim().trim_matches('"').to_string())
        })?;
    let err = match (kind, type_name.as_str()) {
        ("sources", "file") => toml::from_str::<FileSourceConfig>(&body).err(),
        ("sources", "syslog") => toml::from_str::<SyslogSourceConfig>(&body).err(),
        ("sources", "forward") => toml::from_str::<ForwardSourceConfig>(&body).err(),
        ("sources", "gelf") => toml::from_str::<GelfSourceConfig>(&body).err(),
        ("sinks", "file") => toml::from_str::<FileSinkConfig>(&body).err(),
        ("sinks", "forward") => toml::from_str::<ForwardSinkConfig>(&body).err(),
        ("sinks", "index") => toml::from_str::<IndexSinkConfig>(&body).err(),
        _ => None,
    }?;
    let line = line_of(&body, err.span()?.start);
    let key = key_at_line(text, line).map_or_else(|| table.to_string(), |k| join_key(table, &k));
    Some(ConfigError::Invalid {
        path: origin.to_string(),
        line,
        key,
        message: err.message().trim().to_string(),
    })
}

fn join_key(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    }
}

fn backticked_after(message: &str, prefix: &str) -> Option<String> {
    let start = message.find(prefix)? + prefix.len();
    let end = message[start..].find('`')?;
    Some(message[start..start + end].to_string())
}

/// 1-based line number of byte offset `pos`.
fn line_of(text: &str, pos: usize) -> usize {
    text.as_bytes()[..pos.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The `[table]` header in force at byte offset `pos` (empty at top level).
fn table_path_at(text: &str, pos: usize) -> String {
    let mut current = String::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > pos {
            break;
        }
        let t = line.trim();
        if t.starts_with('[') && !t.starts_with("[[") {
            if let Some(end) = t.find(']') {
                current = t[1..end].trim().replace(['"', ' '], "");
            }
        }
        offset += line.len();
    }
    current
}

/// The key assigned on line `line` (1-based), if that line is `key = value`.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let (k, _) = l.split_once('=')?;
    let k = k.trim().trim_matches('"');
    (!k.is_empty() && !k.starts_with('[')).then(|| k.to_string())
}

/// The first line at or after byte offset `from` that assigns `key`, staying within the table.
fn find_key_line_from(text: &str, from: usize, key: &str) -> Option<usize> {
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let start = offset;
        offset += line.len();
        if offset <= from {
            continue;
        }
        let t = line.trim();
        if t.starts_with('[') {
            if start > from {
                return None;
            }
            continue;
        }
        if let Some((k, _)) = t.split_once('=')
            && k.trim().trim_matches('"') == key
        {
            return Some(i + 1);
        }
    }
    None
}

/// The line of `key` inside `[table]` (or of the table header when `key` is empty); 1 if not found.
fn find_key_line(text: &str, table: &str, key: &str) -> usize {
    let mut in_table = table.is_empty();
    let mut header_line = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            let name = t.trim_start_matches('[').split(']').next().unwrap_or("");
            in_table = name.trim().replace(['"', ' '], "") == table;
            if in_table {
                header_line = Some(i + 1);
            }
            continue;
        }
        if in_table
            && !key.is_empty()
            && let Some((k, _)) = t.split_once('=')
            && k.trim().trim_matches('"') == key
        {
            return i + 1;
        }
    }
    header_line.unwrap_or(1)
}

impl fmt::Display for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
data_dir = "./data"
hostname = "web1"

[sources.web]
type = "file"
include = ["logs/*.log"]
category = "web"
format = "haproxy"

[sources.sys]
type = "syslog"
udp = "127.0.0.1:5514"

[sinks.out]
type = "file"
path = "./data/out"
max_size = "100MiB"
"#;

    #[test]
    fn good_config_parses() {
        let c = Config::parse(GOOD, "q.toml").unwrap();
        assert_eq!(c.sources.len(), 2);
        match &c.sinks["out"] {
            SinkConfig::File(f) => assert_eq!(f.max_size, ByteSize::mib(100)),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn invalid(text: &str) -> (usize, String, String) {
        match Config::parse(text, "q.toml") {
            Err(ConfigError::Invalid {
                line, key, message, ..
            }) => (line, key, message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn typo_key_is_located() {
        let text = GOOD.replace("include =", "inclde =");
        let (line, key, msg) = invalid(&text);
        assert_eq!(line, 7, "{msg}");
        assert_eq!(key, "sources.web.inclde");
        assert!(msg.contains("unknown field"), "{msg}");
    }

    #[test]
    fn bad_category_is_rejected() {
        let text = GOOD.replace("category = \"web\"", "category = \"../x\"");
        let (line, key, msg) = invalid(&text);
        assert_eq!((line, key.as_str()), (8, "sources.web.category"), "{msg}");
    }

    #[test]
    fn bad_value_is_located() {
        let text = GOOD.replace("max_size = \"100MiB\"", "max_size = \"100 parsecs\"");
        let (line, key, msg) = invalid(&text);
        assert_eq!((line, key.as_str()), (18, "sinks.out.max_size"), "{msg}");
        let text = GOOD.replace("format = \"haproxy\"", "format = \"nginx\"");
        let (line, key, _) = invalid(&text);
        assert_eq!((line, key.as_str()), (9, "sources.web.format"));
        let text = GOOD.replace("udp = \"127.0.0.1:5514\"", "udp = 5514");
        let (line, key, _) = invalid(&text);
        assert_eq!((line, key.as_str()), (13, "sources.sys.udp"));
    }

    #[test]
    fn file_sink_output_settings() {
        let with = |extra: &str| {
            GOOD.replace(
                "max_size = \"100MiB\"",
                &format!("max_size = \"100MiB\"\n{extra}"),
            )
        };
        let (line, key, msg) = invalid(&with("workers = 0"));
        assert_eq!((line, key.as_str()), (19, "sinks.out.workers"), "{msg}");
        let (line, key, msg) = invalid(&with("fsync = \"sometimes\""));
        assert_eq!((line, key.as_str()), (19, "sinks.out.fsync"), "{msg}");
        let (_, key, msg) = invalid(&with("fsync_interval = \"0s\""));
        assert_eq!(key, "sinks.out.fsync_interval", "{msg}");
        let cfg = Config::parse(&with("fsync = \"never\"\nworkers = 3"), "t.toml").unwrap();
        match &cfg.sinks["out"] {
            SinkConfig::File(f) => {
                assert_eq!((f.fsync, f.workers), (Some(OutputFsync::Never), Some(3)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_top_level_key() {
        let (line, key, _) = invalid("data_dri = \"x\"\n");
        assert_eq!((line, key.as_str()), (1, "data_dri"));
    }

    #[test]
    fn categories() {
        for ok in ["web", "lb.eu-1", "a_b"] {
            assert!(is_safe_category(ok));
        }
        for bad in ["", "..", "../x", "a/b", ".hidden", "a\u{7}", "a b"] {
            assert!(!is_safe_category(bad), "{bad:?}");
        }
    }
}
