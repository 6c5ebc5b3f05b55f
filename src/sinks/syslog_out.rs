//! The `syslog` sink: every record as one syslog message to existing syslog infrastructure.
//!
//! Header: RFC 5424 (`<PRI>1 TIMESTAMP HOST APP - - - MSG`, timestamp in UTC with
//! milliseconds) or RFC 3164 (`<PRI>Mmm dd hh:mm:ss HOST TAG: MSG`, UTC). PRI is `facility` with
//! the record's own severity when its line starts with a `<PRI>` (else 6, informational); HOST
//! is the host that first received the record; APP/TAG is `app_name` or the record's category,
//! cut to printable ASCII. MSG is the line as it came (`message = "raw"`) or the file sink's
//! GELF JSON (`"gelf"`, the same `EncodePool` encoding).
//!
//! Transport: `udp://` (one datagram per message; one the network cannot carry, above 65,507
//! bytes, is passed over and counted in `quill_sink_dropped_total`), `tcp://` or `tls://` with
//! octet counting (RFC 6587 `LEN SP MSG`, default) or LF framing. Over TCP the cursor trails
//! what was written by `resend_window` (see the gelf sink's TCP); a slow receiver holds the sink
//! (backpressure: the cursor waits, the journal keeps the records), one silent past `timeout` or
//! a reset fails the attempt and the supervisor reconnects from the cursor (at least once across
//! reconnects).
//!
//! Touches its socket and (through [`super::deliver`]) its cursor.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use super::deliver::{Delivery, Encoder, Transport};
use super::encode_pool::{EncodePool, EncodedChunk};
use super::gelf_out::{StreamOut, message};
use super::net_out::{self, OutError, TlsClient};
use crate::accounting::stream::{JoinStage, Joined};
use crate::component::{ComponentError, SinkContext};
use crate::config::{
    OutScheme, SyslogFraming, SyslogMessage, SyslogProtocol, SyslogSinkConfig, default_workers,
};
use crate::record::Record;
use crate::sinks::route::{Route, syslog_severity};
use crate::telemetry::SinkStats;

/// Largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;

/// Starts the sink thread (it connects there; see the gelf sink).
pub fn spawn(
    config: SyslogSinkConfig,
    ctx: SinkContext,
) -> Result<JoinHandle<Result<(), ComponentError>>, ComponentError> {
    let target = config.target().map_err(ComponentError::Setting)?;
    let tls =
        TlsClient::new(&target, &config.tls).map_err(|e| ComponentError::Setting(e.to_string()))?;
    let pool = match config.message {
        SyslogMessage::Raw => None,
        SyslogMessage::Gelf => {
            let workers = config.workers.unwrap_or_else(default_workers);
            Some(
                EncodePool::new(&ctx.name, workers, ctx.parsers.clone())
                    .map_err(ComponentError::Thread)?,
            )
        }
    };
    let delivery = Delivery {
        route: Route::new(&config.route),
        join: ctx
            .join
            .as_ref()
            .filter(|_| pool.is_some())
            .map(|j| JoinStage::new(j, ctx.parsers.clone())),
        cursor: ctx.cursor,
        stats: ctx.stats,
        shutdown: ctx.shutdown,
    };
    let stream = target.scheme != OutScheme::Udp;
    let mut encoder = SyslogEncoder {
        pool,
        format: Format {
            protocol: config.protocol,
            framing: stream.then_some(config.framing),
            facility: config.facility,
            app_name: config.app_name.clone(),
        },
        spare: Vec::new(),
    };
    std::thread::Builder::new()
        .name(format!("sink-{}", ctx.name))
        .spawn(move || {
            let failed = |e: OutError| ComponentError::Failed(format!("syslog sink: {e}"));
            let mut transport: Box<dyn Transport> = if stream {
                Box::new(StreamOut::new(
                    &target.addr,
                    net_out::connect(&target.addr, tls.as_ref(), config.timeout.0)
                        .map_err(failed)?,
                    config.resend_window.0,
                ))
            } else {
                let (sock, to) = net_out::udp(&target.addr).map_err(failed)?;
                Box::new(UdpOut {
                    addr: target.addr.clone(),
                    sock,
                    to,
                })
            };
            delivery
                .run(&mut encoder, transport.as_mut())
                .map_err(failed)
        })
        .map_err(ComponentError::Thread)
}

/// How a record becomes a syslog frame.
pub struct Format {
    pub protocol: SyslogProtocol,
    /// `None` for datagrams (no framing).
    pub framing: Option<SyslogFraming>,
    pub facility: u8,
    pub app_name: Option<String>,
}

