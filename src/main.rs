// Temporary dispatch for the index branch; the lead's CLI replaces it.
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "quill")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show every entry of a transaction id, or of a query.
    Search(quill::cli::search::SearchArgs),
    /// Backfill log files into a data dir's index.
    Index(quill::cli::index_cmd::IndexArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Search(a) => quill::cli::search::run(a),
        Command::Index(a) => quill::cli::index_cmd::run(a),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("quill: {e:#}");
            std::process::exit(2);
        }
    }
}
