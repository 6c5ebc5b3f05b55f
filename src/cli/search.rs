//! `quill search`: every entry of a transaction id, or of a query, in time order.
//!
//! Reads the index of a data dir read-only (safe while a daemon writes it), or asks running
//! aggregators' search APIs (`--server`, repeatable, or `[search] peers` of `-c FILE`) all at once
//! and merges their answers by time ([`crate::index::fanout`]). Prints an aligned table, or GELF
//! JSON lines with `--json`. Exit code 0 when something matched, 1 when nothing did, 2 on errors
//! (the only server, or every server, did not answer), 3 when some servers did not answer
//! (named on stderr; the others' entries are printed).

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::config::{Config, DEFAULT_PEER_TIMEOUT};
use crate::index::fanout::search_all;
use crate::index::{IndexReaderSet, PageOptions, SearchHit, SearchRequest, index_root};

/// Where `--data` points when it is not given.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/quill";

/// The exit code when some of several servers did not answer (the others' entries are printed).
pub const EXIT_INCOMPLETE: i32 = 3;

#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["txn_id", "query"])))]
pub struct SearchArgs {
    /// The transaction id to show every entry of.
    pub txn_id: Option<String>,
    /// A query in tantivy syntax over the fields txn_id, timestamp, host, category, source,
    /// level, status, method, client_ip, path, message (e.g. `status:503 AND host:web1`).
    #[arg(long, short = 'q')]
    pub query: Option<String>,
    /// Only entries at or after this time: a duration back from now (`1h`, `30m`) or RFC 3339.
    #[arg(long)]
    pub since: Option<String>,
    /// Only entries before this time: a duration back from now or RFC 3339.
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many entries (the newest ones, printed oldest first); capped at 10,000.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// The data dir whose index to read (ignored with --server; default: the config's
    /// `data_dir`, else /var/lib/quill).
    #[arg(long, env = "QUILL_DATA")]
    pub data: Option<PathBuf>,
    /// Ask a running aggregator's search API instead, e.g. http://127.0.0.1:7379. Repeatable:
    /// every server is asked at once and the answers are merged by time.
    #[arg(long, value_name = "URL")]
    pub server: Vec<String>,
    /// A config file whose `[search] peers` are asked when no --server is given (and whose
    /// `data_dir` is read when it has none).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// With servers: how long each may take to answer (default: `[search] timeout`, else 10s).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// With servers: a file whose first line is the APIs' token (`search_token_file`).
    #[arg(long, env = "QUILL_SEARCH_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Print GELF JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `quill search`; returns the exit code.
pub fn run(args: &SearchArgs) -> anyhow::Result<i32> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    let req = SearchRequest {
        txn_id: args.txn_id.clone(),
        query: args.query.clone(),
        since_ms: args
            .since
            .as_deref()
            .map(|s| parse_time(s, now_ms))
            .transpose()
            .context("--since")?,
        until_ms: args
            .until
            .as_deref()
            .map(|s| parse_time(s, now_ms))
            .transpose()
            .context("--until")?,
        limit: args.limit.max(1),
    };
    let config = args.config.as_deref().map(Config::load).transpose()?;
    let mut servers: Vec<String> = Vec::new();
    let listed = match (&args.server, &config) {
        (s, _) if !s.is_empty() => s.as_slice(),
        (_, Some(c)) => c.search.peers.as_slice(),
        _ => &[],
    };
    for s in listed {
        if !servers.contains(s) {
            servers.push(s.clone());
        }
    }
    let mut incomplete = false;
    let (hits, more) = if servers.is_empty() {
        let data = args
            .data
            .clone()
            .or_else(|| config.as_ref().map(|c| c.data_dir.clone()))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let root = index_root(&data);
        if !root.is_dir() {
            bail!("no index at {} (is --data right?)", root.display());
        }
        // The default limits: the same caps as the search API.
        let page = IndexReaderSet::new(&root).search_page(&req, &PageOptions::default())?;
        (page.hits, page.more)
    } else {
        let timeout = args
            .timeout
            .or_else(|| config.as_ref().map(|c| c.search.timeout.0))
            .unwrap_or(DEFAULT_PEER_TIMEOUT.0);
        let token = crate::transport::load_token(None, args.token_file.as_deref())
            .map_err(|e| anyhow::anyhow!(e))?
            .map(|t| String::from_utf8_lossy(&t).into_owned());
        let mut found = search_all(&servers, &req, token.as_deref(), timeout);
        if found.answered == 0 && found.failures.len() == 1 {
            return Err(found.failures.remove(0).into());
        }
        for e in &found.failures {
            eprintln!("quill search: {e}");
        }
        if found.answered == 0 {
            bail!("none of the {} search servers answered", servers.len());
        }
        if !found.failures.is_empty() {
            incomplete = true;
            eprintln!(
                "quill search: {} of {} servers did not answer: their entries are missing (exit {EXIT_INCOMPLETE})",
                found.failures.len(),
                servers.len()
            );
        }
        (found.hits, found.more)
    };
    let code = |matched: i32| if incomplete { EXIT_INCOMPLETE } else { matched };
    if hits.is_empty() {
        eprintln!("quill search: no entries match");
        return Ok(code(1));
    }
    if more {
        eprintln!(
            "quill search: showing the newest {} entries; older ones may match too (--limit)",
            hits.len()
        );
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written = if args.json {
        write_json(&mut out, &hits)
    } else {
        write_table(&mut out, &hits)
    };
    match written.and_then(|_| out.flush()) {
        Ok(()) => Ok(code(0)),
        // `quill search ... | head` is fine.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(code(0)),
        Err(e) => Err(e.into()),
    }
}

/// A time argument: a duration back from `now_ms` (`90s`, `1h`, `2days`) or an RFC 3339 time.
pub fn parse_time(s: &str, now_ms: i64) -> anyhow::Result<i64> {
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now_ms.saturating_sub(d.as_millis().min(i64::MAX as u128) as i64));
    }
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|_| anyhow::anyhow!("`{s}` is neither a duration like 1h nor an RFC 3339 time"))?;
    Ok(match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    })
}

