//! `type = "gelf"` and `type = "syslog"` sinks: records sent to Graylog-compatible receivers and
//! existing syslog infrastructure ([`crate::sinks::gelf_out`], [`crate::sinks::syslog_out`]).
//! Only settings and their checks here; no I/O.

use std::path::PathBuf;

use serde::Deserialize;

use super::route::RouteConfig;
use super::values::{ByteSize, HumanDuration};

/// How a sink reaches its receiver: `SCHEME://HOST:PORT[/PATH]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutTarget {
    pub scheme: OutScheme,
    /// `HOST:PORT`.
    pub addr: String,
    /// HTTP(S) only: the request path (default `/gelf`).
    pub path: String,
}

/// The transport of an [`OutTarget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutScheme {
    Udp,
    Tcp,
    /// TCP with TLS.
    Tls,
    Http,
    Https,
}

impl OutScheme {
    /// True for the schemes that speak TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, OutScheme::Tls | OutScheme::Https)
    }
}

impl OutTarget {
    /// Parses `to`; `schemes` are the ones the sink speaks.
    pub fn parse(to: &str, schemes: &[OutScheme]) -> Result<OutTarget, String> {
        let (scheme, rest) = to
            .split_once("://")
            .ok_or_else(|| format!("`{to}` has no scheme (expected e.g. \"tcp://HOST:PORT\")"))?;
        let scheme = match scheme {
            "udp" => OutScheme::Udp,
            "tcp" => OutScheme::Tcp,
            "tls" => OutScheme::Tls,
            "http" => OutScheme::Http,
            "https" => OutScheme::Https,
            other => return Err(format!("unknown scheme `{other}`")),
        };
        if !schemes.contains(&scheme) {
            return Err(format!(
                "this sink does not speak `{}://`",
                to_scheme(scheme)
            ));
        }
        let (addr, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !path.is_empty() && !matches!(scheme, OutScheme::Http | OutScheme::Https) {
            return Err(format!("`{to}`: only http(s) addresses take a path"));
        }
        if addr
            .rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            return Err(format!("invalid address `{addr}` (expected HOST:PORT)"));
        }
        Ok(OutTarget {
            scheme,
            addr: addr.to_string(),
            path: if path.is_empty() { "/gelf" } else { path }.to_string(),
        })
    }
}

fn to_scheme(s: OutScheme) -> &'static str {
    match s {
        OutScheme::Udp => "udp",
        OutScheme::Tcp => "tcp",
        OutScheme::Tls => "tls",
        OutScheme::Http => "http",
        OutScheme::Https => "https",
    }
}

/// Payload compression of the `gelf` sink (UDP datagrams, HTTP bodies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GelfCompression {
    #[default]
    None,
    Gzip,
    Zlib,
}

/// TLS settings of an outgoing connection (`tls://`, `https://`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OutTls {
    /// CA (PEM) to verify the receiver with; required for `tls://` and `https://`.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Name to verify the receiver's certificate against (default: the host of `to`).
    pub tls_server_name: Option<String>,
}

impl OutTls {
    fn check(&self, target: &OutTarget) -> Option<(&'static str, String)> {
        if target.scheme.is_tls() && self.tls_ca.is_none() {
            return Some(("tls_ca", "`tls://` and `https://` need `tls_ca`".into()));
        }
        if !target.scheme.is_tls() && self.tls_ca.is_some() {
            return Some((
                "tls_ca",
                "TLS needs a `tls://` or `https://` address".into(),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Some(("tls_cert", "`tls_cert` and `tls_key` go together".into()));
        }
        None
    }
}

/// `type = "gelf"` sink: GELF 1.1 (as the file sink writes it) over UDP, TCP or HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GelfSinkConfig {
    /// Which records this sink takes (`inputs`, `categories`, `min_severity`, `hosts`).
    #[serde(flatten)]
    pub route: RouteConfig,
    /// Past this much journal behind it (while it is down), its cursor moves on (counted).
    #[serde(default)]
    pub max_lag: Option<ByteSize>,
    /// `udp://HOST:PORT`, `tcp://HOST:PORT`, `tls://HOST:PORT`, `http://HOST:PORT/gelf` or
    /// `https://...`.
    pub to: String,
    #[serde(flatten)]
    pub tls: OutTls,
    /// UDP: bytes of one datagram at most; longer messages are chunked (128 chunks at most).
    #[serde(default = "default_chunk_size")]
    pub chunk_size: usize,
    /// UDP datagrams and HTTP bodies: `none` (default), `gzip` or `zlib` (UDP only).
    #[serde(default)]
    pub compression: GelfCompression,
    /// TCP/TLS: the last bytes written that count as not yet received (a stalled or dying
    /// receiver's buffers may hold them unread): the cursor waits for them, and after a
    /// reconnect they are sent again. Default 8 MiB (above Linux's default largest TCP receive
    /// buffer, 6 MiB). See README, "Sending GELF and syslog out".
    #[serde(default = "default_resend_window")]
    pub resend_window: ByteSize,
    /// HTTP: requests sent ahead of their answers on one connection at most.
    #[serde(default = "default_window")]
    pub window: usize,
    /// HTTP: messages per `POST` at most, newline-delimited. Default 1 (every GELF HTTP receiver
    /// takes that); above 1 the receiver must take bulk bodies (Graylog's "Enable Bulk
    /// Receiving", Quill's gelf source `http_bulk = true`).
    #[serde(default = "default_http_batch")]
    pub http_batch: usize,
    /// HTTP: bytes of one bulk body at most (before compression); a longer message goes alone.
    /// Default 64 KiB (Graylog's default largest HTTP body).
    #[serde(default = "default_http_batch_bytes")]
    pub http_batch_bytes: ByteSize,
    /// HTTP: connections the requests are spread over. Default 1. A receiver that answers once
    /// a message is durable takes about one request per commit on each connection, so more
    /// connections let one commit take several; messages may then arrive out of order.
    #[serde(default = "default_http_connections")]
    pub http_connections: usize,
    /// Connect, write and answer timeout: a receiver silent for this long counts as failed
    /// (the sink is restarted from its cursor, nothing acknowledged is lost).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Threads that parse and encode records (default: the machine's cores).
    pub workers: Option<usize>,
}

/// RFC of the `syslog` sink's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogProtocol {
    #[default]
    Rfc5424,
    Rfc3164,
}

