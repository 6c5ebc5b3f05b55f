//! Outgoing connections of the network sinks (`gelf`, `syslog`): a blocking TCP stream, with TLS
//! (rustls, the forward sink's client config) when the address says so, connect/read/write
//! timeouts on every socket, and the sinks' typed error.
//!
//! Blocking I/O is right here: each sink runs on its own thread (no async runtime to block).
//! Touches only the sockets it opens.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use thiserror::Error;

use crate::config::{OutTarget, OutTls};
use crate::transport::tls::{self, TlsError};

/// Why a network sink's delivery failed (the supervisor restarts it from its cursor).
#[derive(Debug, Error)]
pub enum OutError {
    #[error("cannot resolve `{0}`")]
    Resolve(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("{addr}: {message}")]
    Protocol { addr: String, message: String },
    #[error("journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
}

impl OutError {
    pub fn io(addr: &str, source: std::io::Error) -> OutError {
        OutError::Io {
            addr: addr.to_string(),
            source,
        }
    }

    pub fn protocol(addr: &str, message: impl Into<String>) -> OutError {
        OutError::Protocol {
            addr: addr.to_string(),
            message: message.into(),
        }
    }
}

/// A TLS client setting, built once when the sink starts.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl TlsClient {
    /// The client of `tls` for `target`, or `None` when the target does not speak TLS.
    pub fn new(target: &OutTarget, tls: &OutTls) -> Result<Option<TlsClient>, TlsError> {
        let Some(ca) = tls.tls_ca.as_deref().filter(|_| target.scheme.is_tls()) else {
            return Ok(None);
        };
        let client = match (&tls.tls_cert, &tls.tls_key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            _ => None,
        };
        Ok(Some(TlsClient {
            config: tls::client_config(ca, client)?,
            name: tls::server_name(tls.tls_server_name.as_deref(), &target.addr)?,
        }))
    }
}

/// A connected stream, plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

impl Stream {
    /// Bytes written to this connection that the receiver's TCP has not acknowledged yet (the
    /// kernel's send queue, `TIOCOUTQ`); `None` when the kernel does not say.
    pub fn send_queue(&self) -> Option<u64> {
        use std::os::fd::AsRawFd;
        let fd = match self {
            Stream::Plain(s) => s.as_raw_fd(),
            Stream::Tls(s) => s.sock.as_raw_fd(),
        };
        let mut queued: libc::c_int = 0;
        // SAFETY: TIOCOUTQ writes one c_int through the pointer, to a socket this stream owns.
        let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) };
        (rc == 0).then(|| u64::try_from(queued).unwrap_or(0))
    }
}

/// The addresses `addr` (`HOST:PORT`) resolves to.
pub fn resolve(addr: &str) -> Result<Vec<SocketAddr>, OutError> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|_| OutError::Resolve(addr.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(OutError::Resolve(addr.to_string()));
    }
    Ok(addrs)
}

/// Connects to `addr` (the first address that answers), with `timeout` on connect, every read
/// and every write; with `tls`, completes the handshake before returning.
pub fn connect(addr: &str, tls: Option<&TlsClient>, timeout: Duration) -> Result<Stream, OutError> {
    let mut last = None;
    let mut stream = None;
    for a in resolve(addr)? {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(sock) = stream else {
        return Err(OutError::Connect {
            addr: addr.to_string(),
            source: last.unwrap_or_else(|| std::io::Error::other("no address")),
        });
    };
    let io = |e| OutError::io(addr, e);
    sock.set_nodelay(true).map_err(io)?;
    sock.set_read_timeout(Some(timeout)).map_err(io)?;
    sock.set_write_timeout(Some(timeout)).map_err(io)?;
    let Some(tls) = tls else {
        return Ok(Stream::Plain(sock));
    };
    let conn = rustls::ClientConnection::new(tls.config.clone(), tls.name.clone())
        .map_err(|e| OutError::protocol(addr, format!("TLS: {e}")))?;
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).map_err(io)?;
    }
    Ok(Stream::Tls(Box::new(s)))
}

/// An unconnected UDP socket for datagrams to `addr` (the first address it resolves to).
/// Unconnected: an ICMP "port unreachable" from a receiver that is down fails no later send.
pub fn udp(addr: &str) -> Result<(UdpSocket, SocketAddr), OutError> {
    let to = resolve(addr)?[0];
    let local: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0"
            .parse()
            .map_err(|_| OutError::Resolve(addr.into()))?
    } else {
        "[::]:0"
            .parse()
            .map_err(|_| OutError::Resolve(addr.into()))?
    };
    let sock = UdpSocket::bind(local).map_err(|e| OutError::io(addr, e))?;
    Ok((sock, to))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Duration;

    #[test]
    fn send_queue_drains_once_the_peer_reads() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut s = super::connect(&addr, None, Duration::from_secs(5)).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        s.write_all(&[7u8; 4096]).unwrap();
        s.flush().unwrap();
        let mut got = vec![0u8; 4096];
        peer.read_exact(&mut got).unwrap();
        let drained = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(5));
            s.send_queue() == Some(0)
        });
        assert!(drained, "send queue {:?}", s.send_queue());
    }
}
