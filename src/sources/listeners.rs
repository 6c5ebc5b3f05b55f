//! The listening sockets of the GELF, RELP, Scribe and forward sources, bound by
//! [`crate::sources::bind`] before anything starts (as syslog's are), so that a port in use fails
//! the start before any component runs, and a reload that changes such a source but not its
//! address hands the bound socket to the next instance ([`super::syslog::handover`]) instead of
//! closing and binding again: no refused connection, no UDP datagram lost unseen.
//!
//! This module binds (or takes over, or takes from the service manager) the sockets of the
//! addresses it is given; it serves nothing.

use std::os::fd::{AsFd, OwnedFd};

use super::syslog::datagram::KernelDrops;
use super::syslog::handover::Held;
use super::syslog::{SyslogError, bind_tcp, bind_udp, parse_addr};

/// What kind of socket an address is bound as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A UDP socket with the given receive buffer.
    Udp { receive_buffer: usize },
    /// A listening TCP socket (plain, TLS or HTTP).
    Stream,
}

/// A source's bound sockets, by the config key that named each address.
#[derive(Debug, Default)]
pub struct Listeners {
    udp: Vec<(&'static str, OwnedFd, KernelDrops)>,
    stream: Vec<(&'static str, std::net::TcpListener)>,
}

impl Listeners {
    /// Binds `(key, address, kind)` for source `name`, taking a socket of `held` (the source's
    /// previous instance) bound to the same address instead of binding it again.
    pub fn bind(
        name: &str,
        addresses: &[(&'static str, Option<&str>, Kind)],
        held: Option<Held>,
    ) -> Result<Listeners, SyslogError> {
        let mut held = held.unwrap_or_default();
        let mut bound = Listeners::default();
        for &(key, addr, kind) in addresses {
            let Some(addr) = addr else { continue };
            let sa = parse_addr(addr, key)?;
            match kind {
                Kind::Udp { receive_buffer } => {
                    let (fd, drops) = match held.take_udp(sa) {
                        Some((fd, drops)) => (
                            super::syslog::handover::resize_udp(fd, receive_buffer, name),
                            drops,
                        ),
                        None => (
                            bind_udp(addr, receive_buffer, name)?,
                            KernelDrops::default(),
                        ),
                    };
                    bound.udp.push((key, fd, drops));
                }
                Kind::Stream => {
                    let listener = match held.take_stream(sa) {
                        Some(l) => l,
                        None => bind_tcp(addr, key, name)?,
                    };
                    bound.stream.push((key, listener));
                }
            }
        }
        Ok(bound)
    }

    /// The UDP socket bound for `key`, with what of its kernel drops is counted already.
    pub fn take_udp(&mut self, key: &str) -> Option<(OwnedFd, KernelDrops)> {
        let i = self.udp.iter().position(|(k, ..)| *k == key)?;
        let (_, fd, drops) = self.udp.swap_remove(i);
        Some((fd, drops))
    }

    /// The listening socket bound for `key` (non-blocking).
    pub fn take_stream(&mut self, key: &str) -> Option<std::net::TcpListener> {
        let i = self.stream.iter().position(|(k, _)| *k == key)?;
        Some(self.stream.swap_remove(i).1)
    }

    /// Duplicates of every socket, for the source's next instance.
    pub fn hold(&self) -> std::io::Result<Held> {
        let mut held = Held::default();
        for (_, fd, drops) in &self.udp {
            held.hold_udp(fd.as_fd(), drops)?;
        }
        for (_, l) in &self.stream {
            held.hold_stream(l.as_fd())?;
        }
        Ok(held)
    }
}
