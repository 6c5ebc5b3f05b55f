//! `[search]`: the search servers `quill search -c FILE` asks when no `--server` is given
//! (`peers`, every aggregator's search API) and how long each may take (`timeout`).
//! This module validates the keys and reads nothing.

use serde::Deserialize;

use super::locate::find_key_line;
use super::{ConfigError, HumanDuration};
use crate::index::http::server_authority;

/// `[search]`: where `quill search -c FILE` looks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSection {
    /// Search APIs to query together (`http://HOST:PORT`, each aggregator's index sink
    /// `listen`); results are merged by time. Empty: the local index of `data_dir`.
    #[serde(default)]
    pub peers: Vec<String>,
    /// How long one peer may take to answer (connect, search, transfer).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

/// The default time bound of one peer's answer.
pub const DEFAULT_PEER_TIMEOUT: HumanDuration = HumanDuration::secs(10);

fn default_timeout() -> HumanDuration {
    DEFAULT_PEER_TIMEOUT
}

impl Default for SearchSection {
    fn default() -> Self {
        SearchSection {
            peers: Vec::new(),
            timeout: default_timeout(),
        }
    }
}

impl SearchSection {
    /// The first problem with these keys: (key, message).
    pub fn check(&self) -> Option<(&'static str, String)> {
        for (i, peer) in self.peers.iter().enumerate() {
            if let Err(e) = server_authority(peer) {
                return Some(("peers", e.to_string()));
            }
            if self.peers[..i].contains(peer) {
                return Some(("peers", format!("`{peer}` is listed twice")));
            }
        }
        if self.timeout.0.is_zero() {
            return Some(("timeout", "must be above 0".into()));
        }
        None
    }

    /// [`Self::check`], located in `text` (the file `origin`).
    pub(super) fn validate(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        match self.check() {
            None => Ok(()),
            Some((key, message)) => Err(ConfigError::Invalid {
                path: origin.to_string(),
                line: find_key_line(text, "search", key),
                key: format!("search.{key}"),
                message,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    fn parse(search: &str) -> Result<Config, ConfigError> {
        Config::parse(
            &format!("data_dir = \"/tmp/x\"\n\n[search]\n{search}"),
            "q.toml",
        )
    }

    #[test]
    fn peers_are_read() {
        let c =
            parse("peers = [\"http://127.0.0.1:7379\", \"http://agg2:7379/\"]\ntimeout = \"2s\"\n")
                .unwrap();
        assert_eq!(c.search.peers.len(), 2);
        assert_eq!(c.search.timeout.0, std::time::Duration::from_secs(2));
        let c = Config::parse("data_dir = \"/tmp/x\"\n", "q.toml").unwrap();
        assert!(c.search.peers.is_empty());
    }

    #[test]
    fn bad_peers_are_located() {
        let located = |text: &str| match parse(text) {
            Err(ConfigError::Invalid {
                path,
                line,
                key,
                message,
            }) => (path, line, key, message),
            other => panic!("expected an error, got {other:?}"),
        };
        let (path, line, key, message) =
            located("timeout = \"1s\"\npeers = [\"https://agg1:7379\"]\n");
        assert_eq!(
            (path.as_str(), line, key.as_str()),
            ("q.toml", 5, "search.peers")
        );
        assert!(message.contains("https://agg1:7379"), "{message}");
        let (_, line, key, message) = located("peers = [\"http://a:1\", \"http://a:1\"]\n");
        assert_eq!((line, key.as_str()), (4, "search.peers"));
        assert!(message.contains("twice"), "{message}");
        let (_, line, key, _) = located("timeout = \"0s\"\n");
        assert_eq!((line, key.as_str()), (4, "search.timeout"));
        assert!(matches!(
            parse("peer = []\n"),
            Err(ConfigError::Invalid { .. })
        ));
    }
}
