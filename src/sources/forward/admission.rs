//! Admission of new connections: per-IP counts (all connections, and those still in their
//! handshake) and the rate-limited log of refusals at accept.
//!
//! This module touches nothing but its own counters.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Refusals of the accept loop are logged at most this often (the rest are counted).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Connections per IP address (all, and those still in their handshake), shared by the accept
/// loop and the connections' [`IpSlot`]s.
pub(super) struct PerIp {
    max: usize,
    max_handshakes: usize,
    counts: Mutex<HashMap<IpAddr, IpCount>>,
}

#[derive(Default)]
struct IpCount {
    all: usize,
    handshakes: usize,
}

/// One connection's place in its IP's counts; freed when dropped.
pub(super) struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
    in_handshake: bool,
}

impl PerIp {
    pub(super) fn new(max: usize, max_handshakes: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            max,
            max_handshakes,
            counts: Mutex::default(),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, IpCount>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a new connection from `ip`, or why there is none.
    pub(super) fn take(self: &Arc<Self>, ip: IpAddr) -> Result<IpSlot, &'static str> {
        let mut counts = self.counts();
        let n = counts.entry(ip).or_default();
        if n.all >= self.max {
            return Err("too many connections from this address");
        }
        if n.handshakes >= self.max_handshakes {
            return Err("too many connections in their handshake from this address");
        }
        n.all += 1;
        n.handshakes += 1;
        Ok(IpSlot {
            per_ip: self.clone(),
            ip,
            in_handshake: true,
        })
    }
}

impl IpSlot {
    /// The handshake is over (its slot is free for the next peer from this address).
    pub(super) fn handshake_done(&mut self) {
        if std::mem::take(&mut self.in_handshake)
            && let Some(n) = self.per_ip.counts().get_mut(&self.ip)
        {
            n.handshakes -= 1;
        }
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        self.handshake_done();
        let mut counts = self.per_ip.counts();
        if let Some(n) = counts.get_mut(&self.ip) {
            n.all -= 1;
            if n.all == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Refusals at accept, logged at most once per [`REFUSAL_LOG_INTERVAL`] with how many were not.
pub(super) struct RefusalLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    pub(super) fn new() -> RefusalLog {
        RefusalLog {
            last: None,
            unlogged: 0,
        }
    }

    pub(super) fn note(&mut self, source: &str, peer: SocketAddr, why: &str) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < REFUSAL_LOG_INTERVAL)
        {
            self.unlogged += 1;
            return;
        }
        let also = std::mem::take(&mut self.unlogged);
        tracing::warn!(source = %source, %peer, "Refused forward connection: {why} ({also} more refusals since the last such line).");
        self.last = Some(Instant::now());
    }
}
