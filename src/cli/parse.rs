//! `quill parse`: runs the parsers over files (or stdin) and prints one GELF JSON object per line.
//!
//! Reads the files named on the command line (stdin if none) and writes to stdout; reads the
//! haproxy.cfg / Apache config given. A summary (lines, parse errors) goes to stderr. Exit
//! status 0 when every line parsed, 1 when some were kept raw with `_parse_error`.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;

use crate::config::ParseKeys;
use crate::lines::{BoundedLines, Cut, Line, Overlong};
use crate::parse::{Format, Parser};
use crate::record::{Origin, Position, Record, RecordFlags, Timestamp};

/// The parse keys on the command line (`quill parse`, `quill index`): the same keys as a source's
/// in the config file, loaded by the same function ([`crate::config::ParseOptions::load`]).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ParseKeyArgs {
    /// A haproxy.cfg to read `log-format`s and `capture` declarations from.
    #[arg(long, value_name = "FILE")]
    pub haproxy_config: Option<PathBuf>,
    /// A custom HAProxy log-format string (repeatable; tried before the built-in formats).
    #[arg(long, value_name = "STR")]
    pub haproxy_format: Vec<String>,
    /// An Apache LogFormat string or nickname (repeatable; tried in order).
    #[arg(long, value_name = "STR")]
    pub apache_format: Vec<String>,
    /// An Apache config to read `LogFormat`/`CustomLog` lines from; a CustomLog writing a file of
    /// the same name as an input selects that input's format.
    #[arg(long, value_name = "FILE")]
    pub apache_config: Option<PathBuf>,
    /// Without --apache-config and --apache-format, the platform's Apache config
    /// (etc/apache2/apache2.conf, etc/httpd/conf/httpd.conf) is read below this directory.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub apache_root: PathBuf,
    /// Time zone of times that carry none: an IANA name with its DST rules
    /// (`America/Los_Angeles`), `UTC`, an offset (`+01:00`, `-0500`) or `local`. Default: the
    /// host's local zone (`TZ`, then /etc/localtime).
    #[arg(long)]
    pub tz: Option<String>,
    /// Names `_txn_id` is taken from, in priority order (repeatable; replaces the defaults).
    #[arg(long = "txn-id", value_name = "NAME")]
    pub txn_id: Vec<String>,
}

impl ParseKeyArgs {
    /// The keys as the config file spells them.
    pub fn to_keys(&self) -> ParseKeys {
        ParseKeys {
            haproxy_config: self.haproxy_config.clone(),
            haproxy_format: self.haproxy_format.clone(),
            apache_format: self.apache_format.clone(),
            apache_config: self.apache_config.clone(),
            timezone: self.tz.clone(),
            txn_id_fields: self.txn_id.clone(),
        }
    }

    /// The compiled parser for `input` (if known, an Apache `CustomLog` writing a file of that
    /// name selects its format); an error names the flag's key.
    pub fn compile(&self, format: Format, input: Option<&Path>) -> anyhow::Result<Parser> {
        let keys = self.to_keys();
        Ok(keys.options(format).compile_in(input, &self.apache_root)?)
    }
}

/// Arguments of `quill parse`.
#[derive(clap::Args, Debug, Clone)]
pub struct ParseArgs {
    /// Input format: auto (per line), haproxy, apache, syslog, json or raw.
    #[arg(long, default_value = "auto")]
    pub format: Format,
    #[command(flatten)]
    pub keys: ParseKeyArgs,
    /// GELF host for lines that name none (default: this machine's hostname).
    #[arg(long)]
    pub host: Option<String>,
    /// With --haproxy-config: how long (log time, seconds) an entry waits for its partner line
    /// (the backend's access-log line with the same transaction id) before it goes out with the
    /// best estimate of `_bytes_sent`. Log times are compared after each input's clock offset
    /// is learned from its first pair; until then entries wait bounded by --join-capacity only,
    /// so logs whose clocks or zones disagree still pair by transaction id.
    #[arg(long, default_value_t = 10)]
    pub join_window: u32,
    /// With --haproxy-config: the most entries waiting for a partner at once.
    #[arg(long, default_value_t = 100_000)]
    pub join_capacity: usize,
    /// With --haproxy-config: declare that no HTTP/1.1 client of a keep-alive frontend sends
    /// `Connection: close`. HAProxy 2.6 cannot log that request header (it answers it with
    /// `connection: close`, 19 bytes); without this flag those entries are `estimate`, with it
    /// `exact` on your word.
    #[arg(long)]
    pub assume_keep_alive_clients: bool,
    /// Files to read; stdin if none.
    pub files: Vec<PathBuf>,
}

/// The compiled parser the arguments describe (for one input file, if given).
pub fn parser_for(args: &ParseArgs, file: Option<&Path>) -> anyhow::Result<Parser> {
    args.keys.compile(args.format, file)
}

/// The longest line `quill parse` holds (the file source's default `max_line_bytes`): a longer
/// one is parsed in pieces, flagged as the file source flags them.
pub(super) const MAX_LINE: usize = 1 << 20;

/// The record of a line read from an input, flagged as the file source flags its lines
/// (`TRUNCATED` on every piece of an over-long line, `CONTINUED` on all but its last,
/// `NO_NEWLINE` on a last line without one).
pub(super) fn line_record(origin: &Arc<Origin>, line: &Line<'_>) -> Record {
    let mut flags = match line.cut {
        Cut::Whole => RecordFlags::empty(),
        Cut::Continued => RecordFlags::CONTINUED,
        Cut::LastPiece | Cut::Truncated => RecordFlags::TRUNCATED,
    };
    if line.cut == Cut::Continued {
        flags.insert(RecordFlags::TRUNCATED);
    } else if !line.newline {
        flags.insert(RecordFlags::NO_NEWLINE);
    }
    Record {
        origin: Arc::clone(origin),
        received_at: Timestamp::now(),
        position: Position::None,
        flags,
        raw: Bytes::copy_from_slice(line.bytes),
    }
}

/// Runs `quill parse` without the byte join (with `--haproxy-config` the cli runs the join);
/// returns the exit status.
pub fn run(args: &ParseArgs) -> anyhow::Result<i32> {
    let host = args
        .host
        .clone()
        .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned());
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut total = 0u64;
    let mut errors = 0u64;
    let inputs: Vec<Option<&PathBuf>> = if args.files.is_empty() {
        vec![None]
    } else {
        args.files.iter().map(Some).collect()
    };
    let mut buf = Vec::with_capacity(1024);
    for input in inputs {
        let parser = parser_for(args, input.map(PathBuf::as_path))?;
        let source = input.map_or_else(|| "stdin".to_owned(), |p| p.display().to_string());
        let origin = Origin::new(&source, "parse", args.format, &host);
        let reader: Box<dyn Read> = match input {
            Some(p) => Box::new(
                std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
            ),
            None => Box::new(std::io::stdin()),
        };
        let mut lines = BoundedLines::new(
            BufReader::with_capacity(1 << 16, reader),
            MAX_LINE,
            Overlong::Split,
        );
        while let Some(line) = lines.next_line()? {
            let record = line_record(&origin, &line);
            buf.clear();
            total += 1;
            if crate::gelf::encode_parsed(&parser, &record, &mut buf).is_error() {
                errors += 1;
            }
            buf.push(b'\n');
            out.write_all(&buf)?;
        }
    }
    out.flush()?;
    eprintln!("quill parse: {total} lines, {errors} parse errors");
    Ok(if errors > 0 { 1 } else { 0 })
}
