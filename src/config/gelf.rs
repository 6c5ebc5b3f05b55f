//! `type = "gelf"` sources: GELF over UDP (chunked), TCP (NUL-delimited) and HTTP.

use std::path::PathBuf;

use serde::Deserialize;

use super::listener::{ServerTlsKeys, check_connections, check_socket_addr};
use super::values::{ByteSize, HumanDuration};

/// `type = "gelf"`: GELF 1.1 from graypy, pygelf, gelf4j, Quill's library or a `gelf` sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GelfSourceConfig {
    /// UDP listen address (plain, gzip or zlib datagrams; chunked messages reassembled).
    pub udp: Option<String>,
    /// TCP listen address (NUL-delimited messages); TLS when `tls_cert` and `tls_key` are set.
    pub tcp: Option<String>,
    /// HTTP listen address for `POST /gelf`; HTTPS when `tls_cert` and `tls_key` are set.
    pub http: Option<String>,
    /// PEM certificate chain: TCP and HTTP speak TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: TLS clients must present a certificate it signed (mutual TLS).
    pub tls_client_ca: Option<PathBuf>,
    /// Category of every record (default: the source's name).
    pub category: Option<String>,
    /// Field names `_txn_id` is taken from, in priority order.
    #[serde(default)]
    pub txn_id_fields: Vec<String>,
    /// A message (decompressed, reassembled, a TCP frame or an HTTP body) longer than this is
    /// refused (UDP, HTTP 413) or cut and flagged (TCP). Default 1 MiB.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: ByteSize,
    /// HTTP: a body holds newline-delimited messages (Graylog's "bulk receiving"); each line is
    /// one message and the body as a whole is capped by `max_message_bytes`. Default false: the
    /// body is one message (a pretty-printed object may span lines).
    #[serde(default)]
    pub http_bulk: bool,
    /// Incomplete chunked messages held at once at most (the oldest is evicted). Default 1024.
    #[serde(default = "default_max_chunked")]
    pub max_incomplete_messages: usize,
    /// Bytes all incomplete chunked messages hold together at most. Default 32 MiB.
    #[serde(default = "default_max_chunked_bytes")]
    pub max_incomplete_bytes: ByteSize,
    /// A chunked message not complete this long after its first chunk is dropped and counted.
    /// Default 5 s.
    #[serde(default = "default_chunk_timeout")]
    pub chunk_timeout: HumanDuration,
    /// Requested UDP receive buffer (the kernel may grant less). Default 8 MiB.
    #[serde(default = "default_udp_buffer")]
    pub udp_receive_buffer: ByteSize,
    /// TCP and HTTP connections open at once at most; more are refused and counted. Default 1024.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A TCP or HTTP connection silent for this long is closed. Default 60 s.
    #[serde(default = "default_idle_timeout")]
    pub tcp_idle_timeout: HumanDuration,
}

impl GelfSourceConfig {
    /// The first setting that cannot work: (key, why).
    pub fn check(&self) -> Option<(&'static str, String)> {
        if self.udp.is_none() && self.tcp.is_none() && self.http.is_none() {
            return Some((
                "",
                "a gelf source needs at least one of `udp`, `tcp`, `http`".into(),
            ));
        }
        for (key, addr) in [("udp", &self.udp), ("tcp", &self.tcp), ("http", &self.http)] {
            if let Some(problem) = addr.as_deref().and_then(|a| check_socket_addr(key, a)) {
                return Some(problem);
            }
        }
        if let Some(problem) = self.tls_keys().check() {
            return Some(problem);
        }
        if self.max_message_bytes.0 < 1024 {
            return Some(("max_message_bytes", "must be at least 1KiB".into()));
        }
        if self.max_incomplete_messages == 0 {
            return Some(("max_incomplete_messages", "must be at least 1".into()));
        }
        if let Some(problem) = check_connections("max_connections", self.max_connections) {
            return Some(problem);
        }
        if self.chunk_timeout.0.is_zero() || self.tcp_idle_timeout.0.is_zero() {
            return Some(("chunk_timeout", "timeouts must be above 0".into()));
        }
        None
    }

    /// The TLS keys of the TCP and HTTP listeners.
    pub fn tls_keys(&self) -> ServerTlsKeys<'_> {
        ServerTlsKeys::of(&self.tls_cert, &self.tls_key, &self.tls_client_ca)
    }
}

fn default_max_message() -> ByteSize {
    ByteSize::mib(1)
}
fn default_max_chunked() -> usize {
    1024
}
fn default_max_chunked_bytes() -> ByteSize {
    ByteSize::mib(32)
}
fn default_chunk_timeout() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_udp_buffer() -> ByteSize {
    ByteSize::mib(8)
}
fn default_max_connections() -> usize {
    1024
}
fn default_idle_timeout() -> HumanDuration {
    HumanDuration::secs(60)
}
