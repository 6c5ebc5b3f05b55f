//! Who may use which agent id: a HELLO's agent id checked against the credential it came with.
//!
//! An aggregator keeps one high-water mark per agent id. If any agent could claim any id, two
//! agents with the same id (a cloned VM, a copied config) would reset each other's mark on every
//! batch, and one could hide another's records as replays. With `identities` (each a token or a
//! client certificate name bound to one agent id) or `agent_id_from_certificate` (the id must be
//! a name of the agent's client certificate), a HELLO whose id its credential does not allow is
//! refused with [`IdentityError`] and counted; the agent that owns the id is never disturbed.
//!
//! Certificate names are the certificate's subject alternative names (DNS, IP), checked the way
//! TLS checks a server's name (`rustls::client::verify_server_name`); the subject CN is not read.
//! The TLS handshake has already verified the chain against `tls_client_ca`.
//!
//! This module touches nothing: it reads the config's credentials once (token files included)
//! and compares.

use bytes::Bytes;
use rustls::pki_types::{CertificateDer, ServerName};
use thiserror::Error;

use crate::config::ForwardSourceConfig;
use crate::transport::{self, constant_time_eq};

/// Why a HELLO's agent id was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error(
        "no identity has the credential agent {claimed:?} presented (wrong token or certificate)"
    )]
    UnknownCredential { claimed: String },
    #[error("agent id {claimed:?} does not match its credential, which may use {allowed}")]
    Mismatch { claimed: String, allowed: String },
}

struct Identity {
    agent_id: String,
    token: Option<Bytes>,
    tls_name: Option<String>,
}

/// The credentials of a forward source, loaded.
pub struct Identities {
    entries: Vec<Identity>,
    from_certificate: bool,
}

impl Identities {
    /// Loads `identities` (reading token files) and `agent_id_from_certificate`.
    pub fn load(config: &ForwardSourceConfig) -> Result<Identities, String> {
        let mut entries = Vec::with_capacity(config.identities.len());
        for id in &config.identities {
            let token = transport::load_token(id.token.as_deref(), id.token_file.as_deref())
                .map_err(|e| format!("identity `{}`: {e}", id.agent_id))?;
            entries.push(Identity {
                agent_id: id.agent_id.clone(),
                token,
                tls_name: id.tls_name.clone(),
            });
        }
        Ok(Identities {
            entries,
            from_certificate: config.agent_id_from_certificate,
        })
    }

    /// True when agent ids are bound to credentials at all.
    pub fn binds(&self) -> bool {
        !self.entries.is_empty() || self.from_certificate
    }

    /// True when some identity authenticates by token (the shared token is then not used).
    pub fn has_tokens(&self) -> bool {
        self.entries.iter().any(|e| e.token.is_some())
    }

    /// Checks that `claimed` may be used with `token` and the client certificate `cert` (the
    /// end-entity certificate of a mutual TLS connection, if any).
    pub fn check(
        &self,
        claimed: &str,
        token: &[u8],
        cert: Option<&CertificateDer<'_>>,
    ) -> Result<(), IdentityError> {
        if !self.binds() {
            return Ok(());
        }
        let parsed = cert.and_then(|c| rustls::server::ParsedCertificate::try_from(c).ok());
        let cert_has = |name: &str| {
            parsed.as_ref().is_some_and(|p| {
                ServerName::try_from(name)
                    .is_ok_and(|n| rustls::client::verify_server_name(p, &n).is_ok())
            })
        };
        // Every identity whose credential this connection holds. Tokens are compared in
        // constant time and all of them, so timing does not tell which one was close.
        let mut allowed: Vec<&str> = Vec::new();
        for e in &self.entries {
            let by_token = e.token.as_ref().is_some_and(|t| constant_time_eq(t, token));
            let by_cert = e.tls_name.as_deref().is_some_and(cert_has);
            if by_token || by_cert {
                allowed.push(&e.agent_id);
            }
        }
        if allowed.contains(&claimed) {
            return Ok(());
        }
        if self.from_certificate && cert_has(claimed) {
            return Ok(());
        }
        if allowed.is_empty() && !self.from_certificate {
            return Err(IdentityError::UnknownCredential {
                claimed: claimed.to_string(),
            });
        }
        let mut names: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
        if self.from_certificate {
            names.push("a name of its client certificate".into());
        }
        Err(IdentityError::Mismatch {
            claimed: claimed.to_string(),
            allowed: names.join(" or "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identities(toml_text: &str) -> Identities {
        let text =
            format!("[sources.a]\ntype = \"forward\"\nlisten = \"127.0.0.1:7070\"\n{toml_text}");
        let cfg = crate::config::Config::parse(&text, "t.toml").unwrap();
        match &cfg.sources["a"] {
            crate::config::SourceConfig::Forward(f) => Identities::load(f).unwrap(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_token_binds_its_agent_id() {
        let ids = identities(
            "identities = [{ agent_id = \"edge-1\", token = \"t1\" }, { agent_id = \"edge-2\", token = \"t2\" }]\n",
        );
        assert!(ids.binds() && ids.has_tokens());
        assert_eq!(ids.check("edge-1", b"t1", None), Ok(()));
        assert_eq!(ids.check("edge-2", b"t2", None), Ok(()));
        let e = ids.check("edge-1", b"t2", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "agent id \"edge-1\" does not match its credential, which may use \"edge-2\""
        );
        assert!(matches!(
            ids.check("edge-1", b"nope", None),
            Err(IdentityError::UnknownCredential { .. })
        ));
        assert!(ids.check("edge-1", b"", None).is_err());
    }

    #[test]
    fn no_identities_check_nothing() {
        let ids = identities("token = \"shared\"\n");
        assert!(!ids.binds());
        assert_eq!(ids.check("anyone", b"whatever", None), Ok(()));
    }

    #[test]
    fn identity_settings_are_checked() {
        let parse = |extra: &str| {
            let text =
                format!("[sources.a]\ntype = \"forward\"\nlisten = \"127.0.0.1:7070\"\n{extra}");
            crate::config::Config::parse(&text, "t.toml").map_err(|e| e.to_string())
        };
        for (extra, want) in [
            (
                "token = \"s\"\nidentities = [{ agent_id = \"a\", token = \"t\" }]\n",
                "replaces the shared `token`",
            ),
            (
                "identities = [{ agent_id = \"a\", token = \"t\" }, { agent_id = \"b\", token = \"t\" }]\n",
                "also another identity's",
            ),
            (
                "identities = [{ agent_id = \"a\" }]\n",
                "set exactly one credential",
            ),
            (
                "identities = [{ agent_id = \"a\", tls_name = \"a\" }]\n",
                "needs mutual TLS",
            ),
            (
                "identities = [{ agent_id = \"../a\", token = \"t\" }]\n",
                "invalid agent id",
            ),
            ("agent_id_from_certificate = true\n", "needs mutual TLS"),
        ] {
            let e = parse(extra).unwrap_err();
            assert!(e.contains("sources.a.") && e.contains(want), "{extra}: {e}");
        }
    }
}