/// Stream framing of the `syslog` sink (RFC 6587).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum SyslogFraming {
    /// `LEN SP MSG`: carries any message, newlines included.
    #[default]
    #[serde(rename = "octet-counting")]
    OctetCounting,
    /// `MSG LF`: a message holding a newline is split by the receiver.
    #[serde(rename = "lf")]
    Lf,
}

/// What the `syslog` sink puts in the MSG part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogMessage {
    /// The record's line as it came.
    #[default]
    Raw,
    /// The record as the file sink's GELF JSON.
    Gelf,
}

/// `type = "syslog"` sink: RFC 5424 or 3164 over UDP, TCP or TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSinkConfig {
    /// Which records this sink takes (`inputs`, `categories`, `min_severity`, `hosts`).
    #[serde(flatten)]
    pub route: RouteConfig,
    /// Past this much journal behind it (while it is down), its cursor moves on (counted).
    #[serde(default)]
    pub max_lag: Option<ByteSize>,
    /// `udp://HOST:PORT`, `tcp://HOST:PORT` or `tls://HOST:PORT`.
    pub to: String,
    #[serde(flatten)]
    pub tls: OutTls,
    #[serde(default)]
    pub protocol: SyslogProtocol,
    /// TCP and TLS: `octet-counting` (default) or `lf`.
    #[serde(default)]
    pub framing: SyslogFraming,
    /// `raw` (the line, default) or `gelf` (the GELF JSON).
    #[serde(default)]
    pub message: SyslogMessage,
    /// Facility number 0..=23 (default 1, user).
    #[serde(default = "default_facility")]
    pub facility: u8,
    /// APP-NAME (5424) or TAG (3164); default: the record's category.
    pub app_name: Option<String>,
    /// TCP/TLS: the last bytes written that count as not yet received (a stalled or dying
    /// receiver's buffers may hold them unread): the cursor waits for them, and after a
    /// reconnect they are sent again. Default 8 MiB (above Linux's default largest TCP receive
    /// buffer, 6 MiB). See README, "Sending GELF and syslog out".
    #[serde(default = "default_resend_window")]
    pub resend_window: ByteSize,
    /// Connect and write timeout (see the gelf sink's `timeout`).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Threads that encode records when `message = "gelf"` (default: the machine's cores).
    pub workers: Option<usize>,
}

fn default_chunk_size() -> usize {
    1420
}
fn default_window() -> usize {
    64
}
fn default_http_batch() -> usize {
    1
}
fn default_http_connections() -> usize {
    1
}
fn default_http_batch_bytes() -> ByteSize {
    ByteSize::kib(64)
}
fn default_timeout() -> HumanDuration {
    HumanDuration::secs(10)
}
fn default_facility() -> u8 {
    1
}
fn default_resend_window() -> ByteSize {
    ByteSize::mib(8)
}

/// Most bytes of one GELF UDP datagram the sink sends (Graylog's limit).
pub const MAX_CHUNK_SIZE: usize = 8192;

impl GelfSinkConfig {
    /// The receiver's address, parsed.
    pub fn target(&self) -> Result<OutTarget, String> {
        use OutScheme::*;
        OutTarget::parse(&self.to, &[Udp, Tcp, Tls, Http, Https])
    }

