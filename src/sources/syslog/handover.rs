//! Socket handover on reload. While a syslog source runs, its pipeline holds duplicates of the
//! source's bound UDP, TCP and TLS sockets ([`Held`], from [`Bound::hold`]). When a reload
//! changes the source but not an address, [`super::bind`] takes the held socket for that address
//! instead of binding again: the port is never unbound, so nothing sent meanwhile is refused or
//! lost unseen; datagrams and connections arriving between the old instance stopping and the
//! new one starting wait in the socket's queue (overflow is counted as kernel drops). A socket
//! whose address changed is not taken: it closes when the held duplicate is dropped, after the
//! old instance stopped.
//!
//! This module duplicates and sizes those sockets; it reads and binds nothing.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use super::Bound;
use super::datagram::KernelDrops;

/// Duplicates of a running source's bound sockets, by the address each is bound to.
#[derive(Debug, Default)]
pub struct Held {
    udp: Option<(SocketAddr, OwnedFd, KernelDrops)>,
    tcp: Option<(SocketAddr, OwnedFd)>,
    tls: Option<(SocketAddr, OwnedFd)>,
}

fn dup_with_addr(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<(SocketAddr, OwnedFd)> {
    let addr = socket2::SockRef::from(&fd)
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("not an IP socket"))?;
    Ok((addr, fd.try_clone_to_owned()?))
}

impl Bound {
    /// Duplicates of the UDP, TCP and TLS sockets, for the source's next instance.
    pub fn hold(&self) -> std::io::Result<Held> {
        use std::os::fd::AsFd;
        let udp = match &self.udp {
            Some(fd) => {
                let (addr, dup) = dup_with_addr(fd.as_fd())?;
                Some((addr, dup, self.udp_drops.clone()))
            }
            None => None,
        };
        let tcp = self
            .tcp
            .as_ref()
            .map(|l| dup_with_addr(l.as_fd()))
            .transpose()?;
        let tls = self
            .tls
            .as_ref()
            .map(|(l, _)| dup_with_addr(l.as_fd()))
            .transpose()?;
        Ok(Held { udp, tcp, tls })
    }
}

impl Held {
    /// The held UDP socket if it is bound to `addr`, with what of its drops is counted.
    pub(super) fn take_udp(&mut self, addr: SocketAddr) -> Option<(OwnedFd, KernelDrops)> {
        match self.udp.take() {
            Some((a, fd, drops)) if a == addr => Some((fd, drops)),
            other => {
                self.udp = other;
                None
            }
        }
    }

    /// The held TCP listener if it is bound to `addr`.
    pub(super) fn take_tcp(&mut self, addr: SocketAddr) -> Option<std::net::TcpListener> {
        take_listener(&mut self.tcp, addr)
    }

    /// The held TLS listener if it is bound to `addr`.
    pub(super) fn take_tls(&mut self, addr: SocketAddr) -> Option<std::net::TcpListener> {
        take_listener(&mut self.tls, addr)
    }
}

fn take_listener(
    slot: &mut Option<(SocketAddr, OwnedFd)>,
    addr: SocketAddr,
) -> Option<std::net::TcpListener> {
    match slot.take() {
        Some((a, fd)) if a == addr => Some(std::net::TcpListener::from(fd)),
        other => {
            *slot = other;
            None
        }
    }
}

/// A handed-over UDP socket with the receive buffer the new config asks for.
pub(super) fn resize_udp(fd: OwnedFd, recv_buffer: usize, name: &str) -> OwnedFd {
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
