//! The forward protocol: how agents ship journal records to aggregators, exactly once.
//!
//! - [`frame`]: the versioned frame layout (HELLO, WELCOME, BATCH, ACK, ERROR), bounded reading.
//! - [`batch`]: a batch's records, encoded and zstd-compressed; bombs and lies are refused.
//! - [`budget`]: a receiver's memory budget over all connections, and the frame reader keeping to it.
//! - [`tls`]: rustls configurations, optional mutual TLS.
//! - [`nats`]: the JetStream message layout, partitions and client connection of the `nats` sink and source.
//! - [`shipper`]: the sending side shared by the `forward` sink and `quill send`: a window of
//!   batches in flight, acks, reconnects with backoff and jitter, failover between aggregators.
//!
//! Exactly once: a batch carries the sender's journal sequence range; the receiver appends it to
//! its own journal together with a checkpoint `forward/<agent-id>` = `<stream-id> <last-seq>` (the
//! high-water mark, durable atomically with the data), acks only once that is durable, and drops
//! records at or below the mark when they come again. The sender advances its cursor on the ack.
//!
//! This module owns the sockets it opens or is handed; it never touches the journal directly.

pub mod batch;
pub mod budget;
pub mod frame;
pub mod nats;
pub mod shipper;
pub mod tls;

use tokio::io::{AsyncRead, AsyncWrite};

/// Default largest frame a receiver accepts.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;
/// Default largest decompressed batch a receiver accepts.
pub const DEFAULT_MAX_BATCH: usize = 64 << 20;

/// A connection, plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// True for a valid agent id: the same rule as a category (a safe file name).
pub fn is_valid_agent_id(id: &str) -> bool {
    crate::config::is_safe_category(id)
}

/// True for a valid stream id: 1 to 64 ASCII hex digits.
pub fn is_valid_stream_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A fresh random stream id (128 bits, hex).
pub fn new_stream_id() -> String {
    let mut rng = fastrand::Rng::new();
    format!("{:016x}{:016x}", rng.u64(..), rng.u64(..))
}

/// Turns a hostname into a valid agent id (unsafe characters become `_`).
pub fn agent_id_from_host(host: &str) -> String {
    let mut id: String = host
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty() || id.starts_with('.') {
        id.insert(0, '_');
        id.truncate(128);
    }
    id
}

/// Reads a shared token: inline, or the first line of a file (trailing whitespace removed).
pub fn load_token(
    inline: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Option<bytes::Bytes>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err("set either `token` or `token_file`, not both".into()),
        (Some(""), None) => Err("`token` is empty: set a secret, or remove it".into()),
        (Some(t), None) => Ok(Some(bytes::Bytes::copy_from_slice(t.as_bytes()))),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?;
            let token = text.lines().next().unwrap_or("").trim_end();
            if token.is_empty() {
                return Err(format!("token file {} is empty", path.display()));
            }
            Ok(Some(bytes::Bytes::copy_from_slice(token.as_bytes())))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_secrets() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        let s = new_stream_id();
        assert!(is_valid_stream_id(&s) && s.len() == 32);
        assert_ne!(s, new_stream_id());
        assert!(!is_valid_stream_id("xyz"));
        assert_eq!(agent_id_from_host("web 1/eu"), "web_1_eu");
        assert_eq!(agent_id_from_host(".x"), "_.x");
        assert!(is_valid_agent_id(&agent_id_from_host("")));
    }
}
