//! Agent identities on a forward source: which credential (a token, a client certificate's name)
//! may use which agent id, so that one agent cannot take another's id and high-water mark. The
//! check itself is `sources::forward::identity`.
//!
//! This module reads nothing but the parsed config.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ForwardSourceConfig, is_safe_category};

/// One entry of a forward source's `identities`: a credential and the agent id it may use.
///
/// ```toml
/// identities = [
///   { agent_id = "edge-1", token_file = "/etc/quill/edge-1.token" },
///   { agent_id = "edge-2", tls_name = "edge-2.example.net" },
/// ]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentIdentity {
    /// The agent id this credential may use (exactly; the same rule as a category).
    pub agent_id: String,
    /// The agent's own token (instead of the source's shared `token`).
    pub token: Option<String>,
    /// A file whose first line is the agent's token.
    pub token_file: Option<PathBuf>,
    /// A name of the agent's client certificate (its subject CN or a DNS subject alternative
    /// name); needs mutual TLS (`tls_client_ca`).
    pub tls_name: Option<String>,
}

/// The first problem with a forward source's identity settings: (key, message).
pub(super) fn check_identities(f: &ForwardSourceConfig) -> Option<(&'static str, String)> {
    let mutual_tls = f.tls_client_ca.is_some();
    if f.agent_id_from_certificate && !mutual_tls {
        return Some((
            "agent_id_from_certificate",
            "needs mutual TLS (`tls_client_ca`): the id is read from the client certificate".into(),
        ));
    }
    let shared_token = f.token.is_some() || f.token_file.is_some();
    let mut seen_tokens: Vec<&str> = Vec::new();
    for (i, id) in f.identities.iter().enumerate() {
        let n = i + 1;
        if !is_safe_category(&id.agent_id) {
            return Some((
                "identities",
                format!(
                    "identity {n}: invalid agent id `{}`: 1-128 characters of letters, digits, `-`, `_` or `.`",
                    id.agent_id
                ),
            ));
        }
        let has_token = id.token.is_some() || id.token_file.is_some();
        if id.token.is_some() && id.token_file.is_some() {
            return Some((
                "identities",
                format!(
                    "identity {n} (`{}`): set either `token` or `token_file`, not both",
                    id.agent_id
                ),
            ));
        }
        if id.token.as_deref().is_some_and(str::is_empty) {
            return Some((
                "identities",
                format!(
                    "identity {n} (`{}`): an empty token lets anyone in",
                    id.agent_id
                ),
            ));
        }
        if let Some(t) = id.token.as_deref() {
            if seen_tokens.contains(&t) {
                return Some((
                    "identities",
                    format!(
                        "identity {n} (`{}`): its token is also another identity's: each agent needs its own",
                        id.agent_id
                    ),
                ));
            }
            seen_tokens.push(t);
        }
        if has_token == id.tls_name.is_some() {
            return Some((
                "identities",
                format!(
                    "identity {n} (`{}`): set exactly one credential: `token`, `token_file` or `tls_name`",
                    id.agent_id
                ),
            ));
        }
        if id.tls_name.is_some() && !mutual_tls {
            return Some((
                "identities",
                format!(
                    "identity {n} (`{}`): `tls_name` needs mutual TLS (`tls_client_ca`)",
                    id.agent_id
                ),
            ));
        }
        if has_token && shared_token {
            return Some((
                "identities",
                format!(
                    "identity {n} (`{}`): an agent's own token replaces the shared `token`: remove one of them",
                    id.agent_id
                ),
            ));
        }
    }
    None
}
