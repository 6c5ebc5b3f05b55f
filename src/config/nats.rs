//! Config of the `nats` sink (agent → JetStream) and the `nats` source (JetStream → aggregator),
//! and the connection keys they share ([`NatsAuth`]). This module validates and reads nothing.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ByteSize, HumanDuration, RouteConfig};

/// How a NATS client proves who it is and checks the servers: a creds file, a user and password
/// or a token; `tls_ca` makes TLS required (with `tls_cert`/`tls_key`, mutual).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NatsAuth {
    /// NATS credentials file (JWT + NKey seed), as made by `nsc`.
    pub creds_file: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// `retention` of the stream (JetStream's retention policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatsRetention {
    /// Kept until `max_bytes`/`max_age` (default): replays and late aggregators still find it.
    #[default]
    Limits,
    /// Removed once every consumer acknowledged it.
    Interest,
    /// Removed once acknowledged (one consumer per partition, as the source makes).
    Workqueue,
}

/// `type = "nats"` (sink): publish journal batches to a JetStream stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSinkConfig {
    #[serde(flatten)]
    pub route: RouteConfig,
    /// Cluster nodes, e.g. `["nats://127.0.0.1:4222"]`; the client fails over between them.
    pub servers: Vec<String>,
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Copies of the stream in the cluster (1 to 5).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// Subjects `quill.<category>.0` .. `quill.<category>.<partitions-1>`; a transaction id always
    /// maps to the same partition.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    #[serde(default)]
    pub retention: NatsRetention,
    /// Stream size limit (oldest messages go first). Default: none.
    pub max_bytes: Option<ByteSize>,
    /// Stream age limit. Default: none.
    pub max_age: Option<HumanDuration>,
    /// JetStream's duplicate window: a republished batch within it is dropped by the server.
    #[serde(default = "default_duplicate_window")]
    pub duplicate_window: HumanDuration,
    /// Default: the host name.
    pub agent_id: Option<String>,
    #[serde(flatten)]
    pub auth: NatsAuth,
    /// Published messages awaiting their ack at most.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Uncompressed bytes of one journal batch (split over partitions) at most.
    #[serde(default = "default_batch_size")]
    pub batch_size: ByteSize,
    #[serde(default = "default_compression_level")]
    pub compression_level: i32,
    /// How long a publish may wait for its ack before the sink rewinds and publishes again.
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout: HumanDuration,
    /// On shutdown, keep publishing what is journaled for this long.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: HumanDuration,
    #[serde(default)]
    pub max_lag: Option<ByteSize>,
}

/// `type = "nats"` (source): consume the stream as one aggregator of a consumer group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSourceConfig {
    pub servers: Vec<String>,
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Aggregators of one group share the partitions; another group reads everything again.
    #[serde(default = "default_group")]
    pub consumer_group: String,
    /// This aggregator's name in the group. Default: the host name.
    pub aggregator_id: Option<String>,
    #[serde(flatten)]
    pub auth: NatsAuth,
    /// A partition whose owner has not renewed its lease for this long is taken over.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl: HumanDuration,
    /// Unacknowledged messages are redelivered after this long.
    #[serde(default = "default_ack_wait")]
    pub ack_wait: HumanDuration,
    /// Messages fetched (and journaled in one append) at most.
    #[serde(default = "default_fetch_batch")]
    pub fetch_batch: usize,
    /// A gap before a message (an earlier batch not yet in the stream) is waited for this long,
    /// then skipped and counted as lost.
    #[serde(default = "default_gap_timeout")]
    pub gap_timeout: HumanDuration,
    /// Largest decompressed message accepted.
    #[serde(default = "default_max_batch")]
    pub max_batch_size: ByteSize,
    /// A claim an aggregator left open (it died while journaling) is withdrawn by the next owner
    /// after this long; the dead one resolves its own claims when it starts again before that.
    #[serde(default = "default_pending_timeout")]
    pub pending_timeout: HumanDuration,
}

fn default_stream() -> String {
    "quill".into()
}
fn default_group() -> String {
    "aggregators".into()
}
fn default_replicas() -> usize {
    1
}
fn default_partitions() -> u32 {
    8
}
fn default_duplicate_window() -> HumanDuration {
    HumanDuration::secs(120)
}
fn default_max_in_flight() -> usize {
    64
}
fn default_batch_size() -> ByteSize {
    ByteSize::kib(512)
}
fn default_compression_level() -> i32 {
    3
}
fn default_ack_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_drain_timeout() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_lease_ttl() -> HumanDuration {
    HumanDuration::secs(6)
}
fn default_ack_wait() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_fetch_batch() -> usize {
    128
}
fn default_gap_timeout() -> HumanDuration {
    HumanDuration::secs(60)
}
fn default_pending_timeout() -> HumanDuration {
    HumanDuration::secs(600)
}
fn default_max_batch() -> ByteSize {
    ByteSize::mib(16)
}

