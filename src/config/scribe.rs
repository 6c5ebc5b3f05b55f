//! Config of the Scribe drop-in: the `scribe` source (Thrift `Log()` on port 1463) and the file
//! sink's `format = "raw"` (Scribe's file store) settings.

use serde::Deserialize;

use super::listener::{check_connections, check_socket_addr};
use super::{ByteSize, HumanDuration};
use crate::record::Format;

/// `type = "scribe"`: Scribe's Thrift service (framed transport, binary protocol).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScribeSourceConfig {
    /// Listen address (Scribe's port is 1463).
    #[serde(default = "default_scribe_listen")]
    pub listen: String,
    /// Largest Thrift frame accepted; a larger one closes its connection.
    #[serde(default = "default_scribe_max_frame")]
    pub max_frame_size: ByteSize,
    /// Entries in one `Log()` call at most.
    #[serde(default = "default_scribe_max_entries")]
    pub max_entries: usize,
    /// Connections served at once at most; more are refused and counted.
    #[serde(default = "default_scribe_max_connections")]
    pub max_connections: usize,
    /// A connection with no call for this long is closed.
    #[serde(default = "default_scribe_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// A frame whose first byte arrived must be complete within this (slow senders).
    #[serde(default = "default_scribe_frame_timeout")]
    pub frame_timeout: HumanDuration,
    /// While the journal is full a `Log()` reply is held this long, then `TRY_LATER` is sent.
    #[serde(default = "default_try_later_after")]
    pub try_later_after: HumanDuration,
    /// Parsing hint of the records (default `raw`: the message is kept as it is).
    #[serde(default = "default_scribe_format")]
    pub format: Format,
}

fn default_scribe_listen() -> String {
    "127.0.0.1:1463".into()
}
fn default_scribe_max_frame() -> ByteSize {
    ByteSize::mib(16)
}
fn default_scribe_max_entries() -> usize {
    1 << 20
}
fn default_scribe_max_connections() -> usize {
    1024
}
fn default_scribe_idle_timeout() -> HumanDuration {
    HumanDuration::secs(600)
}
fn default_scribe_frame_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_try_later_after() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_scribe_format() -> Format {
    Format::Raw
}

impl ScribeSourceConfig {
    /// The first problem with these settings: (key, message).
    pub fn check(&self) -> Option<(&'static str, String)> {
        if let Some(problem) = check_socket_addr("listen", &self.listen) {
            return Some(problem);
        }
        if self.max_frame_size.0 < 1024 || self.max_frame_size.0 > 1 << 30 {
            return Some(("max_frame_size", "must be between 1KiB and 1GiB".into()));
        }
        if self.max_entries == 0 {
            return Some(("max_entries", "must be at least 1".into()));
        }
        if let Some(problem) = check_connections("max_connections", self.max_connections) {
            return Some(problem);
        }
        for (key, d) in [
            ("idle_timeout", self.idle_timeout),
            ("frame_timeout", self.frame_timeout),
            ("try_later_after", self.try_later_after),
        ] {
            if d.0.is_zero() {
                return Some((key, "must be above 0".into()));
            }
        }
        None
    }
}

/// The file sink's output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// One GELF JSON line per record.
    #[default]
    Gelf,
    /// Scribe's file store: the message bytes as they came.
    Raw,
}

/// Compression of closed files of the raw store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
}

/// The first problem with the raw-store keys of a file sink: (key, message).
pub(super) fn check_file_sink(f: &super::FileSinkConfig) -> Option<(&'static str, String)> {
    if f.format == FileFormat::Gelf {
        let raw_only = [
            ("rotate_period", f.rotate_period.is_some()),
            // GELF output is compressed as it is written (a zstd frame per write).
            ("compress", f.compress == Compression::Gzip),
            ("add_newlines", f.add_newlines),
        ];
        if let Some((key, _)) = raw_only.into_iter().find(|(_, set)| *set) {
            let msg = if key == "compress" {
                "GELF output takes `zstd` only (`gzip` applies to `format = \"raw\"`)"
            } else {
                "applies to `format = \"raw\"` only"
            };
            return Some((key, msg.into()));
        }
    }
    if f.rotate_period
        .is_some_and(|d| d.0 < std::time::Duration::from_secs(1))
    {
        return Some(("rotate_period", "must be at least 1s".into()));
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, FileFormat, SinkConfig, SourceConfig};

    #[test]
    fn scribe_relp_and_raw_store_keys() {
        let c = Config::parse(
            "[sources.s]\ntype = \"scribe\"\n[sources.r]\ntype = \"relp\"\nlisten = \"127.0.0.1:2514\"\n\
             [sinks.o]\ntype = \"file\"\npath = \"o\"\nformat = \"raw\"\nrotate_period = \"1h\"\ncompress = \"gzip\"\n",
            "t.toml",
        )
        .unwrap();
        let SourceConfig::Scribe(s) = &c.sources["s"] else {
            panic!("scribe")
        };
        assert_eq!(s.listen, "127.0.0.1:1463");
        let SinkConfig::File(f) = &c.sinks["o"] else {
            panic!("file")
        };
        assert_eq!(f.format, FileFormat::Raw);
        for (text, want) in [
            (
                "[sources.s]\ntype = \"scribe\"\ntry_later_after = \"0s\"\n",
                "t.toml:3: sources.s.try_later_after: must be above 0",
            ),
            (
                "[sinks.o]\ntype = \"file\"\npath = \"o\"\ncompress = \"gzip\"\n",
                "t.toml:4: sinks.o.compress: GELF output takes `zstd` only (`gzip` applies to `format = \"raw\"`)",
            ),
            (
                "[sinks.o]\ntype = \"file\"\npath = \"o\"\nadd_newlines = true\n",
                "t.toml:4: sinks.o.add_newlines: applies to `format = \"raw\"` only",
            ),
            (
                "[sources.r]\ntype = \"relp\"\nlisten = \"127.0.0.1:1\"\nwindow = 0\n",
                "t.toml:4: sources.r.window: must be between 1 and 65536",
            ),
        ] {
            let e = Config::parse(text, "t.toml").unwrap_err().to_string();
            assert_eq!(e, want);
        }
    }
}
