//! The `syslog` source: syslog messages over UDP, TCP, TLS and unix sockets, never rate-limited.
//!
//! - Datagrams (UDP, unix datagram like `/dev/log`) are received on a dedicated thread with
//!   `recvmmsg` and journaled byte-exact, one record per datagram; what the journal cannot take and
//!   what the kernel dropped are counted ([`datagram`]).
//! - Streams (TCP, TLS per RFC 5425, unix stream) accept RFC 6587 octet counting and LF framing,
//!   detected per message, with backpressure ([`stream`], [`framing`]).
//!
//! Messages longer than `max_message_bytes` are kept truncated and flagged. Parsing the syslog
//! header happens later, at the sinks (`parse::syslog`). This module touches its sockets and the
//! journal's append side, nothing else.

pub mod datagram;
pub mod framing;
pub mod handover;
pub mod stream;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::component::{ComponentError, SourceContext};
use crate::config::SyslogSourceConfig;
use crate::sources::listen::{self, Accept, Listener};
use datagram::DatagramKind;
use stream::{StreamLimits, StreamServer};

pub use framing::{Frame, FrameDecoder, FrameError};

/// Why the syslog source could not bind or run.
#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    #[error("invalid {what} address `{addr}`: {source}")]
    Address {
        what: &'static str,
        addr: String,
        #[source]
        source: std::net::AddrParseError,
    },
    /// A socket could not be bound or listened on.
    #[error("cannot listen on {what} {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// Setting up a socket (options, registration with the reactor).
    #[error("{what} {addr}: {source}")]
    Socket {
        what: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// A unix socket path that cannot be used.
    #[error("{0}")]
    UnixPath(String),
    /// `tls_cert`/`tls_key`/`tls_client_ca` that do not load.
    #[error("{0}")]
    Tls(String),
    #[error("cannot start thread: {0}")]
    Thread(#[source] std::io::Error),
    /// A receive loop's error while running.
    #[error("{0}")]
    Receive(String),
}

impl From<SyslogError> for ComponentError {
    fn from(e: SyslogError) -> ComponentError {
        match e {
            SyslogError::Bind { what, addr, source } => ComponentError::Bind {
                addr: format!("{what} {addr}"),
                source,
            },
            SyslogError::Address { .. } | SyslogError::Tls(_) | SyslogError::UnixPath(_) => {
                ComponentError::Setting(e.to_string())
            }
            SyslogError::Socket { .. } => ComponentError::Failed(e.to_string()),
            SyslogError::Thread(source) => ComponentError::Thread(source),
            SyslogError::Receive(m) => ComponentError::Failed(m),
        }
    }
}

/// The sockets of a syslog source, bound (before anything starts) but not yet served.
pub struct Bound {
    udp: Option<OwnedFd>,
    /// What of the UDP socket's kernel drops is counted (carried with the socket on handover).
    udp_drops: datagram::KernelDrops,
    unix: Option<OwnedFd>,
    tcp: Option<std::net::TcpListener>,
    tls: Option<(std::net::TcpListener, tokio_rustls::TlsAcceptor)>,
    unix_stream: Option<std::os::unix::net::UnixListener>,
}

/// Binds the configured sockets (and loads the TLS certificate) of source `name`; a socket
/// `held` (from the source's previous instance) bound to the same address is taken instead.
pub fn bind(
    config: &SyslogSourceConfig,
    name: &str,
    mut held: handover::Held,
) -> Result<Bound, SyslogError> {
    let recv_buffer = config.udp_receive_buffer.as_usize();
    let (udp, udp_drops) = match &config.udp {
        Some(addr) => match held.take_udp(parse_addr(addr, "udp")?) {
            Some((fd, drops)) => (Some(handover::resize_udp(fd, recv_buffer, name)), drops),
            None => (Some(bind_udp(addr, recv_buffer, name)?), Default::default()),
        },
        None => (None, Default::default()),
    };
    let unix = match &config.unix {
        Some(path) => Some(bind_unix_datagram(path, config.unix_mode)?),
        None => None,
    };
    let tcp = match config.tcp.as_deref() {
        Some(a) => Some(match held.take_stream(parse_addr(a, "tcp")?) {
            Some(l) => l,
            None => bind_tcp(a, "tcp", name)?,
        }),
        None => None,
    };
    let tls = match &config.tls {
        Some(addr) => {
            let acceptor = listen::tls_acceptor(config.tls_keys())
                .map_err(|e| SyslogError::Tls(e.to_string()))?
                .ok_or_else(|| SyslogError::Tls("`tls` needs `tls_cert` and `tls_key`".into()))?;
            let listener = match held.take_stream(parse_addr(addr, "tls")?) {
                Some(l) => l,
                None => bind_tcp(addr, "tls", name)?,
            };
            Some((listener, acceptor))
        }
        None => None,
    };
    let unix_stream = match &config.unix_stream {
        Some(path) => Some(bind_unix_stream(path, config.unix_mode)?),
        None => None,
    };
    Ok(Bound {
        udp,
        udp_drops,
        unix,
        tcp,
        tls,
        unix_stream,
    })
}

/// Serves the sockets `bind` bound.
pub fn start(
    bound: Bound,
    config: &SyslogSourceConfig,
    ctx: SourceContext,
    runtime: &tokio::runtime::Runtime,
) -> Result<tokio::task::JoinHandle<Result<(), ComponentError>>, SyslogError> {
    let max_message = config.max_message_bytes.as_usize().max(64);
    let mut threads = Vec::new();
    for (sock, kind, drops) in [
        (bound.udp, DatagramKind::Udp, bound.udp_drops),
        (bound.unix, DatagramKind::Unix, Default::default()),
    ] {
        if let Some(sock) = sock {
            threads.push(
                datagram::spawn(sock, kind, ctx.clone(), max_message, drops)
                    .map_err(SyslogError::Receive)?,
            );
        }
    }
    let _guard = runtime.enter();
    let limits = StreamLimits {
        max_message,
        idle_timeout: config.tcp_idle_timeout.0,
        connections: Arc::new(Semaphore::new(crate::limits::clamp_connections(
            &ctx.name,
            "max_connections",
            config.max_connections.max(1),
        ))),
    };
    let register = |what: &'static str, addr: Option<String>, source| SyslogError::Socket {
        what,
        addr: addr.unwrap_or_default(),
        source,
    };
    let tcp = bound
        .tcp
        .map(TcpListener::from_std)
        .transpose()
        .map_err(|e| register("tcp", config.tcp.clone(), e))?;
    let tls = match bound.tls {
        Some((l, acceptor)) => Some((
            TcpListener::from_std(l).map_err(|e| register("tls", config.tls.clone(), e))?,
            acceptor,
        )),
        None => None,
    };
    let unix_stream = bound
        .unix_stream
        .map(UnixListener::from_std)
        .transpose()
        .map_err(|e| {
            let path = config.unix_stream.as_ref().map(|p| p.display().to_string());
            register("unix_stream", path, e)
        })?;
    Ok(runtime.spawn(async move {
        let mut tasks = JoinSet::new();
        if let Some(l) = tcp {
            tasks.spawn(accept_streams(l, None, ctx.clone(), limits.clone()));
        }
        if let Some((l, acceptor)) = tls {
            tasks.spawn(accept_streams(
                l,
                Some(acceptor),
                ctx.clone(),
                limits.clone(),
            ));
        }
        if let Some(l) = unix_stream {
            tasks.spawn(accept_streams(l, None, ctx.clone(), limits.clone()));
        }
        for t in threads {
            tasks.spawn(async move {
                tokio::task::spawn_blocking(move || {
                    t.join()
                        .unwrap_or_else(|_| Err("receive thread panicked".into()))
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()))
            });
        }
        let mut result = Ok(());
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(ComponentError::from(SyslogError::Receive(e))),
                Err(_) => result = Err(ComponentError::Panicked),
            }
        }
        result
    }))
}

