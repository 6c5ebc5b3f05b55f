//! Config of the `relp` source (rsyslog's RELP, `omrelp` → Quill).

use std::path::PathBuf;

use serde::Deserialize;

use super::listener::{ServerTlsKeys, check_connections, check_socket_addr};
use super::{ByteSize, HumanDuration, ParseOptions};
use crate::record::Format;

/// `type = "relp"`: RELP over TCP, or TLS with `tls_cert` and `tls_key`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelpSourceConfig {
    /// Listen address, e.g. `127.0.0.1:2514`.
    pub listen: String,
    /// PEM certificate chain; with `tls_key`, the source speaks TLS only.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: clients must present a certificate it signed (mutual TLS).
    pub tls_client_ca: Option<PathBuf>,
    /// Largest frame data accepted; a larger one closes its connection.
    #[serde(default = "default_relp_max_frame")]
    pub max_frame_size: ByteSize,
    /// Unacknowledged frames per connection at most (rsyslog's default window is 128).
    #[serde(default = "default_relp_window")]
    pub window: usize,
    #[serde(default = "default_relp_max_connections")]
    pub max_connections: usize,
    /// A connection silent for this long is closed.
    #[serde(default = "default_relp_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Category of every record (default: the source's name).
    pub category: Option<String>,
    /// Parsing hint (default `syslog`).
    #[serde(default = "default_relp_format")]
    pub format: Format,
}

fn default_relp_max_frame() -> ByteSize {
    ByteSize::kib(256)
}
fn default_relp_window() -> usize {
    1024
}
fn default_relp_max_connections() -> usize {
    1024
}
fn default_relp_idle_timeout() -> HumanDuration {
    HumanDuration::secs(600)
}
fn default_relp_format() -> Format {
    Format::Syslog
}

impl RelpSourceConfig {
    /// The first problem with these settings: (key, message).
    pub fn check(&self) -> Option<(&'static str, String)> {
        if let Some(problem) =
            check_socket_addr("listen", &self.listen).or_else(|| self.tls_keys().check())
        {
            return Some(problem);
        }
        if self.max_frame_size.0 < 1024 || self.max_frame_size.0 > 999_999_999 {
            return Some((
                "max_frame_size",
                "must be between 1KiB and 999999999 bytes (9 digits)".into(),
            ));
        }
        if self.window == 0 || self.window > 65536 {
            return Some(("window", "must be between 1 and 65536".into()));
        }
        if let Some(problem) = check_connections("max_connections", self.max_connections) {
            return Some(problem);
        }
        if self.idle_timeout.0.is_zero() {
            return Some(("idle_timeout", "must be above 0".into()));
        }
        None
    }

    /// The TLS keys.
    pub fn tls_keys(&self) -> ServerTlsKeys<'_> {
        ServerTlsKeys::of(&self.tls_cert, &self.tls_key, &self.tls_client_ca)
    }

    /// Parse options: the format only (the syslog parser needs no more).
    pub fn parse_options(&self) -> ParseOptions<'_> {
        ParseOptions::format_only(self.format, &[])
    }
}
