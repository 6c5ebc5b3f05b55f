//! A sink to a Quill agent (or any syslog receiver) over TCP, a unix stream socket or a unix
//! datagram socket. Messages are RFC 5424 syslog with the GELF JSON as MSG (or bare GELF
//! lines); stream framing is RFC 6587 octet counting or LF. Runs on the log worker thread:
//! connects lazily, batches stream writes until the worker's flush, and after a failure drops
//! the connection, reports the error (the worker counts it) and reconnects at most once per
//! [`AgentSink::retry_after`].

use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::Sink;
use crate::logging::Entry;

/// Where the agent listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAddr {
    /// `host:port`.
    Tcp(String),
    /// A unix stream socket path.
    UnixStream(PathBuf),
    /// A unix datagram socket path (like `/dev/log`): one message per datagram, no framing.
    UnixDatagram(PathBuf),
}

/// How messages are delimited on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Framing {
    /// RFC 6587 octet counting: `LEN SP MSG`. Safe for any message content.
    #[default]
    OctetCounting,
    /// RFC 6587 non-transparent framing: `MSG LF` (GELF JSON never contains a raw LF).
    Newline,
}

/// What each message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Payload {
    /// RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID - GELF-JSON`, MSGID being the facility
    /// (truncated to 32 characters).
    #[default]
    Syslog5424,
    /// The GELF JSON alone.
    Gelf,
}

enum Connection {
    Tcp(TcpStream),
    Unix(UnixStream),
    Datagram(UnixDatagram),
}

/// Sends entries to a Quill agent's syslog source.
///
/// ```no_run
/// use quill::logging::sinks::{AgentAddr, AgentSink, Framing};
/// let sink = AgentSink::new(AgentAddr::Tcp("127.0.0.1:6514".into()))
///     .framing(Framing::OctetCounting)
///     .app_name("billing");
/// # drop(sink);
/// ```
pub struct AgentSink {
    addr: AgentAddr,
    framing: Framing,
    payload: Payload,
    syslog_facility: u8,
    hostname: String,
    app_name: String,
    procid: String,
    timeout: Duration,
    retry_after: Duration,
    connection: Option<Connection>,
    next_attempt: Option<Instant>,
    message: Vec<u8>,
    pending: Vec<u8>,
}

/// Stream bytes buffered before writing without waiting for the flush.
const MAX_PENDING: usize = 256 * 1024;

