//! What the listening sources (syslog, gelf, relp, scribe, forward) share in their config: the
//! check of a listen address, of a connection limit, and of the server TLS keys (`tls_cert`,
//! `tls_key`, `tls_client_ca`), each written once.
//!
//! The keys stay fields of each source's own struct, with that source's defaults: serde's
//! `flatten` cannot be combined with `deny_unknown_fields` (which makes a misspelt key an error
//! that names it, at its line), and it would blur the type errors of the flattened keys. A source
//! hands its keys over as a [`ServerTlsKeys`] view instead.

use std::path::{Path, PathBuf};

/// A check's finding: the key at fault and why.
pub type Problem = (&'static str, String);

/// `addr` (the value of `key`) must be `IP:PORT`.
pub fn check_socket_addr(key: &'static str, addr: &str) -> Option<Problem> {
    addr.parse::<std::net::SocketAddr>().is_err().then(|| {
        (
            key,
            format!("invalid socket address `{addr}` (expected IP:PORT)"),
        )
    })
}

/// A connection limit (`key`) of at least 1.
pub fn check_connections(key: &'static str, max: usize) -> Option<Problem> {
    (max == 0).then(|| (key, "must be at least 1".to_string()))
}

/// A listening source's TLS keys: with `cert` and `key` it speaks TLS only; with `client_ca`
/// clients must present a certificate that CA signed (mutual TLS).
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerTlsKeys<'a> {
    pub cert: Option<&'a Path>,
    pub key: Option<&'a Path>,
    pub client_ca: Option<&'a Path>,
}

impl<'a> ServerTlsKeys<'a> {
    /// The view of a source's `tls_cert`, `tls_key` and `tls_client_ca`.
    pub fn of(
        cert: &'a Option<PathBuf>,
        key: &'a Option<PathBuf>,
        client_ca: &'a Option<PathBuf>,
    ) -> ServerTlsKeys<'a> {
        ServerTlsKeys {
            cert: cert.as_deref(),
            key: key.as_deref(),
            client_ca: client_ca.as_deref(),
        }
    }

    /// `tls_cert` and `tls_key` go together; `tls_client_ca` needs both.
    pub fn check(&self) -> Option<Problem> {
        if self.cert.is_some() != self.key.is_some() {
            return Some(("tls_cert", "`tls_cert` and `tls_key` go together".into()));
        }
        if self.client_ca.is_some() && self.cert.is_none() {
            return Some((
                "tls_client_ca",
                "mutual TLS needs `tls_cert` and `tls_key` too".into(),
            ));
        }
        None
    }

    /// The certificate chain and its key, when TLS is on.
    pub fn pair(&self) -> Option<(&'a Path, &'a Path)> {
        self.cert.zip(self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_check_names_its_key() {
        assert!(check_socket_addr("listen", "127.0.0.1:1").is_none());
        assert_eq!(check_socket_addr("tcp", "localhost:1").unwrap().0, "tcp");
        assert_eq!(
            check_connections("max_connections", 0).unwrap().0,
            "max_connections"
        );
        let p = Path::new("x.pem");
        let keys = |cert, key, client_ca| ServerTlsKeys {
            cert,
            key,
            client_ca,
        };
        assert!(keys(None, None, None).check().is_none());
        assert!(keys(Some(p), Some(p), Some(p)).check().is_none());
        assert_eq!(keys(Some(p), None, None).check().unwrap().0, "tls_cert");
        assert_eq!(keys(None, Some(p), None).check().unwrap().0, "tls_cert");
        assert_eq!(
            keys(None, None, Some(p)).check().unwrap().0,
            "tls_client_ca"
        );
        assert_eq!(keys(Some(p), Some(p), None).pair(), Some((p, p)));
    }
}
