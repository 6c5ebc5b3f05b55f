//! `quill send`: ship lines from files or stdin to a forward source, like Scribe's `scribe_pipe`.
//!
//! Lines become records of `--category` (origin source `send`, this host) and travel with the
//! forward protocol ([`crate::transport::shipper`]): compressed batches, a window in flight,
//! reconnects that resend only what was not acknowledged (the aggregator drops replays). It exits 0
//! once every line is durable on the aggregator. Lines longer than 1 MiB are sent as flagged
//! pieces, never dropped. Reading runs on its own thread; this touches only its inputs and socket.

use std::collections::VecDeque;
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::config::{CATEGORY_RULE, is_safe_category};
use crate::journal::Entry;
use crate::lines::{BoundedLines, Cut, Overlong};
use crate::record::{Format, Origin, Position, Record, RecordFlags, Timestamp};
use crate::transport::shipper::{BatchSource, ClientTls, ShipStats, ShipperConfig, ship};
use crate::transport::{self, tls};

/// Longest line sent as one record; longer lines become flagged pieces.
const MAX_LINE: usize = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The forward source, HOST:PORT (repeat for failover).
    #[arg(long, value_name = "HOST:PORT", required = true)]
    pub to: Vec<String>,
    /// Category of every line.
    #[arg(long, default_value = "default")]
    pub category: String,
    /// Parsing hint for the aggregator: auto, haproxy, apache, syslog, json, raw, gelf.
    #[arg(long, default_value = "auto")]
    pub format: Format,
    /// Shared token of the forward source.
    #[arg(long, env = "QUILL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File whose first line is the shared token.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// CA (PEM) to verify the aggregator with; turns TLS on.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Name to verify the aggregator's certificate against (default: the host of --to).
    #[arg(long)]
    pub tls_server_name: Option<String>,
    /// Id presented to the aggregator (default: `send.<hostname>`); give concurrent senders of
    /// one host their own ids so each keeps its replay protection.
    #[arg(long)]
    pub agent_id: Option<String>,
    /// Give up after this many failed connections in a row.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// `forward` (Quill's forward protocol, default) or `scribe` (Scribe's Thrift `Log()`, to a
    /// Scribe server or Quill's `scribe` source; only `--to`, `--category` and `--retries` apply).
    #[arg(long, value_enum, default_value = "forward")]
    pub protocol: SendProtocol,
    /// Files to send (stdin if none).
    pub files: Vec<PathBuf>,
}

/// The protocol `quill send` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SendProtocol {
    Forward,
    Scribe,
}

pub fn run(args: SendArgs) -> anyhow::Result<u8> {
    if !is_safe_category(&args.category) {
        bail!("invalid category `{}`: {CATEGORY_RULE}", args.category);
    }
    let hostname = gethostname::gethostname().to_string_lossy().into_owned();
    let agent_id = match &args.agent_id {
        Some(id) if transport::is_valid_agent_id(id) => id.clone(),
        Some(id) => bail!("invalid agent id `{id}`"),
        None => format!("send.{}", transport::agent_id_from_host(&hostname))
            .chars()
            .take(128)
            .collect(),
    };
    let mut cfg = ShipperConfig::new(args.to.clone(), agent_id, transport::new_stream_id());
    cfg.token = transport::load_token(args.token.as_deref(), args.token_file.as_deref())
        .map_err(anyhow::Error::msg)?;
    if let Some(ca) = &args.tls_ca {
        let client = match (&args.tls_cert, &args.tls_key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            _ => None,
        };
        cfg.tls = Some(ClientTls {
            config: tls::client_config(ca, client)?,
            server_name: args.tls_server_name.clone(),
        });
    } else if args.tls_cert.is_some() {
        bail!("--tls-cert needs --tls-ca");
    }
    cfg.give_up_after = Some(args.retries.max(1));

    // Open every input first, so a missing file fails before anything is sent.
    let mut inputs: Vec<(String, Box<dyn Read + Send>)> = Vec::new();
    if args.files.is_empty() {
        inputs.push(("stdin".into(), Box::new(std::io::stdin())));
    }
    for f in &args.files {
        let file =
            std::fs::File::open(f).with_context(|| format!("cannot open {}", f.display()))?;
        inputs.push((f.display().to_string(), Box::new(file)));
    }
    if args.protocol == SendProtocol::Scribe {
        let sent = super::send_scribe::send(&args.to[0], &args.category, inputs, args.retries)?;
        eprintln!("quill send: {sent} entries logged (Scribe OK).");
        return Ok(0);
    }
    let origin = Origin::new("send", &args.category, args.format, &hostname);
    let (tx, rx) = mpsc::channel::<Record>(8192);
    let read_error = Arc::new(Mutex::new(None::<String>));
    let reader_error = read_error.clone();
    let reader = std::thread::Builder::new()
        .name("send-reader".into())
        .spawn(move || {
            for (name, input) in inputs {
                if let Err(e) = read_lines(input, &origin, &tx) {
                    *reader_error.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(format!("{name}: {e}"));
                    return;
                }
            }
        })
        .context("cannot start the reader thread")?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut source = LineSource {
        rx,
        buffer: VecDeque::new(),
        read_idx: 0,
        next_seq: 1,
        acked: 0,
        eof: false,
    };
    let stats = ShipStats::default();
    let result = runtime.block_on(ship(&cfg, &mut source, &stats));
    drop(source);
    let _ = reader.join();
    result?;
    if let Some(e) = read_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        bail!("read error after sending what came before: {e}");
    }
    let raw = stats.raw_bytes.load(Ordering::Relaxed);
    let wire = stats.wire_bytes.load(Ordering::Relaxed);
    eprintln!(
        "quill send: {} lines ({raw} bytes, {wire} on the wire) delivered.",
        stats.records.load(Ordering::Relaxed),
    );
    Ok(0)
}

