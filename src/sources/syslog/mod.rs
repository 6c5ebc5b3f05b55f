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
pub mod stream;
pub mod tls;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::component::SourceContext;
use crate::config::SyslogSourceConfig;
use datagram::DatagramKind;
use stream::{RefusalLog, StreamLimits};

pub use framing::{Frame, FrameDecoder, FrameError};

/// A TLS client that has not finished its handshake by then is disconnected.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Binds the configured sockets and starts the source.
pub fn start(
    config: SyslogSourceConfig,
    ctx: SourceContext,
    runtime: &tokio::runtime::Runtime,
) -> Result<tokio::task::JoinHandle<Result<(), String>>, String> {
    let max_message = config.max_message_bytes.as_usize().max(64);
    let mut threads = Vec::new();
    if let Some(addr) = &config.udp {
        let sock = bind_udp(addr, config.udp_receive_buffer.as_usize(), &ctx.name)?;
        threads.push(datagram::spawn(
            sock,
            DatagramKind::Udp,
            ctx.clone(),
            max_message,
        )?);
    }
    if let Some(path) = &config.unix {
        let sock = bind_unix_datagram(path, config.unix_mode)?;
        threads.push(datagram::spawn(
            sock,
            DatagramKind::Unix,
            ctx.clone(),
            max_message,
        )?);
    }
    let _guard = runtime.enter();
    let limits = StreamLimits {
        max_message,
        idle_timeout: config.tcp_idle_timeout.0,
        connections: Arc::new(Semaphore::new(config.max_connections.max(1))),
        refused: Arc::new(AtomicU64::new(0)),
    };
    let tcp = config
        .tcp
        .as_deref()
        .map(|a| bind_tcp(a, "tcp"))
        .transpose()?;
    let tls = match &config.tls {
        Some(addr) => {
            let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
                return Err("`tls` needs `tls_cert` and `tls_key`".into());
            };
            let acceptor = tls::acceptor(cert, key, config.tls_client_ca.as_deref())?;
            Some((bind_tcp(addr, "tls")?, acceptor))
        }
        None => None,
    };
    let unix_stream = match &config.unix_stream {
        Some(path) => Some(bind_unix_stream(path, config.unix_mode)?),
        None => None,
    };
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
                Ok(Err(e)) => result = Err(e),
                Err(e) => result = Err(format!("syslog task failed: {e}")),
            }
        }
        result
    }))
}

pub(crate) fn bind_tcp(addr: &str, what: &str) -> Result<TcpListener, String> {
    let sa: SocketAddr = addr
        .parse()
        .map_err(|e| format!("invalid {what} address `{addr}`: {e}"))?;
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(sa),
        socket2::Type::STREAM,
        None,
    )
    .map_err(|e| format!("{what} socket: {e}"))?;
    sock.set_reuse_address(true)
        .map_err(|e| format!("{what} {addr}: {e}"))?;
    sock.bind(&sa.into())
        .map_err(|e| format!("cannot listen on {what} {addr}: {e}"))?;
    sock.listen(4096)
        .map_err(|e| format!("cannot listen on {what} {addr}: {e}"))?;
    sock.set_nonblocking(true)
        .map_err(|e| format!("{what} {addr}: {e}"))?;
    TcpListener::from_std(sock.into()).map_err(|e| format!("{what} {addr}: {e}"))
}

