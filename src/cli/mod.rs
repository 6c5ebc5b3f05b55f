//! The `quill` command line: subcommands, their flags, and the glue from flags to the library.
//!
//! This is the only place `anyhow` is used; everything below returns typed errors. Exit codes:
//! 0 success, 1 "nothing found" (search, cat), 2 usage or configuration errors and features not in
//! this build yet, 3 `quill search` across servers when some did not answer (the result printed
//! is incomplete).

pub mod bytes;
mod cat;
pub mod index_cmd;
mod join;
mod journal_cmd;
pub mod parse;
pub mod search;
mod send;
mod send_scribe;
mod status;
mod validate_online;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Config;

/// Quill: a durable log pipeline.
#[derive(Debug, Parser)]
#[command(name = "quill", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the topology of a config file until SIGINT/SIGTERM (then drain, flush and exit 0);
    /// SIGHUP re-reads the config and applies what changed.
    Run(RunArgs),
    /// Check a config file without running it (`--online`: and the NATS streams it needs).
    Validate(validate_online::Args),
    /// Parse log lines (stdin if no FILE) into GELF JSON lines on stdout, one per input line.
    Parse(parse::ParseArgs),
    /// Show every entry of a transaction id, or run a query, across hosts in time order.
    Search(search::SearchArgs),
    /// Backfill existing log files (plain, .gz, .zst) into the index.
    Index(index_cmd::IndexArgs),
    /// Ship lines (stdin if no FILE) to a forward source, like Scribe's scribe_pipe.
    Send(send::SendArgs),
    /// Read GELF/JSON line files (plain or .zst) for a human.
    Cat(cat::CatArgs),
    /// Byte accounting: `quill bytes check haproxy.cfg` says which byte counts can be exact.
    Bytes(bytes::Args),
    /// The journal's cursors: list them, drop the one of a sink that was removed.
    Journal(journal_cmd::JournalArgs),
    /// Ask the daemon running this config to reload it (SIGHUP through its pid file); the
    /// config is checked first.
    Reload(ValidateArgs),
    /// A running daemon's sources, sinks, lag, losses and last errors (exit 1 if unhealthy).
    Status(status::StatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The config file.
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The config file.
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Entry point of the `quill` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // A closed stdout (`quill parse ... | head`) is not an error.
            let broken_pipe = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("quill: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    // tantivy logs every segment merge and commit at INFO: warn unless QUILL_LOG asks for more.
    let filter = EnvFilter::try_from_env("QUILL_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tantivy=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn exit_code(code: i32) -> u8 {
    code.clamp(0, 255) as u8
}

fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run(args) => {
            let config = Config::load(&args.config)?;
            crate::pipeline::run_file(config, &args.config).context("pipeline failed")?;
            Ok(0)
        }
        Command::Reload(args) => {
            let config = Config::load(&args.config)?;
            let pid_file = config.pid_path();
            let pid = crate::pipeline::reload::signal_reload(&pid_file)?;
            println!(
                "quill (pid {pid}, from {}) asked to reload its config",
                pid_file.display()
            );
            Ok(0)
        }
        Command::Validate(args) => {
            let config = Config::load_with_parsers(&args.config)?;
            println!(
                "{}: ok ({} sources, {} sinks)",
                args.config.display(),
                config.sources.len(),
                config.sinks.len()
            );
            if args.online {
                return validate_online::run(&config, &args.config);
            }
            Ok(0)
        }
        // With a haproxy.cfg, `quill parse` pairs the inputs' lines through the byte join.
        Command::Parse(args) if args.keys.haproxy_config.is_some() => {
            join::run(&args).map(exit_code)
        }
        Command::Parse(args) => parse::run(&args).map(exit_code),
        Command::Search(args) => search::run(&args).map(exit_code),
        Command::Index(args) => index_cmd::run(&args).map(exit_code),
        Command::Send(args) => send::run(args),
        Command::Cat(args) => cat::run(&args),
        Command::Bytes(args) => bytes::run(&args).map(exit_code),
        Command::Journal(args) => journal_cmd::run(&args),
        Command::Status(args) => status::run(&args),
    }
}