/// Splits `input` into line records (pieces of `MAX_LINE` at most, flagged `CONTINUED` but the
/// last) and sends them on.
fn read_lines(
    input: Box<dyn Read + Send>,
    origin: &Arc<Origin>,
    tx: &mpsc::Sender<Record>,
) -> std::io::Result<()> {
    let reader = BufReader::with_capacity(256 * 1024, input);
    let mut lines = BoundedLines::new(reader, MAX_LINE, Overlong::Split);
    while let Some(line) = lines.next_line()? {
        let flags = match (line.cut, line.newline) {
            (Cut::Continued, _) => RecordFlags::CONTINUED,
            (_, false) => RecordFlags::NO_NEWLINE,
            (_, true) => RecordFlags::empty(),
        };
        let record = Record {
            origin: origin.clone(),
            received_at: Timestamp::now(),
            position: Position::None,
            flags,
            raw: Bytes::copy_from_slice(line.bytes),
        };
        if tx.blocking_send(record).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Lines read so far, kept until the aggregator acknowledges them.
struct LineSource {
    rx: mpsc::Receiver<Record>,
    buffer: VecDeque<Entry>,
    read_idx: usize,
    next_seq: u64,
    acked: u64,
    eof: bool,
}

impl BatchSource for LineSource {
    async fn next_entries(&mut self, max: usize) -> Result<Vec<Entry>, String> {
        if self.read_idx == self.buffer.len() && !self.eof {
            // Cancel safe: a record received is stored before anything else can be dropped.
            match self.rx.recv().await {
                Some(record) => {
                    self.buffer.push_back(Entry {
                        seq: self.next_seq,
                        record,
                    });
                    self.next_seq += 1;
                    while self.buffer.len() - self.read_idx < max {
                        match self.rx.try_recv() {
                            Ok(record) => {
                                self.buffer.push_back(Entry {
                                    seq: self.next_seq,
                                    record,
                                });
                                self.next_seq += 1;
                            }
                            Err(_) => break,
                        }
                    }
                }
                None => {
                    self.eof = true;
                    return Ok(Vec::new());
                }
            }
        }
        let end = self.buffer.len().min(self.read_idx + max);
        let out: Vec<Entry> = self.buffer.range(self.read_idx..end).cloned().collect();
        self.read_idx = end;
        Ok(out)
    }

    async fn ack(&mut self, seq: u64) -> Result<(), String> {
        while self.buffer.front().is_some_and(|e| e.seq <= seq) {
            self.buffer.pop_front();
            self.read_idx = self.read_idx.saturating_sub(1);
        }
        self.acked = self.acked.max(seq);
        Ok(())
    }

    fn rewind(&mut self) {
        self.read_idx = 0;
    }

    fn acked(&self) -> u64 {
        self.acked
    }

    fn finished(&self) -> bool {
        self.eof && self.read_idx == self.buffer.len()
    }

    fn newest(&self) -> u64 {
        self.next_seq.saturating_sub(1)
    }

    async fn restream(&mut self, _stream_id: &str) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(Vec<u8>, RecordFlags)> {
        let origin = Origin::new("send", "c", Format::Raw, "h");
        let (tx, mut rx) = mpsc::channel(1 << 16);
        read_lines(Box::new(std::io::Cursor::new(input.to_vec())), &origin, &tx).unwrap();
        drop(tx);
        let mut out = Vec::new();
        while let Ok(r) = rx.try_recv() {
            out.push((r.raw.to_vec(), r.flags));
        }
        out
    }

    #[test]
    fn splits_lines_and_keeps_long_ones_in_pieces() {
        let v = lines(b"a\r\nb\n\nlast");
        assert_eq!(
            v,
            vec![
                (b"a".to_vec(), RecordFlags::empty()),
                (b"b".to_vec(), RecordFlags::empty()),
                (b"".to_vec(), RecordFlags::empty()),
                (b"last".to_vec(), RecordFlags::NO_NEWLINE),
            ]
        );
        let mut long = vec![b'x'; MAX_LINE * 2 + 10];
        long.push(b'\n');
        let v = lines(&long);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].1, RecordFlags::CONTINUED);
        assert_eq!(v[1].1, RecordFlags::CONTINUED);
        assert_eq!(v[2], (vec![b'x'; 10], RecordFlags::empty()));
    }
}