pub(crate) fn parse_addr(addr: &str, what: &'static str) -> Result<SocketAddr, SyslogError> {
    addr.parse().map_err(|source| SyslogError::Address {
        what,
        addr: addr.to_string(),
        source,
    })
}

/// Binds a TCP listener, or takes the one the service manager passed for `addr` (socket
/// activation: matched by address or by the name `<source>-<what>`).
pub(crate) fn bind_tcp(
    addr: &str,
    what: &'static str,
    source: &str,
) -> Result<std::net::TcpListener, SyslogError> {
    let sa = parse_addr(addr, what)?;
    let name = format!("{source}-{what}");
    if let Some(fd) = crate::host::inherited_socket(sa, &name, crate::host::SocketKind::Stream) {
        let listener = std::net::TcpListener::from(fd);
        listener
            .set_nonblocking(true)
            .map_err(|source| SyslogError::Socket {
                what,
                addr: addr.to_string(),
                source,
            })?;
        return Ok(listener);
    }
    let setup = |source| SyslogError::Socket {
        what,
        addr: addr.to_string(),
        source,
    };
    let bind = |source| SyslogError::Bind {
        what,
        addr: addr.to_string(),
        source,
    };
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(sa),
        socket2::Type::STREAM,
        None,
    )
    .map_err(setup)?;
    sock.set_reuse_address(true).map_err(setup)?;
    sock.bind(&sa.into()).map_err(bind)?;
    sock.listen(4096).map_err(bind)?;
    sock.set_nonblocking(true).map_err(setup)?;
    Ok(sock.into())
}