pub(crate) fn bind_udp(addr: &str, recv_buffer: usize, name: &str) -> Result<OwnedFd, String> {
    let sa: SocketAddr = addr
        .parse()
        .map_err(|e| format!("invalid udp address `{addr}`: {e}"))?;
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(sa),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(|e| format!("udp socket: {e}"))?;
    // Root may exceed net.core.rmem_max with SO_RCVBUFFORCE; otherwise the kernel caps the request.
    if !force_receive_buffer(&sock, recv_buffer) {
        let _ = sock.set_recv_buffer_size(recv_buffer);
    }
    let effective = sock.recv_buffer_size().unwrap_or(0);
    tracing::info!(source = %name, udp = %addr, requested = recv_buffer, effective, "UDP receive buffer (the kernel reports twice the usable size).");
    sock.bind(&sa.into())
        .map_err(|e| format!("cannot bind udp {addr}: {e}"))?;
    Ok(sock.into())
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
fn replace_stale_socket(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(format!(
            "{} exists and is not a socket; refusing to replace it",
            path.display()
        ));
    }
    let live = std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.connect(path))
        .is_ok()
        || std::os::unix::net::UnixStream::connect(path).is_ok();
    if live {
        return Err(format!("{} is in use by a running process", path.display()));
    }
    std::fs::remove_file(path)
        .map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set mode {mode:o} on {}: {e}", path.display()))
}

fn bind_unix_datagram(path: &Path, mode: u32) -> Result<OwnedFd, String> {
    replace_stale_socket(path)?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let sock = std::os::unix::net::UnixDatagram::bind(path)
        .map_err(|e| format!("cannot bind unix socket {}: {e}", path.display()))?;
    set_mode(path, mode)?;
    let sock2 = socket2::Socket::from(OwnedFd::from(sock));
    let _ = force_receive_buffer(&sock2, 8 << 20);
    Ok(sock2.into())
}

fn bind_unix_stream(path: &Path, mode: u32) -> Result<UnixListener, String> {
    replace_stale_socket(path)?;
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let l = UnixListener::bind(path)
        .map_err(|e| format!("cannot bind unix stream socket {}: {e}", path.display()))?;
    set_mode(path, mode)?;
    Ok(l)
}

/// A listening stream socket: TCP or unix.
trait StreamListener: Send + Sync + 'static {
    type Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    /// The next connection and a description of its peer for log lines.
    fn accept_peer(
        &self,
    ) -> impl std::future::Future<Output = std::io::Result<(Self::Stream, String)>> + Send;
}

impl StreamListener for TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_peer(&self) -> std::io::Result<(Self::Stream, String)> {
        let (stream, peer) = self.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok((stream, peer.to_string()))
    }
}

impl StreamListener for UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_peer(&self) -> std::io::Result<(Self::Stream, String)> {
        let (stream, _) = self.accept().await?;
        let peer = match stream.peer_cred() {
            Ok(c) => format!("unix pid={} uid={}", c.pid().unwrap_or(0), c.uid()),
            Err(_) => "unix peer".to_string(),
        };
        Ok((stream, peer))
    }
}

/// Accepts connections until shutdown, each served by its own task (after a TLS handshake when
/// `tls` is set), at most `limits.connections` at once.
async fn accept_streams<L: StreamListener>(
    listener: L,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ctx: SourceContext,
    limits: StreamLimits,
) -> Result<(), String> {
    let mut shutdown = ctx.shutdown.clone();
    let mut connections = JoinSet::new();
    let mut refusals = RefusalLog::new();
    loop {
        tokio::select! {
            _ = shutdown.triggered() => break,
            accepted = listener.accept_peer() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = limits.connections.clone().try_acquire_owned() else {
                        refusals.refused(&ctx, &limits, &peer);
                        continue;
                    };
                    let (ctx, limits, tls) = (ctx.clone(), limits.clone(), tls.clone());
                    connections.spawn(async move {
                        let result = match tls {
                            None => stream::serve(stream, &peer, &ctx, &limits).await,
                            Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => stream::serve(s, &peer, &ctx, &limits).await,
                                Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
                                Err(_) => Err("TLS handshake timed out".into()),
                            },
                        };
                        if let Err(e) = result {
                            tracing::warn!(source = %ctx.name, %peer, "Closed syslog connection: {e}.");
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(source = %ctx.name, "Accept failed: {e}.");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drain(connections).await;
    Ok(())
}

/// Lets connections journal what they already read, then stops the rest.
async fn drain(mut connections: JoinSet<()>) {
    let all = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(std::time::Duration::from_secs(2), all)
        .await
        .is_err()
    {
        connections.abort_all();
    }
}
