//! Socket handover on reload. While a listening source runs, its pipeline holds duplicates of the
//! source's bound UDP and listening TCP sockets ([`Held`]: from [`Bound::hold`] for syslog's
//! UDP, TCP and TLS, from [`crate::sources::Listeners::hold`] for the GELF, RELP, Scribe and
//! forward sources). When a reload
//! changes the source but not an address, its bind takes the held socket for that address
//! instead of binding again: the port is never unbound, so nothing sent meanwhile is refused or
//! lost unseen; datagrams and connections arriving between the old instance stopping and the
//! new one starting wait in the socket's queue (overflow is counted as kernel drops). A socket
//! whose address changed is not taken: it closes when the held duplicate is dropped, after the
//! old instance stopped.
//!
//! This module duplicates and sizes those sockets; it reads and binds nothing.

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::Bound;
use super::datagram::KernelDrops;

/// Duplicates of a running source's bound sockets, by the address each is bound to.
#[derive(Debug, Default)]
pub struct Held {
    udp: Vec<(SocketAddr, OwnedFd, KernelDrops)>,
    stream: Vec<(SocketAddr, OwnedFd)>,
}

fn dup_with_addr(fd: BorrowedFd<'_>) -> std::io::Result<(SocketAddr, OwnedFd)> {
    let addr = socket2::SockRef::from(&fd)
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("not an IP socket"))?;
    Ok((addr, fd.try_clone_to_owned()?))
}

impl Bound {
    /// Duplicates of the UDP, TCP and TLS sockets, for the source's next instance.
    pub fn hold(&self) -> std::io::Result<Held> {
        let mut held = Held::default();
        if let Some(fd) = &self.udp {
            held.hold_udp(fd.as_fd(), &self.udp_drops)?;
        }
        if let Some(l) = &self.tcp {
            held.hold_stream(l.as_fd())?;
        }
        if let Some((l, _)) = &self.tls {
            held.hold_stream(l.as_fd())?;
        }
        Ok(held)
    }
}

impl Held {
    /// Keeps a duplicate of a bound UDP socket, with what of its drops is counted.
    pub fn hold_udp(&mut self, fd: BorrowedFd<'_>, drops: &KernelDrops) -> std::io::Result<()> {
        let (addr, dup) = dup_with_addr(fd)?;
        self.udp.push((addr, dup, drops.clone()));
        Ok(())
    }

    /// Keeps a duplicate of a listening stream socket.
    pub fn hold_stream(&mut self, fd: BorrowedFd<'_>) -> std::io::Result<()> {
        self.stream.push(dup_with_addr(fd)?);
        Ok(())
    }

    /// The held UDP socket bound to `addr`, with what of its drops is counted.
    pub fn take_udp(&mut self, addr: SocketAddr) -> Option<(OwnedFd, KernelDrops)> {
        let i = self.udp.iter().position(|(a, ..)| *a == addr)?;
        let (_, fd, drops) = self.udp.swap_remove(i);
        Some((fd, drops))
    }

    /// The held listening stream socket (TCP, TLS, HTTP) bound to `addr`.
    pub fn take_stream(&mut self, addr: SocketAddr) -> Option<std::net::TcpListener> {
        let i = self.stream.iter().position(|(a, _)| *a == addr)?;
        let (_, fd) = self.stream.swap_remove(i);
        tracing::info!(listen = %addr, "Reload: the listening socket is handed over to the new instance.");
        Some(std::net::TcpListener::from(fd))
    }
}

/// A handed-over UDP socket with the receive buffer the new config asks for.
pub(crate) fn resize_udp(fd: OwnedFd, recv_buffer: usize, name: &str) -> OwnedFd {
    let sock = socket2::Socket::from(fd);
    let addr = sock
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map_or_else(String::new, |a| a.to_string());
    super::set_udp_receive_buffer(&sock, recv_buffer, name, &addr);
    tracing::info!(source = %name, udp = %addr, "Reload: the UDP socket is handed over to the new instance.");
    sock.into()
}
