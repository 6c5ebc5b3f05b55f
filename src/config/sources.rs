//! `[sources.NAME]`: the source types whose settings live here (file, syslog, forward); the
//! others have their own file (relp, scribe, gelf).

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use super::listener::{ServerTlsKeys, check_connections};
use super::{
    AgentIdentity, ByteSize, GelfSourceConfig, HumanDuration, NatsSourceConfig, ParseKeys,
    RelpSourceConfig, ScribeSourceConfig, StartPattern, limits, values,
};
use crate::record::Format;

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
    Nats(NatsSourceConfig),
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
            SourceConfig::Nats(_) => "nats",
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
    /// Glob patterns of files to tail (at least one: checked in `validate`, so that a misspelt
    /// key is reported as unknown rather than `include` as missing).
    #[serde(default)]
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
    pub multiline_start: Option<StartPattern>,
    /// The parse keys (`haproxy_config`, `haproxy_format`, `apache_format`, `apache_config`,
    /// `timezone`, `txn_id_fields`).
    #[serde(flatten)]
    pub parse: ParseKeys,
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
    /// The parse keys (`haproxy_config`, `haproxy_format`, `apache_format`, `apache_config`,
    /// `timezone`, `txn_id_fields`).
    #[serde(flatten)]
    pub parse: ParseKeys,
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

impl SyslogSourceConfig {
    /// The TLS keys of the `tls` listener.
    pub fn tls_keys(&self) -> ServerTlsKeys<'_> {
        ServerTlsKeys::of(&self.tls_cert, &self.tls_key, &self.tls_client_ca)
    }
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

impl ForwardSourceConfig {
    /// The first problem with these settings: (key, message).
    pub fn check(&self) -> Option<(&'static str, String)> {
        if self.token.is_some() && self.token_file.is_some() {
            return Some((
                "token_file",
                "set either `token` or `token_file`, not both".into(),
            ));
        }
        if let Some(problem) = self.tls_keys().check() {
            return Some(problem);
        }
        if self.max_frame_size.0 < 64 * 1024 || self.max_frame_size.0 > u32::MAX as u64 {
            return Some(("max_frame_size", "must be between 64KiB and 4GiB".into()));
        }
        if self.max_batch_size.0 < 64 * 1024 || self.max_batch_size.0 > u32::MAX as u64 {
            return Some(("max_batch_size", "must be between 64KiB and 4GiB".into()));
        }
        if let Some(problem) = check_connections("max_connections", self.max_connections) {
            return Some(problem);
        }
        if let Some(problem) = super::identity::check_identities(self) {
            return Some(problem);
        }
        limits::check_forward(self)
    }

    /// The TLS keys.
    pub fn tls_keys(&self) -> ServerTlsKeys<'_> {
        ServerTlsKeys::of(&self.tls_cert, &self.tls_key, &self.tls_client_ca)
    }
}

impl fmt::Display for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}
