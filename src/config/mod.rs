//! The TOML configuration: named sources → the journal → named sinks.
//!
//! [`Config::load`] reads and validates a file. Every error names the file, the line and the key
//! (`quickstart.toml:12: sources.web.inclde: unknown key ...`). Unknown keys, bad values and type
//! mismatches are errors. Relative paths are resolved against the working directory `quill` runs in.
//!
//! This module reads the config file and nothing else; it starts nothing. Its files: `root` (the
//! top level, `[journal]`, `[bytes]`), `sources` and `sinks` (one struct per type, some in files of
//! their own: `relp`, `scribe`, `gelf`), `parse_keys` (the parse keys and the parser they build),
//! `validate` (what serde cannot check), `locate` (file:line:key of every error), and the shared
//! value types (`values`, `route`, `output`, `limits`, `search`), and `search_peers` (`[search]`).

pub mod apache;
mod gelf;
mod identity;
mod limits;
mod listener;
mod locate;
mod multiline;
mod nats;
mod output;
mod parse_keys;
mod relp;
mod root;
mod route;
mod scribe;
mod search;
mod search_peers;
mod sink_out;
mod sinks;
mod sources;
mod validate;
mod values;

pub use gelf::GelfSourceConfig;
pub use identity::AgentIdentity;
pub use listener::ServerTlsKeys;
pub use locate::{ConfigError, find_key_line};
pub use multiline::StartPattern;
pub use nats::{NatsAuth, NatsRetention, NatsSinkConfig, NatsSourceConfig};
pub use output::{MAX_WORKERS, OutputFsync, default_workers};
pub use parse_keys::{DefaultParseSection, ParseKeyError, ParseKeys, ParseOptions};
pub use relp::RelpSourceConfig;
pub use root::{BytesSection, Config, JournalSection};
pub use route::{RouteConfig, Severity, SeveritySetting};
pub use scribe::{Compression, FileFormat, ScribeSourceConfig};
pub use search_peers::{DEFAULT_PEER_TIMEOUT, SearchSection};
pub use sink_out::{
    GelfCompression, GelfSinkConfig, OutScheme, OutTarget, OutTls, SyslogFraming, SyslogMessage,
    SyslogProtocol, SyslogSinkConfig,
};
pub use sinks::{FileSinkConfig, ForwardSinkConfig, IndexSinkConfig, SinkConfig};
pub use sources::{
    FileSourceConfig, ForwardSourceConfig, MAX_FINGERPRINT_BYTES, ReadFrom, SourceConfig,
    SyslogSourceConfig, WatchMode,
};
pub use validate::{CATEGORY_RULE, is_safe_category};
pub use values::{ByteSize, HumanDuration};

#[cfg(test)]
mod tests;