impl AgentSink {
    /// A sink to `addr` with RFC 5424 payloads, octet counting, syslog facility `user` (1), the
    /// machine's host name and the executable's name as APP-NAME.
    pub fn new(addr: AgentAddr) -> AgentSink {
        let app_name = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "-".to_owned());
        AgentSink {
            addr,
            framing: Framing::default(),
            payload: Payload::default(),
            syslog_facility: 1,
            hostname: crate::logging::worker::default_host(),
            app_name,
            procid: std::process::id().to_string(),
            timeout: Duration::from_secs(5),
            retry_after: Duration::from_secs(1),
            connection: None,
            next_attempt: None,
            message: Vec::with_capacity(1024),
            pending: Vec::with_capacity(MAX_PENDING),
        }
    }

    /// Stream framing (ignored for datagrams).
    pub fn framing(mut self, framing: Framing) -> AgentSink {
        self.framing = framing;
        self
    }

    /// Message payload.
    pub fn payload(mut self, payload: Payload) -> AgentSink {
        self.payload = payload;
        self
    }

    /// Syslog facility number (0-23; `local0` is 16). Values above 23 are clamped.
    pub fn syslog_facility(mut self, facility: u8) -> AgentSink {
        self.syslog_facility = facility.min(23);
        self
    }

    /// HOSTNAME of the syslog header.
    pub fn hostname(mut self, hostname: impl Into<String>) -> AgentSink {
        self.hostname = hostname.into();
        self
    }

    /// APP-NAME of the syslog header.
    pub fn app_name(mut self, app_name: impl Into<String>) -> AgentSink {
        self.app_name = app_name.into();
        self
    }

    /// Connect and write timeout (default 5 s): a stuck agent stalls the worker at most this
    /// long per batch, and then the queue's [`WhenFull`](crate::logging::WhenFull) policy applies.
    pub fn timeout(mut self, timeout: Duration) -> AgentSink {
        self.timeout = timeout;
        self
    }

    /// Minimum time between connection attempts after a failure (default 1 s).
    pub fn retry_after(mut self, delay: Duration) -> AgentSink {
        self.retry_after = delay;
        self
    }

    fn connect(&mut self) -> io::Result<()> {
        if self.connection.is_none() {
            if let Some(at) = self.next_attempt {
                if Instant::now() < at {
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        "agent unreachable; waiting before reconnecting",
                    ));
                }
            }
            match self.open() {
                Ok(c) => {
                    self.next_attempt = None;
                    self.connection = Some(c);
                }
                Err(e) => {
                    self.next_attempt = Some(Instant::now() + self.retry_after);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn open(&self) -> io::Result<Connection> {
        let timeout = Some(self.timeout);
        Ok(match &self.addr {
            AgentAddr::Tcp(addr) => {
                let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address");
                let mut stream = None;
                for a in addr.to_socket_addrs()? {
                    match TcpStream::connect_timeout(&a, self.timeout) {
                        Ok(s) => {
                            stream = Some(s);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                let stream = stream.ok_or(last)?;
                stream.set_write_timeout(timeout)?;
                stream.set_nodelay(true)?;
                Connection::Tcp(stream)
            }
            AgentAddr::UnixStream(path) => {
                let stream = UnixStream::connect(path)?;
                stream.set_write_timeout(timeout)?;
                Connection::Unix(stream)
            }
            AgentAddr::UnixDatagram(path) => {
                let socket = UnixDatagram::unbound()?;
                socket.connect(path)?;
                socket.set_write_timeout(timeout)?;
                Connection::Datagram(socket)
            }
        })
    }

    fn build_message(&mut self, entry: &Entry, gelf: &[u8]) {
        let m = &mut self.message;
        m.clear();
        if self.payload == Payload::Syslog5424 {
            let pri = u16::from(self.syslog_facility) * 8 + u16::from(entry.level.as_u8());
            m.push(b'<');
            m.extend_from_slice(itoa::Buffer::new().format(pri).as_bytes());
            m.extend_from_slice(b">1 ");
            let millis = entry
                .time
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            write_rfc3339_millis(m, millis);
            m.push(b' ');
            push_header_field(m, self.hostname.as_bytes(), 255);
            m.push(b' ');
            push_header_field(m, self.app_name.as_bytes(), 48);
            m.push(b' ');
            push_header_field(m, self.procid.as_bytes(), 128);
            m.push(b' ');
            push_header_field(m, entry.facility().as_bytes(), 32);
            m.extend_from_slice(b" - ");
        }
        m.extend_from_slice(gelf);
    }

    fn write_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self.connect().and_then(|()| match &mut self.connection {
            Some(Connection::Tcp(s)) => s.write_all(&self.pending),
            Some(Connection::Unix(s)) => s.write_all(&self.pending),
            Some(Connection::Datagram(_)) | None => Ok(()),
        });
        self.pending.clear();
        if result.is_err() {
            self.connection = None;
        }
        result
    }
}

impl Sink for AgentSink {
    fn write(&mut self, entry: &Entry, gelf: &[u8]) -> io::Result<()> {
        self.build_message(entry, gelf);
        if let AgentAddr::UnixDatagram(_) = self.addr {
            self.connect()?;
            let result = match &self.connection {
                Some(Connection::Datagram(s)) => s.send(&self.message).map(|_| ()),
                _ => Ok(()),
            };
            if result.is_err() {
                self.connection = None;
            }
            return result;
        }
        match self.framing {
            Framing::OctetCounting => {
                self.pending
                    .extend_from_slice(itoa::Buffer::new().format(self.message.len()).as_bytes());
                self.pending.push(b' ');
                self.pending.extend_from_slice(&self.message);
            }
            Framing::Newline => {
                self.pending.extend_from_slice(&self.message);
                self.pending.push(b'\n');
            }
        }
        if self.pending.len() >= MAX_PENDING {
            self.write_pending()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_pending()
    }
}

/// Printable US-ASCII without spaces, at most `max` bytes; `-` if empty (RFC 5424 header
/// fields).
fn push_header_field(out: &mut Vec<u8>, value: &[u8], max: usize) {
    let start = out.len();
    out.extend(
        value
            .iter()
            .take(max)
            .map(|&b| if (33..=126).contains(&b) { b } else { b'_' }),
    );
    if out.len() == start {
        out.push(b'-');
    }
}

/// `2026-11-23T02:42:40.123Z`.
pub(crate) fn write_rfc3339_millis(out: &mut Vec<u8>, millis: i64) {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, mo, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        let mut out = Vec::new();
        write_rfc3339_millis(&mut out, 1_700_000_000_123);
        assert_eq!(out, b"2023-11-14T22:13:20.123Z");
        out.clear();
        write_rfc3339_millis(&mut out, 951_782_400_000); // leap day
        assert_eq!(out, b"2000-02-29T00:00:00.000Z");
        out.clear();
        write_rfc3339_millis(&mut out, 0);
        assert_eq!(out, b"1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn header_fields_are_printable() {
        let mut out = Vec::new();
        push_header_field(&mut out, b"a b\x01c", 3);
        assert_eq!(out, b"a_b");
        out.clear();
        push_header_field(&mut out, b"", 3);
        assert_eq!(out, b"-");
    }
}