pub(crate) fn bind_udp(addr: &str, recv_buffer: usize, name: &str) -> Result<OwnedFd, SyslogError> {
    let sa = parse_addr(addr, "udp")?;
    let passed = crate::host::inherited_socket(
        sa,
        &format!("{name}-udp"),
        crate::host::SocketKind::Datagram,
    );
    if let Some(fd) = passed {
        return Ok(fd);
    }
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(sa),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(|source| SyslogError::Socket {
        what: "udp",
        addr: addr.to_string(),
        source,
    })?;
    set_udp_receive_buffer(&sock, recv_buffer, name, addr);
    sock.bind(&sa.into()).map_err(|source| SyslogError::Bind {
        what: "udp",
        addr: addr.to_string(),
        source,
    })?;
    Ok(sock.into())
}

/// Sets a UDP socket's receive buffer. Root may exceed net.core.rmem_max with SO_RCVBUFFORCE;
/// otherwise the kernel caps the request.
fn set_udp_receive_buffer(sock: &socket2::Socket, recv_buffer: usize, name: &str, addr: &str) {
    if !force_receive_buffer(sock, recv_buffer) {
        let _ = sock.set_recv_buffer_size(recv_buffer);
    }
    let effective = sock.recv_buffer_size().unwrap_or(0);
    tracing::info!(source = %name, udp = %addr, requested = recv_buffer, effective, "UDP receive buffer (the kernel reports twice the usable size).");
}

fn force_receive_buffer(sock: &socket2::Socket, size: usize) -> bool {
    use std::os::fd::AsRawFd;
    let v = size.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: setsockopt on a valid fd with an int option value.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// Removes a stale socket file left by a crash, refusing to touch a live socket or another file.
fn replace_stale_socket(path: &Path) -> Result<(), SyslogError> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(SyslogError::UnixPath(format!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        )));
    }
    let live = std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.connect(path))
        .is_ok()
        || std::os::unix::net::UnixStream::connect(path).is_ok();
    if live {
        return Err(SyslogError::UnixPath(format!(
            "{} is in use by a running process",
            path.display()
        )));
    }
    std::fs::remove_file(path).map_err(|e| {
        SyslogError::UnixPath(format!(
            "cannot remove stale socket {}: {e}",
            path.display()
        ))
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<(), SyslogError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| {
        SyslogError::UnixPath(format!(
            "cannot set mode {mode:o} on {}: {e}",
            path.display()
        ))
    })
}

fn bind_unix_datagram(path: &Path, mode: u32) -> Result<OwnedFd, SyslogError> {
    replace_stale_socket(path)?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let sock =
        std::os::unix::net::UnixDatagram::bind(path).map_err(|source| SyslogError::Bind {
            what: "unix",
            addr: path.display().to_string(),
            source,
        })?;
    set_mode(path, mode)?;
    let sock2 = socket2::Socket::from(OwnedFd::from(sock));
    let _ = force_receive_buffer(&sock2, 8 << 20);
    Ok(sock2.into())
}

fn bind_unix_stream(
    path: &Path,
    mode: u32,
) -> Result<std::os::unix::net::UnixListener, SyslogError> {
    replace_stale_socket(path)?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let l = std::os::unix::net::UnixListener::bind(path).map_err(|source| SyslogError::Bind {
        what: "unix_stream",
        addr: path.display().to_string(),
        source,
    })?;
    l.set_nonblocking(true)
        .map_err(|source| SyslogError::Socket {
            what: "unix_stream",
            addr: path.display().to_string(),
            source,
        })?;
    set_mode(path, mode)?;
    Ok(l)
}

/// Serves one stream listener (after a TLS handshake when `tls` is set) until shutdown.
async fn accept_streams<A: Accept>(
    socket: A,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ctx: SourceContext,
    limits: StreamLimits,
) -> Result<(), String> {
    let listener = Listener {
        ctx: ctx.clone(),
        protocol: "syslog",
        tls,
        slots: limits.connections.clone(),
    };
    listen::serve(socket, listener, StreamServer { ctx, limits }).await;
    Ok(())
}
