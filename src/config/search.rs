//! The index sink's search API keys: who may search (`search_token`/`search_token_file`,
//! `search_tls_cert`/`search_tls_key`) and what one search may cost (`search_max_limit`,
//! `search_max_query_bytes`, `search_max_depth`, `search_time_budget`, `search_max_concurrent`,
//! `search_max_connections`).
//!
//! Listening beyond loopback (`listen = "0.0.0.0:7379"`) needs a token: the API serves every
//! indexed entry. This module validates the keys and reads nothing.

use std::net::SocketAddr;

use super::{HumanDuration, IndexSinkConfig};
use crate::index::SearchLimits;
use crate::index::limits::{self, MAX_CONFIGURABLE_DEPTH};
use crate::index::serve;

pub(super) fn default_max_limit() -> usize {
    limits::DEFAULT_MAX_LIMIT
}
pub(super) fn default_max_query_bytes() -> usize {
    limits::DEFAULT_MAX_QUERY_BYTES
}
pub(super) fn default_max_depth() -> usize {
    limits::DEFAULT_MAX_DEPTH
}
pub(super) fn default_time_budget() -> HumanDuration {
    HumanDuration(limits::DEFAULT_TIME_BUDGET)
}
pub(super) fn default_max_concurrent() -> usize {
    serve::DEFAULT_MAX_CONCURRENT
}
pub(super) fn default_max_connections() -> usize {
    serve::DEFAULT_MAX_CONNECTIONS
}

/// Largest `search_max_limit` (each returned entry is loaded and sent).
const MAX_MAX_LIMIT: usize = 1_000_000;
/// Longest `search_max_query_bytes`.
const MAX_QUERY_BYTES: usize = 64 << 10;

impl IndexSinkConfig {
    /// The first problem with the search API keys: (key, message).
    pub fn search_check(&self) -> Option<(&'static str, String)> {
        if self.search_token.is_some() && self.search_token_file.is_some() {
            return Some((
                "search_token_file",
                "set either `search_token` or `search_token_file`, not both".into(),
            ));
        }
        if self
            .search_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Some(("search_token", "an empty token lets anyone in".into()));
        }
        if self.search_tls_cert.is_some() != self.search_tls_key.is_some() {
            return Some((
                "search_tls_cert",
                "`search_tls_cert` and `search_tls_key` go together".into(),
            ));
        }
        let has_token = self.search_token.is_some() || self.search_token_file.is_some();
        if let Ok(addr) = self.listen.parse::<SocketAddr>()
            && !addr.ip().is_loopback()
            && !has_token
        {
            return Some((
                "listen",
                format!(
                    "the search API would serve every indexed entry on {addr} to anyone: \
                     listen on loopback (127.0.0.1) or set `search_token`/`search_token_file`"
                ),
            ));
        }
        if !(1..=MAX_MAX_LIMIT).contains(&self.search_max_limit) {
            return Some((
                "search_max_limit",
                format!("must be between 1 and {MAX_MAX_LIMIT}"),
            ));
        }
        if !(16..=MAX_QUERY_BYTES).contains(&self.search_max_query_bytes) {
            return Some((
                "search_max_query_bytes",
                format!("must be between 16 and {MAX_QUERY_BYTES}"),
            ));
        }
        if !(1..=MAX_CONFIGURABLE_DEPTH).contains(&self.search_max_depth) {
            return Some((
                "search_max_depth",
                format!(
                    "must be between 1 and {MAX_CONFIGURABLE_DEPTH} (parsing costs about 2^depth)"
                ),
            ));
        }
        if self.search_time_budget.0.is_zero() {
            return Some(("search_time_budget", "must be above 0".into()));
        }
        if self.search_max_concurrent == 0 {
            return Some(("search_max_concurrent", "must be at least 1".into()));
        }
        if self.search_max_connections == 0 {
            return Some(("search_max_connections", "must be at least 1".into()));
        }
        None
    }

    /// What one search may cost, from these keys.
    pub fn search_limits(&self) -> SearchLimits {
        SearchLimits {
            max_limit: self.search_max_limit,
            max_query_bytes: self.search_max_query_bytes,
            max_depth: self.search_max_depth,
            time_budget: self.search_time_budget.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    fn error_of(sink: &str) -> (usize, String, String) {
        let text = format!("data_dir = \"/tmp/x\"\n\n[sinks.idx]\ntype = \"index\"\n{sink}");
        match Config::parse(&text, "q.toml") {
            Err(ConfigError::Invalid {
                line, key, message, ..
            }) => (line, key, message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn beyond_loopback_needs_a_token() {
        let (line, key, message) = error_of("listen = \"0.0.0.0:7379\"\n");
        assert_eq!((line, key.as_str()), (5, "sinks.idx.listen"));
        assert!(message.contains("search_token"), "{message}");
        let ok = "data_dir = \"/tmp/x\"\n[sinks.idx]\ntype = \"index\"\nlisten = \"0.0.0.0:7379\"\nsearch_token = \"s3cret\"\n";
        assert!(Config::parse(ok, "q.toml").is_ok());
        let ok = "data_dir = \"/tmp/x\"\n[sinks.idx]\ntype = \"index\"\nlisten = \"[::1]:7379\"\n";
        assert!(Config::parse(ok, "q.toml").is_ok());
    }

    #[test]
    fn bad_search_keys_are_located() {
        let (line, key, _) = error_of("search_token = \" \"\n");
        assert_eq!((line, key.as_str()), (5, "sinks.idx.search_token"));
        let (line, key, _) = error_of("listen = \"127.0.0.1:1\"\nsearch_max_depth = 40\n");
        assert_eq!((line, key.as_str()), (6, "sinks.idx.search_max_depth"));
        let (_, key, _) = error_of("search_tls_cert = \"/c.pem\"\n");
        assert_eq!(key, "sinks.idx.search_tls_cert");
        let (_, key, _) = error_of("search_max_limit = 0\n");
        assert_eq!(key, "sinks.idx.search_max_limit");
    }
}