    /// The first setting that cannot work: (key, why).
    pub fn check(&self) -> Option<(&'static str, String)> {
        let target = match self.target() {
            Ok(t) => t,
            Err(e) => return Some(("to", e)),
        };
        if let Some(bad) = self.tls.check(&target) {
            return Some(bad);
        }
        if !(128..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return Some((
                "chunk_size",
                format!("must be between 128 and {MAX_CHUNK_SIZE}"),
            ));
        }
        let compressible = match self.compression {
            GelfCompression::None => true,
            GelfCompression::Gzip => {
                target.scheme != OutScheme::Tcp && target.scheme != OutScheme::Tls
            }
            GelfCompression::Zlib => target.scheme == OutScheme::Udp,
        };
        if !compressible {
            return Some((
                "compression",
                "GELF over TCP is not compressed; HTTP takes `gzip` only".into(),
            ));
        }
        if self.window == 0 || self.window > 4096 {
            return Some(("window", "must be between 1 and 4096".into()));
        }
        if self.http_batch == 0 || self.http_batch > 65_536 {
            return Some(("http_batch", "must be between 1 and 65536".into()));
        }
        if self.http_connections == 0 || self.http_connections > 64 {
            return Some(("http_connections", "must be between 1 and 64".into()));
        }
        if self.http_batch_bytes.0 < 1024 {
            return Some(("http_batch_bytes", "must be at least 1KiB".into()));
        }
        if self.timeout.0.is_zero() {
            return Some(("timeout", "must be above 0".into()));
        }
        check_workers(self.workers)
    }
}

impl SyslogSinkConfig {
    /// The receiver's address, parsed.
    pub fn target(&self) -> Result<OutTarget, String> {
        use OutScheme::*;
        OutTarget::parse(&self.to, &[Udp, Tcp, Tls])
    }

    /// The first setting that cannot work: (key, why).
    pub fn check(&self) -> Option<(&'static str, String)> {
        let target = match self.target() {
            Ok(t) => t,
            Err(e) => return Some(("to", e)),
        };
        if let Some(bad) = self.tls.check(&target) {
            return Some(bad);
        }
        if self.facility > 23 {
            return Some(("facility", "must be between 0 and 23".into()));
        }
        if self.app_name.as_deref().is_some_and(|a| {
            a.is_empty() || a.len() > 48 || !a.bytes().all(|b| (33..=126).contains(&b))
        }) {
            return Some((
                "app_name",
                "1 to 48 printable ASCII characters, no spaces".into(),
            ));
        }
        if self.timeout.0.is_zero() {
            return Some(("timeout", "must be above 0".into()));
        }
        check_workers(self.workers)
    }
}

fn check_workers(workers: Option<usize>) -> Option<(&'static str, String)> {
    let max = super::MAX_WORKERS;
    workers
        .is_some_and(|w| w == 0 || w > max)
        .then(|| ("workers", format!("must be between 1 and {max}")))
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, SinkConfig};

    #[test]
    fn targets_and_errors_name_file_line_and_key() {
        let c = Config::parse(
            "[sinks.g]\ntype = \"gelf\"\nto = \"http://127.0.0.1:12201\"\n\
             [sinks.s]\ntype = \"syslog\"\nto = \"tcp://localhost:514\"\nprotocol = \"rfc3164\"\nframing = \"lf\"\n",
            "t.toml",
        )
        .unwrap();
        let SinkConfig::Gelf(g) = &c.sinks["g"] else {
            panic!("gelf")
        };
        assert_eq!(g.target().unwrap().path, "/gelf");
        assert!(matches!(c.sinks["s"], SinkConfig::Syslog(_)));
        for (text, want) in [
            (
                "[sinks.g]\ntype = \"gelf\"\nto = \"ftp://h:1\"\n",
                "t.toml:3: sinks.g.to: unknown scheme `ftp`",
            ),
            (
                "[sinks.g]\ntype = \"gelf\"\nto = \"udp://h:1\"\nchunk_size = 9000\n",
                "t.toml:4: sinks.g.chunk_size: must be between 128 and 8192",
            ),
            (
                "[sinks.g]\ntype = \"gelf\"\nto = \"tcp://h:1\"\ncompression = \"gzip\"\n",
                "t.toml:4: sinks.g.compression: GELF over TCP is not compressed; HTTP takes `gzip` only",
            ),
            (
                "[sinks.g]\ntype = \"gelf\"\nto = \"https://h:1/x\"\n",
                "t.toml:1: sinks.g.tls_ca: `tls://` and `https://` need `tls_ca`",
            ),
            (
                "[sinks.s]\ntype = \"syslog\"\nto = \"http://h:1\"\n",
                "t.toml:3: sinks.s.to: this sink does not speak `http://`",
            ),
            (
                "[sinks.s]\ntype = \"syslog\"\nto = \"udp://h:1\"\nfacility = 24\n",
                "t.toml:4: sinks.s.facility: must be between 0 and 23",
            ),
        ] {
            let e = Config::parse(text, "t.toml").unwrap_err().to_string();
            assert_eq!(e, want);
        }
    }
}