/// A valid stream, bucket or consumer name part: letters, digits, `-`, `_`.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_servers(servers: &[String]) -> Option<(&'static str, String)> {
    if servers.is_empty() {
        return Some(("servers", "needs at least one `nats://HOST:PORT`".into()));
    }
    for s in servers {
        let rest = s
            .strip_prefix("nats://")
            .or_else(|| s.strip_prefix("tls://"))
            .unwrap_or(s);
        let hostport = rest.rsplit('@').next().unwrap_or(rest);
        let port_ok = hostport
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !port_ok {
            return Some((
                "servers",
                format!("invalid server `{s}` (expected nats://HOST:PORT)"),
            ));
        }
    }
    None
}

impl NatsAuth {
    /// The first problem with the connection keys: (key, message).
    pub fn check(&self) -> Option<(&'static str, String)> {
        let ways = [
            self.creds_file.is_some(),
            self.user.is_some(),
            self.token.is_some(),
        ];
        if ways.iter().filter(|w| **w).count() > 1 {
            return Some((
                "creds_file",
                "set one of `creds_file`, `user`/`password` or `token`".into(),
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            return Some(("user", "`user` and `password` go together".into()));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Some(("tls_cert", "`tls_cert` and `tls_key` go together".into()));
        }
        if self.tls_cert.is_some() && self.tls_ca.is_none() {
            return Some(("tls_ca", "client certificates need `tls_ca` too".into()));
        }
        None
    }

    /// The files read at start (a reload restarts the component when one changed).
    pub fn files(&self) -> Vec<&std::path::Path> {
        [
            &self.creds_file,
            &self.tls_ca,
            &self.tls_cert,
            &self.tls_key,
        ]
        .into_iter()
        .flatten()
        .map(|p| p.as_path())
        .collect()
    }
}

impl NatsSinkConfig {
    /// The first problem with these settings: (key, message).
    pub fn check(&self) -> Option<(&'static str, String)> {
        if let Some(e) = check_servers(&self.servers) {
            return Some(e);
        }
        if !is_name(&self.stream) {
            return Some(("stream", "letters, digits, `-` and `_` only".into()));
        }
        if !(1..=5).contains(&self.replicas) {
            return Some(("replicas", "must be between 1 and 5".into()));
        }
        if !(1..=1024).contains(&self.partitions) {
            return Some(("partitions", "must be between 1 and 1024".into()));
        }
        if !(1..=4096).contains(&self.max_in_flight) {
            return Some(("max_in_flight", "must be between 1 and 4096".into()));
        }
        if self.batch_size.0 < 1024 || self.batch_size.0 > 64 << 20 {
            return Some(("batch_size", "must be between 1KiB and 64MiB".into()));
        }
        if !(1..=19).contains(&self.compression_level) {
            return Some(("compression_level", "must be between 1 and 19".into()));
        }
        if self.ack_timeout.0.is_zero() {
            return Some(("ack_timeout", "must be above 0".into()));
        }
        if let Some(id) = &self.agent_id
            && !crate::config::is_safe_category(id)
        {
            return Some(("agent_id", crate::config::CATEGORY_RULE.to_string()));
        }
        self.auth.check()
    }
}

impl NatsSourceConfig {
    /// The first problem with these settings: (key, message).
    pub fn check(&self) -> Option<(&'static str, String)> {
        if let Some(e) = check_servers(&self.servers) {
            return Some(e);
        }
        if !is_name(&self.stream) {
            return Some(("stream", "letters, digits, `-` and `_` only".into()));
        }
        if !is_name(&self.consumer_group) {
            return Some(("consumer_group", "letters, digits, `-` and `_` only".into()));
        }
        if let Some(id) = &self.aggregator_id
            && !is_name(id)
        {
            return Some(("aggregator_id", "letters, digits, `-` and `_` only".into()));
        }
        if self.lease_ttl.0 < std::time::Duration::from_secs(1) {
            return Some(("lease_ttl", "must be at least 1s".into()));
        }
        if self.ack_wait.0 < std::time::Duration::from_secs(1) {
            return Some(("ack_wait", "must be at least 1s".into()));
        }
        if !(1..=4096).contains(&self.fetch_batch) {
            return Some(("fetch_batch", "must be between 1 and 4096".into()));
        }
        if self.pending_timeout.0 < self.lease_ttl.0 {
            return Some((
                "pending_timeout",
                "must be at least lease_ttl (a restarting aggregator needs the time to resolve its claims)".into(),
            ));
        }
        if self.max_batch_size.0 < 1024 || self.max_batch_size.0 > 256 << 20 {
            return Some(("max_batch_size", "must be between 1KiB and 256MiB".into()));
        }
        self.auth.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_checked() {
        assert!(check_servers(&["nats://127.0.0.1:4222".into()]).is_none());
        assert!(check_servers(&["nats://u:p@127.0.0.1:4222".into()]).is_none());
        assert!(check_servers(&[]).is_some());
        assert!(check_servers(&["nats://127.0.0.1".into()]).is_some());
        assert!(is_name("quill-1_a") && !is_name("a.b") && !is_name(""));
    }
}
