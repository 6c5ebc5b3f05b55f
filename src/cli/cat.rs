//! `quill cat`: GELF/JSON line files (plain or .zst) shown for a human, with filters.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

use crate::lines::{BoundedLines, Cut, Overlong};

/// The longest entry shown (a GELF line of a 1 MiB record, every byte escaped, fits); a longer
/// line is skipped with a message, never held whole.
const MAX_ENTRY: usize = 16 << 20;

#[derive(Debug, clap::Args)]
pub struct CatArgs {
    /// Only entries with this transaction id (`_txn_id`).
    #[arg(long, value_name = "ID")]
    pub txn: Option<String>,
    /// Only entries at this syslog level or more severe (0-7 or a name: err, warning, info...).
    #[arg(long, value_name = "LEVEL")]
    pub level: Option<String>,
    /// Only entries from this host.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Print matching entries as JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// GELF/JSON line files; `.zst` files are decompressed.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

const LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

fn parse_level(s: &str) -> anyhow::Result<u64> {
    if let Ok(n) = s.parse::<u64>()
        && n < 8
    {
        return Ok(n);
    }
    let lower = s.to_ascii_lowercase();
    let alias = match lower.as_str() {
        "error" => "err",
        "warn" => "warning",
        "critical" => "crit",
        "emergency" => "emerg",
        other => other,
    };
    LEVELS
        .iter()
        .position(|l| *l == alias)
        .map(|p| p as u64)
        .with_context(|| format!("unknown level `{s}` (use 0-7 or emerg, alert, crit, err, warning, notice, info, debug)"))
}

pub fn run(args: &CatArgs) -> anyhow::Result<u8> {
    let max_level = args.level.as_deref().map(parse_level).transpose()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut shown = 0u64;
    for path in &args.files {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "zst") {
            Box::new(
                zstd::Decoder::new(file)
                    .with_context(|| format!("{}: not zstd", path.display()))?,
            )
        } else {
            Box::new(file)
        };
        let mut lines = BoundedLines::new(BufReader::new(reader), MAX_ENTRY, Overlong::Truncate);
        let mut n = 0u64;
        while let Some(line) = lines
            .next_line()
            .with_context(|| format!("{}: read error", path.display()))?
        {
            n += 1;
            if line.cut == Cut::Truncated {
                eprintln!(
                    "{}:{n}: longer than {MAX_ENTRY} bytes, skipped",
                    path.display()
                );
                continue;
            }
            let line = line.bytes;
            if line.is_empty() {
                continue;
            }
            let Ok(v) = serde_json::from_slice::<Value>(line) else {
                eprintln!("{}:{n}: not JSON, skipped", path.display());
                continue;
            };
            if let Some(t) = &args.txn
                && v.get("_txn_id").and_then(Value::as_str) != Some(t)
            {
                continue;
            }
            if let Some(h) = &args.host
                && v.get("host").and_then(Value::as_str) != Some(h)
            {
                continue;
            }
            if let Some(max) = max_level
                && v.get("level").and_then(Value::as_u64).unwrap_or(6) > max
            {
                continue;
            }
            shown += 1;
            if args.json {
                out.write_all(line)?;
                out.write_all(b"\n")?;
            } else {
                writeln!(out, "{}", human_line(&v))?;
            }
        }
    }
    out.flush()?;
    Ok(if shown == 0 { 1 } else { 0 })
}

fn human_line(v: &Value) -> String {
    let ts = v.get("timestamp").and_then(Value::as_f64).unwrap_or(0.0);
    let time = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis((ts * 1000.0).max(0.0) as u64),
    );
    let level = v
        .get("level")
        .and_then(Value::as_u64)
        .and_then(|l| LEVELS.get(l as usize))
        .copied()
        .unwrap_or("-");
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
    format!(
        "{time}  {:<16} {:<12} {:<7} {}",
        s("host"),
        s("_category"),
        level,
        s("short_message")
    )
}
