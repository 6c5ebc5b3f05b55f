//! Flags of subcommands whose implementation has not landed in this build: they parse their
//! documented flags and then say so, exiting 2. None pretends to work.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ParseArgs {
    /// Input format: auto, haproxy, apache, syslog, json, raw.
    #[arg(long, default_value = "auto")]
    pub format: String,
    /// Read HAProxy `log-format` lines from this haproxy.cfg.
    #[arg(long, value_name = "FILE")]
    pub haproxy_config: Option<PathBuf>,
    /// Files to parse (stdin if none).
    pub files: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// The transaction id to show.
    pub txn_id: Option<String>,
    /// A data directory to search (read-only).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// A running aggregator's URL.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Print GELF JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// A query in tantivy syntax.
    #[arg(long)]
    pub query: Option<String>,
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub struct IndexArgs {
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    #[arg(long, default_value = "auto")]
    pub format: String,
    #[arg(long)]
    pub category: Option<String>,
    pub files: Vec<PathBuf>,
}

pub fn not_yet(name: &str, issue: &str, _args: &dyn std::fmt::Debug) -> anyhow::Result<u8> {
    eprintln!("quill {name}: not available in this build yet (tracked in issue {issue})");
    Ok(2)
}
