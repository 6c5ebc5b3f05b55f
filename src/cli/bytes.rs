//! `quill bytes check`: reads the haproxy.cfg named on the command line and prints what
//! [`crate::accounting::check`] finds (which byte counts can be billed exactly, and what to add).

use std::path::PathBuf;

use anyhow::Context as _;

use crate::parse::haproxy::config::HaproxyConfig;

/// Arguments of `quill bytes`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(subcommand)]
    pub command: BytesCommand,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum BytesCommand {
    /// Say, frontend by frontend, which byte counts will be exact, which estimated and why, and
    /// the lines to add to haproxy.cfg and Apache's LogFormat to make them exact.
    Check(CheckArgs),
}

/// Arguments of `quill bytes check`.
#[derive(clap::Args, Debug, Clone)]
pub struct CheckArgs {
    /// The haproxy.cfg to check.
    pub config: PathBuf,
    /// The backend's (Apache) LogFormat string, to check that it carries `%O` and the id.
    #[arg(long, value_name = "STR")]
    pub backend_log_format: Option<String>,
    /// Check as `quill parse --assume-keep-alive-clients` corrects: no HTTP/1.1 client of a
    /// keep-alive frontend sends `Connection: close`.
    #[arg(long)]
    pub assume_keep_alive_clients: bool,
}

/// Runs `quill bytes`; returns the exit status (0: every HTTP count can be exact for completed
/// responses; 1: some will be estimates).
pub fn run(args: &Args) -> anyhow::Result<i32> {
    match &args.command {
        BytesCommand::Check(c) => {
            let text = std::fs::read_to_string(&c.config)
                .with_context(|| format!("reading {}", c.config.display()))?;
            let cfg = HaproxyConfig::parse(&text)
                .with_context(|| format!("in {}", c.config.display()))?;
            let report = crate::accounting::check::check(
                &cfg,
                c.backend_log_format.as_deref(),
                c.assume_keep_alive_clients,
            );
            print!("{}", report.text);
            Ok(if report.all_exact { 0 } else { 1 })
        }
    }
}