fn write_json(out: &mut impl Write, hits: &[SearchHit]) -> io::Result<()> {
    for h in hits {
        out.write_all(h.gelf.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Syslog severity names, for the level column.
const LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// Widest host or category column.
const MAX_COLUMN: usize = 24;

struct Row {
    cells: [String; 5],
    message: String,
}

fn row_of(hit: &SearchHit) -> Row {
    let v: serde_json::Value = serde_json::from_str(&hit.gelf).unwrap_or_default();
    let text = |key: &str| match &v[key] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    let level = match v["level"].as_u64() {
        Some(l) if (l as usize) < LEVELS.len() => LEVELS[l as usize].to_string(),
        _ => text("level"),
    };
    let clip = |s: String| -> String {
        if s.chars().count() > MAX_COLUMN {
            let mut c: String = s.chars().take(MAX_COLUMN - 1).collect();
            c.push('…');
            c
        } else {
            s
        }
    };
    let time = u64::try_from(hit.timestamp_ms)
        .map(|ms| {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        })
        .unwrap_or_else(|_| hit.timestamp_ms.to_string());
    let message: String = text("short_message")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Row {
        cells: [
            time,
            clip(text("host")),
            clip(text("_category")),
            level,
            text("_status"),
        ],
        message,
    }
}

fn write_table(out: &mut impl Write, hits: &[SearchHit]) -> io::Result<()> {
    let header = ["TIME", "HOST", "CATEGORY", "LEVEL", "STATUS"];
    let rows: Vec<Row> = hits.iter().map(row_of).collect();
    let mut widths = header.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(&r.cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut line = |cells: &[String; 5], message: &str| -> io::Result<()> {
        for (c, w) in cells.iter().zip(widths) {
            write!(out, "{c:<w$}  ")?;
        }
        writeln!(out, "{message}")
    };
    line(&header.map(String::from), "MESSAGE")?;
    for r in &rows {
        line(&r.cells, &r.message)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relative_and_absolute_times() {
        let now = 1_800_000_000_000;
        assert_eq!(parse_time("1h", now).unwrap(), now - 3_600_000);
        assert_eq!(parse_time("90s", now).unwrap(), now - 90_000);
        assert_eq!(
            parse_time("2026-11-23T01:08:50Z", now).unwrap(),
            1_795_396_130_000
        );
        assert!(parse_time("yesterday-ish", now).is_err());
    }

    #[test]
    fn table_is_aligned() {
        let hits = vec![
            SearchHit {
                timestamp_ms: 1_000,
                seq: 1,
                gelf: r#"{"host":"lb-1","short_message":"GET /a\nx","level":6,"_category":"lb","_status":200}"#.into(),
            },
            SearchHit {
                timestamp_ms: 2_000,
                seq: 2,
                gelf: r#"{"host":"application-host-7","short_message":"boom","level":3,"_category":"app"}"#.into(),
            },
        ];
        let mut out = Vec::new();
        write_table(&mut out, &hits).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let col = |l: &str| {
            l.find("MESSAGE")
                .or_else(|| l.find("GET"))
                .or_else(|| l.find("boom"))
        };
        assert_eq!(col(lines[0]), col(lines[1]));
        assert_eq!(col(lines[1]), col(lines[2]));
        assert!(lines[1].starts_with("1970-01-01T00:00:01.000Z  lb-1 "));
        assert!(lines[1].contains(" info ") && lines[1].contains(" 200 "));
        assert!(lines[2].contains(" err ") && lines[2].contains(" - "));
        assert!(lines[1].ends_with("GET /a x"));
    }
}
