//! `quill status`: asks a running daemon for `/status` on its `metrics_listen` address and prints
//! the sources, sinks, lag, losses and last errors as a table. Exit 1 when something is unhealthy
//! (not ready, a sink not running, journal writes failing).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::status::StatusReport;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The daemon's config file (its `metrics_listen` is asked).
    #[arg(short, long, value_name = "FILE", required_unless_present = "url")]
    pub config: Option<PathBuf>,
    /// The daemon's operations address instead (`http://127.0.0.1:9598` or `127.0.0.1:9598`).
    #[arg(long, conflicts_with = "config")]
    pub url: Option<String>,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &StatusArgs) -> anyhow::Result<u8> {
    let addr = match (&args.url, &args.config) {
        (Some(url), _) => url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string(),
        (None, Some(path)) => {
            let config = Config::load(path)?;
            config.metrics_listen.with_context(|| {
                format!(
                    "{}: metrics_listen is not set: there is no status to ask for",
                    path.display()
                )
            })?
        }
        (None, None) => bail!("give -c FILE or --url"),
    };
    let body = get(&addr, "/status").with_context(|| format!("cannot ask {addr} for /status"))?;
    let report: StatusReport = serde_json::from_str(&body)
        .with_context(|| format!("{addr}/status: not a status report"))?;
    if args.json {
        println!("{body}");
    } else {
        print!("{}", report.to_table());
    }
    let problems = report.problems();
    for p in &problems {
        eprintln!("quill status: {p}");
    }
    Ok(if problems.is_empty() { 0 } else { 1 })
}

/// A plain HTTP/1.0 GET; the body of a 200 answer.
fn get(addr: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        bail!("{status}");
    }
    Ok(body.to_string())
}