impl Format {
    /// Appends the frame of `record` with `msg` as its MSG to `out`.
    pub fn frame(&self, record: &Record, msg: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        if self.framing == Some(SyslogFraming::OctetCounting) {
            // Room for the length, written once the message is.
            out.extend_from_slice(&[b' '; 11]);
        }
        let header_at = out.len();
        let severity = syslog_severity(&record.raw).map_or(6, |s| s.0);
        let pri = u16::from(self.facility) * 8 + u16::from(severity);
        out.push(b'<');
        out.extend_from_slice(itoa::Buffer::new().format(pri).as_bytes());
        out.push(b'>');
        let ms = record.received_at.as_millis();
        let civil = jiff::tz::Offset::UTC.to_datetime(
            jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        );
        let app = self.app_name.as_deref().unwrap_or(&record.origin.category);
        match self.protocol {
            SyslogProtocol::Rfc5424 => {
                out.extend_from_slice(
                    format!(
                        "1 {:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z ",
                        civil.year(),
                        civil.month(),
                        civil.day(),
                        civil.hour(),
                        civil.minute(),
                        civil.second(),
                        ms.rem_euclid(1000)
                    )
                    .as_bytes(),
                );
                header_field(&record.origin.host, 255, out);
                out.push(b' ');
                header_field(app, 48, out);
                out.extend_from_slice(b" - - - ");
            }
            SyslogProtocol::Rfc3164 => {
                const MONTHS: [&str; 12] = [
                    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                    "Dec",
                ];
                let month = MONTHS[(civil.month() as usize).saturating_sub(1) % 12];
                out.extend_from_slice(
                    format!(
                        "{month} {:>2} {:02}:{:02}:{:02} ",
                        civil.day(),
                        civil.hour(),
                        civil.minute(),
                        civil.second()
                    )
                    .as_bytes(),
                );
                header_field(&record.origin.host, 255, out);
                out.push(b' ');
                header_field(app, 32, out);
                out.extend_from_slice(b": ");
            }
        }
        out.extend_from_slice(msg);
        match self.framing {
            Some(SyslogFraming::OctetCounting) => {
                let len = out.len() - header_at;
                let digits = itoa::Buffer::new().format(len).as_bytes().to_vec();
                // `LEN SP` right before the header: drop the unused room in front.
                let prefix_at = header_at - digits.len() - 1;
                out[prefix_at..header_at - 1].copy_from_slice(&digits);
                out[header_at - 1] = b' ';
                out.drain(start..prefix_at);
            }
            Some(SyslogFraming::Lf) => out.push(b'\n'),
            None => {}
        }
    }
}

/// A header field: printable ASCII only (anything else becomes `_`), at most `max` bytes, `-`
/// when empty.
fn header_field(value: &str, max: usize, out: &mut Vec<u8>) {
    if value.is_empty() {
        out.push(b'-');
        return;
    }
    out.extend(
        value
            .bytes()
            .take(max)
            .map(|b| if (33..=126).contains(&b) { b } else { b'_' }),
    );
}

/// Records → syslog frames, one chunk per batch.
struct SyslogEncoder {
    /// The GELF encoding, with `message = "gelf"`.
    pool: Option<EncodePool>,
    format: Format,
    spare: Vec<EncodedChunk>,
}

impl Encoder for SyslogEncoder {
    fn encode(&mut self, batch: Vec<Joined>) -> (Vec<Joined>, Vec<EncodedChunk>) {
        let mut out = self.spare.pop().unwrap_or_default();
        out.first = 0;
        out.buf.clear();
        out.ends.clear();
        let batch = match self.pool.as_mut() {
            None => {
                for j in &batch {
                    let r = &j.entry.record;
                    self.format.frame(r, &r.raw, &mut out.buf);
                    out.ends.push(out.buf.len());
                }
                batch
            }
            Some(pool) => {
                let (batch, gelf) = pool.encode(batch);
                for c in &gelf {
                    for (i, j) in batch[c.first..][..c.ends.len()].iter().enumerate() {
                        self.format
                            .frame(&j.entry.record, message(c, i), &mut out.buf);
                        out.ends.push(out.buf.len());
                    }
                }
                pool.recycle(gelf);
                batch
            }
        };
        (batch, vec![out])
    }

    fn recycle(&mut self, chunks: Vec<EncodedChunk>) {
        for c in chunks {
            if c.buf.capacity() <= 8 << 20 && self.spare.is_empty() {
                self.spare.push(c);
            }
        }
    }
}

/// One datagram per message.
struct UdpOut {
    addr: String,
    sock: UdpSocket,
    to: SocketAddr,
}

impl Transport for UdpOut {
    fn send(
        &mut self,
        chunks: &[EncodedChunk],
        delivered: &mut usize,
        stats: &SinkStats,
    ) -> Result<(), OutError> {
        for c in chunks {
            for i in 0..c.ends.len() {
                let datagram = &c.buf[c.line_range(i)];
                if datagram.len() > MAX_DATAGRAM {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        bytes = datagram.len(),
                        "Syslog message above the UDP limit: dropped (counted)."
                    );
                } else {
                    self.sock
                        .send_to(datagram, self.to)
                        .map_err(|e| OutError::io(&self.addr, e))?;
                }
                *delivered += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Format as RecordFormat, Origin, Timestamp};

    fn record(raw: &str) -> Record {
        let mut r = Record::new(
            Origin::new("src", "web", RecordFormat::Raw, "host one"),
            bytes::Bytes::from(raw.to_string()),
        );
        r.received_at = Timestamp(1_764_773_417_123_000_000); // 2025-12-03T14:50:17.123Z
        r
    }

    fn frame(protocol: SyslogProtocol, framing: Option<SyslogFraming>, raw: &str) -> String {
        let f = Format {
            protocol,
            framing,
            facility: 1,
            app_name: None,
        };
        let mut out = b"prev".to_vec();
        let r = record(raw);
        f.frame(&r, &r.raw, &mut out);
        String::from_utf8(out[4..].to_vec()).unwrap()
    }

    #[test]
    fn frames() {
        use SyslogFraming::*;
        use SyslogProtocol::*;
        assert_eq!(
            frame(Rfc5424, None, "GET / 200"),
            "<14>1 2025-12-03T14:50:17.123Z host_one web - - - GET / 200"
        );
        let msg = "<11>1 2025-12-03T14:50:17.123Z host_one web - - - <3>boom\nline two";
        assert_eq!(
            frame(Rfc5424, Some(OctetCounting), "<3>boom\nline two"),
            format!("{} {msg}", msg.len())
        );
        assert_eq!(
            frame(Rfc3164, Some(Lf), "x"),
            "<14>Dec  3 14:50:17 host_one web: x\n"
        );
        let long = "y".repeat(100_000);
        let f = frame(Rfc5424, Some(OctetCounting), &long);
        let (len, rest) = f.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rest.len());
    }
}
